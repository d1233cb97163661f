"""The one training loop, on HF Accelerate: the same code on a CPU, a GPU, or many processes.

AdamW (Loshchilov & Hutter 2019), linear warmup and cosine decay, gradient clipping and
accumulation, mixed precision where it is fast, periodic validation, JSONL metrics, atomic
checkpoints with the full trainer state, and ``resume``. Launch on several processes with
``accelerate launch`` or ``torchrun`` (see the README).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import torch

from textopia._version import __version__
from textopia.bounds import check_out_path
from textopia.errors import TextopiaError
from textopia.io import recover_dir
from textopia.models.checkpoint import METRICS_FILE, carry_files, check_checkpoint_dir, save_checkpoint, weights_digest
from textopia.models.critic import Critic
from textopia.models.registry import LatentDiffusionModel, check_sizes, get_spec
from textopia.training.config import ExperimentConfig
from textopia.training.schedules import warmup_cosine_lr
from textopia.training.tasks import Task, TokenTask
from textopia.text import KNOWN_WORDS_FILE

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng_state.safetensors"
#: kernels oneDNN keeps in a training process (see :func:`train`)
ONEDNN_CACHE_CAPACITY = 64


def cpu_has_fast_bf16() -> bool:
    """True if this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX).

    Without them bf16 autocast is emulated and slow: on our 2-core AMD EPYC (AVX2 only) a 5M
    GPT trained at 64 tokens/s in bf16 against 1,480 in fp32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """Accelerate's ``mixed_precision`` for a config value ("auto", "fp32", "bf16", "fp16")."""
    if precision == "auto":
        if torch.cuda.is_available():
            chosen = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            logger.info("precision auto: %s (a GPU %s bf16)", chosen, "with" if chosen == "bf16" else "without")
            return chosen
        if cpu_has_fast_bf16():
            logger.info("precision auto: bf16 autocast (this CPU has native bf16: AVX512-BF16 or AMX)")
            return "bf16"
        logger.info("precision auto: fp32 (this CPU has no native bf16; emulated bf16 is slower)")
        return "no"
    if precision in ("fp32", "no"):
        return "no"
    if precision in ("bf16", "fp16"):
        return precision
    raise TextopiaError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only (nanoGPT's rule): biases and norm gains are not decayed."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class _Metrics:
    """The metrics log: kept in memory (for checkpoints) and appended to ``out_dir/metrics.jsonl``."""

    def __init__(self, out_dir: Path, enabled: bool, upto_step: int | None) -> None:
        self.path = out_dir / METRICS_FILE
        self.enabled = enabled
        self.lines: list[str] = []
        if enabled:
            out_dir.mkdir(parents=True, exist_ok=True)  # so the log can be followed before the first save
        if upto_step is not None and self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line).get("step", 0) <= upto_step:
                        self.lines.append(line)
                except ValueError:
                    continue

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        line = json.dumps(record)
        self.lines.append(line)
        with self.path.open("a") as f:
            f.write(line + "\n")

    def write(self, directory: Path) -> None:
        (directory / METRICS_FILE).write_text("".join(line + "\n" for line in self.lines))


def task_class(role: type) -> type[Task]:
    """The :class:`~textopia.training.tasks.Task` class that trains models of ``role`` (a
    :class:`textopia.models.registry.Role`): latent diffusion models train on their autoencoder's
    cached latents, every other family on tokenised examples."""
    if issubclass(role, Critic):
        from textopia.training.tasks import CriticTask

        return CriticTask
    if issubclass(role, LatentDiffusionModel):
        from textopia.training.diffusion import LatentTask  # with diffusers' scheduler: imported when used

        return LatentTask
    return TokenTask


def build_task(config: ExperimentConfig, *, resume_from: Path | None = None, progress: bool = False) -> Task:
    """The :class:`~textopia.training.tasks.Task` that trains ``config.model.kind`` (by the
    family's role in the registry: :func:`task_class`).

    Raises:
        TextopiaError: the config, a checkpoint or the data is unusable.
    """
    role = get_spec(config.model.get("kind", "gpt")).role
    return task_class(role)(config, resume_from=resume_from, progress=progress)


