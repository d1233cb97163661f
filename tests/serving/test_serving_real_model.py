"""The service end to end with a real (tiny) checkpoint loaded through ``textopia.load``.

Uses the shared ``tiny_checkpoint`` fixture (a 1-layer GPT trained for 30 steps on a sample of
the corpus), so it exercises the real lifespan loading, the real Generator, and decoding with
the service's settings and banned words. Skipped when the shared corpus is missing (a failure in CI).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from textopia.serving.app import create_app
from textopia.serving.settings import ServingSettings

pytestmark = pytest.mark.slow


def test_real_checkpoint_through_the_api(tiny_checkpoint: Path) -> None:
    settings = ServingSettings(
        load_default=False, load_latent=False, models=[str(tiny_checkpoint)], sagemaker_model_dir=Path("/nonexistent"),
        clip_tokens=False,
    )
    with TestClient(create_app(settings)) as c:
        models = c.get("/v1/models").json()
        assert models["default"] == tiny_checkpoint.name
        info = models["models"][0]
        assert info["kind"] == "gpt" and info["parameters"] > 0 and not info["latent"]

        body = {"idea": "portrait of a woman", "n": 3, "seed": 5, "max_new_tokens": 24,
                "banned_words": ["portrait"]}
        r = c.post("/v1/generate", json=body)
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["model"] == tiny_checkpoint.name and data["seed"] == 5
        assert 1 <= len(data["prompts"]) + data["dropped"] <= 3
        for p in data["prompts"]:
            assert "portrait" not in p["prompt"].lower().split()
            assert 1 <= p["num_tokens"] <= 24
        again = c.post("/invocations", json=body).json()
        assert [p["prompt"] for p in again["prompts"]] == [p["prompt"] for p in data["prompts"]]

        r = c.post("/v1/generate", json={"idea": "", "mode": "continue", "n": 1, "max_new_tokens": 1})
        assert r.status_code in (200, 422), r.text  # never a 5xx
        r = c.post("/v1/interpolate", json={"prompt_a": "a", "prompt_b": "b"})
        assert r.status_code == 404  # a GPT has no latent space
