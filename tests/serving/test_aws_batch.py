"""SageMaker batch transform: ``POST /invocations`` with ``application/jsonlines`` (SplitType=Line)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

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
    too_many = "{}\n" * (MAX_JSONLINES + 1)
    r = client.post("/invocations", content=too_many, headers=JSONLINES)
    assert r.status_code in (413, 422)  # the body limit or the line limit, whichever comes first
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
