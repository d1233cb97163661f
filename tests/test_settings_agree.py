"""Every setting's bound is declared once (textopia.generation.config), and the Python API, the CLI
and the HTTP API refuse the same values: this walks the three and compares them with the config."""

from __future__ import annotations

import dataclasses
import math

import pytest

from textopia.cli import build_parser, main
from textopia.generation.config import CALL_BOUNDS, GenerationConfig, bound_of, describe
from textopia.generation.base import TextopiaError

pytest.importorskip("fastapi")
from textopia.serving.schemas import GenerateRequest, InterpolateRequest, VariationsRequest  # noqa: E402

# Where each setting is written: its CLI option of `textopia generate` (None: not an option there)
# and its field in the HTTP API's request bodies.
CLI = {"temperature": "--temperature", "top_p": "--top-p", "top_k": "--top-k",
       "repetition_penalty": "--repetition-penalty", "max_new_tokens": "--max-new-tokens", "min_p": "--min-p",
       "idea_boost": "--idea-boost", "candidates": "--candidates", "idea_prefix": "--idea-prefix",
       "seed": "--seed", "n": "-n", "guidance": "--guidance", "steps": "--steps", "lm_weight": "--lm-weight"}
# The options of `textopia variations`: a VAE's spread and latent diffusion's SDEdit strength.
VARIATIONS_CLI = {"spread": "--spread", "strength": "--strength"}
API = {"temperature": (GenerateRequest, "temperature"), "top_p": (GenerateRequest, "top_p"),
       "top_k": (GenerateRequest, "top_k"), "repetition_penalty": (GenerateRequest, "repetition_penalty"),
       "max_new_tokens": (GenerateRequest, "max_new_tokens"), "min_p": (GenerateRequest, "min_p"),
       "idea_boost": (GenerateRequest, "idea_boost"), "candidates": (GenerateRequest, "candidates"),
       "idea_prefix": (GenerateRequest, "idea_prefix"), "n": (GenerateRequest, "n"),
       "guidance": (GenerateRequest, "guidance"), "steps": (GenerateRequest, "steps"),
       "lm_weight": (GenerateRequest, "lm_weight"), "spread": (VariationsRequest, "spread"),
       "strength": (VariationsRequest, "strength"),
       "refine_steps": (VariationsRequest, "refine_steps"), "points": (InterpolateRequest, "steps")}
NUMERIC = [f.name for f in dataclasses.fields(GenerationConfig)
           if bound_of(f.name)[1].low is not None or bound_of(f.name)[1].high is not None] + list(CALL_BOUNDS)


def _outside(name: str) -> list[float]:
    """Values just outside the setting's bound, on each side it has."""
    kind, bound = bound_of(name)
    step = 1 if kind is int else 0.5
    out = []
    if bound.low is not None:
        out.append(bound.low if bound.low_open else bound.low - step)
    if bound.high is not None:
        out.append(bound.high if bound.high_open else bound.high + step)
    return out


def _schema_bound(model, field: str) -> tuple[float | None, float | None]:
    prop = model.model_json_schema()["properties"][field]
    for s in [prop, *prop.get("anyOf", [])]:
        low = s.get("minimum", s.get("exclusiveMinimum"))
        high = s.get("maximum", s.get("exclusiveMaximum"))
        if low is not None or high is not None:
            return low, high
    return None, None


def test_every_numeric_setting_is_written_somewhere():
    assert {"temperature", "top_p", "n", "candidates", "guidance", "spread", "strength", "points"} <= set(NUMERIC)
    assert set(API) <= set(NUMERIC) and set(CLI) <= set(NUMERIC) and set(VARIATIONS_CLI) <= set(NUMERIC)


@pytest.mark.parametrize("name", sorted(API))
def test_the_http_api_holds_the_configs_bound(name):
    _, bound = bound_of(name)
    low, high = _schema_bound(*API[name])
    assert low == bound.low
    assert high == bound.high


def test_the_service_takes_seeds_that_json_holds_exactly():
    """The one narrower bound, on purpose: a JSON reader holds integers exactly up to 2**53."""
    from textopia.bounds import DRAWN_SEEDS

    _, bound = bound_of("seed")
    assert _schema_bound(GenerateRequest, "seed") == (0, DRAWN_SEEDS - 1) and DRAWN_SEEDS - 1 < bound.high


# Each command's options whose bounds the config declares: generate's settings, and variations'
# VAE spread and latent diffusion SDEdit strength.
CLI_OPTIONS = ([("generate", name, option) for name, option in sorted(CLI.items())]
               + [("variations", name, option) for name, option in sorted(VARIATIONS_CLI.items())])


@pytest.mark.parametrize("command, name, option", CLI_OPTIONS)
def test_the_cli_states_and_refuses_the_configs_bound(command, name, option, tmp_path, capsys):
    helps = {opt: action.help for action in build_parser()._subparsers._group_actions[0].choices[command]._actions
             for opt in action.option_strings}
    assert describe(name) in helps[option]
    for value in _outside(name):
        text = str(int(value)) if bound_of(name)[0] is int else str(value)
        # The model does not exist: the setting is refused before it is looked for.
        assert main([command, "x", "--model", str(tmp_path / "no-model"), option, text]) == 2
        err = capsys.readouterr().err.strip()
        assert f"must be {describe(name)}" in err and "no-model" not in err, err


def test_spread_and_strength_are_two_bounds():
    """A VAE's spread scales the posterior's std (no upper end near 1); latent diffusion's strength
    is a share of the noise schedule, in [0, 1]."""
    assert bound_of("strength")[1].low == 0 and bound_of("strength")[1].high == 1
    assert bound_of("spread")[1].high > 1


@pytest.mark.parametrize("name", [n for n in NUMERIC if n not in CALL_BOUNDS])
def test_the_python_api_refuses_outside_the_bound_and_takes_its_ends(name):
    kind, bound = bound_of(name)
    for value in _outside(name):
        with pytest.raises(TextopiaError, match=f"^{name} must be"):
            GenerationConfig(**{name: kind(value)}).validate()
    for end, open_ in ((bound.low, bound.low_open), (bound.high, bound.high_open)):
        if end is not None and not open_ and math.isfinite(end):
            GenerationConfig(**{name: kind(end)}).validate()


def test_the_latent_commands_help_names_what_runs():
    """reconstruct, interpolate and variations run on any latent model (the latent pair too)."""
    helps = {a.dest: a.help for a in build_parser()._subparsers._group_actions[0]._choices_actions}
    for name in ("reconstruct", "interpolate", "variations"):
        assert "(latent models)" in helps[name] and "VAE" not in helps[name]


def test_one_round_of_a_call_is_bounded_in_rows(tiny_checkpoint, tmp_path, capsys):
    """n x candidates is bounded (MAX_ROWS) where each alone is within its bound: the Python API and
    the CLI (before the model loads) refuse alike; n = 64 at the default candidates passes."""
    import textopia
    from textopia.generation.config import MAX_ROWS

    gen = textopia.load(str(tiny_checkpoint))
    with pytest.raises(TextopiaError, match=f"n x candidates must be at most {MAX_ROWS}"):
        gen.generate("castle", n=64, candidates=64)
    assert main(["generate", "x", "--model", str(tmp_path / "no-model"), "-n", "64", "--candidates", "64"]) == 2
    assert f"n x --candidates must be at most {MAX_ROWS}" in capsys.readouterr().err
    assert len(gen.generate("castle", n=64, candidates=MAX_ROWS // 64, max_new_tokens=8, seed=0)) > 1
