"""A training run's state beside its weights: what ``--resume`` needs to go on as if never stopped.

::

    trainer_state.json     step, epoch, micro-batches done in the epoch, seconds trained, processes,
                           the open loss window (what the next train line averages), the
                           optimizer's hyperparameters
    optimizer.safetensors  the optimizer's tensors (AdamW's step counts and moments)
    rng_state.safetensors  every process's RNG streams, keys "RANK.STREAM": Python's, NumPy's,
                           torch's CPU generator and its CUDA generators

Every random draw of a training step comes from these streams (dropout, word dropout, a latent
autoencoder's posterior samples) or from generators seeded by (seed, epoch) or (seed, step) (the
data order, the ideas, the data loader's own generator, latent diffusion's batches), so a resumed
run draws what an uninterrupted one would, and ends with the same weights.

The three files are written together into the checkpoint being saved and read together.
Accelerate's ``save_state`` / ``load_state`` keep the same streams, but pickled (``torch.save``);
a checkpoint folder is read here without running code from it. Each file is checked when read: a
damaged one is one line naming it, before any training.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textopia.errors import TextopiaError
from textopia.io import json_safe
from textopia.models.checkpoint import check_finite, short_error

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng_state.safetensors"
#: What a damaged state file's message suggests.
_AFRESH = "train without --resume to start afresh"


@dataclass
class LossWindow:
    """The train log's open window: the sums that the next train line averages.

    Attributes:
        loss: the sum of the micro-batches' losses.
        batches: micro-batches summed.
        count: units (tokens or examples) in them, over all processes.
        terms: the sums of the objective's terms (a VAE's ``recon``, ``kl``, ...).
        seconds: training time in the window before this process took it over (from a checkpoint).
    """

    loss: float = 0.0
    batches: int = 0
    count: int = 0
    terms: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    opened: float = field(default_factory=time.monotonic, repr=False)  # time.monotonic() when this process took it

    def add(self, loss: float, count: int, terms: dict[str, float]) -> None:
        """Add one micro-batch: its loss, its units (over all processes) and its terms."""
        self.loss += loss
        self.batches += 1
        self.count += count
        for key, value in terms.items():
            self.terms[key] = self.terms.get(key, 0.0) + value

    def elapsed(self) -> float:
        """Training seconds since the window opened."""
        return self.seconds + time.monotonic() - self.opened

    def means(self) -> dict[str, float]:
        """The loss and each term averaged over the window's micro-batches."""
        n = max(self.batches, 1)
        return {"loss": self.loss / n, **{key: value / n for key, value in self.terms.items()}}

    def to_json(self) -> dict[str, Any]:
        return {"loss": self.loss, "batches": self.batches, "count": self.count,
                "terms": json_safe(self.terms), "seconds": self.elapsed()}

    @classmethod
    def from_json(cls, value: Any) -> LossWindow:
        """Raises: ValueError, TypeError, KeyError: ``value`` is not a window's JSON."""
        if not isinstance(value, dict) or not isinstance(value["terms"], dict):
            raise TypeError("the loss window must be an object with an object of terms")
        terms = {str(k): math.nan if v is None else _number(v, f"window term {k}") for k, v in value["terms"].items()}
        return cls(loss=_number(value["loss"], "window loss"), batches=_count(value["batches"], "window batches"),
                   count=_count(value["count"], "window count"), terms=terms,
                   seconds=_number(value["seconds"], "window seconds"))


