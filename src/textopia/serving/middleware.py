"""Pure ASGI middlewares: bounds on the request body's size and time (answered 413 and 408 as
JSON), and the security headers every response carries (JSON, the docs, errors; the page sets
its own)."""

from __future__ import annotations

import json

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimitMiddleware:
    """Bound a request's body in size and in time, answered as JSON and closing the connection.

    Over ``max_bytes``: 413, at once when Content-Length says so, else while reading. Not all
    arrived within ``timeout_s`` of the request's headers: 408 (a slow or stalled client would
    otherwise hold its connection and a worker's request open for as long as it likes).

    Args:
        app: the ASGI app it wraps.
        max_bytes: the largest body accepted, in bytes.
        timeout_s: the longest the whole body may take to arrive, in seconds.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def _refuse(self, send: Send, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body is larger than {self.max_bytes} bytes"
        too_slow = f"request body not received within {self.timeout_s:g} s"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await self._refuse(send, 400, "invalid Content-Length header")
                    return
                if length > self.max_bytes:
                    await self._refuse(send, 413, too_large)
                    return

        deadline = anyio.current_time() + self.timeout_s
        received = 0
        body_done = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # later messages (the disconnect) may come whenever they come
                return await receive()
            with anyio.move_on_at(deadline):
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    body_done = not message.get("more_body", False)
                    if received > self.max_bytes:
                        # FastAPI re-raises HTTPException from body reading; the app's handler answers.
                        raise HTTPException(status_code=413, detail=too_large, headers={"Connection": "close"})
                return message
            raise HTTPException(status_code=408, detail=too_slow, headers={"Connection": "close"})

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except HTTPException as exc:
            if exc.status_code not in (408, 413) or started:
                raise
            await self._refuse(send, exc.status_code, str(exc.detail))


#: Content-Security-Policy of responses that are not pages (JSON, plain text): load nothing.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: Content-Security-Policy of the Swagger UI at /docs: its own assets (or the CDN FastAPI uses
#: without swagger-ui-bundle) and the inline script that starts it.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: Sent with every response unless the endpoint set the header itself.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeadersMiddleware:
    """Add :data:`SECURITY_HEADERS` and a Content-Security-Policy to every HTTP response.

    Headers an endpoint set itself (the page's stricter policy) are kept. /docs gets
    :data:`DOCS_CSP`, everything else :data:`API_CSP`.

    Args:
        app: the ASGI app it wraps.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        csp = DOCS_CSP if path == "/docs" or path.startswith("/docs/") else API_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in (*SECURITY_HEADERS, (b"content-security-policy", csp.encode())):
                    if name not in present:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
