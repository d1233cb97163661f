"""The Lambda handler: API Gateway proxy events to ``sagemaker-runtime`` ``InvokeEndpoint``.

First with botocore's Stubber (no HTTP at all), then with a real boto3 client whose
``endpoint_url`` is a local stand-in for sagemaker-runtime on 127.0.0.1, in front of the real
service app with fake models. Nothing reaches the network; the credentials are fake.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

boto3 = pytest.importorskip("boto3", reason="pip install 'textopia[aws]'")

import httpx  # noqa: E402
from botocore.response import StreamingBody  # noqa: E402
from botocore.stub import ANY, Stubber  # noqa: E402

from tests.serving.conftest import free_port, make_app  # noqa: E402
from textopia.serving import aws_lambda  # noqa: E402

ENDPOINT = "textopia-prod"


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region, no instance metadata: boto3 never looks further."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    aws_lambda._default_client.cache_clear()
    yield
    aws_lambda._default_client.cache_clear()


def _event(body: object, *, v2: bool = False, base64_body: bool = False, method: str = "POST") -> dict:
    text = body if isinstance(body, str) else json.dumps(body)
    event: dict = {"body": base64.b64encode(text.encode()).decode() if base64_body else text,
                   "isBase64Encoded": base64_body}
    if v2:
        event["requestContext"] = {"http": {"method": method, "path": "/invocations"}}
    else:
        event["httpMethod"] = method
    return event


def _answer(idea: str = "castle") -> bytes:
    return json.dumps({"model": "default", "kind": "gpt", "seed": 1, "idea": idea, "mode": "expand",
                       "prompts": [{"prompt": f"{idea}, oil painting", "num_tokens": 4, "clip_tokens": 4,
                                    "finished": True}],
                       "dropped": 0, "timing": {"queue_s": 0.0, "generate_s": 0.2, "total_s": 0.2}}).encode()


@pytest.fixture
def stubbed() -> Iterator[tuple[object, Stubber]]:
    client = boto3.client("sagemaker-runtime", region_name="eu-west-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_valid_request_is_sent_to_the_endpoint(stubbed) -> None:
    client, stubber = stubbed
    body = _answer()
    stubber.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
        expected_params={"EndpointName": ENDPOINT, "ContentType": "application/json", "Accept": "application/json",
                         "Body": json.dumps({"idea": "castle", "n": 1}).encode()},
    )
    response = aws_lambda.handle(_event({"idea": "castle", "n": 1}), client, ENDPOINT)
    assert response["statusCode"] == 200 and response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"])["prompts"][0]["prompt"] == "castle, oil painting"


def test_http_api_v2_events_and_base64_bodies(stubbed) -> None:
    client, stubber = stubbed
    body = _answer("fox")
    stubber.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(body), len(body))},
                         expected_params={"EndpointName": ENDPOINT, "ContentType": ANY, "Accept": ANY, "Body": ANY})
    response = aws_lambda.handle(_event({"idea": "fox"}, v2=True, base64_body=True), client, ENDPOINT)
    assert response["statusCode"] == 200 and json.loads(response["body"])["idea"] == "fox"


def test_bad_requests_never_reach_the_endpoint(stubbed) -> None:
    client, _ = stubbed  # no response queued: any call would fail the test
    r = aws_lambda.handle(_event({"idea": "x", "n": 99}), client, ENDPOINT)
    assert r["statusCode"] == 422
    error = json.loads(r["body"])
    assert error["error"].startswith("invalid request: body.n") and error["details"][0]["loc"] == ["body", "n"]
    assert aws_lambda.handle(_event("{not json"), client, ENDPOINT)["statusCode"] == 422
    assert aws_lambda.handle(_event({"idea": "x", "colour": "red"}), client, ENDPOINT)["statusCode"] == 422
    assert aws_lambda.handle(_event({"idea": "x"}, method="GET"), client, ENDPOINT)["statusCode"] == 405
    assert aws_lambda.handle(_event({"idea": "x"}, v2=True, method="PUT"), client, ENDPOINT)["statusCode"] == 405
    bad64 = {"httpMethod": "POST", "body": "%%%", "isBase64Encoded": True}
    assert aws_lambda.handle(bad64, client, ENDPOINT)["statusCode"] == 400
    big = _event({"idea": "x", "banned_words": ["w" * 60] * 400})
    assert aws_lambda.handle(big, client, ENDPOINT)["statusCode"] == 413


@pytest.mark.parametrize(("code", "http", "fields", "status", "message"), [
    ("ModelError", 424, {"OriginalStatusCode": 404, "OriginalMessage": '{"error": "model \'x\' is not loaded"}'},
     404, "inference endpoint answered 404: model 'x' is not loaded"),
    ("ModelError", 424, {"OriginalStatusCode": 503, "OriginalMessage": '{"error": "server busy"}'},
     503, "inference endpoint answered 503: server busy"),
    ("ModelError", 424, {"OriginalStatusCode": 418, "OriginalMessage": "teapot"}, 502,
     "inference endpoint answered 418: teapot"),
    ("ThrottlingException", 400, None, 503, "inference endpoint busy (ThrottlingException)"),
    ("ValidationError", 400, None, 502, "inference endpoint call failed (ValidationError)"),
])
def test_endpoint_errors_become_json_errors(stubbed, code, http, fields, status, message) -> None:
    client, stubber = stubbed
    stubber.add_client_error("invoke_endpoint", service_error_code=code, service_message="it failed",
                             http_status_code=http, modeled_fields=fields)
    r = aws_lambda.handle(_event({"idea": "x"}), client, ENDPOINT)
    assert r["statusCode"] == status
    assert json.loads(r["body"])["error"].startswith(message)
    if status == 503:
        assert r["headers"]["Retry-After"]


def test_handler_needs_its_endpoint_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(aws_lambda.ENDPOINT_ENV, raising=False)
    r = aws_lambda.handler(_event({"idea": "x"}), None)
    assert r["statusCode"] == 500 and aws_lambda.ENDPOINT_ENV in json.loads(r["body"])["error"]


def test_importing_the_handler_loads_no_model_code() -> None:
    code = ("import sys, textopia.serving.aws_lambda; "
            "print(sorted(m for m in ('torch', 'transformers', 'fastapi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- a local endpoint


class FakeSageMakerRuntime:
    """sagemaker-runtime's InvokeEndpoint on 127.0.0.1, in front of the service app.

    ``POST /endpoints/<name>/invocations`` goes to the app's ``POST /invocations``; a non-2xx
    answer comes back as SageMaker sends it: 424 ``ModelError`` with the original status and body.
    """

    def __init__(self, app: object, name: str) -> None:
        self.app = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://model")
        self.name = name
        self.calls: list[dict] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.calls.append({"path": scope["path"], "headers": dict(scope["headers"])})
        if scope["path"] != f"/endpoints/{self.name}/invocations":
            status, payload, headers = 400, json.dumps(
                {"__type": "ValidationError", "message": f"Endpoint {scope['path']} not found."}).encode(), []
        else:
            answer = await self.app.post("/invocations", content=body,
                                         headers={"content-type": "application/json"})
            if answer.is_success:
                status, payload, headers = 200, answer.content, []
            else:
                status, headers = 424, [(b"x-amzn-errortype", b"ModelError")]
                payload = json.dumps({"__type": "ModelError", "Message": "Received client error from model",
                                      "OriginalStatusCode": answer.status_code,
                                      "OriginalMessage": answer.text}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), *headers]})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
def local_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSageMakerRuntime]:
    import uvicorn

    runtime = FakeSageMakerRuntime(make_app(), ENDPOINT)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(runtime, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the local endpoint did not start"
        time.sleep(0.02)
    monkeypatch.setenv(aws_lambda.ENDPOINT_ENV, ENDPOINT)
    monkeypatch.setenv(aws_lambda.ENDPOINT_URL_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.setenv(aws_lambda.READ_TIMEOUT_ENV, "10")
    try:
        yield runtime
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_handler_against_a_local_endpoint(local_endpoint: FakeSageMakerRuntime) -> None:
    r = aws_lambda.handler(_event({"idea": "lighthouse in a storm", "n": 2, "seed": 5}), None)
    assert r["statusCode"] == 200, r["body"]
    answer = json.loads(r["body"])
    assert answer["model"] == "fake" and answer["seed"] == 5 and len(answer["prompts"]) == 2
    call = local_endpoint.calls[-1]
    assert call["path"] == f"/endpoints/{ENDPOINT}/invocations"
    assert call["headers"][b"authorization"].startswith(b"AWS4-HMAC-SHA256")  # boto3 signed it

    r = aws_lambda.handler(_event({"idea": "x", "model": "nope"}), None)
    assert r["statusCode"] == 404
    assert json.loads(r["body"])["error"].startswith("inference endpoint answered 404: model 'nope' is not loaded")
    r = aws_lambda.handler(_event({"idea": "x", "guidance": 2}), None)
    assert r["statusCode"] == 409


def test_handler_with_a_missing_endpoint(local_endpoint: FakeSageMakerRuntime, monkeypatch) -> None:
    monkeypatch.setenv(aws_lambda.ENDPOINT_ENV, "no-such-endpoint")
    r = aws_lambda.handler(_event({"idea": "x"}), None)
    assert r["statusCode"] == 502 and "ValidationError" in json.loads(r["body"])["error"]
