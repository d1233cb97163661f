"""Speed of latent diffusion on this machine: DDIM latent sampling alone, and whole prompts.

Usage (from the repository root)::

    python benchmarks/diffusion_speed.py [--model diffusion] [--n 32] [--steps 50] [--guidance 3]
        [--repeats 5] [--out benchmarks/results/diffusion_speed]

Figures, each after one warm-up call, over ``--repeats`` repetitions (median and min, seconds of
wall clock; seed = repetition index):

- latents: ``LatentDiffusion.sample_latents`` for ``--n`` latents, ``--steps`` DDIM steps,
  guidance ``--guidance`` with the idea "woman portrait" (so two denoiser passes per step, the
  conditional and the unconditional batch of n stacked into one of 2n);
- latents without an idea: the same with no idea (one pass per step, the null idea);
- full: ``DiffusionGenerator.generate("woman portrait", n, guidance, steps, rerank=False)``:
  the latents, then the VAE decoder writes n prompts (default sampling settings; a second round
  is drawn if fewer than n distinct prompts come out).

Decoding ≈ full − latents. Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import machine

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "diffusion_speed"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="diffusion", help="checkpoint directory or embedded model")
    parser.add_argument("--n", type=int, default=32, help="latents / prompts per call (1..64)")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", help="torch device (default: CUDA when available)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="writes <out>.json and <out>.md")
    args = parser.parse_args(argv)
    if not 1 <= args.n <= 64 or args.steps < 1 or args.repeats < 1:
        parser.error("--n must be in 1..64, --steps and --repeats >= 1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    info = machine()

    import torch

    from textopia.generation.diffusion import DiffusionGenerator
    from textopia.generation.loader import load
    from textopia.models.latent_diffusion import idea_token_ids

    t0 = time.perf_counter()
    gen = load(args.model, device=args.device)
    load_s = time.perf_counter() - t0
    if not isinstance(gen, DiffusionGenerator):
        raise SystemExit(f"--model {args.model} is a {gen.kind} model, not latent diffusion")
    model = gen.diffusion
    ids, _ = idea_token_ids(gen.tokenizer, [IDEA], model.config.max_idea_tokens)

    def latents(seed: int, idea_ids=ids) -> torch.Tensor:
        return model.sample_latents(idea_ids, args.n, steps=args.steps, guidance=args.guidance,
                                    generator=torch.Generator().manual_seed(seed))

    returned: list[int] = []

    def full(seed: int) -> None:
        returned.append(len(gen.generate(IDEA, args.n, guidance=args.guidance, steps=args.steps, seed=seed,
                                         rerank=False)))

    figures = {
        "latents": timed(latents, args.repeats),
        "latents_no_idea": timed(lambda seed: latents(seed, None), args.repeats),
        "full": timed(full, args.repeats),
    }
    figures["full"]["prompts_returned"] = returned[1:]
    lat, whole = figures["latents"]["median_s"], figures["full"]["median_s"]
    result = {
        "benchmark": "latent-diffusion-speed",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(shlex.quote(a) for a in
                                        ["benchmarks/diffusion_speed.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": info,
        "settings": {"model": args.model, "n": args.n, "steps": args.steps, "guidance": args.guidance, "idea": IDEA,
                     "repeats": args.repeats, "device": str(gen.device), "rerank": False},
        "model": gen.info(),
        "load_s": round(load_s, 3),
        "figures": figures,
        "derived": {
            "latents_ms_per_step": 1000 * lat / args.steps,
            "latents_ms_per_latent": 1000 * lat / args.n,
            "decoding_s_median_estimate": whole - lat,
            "full_prompts_per_s": args.n / whole,
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_name(out.name + ".json").write_text(json.dumps(result, indent=2) + "\n")
    m, d, info_ = result["machine"], result["derived"], result["model"]
    text = "\n".join([
        "# Latent diffusion speed",
        "",
        f"- Date: {result['date']}; command: `{result['command']}`",
        (f"- Machine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']} ({m['torch_threads']} threads, "
         f"OMP_NUM_THREADS={m['omp_num_threads']}), {m.get('gpu', 'no GPU')}; load average before {m['load_average']}"),
        (f"- Model: `{args.model}`, {info_.get('parameters', 0):,} parameters (VAE included), latent dim "
         f"{info_.get('latent_dim')}; loaded in {result['load_s']:.2f} s on {gen.device}"),
        (f"- Settings: {args.n} latents / prompts per call, {args.steps} DDIM steps, guidance {args.guidance:g}, "
         f"idea \"{IDEA}\"; one warm-up call, then {args.repeats} repetitions"),
        "",
        "| figure | median (s) | min (s) |",
        "|---|---:|---:|",
        (f"| latents: `sample_latents`, {args.n} latents, {args.steps} steps, guidance {args.guidance:g} "
         f"| {figures['latents']['median_s']:.3f} | {figures['latents']['min_s']:.3f} |"),
        (f"| latents without an idea (one denoiser pass per step) | {figures['latents_no_idea']['median_s']:.3f} "
         f"| {figures['latents_no_idea']['min_s']:.3f} |"),
        (f"| full: `generate`, {args.n} prompts, decoding included, rerank off | {figures['full']['median_s']:.3f} "
         f"| {figures['full']['min_s']:.3f} |"),
        "",
        (f"Per DDIM step: {d['latents_ms_per_step']:.2f} ms for the batch of {args.n}; decoding (full − latents, "
         f"medians): {d['decoding_s_median_estimate']:.3f} s; {d['full_prompts_per_s']:.1f} prompts/s in all. "
         f"Prompts returned per full call: {figures['full']['prompts_returned']}."),
        "",
    ])
    out.with_name(out.name + ".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
