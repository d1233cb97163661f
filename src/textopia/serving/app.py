"""The FastAPI service: JSON API, SageMaker contract and web page, all on the Generator interface.

::

    GET  /                 web page (static, same-origin JS and CSS, works offline)
    POST /v1/generate      idea ──▶ prompts           POST /invocations   same body (SageMaker)
    GET  /v1/models        what is loaded             GET  /ping          200 when ready (SageMaker)
    POST /v1/interpolate   VAE models only            GET  /healthz       alive
    POST /v1/variations    VAE models only            GET  /readyz        models loaded
    GET  /docs             OpenAPI docs               GET  /openapi.json

``POST /invocations`` also takes ``application/jsonlines`` (SageMaker batch transform with
``SplitType=Line``): one request object a line, answered by one JSON line each, in order.

Models are loaded in the lifespan handler (never at import). Generation runs on worker threads
behind an :class:`~textopia.serving.limiter.InferenceLimiter`: at most ``max_concurrency`` at
once, ``queue_size`` waiting, 503 with ``Retry-After`` beyond that, 504 past the per-request
timeout. Every error is JSON ``{"error": message}``; tracebacks go to the log, never to clients.

With an :class:`~textopia.serving.endpoint_client.EndpointClient` (``textopia serve --endpoint
URL``) the app loads no model: it is the front, and sends generations to that endpoint.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import metadata, resources
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.routing import Match
from starlette.types import Scope
from starlette.exceptions import HTTPException as StarletteHTTPException

from textopia.generation.base import DecodingSettings, Generator, TextopiaError, unsupported_settings
from textopia.serving.clip import ClipCounter
from textopia.serving.endpoint_client import ENDPOINT_MODEL, EndpointClient, EndpointError
from textopia.serving.limiter import InferenceLimiter, InferenceTimeout, ServerBusy, Timed
from textopia.serving.middleware import BodySizeLimitMiddleware, SecurityHeadersMiddleware
from textopia.serving.models import (
    LoadedModel,
    ModelNotFound,
    ModelStore,
    NotLatent,
    attach_batchers,
    load_store,
)
from textopia.serving.safety import NSFW_WORDS, banned_pattern, clean_words, contains_banned, mask_banned
from textopia.serving.schemas import (
    MAX_SEED,
    ErrorResponse,
    GenerateRequest,
    GenerateResponse,
    InterpolateRequest,
    LatentResponse,
    ModelInfo,
    ModelsResponse,
    PromptOut,
    Status,
    Timing,
    VariationsRequest,
)
from textopia.serving.settings import ServingSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A strict policy for the web page: nothing but this origin, no inline script or style.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "app.css": "text/css"}


class ModelsNotReady(Exception):
    """The models are still loading (answered 503)."""


class SettingNotForModel(Exception):
    """A setting the chosen model does not take, e.g. guidance for a GPT (answered 409)."""


class InferenceFailed(Exception):
    """A generator raised something other than TextopiaError (answered 500, logged in full)."""


class NotThroughEndpoint(Exception):
    """The front has no such call: the SageMaker contract carries generation only (answered 501)."""


@dataclass
class ServiceState:
    """What the running service holds: settings, the models, and the inference limiter."""

    settings: ServingSettings
    limiter: InferenceLimiter
    clip: ClipCounter
    store: ModelStore | None = None
    endpoint: EndpointClient | None = None

    def require_store(self) -> ModelStore:
        if self.endpoint is not None:
            raise NotThroughEndpoint("this server forwards generation to an inference endpoint, whose "
                                     "contract (POST /invocations) carries nothing else")
        if self.store is None:
            raise ModelsNotReady("models are still loading")
        return self.store


def _state(request: Request) -> ServiceState:
    return request.app.state.textopia


def _version() -> str:
    try:
        return metadata.version("textopia")
    except metadata.PackageNotFoundError:
        return "0.0.0"


# --------------------------------------------------------------------------- errors


def _error(
    status: int, message: str, details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=message, details=details).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_details(errors: Any) -> tuple[str, list[dict[str, Any]]]:
    """A one-line summary of pydantic's errors and their JSON-safe details."""
    details = [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", "")),
         "type": str(err.get("type", ""))}
        for err in errors
    ]
    summary = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details[:3])
    if len(details) > 3:
        summary += f"; and {len(details) - 3} more"
    return f"invalid request: {summary}", details


