"""Shared fixtures: a 2,000-prompt sample of the real corpus, a prepared data dir, a tiny model."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TEXTOPIA_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "data" / "sd-discord-2022" / "prompts.txt.gz"
#: In CI (``CI`` set, as CI services do, or ``TEXTOPIA_REQUIRE_SHARED=1``) the shared data must be
#: there: a test skipped for want of it fails instead, so a run without ../shared cannot read green.
REQUIRE_SHARED = (os.environ.get("CI", "").lower() not in ("", "0", "false")
                  or os.environ.get("TEXTOPIA_REQUIRE_SHARED") == "1")
_SHARED_MISSING = "shared data not found"


def shared_missing(path: Path) -> str:
    """The skip reason for a test that needs ``path`` under ../shared (a failure in CI: :data:`REQUIRE_SHARED`)."""
    return f"{_SHARED_MISSING}: {path} (set TEXTOPIA_SHARED to its folder)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With :data:`REQUIRE_SHARED`, a skip for missing shared data (:func:`shared_missing`) is a failure."""
    report = (yield).get_result()
    if REQUIRE_SHARED and report.skipped and isinstance(report.longrepr, tuple) \
            and str(report.longrepr[2]).startswith(f"Skipped: {_SHARED_MISSING}"):
        report.outcome = "failed"
        report.longrepr = (f"{report.longrepr[2][len('Skipped: '):]}; required here "
                           f"(CI or TEXTOPIA_REQUIRE_SHARED=1 is set)")

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tiny_overrides(data_dir: Path, out_dir: Path, **extra) -> list[str]:
    """``--set`` overrides for a tiny GPT trained in seconds."""
    values = {
        "model.n_positions": 128, "model.n_embd": 32, "model.n_layer": 1, "model.n_head": 2,
        "model.dropout": 0.0, "data.dir": str(data_dir), "data.max_length": 128, "data.valid_limit": 50,
        "train.out_dir": str(out_dir), "train.batch_size": 16, "train.lr": 3e-3, "train.warmup_steps": 5,
        "train.max_steps": 30, "train.eval_every": 15, "train.save_every": 15, "train.log_every": 5,
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory) -> Path:
    """The first 2,000 prompts of the real corpus, gzipped, as a user's file."""
    if not CORPUS.is_file():
        pytest.skip(shared_missing(CORPUS))
    path = tmp_path_factory.mktemp("corpus") / "sample.txt.gz"
    with gzip.open(CORPUS, "rt", encoding="utf-8") as src, gzip.open(path, "wt", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i >= 2000:
                break
            dst.write(line)
    return path


@pytest.fixture(scope="session")
def prepared(sample_corpus, tmp_path_factory) -> Path:
    """``textopia prepare`` on the sample: splits plus a 1,000-token BPE."""
    from textopia.cli import main

    out = tmp_path_factory.mktemp("prepared") / "data"
    assert main(["prepare", str(sample_corpus), "--out", str(out), "--vocab-size", "1000",
                 "--valid-fraction", "0.05", "--test-fraction", "0.05"]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(prepared, tmp_path_factory) -> Path:
    """A tiny GPT trained for 30 steps on the sample."""
    from textopia.training.config import load_config
    from textopia.training.trainer import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(load_config(None, tiny_overrides(prepared, out)), progress=False)
    return out


@pytest.fixture(scope="session")
def tokenizer(prepared):
    from textopia.data.tokenizer import PromptTokenizer

    return PromptTokenizer.from_dir(prepared)


def tiny_lstm_overrides(data_dir: Path, out_dir: Path, **extra) -> list[str]:
    """``--set`` overrides for a tiny LSTM LM: :func:`tiny_overrides` with LSTM sizes."""
    values = {"model.kind": "lstm", "model.n_embd": 32, "model.n_hidden": 48, "model.n_layer": 1, **extra}
    return [o for o in tiny_overrides(data_dir, out_dir, **values) if not o.startswith("model.n_head=")]


@pytest.fixture(scope="session")
def tiny_lstm_checkpoint(prepared, tmp_path_factory) -> Path:
    """A tiny LSTM LM (tied embeddings through a 48->32 projection) trained for 30 steps on the sample."""
    from textopia.training.config import load_config
    from textopia.training.trainer import train

    out = tmp_path_factory.mktemp("runs") / "tiny-lstm"
    train(load_config(None, tiny_lstm_overrides(prepared, out)), progress=False)
    return out


def tiny_vae_overrides(data_dir: Path, out_dir: Path, **extra) -> list[str]:
    """``--set`` overrides for a tiny text VAE: :func:`tiny_overrides` with VAE sizes and losses."""
    values = {"model.kind": "vae", "model.n_embd": 32, "model.n_hidden": 48, "model.n_hidden_enc": 16,
              "model.latent_dim": 8, "model.free_bits": 0.1, "model.lambda_div": 10.0, "model.word_dropout": 0.2,
              "model.kl_schedule": "cyclical", "model.kl_anneal_steps": 20, **extra}
    return [o for o in tiny_overrides(data_dir, out_dir, **values) if not o.startswith("model.n_head=")]


@pytest.fixture(scope="session")
def tiny_vae_checkpoint(prepared, tmp_path_factory) -> Path:
    """A tiny text VAE (8-d latent, free bits, MMD, word dropout, cyclical KL) trained for 30 steps."""
    from textopia.training.config import load_config
    from textopia.training.trainer import train

    out = tmp_path_factory.mktemp("tiny-vae")
    train(load_config(None, tiny_vae_overrides(prepared, out)), progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_diffusion_checkpoint(prepared, tiny_vae_checkpoint, tmp_path_factory) -> Path:
    """A tiny latent diffusion model over :func:`tiny_vae_checkpoint`, trained for 30 steps."""
    from textopia.training.config import load_config
    from textopia.training.trainer import train

    out = tmp_path_factory.mktemp("tiny-diffusion")
    overrides = ["model.kind=latent-diffusion", f"model.vae_checkpoint={tiny_vae_checkpoint}", "model.n_hidden=32",
                 "model.n_blocks=2", "model.idea_hidden=32", "model.time_dim=16", f"data.dir={prepared}",
                 "data.train_limit=300", "data.valid_limit=20", "data.max_length=128", f"train.out_dir={out}",
                 "train.max_steps=30", "train.batch_size=32", "train.eval_every=15", "train.save_every=0",
                 "train.log_every=10", "train.warmup_steps=2"]
    train(load_config(None, overrides), progress=False)
    return out
