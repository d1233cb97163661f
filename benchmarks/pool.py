"""How many samples one prompt should be chosen among: the share of chosen prompts with no fault
the reranker ranks down, by the samples a call draws.

Usage (from the repository root)::

    python -m benchmarks pool [--set model=default pools=8,12,16 num_derived=60] [--out benchmarks/results]

For each pool size ``p``, one prompt per idea (``generate(idea, 1, seed=i, candidates=p)``, the
floor :data:`~textopia.generation.config.MIN_POOL` lifted so that the call draws exactly ``p``), on
``num_derived`` ideas drawn from ``benchmarks/ideas/derived_1000.txt`` (seed 1) and the ideas of
``ideas_file``. A chosen prompt is fault-free when the reranker's score
(:func:`~textopia.generation.rerank.score_sample`) puts it in the first tier but for fluency: every
idea word, no invented word, no stutter, ended by the model, the idea as the subject, no phrase
twice, no clash, no broken phrase. Figures: that share, and seconds per idea (wall clock).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from benchmarks.harness import benchmark

IDEAS = Path(__file__).resolve().parent / "ideas"


@benchmark("pool", smoke=dict(pools=(2, 4), num_derived=2, ideas_file="", max_new_tokens=12))
def run(model: str = "default", pools: tuple[int, ...] = (8, 12, 16), num_derived: int = 60,
        ideas_file: str = str(IDEAS / "user_ideas.txt"), max_new_tokens: int = 0) -> dict:
    """The share of one-prompt calls whose chosen prompt has no fault the reranker ranks down, by pool size."""
    import textopia
    from textopia.evaluation.ideas import read_ideas_file
    from textopia.generation import config
    from textopia.generation.rerank import score_sample

    derived = read_ideas_file(IDEAS / "derived_1000.txt")
    ideas = random.Random(1).sample(derived, num_derived) + (read_ideas_file(ideas_file) if ideas_file else [])
    generator = textopia.load(model)
    extra = {"max_new_tokens": max_new_tokens} if max_new_tokens else {}
    floor, config.MIN_POOL = config.MIN_POOL, 1
    rows = []
    try:
        for pool in pools:
            started, clean = time.perf_counter(), 0
            for i, idea in enumerate(ideas):
                chosen = generator.generate(idea, 1, seed=i, candidates=pool, **extra)[0]
                clean += score_sample(idea, chosen.prompt, 0.0, 1, generator.known_words, chosen.finished).faultless
            rows.append({"samples": pool, "ideas": len(ideas), "fault_free": clean / len(ideas),
                         "seconds_per_idea": (time.perf_counter() - started) / len(ideas)})
    finally:
        config.MIN_POOL = floor
    return {"model": model, "rows": rows}
