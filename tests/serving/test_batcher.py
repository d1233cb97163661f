"""The micro-batcher decodes concurrent requests together; each caller gets its own answer."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

import textopia
from textopia.generation.base import TextopiaError
from textopia.generation.config import GenerationConfig
from textopia.serving.batcher import MicroBatcher


def test_concurrent_requests_share_batches(tiny_checkpoint):
    gen = textopia.load(str(tiny_checkpoint))
    batcher = MicroBatcher(gen, window_s=0.2, max_rows=96)
    settings = GenerationConfig(max_new_tokens=16)
    ideas = ["red fox", "castle on a hill", "old fisherman", None, "red fox", "lighthouse"]
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:  # request 4 asks for too many prompts
            results[i] = batcher.generate(ideas[i], 2 if i != 4 else 65, replace(settings, seed=i))
        except TextopiaError as e:
            results[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(ideas))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    batcher.close()
    assert batcher.batches < len(ideas)  # some requests were decoded together
    assert isinstance(results[4], TextopiaError)  # the bad request fails alone
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
                                                                                          GenerationConfig())))
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    batcher.close()
    assert results == {0: ["idea0 1"], 1: ["idea1 1"]} and batcher.batches == 2


def test_a_requests_settings_reach_the_batched_generation(app_factory):
    """Through the API to ``generate_batch``: every decoding setting a request sends arrives in the
    settings the micro-batcher hands the generator (the fakes without ``generate_batch`` take the
    unbatched path, so only this test covers the batched one)."""
    from fastapi.testclient import TestClient

    from tests.fakes import FakeBatchGenerator

    gen = FakeBatchGenerator()
    body = {"idea": "red fox", "n": 2, "mode": "continue", "temperature": 0.7, "top_p": 0.8, "top_k": 40,
            "repetition_penalty": 1.3, "min_p": 0.1, "idea_boost": 1.5, "candidates": 3, "idea_prefix": 0.25,
            "known_words_only": True, "max_new_tokens": 30, "seed": 11, "banned_words": ["cinematic"]}
    with TestClient(app_factory({"fake-batch": gen}, batch_window_ms=5.0)) as client:
        r = client.post("/v1/generate", json=body)
    assert r.status_code == 200, r.text
    assert len(gen.batches) == 1 and len(gen.batches[0]) == 1  # the batched path, not generate()
    idea, n, settings = gen.batches[0][0]
    assert (idea, n) == ("red fox", 2)
    sent = {k: v for k, v in body.items() if k not in ("idea", "n", "banned_words")}
    assert {k: getattr(settings, k) for k in sent} == sent
    assert "cinematic" in settings.banned_words  # with safe mode's own words


class _Gate:
    """A generator whose first batch waits until released, recording every call it decodes."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.decoded: list[str] = []

    def generate_batch(self, calls):
        self.release.wait(10)
        self.decoded += [idea for idea, _, _ in calls]
        return [[idea] for idea, _, _ in calls]


def test_a_request_past_its_deadline_is_dropped_unsampled():
    """A request whose deadline passes while it waits behind a batch is never decoded (its
    client has gone); its caller gets InferenceTimeout, and a request still in time is decoded."""
    import time

    from textopia.serving.limiter import InferenceTimeout

    gen = _Gate()
    batcher = MicroBatcher(gen, window_s=0.0, max_rows=1, workers=1)  # one request per batch
    results: dict[str, object] = {}

    def call(idea: str, deadline: float | None) -> None:
        try:
            results[idea] = batcher.generate(idea, 1, GenerationConfig(rerank=False), deadline)
        except InferenceTimeout as e:
            results[idea] = e

    first = threading.Thread(target=call, args=("first", None))
    first.start()
    time.sleep(0.2)  # "first" holds the worker
    late = threading.Thread(target=call, args=("late", time.monotonic() + 0.1))
    timely = threading.Thread(target=call, args=("timely", time.monotonic() + 30))
    late.start(), timely.start()
    time.sleep(0.4)  # "late"'s deadline passes while it waits
    gen.release.set()
    for t in (first, late, timely):
        t.join(20)
    batcher.close()
    assert isinstance(results["late"], InferenceTimeout)
    assert results["first"] == ["first"] and results["timely"] == ["timely"]
    assert gen.decoded == ["first", "timely"] and batcher.dropped == 1


