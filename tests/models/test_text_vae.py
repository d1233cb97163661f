"""The text VAE: its loss terms, the schedules, word dropout, the trainer's per-term log, checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch

from textopia.data.tokenizer import IGNORE_INDEX
from textopia.generation.base import TextopiaError
from textopia.models.latent_objective import free_bits_kl, gaussian_kl, kl_beta, mmd, reparameterize
from textopia.models.text_vae import TextVAE, VAEConfig, build_vae, prompt_tokens


def test_gaussian_kl_of_known_gaussians():
    # KL(N(1, 2^2) || N(0, 1)) = 0.5 (sigma^2 + mu^2 - 1 - log sigma^2) = 0.5 (4 + 1 - 1 - log 4)
    kl = gaussian_kl(torch.tensor([1.0]), torch.tensor([math.log(4.0)]))
    assert float(kl) == pytest.approx(0.5 * (4.0 - math.log(4.0)), rel=1e-6)
    # Two arbitrary diagonal Gaussians against torch.distributions.
    g = torch.Generator().manual_seed(0)
    mu, lv, mu_p, lv_p = (torch.randn(5, 3, generator=g) for _ in range(4))
    ours = gaussian_kl(mu, lv, mu_p, lv_p)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * lv).exp()), torch.distributions.Normal(mu_p, (0.5 * lv_p).exp()))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    assert float(gaussian_kl(mu, torch.zeros_like(mu), mu, torch.zeros_like(mu)).abs().max()) < 1e-7


def test_reparameterisation_gradient_matches_the_analytic_one():
    # E[z^2] = mu^2 + sigma^2, so d/dmu = 2 mu and d/dlogvar = sigma^2.
    mu = torch.tensor([0.7, -1.2], requires_grad=True)
    logvar = torch.tensor([0.3, -0.8], requires_grad=True)
    z = reparameterize(mu[None].expand(1, 2), logvar[None].expand(1, 2), num_samples=200_000,
                       generator=torch.Generator().manual_seed(0))
    (z**2).mean(dim=(0, 1)).sum().backward()
    torch.testing.assert_close(mu.grad, 2 * mu.detach(), rtol=0.02, atol=0.01)
    torch.testing.assert_close(logvar.grad, logvar.detach().exp(), rtol=0.02, atol=0.01)


def test_reparameterisation_is_deterministic_given_the_noise():
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    a = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(1))
    b = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (4, 3)
    assert reparameterize(mu, logvar, num_samples=7).shape == (4, 7, 3)


def test_linear_annealing_is_a_pure_function_of_the_step():
    f = {"schedule": "linear", "beta_max": 1.0, "anneal_steps": 100}
    assert [kl_beta(s, **f) for s in (0, 25, 50, 100, 1000)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert kl_beta(50, **f) == kl_beta(50, **f)
    assert kl_beta(50, schedule="linear", beta_max=0.5, anneal_steps=100, start=0.1) == pytest.approx(0.3)
    assert kl_beta(0, schedule="constant", beta_max=0.7) == 0.7


def test_cyclical_annealing_rises_then_holds_in_each_cycle():
    # Fu et al. 2019: T = 400 steps, M = 4 cycles of 100, R = 0.5 of each spent rising.
    f = {"schedule": "cyclical", "beta_max": 1.0, "anneal_steps": 400, "cycles": 4, "ratio": 0.5}
    values = {s: kl_beta(s, **f) for s in (0, 25, 50, 75, 99, 100, 125, 350, 399, 400, 10_000)}
    assert values == {0: 0.0, 25: 0.5, 50: 1.0, 75: 1.0, 99: 1.0, 100: 0.0, 125: 0.5, 350: 1.0, 399: 1.0,
                      400: 1.0, 10_000: 1.0}
    with pytest.raises(ValueError, match="cycles"):
        kl_beta(3, schedule="cyclical", anneal_steps=10, cycles=0)
    with pytest.raises(ValueError, match="schedule"):
        kl_beta(3, schedule="sigmoid")


def test_free_bits_clamps_each_dimension_and_stops_its_gradient():
    kl = torch.tensor([[0.02, 0.4], [0.08, 0.2]], requires_grad=True)  # batch means 0.05 and 0.3
    term = free_bits_kl(kl, 0.1)
    assert float(term) == pytest.approx(0.1 + 0.3)
    term.backward()
    assert torch.equal(kl.grad[:, 0], torch.zeros(2))  # under the floor: no push towards the prior
    assert torch.allclose(kl.grad[:, 1], torch.full((2,), 0.5))
    assert float(free_bits_kl(kl.detach(), 0.0)) == pytest.approx(0.35)


def test_mmd_is_near_zero_for_one_distribution_and_large_for_two():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(256, 8, generator=g), torch.randn(256, 8, generator=g)
    same = float(mmd(a, b))
    shifted = float(mmd(a + 1.5, b))
    assert abs(same) < 0.01
    assert shifted > 10 * max(abs(same), 1e-3)


def _tiny(tokenizer, **over) -> TextVAE:
    cfg = VAEConfig(n_embd=16, n_hidden=24, n_hidden_enc=8, latent_dim=4, **over)
    return build_vae(cfg, tokenizer)


def _batch(tokenizer, prompts, ideas=None):
    from textopia.data.batching import collate

    ideas = ideas or [None] * len(prompts)
    return collate([tokenizer.example(tokenizer.encode(p), i, 64) for p, i in zip(prompts, ideas)], tokenizer.pad_id)


def test_encoder_reads_the_prompt_only(tokenizer):
    model = _tiny(tokenizer).eval()
    plain = _batch(tokenizer, ["a red fox in snow", "castle"])
    with_idea = _batch(tokenizer, ["a red fox in snow", "castle"], ideas=["fox", "old castle on a hill"])
    ids_a, len_a = prompt_tokens(plain["input_ids"], plain["labels"])
    ids_b, len_b = prompt_tokens(with_idea["input_ids"], with_idea["labels"])
    assert torch.equal(ids_a, ids_b) and torch.equal(len_a, len_b)
    assert ids_a[0, len_a[0] - 1] == tokenizer.eos_id
    mu_a, _ = model.encode(ids_a, len_a)
    mu_b, _ = model.encode(ids_b, len_b)
    torch.testing.assert_close(mu_a, mu_b)


def test_forward_reports_each_term_and_the_weighted_objective(tokenizer):
    torch.manual_seed(0)
    model = _tiny(tokenizer, lambda_div=5.0, free_bits=0.2, lambda_recon=2.0)
    model.kl_weight = 0.5
    batch = _batch(tokenizer, ["a red fox in snow", "castle on a hill, oil painting", "portrait of a woman"])
    out = model(**batch)
    m = out.metrics
    assert set(m) >= {"recon", "recon_per_token", "kl", "kl_term", "mmd", "beta", "elbo"}
    assert m["kl_term"] == pytest.approx(max(m["kl_term"], 4 * 0.2))
    tokens = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    expected = (2.0 * m["recon"] + 0.5 * m["kl_term"] + 5.0 * m["mmd"]) * 3 / tokens
    assert float(out.loss) == pytest.approx(expected, rel=1e-4)
    out.loss.backward()
    assert model.encoder.weight_ih_l0.grad is not None and model.to_posterior.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="labels"):
        model(batch["input_ids"])


def test_word_dropout_replaces_prompt_tokens_only(tokenizer):
    model = _tiny(tokenizer, word_dropout=0.999).train()
    batch = _batch(tokenizer, ["a red fox in snow at night"], ideas=["fox"])
    dropped = model.word_dropout(batch["input_ids"], batch["labels"])
    prompt = batch["labels"] != IGNORE_INDEX
    assert bool((dropped[prompt] == tokenizer.pad_id).all())
    assert torch.equal(dropped[~prompt], batch["input_ids"][~prompt])
    assert torch.equal(model.eval().word_dropout(batch["input_ids"], batch["labels"]), batch["input_ids"])


def test_bad_settings_are_named(tokenizer):
    with pytest.raises(TextopiaError, match="word_dropout"):
        _tiny(tokenizer, word_dropout=1.5)
    with pytest.raises(TextopiaError, match="kl_schedule"):
        _tiny(tokenizer, kl_schedule="sigmoid")


def test_the_latent_carries_the_prompt_when_kl_is_free(tokenizer):
    """With beta = 0 (a plain autoencoder) a tiny VAE learns to reconstruct a few prompts from z."""
    from textopia.generation.vae import VAEGenerator

    torch.manual_seed(0)
    model = build_vae(VAEConfig(n_embd=32, n_hidden=64, n_hidden_enc=32, latent_dim=8, kl_schedule="constant",
                                beta_max=0.0), tokenizer)
    prompts = ["a red fox in the snow", "castle on a hill at dawn", "portrait of an old sailor", "blue robot"]
    batch = _batch(tokenizer, prompts)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    gen = VAEGenerator(model.eval(), tokenizer, {"kind": "vae"}, name="tiny")
    assert [gen.reconstruct(p) for p in prompts] == prompts


def test_trainer_logs_each_term_and_anneals(tiny_vae_checkpoint):
    lines = [json.loads(x) for x in (tiny_vae_checkpoint / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in lines if r["split"] == "train"]
    valid = [r for r in lines if r["split"] == "valid"]
    assert all({"recon", "kl", "kl_term", "mmd", "beta", "elbo"} <= set(r) for r in train)
    assert len({round(r["beta"], 6) for r in train}) > 1  # the cyclical schedule moved beta
    assert valid and all({"kl", "recon_per_token", "active_units", "elbo_perplexity"} <= set(r) for r in valid)


def test_checkpoint_round_trip(tiny_vae_checkpoint):
    from textopia.models.checkpoint import load_checkpoint, save_checkpoint

    model, tok, meta = load_checkpoint(tiny_vae_checkpoint)
    assert isinstance(model, TextVAE) and meta["kind"] == "vae"
    assert model.config.unk_id == tok.pad_id and model.config.latent_dim == 8
    out = save_checkpoint(tiny_vae_checkpoint.parent / "vae-copy", model, tok, meta)
    again, _, _ = load_checkpoint(out)
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
