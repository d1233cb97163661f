"""Limits and plumbing: the bounded queue (503), the timeout (504), slow clients (a real uvicorn on
127.0.0.1), shutdown under load, settings, model loading."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from textopia.generation.base import TextopiaError
from textopia.serving.app import create_app
from textopia.serving.clip import ClipCounter
from tests.fakes import FakeGenerator, FakeLatentGenerator
from tests.serving.conftest import free_port, make_settings, serving
from textopia.serving.limiter import InferenceLimiter, InferenceTimeout, ServerBusy
from textopia.serving.protocol import HeaderTimeoutProtocol
from textopia.serving.models import ModelNotFound, ModelStore, load_store
from textopia.serving.safety import banned_pattern, clean_words, contains_banned, mask_banned
from textopia.serving.settings import ServingSettings


async def _until(predicate: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


# --------------------------------------------------------------------------- limiter


def test_limiter_refuses_beyond_capacity_and_holds_slots_of_timed_out_work() -> None:
    release = threading.Event()
    limiter = InferenceLimiter(max_concurrency=1, queue_size=0, timeout_s=0.1)

    async def main() -> None:
        with pytest.raises(InferenceTimeout):
            await limiter.run(lambda: release.wait(5))
        # The timed-out call still runs on its thread, so its slot is still taken.
        with pytest.raises(ServerBusy):
            await limiter.run(lambda: 1)
        release.set()
        await _until(lambda: limiter.stats()["running"] == 0 and limiter.stats()["waiting"] == 0)
        done = await limiter.run(lambda: 42)
        assert done.value == 42 and done.queue_s >= 0 and done.run_s >= 0

    try:
        asyncio.run(main())
    finally:
        release.set()
        limiter.shutdown()


def test_limiter_runs_at_most_max_concurrency_at_once() -> None:
    limiter = InferenceLimiter(max_concurrency=2, queue_size=10, timeout_s=5)
    lock = threading.Lock()
    active = [0, 0]  # now, peak

    def work() -> None:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1

    async def main() -> None:
        await asyncio.gather(*(limiter.run(work) for _ in range(8)))

    asyncio.run(main())
    limiter.shutdown()
    assert active[1] == 2


def test_a_cancelled_caller_drops_its_waiting_call() -> None:
    """What a JSON-lines call's deadline and a client going away rely on: cancelled work never starts."""
    release = threading.Event()
    ran: list[int] = []
    limiter = InferenceLimiter(max_concurrency=1, queue_size=4, timeout_s=5)

    async def main() -> None:
        first = asyncio.create_task(limiter.run(lambda: release.wait(5)))
        await _until(lambda: limiter.stats()["running"] == 1)
        waiting = asyncio.create_task(limiter.run(lambda: ran.append(1)))
        await _until(lambda: limiter.stats()["waiting"] == 1)
        waiting.cancel()
        await _until(lambda: limiter.stats()["waiting"] == 0)
        release.set()
        await first
        await _until(lambda: limiter.stats()["running"] == 0)

    try:
        asyncio.run(main())
    finally:
        release.set()
        limiter.shutdown()
    assert ran == []


def test_full_queue_answers_503_with_retry_after(app_factory: Any, gate: Any) -> None:
    app = app_factory({"gate": gate}, max_concurrency=1, queue_size=1, retry_after_s=3)
    limiter: InferenceLimiter = app.state.textopia.limiter

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            body = {"idea": "a", "n": 1}
            first = asyncio.create_task(c.post("/v1/generate", json=body))
            await _until(gate.entered.is_set)
            second = asyncio.create_task(c.post("/v1/generate", json=body))
            await _until(lambda: limiter.stats()["waiting"] == 1)
            refused = await c.post("/v1/generate", json=body)
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "3"
            assert "busy" in refused.json()["error"]
            assert (await c.get("/ping")).status_code == 200  # health stays up while busy
            gate.gate.set()
            assert (await first).status_code == 200
            assert (await second).status_code == 200

    asyncio.run(main())


def test_slow_generation_answers_504(app_factory: Any, gate: Any) -> None:
    app = app_factory({"gate": gate}, request_timeout_s=0.2)
    with TestClient(app) as c:
        r = c.post("/v1/generate", json={"idea": "a"})
        assert r.status_code == 504 and "timed out after 0.2 s" in r.json()["error"]
        gate.gate.set()


