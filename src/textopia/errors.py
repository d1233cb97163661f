"""The one error a user sees: at the bottom of the layers, so that every package can raise it."""

from __future__ import annotations


class TextopiaError(Exception):
    """A user error: bad input, a missing file, an unknown model. The CLI prints it on one line."""


__all__ = ["TextopiaError"]
