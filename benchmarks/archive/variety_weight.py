"""The reranker's variety weight against the variety and humanness of n = 8 prompts.

Usage (from the repository root)::

    python benchmarks/variety_weight.py 2 6 10 15 [--ideas-file benchmarks/ideas/user_ideas.txt]

For each weight (``textopia.generation.rerank.VARIETY_WEIGHT``), writes 8 prompts per idea
(seed = the idea's index) with the default model and its critic, and prints distinct-2 within each
idea's prompts (mean over ideas), the critic's mean logit over every prompt, and the share it reads
as human (logit > 0). Results: ``benchmarks/results/quality/rerank_weights.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", type=float, nargs="+")
    ap.add_argument("--ideas-file", default=str(Path(__file__).resolve().parent / "ideas" / "user_ideas.txt"))
    ap.add_argument("--n", type=int, default=8)
    args = ap.parse_args(argv)

    import textopia
    from textopia.evaluation.ideas import read_ideas_file
    from textopia.evaluation.metrics import distinct_n_within
    from textopia.generation import rerank

    generator = textopia.load()
    ideas = read_ideas_file(args.ideas_file)
    for weight in args.weights:
        rerank.VARIETY_WEIGHT = weight
        samples = {idea: [g.prompt for g in generator.generate(idea, n=args.n, seed=i)] for i, idea in enumerate(ideas)}
        logits = generator.critic.logits([p for prompts in samples.values() for p in prompts])
        print(f"variety weight {weight:g}: distinct-2 {distinct_n_within(samples, 2):.3f}, critic mean logit "
              f"{float(logits.mean()):.3f}, critic says human {float((logits > 0).float().mean()):.1%}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
