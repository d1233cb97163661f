"""The front's client of an inference endpoint that speaks the SageMaker contract.

``textopia serve --endpoint URL`` loads no model: it serves the web page and the JSON API and
sends each generation to ``URL`` as ``POST /invocations`` (the body of ``POST /v1/generate``)::

    browser ──▶ front (textopia serve --endpoint URL) ──POST /invocations──▶ endpoint
                 validates the body                        another `textopia serve`, a SageMaker
                 retries 503 with backoff                  endpoint (signed with SigV4), or an
                 maps failures to JSON errors              API Gateway in front of the Lambda

``URL`` is a base (``http://10.0.0.5:8080``; ``/invocations`` is appended) or the full URL of the
call (one ending in ``/invocations``). A URL on ``runtime.sagemaker.<region>.amazonaws.com`` is
signed with the AWS credentials of the process (``pip install 'textopia[aws]'``).

Failures become :class:`EndpointError` with the status the front answers: the endpoint's own
4xx, 500, 503 and 504 answers pass through with its message; an endpoint that cannot be reached
is 502, one that does not answer in time 504, one that answers something else 502.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

logger = logging.getLogger(__name__)

ENDPOINT_MODEL = "endpoint"  # the one model a front lists when the endpoint cannot list its own
PASSED_THROUGH = frozenset({400, 404, 409, 413, 422, 500, 503, 504})
_SAGEMAKER_RUNTIME = re.compile(r"^runtime(?:-fips)?\.sagemaker\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


class EndpointError(Exception):
    """The endpoint failed a call.

    Attributes:
        status: the HTTP status the front answers with.
        message: one line for people, naming the endpoint's own message when it sent one.
        details: the endpoint's ``details`` (invalid fields), if any.
        retry_after_s: seconds to wait before retrying (503 only), if known.
    """

    def __init__(self, status: int, message: str, details: list[dict[str, Any]] | None = None,
                 retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.retry_after_s = retry_after_s


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def _error_message(response: httpx.Response) -> tuple[str, list[dict[str, Any]] | None]:
    """The error an endpoint sent: Textopia's ``{"error"}``, AWS's ``{"message"}``, or the text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "message", "Message"):
            if isinstance(body.get(key), str):
                details = body.get("details") if isinstance(body.get("details"), list) else None
                return " ".join(body[key].split()), details
    text = " ".join(response.text.split())
    return (text[:200] + ("…" if len(text) > 200 else "")) or "(empty body)", None


@dataclass
class EndpointClient:
    """Calls an inference endpoint, with timeouts and retries.

    Args:
        url: the endpoint's base URL, or the full URL of its invocations call.
        timeout_s: the longest one call may take, in seconds (connect, send, generate, answer).
        connect_timeout_s: the longest connecting may take, in seconds.
        retries: calls retried after a 503 (or a refused connection) before giving up.
        backoff_s: the first wait before a retry, in seconds; doubled at each retry. A 503's
            ``Retry-After`` is honoured when longer, up to ``max_backoff_s``.
        max_backoff_s: the longest wait between two tries, in seconds.
        transport: an httpx transport (tests); the network's when None.
    """

    url: str
    timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    transport: httpx.AsyncBaseTransport | None = None
    _client: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"endpoint URL must be http(s)://host[:port][/path], got {self.url!r}")
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0 or self.retries < 0 or self.backoff_s < 0:
            raise ValueError("endpoint timeouts must be > 0, retries and backoff >= 0")
        match = _SAGEMAKER_RUNTIME.match(parts.hostname or "")
        self.region = match.group(1) if match else None

    @property
    def invocations_url(self) -> str:
        """Where generations are sent."""
        url = self.url.rstrip("/")
        return url if url.endswith("/invocations") else url + "/invocations"

    @property
    def base_url(self) -> str:
        """The endpoint's base URL (its ``/invocations`` cut off)."""
        url = self.url.rstrip("/")
        return url[: -len("/invocations")] if url.endswith("/invocations") else url

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s)
            self._client = httpx.AsyncClient(timeout=timeout, transport=self.transport, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _headers(self, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.region is None:
            return headers
        return _sigv4_headers(self.invocations_url, body, self.region, headers)

    async def invoke(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to the endpoint's ``/invocations``; return its JSON answer.

        Raises:
            EndpointError: the endpoint failed, could not be reached or did not answer in time
                (after the retries, for 503 and refused connections).
        """
        payload = json.dumps(body).encode()
        wait = self.backoff_s
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = await self._http().post(self.invocations_url, content=payload,
                                                   headers=self._headers(payload))
            except httpx.ConnectError as exc:
                if last:
                    raise EndpointError(502, f"inference endpoint unreachable at {self.invocations_url}: "
                                             f"{exc or type(exc).__name__}") from None
                logger.warning("endpoint unreachable (%s); retrying in %.1f s", exc, wait)
            except httpx.TimeoutException:
                raise EndpointError(504, f"inference endpoint did not answer within {self.timeout_s:g} s") from None
            except httpx.HTTPError as exc:
                raise EndpointError(502, f"inference endpoint call failed: {type(exc).__name__}: {exc}") from None
            else:
                if response.status_code == 503 and not last:
                    hinted = _retry_after(response)
                    wait = min(max(wait, hinted or 0.0), self.max_backoff_s)
                    logger.warning("endpoint busy (503); retry %d of %d in %.1f s", attempt + 1, self.retries, wait)
                else:
                    return self._answer(response)
            await anyio.sleep(wait)
            wait = min(wait * 2, self.max_backoff_s)
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(self, response: httpx.Response) -> dict[str, Any]:
        if response.is_success:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                raise EndpointError(502, f"inference endpoint answered {response.status_code} with a body that "
                                         f"is not a JSON object")
            return answer
        message, details = _error_message(response)
        status = response.status_code if response.status_code in PASSED_THROUGH else 502
        retry = _retry_after(response)
        raise EndpointError(status, f"inference endpoint answered {response.status_code}: {message}", details,
                            retry_after_s=int(retry) if retry is not None else None)

    async def models(self) -> dict[str, Any] | None:
        """The endpoint's ``GET /v1/models`` answer when it is a Textopia service; None otherwise."""
        if self.region is not None:
            return None  # a SageMaker endpoint answers /invocations only
        try:
            response = await self._http().get(self.base_url + "/v1/models", timeout=self.connect_timeout_s)
            answer = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        return answer if isinstance(answer, dict) and isinstance(answer.get("models"), list) else None


def _sigv4_headers(url: str, body: bytes, region: str, headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus AWS Signature V4 for ``sagemaker`` in ``region``, with the process's credentials.

    Raises:
        EndpointError: botocore is missing (500) or there are no AWS credentials (500).
    """
    try:
        import botocore.session
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
    except ImportError:
        raise EndpointError(500, "calling a SageMaker endpoint needs botocore: pip install 'textopia[aws]'") from None
    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise EndpointError(500, "no AWS credentials to sign the call to the SageMaker endpoint with")
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(credentials.get_frozen_credentials(), "sagemaker", region).add_auth(request)
    return dict(request.headers.items())