class _Recorder(_Gate):
    """A gated generator that records each batch's calls and the candidate pool it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[list[str], int | None]] = []

    def generate_batch(self, calls, min_pool=None):
        self.release.wait(10)
        self.batches.append(([idea for idea, _, _ in calls], min_pool))
        return [[idea] for idea, _, _ in calls]


@pytest.mark.parametrize("brownout_pool", [8, None])
def test_a_full_batch_browns_out_while_requests_wait(brownout_pool):
    """With one worker busy and requests waiting, the next full batch draws brownout_pool
    candidates a call and takes a waiting request into the rows that frees; the last request, with
    nobody behind it, gets the whole pool. Without a brownout pool every batch keeps it."""
    import time

    gen = _Recorder()
    # 16 rows a batch: one one-prompt request at the pool of 16, two at 8
    batcher = MicroBatcher(gen, window_s=0.0, max_rows=16, workers=1, brownout_pool=brownout_pool)
    results: dict[str, object] = {}
    calls = [threading.Thread(target=lambda i=i: results.__setitem__(i, batcher.generate(f"idea{i}", 1, GenerationConfig())))
             for i in range(4)]
    calls[0].start()
    time.sleep(0.2)  # idea0 holds the worker
    for t in calls[1:]:
        t.start()
        time.sleep(0.05)  # queued in order
    gen.release.set()
    for t in calls:
        t.join(20)
    batcher.close()
    assert results == {i: [f"idea{i}"] for i in range(4)}
    if brownout_pool:
        assert gen.batches == [(["idea0"], None), (["idea1", "idea2"], 8), (["idea3"], None)]
        assert batcher.browned_out == 1
    else:
        assert gen.batches == [([f"idea{i}"], None) for i in range(4)] and batcher.browned_out == 0


def test_brownout_pool_bounds():
    with pytest.raises(ValueError, match="brownout_pool"):
        MicroBatcher(object(), brownout_pool=0)


def test_a_smaller_pool_draws_fewer_rows(tiny_checkpoint):
    """``generate_batch``'s ``min_pool`` is the rows a one-prompt call samples a round."""
    gen = textopia.load(str(tiny_checkpoint))
    drawn: list[int] = []
    draw = gen.sampler.draw

    def counting(jobs, settings):
        drawn.append(sum(job.rows for job in jobs))
        return draw(jobs, settings)

    gen.sampler.draw = counting
    settings = GenerationConfig(max_new_tokens=8, seed=3)
    for pool in (None, 8):
        drawn.clear()
        out = gen.generate_batch([("red fox", 1, settings)], min_pool=pool)
        assert len(out[0]) == 1 and drawn[0] == (gen.min_pool if pool is None else pool)
    with pytest.raises(ValueError, match="min_pool"):
        gen.generate_batch([("red fox", 1, settings)], min_pool=0)


def test_a_backlog_is_what_the_other_workers_cannot_hold():
    """The brownout's signal: requests queued now, or more requests in flight beside a gathered
    batch than the other workers hold in batches of its size (one arriving just after the batch
    window closed waits as surely as a queued one)."""
    batcher = MicroBatcher(object(), workers=2, brownout_pool=8)
    try:
        batcher._in_flight = 2  # this batch of one and one in the other worker: nobody waits
        assert not batcher._backlog(1)
        batcher._in_flight = 3  # one more than the other worker's batch of one holds
        assert batcher._backlog(1)
        assert not batcher._backlog(2)  # batches of two: the other worker holds the one left
    finally:
        batcher._in_flight = 0
        batcher.close()
