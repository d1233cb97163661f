"""Health checks (``/healthz``, ``/readyz``) and the SageMaker contract (``GET /ping``,
``POST /invocations``), the latter with the body and answer of ``POST /v1/generate``.

``POST /invocations`` also takes JSON lines (batch transform, ``SplitType=Line``): a route that
matches only a JSON-lines Content-Type is tried first, so JSON goes on to the ordinary route.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.routing import Match
from starlette.types import Scope

from textopia.generation.base import TextopiaError
from textopia.serving.deps import ServiceState, StateDep
from textopia.serving.endpoint_client import ENDPOINT_MODEL, EndpointError
from textopia.serving.errors import (
    ERRORS,
    NOT_READY,
    InferenceFailed,
    ModelsNotReady,
    NotThroughEndpoint,
    SettingNotForModel,
    validation_details,
)
from textopia.serving.limiter import InferenceTimeout, ServerBusy
from textopia.serving.models import ModelNotFound
from textopia.serving.routes.prompts import generate_prompts
from textopia.serving.schemas import GenerateRequest, GenerateResponse, Status

JSONLINES_TYPES = frozenset({"application/jsonlines", "application/jsonl", "application/x-jsonlines"})
MAX_JSONLINES = 256  # request lines per call; batch transform sends one with BatchStrategy=SingleRecord

health_router = APIRouter(tags=["health"])
router = APIRouter(tags=["sagemaker"])


# --------------------------------------------------------------------------- health


@health_router.get("/healthz", response_model=Status)
async def healthz() -> Status:
    """The process is alive (it may still be loading models)."""
    return Status(status="ok")


def _ready(state: ServiceState) -> Status:
    if state.endpoint is not None:
        return Status(status="ready", models=[ENDPOINT_MODEL])  # the front is up; the endpoint has its own checks
    store = state.store
    if store is None or not store.models:
        raise ModelsNotReady("models are still loading")
    return Status(status="ready", models=store.names())


@health_router.get("/readyz", response_model=Status, responses=NOT_READY)
async def readyz(state: StateDep) -> Status:
    """The models are loaded and requests can be served."""
    return _ready(state)


# --------------------------------------------------------------------------- SageMaker


@router.get("/ping", response_model=Status, responses=NOT_READY)
async def ping(state: StateDep) -> Status:
    """SageMaker's health check: 200 once the models are loaded."""
    return _ready(state)


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


async def invocations_jsonlines(request: Request, state: StateDep) -> Response:
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
            message, details = validation_details(exc.errors())
            answers.append({"error": message, "status": 422, "line": number, "details": details})
            continue
        try:
            answers.append((await generate_prompts(state, body)).model_dump(mode="json"))
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
router.add_api_route("/invocations", invocations_jsonlines, methods=["POST"], include_in_schema=False,
                     route_class_override=_JsonLinesRoute)


@router.post("/invocations", response_model=GenerateResponse, responses=ERRORS)
async def invocations(state: StateDep, body: GenerateRequest) -> GenerateResponse:
    """SageMaker's inference call: the body and answer of ``POST /v1/generate``.

    With ``Content-Type: application/jsonlines`` (batch transform, ``SplitType=Line``) the body is
    one such request a line and the answer one JSON line per request line, in order; a line that
    fails alone is answered ``{"error", "status", "line"}``.
    """
    return await generate_prompts(state, body)
