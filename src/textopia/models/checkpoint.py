"""Checkpoint directories: one format for every model family, written atomically.

Layout::

    config.json          the model's config; Textopia's settings under "textopia":
                         {"kind", "model", "data", "train", "tokenizer", "version"}
    model.safetensors    the weights
    tokenizer.json       the tokenizer (+ tokenizer_config.json, special_tokens_map.json)
    trainer_state.json   optional: step, data position, the open loss window, optimizer hyperparameters
    optimizer.safetensors  optional: the optimizer's tensors
    rng_state.safetensors  optional: every training process's RNG streams
    metrics.jsonl        optional: the training log
    latents.safetensors  optional: latent diffusion's latents of its training prompts (a cache)
    README.md            optional: the model card, in the Hugging Face Hub's format (written by export)

Never pickles: weights and optimizer tensors are safetensors, the rest JSON.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textopia.data.tokenizer import PromptTokenizer
from textopia.errors import TextopiaError
from textopia.io import atomic_dir, check_output_dir
from textopia.models.registry import check_sizes, get_spec, make_config
from textopia.text import KNOWN_FILES

logger = logging.getLogger(__name__)

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
METRICS_FILE = "metrics.jsonl"  # the training log
LATENTS_FILE = "latents.safetensors"  # latent diffusion's cache of its training prompts' latents
#: What a training run writes in its folder before its first save.
RUN_FILES = (METRICS_FILE, LATENTS_FILE)
#: The names of the entries a Textopia checkpoint may hold: what its writers put there (weights and
#: configs, tokenizer files as tokenizers and transformers save them, the model card, the training
#: log, the trainer state that ``--resume`` reads (``textopia.training.state``), the reranker's
#: known words, coherence critic and keep head), so that replacing a checkpoint never takes a file
#: of the user's with it (:func:`check_checkpoint_dir`).
CHECKPOINT_ENTRIES = frozenset({
    CONFIG, WEIGHTS, METRICS_FILE, LATENTS_FILE, *KNOWN_FILES, "README.md", "generation_config.json",
    "scheduler_config.json", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model",
    "chat_template.jinja", "trainer_state.json", "optimizer.safetensors", "rng_state.safetensors", "critic", "keep",
})
_WEIGHT_SHARD = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")  # transformers' sharded weights


def checkpoint_entry(name: str) -> bool:
    """Whether a checkpoint's writers may have put an entry of this name there (:data:`CHECKPOINT_ENTRIES`)."""
    return name in CHECKPOINT_ENTRIES or _WEIGHT_SHARD.fullmatch(name) is not None


#: The largest ``config.json`` read, in bytes (ours are a few kB; a bigger one is not a config).
MAX_CONFIG_BYTES = 256 * 1024
#: Environment variable: the most memory a checkpoint's model may take, in bytes (default: half
#: this machine's physical memory).
MAX_MODEL_BYTES_ENV = "TEXTOPIA_MAX_MODEL_BYTES"