# --------------------------------------------------------------------------- settings, loading


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTOPIA_MODELS", "runs/a, runs/b")
    monkeypatch.setenv("TEXTOPIA_MAX_CONCURRENCY", "3")
    monkeypatch.setenv("TEXTOPIA_REQUEST_TIMEOUT_S", "2.5")
    s = ServingSettings()
    assert s.models == ["runs/a", "runs/b"] and s.max_concurrency == 3 and s.request_timeout_s == 2.5
    monkeypatch.setenv("TEXTOPIA_MODELS", '["x", "y"]')
    assert ServingSettings().models == ["x", "y"]
    monkeypatch.setenv("TEXTOPIA_MAX_CONCURRENCY", "0")
    with pytest.raises(ValueError):
        ServingSettings()


def _fake_load(spec: str) -> FakeGenerator:
    if spec == "missing":
        raise TextopiaError(f"unknown model {spec!r}")
    return FakeLatentGenerator(name=spec) if "vae" in spec or "latent" in spec else FakeGenerator(name=spec)


def test_load_store_names_models_and_picks_the_default(tmp_path: Path) -> None:
    ml = tmp_path / "ml"
    ml.mkdir()
    (ml / "config.json").write_text("{}")
    settings = ServingSettings(
        models=[str(tmp_path / "runs" / "vae"), str(tmp_path / "other" / "vae")],
        sagemaker_model_dir=ml,
    )
    store = load_store(settings, load=_fake_load)
    # Without textopia.DEFAULT_MODEL (a custom loader) no default is loaded; names are base names.
    assert store.names() == ["vae", "vae-2", "ml"]
    assert store.default == "vae"
    assert store.get_latent(None).name == "vae"
    with pytest.raises(ModelNotFound):
        store.get("nope")
    with pytest.raises(TextopiaError, match="no model to serve"):
        load_store(ServingSettings(load_default=False, sagemaker_model_dir=tmp_path / "x"), load=_fake_load)
    with pytest.raises(ModelNotFound):
        ModelStore({"a": FakeGenerator()}, default="b")


