"""Decoding speed of the shipped models, side by side in one run on the same weights and settings.

Usage (from the repository root)::

    python benchmarks/speed.py [--models default lstm] [--repeats 5] [--baseline-rev e2dd2c2]
        [--out benchmarks/results/speed]

Rows, for each model (48 new tokens per prompt, EOS suppressed so every engine writes the same
number of tokens; top-p 0.95, temperature 0.9, no reranking):

- ``textopia``: :meth:`Generator.generate` on the default engine (for GPT-2 checkpoints the lean
  engine of :mod:`textopia.models.gpt_engine`, with its default "mixed" weights: float16 blocks,
  an int8 output layer);
- ``textopia (float16 weights)``, ``textopia (float32 weights)``: the lean engine with its other
  weight dtypes (float32: transformers' logits exactly);
- ``textopia (transformers model)``: the same Generator over transformers' model
  (``load(engine="transformers")``), our sampling loop;
- ``transformers generate``: ``model.generate`` of transformers on the same weights;
- ``floor``: the time to stream the weights from memory once per token (bytes x 48 over the
  memory bandwidth measured here with a large copy).

Batch 1 and batch 32 seconds are medians over ``--repeats`` seeds. The cold start is the whole
``textopia generate "woman portrait" -n 4`` CLI call from a new process, for this checkout and for
``--baseline-rev`` (a temporary git worktree of that revision, run with its own sources): the
ratio is measured in the same run, and so is the warm latency of one and of eight prompts with
every default setting (reranking on) in both. With ``--load-clients``, the HTTP service under
load too (``benchmarks/load.py`` at those client counts, 2 prompts per request; its own figures in
``benchmarks/results/load.*``). Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine_info

ROOT = Path(__file__).resolve().parents[1]
NEW_TOKENS = 48
SETTINGS = {"temperature": 0.9, "top_p": 0.95, "top_k": 0, "repetition_penalty": 1.0, "min_p": 0.0,
            "max_new_tokens": NEW_TOKENS, "min_new_tokens": NEW_TOKENS}


def _median_time(fn, repeats: int) -> float:
    fn(0)  # warm-up
    times = []
    for seed in range(1, repeats + 1):
        t0 = time.perf_counter()
        fn(seed)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def memory_bandwidth_bytes_per_s() -> float:
    import torch

    x = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB, past the caches
    y = torch.empty_like(x)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        y.copy_(x)
        best = min(best, time.perf_counter() - t0)
    return 2 * x.numel() * 4 / best  # read + write


def bench_model(name: str, repeats: int) -> list[dict]:
    import torch

    import textopia

    rows = []
    fast = textopia.load(name)
    slow = textopia.load(name, engine="transformers")
    engines = [("textopia", fast)]
    if hasattr(fast.model, "set_weight_dtype"):
        engines += [(f"textopia ({dt} weights)", textopia.load(name, weight_dtype=dt)) for dt in ("float16", "float32")]
    engines.append(("textopia (transformers model)", slow))
    for label, gen in engines:
        if label == "textopia (transformers model)" and type(gen.model) is type(fast.model):
            continue  # no separate engine for this model kind
        row = {"model": name, "engine": label, "backend": type(gen.model).__name__}
        for batch in (1, 32):
            row[f"batch{batch}_s"] = _median_time(
                lambda seed, b=batch, g=gen: g.generate("woman portrait", n=b, seed=seed, rerank=False, **SETTINGS),
                repeats)
        rows.append(row)
    hf = slow.model
    if hasattr(hf, "generate"):
        tok = slow.tokenizer
        context = torch.tensor([tok.context_ids("woman portrait")])

        def hf_generate(seed: int, batch: int) -> None:
            torch.manual_seed(seed)
            hf.generate(context.expand(batch, -1), attention_mask=torch.ones_like(context).expand(batch, -1),
                        do_sample=True, temperature=0.9, top_p=0.95, max_new_tokens=NEW_TOKENS,
                        min_new_tokens=NEW_TOKENS, pad_token_id=tok.pad_id, eos_token_id=tok.eos_id)

        rows.append({"model": name, "engine": "transformers generate", "backend": type(hf).__name__,
                     **{f"batch{b}_s": _median_time(lambda s, b=b: hf_generate(s, b), repeats) for b in (1, 32)}})
    weight_bytes = sum(p.numel() * p.element_size() for p in fast.model.parameters())
    rows.append({"model": name, "engine": "floor (weights streamed once per token)", "backend": "-",
                 "batch1_s": NEW_TOKENS * weight_bytes / memory_bandwidth_bytes_per_s(), "batch32_s": None,
                 "weight_mb": weight_bytes / 1e6})
    for r in rows:
        if r.get("batch32_s"):
            r["prompts_per_s_batch32"] = 32 / r["batch32_s"]
    return rows


def cold_start(src: Path | None, repeats: int) -> float:
    """Median seconds of `textopia generate "woman portrait" -n 4` in a new process."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    # What the `textopia` console script runs: cli.entry where the revision has it, else main.
    cmd = [sys.executable, "-c", "import sys, textopia.cli as c; sys.exit(getattr(c, 'entry', c.main)())",
           "generate", "woman portrait", "-n", "4", "--seed", "0"]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=tempfile.gettempdir())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


