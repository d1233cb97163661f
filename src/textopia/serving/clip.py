"""CLIP token counts for answers, without ever making a request wait for the tokenizer.

``textopia.evaluation.metrics.clip_tokens`` may have to build CLIP's tokenizer from a merges file or
fetch it from the Hugging Face Hub, which offline retries for minutes. So the service loads it
on a background thread; until it is ready (or when it cannot be loaded) counts are None.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Literal

logger = logging.getLogger(__name__)

State = Literal["idle", "loading", "ready", "failed"]


def _import_counter() -> Callable[[str], int]:
    from textopia.evaluation.metrics.clip_tokens import count_clip_tokens
    from textopia.serving.libraries import import_libraries

    import_libraries()  # transformers through the one lock: never a first import beside a loader's

    return count_clip_tokens


class ClipCounter:
    """Counts CLIP tokens once the tokenizer has loaded in the background; None until then.

    Args:
        counter: a ready counting function (tests); None imports
            ``textopia.evaluation.metrics.clip_tokens.count_clip_tokens`` on :meth:`start`.
        enabled: False always answers None and loads nothing.
    """

    def __init__(self, counter: Callable[[str], int] | None = None, enabled: bool = True) -> None:
        self._lock = threading.Lock()
        self._fn: Callable[[str], int] | None = counter
        self.state: State = "ready" if counter is not None else ("idle" if enabled else "failed")

    def start(self) -> None:
        """Begin loading the tokenizer on a daemon thread (once; later calls do nothing)."""
        with self._lock:
            if self.state != "idle":
                return
            self.state = "loading"
        threading.Thread(target=self._load, name="textopia-clip", daemon=True).start()

    def _load(self) -> None:
        try:
            fn = _import_counter()
            fn("warm up")  # builds and caches the tokenizer
        except Exception as exc:  # ImportError, missing merges file, Hub unreachable
            logger.warning("CLIP token counts unavailable: %s", exc)
            with self._lock:
                self.state = "failed"
            return
        with self._lock:
            self._fn, self.state = fn, "ready"
        logger.info("CLIP token counter ready")

    def __call__(self, text: str) -> int | None:
        """CLIP tokens in ``text`` (start and end tokens excluded), or None if not available."""
        if self.state == "idle":
            self.start()
        fn = self._fn if self.state == "ready" else None
        if fn is None:
            return None
        try:
            return int(fn(text))
        except Exception:
            logger.exception("count_clip_tokens failed; CLIP token counts disabled")
            with self._lock:
                self.state = "failed"
            return None
