"""SageMaker's training-job contract: ``textopia train --sagemaker`` (the image's ``train``,
:mod:`textopia.sagemaker`).

A training job, as SageMaker lays it out (every path under ``TEXTOPIA_SAGEMAKER_ROOT``, ``/`` by
default, so that a test can lay the same tree out in a temporary folder)::

    /opt/ml/input/config/hyperparameters.json   {"config": "configs/gpt-small.toml",
                                                 "train.max_steps": "5000", ...}  ──▶ --set
    /opt/ml/input/data/train/                   the output of ``textopia prepare`` (SM_CHANNEL_TRAIN)
    /opt/ml/input/data/<channel>/               other channels, named by "channel:<name>" values
    /opt/ml/checkpoints/run/                    train.out_dir: a checkpoint SageMaker syncs to S3,
                                                so a managed spot job resumes from it
    /opt/ml/model/                              the exported model (SM_MODEL_DIR), packed by
                                                SageMaker into model.tar.gz
    /opt/ml/output/failure                      why the job failed, one line (training jobs)
    /opt/ml/output/message                      why the job failed, one line (processing jobs)

Hyperparameters arrive as strings; a key ``section.key`` becomes ``--set section.key=value``,
``config`` names the TOML file (a path in the image, or ``channel:<name>/<file>``), and the keys
the SageMaker Python SDK adds (``sagemaker_*``) are ignored.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from textopia.errors import TextopiaError

logger = logging.getLogger(__name__)

ROOT_ENV = "TEXTOPIA_SAGEMAKER_ROOT"
CHECKPOINT_SUBDIR = "run"  # the trainer replaces its out_dir atomically; SageMaker's folder stays put
MAX_FAILURE_CHARS = 1024  # SageMaker keeps the first 1 KB of the failure reason


@dataclass(frozen=True)
class SageMakerPaths:
    """Where SageMaker puts a job's inputs and collects its outputs.

    Attributes:
        root: the folder ``/opt/ml`` hangs from: ``/`` in a job, a temporary folder in tests.
        model_dir: the model SageMaker uploads (``SM_MODEL_DIR`` if set).
        channel_dirs: channels whose folder an ``SM_CHANNEL_<NAME>`` variable names, by lowercase name.
    """

    root: Path
    model_dir: Path
    channel_dirs: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SageMakerPaths:
        """The paths for this process: ``TEXTOPIA_SAGEMAKER_ROOT`` (default ``/``) and ``SM_*``."""
        env = os.environ if environ is None else environ
        root = Path(env.get(ROOT_ENV) or "/")
        model_dir = Path(env["SM_MODEL_DIR"]) if env.get("SM_MODEL_DIR") else root / "opt/ml/model"
        channels = {k[len("SM_CHANNEL_"):].lower(): Path(v) for k, v in env.items()
                    if k.startswith("SM_CHANNEL_") and v}
        return cls(root=root, model_dir=model_dir, channel_dirs=channels)

    @property
    def ml(self) -> Path:
        return self.root / "opt" / "ml"

    @property
    def hyperparameters(self) -> Path:
        return self.ml / "input" / "config" / "hyperparameters.json"

    @property
    def checkpoints(self) -> Path:
        return self.ml / "checkpoints"

    @property
    def failure(self) -> Path:
        return self.ml / "output" / "failure"

    @property
    def message(self) -> Path:
        return self.ml / "output" / "message"

    def channel(self, name: str) -> Path:
        """The folder of input channel ``name``: ``SM_CHANNEL_<NAME>`` if set, else the standard one.

        Raises:
            TextopiaError: the channel's folder does not exist (the job was not given it).
        """
        path = self.channel_dirs.get(name.lower().replace("-", "_"), self.ml / "input" / "data" / name)
        if not path.is_dir():
            raise TextopiaError(f"input channel {name!r} not found at {path}: give the job a channel "
                                f"of that name (InputDataConfig)")
        return path


def read_hyperparameters(paths: SageMakerPaths) -> dict[str, str]:
    """The job's hyperparameters as strings; ``{}`` when the job has none.

    Raises:
        TextopiaError: the file is not a JSON object.
    """
    if not paths.hyperparameters.is_file():
        return {}
    try:
        values = json.loads(paths.hyperparameters.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TextopiaError(f"{paths.hyperparameters} is not valid JSON: {e}") from None
    if not isinstance(values, dict):
        raise TextopiaError(f"{paths.hyperparameters} must hold a JSON object of hyperparameters")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def _unquote(raw: str) -> str:
    """The SageMaker Python SDK sends string hyperparameters JSON-encoded (``'"gpt"'``)."""
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            return str(json.loads(raw))
        except json.JSONDecodeError:
            return raw
    return raw


def _resolve(value: str, paths: SageMakerPaths) -> str:
    """``channel:<name>[/<sub/path>]`` to that path inside the channel's folder; anything else as is."""
    if not value.startswith("channel:"):
        return value
    name, _, rest = value[len("channel:"):].partition("/")
    path = paths.channel(name)
    return str(path / rest) if rest else str(path)