def train(config: ExperimentConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    """Train a model as ``config`` says and return the checkpoint directory.

    With ``resume``, continue from the checkpoint in ``config.train.out_dir`` (weights,
    optimizer, step, data position and RNG states); the run then ends with the same weights as
    one never interrupted. Without a checkpoint there it says so (a warning) and starts afresh.
    A checkpoint that an interrupted save left aside is restored first, and the temporary
    folders of interrupted saves are removed (:func:`textopia.io.recover_dir`).

    ``out_dir`` is replaced by each save: a checkpoint there is, other files only with
    ``overwrite``, and the data's folder never (:func:`~textopia.models.checkpoint.check_checkpoint_dir`).

    Raises:
        TextopiaError: the data or the config is unusable, or ``out_dir`` may not be replaced.
    """
    check_sizes(config.model, "[model]")  # out-of-bounds sizes fail before any work
    check_out_path(config.train.out_dir, "train.out_dir")  # each save replaces it as a whole, through a sibling
    check_checkpoint_dir(config.train.out_dir, overwrite=overwrite, inputs=(config.data.dir,))
    # oneDNN keeps every kernel it builds (one per shape: length-bucketed batches make hundreds),
    # up to 1,024 by default; in bf16 they held gigabytes (a 4,500-step GPT run grew to 6 GB).
    # With 64, gpt-small's RSS after 150 bf16 steps was 2.36 GB against 3.13 GB, at the same
    # tokens/s (benchmarks/results/train_memory.md). Set before the first kernel; the user's
    # own setting wins.
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE_CAPACITY))
    get_spec(config.model.get("kind", "gpt"))  # an unknown kind fails before any work
    if os.environ.get("RANK", "0") == "0":  # one process repairs; the others wait for it below
        recover_dir(config.train.out_dir)
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    tc = config.train
    accelerator = Accelerator(
        mixed_precision=resolve_precision(tc.precision),
        gradient_accumulation_steps=tc.grad_accum,
        cpu=not torch.cuda.is_available(),  # lets torchrun / accelerate launch run gloo on CPUs
    )
    set_seed(tc.seed)
    out_dir = Path(tc.out_dir)
    data_dir = Path(config.data.dir)

    accelerator.wait_for_everyone()  # the main process has restored an interrupted save by now
    state: dict[str, Any] | None = None
    if resume and not (out_dir / STATE_FILE).is_file():
        if accelerator.is_main_process:
            logger.warning("--resume: no checkpoint with trainer state in %s; starting from step 0", out_dir)
    if resume and (out_dir / STATE_FILE).is_file():
        state = json.loads((out_dir / STATE_FILE).read_text())
        logger.info("resuming from %s at step %d", out_dir, state["step"])
    task = build_task(config, resume_from=out_dir if state else None, progress=progress)
    if task.endless and accelerator.num_processes > 1:
        raise TextopiaError("latent diffusion trains in one process (its batches are drawn per step, not sharded)")
    model, tokenizer = task.model, task.tokenizer
    model.to(accelerator.device).train()
    optimizer = torch.optim.AdamW(
        _param_groups(model, tc.weight_decay), lr=tc.lr, betas=(tc.beta1, tc.beta2)
    )
    if state is not None:
        from safetensors.torch import load_file

        _load_optimizer(optimizer, load_file(str(out_dir / OPTIMIZER_FILE)), state["optimizer"])
        if "rng" in state:
            random.setstate(_tuple_state(state["rng"]["python"]))
        if (out_dir / RNG_FILE).is_file():
            torch.set_rng_state(load_file(str(out_dir / RNG_FILE))["torch"])
    model, optimizer = accelerator.prepare(model, optimizer)
    task.prepare(accelerator)
    # In mixed precision, prepare wraps forward in autocast and converts every output to fp32:
    # the (B, T, V) logits were copied once more each step (GPT bf16 ran at 0.91x of a plain
    # loop). The loop autocasts the loss itself, so the model keeps its own forward.
    unwrapped = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    meta = {
        "kind": config.model.get("kind", "gpt"),
        "model": vars(task.model_config).copy(),
        "data": vars(config.data).copy(),
        "train": vars(tc).copy(),
        "num_parameters": sum(p.numel() for p in unwrapped.parameters()),
        "num_trainable_parameters": sum(p.numel() for p in unwrapped.parameters() if p.requires_grad),
        "version": __version__,
    }
    step = state["step"] if state else 0
    epoch = state.get("epoch", 0) if state else 0
    # an endless task's batch is its step (state files of the old diffusion loop have no batch_in_epoch)
    batch_in_epoch = state.get("batch_in_epoch", step if task.endless else 0) if state else 0
    metrics = _Metrics(out_dir, accelerator.is_main_process, upto_step=step if state else None)
    if accelerator.is_main_process and not state and (out_dir / METRICS_FILE).is_file():
        (out_dir / METRICS_FILE).unlink()  # a fresh run in an old directory starts a fresh log
    elapsed_before = state.get("elapsed_s", 0.0) if state else 0.0
    start = time.monotonic()

    def save() -> None:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            tensors, opt_meta = _optimizer_tensors(optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer)
            trainer_state = {
                "step": step,
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "elapsed_s": elapsed_before + time.monotonic() - start,
                "optimizer": opt_meta,
                "rng": {"python": random.getstate()},
                "num_processes": accelerator.num_processes,
            }

            def write_extra(tmp: Path) -> None:
                from safetensors.torch import save_file

                save_file(tensors, str(tmp / OPTIMIZER_FILE))
                save_file({"torch": torch.get_rng_state()}, str(tmp / RNG_FILE))
                (tmp / STATE_FILE).write_text(json.dumps(trainer_state) + "\n")
                metrics.write(tmp)
                carry_files(data_dir, (KNOWN_WORDS_FILE,))(tmp)  # the reranker's known words travel with the model
                task.write_extra(tmp)

            save_checkpoint(out_dir, accelerator.unwrap_model(model), tokenizer, meta, write_extra=write_extra)
        accelerator.wait_for_everyone()

    def validate() -> None:
        if not accelerator.is_main_process:
            return
        figures = task.validate(accelerator.unwrap_model(model), accelerator)
        if figures is None:
            return
        metrics.log({"step": step, "split": "valid", **figures})
        logger.info("step %d valid %s", step, " ".join(f"{k} {v:.4g}" for k, v in figures.items()
                                                       if isinstance(v, float)))

    bar = None
    if progress and accelerator.is_main_process:
        from tqdm.auto import tqdm

        bar = tqdm(total=tc.max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    window_count, window_loss, window_n, window_start = 0, 0.0, 0, time.monotonic()
    window_terms: dict[str, float] = {}
    done = step >= tc.max_steps
    while not done:
        for batch in task.batches(epoch, batch_in_epoch, accelerator):
            task.before_step(unwrapped, step)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    loss, count, terms = task.loss(model, batch, step)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    if tc.grad_clip > 0:
                        accelerator.clip_grad_norm_(model.parameters(), tc.grad_clip)
                    lr = warmup_cosine_lr(step, lr=tc.lr, warmup_steps=tc.warmup_steps,
                                          max_steps=tc.max_steps, min_lr_ratio=tc.min_lr_ratio)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            batch_in_epoch += 1
            window_count += count * accelerator.num_processes
            window_loss += float(loss.detach())
            window_n += 1
            for key, value in terms.items():
                window_terms[key] = window_terms.get(key, 0.0) + value
            if not accelerator.sync_gradients:
                continue
            step += 1
            if bar is not None:
                bar.update(1)
            if step % tc.log_every == 0 or step == tc.max_steps:
                seconds = time.monotonic() - window_start
                record = {"step": step, "split": "train", "loss": window_loss / window_n, "lr": lr,
                          f"{task.unit}_per_s": window_count / max(seconds, 1e-9), "epoch": epoch,
                          "elapsed_s": elapsed_before + time.monotonic() - start}
                record.update({key: value / window_n for key, value in window_terms.items()})
                metrics.log(record)
                if bar is not None:
                    bar.set_postfix(loss=f"{record['loss']:.4g}")
                window_count, window_loss, window_n, window_start = 0, 0.0, 0, time.monotonic()
                window_terms = {}
            out_of_time = tc.max_minutes is not None and (elapsed_before + time.monotonic() - start) > 60 * tc.max_minutes
            out_of_time = bool(accelerator.gather(torch.tensor([out_of_time], device=accelerator.device)).any())
            done = step >= tc.max_steps or out_of_time
            if tc.eval_every and (step % tc.eval_every == 0 or done):
                validate()
            if (tc.save_every and step % tc.save_every == 0) and not done:
                save()
            if done:
                break
        else:
            epoch += 1
            batch_in_epoch = 0
    if bar is not None:
        bar.close()
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        digests = gather_object([weights_digest(accelerator.unwrap_model(model))])
        metrics.log({"step": step, "split": "replicas", "num_processes": accelerator.num_processes,
                     "weights_sha256": digests, "identical": len(set(digests)) == 1})
    save()
    accelerator.end_training()
    return out_dir


def _tuple_state(value: Any) -> Any:
    """JSON turns Python's RNG state tuples into lists; turn them back."""
    if isinstance(value, list):
        return tuple(_tuple_state(v) for v in value)
    return value
