"""SageMaker batch transform: ``POST /invocations`` with ``application/jsonlines`` (SplitType=Line),
and the bounds of such a call as a whole: its budget (413), its deadline, its client going away."""

from __future__ import annotations

import json
import socket
import time

from fastapi.testclient import TestClient

from tests.fakes import FakeGenerator
from tests.serving.conftest import free_port, make_settings, serving
from textopia.serving.app import create_app
from textopia.serving.routes.sagemaker import MAX_JSONLINES

JSONLINES = {"Content-Type": "application/jsonlines"}


def _lines(response) -> list[dict]:
    assert response.headers["content-type"].startswith("application/jsonlines")
    return [json.loads(line) for line in response.text.splitlines()]


def test_one_answer_line_per_request_line_in_order(client: TestClient) -> None:
    requests = [{"idea": f"castle {i}", "n": 1 + i % 3, "seed": i} for i in range(5)]
    body = "".join(json.dumps(r) + "\n" for r in requests)
    r = client.post("/invocations", content=body, headers=JSONLINES)
    assert r.status_code == 200
    answers = _lines(r)
    assert [a["idea"] for a in answers] == [q["idea"] for q in requests]
    assert [len(a["prompts"]) for a in answers] == [q["n"] for q in requests]
    # Each line's answer is what the JSON call gives for the same request.
    single = client.post("/invocations", json=requests[3]).json()
    assert answers[3]["prompts"] == single["prompts"] and answers[3]["seed"] == single["seed"]


def test_a_bad_line_is_answered_alone(client: TestClient) -> None:
    body = "\n".join([
        json.dumps({"idea": "a", "seed": 1}),
        "{not json",
        json.dumps({"idea": "b", "n": 99}),
        json.dumps({"idea": "c", "model": "nope"}),
        json.dumps({"idea": "d", "guidance": 3}),
        "",  # blank lines (a trailing newline) are no request
        json.dumps({"idea": "e", "seed": 2}),
    ]) + "\n"
    r = client.post("/invocations", content=body, headers={"Content-Type": "application/jsonlines; charset=utf-8"})
    answers = _lines(r)
    assert len(answers) == 6
    assert answers[0]["idea"] == "a" and answers[5]["idea"] == "e"
    assert answers[1]["status"] == 422 and answers[1]["line"] == 2 and answers[1]["error"].startswith("invalid request")
    assert answers[2]["status"] == 422 and "n" in answers[2]["details"][0]["loc"]
    assert answers[3]["status"] == 404 and "nope" in answers[3]["error"]
    assert answers[4]["status"] == 409


def test_whole_call_errors(client: TestClient) -> None:
    r = client.post("/invocations", content=b"\n\n", headers=JSONLINES)
    assert r.status_code == 422 and "no request lines" in r.json()["error"]
    r = client.post("/invocations", content=b"\xff\xfe", headers=JSONLINES)
    assert r.status_code == 422 and "UTF-8" in r.json()["error"]
    # JSON bodies still go to the JSON route, with its own errors.
    r = client.post("/invocations", json={"idea": "x", "n": 0})
    assert r.status_code == 422 and r.json()["error"].startswith("invalid request: body.n")


def test_busy_service_answers_the_whole_batch_503(app_factory, gate) -> None:
    import threading

    app = app_factory({"gate": gate}, max_concurrency=1, queue_size=0)
    with TestClient(app) as c:
        held = threading.Thread(target=lambda: c.post("/v1/generate", json={"idea": "x", "n": 1}))
        held.start()
        assert gate.entered.wait(5)
        r = c.post("/invocations", content=json.dumps({"idea": "y"}) + "\n", headers=JSONLINES)
        gate.gate.set()
        held.join(10)
    assert r.status_code == 503 and "Retry-After" in r.headers


def test_jsonlines_is_not_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert list(paths["/invocations"]) == ["post"]
    assert "application/json" in paths["/invocations"]["post"]["requestBody"]["content"]


# --------------------------------------------------------------------------- one budget, one deadline per call

HEAVY = {"idea": "x", "n": 16, "max_new_tokens": 128}  # 16 × 8 candidates = 128 rows, 16,384 tokens