def training_arguments(
    paths: SageMakerPaths, hyperparameters: dict[str, str], config: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> tuple[str | None, list[str]]:
    """The TOML config and the ``--set`` overrides of a training job.

    ``config`` and ``overrides`` (the command line's, if any) come first; the hyperparameters
    override them. ``data.dir`` is the ``train`` channel unless a setting names another folder;
    ``train.out_dir`` is always ``/opt/ml/checkpoints/run``, what spot training resumes from.

    Returns:
        ``(config path or None, ["section.key=value", ...])``.

    Raises:
        TextopiaError: a hyperparameter's key is not ``config`` or ``section.key``, it sets
            ``train.out_dir``, or it names a channel the job does not have; no ``data.dir`` and
            no ``train`` channel.
    """
    overrides = list(overrides)
    for key, raw in hyperparameters.items():
        if key.startswith("sagemaker_"):
            continue
        value = _resolve(_unquote(raw), paths)
        if key == "config":
            config = value
        elif key.partition(".")[0] in ("model", "data", "train") and "." in key:
            if key == "train.out_dir":
                raise TextopiaError("hyperparameter train.out_dir cannot be set in a SageMaker job: checkpoints "
                                    "go to /opt/ml/checkpoints (CheckpointConfig), the model to /opt/ml/model")
            overrides.append(f"{key}={value}")
        else:
            raise TextopiaError(f"unknown hyperparameter {key!r}: use 'config' or section.key with a section of "
                                f"model, data, train (e.g. train.max_steps)")
    if not any(o.startswith("data.dir=") for o in overrides):
        overrides.insert(0, f"data.dir={paths.channel('train')}")
    overrides.append(f"train.out_dir={paths.checkpoints / CHECKPOINT_SUBDIR}")
    return config, overrides


def export_model(checkpoint: Path, model_dir: Path) -> Path:
    """Export ``checkpoint`` (without trainer state) into ``model_dir``, file by file.

    ``model_dir`` may be a mount point, so it is filled, never replaced: the export is written
    in a hidden folder inside it, then each file is renamed into place.
    """
    from textopia.models.checkpoint import export_checkpoint

    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / ".textopia-export"
    shutil.rmtree(staging, ignore_errors=True)
    export_checkpoint(checkpoint, staging)
    for item in staging.iterdir():
        target = model_dir / item.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    staging.rmdir()
    return model_dir


def write_failure(path: Path, message: str) -> None:
    """Write a failure reason (its first 1 KB is what SageMaker shows) where SageMaker reads it."""
    from textopia.io import atomic_write_text

    try:
        atomic_write_text(path, message[:MAX_FAILURE_CHARS] + "\n")
    except OSError:  # never hide the real error behind a failure to report it
        logger.exception("could not write the failure reason to %s", path)


def describe_failure(exc: BaseException) -> str:
    """One line: a TextopiaError's message, or the type and message of anything else."""
    if isinstance(exc, TextopiaError):
        return " ".join(str(exc).split())
    return " ".join(f"internal error: {type(exc).__name__}: {exc}".split())


def run_training_job(
    paths: SageMakerPaths | None = None, *, config: str | None = None,
    overrides: list[str] | tuple[str, ...] = (), progress: bool = False,
) -> Path:
    """Run a SageMaker training job: train (resuming from ``/opt/ml/checkpoints`` when a
    checkpoint is there) and export the model to ``SM_MODEL_DIR``.

    Args:
        paths: the job's folders; from the environment when None.
        config, overrides: a TOML config and ``section.key=value`` settings that the job's
            hyperparameters override (``textopia train --sagemaker --config ... --set ...``).
        progress: show a progress bar (off in a job: its log is a file, not a terminal).

    On any failure the reason goes to ``/opt/ml/output/failure`` and the exception is re-raised.

    Returns:
        the model directory.

    Raises:
        TextopiaError: bad hyperparameters, a missing channel, unusable data (before training).
    """
    from textopia.training.config import load_config
    from textopia.training.state import STATE_FILE
    from textopia.training.trainer import train

    paths = paths or SageMakerPaths.from_env()
    try:
        config_path, settings = training_arguments(paths, read_hyperparameters(paths), config, overrides)
        experiment = load_config(config_path, settings)
        out_dir = Path(experiment.train.out_dir)
        resuming = (out_dir / STATE_FILE).is_file()
        logger.info("SageMaker training job: config %s, settings %s, %s", config_path, settings,
                    f"resuming from {out_dir}" if resuming else "starting afresh")
        checkpoint = train(experiment, resume=True, progress=progress)
        return export_model(checkpoint, paths.model_dir)
    except BaseException as exc:
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            write_failure(paths.failure, describe_failure(exc))
        raise
