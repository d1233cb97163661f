"""The model registry: every built-in family by name (its config dataclass, builder and role).

Adding a model family touches one place: its own file calls :func:`~textopia.models.spec.register`,
and :func:`_register_builtin` names its module. The families import only :mod:`textopia.models.spec`,
never this module, so the registry sits above them. Nothing else in Textopia switches on model names.
"""

from __future__ import annotations

from typing import Any

from textopia.models.spec import (  # noqa: F401  (re-exported: the registry's public names)
    SIZE_BOUNDS,
    CausalLM,
    LatentAutoencoder,
    LatentDiffusionModel,
    ModelSpec,
    Role,
    check_sizes,
    config_for,
    lookup,
    register,
    registered,
)


def _register_builtin() -> None:
    # Importing a family's module registers it (imported on first use: most of them import torch).
    from textopia.models import critic, gpt, latent_diffusion, lstm_lm, prompt_ae, text_vae  # noqa: F401


def get_spec(kind: str) -> ModelSpec:
    """The spec of a model family.

    Raises:
        TextopiaError: unknown kind (the known ones are listed).
    """
    _register_builtin()
    return lookup(kind)


def known_kinds() -> list[str]:
    _register_builtin()
    return registered()


def make_config(kind: str, values: dict[str, Any]):
    """Fill the family's config dataclass from a dict (a TOML table); unknown keys are errors.

    Raises:
        TextopiaError: unknown kind or settings, or a size out of :data:`SIZE_BOUNDS`.
    """
    _register_builtin()
    return config_for(kind, values)
