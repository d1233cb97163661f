"""Shallow fusion: a latent decoder's next-token distribution sharpened by a language model's.

A decoder conditioned on a sampled latent writes what the latent says, but where the latent lies
off the data (diffusion samples often do) it writes broken text. Shallow fusion (Gulcehre et al.
2015, "On Using Monolingual Corpora in Neural Machine Translation", §3.1, eq. 5) scores each next
token by

    log p(x_t) ∝ log p_dec(x_t | x_<t, z) + λ · log p_LM(x_t | x_<t)

with a language model ``p_LM`` that reads the same context (the idea) and shares the tokenizer:
the latent still chooses what is said, the language model how it is said. λ = 0 is the decoder
alone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from textopia.errors import TextopiaError
from textopia.generation.config import check_setting
from textopia.models.outputs import causal_lm_output, output_cache

def check_lm_weight(weight: float) -> float:
    """``weight`` as a float, or :class:`TextopiaError` outside its bound
    (:data:`textopia.generation.config.CALL_BOUNDS`: beyond it the language model alone writes)."""
    check_setting("lm_weight", weight)
    return float(weight)


class FusedCache:
    """The two models' caches, side by side."""

    def __init__(self, decoder_cache: Any, lm_cache: Any) -> None:
        self.decoder, self.lm = decoder_cache, lm_cache


class CompactFusedCache(FusedCache):
    """Caches that can both drop finished rows (``keep_rows``, as the lean engine's)."""

    def keep_rows(self, rows: torch.Tensor) -> None:
        self.decoder.keep_rows(rows)
        self.lm.keep_rows(rows)


class ShallowFusion(nn.Module):
    """A conditioned decoder and a language model as one causal LM for the sampling loop.

    Args:
        decoder: a causal LM whose latent is fixed (e.g.
            :class:`~textopia.models.text_vae.ConditionedDecoder`); called as
            ``decoder(input_ids=, past_key_values=, use_cache=True)``.
        lm: a causal LM over the same vocabulary (the lean GPT-2 engine, say), called the same way.
        weight: λ >= 0, the language model's weight.

    ``forward`` returns a ``CausalLMOutputWithPast``: ``logits`` (B, T, V) float32, the fused
    log-scores ``log_softmax(decoder) + λ · log_softmax(lm)`` (unnormalised; the sampler
    normalises), and a :class:`FusedCache`. Finished rows are dropped from both caches only where
    both can.
    """

    def __init__(self, decoder: nn.Module, lm: nn.Module, weight: float) -> None:
        super().__init__()
        self.decoder, self.lm, self.weight = decoder, lm, check_lm_weight(weight)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask=None, past_key_values: FusedCache | None = None,
                use_cache: bool = False, **_: Any):
        past = past_key_values
        dec = self.decoder(input_ids=input_ids, past_key_values=None if past is None else past.decoder, use_cache=True)
        lm = self.lm(input_ids=input_ids, past_key_values=None if past is None else past.lm, use_cache=True)
        if dec.logits.size(-1) != lm.logits.size(-1):
            raise TextopiaError(f"shallow fusion needs one vocabulary: the decoder has {dec.logits.size(-1)} "
                                f"tokens, the language model {lm.logits.size(-1)}")
        logits = torch.log_softmax(dec.logits.float(), dim=-1)
        logits.add_(torch.log_softmax(lm.logits.float(), dim=-1), alpha=self.weight)
        caches = (output_cache(dec), output_cache(lm))
        compact = all(hasattr(c, "keep_rows") for c in caches)
        cache = (CompactFusedCache if compact else FusedCache)(*caches) if use_cache else None
        return causal_lm_output(logits, cache)
