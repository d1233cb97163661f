"""Latent diffusion over the text VAE: the noise round trip, guidance, checkpoints, the training script."""

import json
import math
from dataclasses import asdict

import pytest
import torch

import textopia
import textopia.models.latent_diffusion  # registers "latent-diffusion"
from textopia.data.corpus import read_split
from textopia.generation.base import TextopiaError
from textopia.models.checkpoint import load_checkpoint, save_checkpoint
from textopia.models.latent_diffusion import (
    DiffusionConfig,
    build_diffusion,
    idea_token_ids,
)
from textopia.models.text_vae import VAEConfig, posterior_batches

TOY_MEAN = torch.tensor([2.0, -1.0, 0.5, 0.0])
TOY_STD = torch.tensor([0.5, 1.5, 1.0, 0.2])


def _tiny(tokenizer, **extra):
    """A tiny model: a 4-d VAE latent, a 2-block denoiser of width 64."""
    values = {"n_hidden": 64, "n_blocks": 2, "time_dim": 32, "idea_hidden": 32,
              "vae": asdict(VAEConfig(n_embd=8, n_hidden_enc=8, n_hidden=8, latent_dim=4))}
    values.update(extra)
    return build_diffusion(DiffusionConfig(**values), tokenizer)


def _perturb(model, seed=0):
    """Random weights everywhere, so that the output (and the idea) matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def _sample_stats(model, n=2000):
    z = model.sample_latents(None, n, steps=50, guidance=0.0, generator=torch.Generator().manual_seed(1))
    return z.mean(dim=0), z.std(dim=0)


def _close_to_toy(mean, std):
    return bool((mean - TOY_MEAN).abs().max() < 0.15) and bool(((std / TOY_STD - 1).abs() < 0.25).all())


def test_registered_as_a_diffusion_model():
    from textopia.generation.diffusion import DiffusionGenerator
    from textopia.generation.loader import generator_class
    from textopia.models.registry import LatentDiffusionModel, get_spec
    from textopia.training.diffusion import LatentTask
    from textopia.training.trainer import task_class

    role = get_spec("latent-diffusion").role
    assert role is LatentDiffusionModel
    assert generator_class(role) is DiffusionGenerator and task_class(role) is LatentTask


def test_loss_at_init_is_the_target_variance(tokenizer):
    # The output layer starts at zero, so the loss is E[target²] = 1 for ε, and for v when z0 ~ N(0, I).
    torch.manual_seed(0)
    z0 = torch.randn(4096, 4)
    ids, has = idea_token_ids(tokenizer, ["a castle"] * 4096, 32)
    for prediction_type in ("epsilon", "v_prediction"):
        model = _tiny(tokenizer, prediction_type=prediction_type)
        loss = model.loss(z0, ids, has, torch.Generator().manual_seed(0))
        assert loss.dim() == 0 and float(loss.detach()) == pytest.approx(1.0, abs=0.05)


def test_the_vae_is_frozen_and_stays_in_eval_mode(tokenizer):
    model = _tiny(tokenizer, dropout=0.1).train()
    assert not any(p.requires_grad for p in model.vae.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("vae."))
    assert model.denoiser.training and not model.vae.training


def test_idea_token_ids_pads_and_flags(tokenizer):
    ids, has = idea_token_ids(tokenizer, ["red dragon", None, "  ", "a " * 50], max_tokens=5)
    assert ids.dtype == torch.long and ids.shape == (4, 5)
    assert has.tolist() == [True, False, False, True]
    assert ids[0, : len(tokenizer.encode("red dragon"))].tolist() == tokenizer.encode("red dragon")
    assert (ids[1] == tokenizer.pad_id).all() and (ids[2] == tokenizer.pad_id).all()


def test_noising_and_denoising_recover_a_toy_distribution(tokenizer):
    """Train on z ~ N(μ, diag σ²) in 4 dimensions; 2,000 DDIM samples have μ and σ back."""
    torch.manual_seed(1)
    model = _tiny(tokenizer, p_uncond=1.0)
    mean, std = _sample_stats(model)
    assert not _close_to_toy(mean, std)  # untrained: the check can fail
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.0)
    ids, has = idea_token_ids(tokenizer, [None] * 512, 32)
    steps = 1000
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = 3e-3 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        z0 = TOY_MEAN + TOY_STD * torch.randn(512, 4, generator=g)
        loss = model.loss(z0, ids, has, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    mean, std = _sample_stats(model)
    assert _close_to_toy(mean, std), (mean, std)


def test_guidance_zero_is_unconditional_sampling(tokenizer):
    model = _tiny(tokenizer)
    _perturb(model)
    ids, _ = idea_token_ids(tokenizer, ["red dragon"], 32)

    def sample(idea, guidance):
        return model.sample_latents(idea, 16, steps=10, guidance=guidance, generator=torch.Generator().manual_seed(3))

    uncond = sample(None, 3.0)
    assert uncond.shape == (16, 4) and uncond.dtype == torch.float32 and torch.isfinite(uncond).all()
    assert torch.equal(sample(ids, 0.0), uncond)
    assert torch.equal(sample(None, 0.0), uncond)
    guided = sample(ids, 3.0)
    assert torch.equal(sample(ids, 3.0), guided)  # the seed decides
    assert (guided - uncond).abs().max() > 1e-3
    assert not torch.equal(sample(ids, 1.0), guided)


def test_stochastic_ddim_is_deterministic_per_seed(tokenizer):
    model = _tiny(tokenizer)
    _perturb(model)

    def sample(seed):
        return model.sample_latents(None, 8, steps=10, generator=torch.Generator().manual_seed(seed), eta=1.0)

    assert torch.equal(sample(0), sample(0)) and not torch.equal(sample(0), sample(1))


def test_checkpoint_round_trip(tokenizer, tmp_path):
    model = _tiny(tokenizer, prediction_type="v_prediction", scale_factor=0.37)
    _perturb(model)
    meta = {"kind": "latent-diffusion", "model": vars(model.config).copy(), "data": {}, "train": {},
            "num_parameters": sum(p.numel() for p in model.parameters()), "version": textopia.__version__}
    save_checkpoint(tmp_path / "ckpt", model, tokenizer, meta)
    loaded, tok, meta2 = load_checkpoint(tmp_path / "ckpt")
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert loaded.config.scale_factor == 0.37 and meta2["model"]["scale_factor"] == 0.37
    assert dict(loaded.noise_scheduler().config) == dict(model.noise_scheduler().config)
    saved = json.loads((tmp_path / "ckpt" / "scheduler_config.json").read_text())
    assert saved["prediction_type"] == "v_prediction" and saved["clip_sample"] is False
    assert len(tok) == len(tokenizer)
    ids, _ = idea_token_ids(tokenizer, ["red dragon"], 32)
    model.eval()
    for idea in (None, ids):
        a = model.sample_latents(idea, 8, steps=10, generator=torch.Generator().manual_seed(5))
        b = loaded.sample_latents(idea, 8, steps=10, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b)


def test_bad_configs_are_refused(tokenizer):
    with pytest.raises(TextopiaError, match="vae"):
        build_diffusion(DiffusionConfig(), tokenizer)
    with pytest.raises(TextopiaError, match="prediction_type"):
        _tiny(tokenizer, prediction_type="sample")
    with pytest.raises(TextopiaError, match="latents must be"):
        _tiny(tokenizer, latents="posterior")


def test_latents_draw_from_the_posteriors_and_know_their_spread():
    from textopia.training.diffusion import Latents

    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(400, 3, generator=gen) * torch.tensor([0.5, 1.0, 2.0])  # (N, nz)
    logvar = torch.log(torch.rand(400, 3, generator=gen) * 0.5 + 0.1)
    means = Latents(mu, logvar, "mean")
    idx = torch.tensor([3, 3, 7])
    assert torch.equal(means.draw(idx, gen), mu[idx])
    assert means.spread() == pytest.approx(float(mu.double().std()), rel=1e-6)

    samples = Latents(mu, logvar, "sample")
    draws = torch.stack([samples.draw(torch.arange(400), gen) for _ in range(200)])  # (200, N, nz)
    assert samples.spread() == pytest.approx(float(draws.double().std()), rel=0.01)  # Var z = Var μ + E σ²
    assert samples.spread() > means.spread()
    per_prompt = draws[:, 3]  # (200, nz): draws of one prompt's posterior
    assert torch.allclose(per_prompt.mean(0), mu[3], atol=4 * float(samples.std[3].max()) / 200**0.5)
    assert torch.allclose(per_prompt.std(0), samples.std[3], rtol=0.2)
    with pytest.raises(TextopiaError, match="latents must be"):
        Latents(mu, logvar, "median")


# -- the training script -----------------------------------------------------------------------

def _diffusion_config(prepared, vae_dir, out, **extra):
    from textopia.training.config import load_config

    values = {"model.kind": "'latent-diffusion'", "model.vae_checkpoint": f"'{vae_dir}'", "model.n_hidden": 32,
              "model.n_blocks": 2, "model.time_dim": 16, "model.idea_hidden": 32, "data.dir": f"'{prepared}'",
              "data.train_limit": 200, "data.valid_limit": 20, "data.max_length": 64, "train.out_dir": f"'{out}'",
              "train.max_steps": 30, "train.batch_size": 16, "train.warmup_steps": 5, "train.eval_every": 15,
              "train.save_every": 15, "train.log_every": 10, "train.lr": 1e-3, **extra}
    return load_config(None, [f"{k}={v}" for k, v in values.items()])


def test_posterior_params_match_posterior_batches(tiny_vae_checkpoint, prepared):
    from textopia.training.diffusion import posterior_params

    vae, tokenizer, _ = load_checkpoint(tiny_vae_checkpoint)
    prompts = read_split(prepared, "valid")[:20]
    mine, mine_logvar = posterior_params(vae, tokenizer, prompts, max_length=64, batch_size=7)  # (20, 8) each
    batches = list(posterior_batches(vae, tokenizer, prompts, max_length=64, batch_size=7))
    ref = torch.cat([mu for _, mu, _ in batches])
    lengths = [len(tokenizer.encode(p)) for p in prompts]
    order = sorted(range(len(prompts)), key=lengths.__getitem__)  # posterior_batches' order
    assert mine.shape == ref.shape == (20, 8)
    assert torch.allclose(mine[order], ref, atol=1e-6)
    assert torch.allclose(mine_logvar[order], torch.cat([lv for _, _, lv in batches]), atol=1e-6)
    assert mine.std(dim=0).min() > 0


def test_train_diffusion_end_to_end(tiny_vae_checkpoint, prepared, tmp_path):
    from textopia.training.trainer import train as train_diffusion

    out = train_diffusion(_diffusion_config(prepared, tiny_vae_checkpoint, tmp_path / "ld"), progress=False)
    model, tokenizer, meta = load_checkpoint(out)
    assert meta["kind"] == "latent-diffusion" and meta["model"]["vae"]["latent_dim"] == 8
    assert meta["model"]["scale_factor"] == model.config.scale_factor != 1.0
    assert (out / "latents.safetensors").is_file() and (out / "scheduler_config.json").is_file()
    vae, _, _ = load_checkpoint(tiny_vae_checkpoint)
    assert all(torch.equal(v, model.vae.state_dict()[k]) for k, v in vae.state_dict().items())
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in lines if r["split"] == "train"]
    assert [r["step"] for r in train_lines] == [10, 20, 30]
    assert all(math.isfinite(r["loss"]) and r["elapsed_s"] >= 0 for r in train_lines)
    assert [r["step"] for r in lines if r["split"] == "valid"] == [15, 30]
    ids, _ = idea_token_ids(tokenizer, ["castle"], model.config.max_idea_tokens)
    z = model.sample_latents(ids, 5, steps=10, generator=torch.Generator().manual_seed(0))
    assert z.shape == (5, 8) and torch.isfinite(z).all()

    # Resume: 30 -> 40 steps continues the run; the cached latents are reused.
    resumed = train_diffusion(_diffusion_config(prepared, tiny_vae_checkpoint, tmp_path / "ld", **{"train.max_steps": 40}),
                              resume=True, progress=False)
    _, _, meta = load_checkpoint(resumed)
    lines = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["split"] == "train"] == [10, 20, 30, 40]
    assert meta["model"]["scale_factor"] == model.config.scale_factor


def test_train_diffusion_on_posterior_samples(tiny_vae_checkpoint, prepared, tmp_path):
    from safetensors.torch import load_file

    from textopia.training.diffusion import Latents
    from textopia.training.trainer import train as train_diffusion

    means = train_diffusion(_diffusion_config(prepared, tiny_vae_checkpoint, tmp_path / "mean",
                                              **{"train.max_steps": 5, "model.latents": "'mean'"}), progress=False)
    samples = train_diffusion(_diffusion_config(prepared, tiny_vae_checkpoint, tmp_path / "sample",
                                                **{"train.max_steps": 5, "model.latents": "'sample'"}), progress=False)
    _, _, mean_meta = load_checkpoint(means)
    model, _, meta = load_checkpoint(samples)
    assert mean_meta["model"]["latents"] == "mean" and meta["model"]["latents"] == model.config.latents == "sample"
    cache = load_file(str(samples / "latents.safetensors"))
    expected = Latents(cache["train_mu"], cache["train_logvar"], "sample").spread()
    assert model.config.scale_factor == pytest.approx(1.0 / expected)
    assert model.config.scale_factor < mean_meta["model"]["scale_factor"]  # samples spread wider than means


def test_train_diffusion_refuses_a_non_vae_checkpoint(tokenizer, prepared, tmp_path):
    from textopia.training.trainer import train as train_diffusion

    model = _tiny(tokenizer)
    save_checkpoint(tmp_path / "not-a-vae", model, tokenizer, {"kind": "latent-diffusion", "model": vars(model.config)})
    with pytest.raises(TextopiaError, match="not a 'vae'"):
        train_diffusion(_diffusion_config(prepared, tmp_path / "not-a-vae", tmp_path / "ld"), progress=False)
    with pytest.raises(TextopiaError, match="vae_checkpoint"):
        train_diffusion(_diffusion_config(prepared, "", tmp_path / "ld"), progress=False)


def test_train_diffusion_continues_from_a_checkpoint(tiny_diffusion_checkpoint, prepared, tmp_path):
    from textopia.training.trainer import train as train_diffusion

    start, _, start_meta = load_checkpoint(tiny_diffusion_checkpoint)
    out = train_diffusion(_diffusion_config(prepared, "unused", tmp_path / "more", **{
        "model.init_from": f"'{tiny_diffusion_checkpoint}'", "model.p_uncond": 0.2, "train.max_steps": 5,
        "model.n_hidden": start.config.n_hidden, "model.n_blocks": start.config.n_blocks,
        "model.time_dim": start.config.time_dim, "model.idea_hidden": start.config.idea_hidden}), progress=False)
    model, _, meta = load_checkpoint(out)
    # the shape, the scale and the autoencoder are the checkpoint's; p_uncond is the new config's
    assert meta["model"]["initialized_from"] == str(tiny_diffusion_checkpoint) and meta["model"]["init_from"] is None
    assert model.config.scale_factor == start.config.scale_factor and model.config.p_uncond == 0.2
    assert meta["model"]["vae_checkpoint"] == start_meta["model"]["vae_checkpoint"]
    assert all(torch.equal(v, model.vae.state_dict()[k]) for k, v in start.vae.state_dict().items())
    moved = [k for k, v in start.denoiser.state_dict().items() if not torch.equal(v, model.denoiser.state_dict()[k])]
    assert moved  # it trained from there
    with pytest.raises(TextopiaError, match="fixes n_hidden"):
        train_diffusion(_diffusion_config(prepared, "unused", tmp_path / "bad", **{
            "model.init_from": f"'{tiny_diffusion_checkpoint}'", "model.n_hidden": 64}), progress=False)
    with pytest.raises(TextopiaError, match="not 'latent-diffusion'"):
        train_diffusion(_diffusion_config(prepared, "unused", tmp_path / "bad", **{
            "model.init_from": f"'{start_meta['model']['vae_checkpoint']}'"}), progress=False)


def test_swap_decoder_keeps_the_encoder_unless_told(tiny_diffusion_checkpoint, tmp_path):
    from textopia.training.diffusion import swap_decoder

    start, tokenizer, start_meta = load_checkpoint(tiny_diffusion_checkpoint)
    vae_dir = start_meta["model"]["vae_checkpoint"]
    vae, vae_tokenizer, vae_meta = load_checkpoint(vae_dir)
    # A decoder trained on (the encoder as it was) swaps in; the denoiser stays.
    with torch.no_grad():
        next(p for n, p in vae.named_parameters() if n.startswith("decoder.")).add_(1.0)
    save_checkpoint(tmp_path / "new-decoder", vae, vae_tokenizer, vae_meta)
    swapped, _, meta = load_checkpoint(swap_decoder(tiny_diffusion_checkpoint, tmp_path / "new-decoder",
                                                    tmp_path / "out"))
    assert all(torch.equal(v, swapped.vae.state_dict()[k]) for k, v in vae.state_dict().items())
    assert all(torch.equal(v, swapped.denoiser.state_dict()[k]) for k, v in start.denoiser.state_dict().items())
    assert meta["model"]["vae_checkpoint"] == str(tmp_path / "new-decoder")
    # the known words travel with it (known_words_only, the reranker's clean tier need them)
    assert (tmp_path / "out" / "known_words.txt").read_bytes() == (tiny_diffusion_checkpoint / "known_words.txt").read_bytes()
    # A new encoder is refused, unless the copy is to be trained on.
    with torch.no_grad():
        next(p for n, p in vae.named_parameters() if not n.startswith("decoder.")).add_(1.0)
    save_checkpoint(tmp_path / "new-encoder", vae, vae_tokenizer, vae_meta)
    with pytest.raises(TextopiaError, match="encoder .* differs"):
        swap_decoder(tiny_diffusion_checkpoint, tmp_path / "new-encoder", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
    swapped, _, _ = load_checkpoint(swap_decoder(tiny_diffusion_checkpoint, tmp_path / "new-encoder", tmp_path / "out3",
                                                 new_encoder=True))
    assert all(torch.equal(v, swapped.vae.state_dict()[k]) for k, v in vae.state_dict().items())
