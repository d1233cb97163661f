"""The JSON API through TestClient, with fake generators: answers, bounds, and errors as JSON."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from textopia.generation.base import TextopiaError
from tests.fakes import FakeGenerator, FakeLatentGenerator
from textopia.serving.schemas import MAX_IDEA_CHARS, MAX_N, MAX_NEW_TOKENS


def test_generate_returns_prompts_with_counts_and_timing(client: TestClient) -> None:
    r = client.post("/v1/generate", json={"idea": "  a lighthouse   in a storm ", "n": 3, "seed": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "fake" and body["kind"] == "gpt"
    assert body["seed"] == 7 and body["idea"] == "a lighthouse in a storm"
    assert len(body["prompts"]) == 3
    for p in body["prompts"]:
        assert p["prompt"].startswith("a lighthouse in a storm")
        assert p["num_tokens"] > 0
        assert p["clip_tokens"] == len(p["prompt"].split())  # the test's stand-in counter
        assert isinstance(p["finished"], bool)
    timing = body["timing"]
    assert 0 <= timing["queue_s"] <= timing["total_s"] and timing["generate_s"] >= 0


def test_same_seed_same_prompts_and_random_seed_is_reported(client: TestClient) -> None:
    a = client.post("/v1/generate", json={"idea": "cat", "seed": 3}).json()
    b = client.post("/v1/generate", json={"idea": "cat", "seed": 3}).json()
    assert [p["prompt"] for p in a["prompts"]] == [p["prompt"] for p in b["prompts"]]
    c = client.post("/v1/generate", json={"idea": "cat"}).json()
    d = client.post("/v1/generate", json={"idea": "cat", "seed": c["seed"]}).json()
    assert [p["prompt"] for p in c["prompts"]] == [p["prompt"] for p in d["prompts"]]


def test_settings_reach_the_generator(client: TestClient, fake: FakeGenerator) -> None:
    body = {
        "idea": "x", "mode": "continue", "n": 2, "temperature": 0.7, "top_p": 0.8, "top_k": 40,
        "repetition_penalty": 1.3, "max_new_tokens": 5, "seed": 1,
        "banned_words": [" Greg  Rutkowski ", "artstation", "ARTSTATION", ""][:3],
        "safe_mode": False,
    }
    assert client.post("/v1/generate", json=body).status_code == 200
    call = fake.calls[-1]
    assert call["mode"] == "continue" and call["n"] == 2 and call["top_k"] == 40
    assert call["temperature"] == 0.7 and call["top_p"] == 0.8 and call["repetition_penalty"] == 1.3
    assert call["max_new_tokens"] == 5 and call["min_new_tokens"] == 5  # never above the cap
    assert call["banned_words"] == ("Greg Rutkowski", "artstation")  # cleaned, deduplicated


@pytest.mark.parametrize(("setting", "own", "asked", "too_high"), [
    ("temperature", 0.7, 1.1, 2.5),
    ("repetition_penalty", 1.4, 1.0, 2.5),
])
def test_a_left_out_decoding_setting_is_the_models_own(app_factory: Any, setting, own, asked, too_high) -> None:
    from textopia.generation.base import GenerationConfig

    class Own(FakeGenerator):
        default_decoding = GenerationConfig(**{setting: own})

    mine, plain = Own(name="mine"), FakeGenerator(name="plain")
    with TestClient(app_factory({"mine": mine, "plain": plain})) as c:
        for gen, want in ((mine, own), (plain, getattr(GenerationConfig(), setting))):
            assert c.post("/v1/generate", json={"idea": "x", "model": gen.name, "seed": 1}).status_code == 200
            assert gen.calls[-1][setting] == want
        body = {"idea": "x", "model": "mine", setting: asked}
        assert c.post("/v1/generate", json=body).status_code == 200
        assert mine.calls[-1][setting] == asked
        assert c.post("/v1/generate", json={**body, setting: too_high}).status_code == 422
        listed = {m["name"]: m["default_temperature"] for m in c.get("/v1/models").json()["models"]}
        assert listed == {"mine": mine.default_decoding.temperature, "plain": GenerationConfig().temperature}


def test_safe_mode_bans_nsfw_words_and_drops_what_slips_through(app_factory: Any) -> None:
    class Leaky(FakeGenerator):
        def generate(self, idea, n=4, **kwargs):
            out = super().generate(idea, n, **kwargs)
            out[0].prompt = "a NUDE figure, oil painting"
            return out

    leaky = Leaky()
    with TestClient(app_factory({"leaky": leaky})) as c:
        safe = c.post("/v1/generate", json={"idea": "figure", "n": 3, "seed": 1}).json()
        assert safe["dropped"] == 1 and len(safe["prompts"]) == 2
        assert "nude" in leaky.calls[-1]["banned_words"]
        unsafe = c.post(
            "/v1/generate", json={"idea": "figure", "n": 3, "seed": 1, "safe_mode": False}
        ).json()
        assert unsafe["dropped"] == 0 and len(unsafe["prompts"]) == 3
        assert "nude" not in leaky.calls[-1]["banned_words"]


def test_banned_words_are_dropped_even_if_the_generator_ignores_them(app_factory: Any) -> None:
    class Deaf(FakeGenerator):
        def generate(self, idea, n=4, **kwargs):
            return super().generate(idea, n, **{**kwargs, "banned_words": ()})

    with TestClient(app_factory({"deaf": Deaf()})) as c:
        body = c.post(
            "/v1/generate", json={"idea": "castle", "n": 8, "seed": 2, "banned_words": ["4k", "concept art"]}
        ).json()
    for p in body["prompts"]:
        assert not re.search(r"\b4k\b|concept art", p["prompt"], re.I)
    assert len(body["prompts"]) + body["dropped"] == 8


@pytest.mark.parametrize(
    "body",
    [
        {"idea": "x" * (MAX_IDEA_CHARS + 1)},
        {"n": 0},
        {"n": MAX_N + 1},
        {"max_new_tokens": MAX_NEW_TOKENS + 1},
        {"temperature": 0},
        {"top_p": 1.5},
        {"top_k": -1},
        {"seed": -1},
        {"mode": "rewrite"},
        {"banned_words": ["w"] * 65},
        {"banned_words": [""]},
        {"idea": 5},
        {"nonsense": 1},
        {"candidates": 0},
        {"candidates": 65},
        {"idea_prefix": 1.5},
    ],
)
def test_out_of_bounds_requests_are_422_json(client: TestClient, body: dict) -> None:
    r = client.post("/v1/generate", json=body)
    assert r.status_code == 422
    data = r.json()
    assert data["error"].startswith("invalid request: ") and data["details"]
    assert "Traceback" not in r.text


def test_malformed_json_is_422(client: TestClient) -> None:
    r = client.post("/v1/generate", content=b'{"idea": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "error" in r.json()


def test_unknown_model_is_404(client: TestClient) -> None:
    r = client.post("/v1/generate", json={"idea": "x", "model": "nope"})
    assert r.status_code == 404
    assert "nope" in r.json()["error"] and "fake" in r.json()["error"]


def test_textopia_error_is_422_with_its_message(app_factory: Any) -> None:
    app = app_factory({"bad": FakeGenerator(fail_with=TextopiaError("idea is all special tokens"))})
    with TestClient(app) as c:
        r = c.post("/v1/generate", json={"idea": "x"})
    assert r.status_code == 422 and r.json() == {"error": "idea is all special tokens"}


def test_unexpected_error_is_500_without_traceback(
    app_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_factory({"broken": FakeGenerator(fail_with=RuntimeError("CUDA secret detail"))})
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/generate", json={"idea": "x"})
    assert r.status_code == 500
    assert "error" in r.json() and "secret" not in r.text and "Traceback" not in r.text
    assert "CUDA secret detail" in caplog.text  # logged on the server


def test_body_size_is_capped(app_factory: Any) -> None:
    with TestClient(app_factory(max_body_bytes=1024)) as c:
        big = {"idea": "x", "banned_words": ["word"] * 300}
        r = c.post("/v1/generate", json=big)
        assert r.status_code == 413 and "1024 bytes" in r.json()["error"]

        def chunks():  # no Content-Length: the limit applies while reading
            for _ in range(20):
                yield b" " * 100

        r = c.post("/v1/generate", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "error" in r.json()


def test_invocations_is_generate(client: TestClient) -> None:
    body = {"idea": "a red fox", "n": 2, "seed": 11}
    a = client.post("/invocations", json=body)
    b = client.post("/v1/generate", json=body)
    assert a.status_code == 200
    assert [p["prompt"] for p in a.json()["prompts"]] == [p["prompt"] for p in b.json()["prompts"]]


def test_models_lists_kind_size_and_default(client: TestClient) -> None:
    data = client.get("/v1/models").json()
    assert data["default"] == "fake"
    by_name = {m["name"]: m for m in data["models"]}
    assert by_name["fake"]["kind"] == "gpt" and by_name["fake"]["parameters"] == 1234
    assert by_name["fake"]["default"] and not by_name["fake"]["latent"]
    assert by_name["fake-vae"]["latent"] and by_name["fake-vae"]["kind"] == "vae"


def test_health_readiness_and_sagemaker_ping(client: TestClient) -> None:
    # health and readiness list the same models once they are loaded
    assert client.get("/healthz").json() == {"status": "ok", "models": ["fake", "fake-vae"]}
    assert client.get("/readyz").json()["models"] == ["fake", "fake-vae"]
    r = client.get("/ping")
    assert r.status_code == 200 and r.json()["status"] == "ready"


def test_not_ready_before_models_load(app_factory: Any) -> None:
    app = app_factory()
    app.state.textopia.store = None  # as while the lifespan handler is still loading
    c = TestClient(app)
    assert c.get("/healthz").json() == {"status": "ok", "models": []}  # alive, nothing loaded yet
    for path in ("/readyz", "/ping"):
        r = c.get(path)
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
    r = c.post("/invocations", json={"idea": "x"})
    assert r.status_code == 503 and "loading" in r.json()["error"]


def test_unknown_path_and_method_are_json(client: TestClient) -> None:
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    r = client.get("/v1/generate")
    assert r.status_code == 405 and "error" in r.json()


def test_interpolate_and_variations(client: TestClient) -> None:
    r = client.post("/v1/interpolate", json={"prompt_a": "a b c d", "prompt_b": "w x y z", "steps": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "fake-vae" and len(body["prompts"]) == 5
    assert body["prompts"][0] == "a b c d" and body["prompts"][-1] == "w x y z"
    r = client.post("/v1/variations", json={"prompt": "a castle", "n": 3, "seed": 1})
    assert r.status_code == 200 and len(r.json()["prompts"]) == 3


def test_reconstruct(app_factory: Any) -> None:
    vae = FakeLatentGenerator()
    with TestClient(app_factory({"vae": vae, "fake": FakeGenerator()})) as c:
        r = c.post("/v1/reconstruct", json={"prompt": "a  castle on a hill "})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == "vae" and body["prompts"] == ["a castle on a hill"] and body["timing"]["total_s"] >= 0
        assert vae.refine_steps_asked == [None]  # unset: the model's own default
        assert c.post("/v1/reconstruct", json={"prompt": "a nude statue"}).json()["prompts"] == ["a *** statue"]
        r = c.post("/v1/reconstruct", json={"prompt": "a nude statue", "safe_mode": False, "refine_steps": 5})
        assert r.json()["prompts"] == ["a nude statue"] and vae.refine_steps_asked[-1] == 5
        for bad in ({"prompt": ""}, {"prompt": "x" * 501}, {"prompt": ["a castle"]}, {"prompts": ["a castle"]},
                    {"prompt": "a", "refine_steps": 201}, {"prompt": "a", "refine_steps": -1}):
            r = c.post("/v1/reconstruct", json=bad)
            assert r.status_code == 422 and "error" in r.json(), (bad, r.text)
        r = c.post("/v1/reconstruct", json={"prompt": "a", "model": "fake"})
        assert r.status_code == 400 and "no latent space" in r.json()["error"]
        models = {m["name"]: m for m in c.get("/v1/models").json()["models"]}
        assert models["vae"]["default_spread"] == 0.7 and models["fake"]["default_spread"] is None


def test_latent_views_pass_on_the_refinement_steps(app_factory: Any) -> None:
    vae = FakeLatentGenerator()
    with TestClient(app_factory({"vae": vae})) as c:
        assert c.post("/v1/interpolate", json={"prompt_a": "a", "prompt_b": "b", "refine_steps": 0}).status_code == 200
        assert c.post("/v1/variations", json={"prompt": "a", "n": 2, "refine_steps": 40}).status_code == 200
        assert c.post("/v1/variations", json={"prompt": "a", "n": 2}).status_code == 200
        for bad in (-1, 201, 2.5, "30"):
            r = c.post("/v1/variations", json={"prompt": "a", "refine_steps": bad})
            assert r.status_code == 422 and "refine_steps" in r.text, (bad, r.text)
    assert vae.refine_steps_asked == [0, 40, None]  # unset: the model's own default


def test_variations_pass_on_a_vaes_spread_and_latent_diffusions_strength(app_factory: Any) -> None:
    vae = FakeLatentGenerator()
    with TestClient(app_factory({"vae": vae})) as c:
        for body in ({"spread": 2.5}, {"strength": 0.3}, {}):
            assert c.post("/v1/variations", json={"prompt": "a", "n": 1, **body}).status_code == 200
        for bad in ({"strength": 1.5}, {"strength": -0.1}, {"spread": 21}):
            r = c.post("/v1/variations", json={"prompt": "a", **bad})
            assert r.status_code == 422 and next(iter(bad)) in r.text, (bad, r.text)
    assert vae.variations_asked == [(2.5, None), (None, 0.3), (None, None)]


def test_latent_views_need_a_latent_model(app_factory: Any, client: TestClient) -> None:
    r = client.post("/v1/interpolate", json={"prompt_a": "a", "prompt_b": "b", "model": "fake"})
    assert r.status_code == 400 and "no latent space" in r.json()["error"]
    with TestClient(app_factory({"only-gpt": FakeGenerator()})) as c:
        r = c.post("/v1/variations", json={"prompt": "a castle"})
    assert r.status_code == 404 and "VAE" in r.json()["error"]


def test_latent_safe_mode_masks_interpolation_and_drops_variations(app_factory: Any) -> None:
    class NsfwVae(FakeLatentGenerator):
        def interpolate(self, a, b, steps=8, *, refine_steps=None):
            return ["a nude statue"] * steps

        def variations(self, prompt, n=8, *, spread=0.5, strength=None, seed=None, refine_steps=None):
            return ["a naked man", "a calm lake"][:n]

    with TestClient(app_factory({"vae": NsfwVae()})) as c:
        r = c.post("/v1/interpolate", json={"prompt_a": "a", "prompt_b": "b", "steps": 2}).json()
        assert r["prompts"] == ["a *** statue", "a *** statue"]
        r = c.post("/v1/variations", json={"prompt": "x", "n": 2}).json()
        assert r["prompts"] == ["a calm lake"] and r["dropped"] == 1


def test_openapi_documents_the_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/v1/generate", "/v1/models", "/v1/interpolate", "/v1/variations",
                 "/healthz", "/readyz", "/ping", "/invocations"):
        assert path in spec["paths"], path
    n = spec["components"]["schemas"]["GenerateRequest"]["properties"]["n"]
    assert n["minimum"] == 1 and n["maximum"] == MAX_N
    assert client.get("/docs").status_code == 200


def test_continue_with_an_empty_idea_writes_from_nothing(client: TestClient, fake: FakeGenerator) -> None:
    r = client.post("/v1/generate", json={"idea": "   ", "mode": "continue", "n": 1})
    assert r.status_code == 200 and r.json()["mode"] == "expand"
    assert fake.calls[-1]["idea"] is None and fake.calls[-1]["mode"] == "expand"


def test_page_is_served_with_no_external_assets(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for element in ('id="idea"', 'id="model"', 'id="temperature"', 'id="top_p"', 'id="n"',
                    'id="banned"', 'id="known"', 'id="generate"', 'id="results"', 'id="interpolate"'):
        assert element in r.text
    for path in ("/", "/static/app.js", "/static/app.css"):
        text = client.get(path).text
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path


def test_docs_work_offline_when_swagger_ui_bundle_is_installed(client: TestClient) -> None:
    pytest.importorskip("swagger_ui_bundle", reason="pip install swagger-ui-bundle")
    html = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in html and "cdn.jsdelivr" not in html
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_the_docs_page_loads_a_document_its_swagger_ui_reads(client: TestClient) -> None:
    """Without a browser: the document /docs loads is valid OpenAPI 3.0, the only 3.x that the
    bundled Swagger UI (4.x) renders, with every operation of /openapi.json (which stays 3.1)."""
    bundle = pytest.importorskip("swagger_ui_bundle", reason="pip install swagger-ui-bundle")
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    from schemathesis.specs.openapi.definitions import OPENAPI_30

    swagger_ui = re.search(r"swagger-ui-(\d+)\.", str(bundle.swagger_ui_path))
    assert swagger_ui and int(swagger_ui.group(1)) < 5  # 5.x reads 3.1: this rewrite would not be needed
    url = re.search(r"url: '([^']+)'", client.get("/docs").text).group(1)
    document = client.get(url).json()
    assert re.fullmatch(r"3\.0\.\d+", document["openapi"])  # Swagger UI 4's own test of the version
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}"[:200]
              for e in jsonschema_rs.Draft4Validator(OPENAPI_30).iter_errors(document)]
    assert not errors, errors
    published = client.get("/openapi.json").json()
    assert published["openapi"].startswith("3.1")
    assert {p: set(ops) for p, ops in document["paths"].items()} == {p: set(ops) for p, ops in published["paths"].items()}
    fields = document["components"]["schemas"]["GenerateRequest"]["properties"]
    assert fields["temperature"]["nullable"] and fields["temperature"]["minimum"] == 0.05
    assert fields["n"]["maximum"] == MAX_N and fields["idea"]["example"] == "a lighthouse in a storm"


def test_openapi_30_rewrites_what_3_1_has_and_3_0_lacks() -> None:
    from textopia.serving.openapi30 import openapi_30

    schema = {
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"$ref": "#/components/schemas/B"}, {"type": "null"}], "description": "a B or null"},
            "b": {"type": ["integer", "null"], "exclusiveMinimum": 0, "exclusiveMaximum": 10},
            "c": {"const": "x", "examples": ["x"]},
            "d": {"items": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}},
        },
    }
    document = {"openapi": "3.1.0", "info": {"title": "t", "summary": "s", "version": "1"},
                "paths": {"/x": {"post": {"requestBody": {"content": {"application/json": {"schema": schema}}},
                                          "responses": {"200": {"description": "ok"}}}}},
                "components": {"schemas": {"B": schema}}}
    out = openapi_30(document)
    assert document["openapi"] == "3.1.0" and "summary" in document["info"]  # left as it was
    assert out["openapi"] == "3.0.3" and out["info"] == {"title": "t", "description": "s", "version": "1"}
    for converted in (out["components"]["schemas"]["B"],
                      out["paths"]["/x"]["post"]["requestBody"]["content"]["application/json"]["schema"]):
        a, b, c, d = (converted["properties"][k] for k in "abcd")
        assert a == {"allOf": [{"$ref": "#/components/schemas/B"}], "nullable": True, "description": "a B or null"}
        assert b == {"type": "integer", "nullable": True, "minimum": 0, "exclusiveMinimum": True,
                     "maximum": 10, "exclusiveMaximum": True}
        assert c == {"enum": ["x"], "example": "x"}
        assert d["items"] == {"anyOf": [{"type": "string"}, {"type": "integer"}], "nullable": True}


def test_guidance_reaches_a_diffusion_model_and_is_refused_by_others(app_factory: Any,
                                                                     tiny_diffusion_checkpoint) -> None:
    from textopia.generation.loader import load

    app = app_factory(generators={"default": FakeGenerator(), "diffusion": load(tiny_diffusion_checkpoint)})
    with TestClient(app) as client:
        r = client.post("/v1/generate", json={"idea": "castle", "n": 1, "seed": 0, "max_new_tokens": 6,
                                              "model": "diffusion", "guidance": 2.0, "steps": 3})
        assert r.status_code == 200, r.text
        r = client.post("/v1/generate", json={"idea": "castle", "n": 1, "guidance": 2.0})
        assert r.status_code == 409 and "latent diffusion" in r.text
        r = client.post("/v1/generate", json={"idea": "castle", "n": 1, "steps": 0, "model": "diffusion"})
        assert r.status_code == 422
        # Shallow fusion's weight: 0 (the decoder alone) reaches the model; a GPT refuses it; out of
        # bounds is a 422.
        r = client.post("/v1/generate", json={"idea": "castle", "n": 1, "seed": 0, "max_new_tokens": 6,
                                              "model": "diffusion", "steps": 3, "lm_weight": 0})
        assert r.status_code == 200, r.text
        r = client.post("/v1/generate", json={"idea": "castle", "n": 1, "lm_weight": 1.0})
        assert r.status_code == 409 and "lm_weight" in r.text
        r = client.post("/v1/generate", json={"idea": "castle", "n": 1, "lm_weight": 5, "model": "diffusion"})
        assert r.status_code == 422


def test_known_words_only_reaches_the_model_and_models_show_its_default(app_factory: Any,
                                                                        tiny_diffusion_checkpoint) -> None:
    from textopia.generation.loader import load

    app = app_factory(generators={"default": FakeGenerator(), "diffusion": load(tiny_diffusion_checkpoint)})
    with TestClient(app) as client:
        models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
        assert models["diffusion"]["default_known_words_only"] is True
        assert models["default"]["default_known_words_only"] is False
        for value in (False, True):
            r = client.post("/v1/generate", json={"idea": "castle", "n": 1, "seed": 0, "max_new_tokens": 6,
                                                  "model": "diffusion", "steps": 3, "known_words_only": value})
            assert r.status_code == 200, r.text
        r = client.post("/v1/generate", json={"idea": "castle", "n": 1, "known_words_only": "yes"})
        assert r.status_code == 422 and "known_words_only" in r.text


def test_n_times_candidates_over_the_rows_of_one_call_is_a_conflict(client: TestClient) -> None:
    """Each within its bound, together over MAX_ROWS: 409 naming both, as the Python API and the CLI
    refuse it (tests/test_settings_agree.py), before any model runs; one row fewer is written."""
    from textopia.generation.config import MAX_ROWS

    r = client.post("/v1/generate", json={"idea": "castle", "n": 64, "candidates": 64})
    assert r.status_code == 409 and f"n x candidates must be at most {MAX_ROWS}" in r.json()["error"]
    assert client.post("/v1/generate", json={"idea": "castle", "n": 64, "candidates": MAX_ROWS // 64}).status_code == 200
    lines = json.dumps({"idea": "castle", "n": 64, "candidates": 9}) + "\n" + json.dumps({"idea": "castle"}) + "\n"
    r = client.post("/invocations", content=lines, headers={"Content-Type": "application/jsonlines"})
    answers = [json.loads(line) for line in r.text.splitlines()]
    assert answers[0]["status"] == 409 and "prompts" in answers[1]
