"""Checkpoint directories: one format for every model family, written atomically.

Layout::

    config.json          the model's config; Textopia's settings under "textopia":
                         {"kind", "model", "data", "train", "tokenizer", "version"}
    model.safetensors    the weights
    tokenizer.json       the tokenizer (+ tokenizer_config.json, special_tokens_map.json)
    trainer_state.json   optional: step, data position, RNG states, optimizer hyperparameters
    optimizer.safetensors  optional: the optimizer's tensors
    metrics.jsonl        optional: the training log

Never pickles: weights and optimizer tensors are safetensors, the rest JSON.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textopia.data.tokenizer import PromptTokenizer
from textopia.generation.base import TextopiaError
from textopia.io import atomic_dir
from textopia.models.registry import get_spec, make_config

logger = logging.getLogger(__name__)

CONFIG = "config.json"
WEIGHTS = "model.safetensors"


def save_checkpoint(
    directory: str | Path,
    model,
    tokenizer: PromptTokenizer,
    meta: dict[str, Any],
    write_extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (complete or not at all).

    Args:
        directory: where to write; an existing checkpoint there is replaced on success.
        model: the (unwrapped) model.
        tokenizer: its tokenizer.
        meta: Textopia's settings; must hold ``kind`` and ``model`` (the config as a dict).
        write_extra: called with the temporary directory to add files (trainer state, metrics).
    """
    spec = get_spec(meta["kind"])
    with atomic_dir(directory) as tmp:
        if spec.save is not None:
            spec.save(model, tmp)
        else:
            from safetensors.torch import save_model

            save_model(model, str(tmp / WEIGHTS))
        config_path = tmp / CONFIG
        config = json.loads(config_path.read_text()) if config_path.exists() else {}
        config["textopia"] = meta
        config_path.write_text(json.dumps(config, indent=2) + "\n")
        tokenizer.save(tmp)
        if write_extra is not None:
            write_extra(tmp)
    return Path(directory)


def read_meta(directory: str | Path) -> dict[str, Any]:
    """Textopia's settings from a checkpoint's ``config.json``.

    Raises:
        TextopiaError: the directory or its config is missing or corrupt.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise TextopiaError(f"checkpoint directory not found: {directory}")
    path = directory / CONFIG
    if not path.is_file():
        raise TextopiaError(f"missing file in checkpoint: {path}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        meta = config["textopia"]
        meta["kind"]
    except (ValueError, KeyError, TypeError) as e:
        raise TextopiaError(f"corrupt checkpoint config {path}: {e!r}") from None
    return meta


def load_checkpoint(directory: str | Path):
    """Load ``(model, tokenizer, meta)`` from a checkpoint directory; the model is in eval mode.

    Raises:
        TextopiaError: a file is missing or corrupt (the file is named).
    """
    directory = Path(directory)
    meta = read_meta(directory)
    spec = get_spec(meta["kind"])
    config = make_config(meta["kind"], meta.get("model", {}))
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise TextopiaError(f"missing file in checkpoint: {weights}")
    tokenizer = PromptTokenizer.from_dir(directory)
    try:
        if spec.load is not None:
            model = spec.load(directory, config)
        else:
            from safetensors.torch import load_model

            model = spec.build(config, tokenizer)
            load_model(model, str(weights), strict=True)
    except TextopiaError:
        raise
    except Exception as e:
        raise TextopiaError(f"corrupt or incompatible weights {weights}: {e}") from None
    model.eval()
    return model, tokenizer, meta


def export_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy a checkpoint without its trainer state (for shipping): config, weights, tokenizer, known words."""
    model, tokenizer, meta = load_checkpoint(src)
    src = Path(src)

    def copy_extras(tmp: Path) -> None:
        for name in ("metrics.jsonl", "known_words.txt"):  # the training log; the reranker's known words
            if (src / name).is_file():
                (tmp / name).write_bytes((src / name).read_bytes())

    return save_checkpoint(dst, model, tokenizer, meta, write_extra=copy_extras)
