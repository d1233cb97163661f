"""The latent diffusion model's generation against the sampling temperature and the shallow-fusion
weight: fluency, relevance, variety.

Usage (from the repository root)::

    python benchmarks/latent_temperature.py [--ideas benchmarks/ideas/derived_1000.txt] [--skip 10]
        [--num-ideas 12] [--temperatures 1.2 0.9 0.7] [--lm-weights 0] [--steps 25] [--out benchmarks/results/latent_temperature]

For each temperature, fusion weight λ (``lm_weight``) and number of DDIM steps, ``--num-ideas`` ideas of the file (after the first ``--skip``: not the
ideas other benchmarks use first) get 8 prompts each from ``textopia.load("latent")`` (seed 100 +
idea index, every other setting the default). Figures: perplexity of all the prompts under the
embedded default GPT in float32 (fluency; lower is better) and under the embedded LSTM (a second
judge, which shallow fusion does not decode with), idea recall
(``textopia.text.relevance_recall``), the share of prompts holding an invented word (not in the
model's known words nor the idea's: ``--known-words-only 0 1`` compares the two), distinct-2 over all the prompts pooled and among each idea's
8 (the mean), and seconds per 8
prompts. Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine_info

ROOT = Path(__file__).resolve().parents[1]


def read_ideas(path: str | Path, skip: int, num: int) -> list[str]:
    """``num`` ideas of a file (one per line, ``#`` comments), after its first ``skip``."""
    lines = [x.strip() for x in Path(path).read_text().splitlines()]
    return [x for x in lines if x and not x.startswith("#")][skip : skip + num]


def written_figures(model, ideas: list[str], gpt, lstm, **settings) -> dict:
    """8 prompts per idea from ``model`` (seed 100 + idea index, ``settings`` for ``generate``),
    and their figures: perplexity under ``gpt`` and ``lstm`` (fluency), idea recall, the share of
    prompts holding an invented word (not in the model's known words nor the idea's), distinct-2
    pooled and among each idea's 8, seconds per 8 prompts."""
    from textopia.evaluation.metrics.diversity import distinct_n
    from textopia.models.likelihood import score_prompts
    from textopia.text import relevance_recall, tokenize

    prompts, recalls, per_idea, invented, started = [], [], [], [], time.perf_counter()
    for i, idea in enumerate(ideas):
        written = [g.prompt for g in model.generate(idea, 8, seed=100 + i, **settings)]
        prompts += written
        recalls += [relevance_recall(idea, p) for p in written]
        per_idea.append(distinct_n(written, 2))
        idea_words = set(tokenize(idea))
        invented += [bool(set(model.known_words.invented(p)) - idea_words) for p in written]
    seconds = (time.perf_counter() - started) / len(ideas)
    scored = score_prompts(gpt.model, gpt.tokenizer, prompts)
    judged = score_prompts(lstm.model, lstm.tokenizer, prompts)
    words = [p.lower().split() for p in prompts]
    bigrams = [tuple(w[i : i + 2]) for w in words for i in range(len(w) - 1)]
    return {"invented": sum(invented) / len(invented),
            "perplexity": math.exp(scored.nats / scored.tokens),
            "perplexity_lstm": math.exp(judged.nats / judged.tokens),
            "idea_recall": sum(recalls) / len(recalls), "distinct_2": len(set(bigrams)) / max(1, len(bigrams)),
            "distinct_2_per_8": sum(per_idea) / len(per_idea),
            "seconds_per_8": seconds, "prompts": len(prompts)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ideas", default=str(ROOT / "benchmarks" / "ideas" / "derived_1000.txt"))
    ap.add_argument("--skip", type=int, default=10)
    ap.add_argument("--num-ideas", type=int, default=12)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[1.2, 0.9, 0.7])
    ap.add_argument("--lm-weights", type=float, nargs="+", default=[0.0])
    ap.add_argument("--steps", type=int, nargs="+", default=[None], help="DDIM steps (default: the model's own)")
    ap.add_argument("--known-words-only", type=int, nargs="+", default=[None], choices=[0, 1],
                    help="spell only known words (1) or not (0); default: the model's own")
    ap.add_argument("--model", default="latent", help="the latent diffusion model (an embedded name or a directory)")
    ap.add_argument("--out", default="benchmarks/results/latent_temperature")
    args = ap.parse_args(argv)

    import textopia

    ideas = read_ideas(args.ideas, args.skip, args.num_ideas)
    latent, reference, lstm = textopia.load(args.model), textopia.load(weight_dtype="float32"), textopia.load("lstm")
    rows = []
    for temperature, lm_weight, steps, known in [(t, w, k, kw) for kw in args.known_words_only for k in args.steps
                                                 for w in args.lm_weights for t in args.temperatures]:
        known_words_only = None if known is None else bool(known)
        figures = written_figures(latent, ideas, reference, lstm, temperature=temperature, lm_weight=lm_weight,
                                  steps=steps, known_words_only=known_words_only)
        rows.append({"temperature": temperature, "lm_weight": lm_weight, "steps": steps or latent.steps,
                     "known_words_only": latent.default_known_words_only() if known is None else bool(known),
                     **figures})
        print(rows[-1], flush=True)
    result = {"command": "python benchmarks/latent_temperature.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine_info.machine(), "ideas": ideas, "rows": rows}
    table = [f"{len(ideas)} ideas x 8 prompts, every other setting the default.", "",
             "| temperature | lm_weight | DDIM steps | known words only | perplexity under the default GPT | under the LSTM | "
             "idea recall | invented word (share of prompts) | distinct-2 (all) | distinct-2 (each 8) | s per 8 prompts |",
             "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    table += [f"| {r['temperature']} | {r['lm_weight']} | {r['steps']} | {'yes' if r['known_words_only'] else 'no'} | "
              f"{r['perplexity']:.1f} | {r['perplexity_lstm']:.1f} | {r['idea_recall']:.3f} | {r['invented']:.3f} | "
              f"{r['distinct_2']:.3f} | {r['distinct_2_per_8']:.3f} | {r['seconds_per_8']:.2f} |" for r in rows]
    print(machine_info.write_results(args.out, result, "The latent model's generation against the temperature and the fusion weight", table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
