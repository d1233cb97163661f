"""Closed-loop load on the service's batcher alone (no HTTP): 16 client threads, each asking for
one prompt of the next idea of the realistic mix and asking again once answered, for 20 s,
through a MicroBatcher over two ProcessDecoder children (a window of 10 ms, 36 rows a batch, the
brownout pool of 8), as ``textopia serve`` runs them.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/archive/batcher_load.py INFLIGHT [SECONDS]``, with
``PYTHONPATH=WORKTREE/src`` to measure another commit. ``INFLIGHT``: batch workers per child
(above 1 only on branch ``s31-continuous``, whose children decode the batches in flight together).
Prints requests/s, latency p50 and p99 (s), batches and browned-out batches.
"""

import random
import sys
import threading
import time
from pathlib import Path

from textopia.generation.config import GenerationConfig
from textopia.serving.batcher import MicroBatcher
from textopia.serving.decode_worker import ProcessDecoder

inflight = int(sys.argv[1])
duration = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
ideas = [line.strip() for line in (Path(__file__).resolve().parents[1] / "ideas" / "derived_1000.txt")
         .read_text(encoding="utf-8").splitlines() if line.strip()]
random.Random(3).shuffle(ideas)
children = [ProcessDecoder("default", torch_threads=1, start=True) for _ in range(2)]
backends = [b for b in children for _ in range(inflight)]
batcher = MicroBatcher(object(), window_s=0.01, max_rows=36, workers=len(backends), backends=backends, brownout_pool=8)
latencies: list[float] = []
lock = threading.Lock()
stop = time.monotonic() + duration


def client(c: int) -> None:
    i = c
    while time.monotonic() < stop:
        start = time.perf_counter()
        batcher.generate(ideas[i % len(ideas)], 1, GenerationConfig(seed=i))
        with lock:
            latencies.append(time.perf_counter() - start)
        i += 16


threads = [threading.Thread(target=client, args=(c,)) for c in range(16)]
began = time.perf_counter()
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.perf_counter() - began
latencies.sort()
print(f"inflight {inflight}: {len(latencies) / elapsed:.2f} req/s, p50 {latencies[len(latencies) // 2]:.3f} "
      f"p99 {latencies[int(len(latencies) * 0.99)]:.3f}, batches {batcher.batches}, browned {batcher.browned_out}")
batcher.close()
