"""What route handlers are given: the running service's state, as a FastAPI dependency.

A handler takes ``state: StateDep``; the state is made once by ``create_app`` and kept on
``app.state.textopia``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from textopia.serving.clip import ClipCounter
from textopia.serving.endpoint_client import EndpointClient
from textopia.serving.errors import ModelsNotReady, NotThroughEndpoint
from textopia.serving.limiter import InferenceLimiter
from textopia.serving.models import ModelStore
from textopia.serving.settings import ServingSettings


@dataclass
class ServiceState:
    """What the running service holds: settings, the models, and the inference limiter."""

    settings: ServingSettings
    limiter: InferenceLimiter
    clip: ClipCounter
    store: ModelStore | None = None  # None while the models load, and on a front
    endpoint: EndpointClient | None = None  # set on a front: generations go to this endpoint
    metrics: Any = None  # the app's Prometheus CollectorRegistry (routes.metrics), made by create_app

    def require_store(self) -> ModelStore:
        """The loaded models; raises NotThroughEndpoint on a front, ModelsNotReady while loading."""
        if self.endpoint is not None:
            raise NotThroughEndpoint("this server forwards generation to an inference endpoint, whose "
                                     "contract (POST /invocations) carries nothing else")
        if self.store is None:
            raise ModelsNotReady("models are still loading")
        return self.store


async def get_state(request: Request) -> ServiceState:
    """The app's :class:`ServiceState` (async, so FastAPI calls it on the event loop, not a thread)."""
    return request.app.state.textopia


StateDep = Annotated[ServiceState, Depends(get_state)]
