"""``GET /metrics``: Prometheus' text format, read from what the service keeps: the limiter, each
batched model's batcher, the models loaded, the process."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import FakeBatchGenerator, FakeGenerator


def _scrape(client: TestClient) -> dict[tuple[str, str | None], float]:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, s.labels.get("model")): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def test_metrics_count_the_batches_and_read_the_limiter(app_factory):
    app = app_factory({"fake": FakeBatchGenerator(), "plain": FakeGenerator()},
                      queue_size=7, max_concurrency=2)
    with TestClient(app) as client:
        before = _scrape(client)
        assert before[("textopia_batches_total", "fake")] == 0
        assert ("textopia_batches_total", "plain") not in before  # no batcher: nothing to count
        assert before[("textopia_models_loaded", None)] == 2
        capacity = before[("textopia_limiter_capacity", None)]
        assert capacity == client.app.state.textopia.limiter.capacity
        for seed in range(3):  # one after another: a batch each
            r = client.post("/v1/generate", json={"idea": "red fox", "n": 1, "seed": seed, "model": "fake"})
            assert r.status_code == 200, r.text
        after = _scrape(client)
    assert after[("textopia_batches_total", "fake")] == 3
    assert after[("textopia_batcher_requests_in_flight", "fake")] == 0
    assert after[("textopia_requests_dropped_total", "fake")] == 0
    assert after[("textopia_limiter_running", None)] == after[("textopia_limiter_waiting", None)] == 0
    assert "/metrics" not in client.app.openapi()["paths"]  # for scrapers, not in the API document


def test_metrics_count_and_time_requests_by_route_template_and_status(app_factory):
    """Each request is counted and timed under its method, its route's template (a path no route
    matches is ``unmatched``: a client cannot grow the label set) and its status."""
    app = app_factory({"fake": FakeBatchGenerator()})
    with TestClient(app) as client:
        assert client.post("/v1/generate", json={"idea": "red fox", "n": 1}).status_code == 200
        assert client.post("/v1/generate", json={"idea": "red fox", "n": 0}).status_code == 422
        assert client.get("/no/such/page/42").status_code == 404
        text = client.get("/metrics").text
    counted, timed = {}, {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.labels.get("method"), s.labels.get("route"), s.labels.get("status"))
            if s.name == "textopia_http_requests_total":
                counted[key] = s.value
            elif s.name == "textopia_http_request_duration_seconds_count":
                timed[key] = s.value
    want = {("POST", "/v1/generate", "200"): 1, ("POST", "/v1/generate", "422"): 1, ("GET", "unmatched", "404"): 1}
    assert counted == want and timed == want  # the scrape itself is counted once its answer starts
