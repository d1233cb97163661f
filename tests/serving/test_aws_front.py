"""The front and the endpoint apart: ``textopia serve --endpoint URL`` forwards generation.

Unit tests drive :class:`EndpointClient` against httpx mock transports (retries, timeouts, error
pass-through, SigV4); the in-process tests put a front app before a backend app; the last test
starts two real processes on 127.0.0.1, drives the page's API through the front and kills the
backend.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from tests.serving.conftest import free_port, make_app, make_settings
from textopia.serving.app import create_app
from textopia.serving.endpoint_client import ENDPOINT_MODEL, EndpointClient, EndpointError


def _client(handler, **kwargs) -> EndpointClient:
    kwargs.setdefault("backoff_s", 0.001)
    return EndpointClient("http://backend.test", transport=httpx.MockTransport(handler), **kwargs)


def _invoke(client: EndpointClient, body: dict | None = None) -> dict:
    async def go() -> dict:
        try:
            return await client.invoke(body or {"idea": "x"})
        finally:
            await client.aclose()

    return anyio.run(go)


def test_retries_503_with_backoff_then_answers() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        assert request.url.path == "/invocations"
        if len(calls) < 3:
            return httpx.Response(503, json={"error": "server busy"}, headers={"Retry-After": "0"})
        return httpx.Response(200, json={"ok": True})

    assert _invoke(_client(handler, retries=3)) == {"ok": True}
    assert calls == [{"idea": "x"}] * 3


def test_503_after_the_last_retry_passes_through() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "server busy: too many requests"}, headers={"Retry-After": "7"})

    with pytest.raises(EndpointError) as info:
        _invoke(_client(handler, retries=2))
    assert info.value.status == 503 and info.value.retry_after_s == 7
    assert info.value.message == "inference endpoint answered 503: server busy: too many requests"


@pytest.mark.parametrize(("status", "body", "front_status", "message"), [
    (422, {"error": "invalid request: body.n: too big", "details": [{"loc": ["body", "n"]}]}, 422,
     "answered 422: invalid request: body.n: too big"),
    (404, {"error": "model 'x' is not loaded"}, 404, "answered 404: model 'x' is not loaded"),
    (500, "<html>Internal error</html>", 500, "answered 500: <html>Internal error</html>"),
    (403, {"message": "The security token included in the request is invalid."}, 502,
     "answered 403: The security token included in the request is invalid."),
])
def test_endpoint_errors_pass_through_as_json_errors(status, body, front_status, message) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, dict):
            return httpx.Response(status, json=body)
        return httpx.Response(status, text=body)

    with pytest.raises(EndpointError) as info:
        _invoke(_client(handler))
    assert info.value.status == front_status and message in info.value.message
    if status == 422:
        assert info.value.details == [{"loc": ["body", "n"]}]


def test_unreachable_and_slow_endpoints() -> None:
    attempts = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        raise httpx.ConnectError("connection refused")

    with pytest.raises(EndpointError) as info:
        _invoke(_client(refuse, retries=2))
    assert info.value.status == 502 and "unreachable at http://backend.test/invocations" in info.value.message
    assert len(attempts) == 3

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    with pytest.raises(EndpointError) as info:
        _invoke(_client(slow, timeout_s=2.5))
    assert info.value.status == 504 and "within 2.5 s" in info.value.message

    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="[1, 2]")

    with pytest.raises(EndpointError, match="not a JSON object") as info:
        _invoke(_client(garbage))
    assert info.value.status == 502


def test_urls_and_sigv4_for_sagemaker_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("botocore")
    assert EndpointClient("http://h:8080").invocations_url == "http://h:8080/invocations"
    assert EndpointClient("https://x.execute-api.eu-west-1.amazonaws.com/prod/invocations/").invocations_url == (
        "https://x.execute-api.eu-west-1.amazonaws.com/prod/invocations")
    with pytest.raises(ValueError, match="http"):
        EndpointClient("localhost:8080")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": 1})

    url = "https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/textopia/invocations"
    client = EndpointClient(url, transport=httpx.MockTransport(handler))  # mocked: nothing leaves the machine
    assert client.region == "eu-west-1"
    assert _invoke(client) == {"ok": 1}
    auth = seen[0].headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") and "/eu-west-1/sagemaker/aws4_request" in auth
    assert str(seen[0].url) == url


# --------------------------------------------------------------------------- a front before a backend app


@pytest.fixture
def front() -> Iterator[TestClient]:
    """A front app whose endpoint is a backend app with fake models, over an in-memory transport."""
    backend = make_app()
    endpoint = EndpointClient("http://backend.test", transport=httpx.ASGITransport(app=backend))
    app = create_app(make_settings(), endpoint=endpoint)
    with TestClient(app) as c:
        yield c


def test_front_forwards_generation_and_lists_the_backends_models(front: TestClient) -> None:
    models = front.get("/v1/models").json()
    assert [m["name"] for m in models["models"]] == ["fake", "fake-vae"]
    r = front.post("/v1/generate", json={"idea": "castle", "n": 2, "seed": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "fake" and len(body["prompts"]) == 2 and body["seed"] == 3
    direct = TestClient(make_app()).post("/v1/generate", json={"idea": "castle", "n": 2, "seed": 3}).json()
    assert body["prompts"] == direct["prompts"]
    # The front validates first: a bad body never reaches the endpoint.
    r = front.post("/v1/generate", json={"idea": "castle", "n": 0})
    assert r.status_code == 422 and r.json()["error"].startswith("invalid request: body.n")
    # The backend's own errors come back as JSON errors with its status.
    r = front.post("/v1/generate", json={"idea": "castle", "model": "nope"})
    assert r.status_code == 404 and r.json()["error"].startswith("inference endpoint answered 404: model 'nope'")
    r = front.post("/v1/generate", json={"idea": "castle", "guidance": 2})
    assert r.status_code == 409
    assert front.post("/v1/variations", json={"prompt": "a castle"}).status_code == 501
    assert front.post("/v1/reconstruct", json={"prompt": "a castle"}).status_code == 501
    assert front.get("/readyz").status_code == 200 and front.get("/ping").status_code == 200
    lines = front.post("/invocations", content=b'{"idea": "a", "seed": 1}\n{"n": 0}\n',
                       headers={"Content-Type": "application/jsonlines"}).text.splitlines()
    assert json.loads(lines[0])["idea"] == "a" and json.loads(lines[1])["status"] == 422


def test_front_without_a_model_list_offers_the_endpoint_itself() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.url.path == "/v1/models":
            return httpx.Response(404, json={"message": "Not Found"})  # API Gateway, a SageMaker endpoint
        body = json.loads(request.content)
        return httpx.Response(200, json={
            "model": "m", "kind": "gpt", "seed": 1, "idea": body["idea"], "mode": "expand",
            "prompts": [{"prompt": "p", "num_tokens": 1, "clip_tokens": None, "finished": True}],
            "timing": {"queue_s": 0, "generate_s": 0.1, "total_s": 0.1}})

    endpoint = EndpointClient("http://gw.test/prod/invocations", transport=httpx.MockTransport(handler))
    with TestClient(create_app(make_settings(), endpoint=endpoint)) as c:
        models = c.get("/v1/models").json()
        assert models["default"] == ENDPOINT_MODEL and models["models"][0]["info"]["endpoint"].endswith("/invocations")
        r = c.post("/v1/generate", json={"idea": "x", "model": ENDPOINT_MODEL})
        assert r.status_code == 200 and r.json()["prompts"][0]["prompt"] == "p"
    assert json.loads(calls[-1].content) == {"idea": "x"}  # the stand-in name is not sent on


def test_front_rejects_an_answer_that_is_not_a_generate_answer() -> None:
    endpoint = EndpointClient("http://x.test", transport=httpx.MockTransport(
        lambda request: httpx.Response(200, json={"predictions": []})))
    with TestClient(create_app(make_settings(), endpoint=endpoint)) as c:
        r = c.post("/v1/generate", json={"idea": "x"})
    assert r.status_code == 502 and "not a generate answer" in r.json()["error"]


# --------------------------------------------------------------------------- two real processes


def _start(args: list[str], port: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "textopia.cli", "serve", "--host", "127.0.0.1",
                             "--port", str(port), *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {timeout_s} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.mark.slow
def test_front_and_backend_as_two_processes_on_loopback() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TEXTOPIA_CLIP_TOKENS": "false", "HF_HUB_OFFLINE": "1",
           "TEXTOPIA_LOG_LEVEL": "warning"}
    backend_port, front_port = free_port(), free_port()
    backend = _start([], backend_port, env)  # the embedded default model
    front = _start(["--endpoint", f"http://127.0.0.1:{backend_port}", "--endpoint-retries", "1",
                    "--endpoint-timeout", "60"], front_port, env)
    base = f"http://127.0.0.1:{front_port}"
    try:
        _wait_ready(f"http://127.0.0.1:{backend_port}/ping", backend)
        _wait_ready(f"{base}/readyz", front)
        with httpx.Client(base_url=base, timeout=60) as web:
            assert "<html" in web.get("/").text.lower()
            assert web.get("/static/app.js").status_code == 200
            models = web.get("/v1/models").json()
            assert models["default"] == "default" and "default" in [m["name"] for m in models["models"]]
            ask = {"idea": "castle on a hill", "n": 1, "seed": 0, "max_new_tokens": 16, "model": "default"}
            r = web.post("/v1/generate", json=ask)
            assert r.status_code == 200, r.text
            prompts = r.json()["prompts"]
            assert len(prompts) == 1 and prompts[0]["prompt"]
            direct = httpx.post(f"http://127.0.0.1:{backend_port}/invocations", json=ask, timeout=60).json()
            assert direct["prompts"] == prompts  # the same seed through the front or not
            r = web.post("/v1/generate", json={**ask, "model": "nope"})
            assert r.status_code == 404 and r.json()["error"].startswith("inference endpoint answered 404")

            _stop(backend)  # the backend goes away: the front says so, as JSON, and stays up
            r = web.post("/v1/generate", json=ask)
            assert r.status_code == 502
            assert r.json()["error"].startswith(f"inference endpoint unreachable at http://127.0.0.1:{backend_port}")
            assert web.get("/healthz").status_code == 200
    finally:
        _stop(backend)
        _stop(front)
