"""AWS Lambda handler between API Gateway and the SageMaker endpoint.

::

    front ──POST /invocations──▶ API Gateway ──proxy event──▶ handler ──invoke_endpoint──▶ endpoint
          ◀── the answer, or {"error"} ───────────────────────┘        (sagemaker-runtime, boto3)

The handler checks the body against the API's own schema
(:class:`~textopia.serving.schemas.GenerateRequest`, so a bad request never reaches the endpoint),
calls ``sagemaker-runtime`` ``InvokeEndpoint`` and returns the endpoint's answer unchanged.
Errors are JSON ``{"error": message}`` with the status the service itself would give: the
endpoint's own (4xx, 503, 504) when it answered one (SageMaker reports it as ``ModelError``),
503 when SageMaker throttles, 504 when the call times out, 502 for anything else.

Settings (environment variables of the function):

    TEXTOPIA_SAGEMAKER_ENDPOINT       the endpoint's name (required)
    TEXTOPIA_SAGEMAKER_ENDPOINT_URL   another sagemaker-runtime URL (tests: a local endpoint)
    TEXTOPIA_LAMBDA_READ_TIMEOUT_S    seconds to wait for the answer (default 60; keep it under
                                      the function's own timeout and API Gateway's 29 s, or raise those)

Import cost: pydantic, boto3 and the schemas; no torch, no model. Package it with
``pip install --no-deps . -t pkg && pip install 'pydantic>=2.5' -t pkg`` (boto3 is in the runtime).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import os
from typing import Any

from pydantic import ValidationError

from textopia.serving.schemas import GenerateRequest

logger = logging.getLogger(__name__)

ENDPOINT_ENV = "TEXTOPIA_SAGEMAKER_ENDPOINT"
ENDPOINT_URL_ENV = "TEXTOPIA_SAGEMAKER_ENDPOINT_URL"
READ_TIMEOUT_ENV = "TEXTOPIA_LAMBDA_READ_TIMEOUT_S"
PASSED_THROUGH = frozenset({400, 404, 409, 413, 422, 500, 503, 504})
MAX_BODY_BYTES = 16_384  # the service's own default limit


def _response(status: int, body: dict[str, Any] | str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway proxy response."""
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return {"statusCode": status, "headers": {"Content-Type": "application/json", **(headers or {})},
            "body": text, "isBase64Encoded": False}


def _error(status: int, message: str, details: list[dict[str, Any]] | None = None,
           headers: dict[str, str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = details
    return _response(status, body, headers)


def _method(event: dict[str, Any]) -> str:
    """The HTTP method of a REST API (v1) or an HTTP API (v2) proxy event."""
    if "httpMethod" in event:
        return str(event["httpMethod"]).upper()
    return str(event.get("requestContext", {}).get("http", {}).get("method", "POST")).upper()


def _body(event: dict[str, Any]) -> bytes:
    """The raw request body of a proxy event.

    Raises:
        ValueError: the body is marked base64 and is not.
    """
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the body is marked base64-encoded but is not") from None
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _validation_error(exc: ValidationError) -> dict[str, Any]:
    """422 in the service's own words: ``invalid request: body.n: ...`` and the details."""
    details = [{"loc": ["body", *(str(p) for p in e.get("loc", ()))], "msg": str(e.get("msg", "")),
                "type": str(e.get("type", ""))} for e in exc.errors()]
    summary = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details[:3])
    if len(details) > 3:
        summary += f"; and {len(details) - 3} more"
    return _error(422, f"invalid request: {summary}", details)


def _endpoint_message(raw: Any) -> str:
    """The error an endpoint sent (``{"error"}`` from Textopia), else its text, on one line."""
    text = raw if isinstance(raw, str) else ""
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            text = parsed["error"]
    except ValueError:
        pass
    text = " ".join(text.split())
    return text[:300] or "(no message)"


def _client_error(exc: Any, endpoint: str) -> dict[str, Any]:
    """A botocore ``ClientError`` of InvokeEndpoint as the service's JSON error."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    if code == "ModelError":  # the container answered non-2xx: its status and message
        original = exc.response.get("OriginalStatusCode") or error.get("OriginalStatusCode")
        status = int(original) if str(original or "").isdigit() else 502
        message = _endpoint_message(exc.response.get("OriginalMessage") or error.get("OriginalMessage")
                                    or error.get("Message"))
        headers = {"Retry-After": "2"} if status == 503 else None
        return _error(status if status in PASSED_THROUGH else 502,
                      f"inference endpoint answered {status}: {message}", headers=headers)
    if code in ("ThrottlingException", "ServiceUnavailable", "ModelNotReadyException"):
        return _error(503, f"inference endpoint busy ({code}): {error.get('Message', '')}".rstrip(": "),
                      headers={"Retry-After": "2"})
    logger.error("invoke_endpoint %s failed: %s", endpoint, exc)
    return _error(502, f"inference endpoint call failed ({code or 'error'}): {error.get('Message', exc)}")


def handle(event: dict[str, Any], client: Any, endpoint: str) -> dict[str, Any]:
    """Answer one API Gateway proxy event by calling ``endpoint`` through ``client``.

    Args:
        event: the proxy event (REST API v1 or HTTP API v2); its body is a ``POST /v1/generate`` body.
        client: a boto3 ``sagemaker-runtime`` client.
        endpoint: the SageMaker endpoint's name.

    Returns:
        the proxy response: ``statusCode``, ``headers``, ``body`` (JSON text).
    """
    from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

    if _method(event) != "POST":
        return _error(405, "method not allowed: POST a generate request", headers={"Allow": "POST"})
    try:
        raw = _body(event)
    except ValueError as exc:
        return _error(400, f"invalid request: {exc}")
    if len(raw) > MAX_BODY_BYTES:
        return _error(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        request = GenerateRequest.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        return _validation_error(exc)
    payload = request.model_dump(mode="json", exclude_unset=True)
    try:
        answer = client.invoke_endpoint(EndpointName=endpoint, ContentType="application/json",
                                        Accept="application/json", Body=json.dumps(payload).encode())
        text = answer["Body"].read().decode("utf-8")
    except ClientError as exc:
        return _client_error(exc, endpoint)
    except (ReadTimeoutError, ConnectTimeoutError):
        return _error(504, "inference endpoint did not answer in time")
    except BotoCoreError as exc:
        logger.error("invoke_endpoint %s failed: %s", endpoint, exc)
        return _error(502, f"inference endpoint call failed: {type(exc).__name__}: {exc}")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return _error(502, "inference endpoint answered with a body that is not a JSON object")
    return _response(200, text)


@functools.lru_cache(maxsize=1)
def _default_client() -> Any:
    """One sagemaker-runtime client per Lambda container, reused across warm invocations."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=float(os.environ.get(READ_TIMEOUT_ENV, "60")),
                    retries={"max_attempts": 3, "mode": "standard"})  # standard: retries throttling and 5xx
    return boto3.client("sagemaker-runtime", endpoint_url=os.environ.get(ENDPOINT_URL_ENV) or None, config=config)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda entry point (``textopia.serving.aws_lambda.handler``)."""
    endpoint = os.environ.get(ENDPOINT_ENV)
    if not endpoint:
        logger.error("%s is not set", ENDPOINT_ENV)
        return _error(500, f"the function is not configured: set {ENDPOINT_ENV} to the endpoint's name")
    return handle(event, _default_client(), endpoint)
