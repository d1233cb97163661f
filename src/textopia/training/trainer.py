"""The one training loop, on HF Accelerate: the same code on a CPU, a GPU, or many processes.

AdamW (Loshchilov & Hutter 2019), linear warmup and cosine decay, gradient clipping and
accumulation, mixed precision where it is fast, periodic validation, JSONL metrics, atomic
checkpoints with the full training state (:mod:`textopia.training.state`), an exact ``resume``,
and a stop at the first loss that is not finite. Launch on several processes with
``accelerate launch`` or ``torchrun`` (see ``docs/training.md``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from textopia._version import __version__
from textopia.bounds import check_out_path
from textopia.errors import TextopiaError
from textopia.io import json_safe, recover_dir
from textopia.models.checkpoint import (
    CONFIG,
    METRICS_FILE,
    carry_files,
    check_checkpoint_dir,
    read_meta,
    save_checkpoint,
    weights_digest,
)
from textopia.models.critic import Critic
from textopia.models.gpt_engine import cpu_has_fast_bf16
from textopia.models.registry import LatentDiffusionModel, check_sizes, get_spec, make_config
from textopia.training.config import ExperimentConfig
from textopia.training.schedules import warmup_cosine_lr
from textopia.training.state import (
    STATE_FILE,
    LossWindow,
    TrainingState,
    capture_rng,
    load_optimizer,
    read_rng,
    read_state,
    write_state,
)
from textopia.training.tasks import Task, TokenTask
from textopia.text import KNOWN_FILES

logger = logging.getLogger(__name__)

#: The settings besides the model's that a resumed run keeps from its checkpoint: they lay out
#: the batches (their size, accumulation, order and examples), so another value is another run.
RUN_SETTINGS = (("train", "batch_size"), ("train", "grad_accum"), ("train", "seed"), ("data", "max_length"),
                ("data", "train_limit"), ("data", "p_unconditional"))
#: Model settings that say where a model came from, not what it is: a resumed run keeps the
#: checkpoint's model whatever they say now (a moved VAE folder is no other model).
PROVENANCE = ("init_from", "initialized_from", "vae_checkpoint")
#: kernels oneDNN keeps in a training process (see :func:`train`)
ONEDNN_CACHE_CAPACITY = 64


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


class _Metrics:
    """The metrics log: kept in memory (for checkpoints) and appended to ``out_dir/metrics.jsonl``,
    except while ``held`` (a fresh run in a folder whose checkpoint it has not yet replaced: that
    checkpoint's own log stays whole until the first save)."""

    def __init__(self, out_dir: Path, enabled: bool, upto_step: int | None) -> None:
        self.path = out_dir / METRICS_FILE
        self.enabled = enabled
        self.held = False
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
        """Append ``record``; a figure that is not finite is written as null (JSON has no NaN)."""
        if not self.enabled:
            return
        line = json.dumps(json_safe(record))
        self.lines.append(line)
        if self.held:
            return
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


def _shown(value: Any) -> str:
    """A setting's value in a log line or message (a table as ``{...}``)."""
    return "{...}" if isinstance(value, dict) else repr(value)


def _same(a: Any, b: Any) -> bool:
    """Whether two setting values are equal as the checkpoint's JSON holds them (tuples are lists)."""
    return json.loads(json.dumps(json_safe(a))) == json.loads(json.dumps(json_safe(b)))


def check_resume(config: ExperimentConfig, meta: dict[str, Any], state: TrainingState, num_processes: int) -> None:
    """Refuse to resume a checkpoint as another run: a model setting, a batch setting
    (:data:`RUN_SETTINGS`) or the number of processes that differs from the checkpoint's. Log
    what the resumed run keeps from the checkpoint and which other settings change.

    The model settings of ``config`` are compared as the family's config dataclass holds them
    (derived fields included); settings it leaves out are the checkpoint's, and so are the
    :data:`PROVENANCE` settings.

    Args:
        meta: the checkpoint's Textopia settings (:func:`~textopia.models.checkpoint.read_meta`).
        state: its training state.
        num_processes: the processes of this run.

    Raises:
        TextopiaError: a setting differs (one line naming each, the checkpoint's value and this run's).
    """
    kind = meta["kind"]
    clash: list[str] = []
    asked = config.model.get("kind", "gpt")
    if asked != kind:
        clash.append(f"model.kind: the checkpoint's {kind!r}, this run's {asked!r}")
    else:
        kept = vars(make_config(kind, meta.get("model", {})))
        given = {k: v for k, v in config.model.items() if k != "kind" and k not in PROVENANCE}
        wanted = vars(make_config(kind, {**meta.get("model", {}), **given}))
        clash += [f"model.{k}: the checkpoint's {_shown(kept[k])}, this run's {_shown(wanted[k])}"
                  for k in kept if k not in PROVENANCE and not _same(kept[k], wanted[k])]
    for section, name in RUN_SETTINGS:
        saved = meta.get(section, {})
        if name in saved and not _same(saved[name], getattr(getattr(config, section), name)):
            clash.append(f"{section}.{name}: the checkpoint's {_shown(saved[name])}, "
                         f"this run's {_shown(getattr(getattr(config, section), name))}")
    if state.num_processes != num_processes:
        clash.append(f"processes: the checkpoint's {state.num_processes}, this run's {num_processes}")
    if clash:
        raise TextopiaError(f"--resume would change the run: {'; '.join(clash)} (a resumed run continues the "
                            "checkpoint's model and batches: drop the setting, or train without --resume to start "
                            "afresh)")
    model = ", ".join(f"{k}={_shown(v)}" for k, v in meta.get("model", {}).items() if k not in (*PROVENANCE, "kind"))
    batches = ", ".join(f"{section}.{name}={_shown(meta[section][name])}" for section, name in RUN_SETTINGS
                        if name in meta.get(section, {}))
    logger.info("--resume keeps the checkpoint's model (kind=%r, %s), batches (%s) and %d process(es)",
                kind, model, batches, num_processes)
    for section in ("train", "data"):
        saved, now = meta.get(section, {}), vars(getattr(config, section))
        for name, value in now.items():
            if name in saved and (section, name) not in RUN_SETTINGS and not _same(saved[name], value):
                logger.info("--resume: %s.%s: %s -> %s", section, name, _shown(saved[name]), _shown(value))


def train(config: ExperimentConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    """Train a model as ``config`` says and return the checkpoint directory.

    With ``resume``, continue from the checkpoint in ``config.train.out_dir``: its weights and
    its training state (:mod:`textopia.training.state`: step, data position, RNG streams,
    optimizer, the open loss window); the run then ends with the weights and the log of one
    never interrupted. The model and the batch layout are the checkpoint's (:func:`check_resume`
    refuses other values). Without a checkpoint there it says so (a warning) and starts afresh.
    A checkpoint that an interrupted save left aside is restored first, and the temporary
    folders of interrupted saves are removed (:func:`textopia.io.recover_dir`).

    ``out_dir`` is replaced by each save: a checkpoint there is, other files only with
    ``overwrite``, and the data's folder never (:func:`~textopia.models.checkpoint.check_checkpoint_dir`).

    Training stops at the first loss that is not finite (NaN or infinity, on any process): the
    last checkpoint is left as it was.

    Raises:
        TextopiaError: the data or the config is unusable, ``out_dir`` may not be replaced, the
            checkpoint to resume is damaged or would be resumed as another run, or a loss is not
            finite.
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
    resumed = resume and (out_dir / STATE_FILE).is_file()
    if resume and not resumed and accelerator.is_main_process:
        logger.warning("--resume: no checkpoint with trainer state in %s; starting from step 0", out_dir)
    state, rng = TrainingState(num_processes=accelerator.num_processes), None
    if resumed:  # every file is checked before any work
        state = read_state(out_dir)
        check_resume(config, read_meta(out_dir), state, accelerator.num_processes)
        rng = read_rng(out_dir, accelerator.process_index)
        logger.info("resuming from %s at step %d", out_dir, state.step)
    task = build_task(config, resume_from=out_dir if resumed else None, progress=progress)
    if task.endless and accelerator.num_processes > 1:
        raise TextopiaError("latent diffusion trains in one process (its batches are drawn per step, not sharded)")
    if state.batch_in_epoch is None:  # a state without it: an endless task's batch is its step
        state.batch_in_epoch = state.step if task.endless else 0
    model, tokenizer = task.model, task.tokenizer
    model.to(accelerator.device).train()
    optimizer = torch.optim.AdamW(
        _param_groups(model, tc.weight_decay), lr=tc.lr, betas=(tc.beta1, tc.beta2)
    )
    if resumed:
        load_optimizer(optimizer, out_dir, state)
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
    metrics = _Metrics(out_dir, accelerator.is_main_process, upto_step=state.step if resumed else None)
    if accelerator.is_main_process and not resumed and (out_dir / METRICS_FILE).is_file():
        if (out_dir / CONFIG).is_file():
            metrics.held = True  # the old checkpoint keeps its log until the first save replaces it
        else:
            (out_dir / METRICS_FILE).unlink()  # a run stopped before its first save: a fresh log
    elapsed_before = state.elapsed_s
    start = time.monotonic()
    saved_step = state.step if resumed else None  # the checkpoint in out_dir, if any

    def save() -> None:
        nonlocal saved_step
        accelerator.wait_for_everyone()
        streams = [capture_rng()]
        if accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            streams = gather_object(streams)  # every process's own streams, in rank order
        if accelerator.is_main_process:
            state.elapsed_s = elapsed_before + time.monotonic() - start
            opt = optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer

            def write_extra(tmp: Path) -> None:
                write_state(tmp, state, opt, streams)
                metrics.write(tmp)
                carry_files(data_dir, KNOWN_FILES)(tmp)  # the reranker's known words travel with the model
                task.write_extra(tmp)

            save_checkpoint(out_dir, accelerator.unwrap_model(model), tokenizer, meta, write_extra=write_extra)
            metrics.held = False  # the checkpoint holds this run's log now: go on appending to it
        saved_step = state.step
        accelerator.wait_for_everyone()

    def validate() -> None:
        if not accelerator.is_main_process:
            return
        figures = task.validate(accelerator.unwrap_model(model), accelerator)
        if figures is None:
            return
        metrics.log({"step": state.step, "split": "valid", **figures})
        logger.info("step %d valid %s", state.step, " ".join(f"{k} {v:.4g}" for k, v in figures.items()
                                                             if isinstance(v, float)))

    def not_finite(value: float | None) -> TextopiaError:
        """The error that stops training at step ``state.step + 1`` (``value``: this process's loss, or
        None where another process's was not finite)."""
        kept = (f"the checkpoint of step {saved_step} in {out_dir} is kept" if saved_step is not None
                else f"no checkpoint was saved to {out_dir}")
        return TextopiaError(f"step {state.step + 1}: the training loss is {'not finite' if value is None else value} "
                             f"(NaN or infinity): training stopped; {kept} (a lower train.lr or "
                             "train.precision = \"fp32\" may help)")

    bar = None
    if progress and accelerator.is_main_process:
        from tqdm.auto import tqdm

        bar = tqdm(total=tc.max_steps, initial=state.step, desc="train", unit="step", dynamic_ncols=True)
    window = state.window
    bad_loss: float | None = None  # this step's first loss that is not finite
    done = state.step >= tc.max_steps
    if rng is not None:
        # set after everything above that draws (building the model): the next step draws what
        # the uninterrupted run's next step drew
        rng.restore()
    try:
        while not done:
            for batch in task.batches(state.epoch, state.batch_in_epoch, accelerator):
                task.before_step(unwrapped, state.step)
                with accelerator.accumulate(model):
                    with accelerator.autocast():
                        loss, count, terms = task.loss(model, batch, state.step)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        if tc.grad_clip > 0:
                            accelerator.clip_grad_norm_(model.parameters(), tc.grad_clip)
                        lr = warmup_cosine_lr(state.step, lr=tc.lr, warmup_steps=tc.warmup_steps,
                                              max_steps=tc.max_steps, min_lr_ratio=tc.min_lr_ratio)
                        for group in optimizer.param_groups:
                            group["lr"] = lr
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                state.batch_in_epoch += 1
                value = float(loss.detach())
                if bad_loss is None and not math.isfinite(value):
                    bad_loss = value
                window.add(value, count * accelerator.num_processes, terms)
                if not accelerator.sync_gradients:
                    continue
                out_of_time = (tc.max_minutes is not None
                               and (elapsed_before + time.monotonic() - start) > 60 * tc.max_minutes)
                flags = torch.tensor([bad_loss is not None, out_of_time], device=accelerator.device)
                any_bad, out_of_time = accelerator.gather(flags).view(-1, 2).any(dim=0).tolist()  # over processes
                if any_bad:
                    raise not_finite(bad_loss)
                state.step += 1
                if bar is not None:
                    bar.update(1)
                if state.step % tc.log_every == 0 or state.step == tc.max_steps:
                    means = window.means()
                    record = {"step": state.step, "split": "train", "loss": means.pop("loss"), "lr": lr,
                              f"{task.unit}_per_s": window.count / max(window.elapsed(), 1e-9), "epoch": state.epoch,
                              "elapsed_s": elapsed_before + time.monotonic() - start, **means}
                    metrics.log(record)
                    if bar is not None:
                        bar.set_postfix(loss=f"{record['loss']:.4g}")
                    window = state.window = LossWindow()
                done = state.step >= tc.max_steps or out_of_time
                if tc.eval_every and (state.step % tc.eval_every == 0 or done):
                    validate()
                if (tc.save_every and state.step % tc.save_every == 0) and not done:
                    save()
                if done:
                    break
            else:
                state.epoch += 1
                state.batch_in_epoch = 0
    finally:
        if bar is not None:
            bar.close()
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        digests = gather_object([weights_digest(accelerator.unwrap_model(model))])
        metrics.log({"step": state.step, "split": "replicas", "num_processes": accelerator.num_processes,
                     "weights_sha256": digests, "identical": len(set(digests)) == 1})
    save()
    accelerator.end_training()
    return out_dir
