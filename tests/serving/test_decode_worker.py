"""Batch decoding in child processes: the same prompts as in the service's own process, a bad
request failing alone, a dead child replaced, and the service decoding its default through them."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import textopia
from textopia.generation.base import TextopiaError
from textopia.generation.config import GenerationConfig
from textopia.serving.app import create_app
from textopia.serving.batcher import MicroBatcher
from textopia.serving.decode_worker import ProcessDecoder, WorkerDied, config_from_json
from textopia.serving.settings import ServingSettings

pytestmark = pytest.mark.slow

CALLS = [
    ("red fox", 2, GenerationConfig(seed=3, max_new_tokens=16)),
    ("x " * 400, 1, GenerationConfig(seed=1)),  # longer than the model reads: this call alone fails
    ("old fisherman", 1, GenerationConfig(seed=4, max_new_tokens=16, banned_words=("boat",))),
]


def test_config_round_trip():
    config = GenerationConfig(seed=7, banned_words=("a", "b"), temperature=0.7)
    back = config_from_json(json.loads(json.dumps(dataclasses.asdict(config))))
    assert back == config and hash(back) == hash(config)


def test_child_writes_what_the_process_writes(tiny_checkpoint: Path):
    decoder = ProcessDecoder(str(tiny_checkpoint), torch_threads=1)
    try:
        got = decoder.generate_batch(CALLS)
    finally:
        decoder.close()
    want = textopia.load(str(tiny_checkpoint)).generate_batch(CALLS)
    assert isinstance(got[1], TextopiaError) and str(got[1]) == str(want[1])
    assert got[0] == want[0] and got[2] == want[2]  # prompts, counts and settings alike
    assert len(got[0]) == 2 and got[2][0].settings["banned_words"] == ("boat",)


def test_the_child_draws_the_pool_it_is_given(tiny_checkpoint: Path):
    """A browned-out batch's ``min_pool`` crosses to the child: it writes what the process writes
    with that pool, and a pool the generator refuses fails the batch there."""
    calls = [("red fox", 1, GenerationConfig(seed=s, max_new_tokens=16)) for s in range(4)]
    decoder = ProcessDecoder(str(tiny_checkpoint), torch_threads=1)
    try:
        got = decoder.generate_batch(calls, min_pool=4)
        with pytest.raises(RuntimeError, match="min_pool must be"):
            decoder.generate_batch(calls, min_pool=0)
    finally:
        decoder.close()
    assert got == textopia.load(str(tiny_checkpoint)).generate_batch(calls, min_pool=4)


def test_a_dead_child_is_replaced(tiny_checkpoint: Path):
    decoder = ProcessDecoder(str(tiny_checkpoint), torch_threads=1)
    try:
        first = decoder.pid
        os.kill(first, signal.SIGKILL)
        decoder._proc.wait(timeout=10)
        got = decoder.generate_batch(CALLS[:1])  # a new child answers
        assert decoder.starts == 2 and decoder.pid != first and len(got[0]) == 2
        # One whose answer ends before it is whole (it died while decoding) fails that batch, and
        # the next batch gets a new one.
        real = decoder._proc.stdout
        decoder._proc.stdout = io.StringIO('{"results": [')
        real.close()
        with pytest.raises(WorkerDied, match="exited during a batch"):
            decoder.generate_batch(CALLS[:1])
        assert len(decoder.generate_batch(CALLS[:1])[0]) == 2 and decoder.starts == 3
    finally:
        decoder.close()
    assert decoder.pid is None


def test_ctrl_c_leaves_the_child_to_its_parent(tiny_checkpoint: Path):
    """Ctrl-C in a terminal signals the service's whole process group: the child lives on (no
    KeyboardInterrupt traceback in the service's log) and ends when the service closes it."""
    decoder = ProcessDecoder(str(tiny_checkpoint), torch_threads=1)
    try:
        proc = decoder._proc
        os.kill(decoder.pid, signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1)
        assert len(decoder.generate_batch(CALLS[:1])[0]) == 2 and decoder.starts == 1
    finally:
        decoder.close()
    assert proc.wait(timeout=10) == 0


def test_a_model_that_does_not_load_fails_to_start(tmp_path: Path):
    with pytest.raises(WorkerDied, match="did not start"):
        ProcessDecoder(str(tmp_path / "missing"), torch_threads=1)


def test_batcher_decodes_in_processes(tiny_checkpoint: Path):
    backends = [ProcessDecoder(str(tiny_checkpoint), torch_threads=1) for _ in range(2)]
    batcher = MicroBatcher(object(), window_s=0.05, workers=2, backends=backends)  # the generator is not used
    results: dict[int, object] = {}

    def call(i: int) -> None:
        idea, n, settings = CALLS[i % 3]
        try:
            results[i] = batcher.generate(idea, n, settings)
        except TextopiaError as e:
            results[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    batcher.close()
    assert all(b.pid is None for b in backends)  # closed with the batcher
    for i in range(6):
        if i % 3 == 1:
            assert isinstance(results[i], TextopiaError)
        else:
            assert [g.idea for g in results[i]] == [CALLS[i % 3][0]] * CALLS[i % 3][1]
    with pytest.raises(ValueError, match="backends"):
        MicroBatcher(object(), workers=2, backends=backends[:1])


def test_service_decodes_its_default_in_processes(tiny_checkpoint: Path, monkeypatch):
    settings = ServingSettings(load_default=False, load_latent=False, models=[str(tiny_checkpoint)],
                               sagemaker_model_dir=Path("/nonexistent"), clip_tokens=False, batch_workers=2)
    started = []
    real_start = ProcessDecoder._start

    def spy(self):
        real_start(self)
        started.append(self.pid)

    monkeypatch.setattr(ProcessDecoder, "_start", spy)
    body = {"idea": "red fox", "n": 2, "seed": 5, "max_new_tokens": 16}
    with TestClient(create_app(settings)) as c:
        assert len(started) == 2  # both workers' children, ready before the first request
        r = c.post("/v1/generate", json=body)
        assert r.status_code == 200, r.text
        got = [p["prompt"] for p in r.json()["prompts"]]
    assert all(p is not None for p in started)
    with TestClient(create_app(settings.model_copy(update={"batch_processes": False}))) as c:
        assert [p["prompt"] for p in c.post("/v1/generate", json=body).json()["prompts"]] == got
    assert len(started) == 2  # none without batch_processes


def test_service_decodes_on_threads_where_a_process_does_not_start(tiny_checkpoint: Path, monkeypatch, caplog):
    settings = ServingSettings(load_default=False, load_latent=False, models=[str(tiny_checkpoint)],
                               sagemaker_model_dir=Path("/nonexistent"), clip_tokens=False, batch_workers=2)

    def fail(self):
        raise WorkerDied("the decoding process for x did not start")

    monkeypatch.setattr(ProcessDecoder, "_start", fail)
    with TestClient(create_app(settings)) as c:
        r = c.post("/v1/generate", json={"idea": "red fox", "n": 1, "seed": 5, "max_new_tokens": 16})
        assert r.status_code == 200, r.text
        batcher = c.app.state.textopia.store.get(None).batcher
        assert batcher is not None and batcher.backends is None
    assert "on threads instead" in caplog.text
