"""Bounds on settings, stated once on the field and checked when a config is made.

A config dataclass declares each bound with :func:`bounded` and checks every field in its
``__post_init__`` with :func:`check_fields`. A TOML file, a ``--set`` override and a
checkpoint's ``config.json`` are then refused alike, before anything is read or built, on one
line that names the setting, the value and the bound::

    train.batch_size must be an integer from 1 to 65,536, got -4
    train.lr must be a number in (0, 1], got nan

The type of a field comes from its annotation (``int``, ``float``, ``str``, ``bool``, any of
them ``| None``): ``batch_size=abc`` is refused as ``-4`` is, and a float is always finite.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import types
import typing
from collections.abc import Collection
from pathlib import Path
from typing import Any

from textopia.errors import TextopiaError

#: The largest seed: torch's generators take an unsigned 64-bit integer.
MAX_SEED = 2**64 - 1
#: A seed drawn for a caller who gave none is below this: a JSON number that every reader holds
#: exactly (a double holds 53 bits and reads 2**64 - 1 as 2**64), so that sending it back gives
#: the same prompts. The service takes no seed above it either (``serving.schemas.MAX_SEED``).
DRAWN_SEEDS = 2**32
#: The longest sequence a model or an example may ask for, tokens.
MAX_POSITIONS = 131_072
#: The most optimizer steps a run may ask for (the step counts of its schedule and its periods).
MAX_STEPS = 10_000_000

_BOUNDS = "textopia.bounds"


@dataclasses.dataclass(frozen=True)
class Bound:
    """The values a setting may take: ``low``..``high`` (either end open with ``low_open`` or
    ``high_open``; None: unbounded on that side), or one of ``choices``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()

    def holds(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if self.low is not None and not (value > self.low if self.low_open else value >= self.low):
            return False
        if self.high is not None and not (value < self.high if self.high_open else value <= self.high):
            return False
        return True

    def describe(self, kind: type) -> str:
        """The bound in words for a field of type ``kind``: "an integer from 1 to 65,536", "a number
        in (0, 1]", "one of auto, fp32"."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if kind is bool:
            return "true or false"
        if kind is str:
            return "a text"
        if kind is int:
            if self.low is not None and self.high is not None:
                return f"an integer from {self.low:,} to {self.high:,}"
            return "an integer" + (f" >= {self.low:,}" if self.low is not None else
                                   f" <= {self.high:,}" if self.high is not None else "")
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            return f"a number in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"a finite number {'>' if self.low_open else '>='} {low}"
        if self.high is not None:
            return f"a finite number {'<' if self.high_open else '<='} {high}"
        return "a finite number"


def _number(x: float | None) -> str:
    """A bound as people write it: 1,000,000 and 0.001, not 1e+06 and 1e-03."""
    if x is None:
        return ""
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:g}"


def bounded(default: Any, low: float | None = None, high: float | None = None, *, low_open: bool = False,
            high_open: bool = False, choices: Collection[str] = ()) -> Any:
    """A dataclass field with its bound: ``batch_size: int = bounded(64, 1, 65_536)``."""
    bound = Bound(low, high, low_open, high_open, tuple(choices))
    return dataclasses.field(default=default, metadata={_BOUNDS: bound})


@functools.lru_cache(maxsize=None)
def _field_kinds(cls: type) -> dict[str, tuple[type | None, bool]]:
    """Per field of ``cls``: the scalar type its annotation names (None: not a scalar, not
    checked) and whether None is allowed."""
    kinds = {}
    for name, hint in typing.get_type_hints(cls).items():
        union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        args = typing.get_args(hint) if union else (hint,)
        nullable = type(None) in args
        scalars = [a for a in args if a is not type(None)]
        if len(scalars) == 1 and typing.get_origin(scalars[0]) is typing.Literal:  # Literal["a", "b"]: a text
            scalars = [str] if all(isinstance(c, str) for c in typing.get_args(scalars[0])) else scalars
        kind = scalars[0] if len(scalars) == 1 and scalars[0] in (int, float, str, bool) else None
        kinds[name] = (kind, nullable)
    return kinds


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:60] + "..."


def value_holds(kind: type, value: Any, bound: Bound) -> bool:
    """True if ``value`` is of the scalar type ``kind`` (int, float, str, bool; a bool is no
    number, an int is a float, a float is finite) and within ``bound``."""
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and bound.holds(value)
    if kind is float:
        return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                and bound.holds(value))
    return isinstance(value, str) and bound.holds(value)


def check_fields(config: Any, section: str) -> None:
    """Check every field of the dataclass instance ``config`` against its type and its
    :func:`bounded` bound.

    Args:
        section: the name the user writes before each key ("train", "model"), for the message;
            "" for none.

    Raises:
        TextopiaError: one line naming the first field that is out of bounds or of the wrong
            type, its value and its bound.
    """
    kinds = _field_kinds(type(config))
    for f in dataclasses.fields(config):
        kind, nullable = kinds.get(f.name, (None, False))
        bound: Bound = f.metadata.get(_BOUNDS, Bound())
        value = getattr(config, f.name)
        if kind is None or (value is None and nullable):
            continue
        if not value_holds(kind, value, bound):
            what = bound.describe(kind) + (" or none" if nullable else "")
            raise TextopiaError(f"{section + '.' if section else ''}{f.name} must be {what}, got {_shown(value)}")


def field_bound(f: dataclasses.Field) -> Bound:
    """The :func:`bounded` bound of a dataclass field (none: :class:`Bound` with no ends)."""
    return f.metadata.get(_BOUNDS, Bound())


def field_kind(cls: type, name: str) -> type | None:
    """The scalar type of the field ``name`` of the dataclass ``cls`` (int, float, str, bool; a
    ``Literal`` of texts is str; None: not a scalar)."""
    return _field_kinds(cls)[name][0]


def check_out_path(path: str | Path, key: str, what: str = "directory") -> Path:
    """``path`` as a :class:`Path`, or :class:`TextopiaError` when it names no ``what`` of its own
    ("", ".", "..", "/"): an output written atomically is replaced as a whole through a sibling
    of it, and the current directory or the root has none.

    Args:
        key: the option or setting that gave it ("--out", "train.out_dir"), for the message.
        what: "directory" or "file", for the message.

    Raises:
        TextopiaError: it names no ``what`` of its own, or a folder above it is a file.
    """
    p = Path(path)
    if not str(path).strip() or p.name in ("", ".", ".."):
        raise TextopiaError(f"{key} must name a {what} of its own (it is written as a whole), got {str(path)!r}")
    for parent in p.absolute().parents:  # the nearest that exists is where it is written: a folder
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise TextopiaError(f"{key}: {parent} is a file, not a folder, so {path} cannot be written")
            break
    return p


__all__ = ["DRAWN_SEEDS", "MAX_POSITIONS", "MAX_SEED", "MAX_STEPS", "Bound", "bounded", "check_fields",
           "check_out_path", "field_bound", "field_kind", "value_holds"]
