"""``GET /metrics``: the service's state in Prometheus' text format, for an operator's scraper.

Read at scrape time from the objects that keep it (no second count to drift): the limiter's
calls running and waiting and its capacity; per model decoded in micro-batches, its batcher's
batches, the browned-out ones (decoded at the brownout pool while requests waited), the requests
dropped past their deadline before their batch began, and the requests given to it and not yet
answered; the models loaded; the HTTP requests answered and their latency, by method, route and
status (:class:`~textopia.serving.metrics_middleware.RequestMetricsMiddleware`); and the service
process's own CPU seconds and memory (``prometheus_client``'s process collector, where the
platform has ``/proc``). The route is not in the OpenAPI document: it is for scrapers, not API
clients.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from textopia.serving.deps import ServiceState, StateDep

router = APIRouter()


class ServiceCollector:
    """A ``prometheus_client`` collector over one app's :class:`ServiceState`."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    def describe(self) -> list:  # the families are known only at scrape time
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        state = self.state
        limiter = state.limiter.stats()
        yield GaugeMetricFamily("textopia_limiter_running", "Generation calls running now.", value=limiter["running"])
        yield GaugeMetricFamily("textopia_limiter_waiting", "Generation calls waiting for a worker now.",
                                value=limiter["waiting"])
        yield GaugeMetricFamily("textopia_limiter_capacity", "Calls held at once, running or waiting; beyond: 503.",
                                value=limiter["capacity"])
        store = state.store
        names = store.names() if store is not None and store.models else []
        yield GaugeMetricFamily("textopia_models_loaded", "Models loaded and served.", value=len(names))
        families: dict[str, Any] = {
            "batches": CounterMetricFamily("textopia_batches", "Micro-batches decoded.", labels=["model"]),
            "browned_out": CounterMetricFamily(
                "textopia_batches_browned_out", "Micro-batches decoded at the brownout pool while requests waited.",
                labels=["model"]),
            "dropped": CounterMetricFamily(
                "textopia_requests_dropped", "Requests dropped unsampled, past their deadline before their batch began.",
                labels=["model"]),
            "in_flight": GaugeMetricFamily(
                "textopia_batcher_requests_in_flight", "Requests given to the batcher and not yet answered.",
                labels=["model"]),
        }
        for name in names:
            batcher = store.get(name).batcher
            if batcher is None:
                continue
            families["batches"].add_metric([name], batcher.batches)
            families["browned_out"].add_metric([name], batcher.browned_out)
            families["dropped"].add_metric([name], batcher.dropped)
            families["in_flight"].add_metric([name], batcher.in_flight)
        yield from families.values()


def registry_for(state: ServiceState):
    """A ``CollectorRegistry`` of its own for one app (tests build many apps in one process):
    :class:`ServiceCollector` and the process collector."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(state))
    ProcessCollector(registry=registry)
    return registry


@router.get("/metrics", include_in_schema=False)
def metrics(state: StateDep) -> Response:
    """The metrics in Prometheus' text exposition format (version 0.0.4)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(state.metrics), media_type=CONTENT_TYPE_LATEST)