def _install_error_handlers(app: FastAPI, settings: ServingSettings) -> None:
    retry = {"Retry-After": str(settings.retry_after_s)}

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, details = _validation_details(exc.errors())
        return _error(422, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(TextopiaError)
    async def _textopia(_: Request, exc: TextopiaError) -> JSONResponse:
        return _error(422, str(exc) or "invalid request")

    @app.exception_handler(ModelNotFound)
    async def _not_found(_: Request, exc: ModelNotFound) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(SettingNotForModel)
    async def _not_for_model(_: Request, exc: SettingNotForModel) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(NotLatent)
    async def _not_latent(_: Request, exc: NotLatent) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(ServerBusy)
    async def _busy(_: Request, exc: ServerBusy) -> JSONResponse:
        logger.warning("refused a request: %s", exc)
        return _error(503, "server busy: too many requests in progress, retry later", headers=retry)

    @app.exception_handler(ModelsNotReady)
    async def _not_ready(_: Request, exc: ModelsNotReady) -> JSONResponse:
        return _error(503, str(exc), headers=retry)

    @app.exception_handler(InferenceTimeout)
    async def _timeout(_: Request, exc: InferenceTimeout) -> JSONResponse:
        logger.warning("request %s", exc)
        return _error(504, f"generation {exc}; try fewer prompts or fewer tokens")

    @app.exception_handler(InferenceFailed)
    async def _failed(_: Request, exc: InferenceFailed) -> JSONResponse:
        return _error(500, str(exc))

    @app.exception_handler(EndpointError)
    async def _endpoint(_: Request, exc: EndpointError) -> JSONResponse:
        logger.warning("endpoint call failed: %s", exc.message)
        headers = {"Retry-After": str(exc.retry_after_s or settings.retry_after_s)} if exc.status == 503 else None
        return _error(exc.status, exc.message, exc.details, headers=headers)

    @app.exception_handler(NotThroughEndpoint)
    async def _not_through_endpoint(_: Request, exc: NotThroughEndpoint) -> JSONResponse:
        return _error(501, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error", exc_info=exc)
        return _error(500, "internal server error")


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The model cannot do this."},
    404: {"model": ErrorResponse, "description": "No such model is loaded."},
    409: {"model": ErrorResponse, "description": "The chosen model does not take a given setting "
                                                 "(guidance and steps: latent diffusion models only)."},
    413: {"model": ErrorResponse, "description": "The request body is too large."},
    422: {"model": ErrorResponse, "description": "A field is missing or out of bounds."},
    500: {"model": ErrorResponse, "description": "The model failed (logged on the server)."},
    501: {"model": ErrorResponse, "description": "Not available through an inference endpoint (front only)."},
    502: {"model": ErrorResponse, "description": "The inference endpoint could not be reached or answered "
                                                 "something else (front only)."},
    503: {"model": ErrorResponse, "description": "Busy or still loading; see Retry-After."},
    504: {"model": ErrorResponse, "description": "The per-request timeout ran out."},
}


async def _infer(state: ServiceState, fn: Callable[[], T]) -> Timed[T]:
    """Run ``fn`` through the limiter; map unexpected failures to :class:`InferenceFailed`."""
    try:
        return await state.limiter.run(fn)
    except (ServerBusy, InferenceTimeout, TextopiaError, SettingNotForModel):
        raise
    except Exception as exc:
        logger.error("generation failed", exc_info=exc)
        raise InferenceFailed("generation failed with an internal error (see the server log)") from exc


# --------------------------------------------------------------------------- API


def _generate_work(
    model: LoadedModel, body: GenerateRequest, idea: str, seed: int, banned: list[str],
    drop_pattern: Any, clip: ClipCounter,
) -> tuple[list[PromptOut], int]:
    """Blocking: write the prompts, drop any holding a banned word, count CLIP tokens."""
    extra = {k: v for k, v in (("guidance", body.guidance), ("steps", body.steps)) if v is not None}
    if unsupported_settings(model.generator, extra):
        raise SettingNotForModel(f"guidance and steps apply to latent diffusion models, not to "
                                 f"{model.generator.kind!r}")
    decoding = dict(
        mode=body.mode,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        repetition_penalty=body.repetition_penalty,
        max_new_tokens=body.max_new_tokens,
        min_new_tokens=min(DecodingSettings().min_new_tokens, body.max_new_tokens),
        seed=seed,
        banned_words=tuple(banned),
        min_p=body.min_p,
        idea_boost=body.idea_boost,
    )
    if model.batcher is not None and not extra:  # decoded together with the requests that came with it
        generations = model.batcher.generate(idea or None, body.n, DecodingSettings(**decoding))
    else:
        generations = model.generator.generate(idea or None, body.n, **decoding, **extra)
    kept: list[PromptOut] = []
    dropped = 0
    for generation in generations:
        if contains_banned(generation.prompt, drop_pattern):
            dropped += 1
            continue
        kept.append(
            PromptOut(
                prompt=generation.prompt,
                num_tokens=int(generation.num_tokens),
                clip_tokens=clip(generation.prompt),
                finished=bool(generation.finished),
            )
        )
    return kept, dropped


async def _forward(state: ServiceState, body: GenerateRequest, arrived: float) -> GenerateResponse:
    """The front: send the request to the inference endpoint, check its answer's shape."""
    assert state.endpoint is not None
    payload = body.model_dump(mode="json", exclude_unset=True)
    if payload.get("model") == ENDPOINT_MODEL:  # the name the front lists when the endpoint lists none
        payload.pop("model")
    answer = await state.endpoint.invoke(payload)
    try:
        response = GenerateResponse.model_validate(answer)
    except ValidationError as exc:
        raise EndpointError(502, f"inference endpoint answered with a body that is not a generate answer: "
                                 f"{_validation_details(exc.errors())[0]}") from None
    response.timing.total_s = round(time.perf_counter() - arrived, 6)
    return response


async def _generate(request: Request, body: GenerateRequest) -> GenerateResponse:
    arrived = time.perf_counter()
    state = _state(request)
    if state.endpoint is not None:
        return await _forward(state, body, arrived)
    model = state.require_store().get(body.model)
    idea = " ".join(body.idea.split())
    if body.mode == "continue" and not idea:
        # Continuing nothing is writing from nothing: an unconditional sample.
        body = body.model_copy(update={"mode": "expand"})
    seed = body.seed if body.seed is not None else secrets.randbelow(MAX_SEED + 1)
    user_banned = clean_words(body.banned_words)
    banned = clean_words([*user_banned, *(NSFW_WORDS if body.safe_mode else ())])
    pattern = banned_pattern(banned)
    result = await _infer(
        state, lambda: _generate_work(model, body, idea, seed, banned, pattern, state.clip)
    )
    prompts, dropped = result.value
    return GenerateResponse(
        model=model.name,
        kind=model.kind,
        seed=seed,
        idea=idea,
        mode=body.mode,
        prompts=prompts,
        dropped=dropped,
        timing=Timing(
            queue_s=round(result.queue_s, 6),
            generate_s=round(result.run_s, 6),
            total_s=round(time.perf_counter() - arrived, 6),
        ),
    )


api = APIRouter(prefix="/v1", tags=["prompts"])


@api.post("/generate", response_model=GenerateResponse, responses=_ERRORS)
async def generate(request: Request, body: GenerateRequest) -> GenerateResponse:
    """Write ``n`` text-to-image prompts from a short idea."""
    return await _generate(request, body)


@api.get("/models", response_model=ModelsResponse)
async def list_models(request: Request) -> ModelsResponse:
    """The loaded models, with each one's kind and size."""
    state = _state(request)
    if state.endpoint is not None:
        listed = await state.endpoint.models()
        if listed is not None:
            return ModelsResponse.model_validate(listed)
        return ModelsResponse(default=ENDPOINT_MODEL, models=[
            ModelInfo(name=ENDPOINT_MODEL, kind="endpoint", latent=False, default=True,
                      info={"endpoint": state.endpoint.invocations_url})])
    store = state.store
    if store is None:
        return ModelsResponse(default=None, models=[])
    return ModelsResponse(
        default=store.default,
        models=[
            ModelInfo(
                name=m.name, kind=m.kind, parameters=m.parameters, latent=m.latent,
                default=m.name == store.default, info=m.info,
            )
            for m in store.models.values()
        ],
    )


@api.post("/interpolate", response_model=LatentResponse, responses=_ERRORS)
async def interpolate(request: Request, body: InterpolateRequest) -> LatentResponse:
    """Decode ``steps`` prompts on the path between two prompts' latents (VAE models only)."""
    arrived = time.perf_counter()
    state = _state(request)
    model = state.require_store().get_latent(body.model)
    generator: Any = model.generator
    pattern = banned_pattern(NSFW_WORDS) if body.safe_mode else None
    a, b = " ".join(body.prompt_a.split()), " ".join(body.prompt_b.split())
    result = await _infer(state, lambda: list(generator.interpolate(a, b, body.steps)))
    prompts = [mask_banned(str(p), pattern) for p in result.value]
    return LatentResponse(
        model=model.name, prompts=prompts,
        timing=Timing(queue_s=round(result.queue_s, 6), generate_s=round(result.run_s, 6),
                      total_s=round(time.perf_counter() - arrived, 6)),
    )


@api.post("/variations", response_model=LatentResponse, responses=_ERRORS)
async def variations(request: Request, body: VariationsRequest) -> LatentResponse:
    """Decode ``n`` prompts from latents drawn around one prompt's posterior (VAE models only)."""
    arrived = time.perf_counter()
    state = _state(request)
    model = state.require_store().get_latent(body.model)
    generator: Any = model.generator
    pattern = banned_pattern(NSFW_WORDS) if body.safe_mode else None
    prompt = " ".join(body.prompt.split())
    result = await _infer(
        state,
        lambda: list(generator.variations(prompt, body.n, spread=body.spread, seed=body.seed)),
    )
    kept = [str(p) for p in result.value if not contains_banned(str(p), pattern)]
    return LatentResponse(
        model=model.name, prompts=kept, dropped=len(result.value) - len(kept),
        timing=Timing(queue_s=round(result.queue_s, 6), generate_s=round(result.run_s, 6),
                      total_s=round(time.perf_counter() - arrived, 6)),
    )


# --------------------------------------------------------------------------- health, SageMaker

health = APIRouter(tags=["health"])
_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "Models are still loading."}
}