def test_lifespan_loads_the_default_and_named_models(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import textopia

    monkeypatch.setattr(textopia, "load", _fake_load, raising=False)
    monkeypatch.setattr(textopia, "DEFAULT_MODEL", "default", raising=False)
    monkeypatch.setattr(textopia, "LATENT_MODEL", None, raising=False)
    settings = ServingSettings(
        models=[str(tmp_path / "runs" / "my-vae")], sagemaker_model_dir=tmp_path / "none",
        clip_tokens=False,
    )
    app = create_app(settings)
    assert app.state.textopia.store is None  # nothing is loaded before startup
    with TestClient(app) as c:
        data = c.get("/v1/models").json()
        assert [m["name"] for m in data["models"]] == ["default", "my-vae"]
        assert data["default"] == "default"
        assert c.post("/v1/generate", json={"idea": "x", "n": 1}).status_code == 200
        assert c.post("/v1/interpolate", json={"prompt_a": "a", "prompt_b": "b"}).status_code == 200


def test_the_embedded_latent_model_serves_the_latent_views(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import textopia

    monkeypatch.setattr(textopia, "load", _fake_load, raising=False)
    monkeypatch.setattr(textopia, "DEFAULT_MODEL", "default", raising=False)
    monkeypatch.setattr(textopia, "LATENT_MODEL", "latent", raising=False)
    settings = ServingSettings(models=[str(tmp_path / "runs" / "my-vae")], sagemaker_model_dir=tmp_path / "none",
                               clip_tokens=False)
    with TestClient(create_app(settings)) as c:
        data = c.get("/v1/models").json()
        assert [m["name"] for m in data["models"]] == ["default", "latent", "my-vae"]
        assert data["default"] == "default"  # ideas still go to the default GPT
        body = c.post("/v1/variations", json={"prompt": "a cat in a hat", "n": 2, "seed": 0}).json()
        assert body["model"] == "latent"
    settings = ServingSettings(load_latent=False, models=[str(tmp_path / "runs" / "my-vae")],
                               sagemaker_model_dir=tmp_path / "none", clip_tokens=False)
    with TestClient(create_app(settings)) as c:
        assert [m["name"] for m in c.get("/v1/models").json()["models"]] == ["default", "my-vae"]


def test_startup_fails_on_a_bad_checkpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import textopia

    monkeypatch.setattr(textopia, "load", _fake_load, raising=False)
    monkeypatch.setattr(textopia, "DEFAULT_MODEL", "default", raising=False)
    app = create_app(ServingSettings(models=["missing"], sagemaker_model_dir=tmp_path, clip_tokens=False))
    with pytest.raises(TextopiaError, match="missing"):
        with TestClient(app):
            pass


def test_run_server_passes_settings_to_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from textopia.serving.app import run_server

    seen: dict[str, Any] = {}

    class Server:  # uvicorn's, serving on the socket run_server bound
        def __init__(self, config) -> None:
            seen.update(app=config.app, **{k: getattr(config, k) for k in (
                "host", "port", "limit_concurrency", "http", "timeout_keep_alive", "h11_max_incomplete_event_size",
                "timeout_graceful_shutdown")})
            self.started = True

        def run(self, sockets) -> None:
            seen["bound"] = [s.getsockname() for s in sockets]
            for s in sockets:
                s.close()

    monkeypatch.setattr(uvicorn, "Server", Server)
    monkeypatch.setenv("TEXTOPIA_MODELS", "a")
    monkeypatch.setenv("TEXTOPIA_PORT", "0")  # any free port
    run_server("127.0.0.1", None, ["b"])
    assert seen["host"] == "127.0.0.1" and seen["port"] == 0 and seen["bound"][0][0] == "127.0.0.1"
    assert seen["app"].state.textopia.settings.models == ["a", "b"]
    assert seen["limit_concurrency"] == 1024
    assert seen["http"].func is HeaderTimeoutProtocol and seen["http"].keywords == {"header_timeout_s": 10.0}
    assert seen["timeout_keep_alive"] == 5 and seen["h11_max_incomplete_event_size"] == 16_384
    assert seen["timeout_graceful_shutdown"] == 5  # SIGTERM: in-flight work gets 5 s, then is cancelled



@pytest.mark.parametrize("taken", [True, False])
def test_a_port_that_cannot_be_listened_on_fails_before_any_model_loads(monkeypatch, capsys, taken) -> None:
    """A taken port (another server on it) or one out of range: one line, status 2, no model loaded."""
    from textopia.cli import main
    from textopia.serving import app as service

    monkeypatch.setattr(service, "create_app", lambda *a, **k: pytest.fail("the models loaded first"))
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1] if taken else 70000
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.endswith(f"127.0.0.1:{port}: in use") if taken else "must be in 0..65535" in err


def test_load_benchmarks_server_is_configured_as_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """The load and soak benchmarks measure the server `textopia serve` runs: the same uvicorn
    settings, the header deadline among them (a benchmark server without it held slow clients'
    connections open for good while the service closes them)."""
    import uvicorn

    from benchmarks import load  # the checkout's package: pytest puts the repository root on the path

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    load.serve(port=9001, model="default", fake=True, fake_delay_s=0.01, max_concurrency=1, queue_size=64,
               request_timeout_s=60.0, batch_window_ms=10.0)
    assert seen["port"] == 9001
    assert seen["http"].func is HeaderTimeoutProtocol and seen["http"].keywords == {"header_timeout_s": 10.0}
    assert seen["timeout_keep_alive"] == 5 and seen["limit_concurrency"] == 1024

def test_module_entry_point_accepts_sagemakers_serve_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    import textopia.serving.__main__ as entry

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(entry, "run_server", lambda *a: calls.append(a))
    entry.main(["serve"])
    entry.main(["--port", "8081", "--models", "runs/a"])
    assert calls == [(None, None, []), (None, 8081, ["runs/a"])]


# --------------------------------------------------------------------------- slow clients, shutdown


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Read until the server closes the connection: (closed within ``seconds``, what it sent)."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except socket.timeout:
        return False, received
    return True, received


def test_a_slow_client_is_closed_after_the_header_and_body_timeouts() -> None:
    settings = make_settings(port=free_port(), log_level="warning", header_timeout_s=0.5, body_timeout_s=0.5,
                             batch_window_ms=0)
    app = create_app(settings, {"fake": FakeGenerator()}, clip_counter=len)
    address = (settings.host, settings.port)
    with serving(app, settings) as url:
        started = time.monotonic()
        with socket.create_connection(address) as silent, socket.create_connection(address) as partial:
            partial.sendall(b"POST /v1/generate HTTP/1.1\r\nHost: test\r\nContent-Type: app")
            assert _closed_within(silent, 3) == (True, b"")  # nothing sent: closed, nothing to answer
            assert _closed_within(partial, 3) == (True, b"")  # headers never finished: closed
        assert time.monotonic() - started < 2.5
        with socket.create_connection(address) as slow_body:
            slow_body.sendall(b"POST /v1/generate HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                              b"Content-Length: 40\r\n\r\n{\"idea\": ")
            closed, answer = _closed_within(slow_body, 3)
            assert closed and answer.startswith(b"HTTP/1.1 408 ") and b"not received within 0.5 s" in answer
        with socket.create_connection(address) as kept_alive:  # one request, then half of the next
            kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            kept_alive.settimeout(3)
            first = b""
            while not first.endswith(b"}"):
                first += kept_alive.recv(4096)
            assert first.startswith(b"HTTP/1.1 200 ")
            kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHo")
            assert _closed_within(kept_alive, 3) == (True, b"")
        # A client that keeps to the limits is served as before.
        assert httpx.post(f"{url}/v1/generate", json={"idea": "a", "n": 1}, timeout=5).status_code == 200


_SERVER = """
import sys
import uvicorn
from tests.fakes import FakeGenerator
from textopia.serving.app import create_app, uvicorn_options
from textopia.serving.settings import ServingSettings

settings = ServingSettings(port=int(sys.argv[1]), load_default=False, load_latent=False, clip_tokens=False,
                           batch_window_ms=0, log_level="warning")
uvicorn.run(create_app(settings, {"fake": FakeGenerator(delay_s=1.0)}), **uvicorn_options(settings))
"""


def test_sigterm_with_work_in_flight_stops_the_server_within_10_s() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        # 30 s of work: 30 lines of one prompt, a second each (32 rows each: 960 of a call's 1024).
        body = "".join(json.dumps({"idea": f"castle {i}", "n": 1}) + "\n" for i in range(30))
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/jsonlines\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(body), body.encode()))
            time.sleep(1.5)  # the first lines run
            stopping = time.monotonic()
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=15)
            took = time.monotonic() - stopping
    finally:
        if server.poll() is None:
            server.kill()
        _, stderr = server.communicate(timeout=10)
    assert took < 10, f"the server took {took:.1f} s to stop"
    assert "Cancel 1 running task(s)" in stderr  # the call was cancelled, not run to its end


