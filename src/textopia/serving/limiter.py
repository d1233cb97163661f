"""A bounded queue around blocking inference, so the event loop and the machine stay responsive.

::

    request ──admit?──▶ queue (≤ queue_size waiting) ──▶ workers (max_concurrency threads) ──▶ answer
                │                                                 │
                └─ full: ServerBusy (503, Retry-After)            └─ past the deadline: InferenceTimeout (504)

A slot is held from admission until the work has really finished: a request that times out
while its generation runs keeps its slot until the thread returns, so abandoned work can never
pile up beyond ``max_concurrency + queue_size``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ServerBusy(Exception):
    """Every worker is busy and the queue is full; the client should retry later."""


class InferenceTimeout(Exception):
    """A request waited and ran for longer than the per-request timeout."""


@dataclass
class Timed(Generic[T]):
    """A function's result with where its time went, in seconds."""

    value: T
    queue_s: float  # waiting for a worker, in seconds
    run_s: float  # running, in seconds


class InferenceLimiter:
    """Runs blocking functions on at most ``max_concurrency`` threads, with a bounded queue.

    Args:
        max_concurrency: functions running at the same time (worker threads).
        queue_size: functions allowed to wait for a worker beyond those running.
        timeout_s: the longest a call may wait and run, in seconds.
    """

    def __init__(self, max_concurrency: int, queue_size: int, timeout_s: float) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {queue_size}")
        self.max_concurrency = max_concurrency
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._admitted = 0  # submitted and not yet finished (waiting or running)
        self._running = 0
        self._executor: ThreadPoolExecutor | None = None

    @property
    def capacity(self) -> int:
        """Requests held at once, waiting or running."""
        return self.max_concurrency + self.queue_size

    def stats(self) -> dict[str, int]:
        """How many calls are running and waiting now."""
        with self._lock:
            return {
                "running": self._running,
                "waiting": self._admitted - self._running,
                "capacity": self.capacity,
            }

    def _get_executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.max_concurrency, thread_name_prefix="textopia-infer"
                )
            return self._executor

    async def run(self, fn: Callable[[], T]) -> Timed[T]:
        """Run ``fn()`` on a worker thread and await its result.

        Raises:
            ServerBusy: ``capacity`` calls are already waiting or running.
            InferenceTimeout: the call did not finish within ``timeout_s`` seconds.
            Exception: whatever ``fn`` raised.
        """
        with self._lock:
            if self._admitted >= self.capacity:
                raise ServerBusy(f"{self._admitted} requests in progress, capacity {self.capacity}")
            self._admitted += 1
        submitted = time.perf_counter()
        started: list[float] = []

        def work() -> T:
            started.append(time.perf_counter())
            with self._lock:
                self._running += 1
            try:
                return fn()
            finally:
                with self._lock:
                    self._running -= 1

        def release(_: Future[T]) -> None:
            with self._lock:
                self._admitted -= 1

        try:
            future = self._get_executor().submit(work)
        except BaseException:
            release(Future())
            raise
        future.add_done_callback(release)
        try:
            value = await asyncio.wait_for(asyncio.wrap_future(future), timeout=self.timeout_s)
        except asyncio.TimeoutError as exc:
            # A waiting call is dropped from the queue; a running one keeps its slot until done.
            future.cancel()
            raise InferenceTimeout(f"timed out after {self.timeout_s:g} s") from exc
        finished = time.perf_counter()
        start = started[0] if started else submitted
        return Timed(value=value, queue_s=start - submitted, run_s=finished - start)

    def shutdown(self) -> None:
        """Drop waiting calls and let the threads end once running calls finish; reusable after."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
