"""Examples and batches for decoder-only models.

Each prompt becomes, with probability ``1 - p_unconditional``, an idea-conditioned example
(``<|idea|> idea <|prompt|> prompt <|endoftext|>``, idea derived afresh each epoch) or else a
plain one (``<|prompt|> prompt <|endoftext|>``). Batches group prompts of similar length to waste
little on padding::

    epoch e:  permutation(seed, e) ─▶ chunks of 50·B indices ─▶ sort each by length
              ─▶ cut into batches of B ─▶ shuffle the batches ─▶ [b0, b1, b2, ...]

Everything random is a function of (seed, epoch, index), so a resumed run sees the same batches.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from textopia.bounds import MAX_POSITIONS, bounded, check_fields
from textopia.data.ideas import derive_idea
from textopia.data.tokenizer import IGNORE_INDEX, PromptTokenizer


@dataclass
class ExampleConfig:
    """How prompts become examples (the ``[data]`` settings of a training config)."""

    p_unconditional: float = bounded(0.2, 0, 1)  # share of examples with no idea
    max_length: int = bounded(256, 2, MAX_POSITIONS)  # tokens per example; longer prompts are cut

    def __post_init__(self) -> None:
        check_fields(self, "data")


class PromptDataset(torch.utils.data.Dataset):
    """Prompts as ``(input_ids, labels)`` examples; ideas drawn per (seed, epoch, index).

    Args:
        prompts: normalised prompt texts.
        tokenizer: the model's tokenizer.
        config: example settings.
        seed: base seed of idea derivation.
        ideas: ``"random"`` (training: derived anew each epoch, some examples unconditional),
            ``"derived"`` (evaluation: one fixed idea per prompt), ``"none"`` (all unconditional).
        cache: a file to keep the token ids in between runs (safetensors; checked by digest).
    """

    def __init__(
        self,
        prompts: list[str],
        tokenizer: PromptTokenizer,
        config: ExampleConfig | None = None,
        *,
        seed: int = 0,
        ideas: str = "random",
        cache: Path | None = None,
    ) -> None:
        if ideas not in ("random", "derived", "none"):
            raise ValueError(f"ideas must be random, derived or none, got {ideas!r}")
        self.prompts = prompts
        self.tokenizer = tokenizer
        self.config = config or ExampleConfig()
        self.seed = seed
        self.ideas = ideas
        self.epoch = 0
        if cache is not None:
            self.prompt_ids = TokenizedPrompts.cached(prompts, tokenizer, cache)
        else:
            self.prompt_ids = TokenizedPrompts.encode(prompts, tokenizer)

    def __len__(self) -> int:
        return len(self.prompts)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def idea_for(self, index: int) -> str | None:
        """The idea of example ``index`` in the current epoch (None: unconditional)."""
        if self.ideas == "none":
            return None
        epoch = self.epoch if self.ideas == "random" else 0
        rng = random.Random(f"{self.seed}/{epoch}/{index}")
        if self.ideas == "random" and rng.random() < self.config.p_unconditional:
            return None
        return derive_idea(self.prompts[index], rng)

    def __getitem__(self, index: int) -> tuple[list[int], list[int]]:
        return self.tokenizer.example(self.prompt_ids[index], self.idea_for(index), self.config.max_length)

    def lengths(self) -> list[int]:
        """Prompt lengths in tokens (the bucketing key)."""
        return self.prompt_ids.lengths().tolist()


class TokenizedPrompts:
    """Token ids of many prompts in two flat arrays (compact: 4 bytes a token).

    ``ids`` (N_tokens,) int32 holds every prompt's ids end to end; ``offsets`` (N + 1,) int64
    marks where each begins. Indexing gives a list of ints.
    """

    def __init__(self, ids: np.ndarray, offsets: np.ndarray) -> None:
        self.ids = ids
        self.offsets = offsets

    @classmethod
    def encode(cls, prompts: list[str], tokenizer: PromptTokenizer, chunk: int = 50_000) -> "TokenizedPrompts":
        parts: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        for start in range(0, len(prompts), chunk):
            encoded = tokenizer.encode_batch(prompts[start : start + chunk])
            lengths.append(np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded)))
            parts.append(np.fromiter((t for e in encoded for t in e), dtype=np.int32, count=int(lengths[-1].sum())))
        offsets = np.zeros(len(prompts) + 1, dtype=np.int64)
        if lengths:
            np.cumsum(np.concatenate(lengths), out=offsets[1:])
        ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
        return cls(ids, offsets)

    @classmethod
    def cached(cls, prompts: list[str], tokenizer: PromptTokenizer, path: Path) -> "TokenizedPrompts":
        """Encode, or read ``path`` (safetensors) if it was written for the same prompts and tokenizer."""
        from safetensors.numpy import load_file, save_file

        key = hashlib.sha256()
        key.update(tokenizer.hf.backend_tokenizer.to_str().encode())
        for p in prompts:
            key.update(p.encode())
            key.update(b"\n")
        digest = np.frombuffer(key.digest(), dtype=np.uint8)
        if path.is_file():
            try:
                saved = load_file(str(path))
                if np.array_equal(saved["digest"], digest):
                    return cls(saved["ids"], saved["offsets"])
            except Exception:  # a stale or damaged cache is rebuilt
                pass
        out = cls.encode(prompts, tokenizer)
        tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
        save_file({"ids": out.ids, "offsets": out.offsets, "digest": digest}, str(tmp))
        os.replace(tmp, path)
        return out

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> list[int]:
        return self.ids[self.offsets[index] : self.offsets[index + 1]].tolist()

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Shuffled batches of similar-length examples; a pure function of (seed, epoch).

    Args:
        lengths: the length of each example.
        batch_size: examples per batch.
        seed: shuffling seed.
        shuffle: False gives batches in file order (evaluation).
        bucket_factor: how many batches' worth of examples are sorted together.
    """

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        bucket_factor: int = 50,
    ) -> None:
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.bucket_factor = bucket_factor
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        n = len(self.lengths)
        if not self.shuffle:
            return [list(range(i, min(i + self.batch_size, n))) for i in range(0, n, self.batch_size)]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=g).tolist()
        chunk = self.batch_size * self.bucket_factor
        out: list[list[int]] = []
        for start in range(0, n, chunk):
            part = sorted(order[start : start + chunk], key=self.lengths.__getitem__)
            out += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        perm = torch.randperm(len(out), generator=g).tolist()
        return [out[i] for i in perm]

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size


def collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of ``(input_ids, labels)``.

    Returns:
        ``input_ids`` (B, T) int64, ``attention_mask`` (B, T) int64 (1 = real token),
        ``labels`` (B, T) int64 with -100 on padding and on the idea part.
    """
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, lab) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(lab)] = torch.tensor(lab)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
