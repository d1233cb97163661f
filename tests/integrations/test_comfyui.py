"""Textopia's ComfyUI nodes, called as ComfyUI calls them (without ComfyUI): inputs built from
``INPUT_TYPES``' defaults, ``getattr(node, node.FUNCTION)(**inputs)``, outputs checked against
``RETURN_TYPES`` and ``OUTPUT_IS_LIST``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.fakes import FakeGenerator, FakeLatentGenerator
from textopia.bounds import MAX_SEED
from textopia.generation.config import MAX_PROMPTS
from textopia.integrations import cache
from textopia.integrations.comfyui import (
    NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS,
    IdeaToPrompts,
    PromptVariations,
    latent_models,
)
from textopia.safety import NSFW_WORDS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "comfyui_textopia"
#: The types ComfyUI's widgets take (a list is a combo: one of its choices).
WIDGET_TYPES = {"STRING", "INT", "FLOAT", "BOOLEAN"}


def comfy_inputs(node_class: type, **changes) -> dict:
    """The keywords ComfyUI passes a node left at its defaults (a combo: its default, else its
    first choice), with ``changes`` applied."""
    inputs = {}
    for section in ("required", "optional"):
        for name, spec in node_class.INPUT_TYPES().get(section, {}).items():
            kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
            inputs[name] = options.get("default", kind[0] if isinstance(kind, list) else None)
    return {**inputs, **changes}


def run_node(node_class: type, **changes) -> tuple:
    """Run a node as ComfyUI does and check its outputs against what it declares."""
    node = node_class()
    out = getattr(node, node.FUNCTION)(**comfy_inputs(node_class, **changes))
    assert isinstance(out, tuple) and len(out) == len(node.RETURN_TYPES)
    for value, kind, is_list in zip(out, node.RETURN_TYPES, node.OUTPUT_IS_LIST):
        assert kind == "STRING"
        items = value if is_list else [value]
        assert isinstance(value, list) == is_list
        assert items and all(isinstance(item, str) and item.strip() for item in items)
    return out


@pytest.fixture
def fake_models(monkeypatch):
    """The fakes as loaded models named "fake" and "fake-vae" (the nodes' cache holds them)."""
    models = {"fake": FakeGenerator(), "fake-vae": FakeLatentGenerator()}
    for name, model in models.items():
        monkeypatch.setitem(cache._models, name, model)
    return models


@pytest.mark.parametrize("node_class", list(NODE_CLASS_MAPPINGS.values()))
def test_nodes_declare_what_comfyui_reads(node_class):
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == set(NODE_CLASS_MAPPINGS)
    assert callable(getattr(node_class, node_class.FUNCTION))
    assert node_class.CATEGORY == "Textopia"
    assert len(node_class.RETURN_TYPES) == len(node_class.RETURN_NAMES) == len(node_class.OUTPUT_IS_LIST)
    spec = node_class.INPUT_TYPES()
    assert set(spec) == {"required", "optional"}
    for name, (kind, *rest) in {**spec["required"], **spec["optional"]}.items():
        options = rest[0] if rest else {}
        if isinstance(kind, list):
            assert kind and options.get("default", kind[0]) in kind, name
            continue
        assert kind in WIDGET_TYPES, name
        default = options["default"]
        assert isinstance(default, {"STRING": str, "INT": int, "FLOAT": float, "BOOLEAN": bool}[kind]), name
        assert options.get("min", default) <= default <= options.get("max", default), name


def test_inputs_take_textopias_bounds_and_names():
    idea, variations = IdeaToPrompts.INPUT_TYPES()["required"], PromptVariations.INPUT_TYPES()["required"]
    assert idea["n"][1]["max"] == MAX_PROMPTS and variations["n"][1]["max"] == MAX_PROMPTS
    assert idea["seed"][1]["max"] == variations["seed"][1]["max"] == MAX_SEED
    assert "default" in idea["model"][0] and idea["model"][1]["default"] == "default"
    assert variations["model"][0] == latent_models() and "default" not in latent_models()
    assert {"latent", "vae"} <= set(latent_models())


def test_the_pack_folder_reexports_the_nodes_and_has_registry_metadata(monkeypatch):
    spec = importlib.util.spec_from_file_location("comfyui_textopia", PACK / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "comfyui_textopia", module)
    spec.loader.exec_module(module)
    assert module.NODE_CLASS_MAPPINGS is NODE_CLASS_MAPPINGS
    assert module.NODE_DISPLAY_NAME_MAPPINGS is NODE_DISPLAY_NAME_MAPPINGS
    meta = tomllib.loads((PACK / "pyproject.toml").read_text(encoding="utf-8"))
    assert {"PublisherId", "DisplayName", "Icon"} <= set(meta["tool"]["comfy"])
    assert meta["project"]["name"] and meta["project"]["version"] and "textopia" in meta["project"]["dependencies"]


def test_idea_to_prompts_with_the_default_model():
    (prompts,) = run_node(IdeaToPrompts, idea="a castle on a hill", n=3, seed=7)
    assert len(prompts) == 3 and all("castle" in p for p in prompts)
    assert run_node(IdeaToPrompts, idea="a castle on a hill", n=3, seed=7) == (prompts,)  # seeded
    assert cache.cached_model("default") is cache.cached_model("default")  # loaded once


def test_prompt_variations_as_comfyui_calls_them(fake_models):
    (prompts,) = run_node(PromptVariations, model="fake-vae", prompt="a castle, oil painting", n=5, seed=3)
    assert 1 <= len(prompts) <= 5


def test_settings_reach_the_model(fake_models):
    run_node(IdeaToPrompts, model="fake", n=2, seed=11, temperature=0.7, safe_mode=False, banned_words="moon, sun")
    call = fake_models["fake"].calls[-1]
    assert (call["n"], call["seed"], call["temperature"]) == (2, 11, 0.7)
    assert call["banned_words"] == ("moon", "sun")
    run_node(IdeaToPrompts, model="fake", temperature=0.0, safe_mode=True)
    call = fake_models["fake"].calls[-1]
    assert call["temperature"] == FakeGenerator.default_decoding.temperature  # 0: the model's own
    assert set(NSFW_WORDS) <= set(call["banned_words"])


class _Undressing(FakeLatentGenerator):
    """Variations of which every other one holds an NSFW word."""

    def variations(self, prompt, n=8, *, spread=None, seed=None, refine_steps=None):
        return [f"{prompt}, {'nude' if i % 2 else 'clothed'} {i}" for i in range(n)]


def test_safe_mode_drops_prompts_with_an_nsfw_word(monkeypatch):
    monkeypatch.setitem(cache._models, "undressing", _Undressing())
    (kept,) = run_node(PromptVariations, model="undressing", prompt="a statue", n=4, safe_mode=True)
    assert kept == ["a statue, clothed 0", "a statue, clothed 2"]
    (everything,) = run_node(PromptVariations, model="undressing", prompt="a statue", n=4, safe_mode=False)
    assert len(everything) == 4
    with pytest.raises(ValueError, match="every prompt written"):
        run_node(PromptVariations, model="undressing", prompt="a nude statue", n=2, safe_mode=True)


@pytest.mark.parametrize(("node_class", "changes", "message"), [
    (IdeaToPrompts, {"idea": "  "}, "idea must be a non-empty text"),
    (IdeaToPrompts, {"n": 0}, f"n must be an integer from 1 to {MAX_PROMPTS}"),
    (IdeaToPrompts, {"n": MAX_PROMPTS + 1}, f"n must be an integer from 1 to {MAX_PROMPTS}"),
    (IdeaToPrompts, {"seed": -1}, "seed must be an integer from 0 to 18,446,744,073,709,551,615"),
    (IdeaToPrompts, {"seed": MAX_SEED + 1}, "seed must be an integer from 0 to 18,446,744,073,709,551,615"),
    (IdeaToPrompts, {"temperature": -0.5}, "temperature must be a number in [0.05, 2]"),
    (IdeaToPrompts, {"model": "no-such-model"}, "unknown model 'no-such-model'"),
    (PromptVariations, {"prompt": ""}, "prompt must be a non-empty text"),
    (PromptVariations, {"n": MAX_PROMPTS + 1}, f"n must be an integer from 1 to {MAX_PROMPTS}"),
    (PromptVariations, {"model": "fake"}, "has no latent space"),
])
def test_bad_inputs_raise_one_line_value_errors(fake_models, node_class, changes, message):
    with pytest.raises(ValueError) as caught:
        run_node(node_class, **changes)
    assert message in str(caught.value) and "\n" not in str(caught.value)
