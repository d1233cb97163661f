"""The coherence critic's training data: a writer's raw samples beside the human prompts their ideas
came from (:func:`textopia.evaluation.critic.writer_samples`).

Usage (from the repository root, after `textopia prepare ... --out data/sd`)::

    python -m benchmarks.critic_samples --data-dir data/sd --model default --out runs/critic-samples
        [--train 24000] [--valid 3000]

Writes ``train.jsonl`` (ideas from the train split, seed 1) and ``valid.jsonl`` (from the valid
split, seed 2) into ``--out``: what ``textopia train --config configs/critic.toml`` reads.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="data/sd")
    ap.add_argument("--model", default="default", help="the writer: an embedded model's name or a checkpoint")
    ap.add_argument("--out", default="runs/critic-samples")
    ap.add_argument("--train", type=int, default=24000, help="ideas (and samples) from the train split")
    ap.add_argument("--valid", type=int, default=3000, help="ideas (and samples) from the valid split")
    args = ap.parse_args(argv)

    import textopia
    from textopia.data.corpus import read_split
    from textopia.evaluation.critic import write_samples, writer_samples

    generator = textopia.load(args.model, critic=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split, num, seed in (("train", args.train, 1), ("valid", args.valid, 2)):
        start = time.perf_counter()
        rows = writer_samples(generator, read_split(args.data_dir, split), num, seed=seed,
                              progress=lambda k: print(f"{split} {k} {time.perf_counter() - start:.0f} s", flush=True)
                              if k % 1024 == 0 else None)
        write_samples(rows, out / f"{split}.jsonl")
        print(f"{split}: {len(rows)} rows in {time.perf_counter() - start:.0f} s -> {out / f'{split}.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
