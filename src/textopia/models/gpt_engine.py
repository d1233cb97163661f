"""A lean GPT-2 forward for writing prompts: the same weights and numbers as transformers'
``GPT2LMHeadModel``, without its import time or per-call overhead.

Generation with a 5M-parameter model is dominated by per-token framework overhead, not by
arithmetic. This module runs GPT-2 (Radford et al. 2019: pre-LayerNorm blocks, learned positions,
tanh-GELU, tied output embedding) straight from a checkpoint's ``model.safetensors`` and
``config.json``, with a preallocated (static) key/value cache written in place::

    input_ids (B, T) ─▶ wte + wpe ─▶ [ln_1 ─▶ attn (cache) ─▶ + ─▶ ln_2 ─▶ mlp ─▶ +] × L ─▶ ln_f ─▶ wteᵀ ─▶ logits (B, T, V)

It answers the call that :func:`textopia.generation.decoding.sample` and
:func:`textopia.evaluation.likelihood.score_prompts` make, ``model(input_ids=...,
attention_mask=..., past_key_values=..., use_cache=...)``, for right-padded batches (causal
attention: a real token never sees the padding after it, so ``attention_mask`` is not needed).
"""

from __future__ import annotations

import functools
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: The transformers architectures this engine runs (anything else loads through transformers).
SUPPORTED = ("GPT2LMHeadModel",)

#: How the engine may hold its matrix weights (see :meth:`GPT2Engine.set_weight_dtype`):
#: ``float32`` (transformers' numbers exactly); ``float16`` (fbgemm's half-precision packed
#: weights, float32 activations and accumulation: half the bytes read per token); ``mixed``
#: (float16 blocks, and the output layer, the largest product, in fbgemm's dynamic int8: int8
#: weights with a scale per output channel, activations quantised per call; at batch 48 on one
#: thread it takes 0.6 ms against 2.0 ms in float16 and 3.1 ms in float32). int8 blocks too
#: cost 0.67% of perplexity (against 0.21% for the output layer alone) and are not offered.
#: ``bfloat16`` (every matrix weight in bfloat16, each product's input cast to bfloat16 and its
#: output back to float32: oneDNN's bfloat16 kernels, which use AMX or AVX-512 BF16 where the CPU
#: has them and are slow where it does not; offered, not the loader's default).
WEIGHT_DTYPES = ("float32", "float16", "mixed", "bfloat16")


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True if this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX), read from
    ``/proc/cpuinfo`` (False where it cannot be read).

    Without them bf16 is emulated and slow: on our 2-core AMD EPYC (AVX2 only) a 5M GPT trained
    at 64 tokens/s in bf16 autocast against 1,480 in fp32. With them, a long pass is faster in
    bf16: the keep head's scoring pass over 32 candidates of 36 tokens took 24 ms in bfloat16
    against 52 ms in float32 on a 2-core Xeon with AMX (``benchmarks/results/request_cost``).
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass
class EngineConfig:
    """The GPT-2 sizes the engine needs, read from transformers' ``config.json``."""

    vocab_size: int
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    layer_norm_epsilon: float = 1e-5

    @classmethod
    def from_json(cls, config: dict[str, Any]) -> "EngineConfig":
        return cls(vocab_size=int(config["vocab_size"]), n_positions=int(config["n_positions"]),
                   n_embd=int(config["n_embd"]), n_layer=int(config["n_layer"]), n_head=int(config["n_head"]),
                   layer_norm_epsilon=float(config.get("layer_norm_epsilon", 1e-5)))


def supports(config: dict[str, Any]) -> bool:
    """True if ``config`` (transformers' ``config.json``) describes a model this engine runs exactly."""
    return (
        config.get("model_type") == "gpt2"
        and list(config.get("architectures") or ["GPT2LMHeadModel"]) == ["GPT2LMHeadModel"]
        and config.get("activation_function", "gelu_new") == "gelu_new"
        and config.get("scale_attn_weights", True) is True
        and not config.get("scale_attn_by_inverse_layer_idx", False)
        and not config.get("reorder_and_upcast_attn", False)
        and not config.get("add_cross_attention", False)
        and config.get("n_inner") in (None, 4 * int(config.get("n_embd", 0)))
        and config.get("tie_word_embeddings", True) is True
    )


