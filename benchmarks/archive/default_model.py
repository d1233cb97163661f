"""Speed of the default model on this machine: training tokens/s and generation latency.

Usage (from the repository root, after `textopia prepare ... --out data/sd`)::

    python benchmarks/default_model.py [--model default] [--config configs/gpt-small.toml]
        [--train-steps 60] [--repeats 5] [--out benchmarks/results/default_model]

Writes ``<out>.json`` and ``<out>.md``. Figures:
- training: tokens/s (input tokens, padding excluded) of the default config over ``--train-steps``
  optimizer steps, the first 20 (warm-up) left out;
- generation: seconds for ``textopia.load`` (model load), for one prompt and for 8 prompts
  (idea "woman portrait", default decoding settings, rerank on), the median over ``--repeats``
  seeds; the whole CLI call from a cold process (imports included); peak resident memory (MiB).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine_info


def machine() -> dict:
    """This report's machine keys, read from :func:`machine_info.machine` (``cores`` is its ``cpus``)."""
    m = machine_info.machine()
    return {"cpu": m["cpu"], "cores": m["cpus"], "torch_threads": m["torch_threads"], "torch": m["torch"],
            "python": m["python"]}


def bench_training(config: str, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["textopia", "train", "--config", config, "--no-progress",
               "--set", f"train.out_dir={tmp}/run", "--set", f"train.max_steps={steps}",
               "--set", "train.eval_every=0", "--set", "train.save_every=0", "--set", "train.log_every=10",
               "--set", "train.max_minutes=None"]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        lines = [json.loads(x) for x in Path(f"{tmp}/run/metrics.jsonl").read_text().splitlines()]
    rates = [x["tokens_per_s"] for x in lines if x["split"] == "train" and x["step"] > 20]
    return {"steps": steps, "tokens_per_s_median": statistics.median(rates), "tokens_per_s_windows": rates,
            "command": " ".join(cmd)}


def bench_generation(model: str, repeats: int) -> dict:
    import textopia

    t0 = time.perf_counter()
    gen = textopia.load(model)
    load_s = time.perf_counter() - t0
    one, eight = [], []
    for seed in range(repeats):
        t0 = time.perf_counter()
        gen.generate("woman portrait", n=1, seed=seed)
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        gen.generate("woman portrait", n=8, seed=seed)
        eight.append(time.perf_counter() - t0)
    cold = []
    for seed in range(min(repeats, 3)):
        t0 = time.perf_counter()
        subprocess.run(["textopia", "generate", "woman portrait", "-n", "4", "--seed", str(seed), "--model", model],
                       check=True, capture_output=True)
        cold.append(time.perf_counter() - t0)
    return {
        "model": model,
        "parameters": gen.info().get("parameters"),
        "load_s": load_s,
        "one_prompt_s_median": statistics.median(one),
        "eight_prompts_s_median": statistics.median(eight),
        "cli_cold_4_prompts_s_median": statistics.median(cold),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--config", default="configs/gpt-small.toml")
    parser.add_argument("--train-steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/default_model")
    args = parser.parse_args()
    result = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(),
              "generation": bench_generation(args.model, args.repeats)}
    if not args.skip_training:
        result["training"] = bench_training(args.config, args.train_steps)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    g = result["generation"]
    rows = [
        "| figure | value |", "|---|---|",
        f"| model load (s) | {g['load_s']:.2f} |",
        f"| one prompt (s, median of {g['repeats']}) | {g['one_prompt_s_median']:.2f} |",
        f"| 8 prompts (s, median of {g['repeats']}) | {g['eight_prompts_s_median']:.2f} |",
        f"| `textopia generate -n 4` from a cold process (s) | {g['cli_cold_4_prompts_s_median']:.2f} |",
        f"| peak resident memory (MiB) | {g['peak_rss_mib']:.0f} |",
    ]
    if "training" in result:
        rows.append(f"| training (tokens/s, median) | {result['training']['tokens_per_s_median']:.0f} |")
    m = result["machine"]
    text = (f"# Default model speed\n\nCommand: `{result['command']}`\n\n"
            f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads)\n\n"
            + "\n".join(rows) + "\n")
    Path(args.out + ".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
