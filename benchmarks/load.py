"""Load benchmark of the HTTP service: requests/s, p50/p99 latency, errors and memory.

Starts the real server (uvicorn, the app from ``textopia.serving.app.create_app``) in a child
process on 127.0.0.1, then for each client concurrency (1, 8 and 32 by default) runs that many
clients, each sending ``POST /v1/generate`` back to back, for at most ``--duration-s`` seconds
and ``--max-requests`` requests. The server's resident memory is sampled every 0.1 s.

::

    python benchmarks/load.py                     # the embedded default model (textopia.load)
    python benchmarks/load.py --fake              # a fake generator: measures the service only

Writes ``benchmarks/results/load.json`` and ``load.md`` (``load_fake.*`` with ``--fake``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
HOST = "127.0.0.1"  # loopback only, never another address

logger = logging.getLogger("benchmarks.load")


# --------------------------------------------------------------------------- server (child process)


def _batching_defaults() -> dict[str, int]:
    """The server's batching settings this run used (ServingSettings' defaults, or TEXTOPIA_* overrides)."""
    from textopia.serving.settings import ServingSettings

    settings = ServingSettings()
    return {"batch_workers": settings.batch_workers, "max_batch_rows": settings.max_batch_rows}


def serve(args: argparse.Namespace) -> None:
    """Child process: build the app (real or fake models) and serve it on 127.0.0.1."""
    import uvicorn

    from textopia.generation.base import Generator
    from textopia.serving.app import create_app, uvicorn_options
    from textopia.serving.settings import ServingSettings

    settings = ServingSettings(
        host=HOST, port=args.port, max_concurrency=args.max_concurrency, queue_size=args.queue_size,
        request_timeout_s=args.request_timeout_s, load_default=False, batch_window_ms=args.batch_window_ms,
        models=[] if args.fake else [args.model], default_model=None,
        sagemaker_model_dir=Path("/nonexistent"), log_level="warning",
    )
    generators: dict[str, Generator] | None = None
    if args.fake:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: the fakes live with the tests
        from tests.fakes import FakeGenerator

        generators = {"fake": FakeGenerator(name="fake", delay_s=args.fake_delay_s)}
    app = create_app(settings, generators)
    # The service's own uvicorn settings (header deadline, keep-alive, connection limit), as
    # `textopia serve` runs it: a benchmark of another configuration would measure another server.
    uvicorn.run(app, access_log=False, **uvicorn_options(settings))


# --------------------------------------------------------------------------- client (parent process)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class MemorySampler:
    """Samples a process's resident set size (RSS) every ``interval_s`` seconds, on a thread."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        """RSS now, in bytes."""
        return int(self.process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.rss())
            except Exception:  # the process ended
                return
            self._stop.wait(self.interval_s)

    def __enter__(self) -> MemorySampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


async def run_level(
    base_url: str, concurrency: int, body: dict[str, Any], duration_s: float, max_requests: int,
    timeout_s: float,
) -> dict[str, Any]:
    """``concurrency`` clients sending requests back to back; returns the level's figures."""
    import httpx

    latencies: list[float] = []
    server_generate: list[float] = []
    server_queue: list[float] = []
    statuses: Counter[str] = Counter()
    prompts = 0
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits) as client:
        started = time.perf_counter()
        deadline = started + duration_s

        async def worker() -> None:
            nonlocal issued, prompts
            while time.perf_counter() < deadline and issued < max_requests:
                issued += 1
                payload = {**body, "seed": issued}
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/generate", json=payload)
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[str(r.status_code)] += 1
                if r.status_code == 200:
                    data = r.json()
                    prompts += len(data["prompts"])
                    server_generate.append(data["timing"]["generate_s"])
                    server_queue.append(data["timing"]["queue_s"])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    lat = sorted(latencies)
    ok = statuses.get("200", 0)
    return {
        "concurrency": concurrency,
        "requests": sum(statuses.values()),
        "ok": ok,
        "errors": sum(statuses.values()) - ok,
        "statuses": dict(statuses),
        "elapsed_s": round(elapsed, 3),
        "requests_per_s": round(ok / elapsed, 3),
        "prompts_per_s": round(prompts / elapsed, 3),
        "latency_s": {
            "p50": round(_percentile(lat, 50), 4),
            "p90": round(_percentile(lat, 90), 4),
            "p99": round(_percentile(lat, 99), 4),
            "mean": round(statistics.fmean(lat), 4) if lat else None,
            "max": round(lat[-1], 4) if lat else None,
        },
        "server_generate_s_mean": round(statistics.fmean(server_generate), 4) if server_generate else None,
        "server_queue_s_mean": round(statistics.fmean(server_queue), 4) if server_queue else None,
    }


