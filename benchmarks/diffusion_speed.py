"""Speed of latent diffusion on this machine: DDIM latent sampling alone, and whole prompts.

Usage (from the repository root)::

    python -m benchmarks diffusion_speed [--set model=diffusion n=32 steps=50 guidance=3 repeats=5]
        [--out benchmarks/results]

Figures, each after one warm-up call, over ``repeats`` repetitions (median and min, seconds of
wall clock; seed = repetition index):

- latents: ``LatentDiffusion.sample_latents`` for ``n`` latents, ``steps`` DDIM steps,
  guidance ``guidance`` with the idea "woman portrait" (so two denoiser passes per step, the
  conditional and the unconditional batch of n stacked into one of 2n);
- latents without an idea: the same with no idea (one pass per step, the null idea);
- full: ``DiffusionGenerator.generate("woman portrait", n, guidance, steps, rerank=False)``:
  the latents, then the VAE decoder writes n prompts (default sampling settings; a second round
  is drawn if fewer than n distinct prompts come out).

Decoding ≈ full − latents. Writes ``diffusion_speed.json`` and ``.md``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks.harness import benchmark

IDEA = "woman portrait"


def timed(fn: Callable[[int], Any], repeats: int) -> dict[str, Any]:
    """Seconds of ``fn(seed)`` for seeds 0..repeats-1, after a warm-up call (seed 10_000)."""
    import torch

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    fn(10_000)
    sync()
    times = []
    for seed in range(repeats):
        t0 = time.perf_counter()
        fn(seed)
        sync()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": [round(t, 4) for t in times]}


@benchmark("diffusion_speed", smoke=dict(n=2, steps=2, repeats=1))
def run(model: str = "diffusion", n: int = 32, steps: int = 50, guidance: float = 3.0, repeats: int = 5,
        device: str | None = None) -> dict:
    """Speed of latent diffusion: DDIM latent sampling alone (with and without an idea), and whole prompts.

    ``n``: latents / prompts per call (1..64); ``device``: a torch device (None: CUDA when available).
    """
    if not 1 <= n <= 64 or steps < 1 or repeats < 1:
        raise ValueError("n must be in 1..64, steps and repeats >= 1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from textopia.generation.diffusion import DiffusionGenerator
    from textopia.generation.loader import load
    from textopia.models.latent_diffusion import idea_token_ids

    t0 = time.perf_counter()
    gen = load(model, device=device)
    load_s = time.perf_counter() - t0
    if not isinstance(gen, DiffusionGenerator):
        raise ValueError(f"model {model} is a {gen.kind} model, not latent diffusion")
    diffusion = gen.diffusion
    ids, _ = idea_token_ids(gen.tokenizer, [IDEA], diffusion.config.max_idea_tokens)

    def latents(seed: int, idea_ids=ids) -> torch.Tensor:
        return diffusion.sample_latents(idea_ids, n, steps=steps, guidance=guidance,
                                        generator=torch.Generator().manual_seed(seed))

    returned: list[int] = []

    def full(seed: int) -> None:
        returned.append(len(gen.generate(IDEA, n, guidance=guidance, steps=steps, seed=seed, rerank=False)))

    rows = {"latents (sample_latents, with the idea)": timed(latents, repeats),
            "latents without an idea (one denoiser pass per step)": timed(lambda seed: latents(seed, None), repeats),
            "full (generate, decoding included, rerank off)": timed(full, repeats)}
    lat, whole = rows["latents (sample_latents, with the idea)"]["median_s"], \
        rows["full (generate, decoding included, rerank off)"]["median_s"]
    return {
        "idea": IDEA, "device": str(gen.device), "model": gen.info(), "load_s": round(load_s, 3),
        "timings": [{"figure": k, **{f: v[f] for f in ("median_s", "min_s")}} for k, v in rows.items()],
        "prompts_returned_per_full_call": returned[1:],
        "latents_ms_per_step": 1000 * lat / steps,
        "latents_ms_per_latent": 1000 * lat / n,
        "decoding_s_median_estimate": whole - lat,
        "full_prompts_per_s": n / whole,
        "details": {"times_s": {k: v["times_s"] for k, v in rows.items()}},
    }