# --------------------------------------------------------------------------- safety, CLIP


def test_banned_pattern_matches_whole_words_any_case_and_plurals() -> None:
    p = banned_pattern(["nude", "greg rutkowski", "4k", "c++"])
    assert contains_banned("a NUDE figure", p) and contains_banned("two nudes", p)
    assert contains_banned("art by Greg   Rutkowski", p) and contains_banned("4k, sharp", p)
    assert contains_banned("written in c++", p)
    assert not contains_banned("a nudes-free nudelholz", banned_pattern(["nudel"]))
    assert not contains_banned("a denuded hill, 4kx", p)
    assert not contains_banned("essex", banned_pattern(["sex"]))
    assert mask_banned("nude and Nudes", p) == "*** and ***"
    assert banned_pattern([]) is None and banned_pattern(["  "]) is None
    assert clean_words([" a  b ", "A B", "", "c"]) == ["a b", "c"]


def test_clip_counter_is_none_until_ready_and_after_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ClipCounter(lambda t: 7)("x") == 7
    assert ClipCounter(enabled=False)("x") is None

    import textopia.serving.clip as clip

    def broken() -> Any:
        raise ImportError("no tokenizer here")

    monkeypatch.setattr(clip, "_import_counter", broken)
    counter = ClipCounter()
    assert counter("x") is None  # starts loading in the background, answers at once
    deadline = time.monotonic() + 5
    while counter.state == "loading" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counter.state == "failed" and counter("x") is None


def test_a_missing_default_is_skipped_when_other_models_are_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import textopia

    def load(spec: str) -> FakeGenerator:
        if spec == "default":
            raise TextopiaError("unknown model 'default'")
        return FakeGenerator(name=spec)

    monkeypatch.setattr(textopia, "load", load, raising=False)
    monkeypatch.setattr(textopia, "DEFAULT_MODEL", "default", raising=False)
    monkeypatch.setattr(textopia, "LATENT_MODEL", None, raising=False)
    store = load_store(ServingSettings(models=["runs/a"], sagemaker_model_dir=tmp_path))
    assert store.names() == ["a"] and store.default == "a"
    with pytest.raises(TextopiaError):  # alone, the default must load
        load_store(ServingSettings(sagemaker_model_dir=tmp_path))
