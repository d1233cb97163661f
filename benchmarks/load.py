"""Load benchmark of the HTTP service: requests/s, p50/p99 latency, errors and memory.

Starts the real server (uvicorn, the app from ``textopia.serving.app.create_app``) in a child
process on 127.0.0.1, then for each client concurrency (1, 8 and 32 by default) runs that many
clients, each sending ``POST /v1/generate`` back to back, for at most ``duration_s`` seconds
and ``max_requests`` requests. The server's resident memory is sampled every 0.1 s.

::

    python -m benchmarks load                         # the embedded default model (textopia.load)
    python -m benchmarks load --set fake=true         # a fake generator: measures the service only

Writes ``load.json`` and ``load.md`` into ``--out`` (the recorded ``benchmarks/results/load_fake.*``
came from a ``fake`` run; give such a run its own ``--out``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, benchmark

HOST = "127.0.0.1"  # loopback only, never another address

logger = logging.getLogger("benchmarks.load")


# --------------------------------------------------------------------------- server (child process)


def _batching_defaults() -> dict[str, int]:
    """The server's batching settings this run used (ServingSettings' defaults, or TEXTOPIA_* overrides)."""
    from textopia.serving.settings import ServingSettings

    settings = ServingSettings()
    return {"batch_workers": settings.batch_workers, "max_batch_rows": settings.max_batch_rows}


def fake_generator(delay_s: float):
    """A :class:`~textopia.generation.base.Generator` that writes from a fixed list of styles."""
    import random

    from textopia.generation.base import Generation, GenerationConfig, Generator

    styles = ("highly detailed", "digital painting", "sharp focus", "volumetric lighting", "concept art",
              "octane render", "cinematic", "golden hour", "intricate", "soft light", "watercolor", "dramatic sky")

    class _Fake(Generator):
        name, kind = "fake", "gpt"

        def generate_with(self, idea: str | None, n: int, settings: GenerationConfig, latent: Any = None) -> list[Generation]:
            settings.validate()
            rng = random.Random(settings.seed)
            out: list[Generation] = []
            for _ in range(n):
                time.sleep(delay_s)
                words = ((idea or "a scene") + ", " + ", ".join(rng.sample(styles, 3))).split(" ")
                words = words[: settings.max_new_tokens]
                out.append(Generation(prompt=" ".join(words), idea=idea, num_tokens=len(words),
                                      finished=len(words) < settings.max_new_tokens, model=self.name,
                                      settings=dict(settings.__dict__)))
            return out

        def info(self) -> dict[str, Any]:
            return {"name": self.name, "kind": self.kind, "parameters": 0, "fake": True}

    return _Fake()


def serve(port: int, model: str, fake: bool, fake_delay_s: float, max_concurrency: int, queue_size: int,
          request_timeout_s: float, batch_window_ms: float) -> None:
    """Child process: build the app (the real model or :func:`fake_generator`) and serve it on 127.0.0.1."""
    import uvicorn

    from textopia.serving.app import create_app, uvicorn_options
    from textopia.serving.settings import ServingSettings

    settings = ServingSettings(
        host=HOST, port=port, max_concurrency=max_concurrency, queue_size=queue_size,
        request_timeout_s=request_timeout_s, load_default=False, batch_window_ms=batch_window_ms,
        models=[] if fake else [model], default_model=None,
        sagemaker_model_dir=Path("/nonexistent"), log_level="warning",
    )
    app = create_app(settings, {"fake": fake_generator(fake_delay_s)} if fake else None)
    # The service's own uvicorn settings (header deadline, keep-alive, connection limit), as
    # `textopia serve` runs it: a benchmark of another configuration would measure another server.
    uvicorn.run(app, access_log=False, **uvicorn_options(settings))


def start_server(port: int, **options: Any) -> subprocess.Popen[bytes]:
    """:func:`serve` in a child process, on the ``textopia`` this process imported (first on the
    child's path, then the repository root for ``benchmarks``): ``PYTHONPATH=OTHER/src`` measures
    OTHER's service, not this checkout's beside a client of OTHER's."""
    import textopia

    src = Path(textopia.__file__).resolve().parents[1]
    cmd = [sys.executable, "-c", "import json, sys; from benchmarks.load import serve; serve(**json.loads(sys.argv[1]))",
           json.dumps({"port": port, **options})]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), str(ROOT), env.get("PYTHONPATH")]))
    logger.info("starting the server on port %d: %s", port, options)
    return subprocess.Popen(cmd, env=env, cwd=ROOT)


# --------------------------------------------------------------------------- client (parent process)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class MemorySampler:
    """Samples the resident set size (RSS) of a process and its children (the service's decoding
    processes) every ``interval_s`` seconds, on a thread."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        """RSS now, in bytes, the children's included."""
        total = int(self.process.memory_info().rss)
        for child in self.process.children(recursive=True):
            try:
                total += int(child.memory_info().rss)
            except Exception:  # noqa: BLE001 - a child that has just exited
                pass
        return total

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