def _wait_ready(base_url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} before it was ready")
        try:
            if httpx.get(base_url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the server was not ready within {timeout_s:g} s")


def _markdown(report: dict[str, Any]) -> str:
    s = report["server"]
    lines = [
        "# Load benchmark of the HTTP service",
        "",
        f"- Date: {report['date']}; command: `{report['command']}`",
        f"- Machine: {report['machine']['cpus']} CPUs, {report['machine']['platform']}, "
        f"Python {report['machine']['python']}, torch {report['machine']['torch']}; load average "
        f"(1, 5, 15 min) {report['machine']['load_average_before']} before, "
        f"{report['machine']['load_average_after']} after",
        f"- Model: **{report['model']['name']}** ({report['model']['kind']}, "
        f"{report['model']['parameters']} parameters){' — FAKE generator' if report['fake'] else ''}",
        f"- Server: uvicorn, one process on {HOST}; {s['max_concurrency']} inference thread(s), "
        f"queue {s['queue_size']}, timeout {s['request_timeout_s']} s, micro-batching window "
        f"{s.get('batch_window_ms', 0)} ms (0: each request decoded alone)"
        + (f", {s['batch_workers']} batches at a time of at most {s['max_batch_rows']} rows" if "batch_workers" in s else ""),
        f"- Request: `{json.dumps(report['request'])}` (seed varies per request)",
        f"- Each level: at most {report['duration_s']} s and {report['max_requests']} requests; "
        f"server memory idle {report['memory_mib']['idle']} MiB",
        "",
    ]
    if report["fake"]:
        lines += [
            "> **These figures use a fake generator** (`--fake`, "
            f"{report['fake_delay_s']} s of sleep per prompt), not a trained model: they measure "
            "the service (HTTP, validation, queue, threads), not generation. Rerun without "
            "`--fake` once the embedded default model exists.",
            "",
        ]
    lines += [
        "| clients | requests | errors | req/s | prompts/s | p50 latency (s) | p99 latency (s) "
        "| mean generate (s) | mean queue (s) | peak RSS (MiB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["levels"]:
        lines.append(
            f"| {r['concurrency']} | {r['requests']} | {r['errors']} | {r['requests_per_s']:.2f} "
            f"| {r['prompts_per_s']:.2f} | {r['latency_s']['p50']:.3f} | {r['latency_s']['p99']:.3f} "
            f"| {r['server_generate_s_mean']} | {r['server_queue_s_mean']} | {r['peak_rss_mib']} |"
        )
    lines += [
        "",
        "Latency is measured by the client, from sending the request to reading the whole answer "
        "(seconds). Generate and queue times are the server's own (`timing` in the answer). "
        "With a batching window above 0, requests that arrive within it are decoded together "
        "(`textopia.serving.batcher`), and 'mean generate' includes the wait for the batch; with "
        "0, each runs on its own through the Generator, one inference thread at a time, so "
        "throughput is flat in the number of clients and latency grows with the queue.",
        "",
    ]
    return "\n".join(lines)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()  # 1, 5 and 15 minute load: other work on the machine skews figures
    port = _free_port()
    base_url = f"http://{HOST}:{port}"
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--serve", "--port", str(port),
        "--model", args.model, "--max-concurrency", str(args.max_concurrency),
        "--queue-size", str(args.queue_size), "--request-timeout-s", str(args.request_timeout_s),
        "--fake-delay-s", str(args.fake_delay_s), "--batch-window-ms", str(args.batch_window_ms),
    ] + (["--fake"] if args.fake else [])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    logger.info("starting the server: %s", " ".join(cmd))
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    try:
        started = time.perf_counter()
        _wait_ready(base_url, proc, args.startup_timeout_s)
        startup_s = time.perf_counter() - started
        import httpx

        models = httpx.get(base_url + "/v1/models", timeout=5).json()
        model = next(m for m in models["models"] if m["name"] == models["default"])
        body = {"idea": args.idea, "n": args.n, "max_new_tokens": args.max_new_tokens}
        for i in range(args.warmup):  # first calls pay one-off costs (allocations, caches)
            httpx.post(base_url + "/v1/generate", json={**body, "seed": 10_000 + i}, timeout=120)
        time.sleep(2.0)  # let background loading (the CLIP tokenizer) finish before "idle"
        idle_mib = round(MemorySampler(proc.pid).rss() / 2**20, 1)
        levels = []
        for c in args.concurrency:
            with MemorySampler(proc.pid) as sampler:
                level = asyncio.run(
                    run_level(base_url, c, body, args.duration_s, args.max_requests,
                              timeout_s=args.request_timeout_s + 30)
                )
            level["peak_rss_mib"] = round(sampler.peak / 2**20, 1)
            logger.info(
                "%2d clients: %d requests, %d errors, %.2f req/s, p50 %.3f s, p99 %.3f s, peak %s MiB",
                c, level["requests"], level["errors"], level["requests_per_s"],
                level["latency_s"]["p50"], level["latency_s"]["p99"], level["peak_rss_mib"],
            )
            levels.append(level)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    try:
        import torch

        torch_version = str(torch.__version__)
    except ImportError:
        torch_version = "not installed"
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/load.py " + " ".join(sys.argv[1:]),
        "fake": args.fake,
        "fake_delay_s": args.fake_delay_s if args.fake else None,
        "note": (
            "FAKE generator: measures the service only, not a trained model"
            if args.fake else "embedded model loaded through textopia.load"
        ),
        "machine": {
            "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch_version,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "model": {k: model.get(k) for k in ("name", "kind", "parameters")},
        "server": {
            "max_concurrency": args.max_concurrency, "queue_size": args.queue_size,
            "request_timeout_s": args.request_timeout_s, "startup_s": round(startup_s, 2),
            "batch_window_ms": args.batch_window_ms,
            **_batching_defaults(),
        },
        "request": body,
        "duration_s": args.duration_s,
        "max_requests": args.max_requests,
        "memory_mib": {"idle": idle_mib},
        "levels": levels,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="embedded model name or checkpoint dir")
    p.add_argument("--fake", action="store_true", help="serve a fake generator (no model)")
    p.add_argument("--fake-delay-s", type=float, default=0.01, help="fake compute per prompt, s")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--duration-s", type=float, default=15.0, help="longest run per level, s")
    p.add_argument("--max-requests", type=int, default=300, help="most requests per level")
    p.add_argument("--warmup", type=int, default=3, help="requests before measuring")
    p.add_argument("--idea", default="a lighthouse in a storm")
    p.add_argument("--n", type=int, default=2, help="prompts per request")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--max-concurrency", type=int, default=1, help="server inference threads")
    p.add_argument("--queue-size", type=int, default=64)
    p.add_argument("--batch-window-ms", type=float, default=10.0,
                   help="micro-batching window of the server (0: one request at a time)")
    p.add_argument("--request-timeout-s", type=float, default=60.0)
    p.add_argument("--startup-timeout-s", type=float, default=300.0)
    p.add_argument("--out", type=Path, default=None, help="output stem (default results/load[_fake])")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.serve:
        serve(args)
        return
    report = bench(args)
    stem = args.out or RESULTS / ("load_fake" if args.fake else "load")
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(_markdown(report))
    logger.info("wrote %s.json and .md", stem)


if __name__ == "__main__":
    main()
