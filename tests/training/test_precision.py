"""Every model family trains under bf16 autocast, whatever the CPU (precision forced, not "auto")."""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import tiny_lstm_overrides, tiny_overrides, tiny_vae_overrides


def _train_losses(overrides: list[str]) -> list[float]:
    from textopia.training.config import load_config
    from textopia.training.trainer import train

    out = train(load_config(None, overrides), progress=False)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in lines if r.get("split") == "train"]


@pytest.mark.parametrize("family", ["gpt", "lstm", "vae"])
def test_each_family_trains_in_bf16(family, prepared, tmp_path):
    make = {"gpt": tiny_overrides, "lstm": tiny_lstm_overrides, "vae": tiny_vae_overrides}[family]
    overrides = make(prepared, tmp_path / family, **{"train.precision": "bf16", "train.max_steps": 6,
                                                     "train.log_every": 2, "train.eval_every": 0,
                                                     "train.save_every": 0})
    losses = _train_losses(overrides)
    assert len(losses) == 3
    assert all(math.isfinite(v) for v in losses)


def test_latent_diffusion_trains_in_bf16(prepared, tiny_vae_checkpoint, tmp_path):
    out = tmp_path / "diffusion"
    overrides = ["model.kind=latent-diffusion", f"model.vae_checkpoint={tiny_vae_checkpoint}", "model.n_hidden=32",
                 "model.n_blocks=2", "model.idea_hidden=32", "model.time_dim=16", f"data.dir={prepared}",
                 "data.train_limit=100", "data.valid_limit=10", "data.max_length=128", f"train.out_dir={out}",
                 "train.max_steps=4", "train.batch_size=16", "train.eval_every=0", "train.save_every=0",
                 "train.log_every=2", "train.warmup_steps=1", "train.precision=bf16"]
    losses = _train_losses(overrides)
    assert losses and all(math.isfinite(v) for v in losses)
