"""Batch decoding in a child process: a model's micro-batches without the service's GIL.

A decoding step is many small torch operations, and the Python between them holds the
interpreter's lock: two batch workers on threads of one process wait on each other for it (on
our 2-core CPU two threads decoded 5.87 one-prompt requests a second where two processes decoded
8.36, side by side: ``benchmarks/results/load_realistic/s26/README.md``). A
:class:`ProcessDecoder` is one batch worker's model in a child process of its own, which the
parent drives over the child's stdin and stdout, one JSON line each way per batch (no pickle)::

    parent: {"calls": [[idea, n, {GenerationConfig's fields}], ...], "min_pool": null | int}
    child:  {"results": [{"prompts": [Generation as a dict, ...]} | {"error": message}, ...]}
            | {"failed": message}            (the batch failed as a whole)

The child loads the model with :func:`textopia.load` by the same name or path the service loaded
it by, so it writes what the service's own copy would: the same prompts for a seed, given the
same batch. It exits when its stdin closes (the service stopped, or died).

Run as ``python -m textopia.serving.decode_worker '{"model": NAME, "torch_threads": K}'``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from textopia.generation.base import Generation, TextopiaError
from textopia.generation.config import GenerationConfig

logger = logging.getLogger(__name__)

#: Seconds a child may take to load its model and say it is ready.
READY_TIMEOUT_S = 300.0


def config_from_json(fields: dict[str, Any]) -> GenerationConfig:
    """The :class:`GenerationConfig` whose ``dataclasses.asdict`` went through JSON (which writes
    tuples as lists): lists back to tuples, so that it hashes as the original does."""
    return GenerationConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


class WorkerDied(RuntimeError):
    """The child process exited or broke its protocol; the batch in hand failed (the service
    answers 500) and the next batch starts a new child."""


class ProcessDecoder:
    """One model's ``generate_batch`` run in a child process (see the module's docstring).

    Args:
        model: the name or checkpoint path :func:`textopia.load` takes.
        torch_threads: the child's torch intra-op threads (None: torch's default).
        start: start the child now and wait until it is ready (else at the first batch).

    Raises:
        WorkerDied: the child could not be started, did not become ready within
            :data:`READY_TIMEOUT_S`, or exited first (its error is in the service's log: the child
            writes its stderr there).
    """

    def __init__(self, model: str, *, torch_threads: int | None = None, start: bool = True) -> None:
        self.model = model
        self.torch_threads = torch_threads
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self.starts = 0  # children started so far (a restart after a death counts)
        if start:
            self.start()

    def start(self) -> None:
        """Start the child, where none runs, and wait until it has loaded its model.

        Raises:
            WorkerDied: as the constructor.
        """
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._stop()
                self._start()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _start(self) -> None:
        spec = json.dumps({"model": self.model, "torch_threads": self.torch_threads})
        env = dict(os.environ)
        if self.torch_threads is not None:
            env["OMP_NUM_THREADS"] = str(self.torch_threads)
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", "textopia.serving.decode_worker", spec],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
                                          encoding="utf-8", bufsize=1)
        except OSError as exc:  # no process to start (out of memory or process slots)
            raise WorkerDied(f"the decoding process for {self.model} did not start: {exc}") from None
        self.starts += 1
        deadline = time.monotonic() + READY_TIMEOUT_S
        timer = threading.Timer(READY_TIMEOUT_S, self._proc.kill)  # readline cannot time out itself
        timer.daemon = True
        timer.start()
        try:
            line = self._proc.stdout.readline()
        finally:
            timer.cancel()
        if not line or json.loads(line).get("ready") is not True:
            self._stop()
            late = " in time" if time.monotonic() >= deadline else ""
            raise WorkerDied(f"the decoding process for {self.model} did not start{late} (see the log above)")

    def generate_batch(self, calls: list[tuple[str | None, int, GenerationConfig]],
                       min_pool: int | None = None) -> list[list[Generation] | TextopiaError]:
        """:meth:`DecoderGenerator.generate_batch`, in the child (``min_pool`` as there).

        Raises:
            WorkerDied: the child exited or answered out of protocol (it is replaced at the next batch).
            RuntimeError: the batch failed in the child as a whole (its message).
        """
        message = json.dumps({"calls": [[idea, n, dataclasses.asdict(s)] for idea, n, s in calls], "min_pool": min_pool})
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._stop()
                self._start()
            try:
                self._proc.stdin.write(message + "\n")
                self._proc.stdin.flush()
                line = self._proc.stdout.readline()
                answer = json.loads(line) if line else None
            except (OSError, ValueError):
                answer = None
            if not isinstance(answer, dict) or not ("results" in answer or "failed" in answer):
                self._stop()
                raise WorkerDied(f"the decoding process for {self.model} exited during a batch")
        if "failed" in answer:
            raise RuntimeError(f"decoding failed: {answer['failed']}")
        out: list[list[Generation] | TextopiaError] = []
        for result in answer["results"]:
            if "error" in result:
                out.append(TextopiaError(result["error"]))
            else:
                out.append([Generation(**{**g, "settings": dataclasses.asdict(config_from_json(g["settings"]))})
                            for g in result["prompts"]])
        return out

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """Stop the child (it exits when its stdin closes), after the batch in hand."""
        with self._lock:
            self._stop()


def serve(spec: dict[str, Any], stdin, stdout) -> None:
    """The child's loop: load the model, say ready, answer each batch line until stdin closes."""
    import torch

    import textopia

    if spec.get("torch_threads"):
        torch.set_num_threads(int(spec["torch_threads"]))
    generator = textopia.load(spec["model"])
    stdout.write(json.dumps({"ready": True}) + "\n")
    stdout.flush()
    for line in stdin:
        try:
            batch = json.loads(line)
            calls = [(idea, int(n), config_from_json(fields)) for idea, n, fields in batch["calls"]]
            pool = batch.get("min_pool")
            results = generator.generate_batch(calls, min_pool=None if pool is None else int(pool))
            answer = {"results": [{"error": str(r)} if isinstance(r, TextopiaError) else
                                  {"prompts": [g.to_dict() for g in r]} for r in results]}
        except Exception as exc:  # noqa: BLE001 - the parent fails this batch; the child serves the next
            logger.exception("a batch failed")
            answer = {"failed": f"{type(exc).__name__}: {exc}"}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()


def main(argv: list[str]) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the service shuts down and closes
    # this child's stdin, which ends it; it must not die of the signal first, with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s[decode %(process)d]: %(message)s")
    # The protocol owns the real stdout; anything else a library prints goes to stderr.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(json.loads(argv[0]), sys.stdin, channel)


if __name__ == "__main__":
    main(sys.argv[1:])
