"""Causal-LM outputs across transformers releases.

transformers 5.x renamed an output's ``past_key_values`` to ``cache`` and warns when the old name
is written or read; 4.x knows only the old one. The models build and read their outputs here, so
that neither release warns and the decoding loop reads any model's cache the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any


@functools.cache
def _cache_field() -> str:
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def causal_lm_output(logits: Any, cache: Any = None, loss: Any = None):
    """A transformers ``CausalLMOutputWithPast`` with ``logits`` (B, T, V), ``loss`` (0-dim or
    None) and ``cache`` (a model's cache or recurrent state, or None) under the installed
    release's field name."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return CausalLMOutputWithPast(loss=loss, logits=logits, **{_cache_field(): cache})


def output_cache(out: Any) -> Any:
    """The cache a model's forward returned: ``cache`` of a transformers 5.x output,
    ``past_key_values`` of a 4.x one or of a plain dataclass output (the engine's); None if none."""
    if isinstance(out, Mapping):
        return out.get(_cache_field())
    return out.past_key_values
