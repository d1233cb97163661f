"""CPU cost of one request inside a micro-batch, by section, as the service's batch worker pays it.

Usage (from the repository root)::

    python -m benchmarks request_cost [--set batch=8 batches=20 threads=1] [--out DIR]

Loads the model once and, for ``batches`` micro-batches, calls ``generate_batch`` with ``batch``
one-prompt requests (n=1, every default on, seed = the request's index), the ideas drawn in turn
from ``benchmarks/ideas/derived_1000.txt`` (the load benchmark's realistic mix: 1-6 words derived
from test prompts). ``min_pool``: the fewest samples a call draws (0: the generator's own; 8 is the
service's brownout pool, what a call draws under load). ``torch.set_num_threads(threads)``: one
thread is what each of the service's two batch processes has on a 2-core machine.

Each call's wall time is split by timing the generator's own steps from outside (instance
attributes wrap them; the library is not changed): ``opening`` (choosing the opening made of the
idea: one pass of the writer over its forms), ``sampling`` (the sampler's rounds: the writer's
forward passes, the logits processors and the draws), ``forward`` (every call of the writer's
``forward``: the sampling's passes and the opening's), ``judging`` (the keep head's pass over the contenders and the critic, where it
runs) and ``rest`` (decoding, scoring and the rerank). Figures: seconds per request, mean over the
measured batches after one warm-up batch; the machine is in the result.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from benchmarks.harness import benchmark

IDEAS = Path(__file__).resolve().parent / "ideas" / "derived_1000.txt"


class _Clock:
    """Seconds spent inside the wrapped callables, per section."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - start

        return timed


@benchmark("request_cost", smoke=dict(batch=2, batches=1, max_new_tokens=8))
def run(model: str = "default", batch: int = 8, batches: int = 20, threads: int = 1, ideas_file: str = str(IDEAS),
        max_new_tokens: int = 0, min_pool: int = 0) -> dict:
    """Seconds of CPU per one-prompt request in a micro-batch, split into sampling, judging and the rest."""
    from dataclasses import replace

    import torch

    import textopia
    from textopia.evaluation.ideas import read_ideas_file

    torch.set_num_threads(threads)
    ideas = read_ideas_file(ideas_file)
    generator = textopia.load(model)
    base = generator.default_decoding
    if max_new_tokens:
        base = replace(base, max_new_tokens=max_new_tokens)
    clock = _Clock()
    generator.sampler.draw = clock.wrap("sampling", generator.sampler.draw)
    generator._judge = clock.wrap("judging", generator._judge)
    generator.idea_prefix = clock.wrap("opening", generator.idea_prefix)
    generator.model.forward = clock.wrap("forward", generator.model.forward)
    per_batch: list[dict[str, float]] = []
    for b in range(batches + 1):  # batch 0 warms up
        calls = [(ideas[(b * batch + i) % len(ideas)], 1, replace(base, seed=b * batch + i)) for i in range(batch)]
        clock.spent = {}
        start = time.perf_counter()
        out = generator.generate_batch(calls, min_pool=min_pool or None)
        wall = time.perf_counter() - start
        assert all(isinstance(o, list) for o in out), out
        if b:
            spent = dict(clock.spent)
            per_batch.append({key: spent.get(key, 0.0) for key in ("sampling", "forward", "opening", "judging")}
                             | {"wall": wall})
    rows = []
    for key in ("wall", "opening", "sampling", "forward", "judging"):
        values = [p[key] / batch for p in per_batch]
        rows.append({"section": key, "s_per_request": statistics.fmean(values),
                     "p50_s_per_request": statistics.median(values)})
    rest = [(p["wall"] - p["opening"] - p["sampling"] - p["judging"]) / batch for p in per_batch]
    rows.append({"section": "rest", "s_per_request": statistics.fmean(rest), "p50_s_per_request": statistics.median(rest)})
    return {"model": model, "batch": batch, "batches": batches, "threads": threads, "min_pool": min_pool or None,
            "settings": "the model's default decoding, n=1", "rows": rows}
