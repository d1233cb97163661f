"""The model registry: a model family's name maps to its config dataclass and its builder.

Adding a model family touches one place: its own file calls :func:`register`. Nothing else in
Textopia switches on model names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from textopia.generation.base import TextopiaError


@dataclass(frozen=True)
class ModelSpec:
    """How to build, save and load one model family.

    Attributes:
        name: the registry name ("gpt", "lstm", ...), saved as ``kind`` in every checkpoint.
        config_cls: the family's config dataclass.
        build: ``build(config, tokenizer) -> torch.nn.Module``, a fresh (or pretrained) model.
        load: ``load(directory, config) -> torch.nn.Module`` from a checkpoint directory, or None
            for the default (build, then load ``model.safetensors`` strictly).
        save: ``save(model, directory)`` writing the weights, or None for the default
            (``model.safetensors`` through ``safetensors.torch.save_model``).
        generator: which Generator serves it ("decoder": decoder-only LMs; "vae": the text VAE).
        validate: ``validate(model, tokenizer, prompts, *, max_length, batch_size, device) ->
            dict`` of figures logged at each periodic validation, or None for the exact CE of a
            decoder-only LM.
        trainer: which training loop fits it: "tokens" (the shared loop over tokenised examples)
            or "latents" (the latent diffusion loop over a frozen VAE's latents).
    """

    name: str
    config_cls: type
    build: Callable[[Any, Any], Any]
    load: Callable[[Any, Any], Any] | None = None
    save: Callable[[Any, Any], None] | None = None
    generator: str = "decoder"
    validate: Callable[..., dict[str, Any]] | None = None
    trainer: str = "tokens"


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model family; a name registers once."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"model kind {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_builtin() -> None:
    # Importing the family modules registers them.
    from textopia.models import gpt, latent_diffusion, lstm_lm, text_vae  # noqa: F401


def get_spec(kind: str) -> ModelSpec:
    """The spec of a model family.

    Raises:
        TextopiaError: unknown kind (the known ones are listed).
    """
    _ensure_builtin()
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise TextopiaError(f"unknown model kind {kind!r} (known: {', '.join(sorted(_REGISTRY))})") from None


def known_kinds() -> list[str]:
    _ensure_builtin()
    return sorted(_REGISTRY)


def make_config(kind: str, values: dict[str, Any]):
    """Fill the family's config dataclass from a dict (a TOML table); unknown keys are errors."""
    spec = get_spec(kind)
    names = {f.name for f in fields(spec.config_cls)}
    unknown = sorted(set(values) - names - {"kind"})
    if unknown:
        raise TextopiaError(f"unknown {kind} model settings: {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    return spec.config_cls(**{k: v for k, v in values.items() if k != "kind"})
