"""The models the integrations write with, each loaded once per process.

ComfyUI runs a node's function at every queued prompt, and Dynamic Prompts may build a generator
per batch: loading a checkpoint each time would cost more than writing with it.
"""

from __future__ import annotations

import threading

from textopia.generation.base import Generator

_models: dict[str, Generator] = {}
_lock = threading.Lock()


def cached_model(name: str) -> Generator:
    """The loaded model ``name`` (an embedded model's name or a checkpoint directory), loaded with
    :func:`textopia.load` at the first call in this process and kept.

    Raises:
        TextopiaError: as :func:`textopia.load` (unknown name, missing or corrupt checkpoint).
    """
    with _lock:
        model = _models.get(name)
        if model is None:
            from textopia.generation.loader import load

            model = _models[name] = load(name)
        return model


def clear() -> None:
    """Forget the loaded models (their memory is freed once nothing else holds them)."""
    with _lock:
        _models.clear()
