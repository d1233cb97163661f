"""The FastAPI service: JSON API, SageMaker contract and web page, all on the Generator interface.

::

    GET  /                 web page (static, same-origin JS and CSS, works offline)
    POST /v1/generate      idea ──▶ prompts           POST /invocations   same body (SageMaker)
    GET  /v1/models        what is loaded             GET  /ping          200 when ready (SageMaker)
    POST /v1/reconstruct   VAE models only
    POST /v1/interpolate   VAE models only            GET  /healthz       alive
    POST /v1/variations    VAE models only            GET  /readyz        models loaded
    GET  /docs             OpenAPI docs               GET  /openapi.json
                                                      GET  /metrics       Prometheus text format

``POST /invocations`` also takes ``application/jsonlines`` (SageMaker batch transform with
``SplitType=Line``): one request object a line, answered by one JSON line each, in order.

Models are loaded in the lifespan handler (never at import), after transformers and diffusers
are imported on one thread (:mod:`textopia.serving.libraries`). Generation runs on worker threads
behind an :class:`~textopia.serving.limiter.InferenceLimiter`: at most ``max_concurrency`` at
once, ``queue_size`` waiting, 503 with ``Retry-After`` beyond that, 504 past the per-request
timeout. Every error is JSON ``{"error": message}``; tracebacks go to the log, never to clients.

With an :class:`~textopia.serving.endpoint_client.EndpointClient` (``textopia serve --endpoint
URL``) the app loads no model: it is the front, and sends generations to that endpoint.

This module is the factory and the runner; the routes are in :mod:`textopia.serving.routes`
(``prompts``, ``sagemaker``, ``page``), the errors and their handlers in
:mod:`textopia.serving.errors`, the state the routes are given in :mod:`textopia.serving.deps`.
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any

import anyio
from fastapi import FastAPI

from textopia.errors import TextopiaError
from textopia.generation.base import Generator
from textopia.serving.clip import ClipCounter
from textopia.serving.deps import ServiceState
from textopia.serving.endpoint_client import EndpointClient
from textopia.serving.errors import install_error_handlers
from textopia.serving.libraries import import_libraries
from textopia.serving.limiter import InferenceLimiter
from textopia.serving.metrics_middleware import RequestMetricsMiddleware
from textopia.serving.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware
from textopia.serving.models import ModelStore, attach_batchers, load_store
from textopia.serving.routes import metrics, page, prompts, sagemaker
from textopia.serving.settings import ServingSettings

logger = logging.getLogger(__name__)


def _version() -> str:
    try:
        return metadata.version("textopia")
    except metadata.PackageNotFoundError:
        return "0.0.0"


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
        clip_counter: counts a prompt's CLIP tokens; ``textopia.evaluation.metrics.clip_tokens``, loaded
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
    state.metrics = metrics.registry_for(state)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loads_models = state.store is None and state.endpoint is None
        if loads_models or state.clip.state == "idle":
            # Before any thread of ours imports them: two first imports at once can fail.
            await anyio.to_thread.run_sync(import_libraries)
        state.clip.start()  # builds the tokenizer in the background: never blocks startup or a request
        if loads_models:
            started = time.perf_counter()
            state.store = await anyio.to_thread.run_sync(load_store, settings)
            logger.info(
                "ready in %.1f s: models %s (default %s)",
                time.perf_counter() - started, state.store.names(), state.store.default,
            )
        # Its decoding processes load their models: seconds, off the event loop.
        batchers = await anyio.to_thread.run_sync(attach_batchers, state.store, settings) if state.store is not None else []
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
        docs_url=None,  # see page.install_docs
        redoc_url=None,
    )
    app.state.textopia = state
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(RequestMetricsMiddleware, registry=state.metrics)  # outside the body limit: its 413s count
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: errors and refusals carry the headers too
    install_error_handlers(app, settings)
    app.include_router(prompts.router)
    app.include_router(sagemaker.health_router)
    app.include_router(metrics.router)
    app.include_router(sagemaker.router)
    app.include_router(page.page_router())
    page.install_docs(app)
    return app


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("textopia").setLevel(level.upper())


def uvicorn_options(settings: ServingSettings) -> dict[str, Any]:
    """uvicorn's settings for the service: where it listens, and the limits on slow clients.

    A client gets ``header_timeout_s`` for its headers (:class:`~textopia.serving.protocol.HeaderTimeoutProtocol`;
    the body's deadline is the app's), ``keep_alive_s`` idle between requests, 16 KiB of headers;
    on SIGTERM requests in progress get ``shutdown_timeout_s`` to finish before they are cancelled.
    """
    from textopia.serving.protocol import HeaderTimeoutProtocol

    return dict(
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        http=functools.partial(HeaderTimeoutProtocol, header_timeout_s=settings.header_timeout_s),
        h11_max_incomplete_event_size=16_384,  # bytes of headers (uvicorn's default, stated)
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_s,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )


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
    sock = listening_socket(settings.host, settings.port)  # before the models load: a taken port fails now
    _configure_logging(settings.log_level)
    app = create_app(settings, endpoint=endpoint)
    logger.info("serving on http://%s:%d%s", settings.host, sock.getsockname()[1],
                f", generating through {endpoint.invocations_url}" if endpoint else "")
    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings)))
    server.run(sockets=[sock])
    if not server.started:
        raise TextopiaError("the service did not start (its log above says why)")


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` as uvicorn binds its own (IPv6 where the host has a
    colon, ``SO_REUSEADDR``), for the server to listen on.

    Raises:
        TextopiaError: the port is out of range, in use, or the host is not an address of this
            machine (one line, before any model loads).
    """
    if not 0 <= port <= 65535:
        raise TextopiaError(f"the port must be in 0..65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        reason = "in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e)).lower()
        raise TextopiaError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock
