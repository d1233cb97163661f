"""Warm latency of one `generate` call with every default on, as a user clicking once waits for it.

Usage (from the repository root)::

    python benchmarks/latency.py [--model default] [--n 1 8] [--ideas-file benchmarks/ideas/user_ideas.txt]
        [--settings candidates=4 candidates=8 candidates=16] [--out benchmarks/results/latency]

Loads the model once, writes one warm-up call, then for each setting (``KEY=VALUE`` on top of the
defaults; "" for the defaults alone) and each ``n`` calls ``generate(idea, n, seed=i)`` for every
idea, timing each call (wall clock, seconds). Settings are measured side by side in one run,
interleaved idea by idea, so that a change in the machine's load touches them alike. Writes
``results.json`` and ``results.md`` (p50, p90, mean per setting and ``n``, with the machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine_info


def parse(setting: str) -> dict:
    out = {}
    for kv in filter(None, setting.split(",")):
        key, value = kv.split("=", 1)
        out[key] = int(value) if key in ("candidates", "top_k", "max_new_tokens") else float(value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--ideas-file", default=str(Path(__file__).resolve().parent / "ideas" / "user_ideas.txt"))
    ap.add_argument("--settings", nargs="+", default=[""], help="comma-separated KEY=VALUE sets; '' = defaults")
    ap.add_argument("--out", default="benchmarks/results/latency")
    args = ap.parse_args(argv)

    import textopia
    from textopia.evaluation.ideas import read_ideas_file

    ideas = read_ideas_file(args.ideas_file)
    generator = textopia.load(args.model)
    generator.generate("warm up", n=max(args.n), seed=0)
    times: dict[tuple[str, int], list[float]] = {(s, n): [] for s in args.settings for n in args.n}
    for i, idea in enumerate(ideas):
        for setting in args.settings:
            for n in args.n:
                start = time.perf_counter()
                generator.generate(idea, n, seed=i, **parse(setting))
                times[(setting, n)].append(time.perf_counter() - start)
    rows = []
    for (setting, n), values in times.items():
        q = statistics.quantiles(values, n=10)
        rows.append({"settings": setting or "defaults", "n": n, "calls": len(values), "p50_s": statistics.median(values),
                     "p90_s": q[-1], "mean_s": statistics.fmean(values)})
    results = {"command": "python benchmarks/latency.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": machine_info.machine(), "model": args.model, "critic": generator.critic is not None,
               "rows": rows}
    lines = [f"# Warm latency of `generate` ({args.model}, every default on)", "",
             f"Machine: {results['machine']['cpu']}, {results['machine']['cpus']} cores, "
             f"{results['machine']['torch_threads']} torch threads. Command: `{results['command']}`", "",
             "| settings | n | calls | p50 (s) | p90 (s) | mean (s) |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['settings']} | {r['n']} | {r['calls']} | {r['p50_s']:.3f} | {r['p90_s']:.3f} | {r['mean_s']:.3f} |"
              for r in rows]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
