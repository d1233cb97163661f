"""Shallow fusion of a latent decoder with a language model (textopia.generation.fusion)."""

from __future__ import annotations

import pytest
import torch

from textopia.generation.base import TextopiaError
from textopia.generation.diffusion import VARIATION_TEMPERATURE
from textopia.generation.fusion import CompactFusedCache, FusedCache, ShallowFusion, check_lm_weight
from textopia.generation.loader import load
from textopia.generation.vae import slerp


class _FixedLM(torch.nn.Module):
    """A causal LM whose logits are given; its cache counts the calls (and may drop rows)."""

    def __init__(self, logits: torch.Tensor, compact: bool) -> None:
        super().__init__()
        self.logits, self.compact = logits, compact

    def forward(self, input_ids, past_key_values=None, use_cache=False):
        cache = past_key_values or (_Rows() if self.compact else [])
        if isinstance(cache, list):
            cache.append(input_ids.size(1))
        return type("Out", (), {"logits": self.logits[: input_ids.size(0)], "past_key_values": cache})()


class _Rows:
    def __init__(self) -> None:
        self.rows = None

    def keep_rows(self, rows):
        self.rows = rows.tolist()


def test_shallow_fusion_adds_the_language_models_log_probabilities():
    torch.manual_seed(0)
    a, b = torch.randn(3, 1, 11), torch.randn(3, 1, 11)
    fused = ShallowFusion(_FixedLM(a, True), _FixedLM(b, True), 0.5)
    out = fused(input_ids=torch.zeros(3, 1, dtype=torch.long), use_cache=True)
    expected = torch.log_softmax(a, -1) + 0.5 * torch.log_softmax(b, -1)
    assert torch.allclose(out.logits, expected, atol=1e-6)
    # Both caches go on together, and finished rows leave both.
    assert isinstance(out.past_key_values, CompactFusedCache)
    out.past_key_values.keep_rows(torch.tensor([2, 0]))
    assert out.past_key_values.decoder.rows == [2, 0] and out.past_key_values.lm.rows == [2, 0]
    again = fused(input_ids=torch.zeros(2, 1, dtype=torch.long), past_key_values=out.past_key_values, use_cache=True)
    assert again.past_key_values.decoder is out.past_key_values.decoder
    # A cache that cannot drop rows makes the pair keep every row (the sampler then checks hasattr).
    mixed = ShallowFusion(_FixedLM(a, False), _FixedLM(b, True), 1.0)(input_ids=torch.zeros(3, 1, dtype=torch.long),
                                                                       use_cache=True)
    assert type(mixed.past_key_values) is FusedCache and not hasattr(mixed.past_key_values, "keep_rows")
    # Weight 0 is the decoder alone, normalised.
    alone = ShallowFusion(_FixedLM(a, True), _FixedLM(b, True), 0.0)(input_ids=torch.zeros(3, 1, dtype=torch.long))
    assert torch.allclose(alone.logits, torch.log_softmax(a, -1)) and alone.past_key_values is None


def test_shallow_fusion_refuses_two_vocabularies_and_bad_weights():
    fused = ShallowFusion(_FixedLM(torch.zeros(1, 1, 5), True), _FixedLM(torch.zeros(1, 1, 6), True), 1.0)
    with pytest.raises(TextopiaError, match="one vocabulary"):
        fused(input_ids=torch.zeros(1, 1, dtype=torch.long))
    for bad in (-0.1, 4.5, float("nan"), float("inf")):
        with pytest.raises(TextopiaError, match="lm_weight"):
            check_lm_weight(bad)
    assert check_lm_weight(4) == 4.0


def test_diffusion_generator_writes_through_shallow_fusion(tiny_diffusion_checkpoint, tiny_checkpoint):
    gen = load(tiny_diffusion_checkpoint)
    kw = {"max_new_tokens": 10, "min_new_tokens": 0, "seed": 3, "steps": 4}
    assert gen.lm_weight == 0.0  # a checkpoint without a measured default: the decoder alone
    alone = gen.generate("castle", 2, **kw)
    assert [g.prompt for g in gen.generate("castle", 2, lm_weight=0.0, **kw)] == [g.prompt for g in alone]
    assert alone[0].settings["lm_weight"] == 0.0
    # The embedded default GPT has another tokenizer than the tiny model's: refused, by name.
    with pytest.raises(TextopiaError, match="another tokenizer"):
        gen.generate("castle", 1, lm_weight=1.0, **kw)
    gen.meta["fusion_lm"] = str(tiny_checkpoint)  # trained on the same prepared data and tokenizer
    gen._lm = None
    fused = gen.generate("castle", 2, lm_weight=2.0, **kw)
    assert len(fused) == 2 and fused[0].settings["lm_weight"] == 2.0
    decoder = object()
    model = gen.sampling_model(decoder, gen.settings(lm_weight=2.0))
    assert isinstance(model, ShallowFusion) and model.weight == 2.0 and model.lm is gen.fusion_lm()
    assert gen.sampling_model(decoder, gen.settings()) is decoder
    assert gen.info()["lm_weight"] == 0.0
    with pytest.raises(TextopiaError, match="lm_weight"):
        gen.generate("castle", 1, lm_weight=-1.0)


def test_prompts_from_an_idea_fuse_at_the_generate_weight(tiny_diffusion_checkpoint, tiny_checkpoint, monkeypatch):
    """A checkpoint's ``generate_lm_weight`` is λ for prompts written from an idea (generate and
    the service's batches); variations keep ``default_lm_weight``, which keeps what the latent carries."""
    from textopia.generation.diffusion import DiffusionGenerator

    raw = load(tiny_diffusion_checkpoint)
    meta = {**raw.meta, "default_lm_weight": 0.5, "generate_lm_weight": 2.0, "fusion_lm": str(tiny_checkpoint)}
    gen = DiffusionGenerator(raw.diffusion, raw.tokenizer, meta, raw.name, load_lm=raw.load_lm)
    assert (gen.lm_weight, gen.generate_lm_weight) == (0.5, 2.0)
    assert gen.info()["generate_lm_weight"] == 2.0
    assert gen.fusion_weight(None) == 2.0 and gen.settings().lm_weight == 0.5
    weights = []
    original = DiffusionGenerator.sampling_model
    monkeypatch.setattr(DiffusionGenerator, "sampling_model",
                        lambda self, decoder, latent=None: weights.append(self.fusion_weight(latent))
                        or original(self, decoder, latent))
    kw = {"max_new_tokens": 8, "min_new_tokens": 0, "seed": 3, "steps": 2}
    out = gen.generate("castle", 1, **kw)
    assert out[0].settings["lm_weight"] == 2.0 and set(weights) == {2.0}
    weights.clear()
    gen.variations("a castle on a hill, oil painting", n=1, seed=3)
    assert set(weights) == {0.5}
    # Without generate_lm_weight the one weight serves both.
    alone = DiffusionGenerator(raw.diffusion, raw.tokenizer,
                               {k: v for k, v in meta.items() if k != "generate_lm_weight"}, raw.name)
    assert alone.generate_lm_weight == alone.lm_weight == 0.5