@dataclass
class TrainingState:
    """Where a training run is, besides its weights, optimizer and RNG streams.

    Attributes:
        step: optimizer steps done.
        epoch: the pass over the data under way.
        batch_in_epoch: micro-batches of ``epoch`` done (None where a state file has none: the
            trainer then takes the step).
        elapsed_s: training seconds before this process.
        num_processes: the processes that trained it (each had its share of every batch).
        window: the train log's open window.
        optimizer: the optimizer's hyperparameters and scalars (as :func:`write_state` saves
            them), or None for a fresh run.
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int | None = 0
    elapsed_s: float = 0.0
    num_processes: int = 1
    window: LossWindow = field(default_factory=LossWindow)
    optimizer: dict[str, Any] | None = None


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a count, got {value!r}")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def read_state(directory: str | Path) -> TrainingState:
    """The :class:`TrainingState` in ``directory/trainer_state.json``, checked.

    Raises:
        TextopiaError: the file is missing, not JSON, or a field is missing or of the wrong type
            (one line naming the file).
    """
    path = Path(directory) / STATE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise TypeError("not a JSON object")
        optimizer = raw["optimizer"]
        if not isinstance(optimizer, dict) or not isinstance(optimizer["param_groups"], list):
            raise TypeError("optimizer must be an object with a list of param_groups")
        batch_in_epoch = raw.get("batch_in_epoch")
        state = TrainingState(
            step=_count(raw["step"], "step"), epoch=_count(raw.get("epoch", 0), "epoch"),
            batch_in_epoch=None if batch_in_epoch is None else _count(batch_in_epoch, "batch_in_epoch"),
            elapsed_s=_number(raw.get("elapsed_s", 0.0), "elapsed_s"),
            num_processes=_count(raw.get("num_processes", 1), "num_processes"),
            window=LossWindow.from_json(raw["window"]) if "window" in raw else LossWindow(),
            optimizer=optimizer,
        )
        if state.num_processes < 1:
            raise ValueError("num_processes must be at least 1")
    except FileNotFoundError:
        raise TextopiaError(f"missing file in checkpoint: {path} ({_AFRESH})") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise TextopiaError(f"damaged trainer state {path}: {short_error(e)} ({_AFRESH})") from None
    return state


def write_state(directory: Path, state: TrainingState, optimizer: torch.optim.Optimizer,
                streams: list[dict[str, torch.Tensor]]) -> None:
    """Write the three state files into ``directory`` (a checkpoint being saved).

    Args:
        state: the run's position; its ``optimizer`` field is ignored (taken from ``optimizer``).
        optimizer: the (unwrapped) optimizer.
        streams: each process's RNG streams (:func:`capture_rng`), in rank order.
    """
    from safetensors.torch import save_file

    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    save_file(tensors, str(directory / OPTIMIZER_FILE))
    save_file({f"{rank}.{name}": t for rank, own in enumerate(streams) for name, t in own.items()},
              str(directory / RNG_FILE))
    record = {"step": state.step, "epoch": state.epoch, "batch_in_epoch": state.batch_in_epoch,
              "elapsed_s": state.elapsed_s, "num_processes": state.num_processes, "window": state.window.to_json(),
              "optimizer": {"param_groups": sd["param_groups"], "scalars": scalars}}
    (directory / STATE_FILE).write_text(json.dumps(record, allow_nan=False) + "\n")


def _load_tensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's safetensors file ``path`` (``what`` names it in the error).

    Raises:
        TextopiaError: the file is missing or damaged (one line naming it).
    """
    from safetensors.torch import load_file

    if not path.is_file():
        raise TextopiaError(f"missing file in checkpoint: {path} ({_AFRESH})")
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - whatever a damaged file makes safetensors raise
        raise TextopiaError(f"damaged {what} {path}: {short_error(e)} ({_AFRESH})") from None


