"""The service's errors: its exception classes, the JSON error body and the handlers that map each
exception to a status.

Every error is JSON ``{"error": message}`` (with ``details`` for invalid fields); tracebacks go
to the log, never to clients.

::

    400 NotLatent              404 ModelNotFound         409 SettingNotForModel
    408 the body did not arrive in time (middleware)     413 the body is too large (middleware), TooMuchWork
    422 invalid field, TextopiaError                     500 InferenceFailed, anything unexpected
    501 NotThroughEndpoint     503 ServerBusy, ModelsNotReady (with Retry-After)
    504 InferenceTimeout       EndpointError: its own status (502 when the endpoint failed)
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from textopia.generation.base import TextopiaError
from textopia.serving.endpoint_client import EndpointError
from textopia.serving.limiter import InferenceTimeout, ServerBusy
from textopia.serving.models import ModelNotFound, NotLatent
from textopia.serving.schemas import ErrorResponse
from textopia.serving.settings import ServingSettings

logger = logging.getLogger(__name__)


class ModelsNotReady(Exception):
    """The models are still loading (answered 503)."""


class SettingNotForModel(Exception):
    """A setting the chosen model does not take, e.g. guidance for a GPT (answered 409)."""


class SettingsConflict(SettingNotForModel):
    """Settings each within its bound that do not go together: ``n`` x ``candidates`` over the
    rows one call may draw (:data:`textopia.generation.config.MAX_ROWS`; answered 409)."""


class InferenceFailed(Exception):
    """A generator raised something other than TextopiaError (answered 500, logged in full)."""


class NotThroughEndpoint(Exception):
    """The front has no such call: the SageMaker contract carries generation only (answered 501)."""


class TooMuchWork(Exception):
    """A JSON-lines call asks for more than one call may: lines, sampled rows or tokens (answered 413)."""


# The error answers a route may give, for its OpenAPI ``responses``.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The model cannot do this."},
    404: {"model": ErrorResponse, "description": "No such model is loaded."},
    409: {"model": ErrorResponse, "description": "The chosen model does not take a given setting "
                                                 "(guidance, steps, lm_weight: latent diffusion models only), "
                                                 "or two settings do not go together (n x candidates over "
                                                 "the rows one call may draw)."},
    408: {"model": ErrorResponse, "description": "The request body did not arrive in time."},
    413: {"model": ErrorResponse, "description": "The request body is too large."},
    422: {"model": ErrorResponse, "description": "A field is missing or out of bounds."},
    500: {"model": ErrorResponse, "description": "The model failed (logged on the server)."},
    501: {"model": ErrorResponse, "description": "Not available through an inference endpoint (front only)."},
    502: {"model": ErrorResponse, "description": "The inference endpoint could not be reached or answered "
                                                 "something else (front only)."},
    503: {"model": ErrorResponse, "description": "Busy or still loading; see Retry-After."},
    504: {"model": ErrorResponse, "description": "The per-request timeout ran out."},
}
NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "Models are still loading."}
}


def error_response(
    status: int, message: str, details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The JSON error answer ``{"error": message}``, with ``details`` when given."""
    body = ErrorResponse(error=message, details=details).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


def validation_details(errors: Any) -> tuple[str, list[dict[str, Any]]]:
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


def install_error_handlers(app: FastAPI, settings: ServingSettings) -> None:
    """Answer every exception as JSON ``{"error": message}`` with its status (table above)."""
    retry = {"Retry-After": str(settings.retry_after_s)}

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, details = validation_details(exc.errors())
        return error_response(422, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(TextopiaError)
    async def _textopia(_: Request, exc: TextopiaError) -> JSONResponse:
        return error_response(422, str(exc) or "invalid request")

    @app.exception_handler(ModelNotFound)
    async def _not_found(_: Request, exc: ModelNotFound) -> JSONResponse:
        return error_response(404, str(exc))

    @app.exception_handler(SettingNotForModel)
    async def _not_for_model(_: Request, exc: SettingNotForModel) -> JSONResponse:
        return error_response(409, str(exc))

    @app.exception_handler(NotLatent)
    async def _not_latent(_: Request, exc: NotLatent) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(ServerBusy)
    async def _busy(_: Request, exc: ServerBusy) -> JSONResponse:
        logger.warning("refused a request: %s", exc)
        return error_response(503, "server busy: too many requests in progress, retry later", headers=retry)

    @app.exception_handler(ModelsNotReady)
    async def _not_ready(_: Request, exc: ModelsNotReady) -> JSONResponse:
        return error_response(503, str(exc), headers=retry)

    @app.exception_handler(InferenceTimeout)
    async def _timeout(_: Request, exc: InferenceTimeout) -> JSONResponse:
        logger.warning("request %s", exc)
        return error_response(504, f"generation {exc}; try fewer prompts or fewer tokens")

    @app.exception_handler(InferenceFailed)
    async def _failed(_: Request, exc: InferenceFailed) -> JSONResponse:
        return error_response(500, str(exc))

    @app.exception_handler(EndpointError)
    async def _endpoint(_: Request, exc: EndpointError) -> JSONResponse:
        logger.warning("endpoint call failed: %s", exc.message)
        headers = {"Retry-After": str(exc.retry_after_s or settings.retry_after_s)} if exc.status == 503 else None
        return error_response(exc.status, exc.message, exc.details, headers=headers)

    @app.exception_handler(TooMuchWork)
    async def _too_much(_: Request, exc: TooMuchWork) -> JSONResponse:
        return error_response(413, f"too much for one call: {exc}")

    @app.exception_handler(NotThroughEndpoint)
    async def _not_through_endpoint(_: Request, exc: NotThroughEndpoint) -> JSONResponse:
        return error_response(501, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error", exc_info=exc)
        return error_response(500, "internal server error")
