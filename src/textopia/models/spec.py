"""What a model family is and the table families register into: a family's name maps to its
config dataclass, its builder and its role.

Each family's own module calls :func:`register` when imported; this module imports none of them
(:mod:`textopia.models.registry` does, for the layers above). Nothing in Textopia switches on
model names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from textopia.bounds import MAX_POSITIONS
from textopia.errors import TextopiaError


class Role:
    """What a family's model is, for the layers above: generation and training key their own
    classes (a Generator, a training task) by these classes, never by a family's name."""


class CausalLM(Role):
    """A decoder-only language model: logits of each next token, trained on tokenised examples."""


class LatentAutoencoder(Role):
    """An encoder to a Gaussian posterior over latents and a decoder that writes from a latent (the
    text VAE, the prompt autoencoder); trained on tokenised examples."""


class LatentDiffusionModel(Role):
    """A diffusion model over a frozen latent autoencoder's latents, trained on those latents."""


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
        role: what the model is (a :class:`Role` subclass): the Generator that serves it and
            the training task that trains it follow from it.
        validate: ``validate(model, tokenizer, prompts, *, max_length, batch_size, device) ->
            dict`` of figures logged at each periodic validation, or None for the exact CE of a
            decoder-only LM.
    """

    name: str
    config_cls: type
    build: Callable[[Any, Any], Any]
    load: Callable[[Any, Any], Any] | None = None
    save: Callable[[Any, Any], None] | None = None
    role: type[Role] = CausalLM
    validate: Callable[..., dict[str, Any]] | None = None


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model family; a name registers once."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"model kind {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def lookup(kind: str) -> ModelSpec:
    """The spec of a family already registered (imported); see :func:`textopia.models.registry.get_spec`
    for any built-in family.

    Raises:
        TextopiaError: unknown kind (the registered ones are listed).
    """
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise TextopiaError(f"unknown model kind {kind!r} (known: {', '.join(sorted(_REGISTRY))})") from None


def registered() -> list[str]:
    """The names of the families registered so far."""
    return sorted(_REGISTRY)


#: The largest value each size setting may take, whatever the family (a checkpoint's config.json
#: is untrusted input: these are checked before a single tensor is allocated). Layers and blocks
#: are counts; widths are units; vocabulary sizes are tokens; positions are tokens.
SIZE_BOUNDS: dict[str, int] = {
    # layers
    "n_layer": 256, "num_hidden_layers": 256, "n_blocks": 256, "n_layer_enc": 256,
    # widths
    "n_embd": 32_768, "hidden_size": 32_768, "n_hidden": 32_768, "n_hidden_enc": 32_768,
    "idea_hidden": 32_768, "time_dim": 32_768, "latent_dim": 32_768, "n_inner": 131_072,
    "intermediate_size": 131_072, "n_head": 1_024, "latent_width": 32_768,
    "n_latents": 4_096, "num_attention_heads": 1_024,
    # vocabulary
    "vocab_size": 1_048_576,
    # positions
    "n_positions": MAX_POSITIONS, "max_position_embeddings": MAX_POSITIONS, "n_ctx": MAX_POSITIONS,
    "max_idea_tokens": MAX_POSITIONS,
    "num_train_timesteps": 100_000,
}
#: Settings that may also be None (transformers' "default" marker).
_NULLABLE = {"n_inner", "intermediate_size"}


def check_sizes(values: Mapping[str, Any], where: str = "model config", _depth: int = 0) -> None:
    """Check every size setting in ``values`` (and in tables nested in it) against :data:`SIZE_BOUNDS`.

    Args:
        values: a model config as a dict (a TOML table, or a checkpoint's ``config.json``).
        where: named in the error (the file or table).

    Raises:
        TextopiaError: a size is not an integer, or is below 1 or above its bound (one line,
            naming the setting, its value and the bound).
    """
    for key, value in values.items():
        if isinstance(value, Mapping) and _depth < 3:
            check_sizes(value, where, _depth + 1)
            continue
        bound = SIZE_BOUNDS.get(key)
        if bound is None or (value is None and key in _NULLABLE):
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            shown = repr(value)
            shown = shown if len(shown) <= 40 else shown[:40] + "..."
            raise TextopiaError(f"{where}: {key} must be an integer, got {shown}")
        if not 1 <= value <= bound:
            raise TextopiaError(f"{where}: {key} = {value} is out of bounds (1 to {bound:,})")


def config_for(kind: str, values: dict[str, Any]):
    """Fill a registered family's config dataclass from a dict (a TOML table); unknown keys are errors.

    Raises:
        TextopiaError: unknown kind or settings, or a size out of :data:`SIZE_BOUNDS`.
    """
    spec = lookup(kind)
    if not isinstance(values, Mapping):
        raise TextopiaError(f"the {kind} model settings must be a table, got {type(values).__name__}")
    check_sizes(values, f"{kind} model settings")
    names = {f.name for f in fields(spec.config_cls)}
    unknown = sorted(set(values) - names - {"kind"})
    if unknown:
        raise TextopiaError(f"unknown {kind} model settings: {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    return spec.config_cls(**{k: v for k, v in values.items() if k != "kind"})
