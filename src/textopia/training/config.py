"""Experiment configs: dataclasses filled from a TOML file and ``--set key=value`` overrides."""

from __future__ import annotations

import ast
import dataclasses

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from textopia.data.batching import ExampleConfig
from textopia.errors import TextopiaError


@dataclass
class DataConfig(ExampleConfig):
    """Where the prepared data is and how prompts become examples."""

    dir: str = "data/prepared"  # output of `textopia prepare` (train/valid/test.txt, tokenizer.json)
    train_limit: int | None = None  # use only the first N training prompts (quick runs)
    valid_limit: int | None = 2000  # prompts of the valid split scored at each periodic evaluation
    critic_samples: str | None = None  # a critic's data: a folder of train.jsonl and valid.jsonl (writer samples)


@dataclass
class TrainConfig:
    """The training loop's settings."""

    out_dir: str = "runs/default"  # the checkpoint directory (written atomically)
    batch_size: int = 64  # examples per micro-batch per process
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3  # peak learning rate (AdamW)
    min_lr_ratio: float = 0.1  # final LR as a share of the peak
    warmup_steps: int = 200  # linear warmup, optimizer steps
    max_steps: int = 2000  # optimizer steps in all
    weight_decay: float = 0.1  # AdamW decoupled weight decay (not on biases, norms, embeddings)
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global gradient norm; 0 disables
    precision: str = "auto"  # "auto", "fp32", "bf16", "fp16"; auto: bf16 only where it is fast
    eval_every: int = 500  # optimizer steps between validations; 0 disables
    save_every: int = 500  # optimizer steps between checkpoints; 0: only at the end
    log_every: int = 20  # optimizer steps between metric lines
    seed: int = 0
    max_minutes: float | None = None  # stop (and save) after this much wall-clock time


@dataclass
class ExperimentConfig:
    """Everything a training run needs; saved inside every checkpoint."""

    model: dict[str, Any] = field(default_factory=lambda: {"kind": "gpt"})
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _fill(cls, values: dict[str, Any], section: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise TextopiaError(f"unknown [{section}] settings: {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    return cls(**values)


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> ExperimentConfig:
    """Read a TOML config and apply ``section.key=value`` overrides.

    Raises:
        TextopiaError: the file is missing or invalid, or a key is unknown.
    """
    raw: dict[str, Any] = {"model": {}, "data": {}, "train": {}}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise TextopiaError(f"config not found: {p}")
        try:
            loaded = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise TextopiaError(f"invalid TOML in {p}: {e}") from None
        for section, values in loaded.items():
            if section not in raw or not isinstance(values, dict):
                raise TextopiaError(f"{p}: unknown section [{section}] (model, data, train)")
            raw[section].update(values)
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or section not in raw:
            raise TextopiaError(f"--set expects section.key=value (model, data, train), got {item!r}")
        raw[section][name] = _parse_value(value)
    raw["model"].setdefault("kind", "gpt")
    return ExperimentConfig(
        model=raw["model"],
        data=_fill(DataConfig, raw["data"], "data"),
        train=_fill(TrainConfig, raw["train"], "train"),
    )