def short_error(error: BaseException, limit: int = 200) -> str:
    """An exception as one short line: its type and the start of its message."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[:limit] + "..."


def max_model_bytes() -> int:
    """The memory budget of one model, in bytes: ``$TEXTOPIA_MAX_MODEL_BYTES`` or half the RAM.

    Raises:
        TextopiaError: the environment variable is not a positive integer.
    """
    value = os.environ.get(MAX_MODEL_BYTES_ENV)
    if value:
        try:
            limit = int(value)
            if limit <= 0:
                raise ValueError
        except ValueError:
            raise TextopiaError(f"{MAX_MODEL_BYTES_ENV} must be a positive number of bytes, got {value!r}") from None
        return limit
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 16 * 2**30


def is_checkpoint_dir(path: Path) -> bool:
    """Whether the directory ``path`` holds a Textopia checkpoint (a ``config.json`` with a
    ``"textopia"`` section), or only what a training run stopped before its first save left
    (:data:`RUN_FILES`)."""
    if all(entry.name in RUN_FILES for entry in path.iterdir()):
        return True
    config = path / CONFIG
    try:
        if config.stat().st_size > MAX_CONFIG_BYTES:
            return False
        return isinstance(json.loads(config.read_text(encoding="utf-8")).get("textopia"), dict)
    except (OSError, ValueError, AttributeError, RecursionError):  # AttributeError: not a JSON object
        return False


def check_checkpoint_dir(directory: str | Path, *, overwrite: bool = False, inputs: tuple[str | Path, ...] = ()) -> None:
    """Refuse to write a checkpoint to ``directory`` where it would destroy what the user did not
    make: other files than a checkpoint, or beside one (:func:`checkpoint_entry`), unless
    ``overwrite``; one of ``inputs``, never (:func:`textopia.io.check_output_dir`).

    Raises:
        TextopiaError: ``directory`` may not be replaced.
    """
    check_output_dir(directory, "checkpoint", is_checkpoint_dir, overwrite=overwrite, inputs=inputs,
                     own=checkpoint_entry)


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

    The file is untrusted: at most :data:`MAX_CONFIG_BYTES` are read, and every size setting in
    it is checked against :data:`~textopia.models.registry.SIZE_BOUNDS`.

    Raises:
        TextopiaError: the directory or its config is missing or corrupt, or a size is out of
            bounds (one line, whatever the file holds).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise TextopiaError(f"checkpoint directory not found: {directory}")
    return _read_config(directory)["textopia"]


def _read_config(directory: Path) -> dict[str, Any]:
    """The whole ``config.json`` of a checkpoint, its size and shape checked (see :func:`read_meta`)."""
    path = directory / CONFIG
    if not path.is_file():
        raise TextopiaError(f"missing file in checkpoint: {path}")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise TextopiaError(f"corrupt checkpoint config {path}: {size:,} bytes, more than a config "
                            f"({MAX_CONFIG_BYTES:,} at most)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        meta = config["textopia"]
        if not isinstance(meta, dict) or not isinstance(meta["kind"], str):
            raise TypeError("'textopia' must be an object with a string 'kind'")
    except (ValueError, KeyError, TypeError, RecursionError) as e:  # RecursionError: "[[[[..." nesting
        raise TextopiaError(f"corrupt checkpoint config {path}: {short_error(e)}") from None
    check_sizes(config, str(path))  # the transformers config's sizes and Textopia's, nested tables too
    return config


def check_finite(named_tensors, path: str | Path, what: str = "weights") -> None:
    """Refuse tensors that hold NaN or infinite values: a model with them writes garbage or crashes,
    and a training run resumed from them trains at a NaN loss.

    Args:
        named_tensors: ``(name, tensor)`` pairs (``model.named_parameters()``, a state dict's items).
        path: the file they came from, for the message.
        what: what the file holds ("weights", "optimizer state").

    Raises:
        TextopiaError: a floating-point tensor holds a value that is not finite (the first one named).
    """
    import torch

    for name, tensor in named_tensors:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise TextopiaError(f"damaged {what} {path}: {name} holds values that are not finite (NaN or infinity)")


def _skeleton(directory: Path, spec, config, tokenizer, hf_config: dict[str, Any]):
    """The model the checkpoint describes, on the meta device: every shape, no memory."""
    import torch

    with torch.device("meta"):
        if spec.load is not None and "model_type" in hf_config:  # a transformers checkpoint
            from transformers import AutoConfig, AutoModelForCausalLM

            values = {k: v for k, v in hf_config.items() if k != "textopia"}
            hf = AutoConfig.for_model(**values)
            return AutoModelForCausalLM.from_config(hf)
        if spec.load is not None:
            return None  # a family with its own loader and no transformers config: not checked here
        return spec.build(config, tokenizer)


def check_weights(directory: str | Path, spec, config, tokenizer, hf_config: dict[str, Any]) -> int:
    """Check a checkpoint before loading it: its model's memory and its weights' shapes.

    The model is built on the meta device (no memory), its size in bytes compared with
    :func:`max_model_bytes`, and each tensor's shape compared with ``model.safetensors``'s
    header (read without loading the tensors).

    Returns:
        the model's estimated size in bytes (0 when the family is not checked).

    Raises:
        TextopiaError: the model would not fit, a parameter is missing from the weights, or a
            tensor's shape in the weights differs from the config's (named, on one line).
    """
    directory = Path(directory)
    weights = directory / WEIGHTS
    try:
        model = _skeleton(directory, spec, config, tokenizer, hf_config)
    except TextopiaError:
        raise
    except Exception as e:
        raise TextopiaError(f"cannot build the model {directory / CONFIG} describes: {short_error(e)}") from None
    if model is None:
        return 0
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    needed = sum(t.numel() * t.element_size() for t in tensors.values())
    budget = max_model_bytes()
    if needed > budget:
        raise TextopiaError(f"the model in {directory} needs about {needed / 2**30:,.1f} GiB, more than the "
                            f"{budget / 2**30:,.1f} GiB allowed (set {MAX_MODEL_BYTES_ENV} to allow more)")
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            stored = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception as e:
        raise TextopiaError(f"corrupt weights {weights}: {short_error(e)}") from None
    aliases: dict[int, list[str]] = {}  # a tied parameter is stored once, under any one of its names
    for name, param in model.named_parameters(remove_duplicate=False):
        aliases.setdefault(id(param), []).append(name)
    missing = [names[0] for names in aliases.values() if not any(n in stored for n in names)]
    if missing:
        raise TextopiaError(f"{weights} lacks {len(missing)} of the tensors {directory / CONFIG} describes "
                            f"(first: {missing[0]}; layers or sizes disagree with the weights)")
    for name, tensor in tensors.items():
        if name in stored and stored[name] != tuple(tensor.shape):
            raise TextopiaError(
                f"{weights}: {name} has shape {list(stored[name])} but {directory / CONFIG} gives "
                f"{list(tensor.shape)} (vocab_size, widths or layers disagree with the weights)"
            )
    return needed


def _inspect(directory: Path):
    """``(spec, config, tokenizer, meta)`` of a checkpoint, everything checked but the weights read."""
    if not directory.is_dir():
        raise TextopiaError(f"checkpoint directory not found: {directory}")
    hf_config = _read_config(directory)
    meta = hf_config["textopia"]
    spec = get_spec(meta["kind"])
    config = make_config(meta["kind"], meta.get("model", {}))
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise TextopiaError(f"missing file in checkpoint: {weights}")
    tokenizer = PromptTokenizer.from_dir(directory)
    check_weights(directory, spec, config, tokenizer, hf_config)
    return spec, config, tokenizer, meta


def check_checkpoint(directory: str | Path) -> dict[str, Any]:
    """Check a checkpoint as :func:`load_checkpoint` does, without loading its weights (about a
    second): for commands that load models later, after other work.

    Returns:
        Textopia's settings (as :func:`read_meta`).

    Raises:
        As :func:`load_checkpoint`, except for errors only the weights' values reveal.
    """
    return _inspect(Path(directory))[3]


def load_checkpoint(directory: str | Path):
    """Load ``(model, tokenizer, meta)`` from a checkpoint directory; the model is in eval mode.

    Untrusted input is checked before any tensor is allocated: ``config.json``'s size (at most
    :data:`MAX_CONFIG_BYTES`), every size setting (:data:`~textopia.models.registry.SIZE_BOUNDS`),
    the model's memory and the weights' shapes (:func:`check_weights`).

    Raises:
        TextopiaError: a file is missing or corrupt (the file is named), a size is out of
            bounds, the model would not fit in memory, the weights disagree with the config, or
            a weight is not finite (:func:`check_finite`).
    """
    import torch

    directory = Path(directory)
    spec, config, tokenizer, meta = _inspect(directory)
    weights = directory / WEIGHTS
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
        raise TextopiaError(f"corrupt or incompatible weights {weights}: {short_error(e)}") from None
    check_finite(model.named_parameters(), weights)
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
        model.float()  # weights stored in half precision (an export) compute in float32
    model.eval()
    return model, tokenizer, meta


def load_coherence_critic(directory: str | Path):
    """A critic checkpoint (``textopia train`` with ``kind = "critic"``) as a ready
    :class:`~textopia.models.critic.CoherenceCritic`.

    Raises:
        TextopiaError: the directory is not a critic checkpoint, or a file is missing or corrupt.
    """
    from textopia.models.critic import CoherenceCritic

    model, tokenizer, meta = load_checkpoint(directory)
    if meta.get("kind") != "critic":
        raise TextopiaError(f"{directory} is a {meta.get('kind')!r} checkpoint, not a critic")
    return CoherenceCritic(model, tokenizer)


EXPORT_DTYPES = ("float32", "float16", "bfloat16")


#: Generator defaults a shipped checkpoint may carry (measured for it; see the generators).
EXPORT_DEFAULTS = ("default_spread", "default_strength", "default_guidance", "default_steps", "default_lm_weight")


def export_checkpoint(src: str | Path, dst: str | Path, *, dtype: str = "float32",
                      defaults: dict[str, float] | None = None, overwrite: bool = False,
                      write_extra: Callable[[Path], None] | None = None) -> Path:
    """Copy a checkpoint without its trainer state (for shipping): config, weights, tokenizer, known
    words, and its coherence critic (``critic/``) and keep head (``keep/``) where it has them.

    Args:
        dtype: the weights' storage type: "float32", or "float16" / "bfloat16" to halve the
            file (the weights are cast back to float32 when loaded; recorded as ``stored_dtype``).
        defaults: generator defaults measured for this model (names in :data:`EXPORT_DEFAULTS`),
            saved with Textopia's settings.
        overwrite: replace ``dst`` even when it holds other files than a checkpoint.
        write_extra: called with the copy's temporary directory once everything else is in it,
            to add files: ``textopia export`` writes the model card
            (:func:`textopia.models.hub.card_writer`).

    Raises:
        TextopiaError: an unknown dtype; ``dst`` may not be replaced (:func:`check_checkpoint_dir`,
            or it is a training run that ``--resume`` continues, without ``overwrite``);
            or as :func:`load_checkpoint`.
    """
    import torch

    if dtype not in EXPORT_DTYPES:
        raise TextopiaError(f"dtype must be one of {', '.join(EXPORT_DTYPES)}, got {dtype!r}")
    unknown = sorted(set(defaults or {}) - set(EXPORT_DEFAULTS))
    if unknown:
        raise TextopiaError(f"unknown generator defaults: {', '.join(unknown)} (known: {', '.join(EXPORT_DEFAULTS)})")
    check_checkpoint_dir(dst, overwrite=overwrite, inputs=(src,))
    if not overwrite and (Path(dst) / "trainer_state.json").is_file():
        raise TextopiaError(f"{dst} is a training run that --resume continues (it holds trainer_state.json), and an "
                            f"export has no trainer state: not replaced (--overwrite replaces it)")
    model, tokenizer, meta = load_checkpoint(src)
    meta = {**meta, **(defaults or {})}
    src = Path(src)
    if dtype != "float32":
        model.to(getattr(torch, dtype))
        meta = {**meta, "stored_dtype": dtype}

    carried = carry_files(src, (METRICS_FILE, *KNOWN_FILES))  # the training log; the reranker's known words

    def extras(tmp: Path) -> None:
        from textopia.models.critic import CRITIC_DIR
        from textopia.models.keep_head import KEEP_DIR

        carried(tmp)
        if dtype != "float32" and (tmp / "config.json").is_file():
            # transformers records the tensors' half precision as the model's dtype, and its
            # from_pretrained would then compute in it; the weights are stored small, computed in
            # float32, as Textopia loads them
            config = json.loads((tmp / "config.json").read_text())
            if "dtype" in config:
                config["dtype"] = "float32"
                (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if (src / CRITIC_DIR / "config.json").is_file():  # the reranker's coherence critic
            shutil.copytree(src / CRITIC_DIR, tmp / CRITIC_DIR)
        if (src / KEEP_DIR / "config.json").is_file():  # the reranker's keep head
            shutil.copytree(src / KEEP_DIR, tmp / KEEP_DIR)
        if write_extra is not None:
            write_extra(tmp)  # last: a model card reads the config and the training log copied above

    return save_checkpoint(dst, model, tokenizer, meta, write_extra=extras)


def carry_files(src: str | Path, names: tuple[str, ...]) -> Callable[[Path], None]:
    """A ``write_extra`` for :func:`save_checkpoint` that copies the files ``names`` of the
    directory ``src`` into the checkpoint being written, each where ``src`` has it."""
    src = Path(src)

    def write_extra(tmp: Path) -> None:
        for name in names:
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)

    return write_extra


def weights_digest(model) -> str:
    """SHA-256 over every parameter's bytes (a ``torch.nn.Module``), in name order: equal iff the weights
    are identical."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
