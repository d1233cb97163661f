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

from textopia.bounds import MAX_STEPS, bounded, check_fields, check_out_path
from textopia.data.batching import ExampleConfig
from textopia.errors import TextopiaError
from textopia.models.registry import make_config


@dataclass
class DataConfig(ExampleConfig):
    """Where the prepared data is and how prompts become examples."""

    dir: str = "data/prepared"  # output of `textopia prepare` (train/valid/test.txt, tokenizer.json)
    train_limit: int | None = bounded(None, 1)  # use only the first N training prompts (quick runs)
    valid_limit: int | None = bounded(2000, 1)  # prompts of the valid split scored at each periodic evaluation
    critic_samples: str | None = None  # a critic's data: a folder of train.jsonl and valid.jsonl (writer samples)


@dataclass
class TrainConfig:
    """The training loop's settings."""

    out_dir: str = "runs/default"  # the checkpoint directory (written atomically)
    batch_size: int = bounded(64, 1, 65_536)  # examples per micro-batch per process
    grad_accum: int = bounded(1, 1, 4_096)  # micro-batches per optimizer step
    lr: float = bounded(1e-3, 0, 1, low_open=True)  # peak learning rate (AdamW)
    min_lr_ratio: float = bounded(0.1, 0, 1)  # final LR as a share of the peak
    warmup_steps: int = bounded(200, 0, MAX_STEPS)  # linear warmup, optimizer steps
    max_steps: int = bounded(2000, 1, MAX_STEPS)  # optimizer steps in all
    weight_decay: float = bounded(0.1, 0, 10)  # AdamW decoupled weight decay (not on biases, norms, embeddings)
    beta1: float = bounded(0.9, 0, 1, high_open=True)
    beta2: float = bounded(0.95, 0, 1, high_open=True)
    grad_clip: float = bounded(1.0, 0, 1e6)  # max global gradient norm; 0 disables
    precision: str = bounded("auto", choices=("auto", "fp32", "bf16", "fp16"))  # auto: bf16 only where it is fast
    eval_every: int = bounded(500, 0, MAX_STEPS)  # optimizer steps between validations; 0 disables
    save_every: int = bounded(500, 0, MAX_STEPS)  # optimizer steps between checkpoints; 0: only at the end
    log_every: int = bounded(20, 1, MAX_STEPS)  # optimizer steps between metric lines
    seed: int = bounded(0, 0, 2**32 - 1)  # numpy's seeds are 32-bit (accelerate's set_seed seeds numpy too)
    max_minutes: float | None = bounded(None, 0, 1e6, low_open=True)  # stop (and save) after this many minutes
    num_workers: int = bounded(0, 0, 64)  # data-loader worker processes; 0: examples are made in the training process

    def __post_init__(self) -> None:
        check_fields(self, "train")
        check_out_path(self.out_dir, "train.out_dir")


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
        pass
    try:
        return float(text)  # "nan", "inf": numbers, refused as such by the bounds
    except ValueError:
        return text


def _fill(cls, values: dict[str, Any], section: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise TextopiaError(f"unknown [{section}] settings: {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    return cls(**values)


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> ExperimentConfig:
    """Read a TOML config and apply ``section.key=value`` overrides; every setting is checked
    against its type and bound here, before any work.

    Raises:
        TextopiaError: the file is missing or invalid, a key is unknown, or a value is out of
            bounds (one line naming the key, the value and the bound).
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
    make_config(raw["model"]["kind"], raw["model"])  # the model's settings: checked, not kept
    return ExperimentConfig(
        model=raw["model"],
        data=_fill(DataConfig, raw["data"], "data"),
        train=_fill(TrainConfig, raw["train"], "train"),
    )
