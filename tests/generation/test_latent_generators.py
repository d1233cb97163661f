"""The VAE and latent diffusion Generators, and the latent-space CLI commands, on tiny checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch

from textopia.cli import main
from textopia.generation.base import LatentGenerator, TextopiaError
from textopia.generation.loader import load
from textopia.generation.vae import slerp


def test_slerp_keeps_the_ends_and_follows_the_great_circle():
    a, b = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 2.0])
    path = slerp(a, b, torch.linspace(0, 1, 5))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    for k, point in enumerate(path):  # on the circle of radius 2, at equal angles
        assert float(point.norm()) == pytest.approx(2.0, abs=1e-5)
        assert math.atan2(float(point[1]), float(point[0])) == pytest.approx(k * math.pi / 8, abs=1e-5)
    # Parallel vectors: the straight line, no division by sin(0).
    torch.testing.assert_close(slerp(a, 3 * a, torch.tensor([0.5]))[0], 2 * a)


def test_vae_generator_writes_from_the_prior_and_an_idea(tiny_vae_checkpoint):
    gen = load(tiny_vae_checkpoint)
    assert isinstance(gen, LatentGenerator) and gen.info()["latent_dim"] == 8
    a = gen.generate("castle", 3, seed=1, max_new_tokens=12, min_new_tokens=0)
    b = gen.generate("castle", 3, seed=1, max_new_tokens=12, min_new_tokens=0)
    assert [g.prompt for g in a] == [g.prompt for g in b] and len(a) == 3
    assert all(g.idea == "castle" for g in a)
    assert gen.generate(None, 2, seed=0, max_new_tokens=8)


def test_vae_generator_latent_methods(tiny_vae_checkpoint):
    gen = load(tiny_vae_checkpoint)
    text = gen.reconstruct("a castle on a hill, oil painting")
    assert isinstance(text, str)
    path = gen.interpolate("a castle on a hill", "portrait of a woman", steps=5)
    assert len(path) == 5
    # The path's ends are the greedy decodes of the two posterior means.
    assert path[0] == gen.reconstruct("a castle on a hill") and path[-1] == gen.reconstruct("portrait of a woman")
    v1 = gen.variations("a castle on a hill", 3, spread=1.0, seed=4)
    assert v1 == gen.variations("a castle on a hill", 3, spread=1.0, seed=4)
    assert 1 <= len(v1) <= 3 and len(set(v1)) == len(v1)
    # No spread: every latent is the posterior mean, so at most one distinct (non-empty) prompt.
    still = gen.variations("a castle on a hill", 4, spread=0.0, seed=0)
    assert still == ([gen.reconstruct("a castle on a hill")] if gen.reconstruct("a castle on a hill") else [])
    with pytest.raises(TextopiaError, match="steps"):
        gen.interpolate("a", "b", steps=1)
    with pytest.raises(TextopiaError, match="spread"):
        gen.variations("a", 2, spread=-1.0)
    with pytest.raises(TextopiaError, match="^strength is latent diffusion's SDEdit strength; .* take spread"):
        gen.variations("a", 2, strength=0.5)
    with pytest.raises(TextopiaError, match="empty prompt"):
        gen.reconstruct("   ")
    # refine_steps: the default refines the encoder's mean (reconstruct, interpolate and variations
    # alike); 0 keeps the encoder's own; a count outside 0..200 is refused
    assert gen.refine_steps == 30 and gen.info()["default_refine_steps"] == 30
    mu0, _ = gen.encode("a castle on a hill", refine_steps=0)
    mu, logvar = gen.encode("a castle on a hill")
    assert mu.shape == mu0.shape == logvar.shape == (gen.latent_dim,) and not torch.equal(mu, mu0)
    assert torch.equal(gen.encode("a castle on a hill", refine_steps=0)[0], mu0)
    assert gen.reconstruct("a castle on a hill") == gen.decode_latents(mu[None])[0]
    assert gen.reconstruct("a castle on a hill", refine_steps=0) == gen.decode_latents(mu0[None])[0]
    ends = gen.interpolate("a castle on a hill", "portrait of a woman", steps=2, refine_steps=0)
    assert ends == [gen.reconstruct("a castle on a hill", refine_steps=0), gen.reconstruct("portrait of a woman", refine_steps=0)]
    for bad in (-1, 201, 1.5):
        with pytest.raises(TextopiaError, match="refine_steps"):
            gen.reconstruct("a castle", refine_steps=bad)
        with pytest.raises(TextopiaError, match="refine_steps"):
            gen.variations("a castle", 2, refine_steps=bad)
        with pytest.raises(TextopiaError, match="refine_steps"):
            gen.interpolate("a castle", "a woman", refine_steps=bad)


def test_a_checkpoint_sets_its_own_refinement_default(tiny_vae_checkpoint, tmp_path):
    import shutil

    copy = tmp_path / "vae"
    shutil.copytree(tiny_vae_checkpoint, copy)
    config = json.loads((copy / "config.json").read_text())
    config["textopia"]["default_refine_steps"] = 0.0  # JSON may hold a whole count as a float
    (copy / "config.json").write_text(json.dumps(config))
    gen, fresh = load(copy), load(tiny_vae_checkpoint)
    assert gen.refine_steps == 0
    assert torch.equal(gen.encode("a castle")[0], fresh.encode("a castle", refine_steps=0)[0])
    config["textopia"]["default_refine_steps"] = 1000
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(TextopiaError, match="refine_steps"):
        load(copy)


def test_a_prompt_too_long_to_read_or_write_whole_is_said(tiny_vae_checkpoint, caplog):
    gen = load(tiny_vae_checkpoint)
    with caplog.at_level("WARNING", logger="textopia.generation.vae"):
        gen.reconstruct("a castle on a hill, oil painting")
    assert not caplog.records
    long_prompt = " ".join(["castle"] * (gen.max_positions + 10))
    with caplog.at_level("WARNING", logger="textopia.generation.vae"):
        gen.reconstruct(long_prompt)
    said = [r.getMessage() for r in caplog.records]
    assert any(f"encodes only its first {gen.max_positions - 1}" in m for m in said)
    assert any("longer than a reconstruction may be" in m for m in said)


def test_diffusion_generator_samples_with_guidance(tiny_diffusion_checkpoint):
    gen = load(tiny_diffusion_checkpoint)
    assert gen.kind == "latent-diffusion" and isinstance(gen, LatentGenerator)
    kw = {"max_new_tokens": 10, "min_new_tokens": 0, "seed": 3, "rerank": False}
    a = gen.generate("castle", 2, guidance=2.0, steps=5, **kw)
    assert [g.prompt for g in a] == [g.prompt for g in gen.generate("castle", 2, guidance=2.0, steps=5, **kw)]
    assert a[0].settings["guidance"] == 2.0 and a[0].settings["steps"] == 5
    # Guidance 0 is the unconditional model: with the idea out of the decoder too, the prompts
    # are those of no idea at all.
    gen.idea_in_decoder = False
    uncond = gen.generate(None, 2, guidance=0.0, steps=5, **kw)
    zero = gen.generate("castle", 2, guidance=0.0, steps=5, **kw)
    assert [x.prompt for x in uncond] == [x.prompt for x in zero]
    with pytest.raises(TextopiaError, match="guidance"):
        gen.generate("castle", 1, guidance=-1.0)
    with pytest.raises(TextopiaError, match="steps"):
        gen.generate("castle", 1, steps=0)


def test_cli_latent_commands(tiny_vae_checkpoint, capsys):
    model = str(tiny_vae_checkpoint)
    assert main(["reconstruct", "a castle on a hill", "portrait of a woman", "--model", model, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert main(["interpolate", "a castle", "a woman", "--steps", "4", "--model", model]) == 0
    assert capsys.readouterr().out.count("\n") == 4  # one line per step (a tiny model may write empty ones)
    assert main(["variations", "a castle", "-n", "3", "--spread", "1.0", "--seed", "0", "--model", model, "--json"]) == 0
    assert 1 <= len(json.loads(capsys.readouterr().out)) <= 3
    assert main(["generate", "castle", "-n", "2", "--model", model, "--seed", "0", "--max-new-tokens", "8"]) == 0
    assert capsys.readouterr().out.strip()
    gen = load(tiny_vae_checkpoint)
    assert main(["reconstruct", "a castle on a hill", "--refine-steps", "0", "--model", model]) == 0
    assert capsys.readouterr().out == gen.reconstruct("a castle on a hill", refine_steps=0) + "\n"
    for command in (["reconstruct", "a castle"], ["interpolate", "a", "b"], ["variations", "a"]):
        assert main(command + ["--refine-steps", "0"] + ["--model", model]) == 0
        capsys.readouterr()
        # a bad count is refused in one line before any model loads (this one does not exist)
        assert main(command + ["--refine-steps", "999", "--model", "no/such/model"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "refine_steps must be an integer between 0 and 200, got 999" in err


def test_cli_latent_commands_refuse_a_model_without_latents(tiny_checkpoint, capsys):
    assert main(["interpolate", "a", "b", "--model", str(tiny_checkpoint)]) == 2
    assert "no latent space" in capsys.readouterr().err
    assert main(["generate", "a", "--model", str(tiny_checkpoint), "--guidance", "2"]) == 2
    assert "guidance" in capsys.readouterr().err
    assert main(["generate", "a", "--model", str(tiny_checkpoint), "--lm-weight", "1"]) == 2
    assert "--lm-weight" in capsys.readouterr().err


def test_cli_generate_with_a_diffusion_checkpoint(tiny_diffusion_checkpoint, capsys):
    args = ["generate", "castle", "-n", "2", "--model", str(tiny_diffusion_checkpoint), "--guidance", "3",
            "--steps", "4", "--seed", "0", "--max-new-tokens", "8", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 2 and out[0]["settings"]["steps"] == 4 and out[0]["settings"]["lm_weight"] == 0.0
    assert main(args[:-1] + ["--lm-weight", "9"]) == 2
    assert "--lm-weight must be a number in [0, 4]" in capsys.readouterr().err
    assert main(["generate", "-n", "1", "--model", str(tiny_diffusion_checkpoint), "--steps", "3"]) == 0


def test_cli_eval_on_a_vae_reports_the_protocol(tiny_vae_checkpoint, prepared, capsys):
    args = ["eval", str(tiny_vae_checkpoint), "--data-dir", str(prepared), "--split", "valid", "--limit", "20",
            "--iw-samples", "10", "--iw-limit", "4", "--bleu-limit", "4", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("kl", "mutual_information", "active_units", "perplexity", "elbo", "recon_ce_per_token", "bleu",
                "exact_match", "warnings"):
        assert key in report
    assert report["iw_samples"] == 10 and report["iw_prompts"] == 4 and report["prompts"] == 20
    # The IW bound is tighter than the single-sample ELBO bound (in expectation; here by a margin).
    assert report["perplexity"] < report["elbo_perplexity"] * 1.05
    assert main(["eval", str(tiny_vae_checkpoint), "--data-dir", str(prepared), "--samples", "2"]) == 2


def test_no_repeat_ngram_setting_is_validated_and_applied(tokenizer):
    from textopia.generation.config import GenerationConfig
    from textopia.generation.decoding import logits_processors

    with pytest.raises(TextopiaError, match="no_repeat_ngram_size"):
        GenerationConfig(no_repeat_ngram_size=-1).validate()
    procs = logits_processors(GenerationConfig(no_repeat_ngram_size=2), tokenizer, 1)
    ids = torch.tensor([[5, 6, 5]])  # the bigram (5, 6) was seen: after 5, token 6 is banned
    scores = procs(ids, torch.zeros(1, len(tokenizer)))
    assert scores[0, 6] == -math.inf and scores[0, 7] > -math.inf


def test_compare_scores_a_vae_by_its_iw_bound_and_skips_diffusion(tiny_vae_checkpoint, tiny_diffusion_checkpoint,
                                                                 prepared):
    from textopia.data.corpus import read_split
    from textopia.evaluation.compare import model_likelihood

    prompts = read_split(prepared, "valid")[:6]
    vae = load(tiny_vae_checkpoint)
    vae.likelihood.iw_samples = 5
    row = model_likelihood(vae, prompts)
    assert row["prompts"] == 6 and row["tokens"] > 0 and row["perplexity"] > 1
    # the diffusion model's latents are not the VAE's prior's: the VAE's bound is not its likelihood
    assert load(tiny_diffusion_checkpoint).likelihood is None
    assert model_likelihood(load(tiny_diffusion_checkpoint), prompts) is None
    with pytest.raises(TextopiaError, match="p\\(prompt\\)"):
        vae.likelihood(prompts, ideas="derived")


def test_latent_generators_boost_the_idea_words_their_decoder_reads(tiny_vae_checkpoint, tiny_diffusion_checkpoint):
    from textopia.generation.loader import load
    from textopia.text import has_all_idea_words

    for directory in (tiny_vae_checkpoint, tiny_diffusion_checkpoint):
        out = load(directory).generate("castle", 4, seed=0)
        assert sum(has_all_idea_words("castle", g.prompt) for g in out) >= 3, [g.prompt for g in out]


@pytest.mark.parametrize("prompt, expected", [
    ("a lighthouse on a cliff at sunset, oil painting, 4k", "a lighthouse on a cliff at sunset"),
    ("portrait  of an old   fisherman", "portrait of an old fisherman"),
    ("a beautiful jungle princess wearing white robes stands in a doorway looking out over a city, 4k",
     "a beautiful jungle princess wearing white robes stands in a doorway looking"),  # cut where a phrase begins
    ("one two three four five six seven eight nine ten eleven twelve thirteen", "one two three four five six seven "
     "eight nine ten eleven twelve"),
    ("the, 4k", ""),
])
def test_subject_idea(prompt, expected):
    from textopia.text import subject_idea

    assert subject_idea(prompt) == expected


def test_latent_variations_and_midpoints_write_from_a_subject_as_written(tiny_diffusion_checkpoint, monkeypatch):
    """Variations open with the source's subject as a person wrote it, and each interior point of an
    interpolation with the nearer end's ("lighthouse cliff portrait old" from both ends reads as no scene)."""
    gen = load(tiny_diffusion_checkpoint)
    ideas = []
    original = gen.generate_with

    def spy(idea, n, settings, latent=None):
        ideas.append(idea)
        return original(idea, n, settings, latent)

    monkeypatch.setattr(gen, "generate_with", spy)
    gen.variations("a castle on a hill, oil painting", 2, strength=0.5, seed=1)
    assert ideas == ["a castle on a hill"]
    ideas.clear()
    gen.interpolate("a castle on a hill, oil painting", "portrait of a woman, photo", steps=5)
    assert ideas == ["a castle on a hill", "a castle on a hill", "portrait of a woman"]
