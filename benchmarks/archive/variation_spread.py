"""The latent model's variations against their spread (SDEdit strength), through ``variations`` itself.

12 test-split prompts of four words or more (those of ``variation_temperature.py``, not the ones
``latent_eval.py`` uses), 8 variations each (seed = prompt index) at each ``--spreads`` value, every
other setting the model's default. Figures: the share of the source's subject words each variation
keeps, distinct-2 among each prompt's 8, and the perplexity of all variations under the embedded
default GPT and LSTM (fluency)::

    python benchmarks/variation_spread.py --data-dir data/sd --model latent --spreads 0.6 0.7

Writes ``variation_spread.json`` and ``.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latent_eval import variations  # noqa: E402
from machine_info import machine  # noqa: E402
from variation_temperature import sources  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default="data/sd")
    ap.add_argument("--model", default="latent")
    ap.add_argument("--spreads", type=float, nargs="+", default=[0.5, 0.6, 0.7])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "variation_spread"))
    args = ap.parse_args(argv)
    from textopia.data.corpus import read_split
    from textopia.generation.loader import load, resolve_model
    from textopia.models.checkpoint import load_checkpoint
    from textopia.models.likelihood import score_prompts

    gen = load(args.model)
    judges = {name: load_checkpoint(resolve_model(name))[:2] for name in ("default", "lstm")}
    prompts = sources(read_split(args.data_dir, "test"))
    report = {"machine": machine(), "settings": vars(args), "rows": [],
              "command": " ".join(["python benchmarks/variation_spread.py", *(argv if argv is not None else sys.argv[1:])])}
    for spread in args.spreads:
        start = time.perf_counter()
        figures = variations(gen, prompts, 8, spread=spread)
        texts = figures["prompts"]
        row = {"spread": spread, "subject_kept": figures["subject_kept"], "distinct_2": figures["distinct_2"],
               "seconds_per_8": (time.perf_counter() - start) / len(prompts), "examples": texts[:3] + texts[8:11]}
        row.update({f"perplexity_{name}": score_prompts(model, tok, texts, batch_size=32).perplexity
                    for name, (model, tok) in judges.items()})
        report["rows"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "examples"}), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "variation_spread.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    lines = ["# Variations against their spread", "", f"`{report['command']}` on {report['machine']['cpu']} "
             f"({report['machine']['cpus']} cores). 12 test prompts x 8 variations.", "",
             "| spread | subject kept | distinct-2 (each 8) | perplexity under the GPT | under the LSTM | s per 8 |",
             "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['spread']} | {r['subject_kept']:.3f} | {r['distinct_2']:.3f} | {r['perplexity_default']:.1f} | "
              f"{r['perplexity_lstm']:.1f} | {r['seconds_per_8']:.2f} |" for r in report["rows"]]
    for r in report["rows"]:
        lines += ["", f"spread {r['spread']}:", ""] + [f"- {t}" for t in r["examples"]]
    (out / "variation_spread.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