class StaticCache:
    """Keys and values of every layer, preallocated: ``kv`` (L, 2, B, H, T_max, D) float, keys at
    ``kv[:, 0]`` (:attr:`k`) and values at ``kv[:, 1]`` (:attr:`v`), so that a forward writes a
    layer's new keys and values with one copy.

    ``length`` is how many positions are filled; a forward writes its tokens at
    ``[length, length + T)`` and advances it.
    """

    def __init__(self, config: EngineConfig, batch: int, max_length: int, dtype: torch.dtype, device) -> None:
        d = config.n_embd // config.n_head
        self.kv = torch.empty((config.n_layer, 2, batch, config.n_head, max_length, d), dtype=dtype, device=device)
        self._buffer = self.kv  # the whole allocation, of which kv is the first rows
        self.length = 0
        self.max_length = max_length
        self.key_valid: torch.Tensor | None = None  # (B, T_max) bool, once a padded batch came in

    @property
    def k(self) -> torch.Tensor:
        """The keys, (L, B, H, T_max, D): a view of :attr:`kv`."""
        return self.kv[:, 0]

    @property
    def v(self) -> torch.Tensor:
        """The values, (L, B, H, T_max, D): a view of :attr:`kv`."""
        return self.kv[:, 1]

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep only the batch rows ``rows`` (int64 indices, in the order given): a sampler drops
        the rows that have finished, so that later steps compute the live ones only, and copies a
        shared prefill out to the rows that hold it. Only the filled positions are copied. As many
        rows as were allocated, or fewer, are gathered into the front of the same allocation (a
        fresh (L, 2, B', H, T_max, D) buffer costs its page faults: 3x the time at a sampler's
        sizes; a sampler that shares a prefill allocates for all its rows and prefills the first
        few); more get a new one."""
        old, buffer = self.kv, self._buffer
        gathered = old[:, :, rows, :, : self.length]  # (L, 2, B', H, length, D), a copy
        if rows.numel() > buffer.size(2):
            buffer = self._buffer = old.new_empty((old.size(0), 2, rows.numel(), *old.shape[3:]))
        kept = buffer[:, :, : rows.numel()]  # (L, 2, B', H, T_max, D), a view of the allocation
        kept[:, :, :, :, : self.length] = gathered
        self.kv = kept
        if self.key_valid is not None:
            self.key_valid = self.key_valid[rows]


@dataclass
class EngineOutput:
    """``logits`` (B, T, V) float32; ``past_key_values``: the :class:`StaticCache` (or None)."""

    logits: torch.Tensor
    past_key_values: StaticCache | None = None


class _Linear:
    """``y = x @ weight + bias`` for a (in, out) ``Conv1D`` weight held in ``dtype``: "float32",
    "bfloat16" (a plain bfloat16 tensor), "float16" or "int8" (fbgemm's packed weights; these two
    fall back to the next wider one where this CPU or torch build cannot pack them).

    Called on ``x`` (N, in) float32; returns (N, out) float32.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, dtype: str) -> None:
        self.dtype = dtype
        if dtype == "float32":
            self.weight, self.bias = weight, bias
            return
        if dtype == "bfloat16":
            self.weight = weight.detach().to(torch.bfloat16)
            self.bias = None if bias is None else bias.detach().to(torch.bfloat16)
            return
        w = weight.detach().t().contiguous().float()  # (out, in), as nn.Linear holds it
        b = None if bias is None else bias.detach().float()
        if dtype == "int8":
            self.packed = _pack_int8(w, b)
            if self.packed is None:  # this torch has no int8 tensors: half precision instead
                self.dtype = "float16"
        if self.dtype == "float16":
            try:
                self.packed = torch.ops.quantized.linear_prepack_fp16(w, b)
                torch.ops.quantized.linear_dynamic_fp16(torch.zeros(1, w.size(1)), self.packed)  # runs here?
            except (RuntimeError, AttributeError, NotImplementedError):  # no fbgemm for this CPU or build
                self.dtype, self.weight, self.bias = "float32", weight, bias

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.dtype == "float32":
            return x @ self.weight if self.bias is None else torch.addmm(self.bias, x, self.weight)
        if self.dtype == "bfloat16":
            rows = x.size(0)
            x = x.to(torch.bfloat16)
            padded = _bucket(rows)
            if padded > rows:  # oneDNN makes a kernel per shape: a few shapes, each made once
                x = F.pad(x, (0, 0, 0, padded - rows))
            y = x @ self.weight if self.bias is None else torch.addmm(self.bias, x, self.weight)
            return y[:rows].float()
        if self.dtype == "float16":
            return torch.ops.quantized.linear_dynamic_fp16(x, self.packed)
        # reduce_range: 7-bit activations, so that int8 products never saturate without VNNI.
        return torch.ops.quantized.linear_dynamic(x, self.packed, True)


