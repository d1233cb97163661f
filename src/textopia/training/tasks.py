"""What each model family brings to the one training loop (:func:`textopia.training.trainer.train`).

The loop owns what every training shares: Accelerate, AdamW, the learning-rate schedule,
clipping and accumulation, the metrics log, validation cadence, atomic checkpoints, resume and
the time limit. A :class:`Task` owns what differs::

    TokenTask          LMs and autoencoders: tokenised examples in length buckets, epochs,
                       model(**batch).loss, the model's own per-step hook (a VAE's KL weight),
                       exact CE (or the family's own figures) on the valid split
    LatentTask         latent diffusion (textopia.training.diffusion): the frozen autoencoder's
                       latents, cached; one endless pass whose step s draws its batch from (seed, s)

Both are built from an :class:`~textopia.training.config.ExperimentConfig`, fresh or from the
checkpoint in ``train.out_dir`` when resuming.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from textopia.data.batching import BucketBatchSampler, ExampleConfig, PromptDataset, collate
from textopia.data.corpus import read_split
from textopia.data.tokenizer import PromptTokenizer, load_hf_tokenizer
from textopia.errors import TextopiaError
from textopia.models.checkpoint import load_checkpoint
from textopia.models.gpt import max_positions
from textopia.models.likelihood import score_prompts
from textopia.models.registry import get_spec, make_config
from textopia.training.config import ExperimentConfig


class Task(abc.ABC):
    """One family's part of a training run.

    Attributes:
        model: the module the loop trains (its parameters with ``requires_grad`` are optimised).
        tokenizer: saved with every checkpoint.
        model_config: the family's config dataclass, saved as ``meta["model"]``.
        unit: what the train log counts per second (``"tokens"`` or ``"examples"``).
        endless: one pass of :meth:`batches` never ends and its batch i is step i's, drawn from
            (seed, step) in one process rather than sharded by Accelerate.
    """

    model: torch.nn.Module
    tokenizer: PromptTokenizer
    model_config: Any
    unit: str = "tokens"
    endless: bool = False

    def prepare(self, accelerator) -> None:
        """Hand the data loader (if any) to ``accelerator`` (it shards it across processes)."""

    @abc.abstractmethod
    def batches(self, epoch: int, skip: int, accelerator) -> Iterable[Any]:
        """One pass over the data for ``epoch``, its first ``skip`` batches left out (resume)."""

    def before_step(self, model: torch.nn.Module, step: int) -> None:
        """Called before optimizer step ``step`` (0-based) is computed; here, the model's own
        ``set_step`` hook if it has one (a VAE sets its annealed KL weight there)."""
        hook = getattr(model, "set_step", None)
        if callable(hook):
            hook(step)

    @abc.abstractmethod
    def loss(self, model: torch.nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, int, dict[str, float]]:
        """``(loss, count, terms)``: the 0-dim loss to minimise, how many ``unit`` the batch
        holds, and the objective's terms to log (floats, averaged over the log window)."""

    @abc.abstractmethod
    def validate(self, model: torch.nn.Module, accelerator) -> dict[str, float] | None:
        """The figures of the held-out split (None when it is empty)."""

    def write_extra(self, directory: Path) -> None:
        """Write the task's own files into a checkpoint being saved (``directory`` is its temp dir)."""


class TokenTask(Task):
    """Decoder-only LMs and the latent autoencoders: tokenised ``<|idea|> ... <|prompt|> ...``
    examples, shuffled into length buckets each epoch, ideas drawn per epoch.

    Every task is built as ``Task(config, resume_from=..., progress=...)``; ``progress`` (a bar
    for up-front work) has nothing to show here: examples are tokenised as they are drawn.

    Raises:
        TextopiaError: the train split is empty.
    """

    def __init__(self, config: ExperimentConfig, *, resume_from: Path | None = None, progress: bool = False) -> None:
        kind = config.model.get("kind", "gpt")
        self.spec = get_spec(kind)
        self.model_config = make_config(kind, config.model)
        data_dir = Path(config.data.dir)
        tc = self.train_config = config.train
        if resume_from is not None:
            self.model, self.tokenizer, meta = load_checkpoint(resume_from)
            # The checkpoint is built: where it started from is its own record, not a step to redo
            # (a resumed prompt-ae saved the TOML's init_from, and every later load rebuilt from it).
            for name in ("init_from", "initialized_from"):
                if hasattr(self.model_config, name):
                    setattr(self.model_config, name, meta["model"].get(name))
        else:
            init_from = getattr(self.model_config, "init_from", None)
            self.tokenizer = (PromptTokenizer(load_hf_tokenizer(init_from)) if init_from
                              else PromptTokenizer.from_dir(data_dir))
            self.model = self.spec.build(self.model_config, self.tokenizer)
        train_prompts = read_split(data_dir, "train")[: config.data.train_limit]
        self.valid_prompts = read_split(data_dir, "valid")[: config.data.valid_limit]
        if not train_prompts:
            raise TextopiaError(f"the train split in {data_dir} is empty")
        self.max_length = min(config.data.max_length, max_positions(self.model) or config.data.max_length)
        cache = data_dir / f"train.{len(self.tokenizer)}.ids.safetensors" if config.data.train_limit is None else None
        examples = ExampleConfig(p_unconditional=config.data.p_unconditional, max_length=self.max_length)
        self.dataset = PromptDataset(train_prompts, self.tokenizer, examples, seed=tc.seed, ideas="random", cache=cache)
        self.sampler = BucketBatchSampler(self.dataset.lengths(), tc.batch_size, seed=tc.seed)
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=self.sampler, collate_fn=partial(collate, pad_id=self.tokenizer.pad_id))

    def prepare(self, accelerator) -> None:
        self.loader = accelerator.prepare(self.loader)

    def batches(self, epoch: int, skip: int, accelerator) -> Iterable[Any]:
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        # Accelerate's loader sets the sampler's and the dataset's epoch to its own pass counter
        # when a pass starts; that counter restarts at 0 in a resumed run (and in the loader that
        # skip_first_batches makes), so it is set to the true epoch, or later epochs would replay
        # the order and ideas of earlier ones.
        if hasattr(self.loader, "set_epoch"):
            self.loader.set_epoch(epoch)
        return accelerator.skip_first_batches(self.loader, skip) if skip else self.loader

    def loss(self, model, batch, step):
        out = model(**batch)
        return out.loss, int(batch["attention_mask"].sum()), dict(getattr(out, "metrics", None) or {})

    def validate(self, model, accelerator) -> dict[str, float] | None:
        if not self.valid_prompts:
            return None
        with accelerator.autocast():
            if self.spec.validate is not None:
                return self.spec.validate(model, self.tokenizer, self.valid_prompts, max_length=self.max_length,
                                          batch_size=self.train_config.batch_size, device=accelerator.device)
            result = score_prompts(model, self.tokenizer, self.valid_prompts, max_length=self.max_length,
                                   batch_size=self.train_config.batch_size, device=accelerator.device)
        return {"ce_nats_per_token": result.ce_nats_per_token, "perplexity": result.perplexity,
                "tokens": result.tokens}
