"""A pure ASGI middleware that counts and times every HTTP request for ``GET /metrics``:
``textopia_http_requests_total`` and ``textopia_http_request_duration_seconds`` (a histogram,
seconds from the request's arrival to its response's start), labelled by method, the matched
route's path template (``/v1/generate``, not the raw path, so that a client cannot grow the
label set; ``unmatched`` where no route matched) and status code."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Histogram bounds, seconds: a request's wait and decoding, from a cached page to a timeout.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0)


class RequestMetricsMiddleware:
    """Count and time each HTTP request into ``registry`` (the app's own ``CollectorRegistry``).

    Args:
        app: the ASGI app it wraps.
        registry: where the two metrics are registered.
    """

    def __init__(self, app: ASGIApp, registry) -> None:
        from prometheus_client import Counter, Histogram

        self.app = app
        labels = ("method", "route", "status")
        self.requests = Counter("textopia_http_requests", "HTTP requests answered.", labels, registry=registry)
        self.duration = Histogram("textopia_http_request_duration_seconds",
                                  "Seconds from a request's arrival to its response's start.", labels,
                                  buckets=BUCKETS, registry=registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("route")
                labels = (scope.get("method", ""), getattr(route, "path", None) or "unmatched", str(message["status"]))
                self.requests.labels(*labels).inc()
                self.duration.labels(*labels).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, timed_send)
