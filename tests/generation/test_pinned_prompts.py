"""The exact prompts that fixed seeds write, pinned: a refactor of the generators must not change them.

Pinned only where the arithmetic is the same on every CPU we run on. The models are trained here in
float32 (``train.precision=fp32``): the shared tiny fixtures train at ``precision=auto``, which is
bf16 autocast on a CPU with AVX512-BF16 and float32 on one with AVX2 only, so their weights, and
the prompts, differ between the two machines. They decode in float32 too (``weight_dtype="float32"``):
the lean engine's default float16 and int8 weights run fbgemm's kernels, chosen by the CPU. And
they train on one thread, whatever the environment sets (:func:`_train`).

With ``TEXTOPIA_PIN_DUMP=1`` each test prints what it observed, to pin anew after a deliberate change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import textopia

from tests.conftest import tiny_overrides, tiny_vae_overrides

FP32 = {"train.precision": "fp32"}

SHORT = {"max_new_tokens": 16, "min_new_tokens": 0}


def _train(overrides: list[str]) -> None:
    """``textopia train`` in a process of its own: accelerate's precision is set once per process,
    and the other fixtures of this one train at ``precision=auto``."""
    argv = [sys.executable, "-m", "textopia.cli", "train", "--no-progress"]
    for override in overrides:
        argv += ["--set", override]
    # On one thread, whatever the environment sets: the tiny VAE trained on two (CI's default)
    # came out other weights, and wrote other prompts.
    subprocess.run(argv, check=True, capture_output=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def fp32_gpt(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("pinned") / "gpt"
    _train(tiny_overrides(prepared, out, **FP32))
    return out


@pytest.fixture(scope="module")
def fp32_vae(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("pinned") / "vae"
    _train(tiny_vae_overrides(prepared, out, **FP32))
    return out


@pytest.fixture(scope="module")
def fp32_diffusion(prepared, fp32_vae, tmp_path_factory):
    out = tmp_path_factory.mktemp("pinned") / "diffusion"
    _train(["model.kind=latent-diffusion", f"model.vae_checkpoint={fp32_vae}", "model.n_hidden=32",
            "model.n_blocks=2", "model.idea_hidden=32", "model.time_dim=16", f"data.dir={prepared}",
            "data.train_limit=300", "data.valid_limit=20", "data.max_length=128", f"train.out_dir={out}",
            "train.max_steps=30", "train.batch_size=32", "train.eval_every=15", "train.save_every=0",
            "train.log_every=10", "train.warmup_steps=2", "train.precision=fp32"])
    return out


def _check(observed: dict, pinned: dict) -> None:
    if os.environ.get("TEXTOPIA_PIN_DUMP") == "1":
        print(json.dumps(observed, indent=4))
    assert observed == pinned


def _calls(gen, **extra) -> dict[str, list[str]]:
    """The prompts of each pinned call: expand with an idea, continue, from nothing; n = 1 and 3."""
    out = {}
    for label, idea, mode in (("expand", "castle on a hill", "expand"), ("continue", "a portrait of", "continue"),
                              ("nothing", None, "expand")):
        for n in (1, 3):
            out[f"{label} n={n}"] = [g.prompt for g in gen.generate(idea, n, mode=mode, seed=11, **SHORT, **extra)]
    return out


DEFAULT = {
    "expand n=1": ["a castle on a hill, cinematic, volumetric lighting, beautiful, stunning"],
    "expand n=3": ["a castle on a hill, cinematic, volumetric lighting, beautiful, stunning", "a castle on a hill, a detailed matte painting by donato giancola, cgsociety", "a castle on a hill, trending on artstation, by kawacy"],
    "continue n=1": ["a portrait of a beautiful woman in an elegant dress, by mark arian"],
    "continue n=3": ["a portrait of a beautiful woman in an elegant dress, by mark arian", "a portrait of the devil, by richard corben and jeff easley and dan mumford", "a portrait of a medieval peasant woman, highly detailed, cinematic lighting"],
    "nothing n=1": ["a futuristic city in a lush jungle, waterfalls, overgrown"],
    "nothing n=3": ["a futuristic city in a lush jungle, waterfalls, overgrown", "a photograph of the moon in the sky, cinematic, detailed", "A psychedelic portrait of a girl with pink eyes, artstation"],
}


def test_the_shipped_default_model_writes_the_pinned_prompts():
    """The embedded GPT in float32 (the same prompts with ATen, MKL and oneDNN held to AVX2:
    ``ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2``, and with
    ``torch.backends.mkldnn`` off), its coherence critic reranking."""
    _check(_calls(textopia.load("default", weight_dtype="float32")), DEFAULT)


GPT = {
    "expand n=1": ["castle on a hill"],
    "expand n=3": ["castle on a hill", "castle on a hill, realistic made inok", "castle on a hill, inenderoc sta clouo L key R M"],
    "continue n=1": ["a portrait of rant maam"],
    "continue n=3": ["a portrait of rant maam", "a portrait of blu El beautiful S ofhiop", "a portrait of rrastoc staar intricate 8 R bre"],
    "nothing n=1": ["on girll"],
    "nothing n=3": ["on girll", "ack2 thez con", "pa al artighessn sker"],
    "batch": [["castle on a hill, I( solarpunk", "castle on a hill"], ["smiling"]],
}


def test_the_tiny_gpt_writes_the_pinned_prompts(fp32_gpt):
    gen = textopia.load(str(fp32_gpt), weight_dtype="float32")
    observed = _calls(gen)
    observed["batch"] = [[g.prompt for g in r] for r in gen.generate_batch(
        [("castle on a hill", 2, gen.decoding(seed=5, **SHORT)), (None, 1, gen.decoding(seed=6, **SHORT))])]
    _check(observed, GPT)


VAE = {
    "expand n=1": ["castle on a hill"],
    "continue n=1": ["a portrait of smiling eautiful com digitalper+omit"],
    "continue n=3": ["a portrait of smiling eautiful com digitalper+omit", "a portrait of photorealistic smoothlowing Tre eanta of spo", "a portrait of fro black Mcevieam skythR face"],
    "nothing n=1": ["veki bealyingidou still intricateie"],
    "nothing n=3": ["veki bealyingidou still intricateie", "ibeld Vigoc roboticft as", "arm ex An ArtStation her studioolar the"],
    "variations": ["a, ao an a as an a, an ao, a,o a", "ao an a a, an aoo ao, a,o a, as an aon an a", "a,o an a as an ao aoo a, an a, ao, a"],
    "interpolate": ["ao an a aoo ao, an a, a,o a, as an a", "ao an a aoo ao, an a, a,o a, as an a", "ao an a aoo ao, an a, a,o a, as an a"],
}


def test_the_tiny_vae_writes_the_pinned_prompts(fp32_vae):
    """Its three prompts for an idea are not pinned: on an AMD EPYC with AVX-512 BF16 one of the 32
    rows they are chosen among samples other tokens than on the machines they were pinned on, with
    ATen, MKL and oneDNN held to AVX2 too and before the sampler's two-level draw alike (session
    36; the operation whose rounding differs is not found). They are the same for a seed on one
    machine, and open with the one prompt."""
    gen = textopia.load(str(fp32_vae))
    observed = _calls(gen)
    three = observed.pop("expand n=3")
    assert three == [g.prompt for g in gen.generate("castle on a hill", 3, mode="expand", seed=11, **SHORT)]
    assert three[0] == observed["expand n=1"][0] and len(set(three)) == 3
    observed["variations"] = gen.variations("a castle on a hill, oil painting", 3, spread=1.0, seed=2)
    observed["interpolate"] = gen.interpolate("a castle on a hill", "portrait of a woman", steps=3)
    _check(observed, VAE)


DIFFUSION = {
    "expand n=1": ["castle on a hill she"],
    "expand n=3": ["castle on a hill elon", "castle on a hill she", "castle on a hill, Monster cherry doll"],
    "continue n=1": ["a portrait of colored from To selfIe"],
    "continue n=3": ["a portrait of john Tall", "a portrait of colored from To selfIe", "a portrait of digital of in as with art a"],
    "nothing n=1": ["no TeslA glowing"],
    "nothing n=3": ["no TeslA glowing", "with dog", "allIsoN art"],
    "variations": ["a castle on a hill yellow golden high Torso", "a castle on a hill, horse high HDR goggles in digital Moon high of high cherry in Tall", "a castle on a hill digital from Most a spongeBob clef"],
    "interpolate": ["ao an a aoo ao, an a, a,o a, as an a", "a castle on a hill, MohrbAcher glowing goggles", "ao an a aoo ao, an a, a,o a, as an a"],
    "fused": ["castle yoda", "castle sfw", "castle single"],
    "fused, boosted": ["Castle, and a sfw", "an art soft inside of castle", "Castle skin"],
}


def test_the_tiny_latent_diffusion_model_writes_the_pinned_prompts(fp32_diffusion, fp32_gpt):
    gen = textopia.load(str(fp32_diffusion))
    observed = _calls(gen, steps=4)
    observed["variations"] = gen.variations("a castle on a hill, oil painting", 3, strength=0.5, seed=2)
    observed["interpolate"] = gen.interpolate("a castle on a hill", "portrait of a woman", steps=3)
    gen.meta["fusion_lm"] = str(fp32_gpt)  # the same prepared tokenizer
    observed["fused"] = [g.prompt for g in gen.generate("castle", 3, seed=4, steps=4, lm_weight=1.0, **SHORT)]
    # no candidate opens with the idea: the boost of its words, scaled with the fusion, places them
    observed["fused, boosted"] = [g.prompt for g in gen.generate("castle", 3, seed=4, steps=4, lm_weight=1.0,
                                                                 idea_prefix=0.0, **SHORT)]
    _check(observed, DIFFUSION)
