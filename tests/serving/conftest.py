"""Fixtures for the service's tests: fake generators injected into the app, never a real model."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service needs fastapi (pip install 'textopia[serve]')")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from textopia.generation.base import Generation, Generator  # noqa: E402
from textopia.serving.app import create_app  # noqa: E402
from tests.fakes import FakeGenerator, FakeLatentGenerator  # noqa: E402
from textopia.serving.settings import ServingSettings  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: needs headless Chromium and Playwright")
    config.addinivalue_line(
        "markers", "fuzz: the long schemathesis run (>= 1000 cases); deselect with -m 'not fuzz'"
    )


def word_count(text: str) -> int:
    """A stand-in CLIP token counter: one token per word."""
    return len(text.split())


def make_settings(**overrides: Any) -> ServingSettings:
    """Settings for tests: nothing loaded from the environment's models, small limits."""
    values: dict[str, Any] = {"load_default": False, "models": [], "clip_tokens": False}
    values.update(overrides)
    return ServingSettings(**values)


def make_app(
    generators: dict[str, Generator] | None = None, **settings: Any
) -> FastAPI:
    """An app serving ``generators`` (a fake GPT and a fake VAE by default)."""
    if generators is None:
        generators = {"fake": FakeGenerator(), "fake-vae": FakeLatentGenerator()}
    return create_app(make_settings(**settings), generators, clip_counter=word_count)


class GateGenerator(FakeGenerator):
    """A generator that blocks until :attr:`gate` is set (at most ``wait_s`` seconds)."""

    def __init__(self, wait_s: float = 5.0) -> None:
        super().__init__(name="gate")
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.wait_s = wait_s

    def generate(self, idea: str | None, n: int = 4, **kwargs: Any) -> list[Generation]:
        self.entered.set()
        self.gate.wait(self.wait_s)
        return super().generate(idea, n, **kwargs)


@pytest.fixture
def app_factory() -> Any:
    """:func:`make_app`, for tests that need an app of their own."""
    return make_app


@pytest.fixture
def gate() -> Iterator[GateGenerator]:
    """A generator that blocks until ``gate.gate.set()``; released at teardown."""
    generator = GateGenerator()
    yield generator
    generator.gate.set()


@pytest.fixture
def fake() -> FakeGenerator:
    return FakeGenerator()


@pytest.fixture
def app(fake: FakeGenerator) -> FastAPI:
    return make_app({"fake": fake, "fake-vae": FakeLatentGenerator()})


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: FastAPI, settings: ServingSettings) -> Iterator[str]:
    """``app`` served by uvicorn in a thread, with the service's own uvicorn options
    (:func:`~textopia.serving.app.uvicorn_options`: its protocol, timeouts and limits) on
    ``settings.host:settings.port``; yields its URL."""
    import uvicorn

    from textopia.serving.app import uvicorn_options

    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start within 10 s")
        time.sleep(0.02)
    try:
        yield f"http://{settings.host}:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def live_server() -> Iterator[str]:
    """The app with fake models, served by uvicorn on 127.0.0.1 in a thread; yields its URL."""
    settings = make_settings(port=free_port(), log_level="warning")
    with serving(create_app(settings, {"fake": FakeGenerator(), "fake-vae": FakeLatentGenerator()},
                            clip_counter=word_count), settings) as url:
        yield url
