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
        # The loader draws a seed for its workers at the start of each pass. Drawn from torch's
        # global RNG, that draw shifted every later dropout mask when a resumed run started its
        # pass at another step than an uninterrupted run; from its own generator, seeded per
        # epoch in batches(), it is the same in both and leaves the training's streams alone.
        self.loader_generator = torch.Generator()
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=self.sampler, collate_fn=partial(collate, pad_id=self.tokenizer.pad_id),
            generator=self.loader_generator, num_workers=tc.num_workers,
            # On a GPU the model outruns one process making examples (0.07 ms each: an idea drawn
            # and tokenised per example); workers make them in parallel, in the same order.
            pin_memory=tc.num_workers > 0 and torch.cuda.is_available())

    def prepare(self, accelerator) -> None:
        self.loader = accelerator.prepare(self.loader)

    def batches(self, epoch: int, skip: int, accelerator) -> Iterable[Any]:
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        self.loader_generator.manual_seed(self.train_config.seed * 1_000_003 + epoch)
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


class CriticTask(Task):
    """The coherence critic (:mod:`textopia.models.critic`): human prompts (label 1) against the
    writer's samples for the same ideas (label 0), from ``train.jsonl`` and ``valid.jsonl`` in
    ``data.critic_samples`` (rows ``{"idea", "human", "sample"}``, as
    :func:`textopia.evaluation.critic.writer_samples` writes them); binary cross-entropy on the
    critic's logit; each epoch a fresh order drawn from (seed, epoch). Validation reports the
    held-out accuracy (a classifier two-sample test: 0.5 means the writer's samples cannot be told
    from human prompts) and the cross-entropy (nats per example).

    Raises:
        TextopiaError: no ``data.critic_samples``, a missing or malformed file, or no examples.
    """

    unit = "examples"

    def __init__(self, config: ExperimentConfig, *, resume_from: Path | None = None, progress: bool = False) -> None:
        self.spec = get_spec("critic")
        self.model_config = make_config("critic", config.model)
        self.train_config = config.train
        if not config.data.critic_samples:
            raise TextopiaError("a critic trains on writer samples: set data.critic_samples to their folder")
        if resume_from is not None:
            self.model, self.tokenizer, _ = load_checkpoint(resume_from)
        else:
            self.tokenizer = PromptTokenizer.from_dir(config.data.dir)
            self.model = self.spec.build(self.model_config, self.tokenizer)
        folder = Path(config.data.critic_samples)
        self.train_examples = self._examples(folder / "train.jsonl", config.data.train_limit)
        self.valid_examples = self._examples(folder / "valid.jsonl", config.data.valid_limit)
        if not self.train_examples:
            raise TextopiaError(f"no critic examples in {folder / 'train.jsonl'}")

    def _examples(self, path: Path, limit: int | None) -> list[tuple[list[int], float]]:
        """``(input ids, label)`` pairs: each row's human prompt (1.0) and non-empty sample (0.0)."""
        import json

        from textopia.models.critic import critic_rows

        if not path.is_file():
            raise TextopiaError(f"missing critic samples file: {path}")
        texts: list[str] = []
        labels: list[float] = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()[:limit], 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                human, sample = str(row["human"]), str(row["sample"])
            except (ValueError, KeyError, TypeError):
                raise TextopiaError(f"{path}, line {number}: not a {{\"human\", \"sample\"}} JSON object") from None
            for text, label in ((human, 1.0), (sample, 0.0)):
                if text.strip():
                    texts.append(text)
                    labels.append(label)
        if not texts:
            return []
        return list(zip(critic_rows(self.tokenizer, texts, self.model_config.n_positions), labels))

    #: Batches are padded to a multiple of this many tokens: few distinct shapes, so that the CPU's
    #: kernels (oneDNN builds one per shape, and keeps a bounded number) are reused.
    PAD_TO = 16

    def _batch(self, examples: list[tuple[list[int], float]]) -> dict[str, torch.Tensor]:
        from textopia.models.critic import pad_rows

        batch = pad_rows([ids for ids, _ in examples], self.tokenizer.pad_id, self.PAD_TO)
        batch["labels"] = torch.tensor([label for _, label in examples], dtype=torch.float32)
        return batch

    def batches(self, epoch: int, skip: int, accelerator) -> Iterable[Any]:
        order = torch.randperm(len(self.train_examples),
                               generator=torch.Generator().manual_seed(self.train_config.seed * 100_003 + epoch)).tolist()
        size = self.train_config.batch_size
        for start in range(skip * size, len(order), size):
            batch = self._batch([self.train_examples[i] for i in order[start:start + size]])
            yield {k: v.to(accelerator.device) for k, v in batch.items()}

    def loss(self, model, batch, step):
        from textopia.models.critic import critic_logits

        logits = critic_logits(model, batch["input_ids"], batch["attention_mask"])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["labels"])
        accuracy = float(((logits > 0).float() == batch["labels"]).float().mean())
        return loss, int(batch["labels"].numel()), {"accuracy": accuracy}

    @torch.no_grad()
    def validate(self, model, accelerator) -> dict[str, float] | None:
        from textopia.models.critic import critic_logits

        if not self.valid_examples:
            return None
        was_training = model.training
        model.eval()
        correct, nats = 0.0, 0.0
        for start in range(0, len(self.valid_examples), 256):
            batch = {k: v.to(accelerator.device) for k, v in self._batch(self.valid_examples[start:start + 256]).items()}
            logits = critic_logits(model, batch["input_ids"], batch["attention_mask"])
            correct += float(((logits > 0).float() == batch["labels"]).sum())
            nats += float(torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["labels"], reduction="sum"))
        model.train(was_training)
        count = len(self.valid_examples)
        return {"accuracy": correct / count, "bce_nats": nats / count, "examples": float(count)}