def _bucket(rows: int) -> int:
    """``rows`` rounded up to one of eight sizes an octave (16, 18, 20, ... 28, 32, 36, ...; every
    size to 16): at most 1/8 more rows, and few distinct shapes. oneDNN's bfloat16 kernels are
    made for each new shape (at 32 rows of 20-60 tokens, a fresh shape cost 47 ms a pass against
    27 ms for one seen before, on a 2-core Xeon with AMX)."""
    if rows <= 16:
        return rows
    step = 1 << (rows.bit_length() - 4)  # an eighth of the octave that holds rows
    return -(-rows // step) * step


def _pack_int8(weight: torch.Tensor, bias: torch.Tensor | None):
    """fbgemm's packed int8 weight (symmetric, one scale per output channel) for ``weight``
    (out, in) float32, or None where this torch or CPU cannot make or run one (tried once here).

    torch 2.13 marks the quantized tensor it is made from as deprecated (its warning is silenced
    here: the tests pin torch and check this path's perplexity); without it the engine falls
    back to float16."""
    import warnings

    scales = (weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0).double()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            q = torch.quantize_per_channel(weight, scales, torch.zeros(weight.size(0), dtype=torch.long), 0,
                                           torch.qint8)
            packed = torch.ops.quantized.linear_prepack(q, bias)
            torch.ops.quantized.linear_dynamic(torch.zeros(1, weight.size(1)), packed, True)  # runs here?
            return packed
    except (RuntimeError, AttributeError, NotImplementedError):
        return None


class GPT2Engine(nn.Module):
    """GPT-2 inference over transformers' parameter names and layout (``Conv1D`` weights are (in, out)).

    Left-padded batches (rows of different context lengths, as the service's micro-batches
    are) are run with ``attention_mask`` (0 on padding) and ``position_ids``: padding is never
    attended to, and the mask is kept in the cache for the steps that follow.

    Args:
        config: the sizes.
        weights: ``{name: tensor}`` as in ``model.safetensors`` (``lm_head.weight`` optional: tied).

    Raises:
        KeyError, ValueError: a weight is missing or has the wrong shape.
    """

    supports_left_padding = True
    #: rows of one context may share its prefill (:func:`textopia.generation.decoding.sample_many`):
    #: a row's logits depend on its tokens alone
    shares_prefill = True

    def __init__(self, config: EngineConfig, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.config = config
        e, l_ = config.n_embd, config.n_layer
        expected = {"transformer.wte.weight": (config.vocab_size, e), "transformer.wpe.weight": (config.n_positions, e),
                    "transformer.ln_f.weight": (e,), "transformer.ln_f.bias": (e,)}
        for i in range(l_):
            p = f"transformer.h.{i}."
            expected.update({p + "ln_1.weight": (e,), p + "ln_1.bias": (e,), p + "ln_2.weight": (e,),
                             p + "ln_2.bias": (e,), p + "attn.c_attn.weight": (e, 3 * e), p + "attn.c_attn.bias": (3 * e,),
                             p + "attn.c_proj.weight": (e, e), p + "attn.c_proj.bias": (e,),
                             p + "mlp.c_fc.weight": (e, 4 * e), p + "mlp.c_fc.bias": (4 * e,),
                             p + "mlp.c_proj.weight": (4 * e, e), p + "mlp.c_proj.bias": (e,)})
        for name, shape in expected.items():
            if name not in weights:
                raise KeyError(f"missing weight {name}")
            if tuple(weights[name].shape) != shape:
                raise ValueError(f"weight {name} has shape {tuple(weights[name].shape)}, expected {shape}")
        self.params = nn.ParameterDict(
            {name.replace(".", "__"): nn.Parameter(weights[name].float(), requires_grad=False) for name in expected}
        )
        self.weight_dtype = "float32"
        #: per weight dtype: each block's tensors and projections, and the output layer (packed
        #: once per dtype and device: ``exact()`` switches back and forth without re-packing)
        self._packed: dict[str, tuple[list[tuple], _Linear]] = {}

    def set_weight_dtype(self, dtype: str) -> "GPT2Engine":
        """Hold the matrix weights (the blocks' four projections and the output embedding) in
        ``dtype``, one of :data:`WEIGHT_DTYPES`; embeddings, LayerNorms and the float32 parameters
        stay (``state_dict`` and ``parameters()`` are unchanged). On the shipped default model's
        2,000 first test prompts, each given an idea derived from it, perplexity is 9.506 in
        float32, 9.506 in float16, 9.507 in bfloat16 and 9.531 (0.26% higher) in mixed (the
        tests check within 1%); decoding speeds are in ``benchmarks/results/speed.md``. Returns
        ``self``.

        The packed weights are fbgemm's and the bfloat16 ones oneDNN's, for the CPU: on any other
        device the engine computes in float32 whatever this says.

        Raises:
            ValueError: an unknown dtype.
        """
        if dtype not in WEIGHT_DTYPES:
            raise ValueError(f"weight dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {dtype!r}")
        self.weight_dtype = dtype
        return self

    @property
    def scoring_dtype(self) -> str:
        """The weight dtype of the long scoring passes that judge finished prompts (the keep
        head's features, :func:`textopia.models.keep_head.features`): ``"float32"`` where the
        engine decodes in float32 (exact numbers asked for), off the CPU, or on a CPU without
        native bf16; else ``"bfloat16"``, which such a CPU runs at about twice float32's speed at
        these shapes while the decoding steps (a row or a few dozen, one token each) stay in
        float16. The shipped default's test perplexity is 9.507 in bfloat16 against 9.506 in
        float32 (:meth:`set_weight_dtype`)."""
        on_cpu = self._w("transformer.wte.weight").device.type == "cpu"
        return "bfloat16" if on_cpu and self.weight_dtype != "float32" and cpu_has_fast_bf16() else "float32"

    @contextmanager
    def exact(self):
        """Within the block, float32 weights (transformers' logits): for scoring, where the
        perplexity reported is the model's own. Restores the weight dtype after."""
        before = self.weight_dtype
        self.set_weight_dtype("float32")
        try:
            yield self
        finally:
            self.set_weight_dtype(before)

    def _apply(self, fn, *args, **kwargs):  # .to(device), .float(), ...: packed weights follow
        self._packed.clear()
        return super()._apply(fn, *args, **kwargs)

    def _w(self, name: str) -> torch.Tensor:
        return self.params[name.replace(".", "__")]

    def _layers(self, weight_dtype: str | None = None) -> tuple[list[tuple], _Linear]:
        """Each block's LayerNorm tensors and projections in the order forward uses them, and the
        output layer, in ``weight_dtype`` (None: the current one; packed once per dtype and device,
        not per call)."""
        on_cpu = self._w("transformer.wte.weight").device.type == "cpu"
        key = (weight_dtype or self.weight_dtype) if on_cpu else "float32"
        if key not in self._packed:
            dt, head_dt = ("float16", "int8") if key == "mixed" else (key, key)
            blocks = []
            for i in range(self.config.n_layer):
                w = lambda n, i=i: self._w(f"transformer.h.{i}.{n}")  # noqa: E731
                blocks.append((
                    w("ln_1.weight"), w("ln_1.bias"), _Linear(w("attn.c_attn.weight"), w("attn.c_attn.bias"), dt),
                    _Linear(w("attn.c_proj.weight"), w("attn.c_proj.bias"), dt), w("ln_2.weight"), w("ln_2.bias"),
                    _Linear(w("mlp.c_fc.weight"), w("mlp.c_fc.bias"), dt),
                    _Linear(w("mlp.c_proj.weight"), w("mlp.c_proj.bias"), dt)))
            self._packed[key] = (blocks, _Linear(self._w("transformer.wte.weight").t(), None, head_dt))
        return self._packed[key]

    def new_cache(self, batch: int, max_length: int | None = None) -> StaticCache:
        w = self._w("transformer.wte.weight")
        return StaticCache(self.config, batch, max_length or self.config.n_positions, w.dtype, w.device)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                past_key_values: StaticCache | None = None, use_cache: bool = False,
                position_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                **_: Any) -> EngineOutput:
        """Logits of the next token at every position.

        Args:
            input_ids: (B, T) int64.
            attention_mask: (B, T) or (B, cached + T), 1 on real tokens. Right padding needs none
                (causal attention: a real token never sees the padding after it); left padding
                does, with ``position_ids``.
            past_key_values: the cache of earlier calls, or None to start afresh.
            use_cache: keep (and return) the cache, for the next call to go on from.
            position_ids: (B, T) int64 positions; default ``cached .. cached + T - 1`` for every row.
            inputs_embeds: (B, T, E) float instead of ``input_ids``: the input vectors themselves (a
                latent prefix, say), to which the position embeddings are added, as in transformers.

        Returns:
            :class:`EngineOutput` with ``logits`` (B, T, V) float32.

        Raises:
            ValueError: the sequence would pass ``n_positions``.
        """
        x, cache = self._trunk(input_ids, attention_mask, past_key_values, use_cache, position_ids, inputs_embeds)
        b, t = x.shape[:2]
        logits = self._layers()[1](x.reshape(b * t, -1)).view(b, t, -1)  # (B, T, V)
        return EngineOutput(logits=logits.float(), past_key_values=cache if use_cache else None)

    @torch.no_grad()
    def hidden_states(self, input_ids: torch.Tensor, weight_dtype: str | None = None,
                      cache: StaticCache | None = None, attention_mask: torch.Tensor | None = None,
                      position_ids: torch.Tensor | None = None, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The last block's output after the final LayerNorm, (B, T, E) float32, for a
        right-padded batch ``input_ids`` (B, T) int64 (a real token never sees the padding after
        it): what transformers' ``GPT2Model`` returns as ``last_hidden_state``, which a
        sequence-classification head reads (the coherence critic,
        :class:`textopia.models.critic.CoherenceCritic`). ``weight_dtype``: this call's weights
        (None: the engine's; "float32" scores exactly without :meth:`exact`'s switch of the
        shared engine, which another thread may be decoding with). ``cache``, ``attention_mask``
        and ``position_ids`` as :meth:`forward`'s ``past_key_values`` (written and advanced),
        ``attention_mask`` and ``position_ids``. ``key_mask``: (B, T, cached + T) bool, the keys
        each new token attends to, in place of the causal mask and ``attention_mask`` (several
        tokens that each go on from another point of a row's cache: a prompt's openings' end
        tokens, none seeing another); each token should see itself.

        Raises:
            ValueError: the sequence is longer than ``n_positions``.
        """
        return self._trunk(input_ids, attention_mask, cache, False, position_ids, weight_dtype=weight_dtype,
                           key_mask=key_mask)[0]

    @torch.no_grad()
    def output_logits(self, hidden: torch.Tensor, weight_dtype: str | None = None) -> torch.Tensor:
        """The output layer alone: logits (B, T, V) float32 of :meth:`hidden_states`' (B, T, E), so
        that one pass gives a prompt's hidden states and its log-probabilities; ``weight_dtype`` as
        there."""
        b, t = hidden.shape[:2]
        return self._layers(weight_dtype)[1](hidden.reshape(b * t, -1)).view(b, t, -1).float()

    def _trunk(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None = None,
               past_key_values: StaticCache | None = None, use_cache: bool = False,
               position_ids: torch.Tensor | None = None,
               inputs_embeds: torch.Tensor | None = None,
               weight_dtype: str | None = None,
               key_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, StaticCache | None]:
        """:meth:`forward` up to the output layer: the final LayerNorm's output (B, T, E) float32
        and the cache (written and advanced; None without one)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        b, t = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        cfg = self.config
        cache = past_key_values
        if cache is None and use_cache:
            cache = self.new_cache(b)
        start = cache.length if cache is not None else 0
        if start + t > cfg.n_positions or (cache is not None and start + t > cache.max_length):
            raise ValueError(f"sequence of {start + t} tokens is longer than the model's {cfg.n_positions} positions")
        h, d = cfg.n_head, cfg.n_embd // cfg.n_head
        pos = position_ids if position_ids is not None else torch.arange(start, start + t, device=device)
        tokens = F.embedding(input_ids, self._w("transformer.wte.weight")) if input_ids is not None else inputs_embeds
        x = tokens.float() + self._w("transformer.wpe.weight")[pos]
        # Key padding: None while every key is real (the fast causal kernels), else (B, 1, T, S) bool.
        key_valid = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_valid = attention_mask[:, -t:].bool()
            if cache is not None:
                if cache.key_valid is None:
                    cache.key_valid = torch.ones(b, cache.max_length, dtype=torch.bool, device=x.device)
                if attention_mask.size(1) == start + t:  # the cached positions' mask too: it rules
                    cache.key_valid[:, : start + t] = attention_mask.bool()
                else:
                    cache.key_valid[:, start : start + t] = key_valid
        elif cache is not None and cache.key_valid is not None:
            cache.key_valid[:, start : start + t] = True
        if cache is not None and cache.key_valid is not None:
            key_valid = cache.key_valid[:, : start + t]
        mask = None
        if key_valid is not None:
            if key_valid.size(1) == t:  # no cache: a fresh, possibly left-padded batch
                key_valid = torch.cat([torch.ones(b, 0, dtype=torch.bool, device=x.device), key_valid], dim=1)
            causal = torch.ones(t, start + t, dtype=torch.bool, device=x.device).tril(diagonal=start)
            mask = causal[None] & key_valid[:, None, :]
            mask[:, torch.arange(t), torch.arange(start, start + t)] = True  # a padding query sees itself
            mask = mask[:, None]  # (B, 1, T, S)
        if key_mask is not None:
            mask = key_mask.bool()[:, None]  # (B, 1, T, S)
        e, eps = (cfg.n_embd,), cfg.layer_norm_epsilon
        blocks, _ = self._layers(weight_dtype)
        for i, (ln1_w, ln1_b, attn, proj, ln2_w, ln2_b, fc, out) in enumerate(blocks):
            a = F.layer_norm(x, e, ln1_w, ln1_b, eps)
            qkv = attn(a.reshape(b * t, -1))
            qkv = qkv.view(b, t, 3, h, d).permute(2, 0, 3, 1, 4)  # (3, B, H, T, D)
            q, k, v = qkv
            if cache is not None:
                kv = cache.kv[i]  # (2, B, H, T_max, D)
                kv[:, :, :, start : start + t] = qkv[1:]  # keys and values in one copy
                k, v = kv[0, :, :, : start + t], kv[1, :, :, : start + t]
            if mask is not None:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            elif t == 1:
                y = F.scaled_dot_product_attention(q, k, v)
            elif start == 0:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:  # several new tokens after a cached prefix: causal within, full over the prefix
                mask = torch.ones(t, start + t, dtype=torch.bool, device=x.device).tril(diagonal=start)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            y = y.transpose(1, 2).reshape(b * t, cfg.n_embd)
            x = x + proj(y).view(b, t, -1)
            m = F.layer_norm(x, e, ln2_w, ln2_b, eps)
            m = F.gelu(fc(m.reshape(b * t, -1)), approximate="tanh")
            x = x + out(m).view(b, t, -1)
        x = F.layer_norm(x, (cfg.n_embd,), self._w("transformer.ln_f.weight"), self._w("transformer.ln_f.bias"),
                         cfg.layer_norm_epsilon)
        if cache is not None:
            cache.length = start + t
        return x, cache


def load_engine(directory: str | Path) -> GPT2Engine | None:
    """The engine for a checkpoint directory, or None if its model is not one it runs exactly.

    Raises:
        ValueError, KeyError, OSError, safetensors.SafetensorError: the weights are missing,
            corrupt, the wrong shape or not finite (NaN or infinity).
    """
    directory = Path(directory)
    config = json.loads((directory / "config.json").read_text())
    if not supports(config):
        return None
    from safetensors import safe_open

    cfg = EngineConfig.from_json(config)
    weights: dict[str, torch.Tensor] = {}
    with safe_open(str(directory / "model.safetensors"), framework="pt") as f:
        # Shapes are read from the header and checked (in GPT2Engine) before any large read.
        for name in f.keys():
            shape = tuple(f.get_slice(name).get_shape())
            if math.prod(shape) > cfg.vocab_size * cfg.n_embd * 4 + cfg.n_positions * cfg.n_embd:
                raise ValueError(f"weight {name} of shape {shape} is larger than the config allows")
        weights = {name: f.get_tensor(name) for name in f.keys()}
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"weight {name} holds values that are not finite (NaN or infinity)")
    engine = GPT2Engine(cfg, weights)
    engine.eval()
    return engine


def num_parameters(engine: GPT2Engine) -> int:
    """Parameters, counting the tied output embedding once (as transformers does)."""
    return sum(p.numel() for p in engine.parameters())


__all__ = ["EngineConfig", "EngineOutput", "GPT2Engine", "StaticCache", "load_engine", "num_parameters", "supports"]
