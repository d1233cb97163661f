"""The web page (static, same-origin JS and CSS, works offline) and the OpenAPI docs at ``/docs``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response

from textopia.serving.openapi30 import openapi_30

logger = logging.getLogger(__name__)

# A strict policy for the web page: nothing but this origin, no inline script or style.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "app.css": "text/css"}


def _static_files() -> dict[str, bytes]:
    folder = resources.files("textopia.serving") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_FILES}


def page_router() -> APIRouter:
    """The web page's routes: ``/`` and its script and style, read from the package once."""
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


DOCS_OPENAPI_URL = "/docs/openapi-3.0.json"


def install_docs(app: FastAPI) -> None:
    """OpenAPI docs at /docs: Swagger UI from the ``swagger-ui-bundle`` package when installed
    (so the docs work offline too), else FastAPI's default, which loads it from a CDN.

    The bundled Swagger UI (4.x) reads OpenAPI 3.0, not the 3.1 that FastAPI publishes at
    ``/openapi.json``: it loads the same document rewritten as 3.0
    (:func:`~textopia.serving.openapi30.openapi_30`) from :data:`DOCS_OPENAPI_URL`. The CDN's
    Swagger UI (5.x) reads 3.1 and loads ``/openapi.json``.
    """
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        logger.debug("swagger-ui-bundle not installed: /docs loads Swagger UI from a CDN")
        app.add_api_route("/docs", _cdn_docs, methods=["GET"], include_in_schema=False)
        return
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    async def openapi_30_document() -> JSONResponse:
        return JSONResponse(openapi_30(app.openapi()))  # app.openapi() is made once, then kept

    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=DOCS_OPENAPI_URL, title="Textopia API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    app.add_api_route(DOCS_OPENAPI_URL, openapi_30_document, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)


async def _cdn_docs() -> Response:
    from fastapi.openapi.docs import get_swagger_ui_html

    return get_swagger_ui_html(openapi_url="/openapi.json", title="Textopia API")
