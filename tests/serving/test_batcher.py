"""The micro-batcher decodes concurrent requests together; each caller gets its own answer."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

import textopia
from textopia.generation.base import DecodingSettings, TextopiaError
from textopia.serving.batcher import MicroBatcher


def test_concurrent_requests_share_batches(tiny_checkpoint):
    gen = textopia.load(str(tiny_checkpoint))
    batcher = MicroBatcher(gen, window_s=0.2, max_rows=96)
    settings = DecodingSettings(max_new_tokens=16)
    ideas = ["red fox", "castle on a hill", "old fisherman", None, "", "lighthouse"]
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            results[i] = batcher.generate(ideas[i], 2, replace(settings, seed=i))
        except TextopiaError as e:
            results[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(ideas))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    batcher.close()
    assert batcher.batches < len(ideas)  # some requests were decoded together
    assert isinstance(results[4], TextopiaError)  # the empty idea fails alone
    for i in (0, 1, 2, 3, 5):
        assert len(results[i]) == 2 and all(g.idea == (ideas[i] or None) for g in results[i])


def test_bad_bounds():
    with pytest.raises(ValueError, match="window_s"):
        MicroBatcher(object(), window_s=5)
    with pytest.raises(ValueError, match="workers"):
        MicroBatcher(object(), workers=0)


class _Rendezvous:
    """A generator whose batches finish only once two of them are being decoded at the same time."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=10)

    def generate_batch(self, calls):
        self.barrier.wait()  # raises BrokenBarrierError if no second batch comes while this one runs
        return [[f"{idea} {n}"] for idea, n, _ in calls]


def test_workers_decode_batches_at_the_same_time():
    gen = _Rendezvous()
    batcher = MicroBatcher(gen, window_s=0.0, max_rows=3, workers=2)  # one request (3 rows) per batch
    results: dict[int, object] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, batcher.generate(f"idea{i}", 1,
                                                                                          DecodingSettings())))
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    batcher.close()
    assert results == {0: ["idea0 1"], 1: ["idea1 1"]} and batcher.batches == 2
