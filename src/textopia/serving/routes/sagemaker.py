"""Health checks (``/healthz``, ``/readyz``) and the SageMaker contract (``GET /ping``,
``POST /invocations``), the latter with the body and answer of ``POST /v1/generate``.

``POST /invocations`` also takes JSON lines (batch transform, ``SplitType=Line``): a route that
matches only a JSON-lines Content-Type is tried first, so JSON goes on to the ordinary route. Such a
call is bounded as a whole, not line by line: its lines, sampled rows and tokens together (413),
and one deadline for all its lines (504 for those not answered by then).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.routing import Match
from starlette.types import Scope

from textopia.generation.base import TextopiaError
from textopia.generation.config import LATENT_MIN_POOL, MIN_POOL, GenerationConfig, rows_per_round
from textopia.serving.deps import ServiceState, StateDep
from textopia.serving.endpoint_client import ENDPOINT_MODEL, EndpointError
from textopia.serving.errors import (
    ERRORS,
    NOT_READY,
    InferenceFailed,
    ModelsNotReady,
    NotThroughEndpoint,
    SettingNotForModel,
    TooMuchWork,
    validation_details,
)
from textopia.serving.limiter import InferenceTimeout, ServerBusy
from textopia.serving.models import ModelNotFound
from textopia.serving.routes.prompts import generate_prompts
from textopia.serving.schemas import GenerateRequest, GenerateResponse, Status
from textopia.serving.settings import ServingSettings

JSONLINES_TYPES = frozenset({"application/jsonlines", "application/jsonl", "application/x-jsonlines"})
MAX_JSONLINES = 256  # request lines per call; batch transform sends one with BatchStrategy=SingleRecord

logger = logging.getLogger(__name__)

health_router = APIRouter(tags=["health"])
router = APIRouter(tags=["sagemaker"])


# --------------------------------------------------------------------------- health


@health_router.get("/healthz", response_model=Status)
async def healthz(state: StateDep) -> Status:
    """The process is alive; ``models`` lists those loaded so far, as ``/readyz`` does once all
    are (none while they load)."""
    if state.endpoint is not None:
        return Status(status="ok", models=[ENDPOINT_MODEL])
    store = state.store
    return Status(status="ok", models=store.names() if store is not None and store.models else [])


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
    status = next((code for kind, code in ((ModelNotFound, 404), (SettingNotForModel, 409), (InferenceFailed, 500))
                   if isinstance(exc, kind)), 422)
    return status, str(exc) or "invalid request"


def _parse_line(number: int, line: str) -> GenerateRequest | dict[str, Any]:
    """A line's request, or its answer when it is not a valid one."""
    try:
        return GenerateRequest.model_validate_json(line)
    except ValidationError as exc:
        message, details = validation_details(exc.errors())
        return {"error": message, "status": 422, "line": number, "details": details}


#: The fewest rows a line is counted for: the larger of the families' floors.
_FLOOR = max(MIN_POOL, LATENT_MIN_POOL)


def _check_work(bodies: list[GenerateRequest], settings: ServingSettings) -> None:
    """Refuse a call whose lines together ask for more than one call may: rows or tokens.

    A line's sampled rows are :func:`~textopia.generation.config.rows_per_round`'s, ``n ×
    candidates`` and at least the larger of the families' floors (:data:`_FLOOR`: a line is counted
    before its model is known; a line that leaves candidates to the model counts the largest
    default, :class:`GenerationConfig`'), its tokens ``rows × max_new_tokens`` (at most: a
    prompt may end sooner).

    Raises:
        TooMuchWork: the rows or the tokens, summed over the lines, are over the settings' bounds.
    """
    per_line = [rows_per_round(body.n, GenerationConfig() if body.candidates is None
                               else GenerationConfig(candidates=body.candidates), _FLOOR)
                for body in bodies]
    rows = sum(per_line)
    tokens = sum(r * body.max_new_tokens for r, body in zip(per_line, bodies))
    advice = "send fewer lines per call (BatchStrategy=SingleRecord) or lighter ones"
    if rows > settings.max_request_rows:
        raise TooMuchWork(f"the lines ask for {rows} sampled rows (n × candidates, at least {_FLOOR} a line), at most "
                          f"{settings.max_request_rows} per call (max_request_rows); {advice}")
    if tokens > settings.max_request_tokens:
        raise TooMuchWork(f"the lines ask for {tokens} tokens (rows × max_new_tokens), at most "
                          f"{settings.max_request_tokens} per call (max_request_tokens); {advice}")


