"""The HTTP service: FastAPI app factory, schemas, settings and the static web page.

``create_app`` and ``run_server`` are imported lazily, so importing this package does not
import FastAPI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "run_server"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from textopia.serving import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
