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


def test_interpolation_writes_its_interior_points_from_both_ends(tiny_diffusion_checkpoint, tiny_checkpoint):
    gen = load(tiny_diffusion_checkpoint)
    gen.meta["fusion_lm"] = str(tiny_checkpoint)
    a, b = "a castle on a hill, oil painting", "portrait of a woman, digital art"
    gen.lm_weight = 3.0  # the checkpoint's default λ: the interior points fuse at it
    path = gen.interpolate(a, b, steps=4)
    assert len(path) == 4 and path == gen.interpolate(a, b, steps=4)  # the same two prompts, the same path
    # the ends stay the reconstructions, written by the decoder alone
    assert path[0] == gen.reconstruct(a) and path[-1] == gen.reconstruct(b)
    mu_a, mu_b = gen.encode(a)[0], gen.encode(b)[0]
    inner = slerp(mu_a, mu_b, torch.linspace(0.0, 1.0, 4))[1:-1]
    assert path[1:-1] == gen.decode_midpoints(inner, a, b)
    # each written as generate writes the idea of both ends' subjects (the first two content words
    # of each), by SDEdit from its point at interpolation_strength, seed 0, fused at the model's λ
    settings = gen.settings(init=inner[0], strength=gen.interpolation_strength)
    first = gen.generate_with("castle hill portrait woman", 1, gen.decoding(seed=0, temperature=VARIATION_TEMPERATURE),
                              settings)
    assert path[1] == first[0].prompt
    assert all(all(w in m.lower() for w in ("castle", "hill", "portrait", "woman")) for m in path[1:-1]), path
    gen.lm_weight = 0.0
    assert gen.decode_midpoints(inner, a, b) != path[1:-1]  # λ = 3 moves the tiny decoder's choices
