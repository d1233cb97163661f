"""Training memory probe (issue #17): RSS and tokens/s of `textopia.training.trainer.train` on
configs/gpt-small.toml for a few steps, optionally with batches padded to a multiple of N tokens.

Usage (from the repository root; one run per process, as oneDNN reads its cache size once)::

    OMP_NUM_THREADS=1 ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024 python benchmarks/train_memory.py --steps 150  # oneDNN's default
    OMP_NUM_THREADS=1 python benchmarks/train_memory.py --steps 150            # the trainer's cap (64)
    OMP_NUM_THREADS=1 python benchmarks/train_memory.py --steps 150 --pad 16   # padded batches

Prints RSS (sampled every 5 s) after warm-up, at its peak and at the end, and the tokens/s of each
25-step window. The figures are in benchmarks/results/train_memory.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import textopia.data.batching as batching
import textopia.training.tasks as tasks

ROOT = Path(__file__).resolve().parents[1]


def padded_collate(multiple: int):
    """``collate`` with every batch padded to a multiple of ``multiple`` tokens."""
    plain = batching.collate

    def collate(examples, pad_id):
        width = -(-max(len(ids) for ids, _ in examples) // multiple) * multiple
        out = plain([*examples, ([pad_id] * width, [])], pad_id)  # a padding row sets the width
        return {k: v[:-1] for k, v in out.items()}

    return collate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="data/sd")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--pad", type=int, default=1, help="pad batches to a multiple of this many tokens")
    args = ap.parse_args()
    if args.pad > 1:
        tasks.collate = padded_collate(args.pad)
    from textopia.training.config import load_config
    from textopia.training.trainer import train

    rss: list[int] = []

    def sample() -> None:
        while True:
            rss.append(int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]))
            time.sleep(5)

    threading.Thread(target=sample, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(str(ROOT / "configs" / "gpt-small.toml"), [
            f"train.out_dir={tmp}/run", f"data.dir={args.data_dir}", f"train.max_steps={args.steps}",
            "train.save_every=0", "train.eval_every=0", "train.log_every=25", "train.precision=auto"])
        started = time.time()
        train(config, progress=False)
        rows = [json.loads(x) for x in Path(f"{tmp}/run/metrics.jsonl").read_text().splitlines()]
    rates = [round(r["tokens_per_s"]) for r in rows if r["split"] == "train"]
    print(f"pad {args.pad}: {time.time() - started:.0f} s, tokens/s by window {rates}, "
          f"RSS MB after warm-up/peak/end {rss[2] // 1024}/{max(rss) // 1024}/{rss[-1] // 1024}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