async def _answer_line(state: ServiceState, number: int, body: GenerateRequest) -> dict[str, Any]:
    """One line's answer: its prompts, or ``{"error", "status", "line"}`` when it failed alone.

    Raises:
        ServerBusy, ModelsNotReady, NotThroughEndpoint, EndpointError (503): the whole call fails.
    """
    try:
        return (await generate_prompts(state, body)).model_dump(mode="json")
    except (ServerBusy, ModelsNotReady, NotThroughEndpoint):
        raise
    except EndpointError as exc:
        if exc.status == 503:
            raise
        return {"error": exc.message, "status": exc.status, "line": number}
    except (TextopiaError, ModelNotFound, SettingNotForModel, InferenceTimeout, InferenceFailed) as exc:
        status, message = _line_error(exc)
        return {"error": message, "status": status, "line": number}


async def _answer_lines(
    request: Request, state: ServiceState, items: list[tuple[int, GenerateRequest | dict[str, Any]]],
    deadline: float,
) -> list[dict[str, Any]] | None:
    """Answer the lines in order until ``deadline`` (anyio's clock); None when the client has gone.

    Lines not answered by the deadline are answered 504; the line running then is abandoned (its
    thread finishes, holding its slot in the limiter) and the rest are never started. A client that
    disconnects cancels the call the same way.
    """
    answers: list[dict[str, Any]] = []
    gone = False
    failure: Exception | None = None
    async with anyio.create_task_group() as group:

        async def cancel_on_disconnect() -> None:
            nonlocal gone
            while (await request.receive())["type"] != "http.disconnect":
                pass  # the body was read already: the next message is the disconnect
            gone = True
            group.cancel_scope.cancel()

        group.start_soon(cancel_on_disconnect)
        with anyio.move_on_at(deadline):
            try:
                for number, item in items:
                    answers.append(item if isinstance(item, dict) else await _answer_line(state, number, item))
            except Exception as exc:  # raised outside the task group, so the handlers get it, not a group
                failure = exc
        group.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if gone:
        logger.info("client went away: %d of %d lines answered, the rest not started", len(answers), len(items))
        return None
    if len(answers) < len(items):
        timeout_s = state.settings.request_timeout_s
        logger.warning("JSON-lines call ran out of its %g s: %d of %d lines answered", timeout_s, len(answers),
                       len(items))
        late = {"error": f"not answered within the call's {timeout_s:g} s (request_timeout_s); send fewer "
                         "lines per call", "status": 504}
        answers.extend({**late, "line": number} for number, _ in items[len(answers):])
    return answers


async def invocations_jsonlines(request: Request, state: StateDep) -> Response:
    """Batch transform: one request object a line; one answer a line, in order.

    A line that fails on its own (invalid, unknown model, a setting the model does not take) is
    answered ``{"error", "status", "line"}`` and the others go on; a busy or loading service
    answers the whole call 503, so SageMaker retries it. The call has one budget, checked before
    any line runs (lines, sampled rows and tokens, summed: 413 beyond it), and one deadline,
    ``request_timeout_s`` from its arrival: lines not answered by then are answered 504, and the
    work stops (no further line starts) then, or as soon as the client disconnects.
    """
    deadline = anyio.current_time() + state.settings.request_timeout_s
    raw = await request.body()
    try:
        lines = [line for line in raw.decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise TextopiaError("invalid request: the body is not UTF-8 JSON lines") from None
    if not lines:
        raise TextopiaError("invalid request: no request lines (one JSON object a line)")
    if len(lines) > MAX_JSONLINES:
        raise TooMuchWork(f"{len(lines)} lines, at most {MAX_JSONLINES} per call "
                          f"(use BatchStrategy=SingleRecord or a smaller MaxPayloadInMB)")
    items = [(number, _parse_line(number, line)) for number, line in enumerate(lines, 1)]
    _check_work([item for _, item in items if isinstance(item, GenerateRequest)], state.settings)
    answers = await _answer_lines(request, state, items, deadline)
    if answers is None:
        return Response(status_code=499)  # nobody reads it: nginx's "client closed request"
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
