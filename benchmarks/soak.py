"""Soak benchmark of the HTTP service: minutes of 32 clients sending valid and malformed requests.

Starts the real server (uvicorn and the app of ``textopia.serving.app.create_app``, as
``benchmarks/load.py`` does, through its ``start_server``) in a child process on 127.0.0.1, warms it up, then runs
``clients`` clients back to back for ``minutes`` minutes. Each client draws its next request
from a fixed mix (seeded): about 60% valid ``POST /v1/generate`` and reads (``/v1/models``,
``/healthz``, ``/``), and 40% malformed ones (bad JSON, wrong types, values out of range,
unknown fields and models, an oversized body, bytes that are not UTF-8, a wrong method or
content type, an unknown route). The server's resident memory is sampled every 5 s.

Pass criteria: no 5xx answer and no transport error at all, every malformed request answered
4xx, and resident memory at the end less than 10% above memory at the start (after warm-up)::

    python -m benchmarks soak                    # 10 minutes, the embedded default model
    python -m benchmarks soak --set minutes=2    # a short run
    python -m benchmarks soak --set fake=true    # a fake generator: the service only

Writes ``soak.json`` and ``soak.md`` into ``--out`` (``benchmarks/results`` by default).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import statistics
import subprocess
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

from benchmarks.harness import benchmark
from benchmarks.load import HOST, MemorySampler, _free_port, _percentile, _wait_ready, start_server

logger = logging.getLogger("benchmarks.soak")

JSON = {"content-type": "application/json"}


#: A JSON-lines /invocations body of heavy lines: more work than one call may ask for (413).
HEAVY_JSONL = b"".join(b'{"idea": "a lighthouse in a storm", "n": 16, "max_new_tokens": 128}\n' for _ in range(200))


def request_mix(max_body_bytes: int, hostile: bool = False) -> list[tuple[str, float, dict[str, Any]]]:
    """``(name, weight, request)``: the kinds of request the clients send, valid and malformed.

    A request is ``{"method", "path", "json" | "content", "headers", "valid"}``; ``valid``
    requests expect 200, the others 4xx.
    """
    ok = {"idea": "a lighthouse in a storm", "n": 1, "max_new_tokens": 32}
    return [
        ("generate", 40, {"method": "POST", "path": "/v1/generate", "json": ok, "valid": True}),
        ("models", 8, {"method": "GET", "path": "/v1/models", "valid": True}),
        ("healthz", 8, {"method": "GET", "path": "/healthz", "valid": True}),
        ("page", 4, {"method": "GET", "path": "/", "valid": True}),
        ("bad-json", 5, {"method": "POST", "path": "/v1/generate", "content": b'{"idea": "cat", ', "headers": JSON}),
        ("bad-mode", 4, {"method": "POST", "path": "/v1/generate", "json": {**ok, "mode": "sideways"}}),
        ("n-zero", 4, {"method": "POST", "path": "/v1/generate", "json": {**ok, "n": 0}}),
        ("n-huge", 3, {"method": "POST", "path": "/v1/generate", "json": {**ok, "n": 10**9}}),
        ("wrong-types", 3, {"method": "POST", "path": "/v1/generate", "json": {"idea": ["a"], "n": "two"}}),
        ("unknown-field", 3, {"method": "POST", "path": "/v1/generate", "json": {**ok, "bogus": True}}),
        ("unknown-model", 3, {"method": "POST", "path": "/v1/generate", "json": {**ok, "model": "no-such-model"}}),
        ("temperature-nan", 2, {"method": "POST", "path": "/v1/generate",
                                "content": b'{"idea": "cat", "temperature": NaN}', "headers": JSON}),
        ("oversized-body", 3, {"method": "POST", "path": "/v1/generate",
                               "json": {"idea": "x" * (max_body_bytes + 1024)}}),
        ("not-utf8", 2, {"method": "POST", "path": "/v1/generate", "content": b'{"idea": "\xff\xfe"}',
                         "headers": JSON}),
        ("not-json-type", 2, {"method": "POST", "path": "/v1/generate", "content": b"idea=cat",
                              "headers": {"content-type": "application/x-www-form-urlencoded"}}),
        ("json-array", 2, {"method": "POST", "path": "/v1/generate", "json": [1, 2, 3]}),
        ("wrong-method", 2, {"method": "GET", "path": "/v1/generate"}),
        ("unknown-route", 2, {"method": "GET", "path": "/v1/../../etc/passwd"}),
    ] + ([("heavy-jsonl", 4, {"method": "POST", "path": "/invocations", "content": HEAVY_JSONL,
                              "headers": {"content-type": "application/jsonlines"}})] if hostile else [])


async def slow_client(host: str, port: int, deadline: float, index: int, closed: Counter) -> None:
    """Until ``deadline``: open a connection and send half a request (headers, or headers and part of
    a body), then wait for the server to close it; counts ``closed`` / ``held`` (still open after 30 s)
    per kind (``headers``, ``body``)."""
    kind = "headers" if index % 2 else "body"
    while time.perf_counter() < deadline:
        reader, writer = await asyncio.open_connection(host, port)
        if index % 2:
            writer.write(b"POST /v1/generate HTTP/1.1\r\nHost: x\r\n")  # headers never end
        else:
            writer.write(b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"idea\": ")  # the body never ends
        await writer.drain()
        try:
            while await asyncio.wait_for(reader.read(4096), timeout=30):
                pass
            closed[f"closed {kind}"] += 1
        except asyncio.TimeoutError:
            closed[f"held {kind}"] += 1
        except ConnectionError:
            closed[f"closed {kind}"] += 1
        writer.close()


async def soak(base_url: str, clients: int, seconds: float, mix: list, timeout_s: float, seed: int,
               on_tick, slow_clients: int = 0) -> dict[str, Any]:
    """``clients`` clients sending requests from ``mix`` back to back for ``seconds``, beside
    ``slow_clients`` that send half a request and wait (:func:`slow_client`)."""
    import httpx

    names = [m[0] for m in mix]
    weights = [m[1] for m in mix]
    requests = {m[0]: m[2] for m in mix}
    latencies: dict[str, list[float]] = {"valid": [], "malformed": []}
    statuses: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {name: Counter() for name in names}
    unexpected: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits) as client:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker(index: int) -> None:
            rng = random.Random(seed * 1000 + index)
            n = 0
            while time.perf_counter() < deadline:
                name = rng.choices(names, weights)[0]
                req = requests[name]
                kwargs: dict[str, Any] = {"headers": req.get("headers")}
                if "json" in req:
                    body = dict(req["json"]) if isinstance(req["json"], dict) else req["json"]
                    if name == "generate":
                        body["seed"] = seed * 1_000_000 + index * 10_000 + n
                    kwargs["json"] = body
                elif "content" in req:
                    kwargs["content"] = req["content"]
                n += 1
                t0 = time.perf_counter()
                try:
                    r = await client.request(req["method"], req["path"], **kwargs)
                    status = str(r.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                kind = "valid" if req.get("valid") else "malformed"
                latencies[kind].append(time.perf_counter() - t0)
                statuses[status] += 1
                by_kind[name][status] += 1
                expected = status == "200" if req.get("valid") else status.startswith("4")
                if not expected:
                    unexpected[f"{name}:{status}"] += 1

        async def ticker() -> None:
            while time.perf_counter() < deadline:
                on_tick(time.perf_counter() - started)
                await asyncio.sleep(5.0)

        slow: Counter[str] = Counter()
        host, port = base_url.rsplit("//", 1)[1].rsplit(":", 1)
        await asyncio.gather(ticker(), *(worker(i) for i in range(clients)),
                             *(slow_client(host, int(port), deadline, i, slow) for i in range(slow_clients)))
        elapsed = time.perf_counter() - started

    def figures(values: list[float]) -> dict[str, Any]:
        v = sorted(values)
        return {"count": len(v), "p50": round(_percentile(v, 50), 4), "p99": round(_percentile(v, 99), 4),
                "mean": round(statistics.fmean(v), 4) if v else None, "max": round(v[-1], 4) if v else None}

    total = sum(statuses.values())
    return {
        "elapsed_s": round(elapsed, 1),
        "requests": total,
        "requests_per_s": round(total / elapsed, 2),
        "statuses": dict(sorted(statuses.items())),
        "server_errors_5xx": sum(c for s, c in statuses.items() if s.startswith("5")),
        "transport_errors": sum(c for s, c in statuses.items() if not s.isdigit()),
        "unexpected": dict(unexpected),
        "slow_connections": dict(slow),
        "by_kind": {name: dict(sorted(c.items())) for name, c in by_kind.items()},
        "latency_s": {"valid": figures(latencies["valid"]), "malformed": figures(latencies["malformed"]),
                      "all": figures(latencies["valid"] + latencies["malformed"])},
    }


def bench(args: SimpleNamespace) -> dict[str, Any]:
    import httpx

    load_before = os.getloadavg()
    port = _free_port()
    base_url = f"http://{HOST}:{port}"
    proc = start_server(port, model=args.model, fake=args.fake, fake_delay_s=0.05, max_concurrency=1,
                        queue_size=args.queue_size, request_timeout_s=args.request_timeout_s, batch_window_ms=10.0)
    try:
        _wait_ready(base_url, proc, 300)
        models = httpx.get(base_url + "/v1/models", timeout=5).json()
        model = next(m for m in models["models"] if m["name"] == models["default"])
        mix = request_mix(args.max_body_bytes, hostile=args.hostile)
        for name, _, req in mix:  # warm-up: every kind once, then a few generations
            try:
                httpx.request(req["method"], base_url + req["path"], json=req.get("json"),
                              content=req.get("content"), headers=req.get("headers"), timeout=120)
            except httpx.HTTPError:
                pass
        for i in range(args.warmup):
            httpx.post(base_url + "/v1/generate", json={**mix[0][2]["json"], "seed": 99_000 + i}, timeout=120)
        # Then as many generations at once as there are clients: the server's micro-batcher reaches
        # its largest batch (and its working set) before "start", so that growth measures leaks only.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(lambda i: httpx.post(base_url + "/v1/generate", timeout=120,
                                               json={**mix[0][2]["json"], "seed": 98_000 + i}),
                          range(2 * args.clients)))
        time.sleep(2.0)  # background loading (the CLIP tokenizer) done before "start"
        sampler = MemorySampler(proc.pid, interval_s=1.0)
        start_mib = round(sampler.rss() / 2**20, 1)
        series: list[tuple[float, float]] = []

        def tick(t: float) -> None:
            series.append((round(t, 1), round(sampler.rss() / 2**20, 1)))
            if len(series) % 12 == 1:
                logger.info("%.0f s: server RSS %.1f MiB", t, series[-1][1])

        with sampler:
            result = asyncio.run(soak(base_url, args.clients, args.minutes * 60, mix,
                                      timeout_s=args.request_timeout_s + 30, seed=args.seed, on_tick=tick,
                                      slow_clients=args.slow_clients))
        time.sleep(1.0)
        end_mib = round(sampler.rss() / 2**20, 1)
        peak_mib = round(sampler.peak / 2**20, 1)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    growth = 100 * (end_mib - start_mib) / start_mib
    passed = (alive and result["server_errors_5xx"] == 0 and result["transport_errors"] == 0
              and not result["unexpected"] and growth < 10 and not any(k.startswith("held") for k in result["slow_connections"]))
    return {
        "minutes": args.minutes,
        "short_run_note": (f"a {args.minutes:g}-minute run, not the default 10 minutes" if args.minutes < 10 else None),
        "note": args.note,
        "clients": args.clients,
        "fake": args.fake,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "model": {k: model.get(k) for k in ("name", "kind", "parameters")},
        "server": {"max_concurrency": 1, "queue_size": args.queue_size, "request_timeout_s": args.request_timeout_s,
                   "alive_at_end": alive},
        "mix": {name: weight for name, weight, _ in request_mix(args.max_body_bytes, hostile=args.hostile)},
        "slow_clients": args.slow_clients,
        "memory_mib": {"start": start_mib, "end": end_mib, "peak": peak_mib},
        "memory_growth_pct": round(growth, 2),
        "details": {"memory_series": series},
        "result": result,
        "pass": passed,
        "criteria": "no 5xx, no transport error, malformed requests answered 4xx and valid ones 200, "
                    "memory growth from start to end < 10%, no slow client's connection held open",
    }


@benchmark("soak", smoke=dict(fake=True, minutes=0.02, clients=2, warmup=1))
def run(minutes: float = 10.0, clients: int = 32, model: str = "default", fake: bool = False, queue_size: int = 64,
        request_timeout_s: float = 60.0, max_body_bytes: int = 16_384, warmup: int = 3, seed: int = 0,
        hostile: bool = False, slow_clients: int = 0, note: str | None = None) -> dict:
    """Minutes of clients sending valid and malformed requests to the HTTP service: 5xx, 4xx, memory growth.

    ``hostile``: mix in heavy JSON-lines /invocations calls (each more work than a call may ask:
    413); ``slow_clients``: connections that send half a request and wait, beside the clients;
    ``note``: a remark written into the results (why the run was short). ``pass`` in the figures.
    """
    report = bench(SimpleNamespace(**locals()))
    logger.info("%s: %d requests, %s, memory %+.1f%%", "PASS" if report["pass"] else "FAIL",
                report["result"]["requests"], report["result"]["statuses"], report["memory_growth_pct"])
    return report
