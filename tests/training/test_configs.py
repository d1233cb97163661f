"""Every config the repository ships (configs/*.toml, named in the training recipes in docs/) still
loads: its sections and keys are known to today's dataclasses and its sizes within bounds."""

from pathlib import Path

import pytest

from textopia.models.registry import make_config
from textopia.training.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))


def test_the_repository_ships_configs():
    assert len(CONFIGS) >= 5


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads(path):
    config = load_config(path)
    model = make_config(config.model["kind"], config.model)  # raises on an unknown key or a size out of bounds
    assert type(model).__name__.endswith("Config")
    assert config.train.max_steps >= 1 and config.train.batch_size >= 1
    # A recipe's config says how it was run, for whoever reproduces it.
    assert "textopia train --config configs/" + path.name in path.read_text(encoding="utf-8") or path.name == "tiny.toml"