@health.get("/healthz", response_model=Status)
async def healthz() -> Status:
    """The process is alive (it may still be loading models)."""
    return Status(status="ok")


def _ready(request: Request) -> Status:
    state = _state(request)
    if state.endpoint is not None:
        return Status(status="ready", models=[ENDPOINT_MODEL])  # the front is up; the endpoint has its own checks
    store = state.store
    if store is None or not store.models:
        raise ModelsNotReady("models are still loading")
    return Status(status="ready", models=store.names())


@health.get("/readyz", response_model=Status, responses=_NOT_READY)
async def readyz(request: Request) -> Status:
    """The models are loaded and requests can be served."""
    return _ready(request)


sagemaker = APIRouter(tags=["sagemaker"])


@sagemaker.get("/ping", response_model=Status, responses=_NOT_READY)
async def ping(request: Request) -> Status:
    """SageMaker's health check: 200 once the models are loaded."""
    return _ready(request)


JSONLINES_TYPES = frozenset({"application/jsonlines", "application/jsonl", "application/x-jsonlines"})
MAX_JSONLINES = 256  # request lines per call; batch transform sends one with BatchStrategy=SingleRecord


def _is_jsonlines(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return value.split(b";")[0].strip().decode("latin-1").lower() in JSONLINES_TYPES
    return False


class _JsonLinesRoute(APIRoute):
    """A route that matches only requests whose Content-Type is JSON lines; JSON falls through."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and not _is_jsonlines(scope):
            return Match.NONE, {}
        return match, child


def _line_error(exc: Exception) -> tuple[int, str]:
    """The status and message a JSON line gets for a request that failed on its own."""
    if isinstance(exc, InferenceTimeout):
        return 504, f"generation {exc}; try fewer prompts or fewer tokens"
    if isinstance(exc, EndpointError):
        return exc.status, exc.message
    status = {ModelNotFound: 404, SettingNotForModel: 409, InferenceFailed: 500}.get(type(exc), 422)
    return status, str(exc) or "invalid request"


async def invocations_jsonlines(request: Request) -> Response:
    """Batch transform: one request object a line; one answer a line, in order.

    A line that fails on its own (invalid, unknown model, a setting the model does not take,
    timed out) is answered ``{"error", "status", "line"}`` and the others go on; a busy or
    loading service answers the whole call 503, so SageMaker retries it.
    """
    raw = await request.body()
    try:
        lines = [line for line in raw.decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise TextopiaError("invalid request: the body is not UTF-8 JSON lines") from None
    if not lines:
        raise TextopiaError("invalid request: no request lines (one JSON object a line)")
    if len(lines) > MAX_JSONLINES:
        raise TextopiaError(f"invalid request: {len(lines)} lines, at most {MAX_JSONLINES} per call "
                            f"(use BatchStrategy=SingleRecord or a smaller MaxPayloadInMB)")
    answers = []
    for number, line in enumerate(lines, 1):
        try:
            body = GenerateRequest.model_validate_json(line)
        except ValidationError as exc:
            message, details = _validation_details(exc.errors())
            answers.append({"error": message, "status": 422, "line": number, "details": details})
            continue
        try:
            answers.append((await _generate(request, body)).model_dump(mode="json"))
        except (ServerBusy, ModelsNotReady, NotThroughEndpoint):
            raise
        except EndpointError as exc:
            if exc.status == 503:
                raise
            answers.append({"error": exc.message, "status": exc.status, "line": number})
        except (TextopiaError, ModelNotFound, SettingNotForModel, InferenceTimeout, InferenceFailed) as exc:
            status, message = _line_error(exc)
            answers.append({"error": message, "status": status, "line": number})
    text = "".join(json.dumps(answer, ensure_ascii=False) + "\n" for answer in answers)
    return Response(text, media_type="application/jsonlines")


# Tried first: it matches JSON-lines bodies only, so JSON goes on to the route below.
sagemaker.add_api_route("/invocations", invocations_jsonlines, methods=["POST"], include_in_schema=False,
                        route_class_override=_JsonLinesRoute)


@sagemaker.post("/invocations", response_model=GenerateResponse, responses=_ERRORS)
async def invocations(request: Request, body: GenerateRequest) -> GenerateResponse:
    """SageMaker's inference call: the body and answer of ``POST /v1/generate``.

    With ``Content-Type: application/jsonlines`` (batch transform, ``SplitType=Line``) the body is
    one such request a line and the answer one JSON line per request line, in order; a line that
    fails alone is answered ``{"error", "status", "line"}``.
    """
    return await _generate(request, body)


# --------------------------------------------------------------------------- web page


def _static_files() -> dict[str, bytes]:
    folder = resources.files("textopia.serving") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_FILES}


def _page_router() -> APIRouter:
    files = _static_files()
    page = APIRouter(include_in_schema=False)
    headers = {
        "Content-Security-Policy": PAGE_CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }

    def serve(name: str) -> Callable[[], Any]:
        async def endpoint() -> Response:
            return Response(files[name], media_type=STATIC_FILES[name], headers=headers)

        return endpoint

    page.add_api_route("/", serve("index.html"), methods=["GET"])
    page.add_api_route("/static/app.js", serve("app.js"), methods=["GET"])
    page.add_api_route("/static/app.css", serve("app.css"), methods=["GET"])
    return page


def _install_docs(app: FastAPI) -> None:
    """OpenAPI docs at /docs: Swagger UI from the ``swagger-ui-bundle`` package when installed
    (so the docs work offline too), else FastAPI's default, which loads it from a CDN."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        logger.debug("swagger-ui-bundle not installed: /docs loads Swagger UI from a CDN")
        app.add_api_route("/docs", _cdn_docs, methods=["GET"], include_in_schema=False)
        return
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="Textopia API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)


async def _cdn_docs() -> Response:
    from fastapi.openapi.docs import get_swagger_ui_html

    return get_swagger_ui_html(openapi_url="/openapi.json", title="Textopia API")


# --------------------------------------------------------------------------- factory


def create_app(
    settings: ServingSettings | None = None,
    generators: dict[str, Generator] | None = None,
    *,
    clip_counter: Callable[[str], int] | None = None,
    endpoint: EndpointClient | None = None,
) -> FastAPI:
    """Build the service.

    Args:
        settings: limits and what to load; read from ``TEXTOPIA_*`` environment variables when None.
        generators: models to serve, by name; when given nothing is loaded and the app is ready
            at once (tests, benchmarks, embedding in another program).
        clip_counter: counts a prompt's CLIP tokens; ``textopia.evaluation.clip_tokens``, loaded
            in the background, when None (counts are null until it is ready, or if it fails).
        endpoint: be the front of this inference endpoint: load no model, send generations to it
            (``generators`` must then be None).

    Returns:
        The FastAPI app; models named by ``settings`` load in its lifespan handler.
    """
    settings = settings if settings is not None else ServingSettings()
    state = ServiceState(
        settings=settings,
        limiter=InferenceLimiter(
            settings.max_concurrency, settings.queue_size, settings.request_timeout_s
        ),
        clip=ClipCounter(clip_counter, enabled=settings.clip_tokens and endpoint is None),
        endpoint=endpoint,
    )
    if generators is not None and endpoint is not None:
        raise ValueError("a front (endpoint) serves no generators of its own")
    if generators is not None:
        state.store = ModelStore(generators, default=settings.default_model)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.clip.start()  # in the background: never blocks startup or a request
        if state.store is None and state.endpoint is None:
            started = time.perf_counter()
            state.store = await anyio.to_thread.run_sync(load_store, settings)
            logger.info(
                "ready in %.1f s: models %s (default %s)",
                time.perf_counter() - started, state.store.names(), state.store.default,
            )
        batchers = attach_batchers(state.store, settings) if state.store is not None else []
        if batchers and settings.batch_requests > settings.max_concurrency:
            # The limiter's threads now mostly wait on a batcher, which decodes them together.
            state.limiter.shutdown()
            state.limiter = InferenceLimiter(settings.batch_requests, settings.queue_size, settings.request_timeout_s)
        try:
            yield
        finally:
            state.limiter.shutdown()
            for batcher in batchers:
                batcher.close()
            if state.endpoint is not None:
                await state.endpoint.aclose()

    app = FastAPI(
        title="Textopia",
        version=_version(),
        summary="Text-to-image prompts from a short idea.",
        description="Write prompts (`POST /v1/generate`), list models, explore a VAE's latent "
        "space, and the SageMaker contract (`GET /ping`, `POST /invocations`). Every error "
        'is JSON `{"error": message}`.',
        lifespan=lifespan,
        docs_url=None,  # see _install_docs
        redoc_url=None,
    )
    app.state.textopia = state
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: errors and refusals carry the headers too
    _install_error_handlers(app, settings)
    app.include_router(api)
    app.include_router(health)
    app.include_router(sagemaker)
    app.include_router(_page_router())
    _install_docs(app)
    return app


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("textopia").setLevel(level.upper())


def run_server(
    host: str | None = None, port: int | None = None, model_paths: list[str] | None = None,
    endpoint: EndpointClient | None = None,
) -> None:
    """Serve until interrupted: uvicorn on ``host:port`` with the default model and ``model_paths``.

    Args:
        host: address to listen on; ``TEXTOPIA_HOST`` (default 127.0.0.1) when None.
        port: TCP port; ``TEXTOPIA_PORT`` (default 8000) when None.
        model_paths: checkpoint dirs or model names to load besides those in ``TEXTOPIA_MODELS``.
        endpoint: serve as the front of this inference endpoint, loading no model.
    """
    import uvicorn

    settings = ServingSettings()
    update: dict[str, Any] = {"models": [*settings.models, *(model_paths or [])]}
    if host is not None:
        update["host"] = host
    if port is not None:
        update["port"] = port
    settings = settings.model_copy(update=update)
    _configure_logging(settings.log_level)
    app = create_app(settings, endpoint=endpoint)
    logger.info("serving on http://%s:%d%s", settings.host, settings.port,
                f", generating through {endpoint.invocations_url}" if endpoint else "")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=int(settings.request_timeout_s),
    )
