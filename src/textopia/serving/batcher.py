"""A micro-batcher: requests that arrive together are decoded together.

On a small CPU one generation at a time leaves most of the arithmetic unused: a 5M-parameter
model costs about as much per step for 64 rows as for 4. The batcher holds a request for at most
``window_s`` while others arrive, then decodes them in one batch with
:meth:`DecoderGenerator.generate_batch`::

    limiter threads ──generate()──▶ queue ──▶ each worker: wait ≤ window_s, ≤ max_rows rows ──▶ generate_batch
          ▲                                                                                        │
          └──────────────────────────────── each caller's Future ◀────────────────────────────────┘

The queue in front is the service's :class:`~textopia.serving.limiter.InferenceLimiter` (bounded,
with its timeout); a caller blocks on its own Future only. A request carries its deadline: one
still waiting here when it passes is dropped unsampled (its client has already had a 504), so that
an overloaded service does not spend its CPU on answers nobody reads.

Under load the batcher browns out (Klein et al. 2014, "Brownout: building more robust cloud
applications", ICSE): when requests wait beyond a batch once it is gathered (queued, or more in
flight than the other workers' batches hold), that batch's calls
draw ``brownout_pool`` candidates at least instead of the generator's
:attr:`~textopia.generation.base.Generator.min_pool`, and the rows freed take waiting requests
into the same batch. A request that would wait for the next batch is answered sooner, from a
smaller pool of candidates; a lone request, or a few together, keep the whole pool.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from textopia.generation.base import Generation, TextopiaError
from textopia.generation.config import MAX_ROWS, MIN_POOL, GenerationConfig, rows_per_round
from textopia.serving.limiter import InferenceTimeout

logger = logging.getLogger(__name__)


@dataclass
class _Item:
    idea: str | None
    n: int
    settings: GenerationConfig
    deadline: float | None = None  # time.monotonic() past which nobody waits for the answer
    future: Future = field(default_factory=Future)

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline


class MicroBatcher:
    """Coalesces concurrent :meth:`generate` calls on one generator into batches.

    Args:
        generator: a generator with ``generate_batch`` (the decoder-only and latent families).
        window_s: the longest the first request of a batch waits for others, in seconds.
        max_rows: sampled rows per batch at most (a request of n prompts with reranking is n · candidates rows).
        workers: batches decoded at the same time, each on its own thread. Much of a step is
            Python (the decoding rules, sampling) that one thread runs on one core, so on a small
            CPU two batches at once with one torch thread each use it better than one batch on
            every thread (the service's figures: ``benchmarks/results/load.md``).
        brownout_pool: the fewest candidates a call of a full batch draws while other requests
            wait (None: never fewer than the generator's ``min_pool``); see the module's docstring.
        torch_threads: torch's intra-op threads, set by each worker thread when it starts (torch
            then also takes the count as the process default); None leaves torch's default.
        backends: one object with ``generate_batch`` and ``close`` per worker, which decodes that
            worker's batches instead of ``generator`` (a
            :class:`~textopia.serving.decode_worker.ProcessDecoder` each: the workers then decode
            in processes of their own, not on threads that share the GIL); closed by :meth:`close`.

    Raises:
        ValueError: a bad window, row bound or number of workers, or not one backend per worker.
    """

    def __init__(self, generator, *, window_s: float = 0.01, max_rows: int = 96, workers: int = 1,
                 torch_threads: int | None = None, backends: list | None = None,
                 brownout_pool: int | None = None) -> None:
        if not 0 <= window_s <= 1:
            raise ValueError(f"window_s must be in [0, 1] seconds, got {window_s}")
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        if not 1 <= workers <= 64:
            raise ValueError(f"workers must be in [1, 64], got {workers}")
        if torch_threads is not None and torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1, got {torch_threads}")
        if backends is not None and len(backends) != workers:
            raise ValueError(f"{workers} workers need as many backends, got {len(backends)}")
        if brownout_pool is not None and not 1 <= brownout_pool <= MAX_ROWS:
            raise ValueError(f"brownout_pool must be in [1, {MAX_ROWS}], got {brownout_pool}")
        self.brownout_pool = brownout_pool
        self.torch_threads = torch_threads
        self.generator = generator
        self.backends = backends
        self.window_s = window_s
        self.max_rows = max_rows
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        decoders = [None] * workers if backends is None else [b.generate_batch for b in backends]
        self._threads = [threading.Thread(target=self._run, args=(d,), name=f"textopia-batcher-{i}", daemon=True)
                         for i, d in enumerate(decoders)]
        self._count = threading.Lock()
        self.batches = 0  # batches decoded so far (for logs and tests)
        self.dropped = 0  # requests dropped unsampled, past their deadline
        self.browned_out = 0  # batches decoded with brownout_pool
        self._in_flight = 0  # requests given to generate() and not yet answered (_decode counts them off)
        for thread in self._threads:
            thread.start()

    @property
    def in_flight(self) -> int:
        """Requests given to :meth:`generate` and not yet answered (waiting, or in a batch)."""
        return self._in_flight

    def generate(self, idea: str | None, n: int, settings: GenerationConfig,
                 deadline: float | None = None) -> list[Generation]:
        """Blocking: the prompts for one request, decoded with whatever arrived with it.

        Args:
            deadline: ``time.monotonic()`` after which the answer is of no use (None: none): a
                request not yet in a batch then is dropped without sampling.

        Raises:
            TextopiaError: the request's own input was bad (its batch mates are unaffected).
            InferenceTimeout: the deadline passed before the request's batch began.
        """
        item = _Item(idea, n, settings, deadline)
        with self._count:
            self._in_flight += 1
        self._queue.put(item)
        return item.future.result()

    def close(self) -> None:
        """Stop the workers after the batches in hand."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        for backend in self.backends or []:
            backend.close()

    def _rows(self, item: _Item, pool: int | None = None) -> int:
        return rows_per_round(item.n, item.settings, getattr(self.generator, "min_pool", MIN_POOL) if pool is None else pool)

    def _run(self, generate_batch) -> None:
        if self.torch_threads is not None and self.backends is None:
            import torch

            torch.set_num_threads(self.torch_threads)
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = self._fill(batch, None, time.monotonic() + self.window_s)
            pool = None
            if self.brownout_pool is not None and not stop and self._backlog(len(batch)):
                # Others wait behind this batch: a smaller pool each, and the rows freed for them.
                pool = self.brownout_pool
                stop = self._fill(batch, pool, None)
            try:
                self._decode(batch, generate_batch, pool)
            finally:
                with self._count:
                    self._in_flight -= len(batch)  # each is answered (or dropped) by now
            if stop:
                return

    def _backlog(self, size: int) -> bool:
        """Whether requests wait beyond a batch of ``size`` requests just gathered: some are queued
        now (an idle worker would have taken them), or more are in flight than the other workers'
        batches of the same size hold (one arriving just after the batch window closed)."""
        with self._count:
            others = self._in_flight - size
        return not self._queue.empty() or others > (len(self._threads) - 1) * size

    def _fill(self, batch: list[_Item], pool: int | None, deadline: float | None) -> bool:
        """Take queued requests into ``batch`` until its rows (at ``pool``) reach ``max_rows``,
        each waited for until ``deadline`` (``time.monotonic()``; None: only those queued now).
        Returns whether :meth:`close` asked the worker to stop."""
        rows = sum(self._rows(b, pool) for b in batch)
        while rows < self.max_rows:
            try:
                item = (self._queue.get_nowait() if deadline is None
                        else self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                return False
            if item is None:
                return True
            batch.append(item)
            rows += self._rows(item, pool)
        return False

    def _decode(self, batch: list[_Item], generate_batch, pool: int | None = None) -> None:
        now = time.monotonic()
        expired = [b for b in batch if b.expired(now)]
        for b in expired:
            b.future.set_exception(InferenceTimeout("the request's deadline passed before its batch began"))
        if expired:
            with self._count:
                self.dropped += len(expired)
            logger.info("dropped %d requests past their deadline", len(expired))
            batch = [b for b in batch if not b.expired(now)]
            if not batch:
                return
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            calls = [(b.idea, b.n, b.settings) for b in batch]
            decode = generate_batch or self.generator.generate_batch
            results = decode(calls) if pool is None else decode(calls, min_pool=pool)
        except Exception as exc:  # noqa: BLE001 - every caller gets the failure, the worker lives on
            logger.exception("batch of %d requests failed", len(batch))
            for b in batch:
                b.future.set_exception(exc)
            return
        with self._count:
            self.batches += 1
            self.browned_out += pool is not None
        logger.debug("decoded %d requests (%d rows) in %.3f s (%.3f s of this thread's CPU)", len(batch),
                     sum(self._rows(b, pool) for b in batch), time.perf_counter() - started, time.thread_time() - cpu)
        for b, result in zip(batch, results):
            if isinstance(result, TextopiaError):
                b.future.set_exception(result)
            else:
                b.future.set_result(result)