def _batch_counts(base_url: str) -> dict[str, float] | None:
    """The service's batches and browned-out batches so far, over its models (``GET /metrics``);
    None where it has no such route."""
    import httpx

    try:
        r = httpx.get(base_url + "/metrics", timeout=5)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    from prometheus_client.parser import text_string_to_metric_families

    counts = {"decoded": 0.0, "browned_out": 0.0}
    names = {"textopia_batches_total": "decoded", "textopia_batches_browned_out_total": "browned_out"}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name in names:
                counts[names[sample.name]] += sample.value
    return counts


async def run_level(
    base_url: str, concurrency: int, body: dict[str, Any], duration_s: float, max_requests: int,
    timeout_s: float, ideas: list[str] | None = None,
) -> dict[str, Any]:
    """``concurrency`` clients sending requests back to back; returns the level's figures. With
    ``ideas``, request i asks for ``ideas[i % len(ideas)]`` instead of ``body``'s idea."""
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
                if ideas:
                    payload["idea"] = ideas[issued % len(ideas)]
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


@benchmark("load", smoke=dict(fake=True, concurrency=(1, 2), duration_s=0.5, max_requests=4, warmup=1, ideas_file="derived"))
def run(model: str = "default", fake: bool = False, fake_delay_s: float = 0.01, concurrency: tuple[int, ...] = (1, 8, 32),
        duration_s: float = 15.0, max_requests: int = 300, warmup: int = 3, idea: str = "a lighthouse in a storm",
        ideas_file: str = "", n: int = 2, max_new_tokens: int = 48, max_concurrency: int = 1, queue_size: int = 64,
        batch_window_ms: float = 10.0, request_timeout_s: float = 60.0, startup_timeout_s: float = 300.0) -> dict:
    """The HTTP service under load: requests/s, p50/p99 latency, errors and memory per client count.

    ``fake``: serve :func:`fake_generator` (``fake_delay_s`` of sleep per prompt) and measure the
    service only; ``n`` prompts of at most ``max_new_tokens`` per request (0: the model's own
    default, as a user who sets nothing gets); ``ideas_file``: a realistic mix instead of one
    ``idea``, each request the next idea of the file in a seeded shuffle (``"derived"``:
    ``benchmarks/ideas/derived_1000.txt``, ideas of 1-6 words derived from test prompts, some with
    digits or rare names); ``max_concurrency``:
    server inference threads; ``batch_window_ms``: the server's micro-batching window (0: one
    request at a time); each level runs at most ``duration_s`` seconds and ``max_requests`` requests.
    Where the server has ``GET /metrics``, each level also records the micro-batches it decoded
    and how many of them were browned out (``batches.decoded``, ``batches.browned_out``).
    """
    load_before = os.getloadavg()  # 1, 5 and 15 minute load: other work on the machine skews figures
    port = _free_port()
    base_url = f"http://{HOST}:{port}"
    proc = start_server(port, model=model, fake=fake, fake_delay_s=fake_delay_s, max_concurrency=max_concurrency,
                        queue_size=queue_size, request_timeout_s=request_timeout_s, batch_window_ms=batch_window_ms)
    try:
        started = time.perf_counter()
        _wait_ready(base_url, proc, startup_timeout_s)
        startup_s = time.perf_counter() - started
        import httpx

        models = httpx.get(base_url + "/v1/models", timeout=5).json()
        served = next(m for m in models["models"] if m["name"] == models["default"])
        body = {"idea": idea, "n": n} | ({"max_new_tokens": max_new_tokens} if max_new_tokens else {})
        mix = None
        if ideas_file:
            path = Path(__file__).resolve().parent / "ideas" / "derived_1000.txt" if ideas_file == "derived" else Path(ideas_file)
            mix = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            random.Random(0).shuffle(mix)
        for i in range(warmup):  # first calls pay one-off costs (allocations, caches)
            httpx.post(base_url + "/v1/generate", json={**body, "seed": 10_000 + i}, timeout=120)
        time.sleep(0.2 if fake else 2.0)  # let background loading (the CLIP tokenizer) finish before "idle"
        idle_mib = round(MemorySampler(proc.pid).rss() / 2**20, 1)
        levels = []
        for c in concurrency:
            counts = _batch_counts(base_url)
            with MemorySampler(proc.pid) as sampler:
                level = asyncio.run(run_level(base_url, c, body, duration_s, max_requests,
                                              timeout_s=request_timeout_s + 30, ideas=mix))
            level["peak_rss_mib"] = round(sampler.peak / 2**20, 1)
            after = _batch_counts(base_url)
            if counts is not None and after is not None:  # a server with /metrics (not an old release)
                level["batches"] = {k: after[k] - counts[k] for k in after}
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
    return {
        "note": ("FAKE generator: measures the service only, not a trained model" if fake
                 else "embedded model loaded through textopia.load"),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "model": {k: served.get(k) for k in ("name", "kind", "parameters")},
        "server": {"host": HOST, "max_concurrency": max_concurrency, "queue_size": queue_size,
                   "request_timeout_s": request_timeout_s, "startup_s": round(startup_s, 2),
                   "batch_window_ms": batch_window_ms, **_batching_defaults()},
        "request": body | ({"ideas_file": ideas_file} if ideas_file else {}),
        "memory_mib": {"idle": idle_mib},
        "levels": levels,
    }