def test_a_call_is_refused_413_when_its_lines_together_ask_too_much(app_factory) -> None:
    fake = FakeGenerator()
    with TestClient(app_factory({"fake": fake})) as c:
        # The call: as many heavy lines as a call may hold (12 KB), once 18 minutes of CPU;
        # refused before any line runs.
        heavy = (json.dumps(HEAVY) + "\n") * MAX_JSONLINES
        r = c.post("/invocations", content=heavy, headers=JSONLINES)
        assert r.status_code == 413 and "max_request_rows" in r.json()["error"] and "at most 1024" in r.json()["error"]
        # At most one request's worth (16 × 64 rows, × 128 tokens) in all: 8 heavy lines pass, 9 do not.
        assert c.post("/invocations", content=(json.dumps(HEAVY) + "\n") * 8, headers=JSONLINES).status_code == 200
        assert c.post("/invocations", content=(json.dumps(HEAVY) + "\n") * 9, headers=JSONLINES).status_code == 413
        calls = len(fake.calls)
        assert calls == 8  # the refused calls started nothing
        too_many = "{}\n" * (MAX_JSONLINES + 1)
        r = c.post("/invocations", content=too_many, headers=JSONLINES)
        assert r.status_code == 413 and f"at most {MAX_JSONLINES}" in r.json()["error"]
    with TestClient(app_factory({"fake": fake}, max_request_tokens=2000)) as c:
        light = json.dumps({"idea": "x", "n": 2, "candidates": 4, "max_new_tokens": 50})  # 32 rows (the floor): 1600 tokens
        r = c.post("/invocations", content=light + "\n" + light + "\n", headers=JSONLINES)
        assert r.status_code == 413
        assert "3200 tokens" in r.json()["error"] and "max_request_tokens" in r.json()["error"]
        assert c.post("/invocations", content=light + "\n{not json\n", headers=JSONLINES).status_code == 200
        assert len(fake.calls) == calls + 1  # invalid lines count for nothing


def test_a_call_has_one_deadline_and_the_lines_left_then_are_not_started(app_factory) -> None:
    fake = FakeGenerator(delay_s=0.25)  # a line of n=1 takes 0.25 s
    with TestClient(app_factory({"fake": fake}, request_timeout_s=1.0)) as c:
        body = "".join(json.dumps({"idea": f"castle {i}", "n": 1, "seed": i}) + "\n" for i in range(12))
        started = time.monotonic()
        r = c.post("/invocations", content=body, headers=JSONLINES)
        took = time.monotonic() - started
        assert r.status_code == 200
        answers = _lines(r)
        assert len(answers) == 12 and took < 2.0  # not 12 × 0.25 s: the call stopped at its deadline
        done = [a for a in answers if "prompts" in a]
        late = answers[len(done):]
        assert 1 <= len(done) < 12 and all("prompts" not in a for a in late)
        assert all(a["status"] == 504 and "request_timeout_s" in a["error"] for a in late)
        assert [a["line"] for a in late] == list(range(len(done) + 1, 13))
        time.sleep(0.6)  # had the call gone on, more lines would have started by now
        assert len(fake.calls) <= len(done) + 1  # the answered lines, and the one abandoned at the deadline


def test_a_client_that_goes_away_stops_the_call(gate) -> None:
    settings = make_settings(port=free_port(), log_level="warning", batch_window_ms=0)
    app = create_app(settings, {"gate": gate})
    body = "".join(json.dumps({"idea": f"castle {i}", "n": 1}) + "\n" for i in range(6)).encode()
    with serving(app, settings):
        with socket.create_connection((settings.host, settings.port), timeout=5) as sock:
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/jsonlines\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            assert gate.entered.wait(5)  # the first line runs
        # The client has gone while the first line runs; the server's event loop reads the closed
        # socket in its own time (under load, after the line had finished), so give it that time.
        time.sleep(0.3)
        gate.gate.set()  # the first line finishes, the others never start
        limiter = app.state.textopia.limiter
        deadline = time.monotonic() + 5
        while limiter.stats()["running"] or limiter.stats()["waiting"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.3)
        assert len(gate.calls) == 1