_LATENCY = """
import statistics, sys, time, textopia
g = textopia.load()
g.generate("woman portrait", n=1, seed=0)
out = {}
for n in (1, 8):
    times = []
    for seed in range(1, 6):
        t0 = time.perf_counter()
        g.generate("woman portrait", n=n, seed=seed)
        times.append(time.perf_counter() - t0)
    out[n] = statistics.median(times)
print(out[1], out[8])
"""


def warm_latency(src: Path) -> dict[str, float]:
    """Median seconds of ``generate("woman portrait", n)`` with every default (reranking on), n = 1
    and 8, in a process running the sources in ``src``, after one warm-up call."""
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run([sys.executable, "-c", _LATENCY], check=True, capture_output=True, text=True, env=env,
                         cwd=tempfile.gettempdir())
    one, eight = (float(x) for x in out.stdout.split()[-2:])
    return {"one_prompt_s": one, "eight_prompts_s": eight}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["default"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cold-repeats", type=int, default=3)
    ap.add_argument("--baseline-rev", default="e2dd2c2", help="revision whose cold start is the baseline")
    ap.add_argument("--out", default="benchmarks/results/speed")
    ap.add_argument("--load-clients", type=int, nargs="*", default=[1, 16, 64],
                    help="client counts for the service under load (none: skip it)")
    args = ap.parse_args(argv)
    rows = [r for m in args.models for r in bench_model(m, args.repeats)]
    cold = {"this checkout": cold_start(ROOT / "src", args.cold_repeats)}
    latency = {"this checkout": warm_latency(ROOT / "src")}
    with tempfile.TemporaryDirectory() as tmp:
        wt = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(wt), args.baseline_rev],
                       check=True, capture_output=True)
        try:
            cold[f"baseline {args.baseline_rev}"] = cold_start(wt / "src", args.cold_repeats)
            latency[f"baseline {args.baseline_rev}"] = warm_latency(wt / "src")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)], capture_output=True)
    service = None
    if args.load_clients:
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "load.py"), "--concurrency",
                        *map(str, args.load_clients), "--duration-s", "20", "--max-requests", "400"],
                       check=True, cwd=ROOT)
        service = json.loads((ROOT / "benchmarks" / "results" / "load.json").read_text())
    result = {"command": "python benchmarks/speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine_info.machine(), "new_tokens": NEW_TOKENS, "settings": SETTINGS,
              "rows": rows, "cold_start_s": cold, "default_settings_latency_s": latency,
              "service": service and {"command": service["command"], "server": service["server"],
                                      "levels": service["levels"]}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    m = result["machine"]
    lines = [f"# Decoding speed ({NEW_TOKENS} new tokens, top-p 0.95, temperature 0.9, no reranking)", "",
             f"Machine: {m['cpu']}, {m['cpus']} cores, torch {m['torch']} ({m['torch_threads']} threads). "
             f"Command: `{result['command']}`", "",
             "| model | engine | batch 1 (s) | batch 32 (s) | prompts/s at batch 32 |", "|---|---|---:|---:|---:|"]
    for r in rows:
        b32 = f"{r['batch32_s']:.3f}" if r.get("batch32_s") else "-"
        pps = f"{r['prompts_per_s_batch32']:.0f}" if r.get("prompts_per_s_batch32") else "-"
        lines.append(f"| {r['model']} | {r['engine']} | {r['batch1_s']:.3f} | {b32} | {pps} |")
    lines += ["", "| cold `textopia generate \"woman portrait\" -n 4` | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in cold.items()]
    base = [v for k, v in cold.items() if k.startswith("baseline")]
    if base:
        lines.append(f"| ratio (this / baseline) | {cold['this checkout'] / base[0]:.2f} |")
    lines += ["", "| `generate(\"woman portrait\", n)`, every default (reranking on), warm | n = 1 (s) | n = 8 (s) |",
              "|---|---:|---:|"]
    lines += [f"| {k} | {v['one_prompt_s']:.3f} | {v['eight_prompts_s']:.3f} |" for k, v in latency.items()]
    if service:
        lines += ["", f"Service under load (`{service['command']}`; 2 prompts per request, every default "
                      "setting; details in `benchmarks/results/load.md`):", "",
                  "| clients | req/s | p50 (s) | p99 (s) | errors |", "|---:|---:|---:|---:|---:|"]
        lines += [f"| {lv['concurrency']} | {lv['requests_per_s']:.2f} | {lv['latency_s']['p50']:.3f} | "
                  f"{lv['latency_s']['p99']:.3f} | {lv['errors']} |" for lv in service["levels"]]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
