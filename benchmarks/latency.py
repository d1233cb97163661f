"""Warm latency of one `generate` call with every default on, as a user clicking once waits for it.

Usage (from the repository root)::

    python -m benchmarks latency [--set model=default n=1,8 ideas_file=benchmarks/ideas/user_ideas.txt
        "settings=candidates=4,candidates=8"] [--out benchmarks/results]

Loads the model once, writes one warm-up call, then for each setting (``KEY=VALUE`` pairs,
space-separated, on top of the defaults; "" for the defaults alone) and each ``n`` calls
``generate(idea, n, seed=i)`` for every idea, timing each call (wall clock, seconds). Settings are
measured side by side in one run, interleaved idea by idea, so that a change in the machine's load
touches them alike. Figures: p50, p90 and mean seconds per setting and ``n``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from benchmarks.harness import benchmark

IDEAS = Path(__file__).resolve().parent / "ideas" / "user_ideas.txt"
_INTS = ("candidates", "top_k", "max_new_tokens", "min_new_tokens")


def parse(setting: str) -> dict:
    """``"candidates=4 temperature=0.8"`` as generate() keywords."""
    out: dict = {}
    for kv in setting.split():
        key, value = kv.split("=", 1)
        out[key] = int(value) if key in _INTS else value.lower() == "true" if key == "rerank" else float(value)
    return out


@benchmark("latency", smoke=dict(n=(1,), num_ideas=2, settings=("max_new_tokens=8",)))
def run(model: str = "default", n: tuple[int, ...] = (1, 8), ideas_file: str = str(IDEAS), num_ideas: int = 0,
        settings: tuple[str, ...] = ("",)) -> dict:
    """Warm latency of one `generate` call with every default on (p50, p90, mean seconds)."""
    import textopia
    from textopia.evaluation.ideas import read_ideas_file

    ideas = read_ideas_file(ideas_file)
    ideas = ideas[:num_ideas] if num_ideas else ideas
    generator = textopia.load(model)
    generator.generate("warm up", n=max(n), seed=0, **parse(settings[0]))
    times: dict[tuple[str, int], list[float]] = {(s, k): [] for s in settings for k in n}
    for i, idea in enumerate(ideas):
        for setting in settings:
            for k in n:
                start = time.perf_counter()
                generator.generate(idea, k, seed=i, **parse(setting))
                times[(setting, k)].append(time.perf_counter() - start)
    rows = []
    for (setting, k), values in times.items():
        p90 = statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]
        rows.append({"settings": setting or "defaults", "n": k, "calls": len(values),
                     "p50_s": statistics.median(values), "p90_s": p90, "mean_s": statistics.fmean(values)})
    return {"model": model, "critic": generator.critic is not None, "rows": rows}
