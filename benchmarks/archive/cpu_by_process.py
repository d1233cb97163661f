"""Which processes spend the CPU while a load benchmark runs: every process's CPU seconds
(user + system, psutil) sampled once a second for ``DURATION`` seconds, then each process's share
of a core over the seconds when the machine was busy (more than 1.5 cores in use).

Usage: start it, then the load benchmark in another shell::

    python benchmarks/archive/cpu_by_process.py 100 &
    OMP_NUM_THREADS=1 python -m benchmarks load --set model=default concurrency=16 ideas_file=derived \\
        n=1 max_new_tokens=0 duration_s=30 max_requests=1000 --out /tmp/load

Prints the eight processes that used the most, in cores.
"""

import collections
import sys
import time

import psutil


def sample(duration_s: float) -> list[tuple[float, dict[int, tuple[str, float]]]]:
    snaps = []
    end = time.time() + duration_s
    while time.time() < end:
        now = {}
        for p in psutil.process_iter(["pid", "cmdline", "cpu_times"]):
            times = p.info["cpu_times"]
            if times is not None:
                now[p.info["pid"]] = (" ".join(p.info["cmdline"] or [])[:100], times.user + times.system)
        snaps.append((time.time(), now))
        time.sleep(1.0)
    return snaps


def busy_shares(snaps, busy_cores: float = 1.5) -> tuple[float, collections.Counter]:
    spent: collections.Counter = collections.Counter()
    seconds = 0.0
    for (t0, before), (t1, after) in zip(snaps, snaps[1:]):
        used = {pid: (cmd, cpu - before[pid][1]) for pid, (cmd, cpu) in after.items() if pid in before}
        if sum(d for _, d in used.values()) / (t1 - t0) > busy_cores:
            seconds += t1 - t0
            for pid, (cmd, d) in used.items():
                spent[(pid, cmd)] += d
    return seconds, spent


if __name__ == "__main__":
    seconds, spent = busy_shares(sample(float(sys.argv[1]) if len(sys.argv) > 1 else 100.0))
    for (pid, cmd), cpu in spent.most_common(8):
        print(f"{cpu / max(seconds, 1e-9):.3f} cores  {pid} {cmd}")
    print(f"over {seconds:.1f} busy seconds")
