"""Checks before work: what a command needs is looked for before it starts, not minutes later.

Each check raises :class:`~textopia.generation.base.TextopiaError` with one line that says what
is missing and how to get it (the pip extra to install, the file to give).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from textopia.errors import TextopiaError

#: What each optional package is for, and the extra of ``pyproject.toml`` that installs it.
OPTIONAL: dict[str, tuple[str, str]] = {
    "sacrebleu": ("sacrebleu", "eval"),
    "matplotlib": ("matplotlib", "eval"),
    "scipy": ("scipy", "eval"),
    "fastapi": ("fastapi", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "pydantic": ("pydantic", "serve"),
    "pydantic_settings": ("pydantic-settings", "serve"),
}


def missing_packages(modules: Iterable[str]) -> list[str]:
    """The modules of ``modules`` that cannot be imported (each is imported once to find out)."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def require_packages(modules: Iterable[str], purpose: str) -> None:
    """Make sure optional packages import before the work that needs them starts.

    Args:
        modules: importable module names (keys of :data:`OPTIONAL`, or any module).
        purpose: what needs them, for the message ("the text figures", "textopia serve").

    Raises:
        TextopiaError: one or more cannot be imported; the message names them and the extra
            to install: ``missing package for the text figures: sacrebleu (pip install 'textopia[eval]')``.
    """
    missing = missing_packages(modules)
    if not missing:
        return
    pips = [OPTIONAL.get(m, (m, None))[0] for m in missing]
    extras = sorted({OPTIONAL[m][1] for m in missing if m in OPTIONAL})
    how = f"pip install 'textopia[{','.join(extras)}]'" if extras else f"pip install {' '.join(pips)}"
    raise TextopiaError(f"missing package for {purpose}: {', '.join(pips)} ({how})")


def require_clip_tokenizer() -> None:
    """Load CLIP's tokenizer now (it is cached), so that counting CLIP tokens cannot fail later.

    Raises:
        TextopiaError: the tokenizer cannot be loaded (a missing ``$TEXTOPIA_CLIP_BPE`` file, or a
            broken install without the packaged merges file and no network).
    """
    from textopia.evaluation.metrics.clip_tokens import clip_tokenizer

    try:
        clip_tokenizer()
    except (OSError, RuntimeError, ValueError) as e:
        raise TextopiaError(f"CLIP token counts need CLIP's tokenizer: {' '.join(str(e).split())[:300]} "
                            "(or pass --no-clip)") from None


__all__ = ["OPTIONAL", "missing_packages", "require_clip_tokenizer", "require_packages"]
