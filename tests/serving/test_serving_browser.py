"""The web page in a real browser: headless Chromium (Debian's) driven by Playwright.

Opens ``/`` on a live uvicorn server (fake models, 127.0.0.1 only), types an idea, clicks, and
sees prompts; checks the VAE interpolation view too. Skipped when Chromium or Playwright is
missing: ``apt-get install -y chromium`` and ``pip install playwright`` (no ``playwright install``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium_path() -> str | None:
    for candidate in (os.environ.get("TEXTOPIA_CHROMIUM"), "/usr/bin/chromium", "chromium",
                      "chromium-browser"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
    )
    path = _chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_page_writes_prompts_for_an_idea(browser: Any, live_server: str) -> None:
    page = browser.new_page()
    failed: list[str] = []
    external: list[str] = []
    page.on("requestfailed", lambda req: failed.append(req.url))
    page.on("request", lambda req: None if req.url.startswith(live_server) else external.append(req.url))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(live_server + "/", wait_until="load", timeout=10_000)
        page.wait_for_selector("#model option", state="attached", timeout=5_000)
        assert page.locator("#model option").count() == 2
        assert page.is_visible("#latent")  # a fake VAE is loaded
        # the temperature slider starts at the picked model's own default (/v1/models)
        page.wait_for_function("document.querySelector('#temperature-value').textContent === '1'", timeout=5_000)
        page.select_option("#model", "fake-vae")
        assert page.input_value("#temperature") == "0.9" and page.text_content("#temperature-value") == "0.9"
        page.select_option("#model", "fake")
        assert page.input_value("#temperature") == "1"

        page.fill("#idea", "a lighthouse in a storm")
        page.fill("#banned", "greg rutkowski, 4k")
        page.locator("#n").fill("3")  # the prompt-count slider
        page.click("#generate")
        page.wait_for_selector("#results li", timeout=10_000)

        prompts = page.locator("#results .prompt-text").all_text_contents()
        assert len(prompts) == 3
        assert all(p.startswith("a lighthouse in a storm") for p in prompts)
        assert not any("greg rutkowski" in p.lower() for p in prompts)
        assert page.locator("#results button.copy").count() == 3
        assert "seed" in page.text_content("#meta")
        assert page.is_hidden("#error")

        # An error comes back as a readable message, not a crash: an idea over the server's cap.
        page.evaluate("document.getElementById('idea').maxLength = 1000")
        page.fill("#idea", "x" * 600)
        page.click("#generate")
        page.wait_for_selector("#error:not([hidden])", timeout=5_000)
        assert "invalid request" in page.text_content("#error")

        # the latent views: the spread slider starts at the latent model's own default
        assert page.input_value("#spread") == "0.7" and page.text_content("#spread-value") == "0.7"
        assert page.is_hidden("#strength-field")  # a VAE takes a spread, not an SDEdit strength
        page.fill("#reconstruct-prompt", "  a castle   on a hill ")
        page.click("#reconstruct")
        page.wait_for_selector("#reconstruct-results li", timeout=10_000)
        assert page.locator("#reconstruct-results .prompt-text").all_text_contents() == ["a castle on a hill"]

        page.fill("#prompt-a", "a castle on a hill")
        page.fill("#prompt-b", "a spaceship over a city")
        page.click("#interpolate")
        # the path appears under its own form; the reconstruction stays under its own
        page.wait_for_selector("#interpolate-results li:nth-child(8)", timeout=10_000)
        steps = page.locator("#interpolate-results .prompt-text").all_text_contents()
        assert steps[0] == "a castle on a hill" and steps[-1] == "a spaceship over a city"
        assert page.locator("#reconstruct-results li").count() == 1
        assert page.locator("#variations-results li").count() == 0
        # the controls' bounds are the API's (/openapi.json), which are the Python API's
        from textopia.generation.config import CALL_BOUNDS

        page.wait_for_function(f"document.querySelector('#n').max === '{CALL_BOUNDS['n'][1].high}'", timeout=5_000)
        assert page.get_attribute("#temperature", "max") == "2"
    finally:
        page.close()
    assert not errors, errors
    assert not failed, failed
    assert not external, external  # works offline: nothing fetched from another origin


def test_docs_page_renders_the_operations(browser: Any, live_server: str) -> None:
    page = browser.new_page()
    external: list[str] = []
    errors: list[str] = []
    page.on("request", lambda req: None if req.url.startswith(live_server) else external.append(req.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(live_server + "/docs", wait_until="load", timeout=10_000)
        page.wait_for_selector(".opblock", timeout=10_000)  # one block per operation, once the document is read
        text = page.inner_text("body")
        assert "Unable to render" not in text
        paths = page.locator(".opblock-summary-path").all_text_contents()
        for path in ("/v1/generate", "/v1/models", "/v1/interpolate", "/ping", "/invocations"):
            assert any(p.replace("\u200b", "") == path for p in paths), (path, paths)
    finally:
        page.close()
    assert not errors, errors
    assert not external, external  # Swagger UI and the document come from the server itself
