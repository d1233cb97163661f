"""The coherence critic's training data: a writer's raw samples beside the human prompts their ideas
came from (:func:`textopia.evaluation.critic.writer_samples`).

Usage (from the repository root, after `textopia prepare ... --out data/sd`)::

    python -m benchmarks critic_samples --set data_dir=data/sd model=default samples_dir=runs/critic-samples
        [train=24000 valid=3000] [--out runs/critic-samples]

Writes ``train.jsonl`` (ideas from the train split, seed 1) and ``valid.jsonl`` (from the valid
split, seed 2) into ``samples_dir``: what ``textopia train --config configs/critic.toml`` reads.
Figures: rows written per split, the share with an empty sample, and samples per second (seconds
of wall clock, model loading excluded); the harness writes them as ``critic_samples.{json,md}``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from benchmarks.harness import benchmark

logger = logging.getLogger("benchmarks.critic_samples")

#: Each split's seed for deriving its ideas (the critic's data as shipped used these).
SEEDS = {"train": 1, "valid": 2}


@benchmark("critic_samples", smoke=dict(train=4, valid=2, samples_dir=""), corpus="data_dir")
def run(data_dir: str = "data/sd", model: str = "default", samples_dir: str = "runs/critic-samples",
        train: int = 24000, valid: int = 3000) -> dict:
    """The coherence critic's training data: one raw writer sample per idea, beside its human prompt.

    ``model``: the writer, an embedded model's name or a checkpoint; ``train``, ``valid``: ideas
    (and samples) from each split; ``samples_dir``: where ``train.jsonl`` and ``valid.jsonl`` go
    ("": a temporary folder, deleted after the run: the smoke size).
    """
    import tempfile

    import textopia
    from textopia.data.corpus import read_split
    from textopia.evaluation.critic import write_samples, writer_samples

    generator = textopia.load(model, critic=False)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(samples_dir or tmp)
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for split, num in (("train", train), ("valid", valid)):
            start = time.perf_counter()

            def progress(done: int, split: str = split, start: float = start) -> None:
                if done % 1024 == 0:
                    logger.info("%s: %d ideas in %.0f s", split, done, time.perf_counter() - start)

            samples = writer_samples(generator, read_split(data_dir, split), num, seed=SEEDS[split], progress=progress)
            seconds = time.perf_counter() - start
            write_samples(samples, out / f"{split}.jsonl")
            rows.append({"split": split, "rows": len(samples), "seed": SEEDS[split],
                         "empty_sample_share": sum(not s["sample"].strip() for s in samples) / max(1, len(samples)),
                         "samples_per_s": len(samples) / seconds, "seconds": seconds,
                         "file": str(out / f"{split}.jsonl") if samples_dir else None})
    return {"model": model, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.critic_samples --data-dir D --model M --out DIR [--train N] [--valid N]``:
    the command ``configs/critic.toml`` names; the same run as ``python -m benchmarks critic_samples``
    with ``samples_dir=DIR``, its result files written into ``DIR`` beside the samples."""
    import argparse

    from benchmarks import harness

    ap = argparse.ArgumentParser(prog="python -m benchmarks.critic_samples", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="data/sd")
    ap.add_argument("--model", default="default", help="the writer: an embedded model's name or a checkpoint")
    ap.add_argument("--out", default="runs/critic-samples", help="folder for train.jsonl and valid.jsonl")
    ap.add_argument("--train", type=int, default=24000, help="ideas (and samples) from the train split")
    ap.add_argument("--valid", type=int, default=3000, help="ideas (and samples) from the valid split")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    result = harness.run("critic_samples", overrides=dict(data_dir=args.data_dir, model=args.model,
                                                          samples_dir=args.out, train=args.train, valid=args.valid))
    harness.write(result, args.out)
    print(harness.markdown(result), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
