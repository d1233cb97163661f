"""The coherence critic's data: the writer's own samples beside human prompts for the same ideas.

Residual energy-based reranking (Deng et al. 2020, "Residual Energy-Based Models for Text
Generation", ICLR) trains a classifier to tell human text from the language model's samples and
then prefers the samples it finds most human. The negatives here are exactly what the reranker
chooses among: one raw candidate per idea (expand mode, the model's default decoding, no rerank),
cleaned and cut to CLIP's 77 tokens; the positives are the human prompts the ideas were derived
from, cut the same way, so that the critic cannot tell them apart by the cut alone.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from textopia.clip_count import fit_clip
from textopia.evaluation.ideas import ideas_from_prompts
from textopia.generation.base import Generator


def writer_samples(generator: Generator, prompts: Sequence[str], num: int, *, seed: int = 0, batch: int = 32,
                   progress: Callable[[int], None] | None = None) -> list[dict[str, str]]:
    """One raw candidate of ``generator`` for each of ``num`` ideas derived from ``prompts``.

    Args:
        prompts: human prompts (a split); ideas come from them by
            :func:`~textopia.evaluation.ideas.ideas_from_prompts` with ``seed``.
        batch: ideas decoded together (:meth:`generate_batch` where the generator has it).
        progress: called with the number of ideas done after each batch.

    Returns:
        ``{"idea", "human", "sample"}`` per idea: the idea, its source prompt (cut to CLIP's 77
        tokens) and the writer's sample (empty when the writer wrote none).
    """
    pairs = ideas_from_prompts(prompts, num, seed)
    rng = random.Random(f"critic/{seed}")
    rows: list[dict[str, str]] = []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        settings = [generator.decoding(seed=rng.randrange(2**31), rerank=False) for _ in chunk]
        if hasattr(generator, "generate_batch"):
            outs = generator.generate_batch([(idea, 1, s) for (idea, _), s in zip(chunk, settings)])
        else:
            outs = [generator.generate_with(idea, 1, s) for (idea, _), s in zip(chunk, settings)]
        humans = fit_clip([human for _, human in chunk])
        for (idea, _), human, out in zip(chunk, humans, outs):
            sample = out[0].prompt if isinstance(out, list) and out else ""
            rows.append({"idea": idea, "human": human, "sample": sample})
        if progress is not None:
            progress(len(rows))
    return rows


def write_samples(rows: Sequence[dict[str, str]], path: str | Path) -> None:
    """Write :func:`writer_samples`' rows as JSON Lines (atomically)."""
    from textopia.io import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_samples(path: str | Path) -> list[dict[str, str]]:
    """Rows written by :func:`write_samples`."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