def load_optimizer(optimizer: torch.optim.Optimizer, directory: str | Path, state: TrainingState) -> None:
    """Restore ``optimizer`` from ``directory/optimizer.safetensors`` and the hyperparameters in
    ``state``; every tensor is checked against its parameter's shape and for values that are not
    finite before it is used.

    Raises:
        TextopiaError: the file is missing or damaged, or does not fit the model (one line naming it).
    """
    path = Path(directory) / OPTIMIZER_FILE
    tensors = _load_tensors(path, "optimizer state")
    check_finite(tensors.items(), path, "optimizer state")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    meta = state.optimizer or {}
    settings = Path(directory) / STATE_FILE
    groups = meta.get("param_groups")
    if (not isinstance(groups, list) or len(groups) != len(optimizer.param_groups)
            or any(not isinstance(g, dict) or len(g.get("params", ())) != len(h["params"])
                   for g, h in zip(groups, optimizer.param_groups))):
        raise TextopiaError(f"damaged trainer state {settings}: its optimizer's parameter groups do not fit the "
                            f"model ({_AFRESH})")
    try:
        loaded: dict[int, dict[str, Any]] = {}
        for name, value in tensors.items():
            _, pid, key = name.split(".", 2)
            param = params[int(pid)]
            if value.dim() and value.shape != param.shape:
                raise ValueError(f"{name} has shape {list(value.shape)}, its parameter {list(param.shape)}")
            loaded.setdefault(int(pid), {})[key] = value
        for pid, values in meta.get("scalars", {}).items():
            loaded.setdefault(int(pid), {}).update(values)
        optimizer.load_state_dict({"state": loaded, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RuntimeError) as e:
        raise TextopiaError(f"damaged optimizer state {path} (its settings in {settings}): {short_error(e)} "
                            f"({_AFRESH})") from None


def capture_rng() -> dict[str, torch.Tensor]:
    """This process's RNG streams as tensors (safetensors holds no tuples): Python's Mersenne
    Twister (625 words, then its cached Gaussian or NaN), NumPy's (624 words, position, Gaussian
    flag, then its cached Gaussian), torch's CPU generator and, on a GPU, every CUDA generator."""
    _, words, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    streams = {
        "python": torch.tensor(words, dtype=torch.int64),
        "python_gauss": torch.tensor([math.nan if gauss is None else gauss], dtype=torch.float64),
        "numpy": torch.tensor([*keys.tolist(), pos, has_gauss], dtype=torch.int64),
        "numpy_gauss": torch.tensor([cached], dtype=torch.float64),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        streams["cuda"] = torch.stack(torch.cuda.get_rng_state_all())  # (devices, state bytes)
    return streams


@dataclass
class SavedRNG:
    """One process's RNG streams read from a checkpoint, checked; :meth:`restore` sets them."""

    path: Path
    streams: dict[str, torch.Tensor]

    def restore(self) -> None:
        """Set this process's RNG streams to the saved ones.

        Raises:
            TextopiaError: a stream's state is malformed (one line naming the file).
        """
        s = self.streams
        try:
            if "python" in s:
                gauss = float(s["python_gauss"][0])
                random.setstate((3, tuple(int(x) for x in s["python"].tolist()), None if math.isnan(gauss) else gauss))
            if "numpy" in s:
                words = s["numpy"].tolist()
                np.random.set_state(("MT19937", np.array(words[:624], dtype=np.uint32), int(words[624]),
                                     int(words[625]), float(s["numpy_gauss"][0])))
            torch.set_rng_state(s["torch"])
            if "cuda" in s and torch.cuda.is_available():  # (devices, state bytes); a CPU run draws from none
                for device, cuda_state in enumerate(s["cuda"][: torch.cuda.device_count()]):
                    torch.cuda.set_rng_state(cuda_state.contiguous(), device)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, RuntimeError) as e:
            raise TextopiaError(f"damaged RNG state {self.path}: {short_error(e)} ({_AFRESH})") from None


def read_rng(directory: str | Path, rank: int) -> SavedRNG:
    """Process ``rank``'s RNG streams in ``directory/rng_state.safetensors``, checked by setting
    them once now (the caller restores them again when training starts) and putting back the
    current ones.

    Raises:
        TextopiaError: the file is missing or damaged, or lacks this process's streams.
    """
    path = Path(directory) / RNG_FILE
    tensors = _load_tensors(path, "RNG state")
    prefix = f"{rank}."
    own = {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}
    if not own and rank == 0 and "torch" in tensors:  # unprefixed: torch's CPU stream alone, process 0's
        own = {"torch": tensors["torch"]}
    if "torch" not in own:
        raise TextopiaError(f"damaged RNG state {path}: no streams of process {rank} ({_AFRESH})")
    saved = SavedRNG(path, own)
    current = SavedRNG(path, capture_rng())
    saved.restore()  # raises on a malformed stream, before any training
    current.restore()
    return saved
