"""Reconstruction against the refinement steps of each encoded posterior mean (``refine_steps``).

A latent model encodes a prompt to the encoder's posterior mean, then moves it by Adam steps up the
decoder's log p(x | z) (:func:`textopia.models.refinement.refine_posterior_mean`). Here the
default is chosen: ``--num-prompts`` valid-split prompts (not the test prompts that
``latent_eval.py`` reports on), each reconstructed greedily (``latent_eval.reconstruction``, as
``reconstruct`` does) at every count in ``--steps``. Figures: corpus BLEU, exact matches, content
recall (overall and by the prompt's length in tokens), the mean square of the latents (how far
from the prior's scale the steps move them) and the seconds per prompt::

    python benchmarks/refine_steps.py --data-dir data/sd --model latent --steps 0 10 20 30 40

Writes ``refine_steps.json`` and ``.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latent_eval import LENGTH_BUCKETS, bucket_name, reconstruction  # noqa: E402
from machine_info import machine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default="data/sd")
    ap.add_argument("--model", default="latent")
    ap.add_argument("--num-prompts", type=int, default=200)
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 10, 20, 30, 40])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "refine_steps"))
    args = ap.parse_args(argv)
    from textopia.data.corpus import read_split
    from textopia.generation.loader import load

    gen = load(args.model)
    valid = read_split(Path(args.data_dir), "valid")
    prompts = random.Random("refine-steps").sample(valid, min(args.num_prompts, len(valid)))
    report = {"machine": machine(), "settings": vars(args), "rows": [],
              "command": " ".join(["python benchmarks/refine_steps.py", *(argv if argv is not None else sys.argv[1:])])}
    for steps in args.steps:
        start = time.perf_counter()
        figures = reconstruction(gen, prompts, steps)
        seconds = time.perf_counter() - start
        rows = [gen._prompt_ids(p)[0] for p in prompts[:64]]
        mu, _ = gen._posteriors(rows, steps)
        row = {"refine_steps": steps, "bleu": figures["bleu"], "exact_match": figures["exact_match"],
               "content_recall": figures["content_recall"], "by_length": figures["content_recall_by_length"],
               "latent_mean_square": float((mu ** 2).mean()), "seconds_per_prompt": seconds / len(prompts)}
        report["rows"].append(row)
        print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "refine_steps.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    names = [bucket_name(lo, hi) for lo, hi in LENGTH_BUCKETS]
    lines = ["# Reconstruction against the refinement steps", "",
             f"`{report['command']}` on {report['machine']['cpu']} ({report['machine']['cpus']} cores), "
             f"{len(prompts)} valid prompts, greedy decoding, model `{args.model}`.", "",
             "| refine steps | BLEU | exact match | content recall | " + " | ".join(f"recall {n} tokens" for n in names)
             + " | latent mean square | s per prompt |",
             "|---:|---:|---:|---:|" + "---:|" * len(names) + "---:|---:|"]
    for r in report["rows"]:
        cells = [r["by_length"].get(n) for n in names]
        lines.append(f"| {r['refine_steps']} | {r['bleu']:.1f} | {r['exact_match']:.3f} | {r['content_recall']:.3f} | "
                     + " | ".join(f"{c['content_recall']:.3f} ({c['prompts']})" if c else "" for c in cells)
                     + f" | {r['latent_mean_square']:.3f} | {r['seconds_per_prompt']:.3f} |")
    (out / "refine_steps.md").write_text("\n".join(lines) + "\n")
    print((out / "refine_steps.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
