"""Exact token-weighted likelihood of held-out prompts.

Which tokens count: every prompt token and the EOS that ends it; never the idea part, the
``<|prompt|>`` marker or padding. The cross-entropy is the sum of their negative
log-likelihoods divided by their number (nats per token), over the whole set (not a mean of
batch means); perplexity is ``exp`` of it. Per-word perplexity divides the same total by the
number of whitespace-separated words, so models with different tokenizers compare.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from textopia.data.batching import ExampleConfig, PromptDataset, collate
from textopia.data.tokenizer import IGNORE_INDEX, PromptTokenizer


@dataclass
class LikelihoodResult:
    """Totals over a set of prompts.

    Attributes:
        nats: summed negative log-likelihood of the counted tokens (nats).
        tokens: counted tokens (prompt tokens + EOS).
        words: whitespace words of the scored prompts.
        prompts: prompts scored.
        truncated: prompts longer than the model's context; their tail (and EOS) is not counted.
    """

    nats: float
    tokens: int
    words: int
    prompts: int
    truncated: int = 0

    @property
    def ce_nats_per_token(self) -> float:
        return self.nats / max(1, self.tokens)

    @property
    def perplexity(self) -> float:
        return _safe_exp(self.ce_nats_per_token)

    @property
    def perplexity_per_word(self) -> float:
        return _safe_exp(self.nats / max(1, self.words))

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(
            ce_nats_per_token=self.ce_nats_per_token,
            perplexity=self.perplexity,
            perplexity_per_word=self.perplexity_per_word,
            counted_tokens="prompt tokens and EOS; not the idea, the <|prompt|> marker or padding",
        )
        return out


def _safe_exp(x: float) -> float:
    return math.exp(x) if x < 700 else float("inf")


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each row's summed next-token NLL: the one shifted cross-entropy every family uses.

    Args:
        logits: (B, T, V) float, the model's output at each position (position t predicts
            ``labels[t + 1]``); computed in float32 whatever their dtype.
        labels: (B, T) int64, the token at each position, -100 where it does not count.

    Returns:
        (B,) float32, nats per row; differentiable.
    """
    return F.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels[:, 1:], ignore_index=IGNORE_INDEX,
                           reduction="none").sum(dim=1)


def token_nll_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token NLL (:func:`token_nll` over the batch) and the number of counted tokens.

    Args:
        logits: (B, T, V) float, the model's output at each position.
        labels: (B, T) int64, the token at each position, -100 where it does not count.

    Returns:
        ``(nats, count)``: 0-dim float64 and int64 tensors. Position t predicts labels[t + 1].
    """
    return token_nll(logits, labels).double().sum(), (labels[:, 1:] != IGNORE_INDEX).sum()


@torch.no_grad()
def score_prompts(
    model,
    tokenizer: PromptTokenizer,
    prompts: list[str],
    *,
    ideas: str = "none",
    batch_size: int = 32,
    max_length: int = 256,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> LikelihoodResult:
    """Exact CE of ``prompts`` under a decoder-only model.

    Args:
        model: a causal LM whose ``forward(input_ids, attention_mask)`` returns ``.logits``.
        ideas: ``"none"`` scores p(prompt) unconditionally; ``"derived"`` scores
            p(prompt | idea) with one idea derived per prompt (``seed``).
        max_length: the model's context in tokens; longer examples are cut (counted in
            ``truncated``).

    A model that holds reduced-precision weights for decoding (the lean engine's ``exact()``)
    is scored with its float32 weights: the figure is the model's own.
    """
    exact = getattr(model, "exact", None)
    with exact() if callable(exact) else contextlib.nullcontext():
        return _score_prompts(model, tokenizer, prompts, ideas=ideas, batch_size=batch_size,
                              max_length=max_length, seed=seed, device=device, progress=progress)


def _score_prompts(model, tokenizer, prompts, *, ideas, batch_size, max_length, seed, device, progress):
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    dataset = PromptDataset(prompts, tokenizer, ExampleConfig(max_length=max_length), seed=seed, ideas=ideas)
    lengths = dataset.lengths()
    order = sorted(range(len(dataset)), key=lengths.__getitem__)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    nats = 0.0
    tokens = 0
    truncated = 0
    iterator = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc="eval", unit="batch")
    for idx in iterator:
        examples = [dataset[i] for i in idx]
        truncated += sum(ids[-1] != tokenizer.eos_id for ids, _ in examples)
        batch = collate(examples, tokenizer.pad_id)
        logits = model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).logits
        n, c = token_nll_sum(logits, batch["labels"].to(device))
        nats += float(n)
        tokens += int(c)
    model.train(was_training)
    words = sum(len(p.split()) for p in prompts)
    return LikelihoodResult(nats=nats, tokens=tokens, words=words, prompts=len(prompts), truncated=truncated)


def unigram_baseline(
    tokenizer: PromptTokenizer, train_prompts: list[str], test_prompts: list[str], *, max_length: int = 256
) -> LikelihoodResult:
    """CE of a unigram model (add-one smoothed token frequencies of the train split) on the
    same tokens that :func:`score_prompts` counts unconditionally (prompt tokens and EOS)."""
    vocab = len(tokenizer)
    counts = torch.ones(vocab, dtype=torch.float64)
    for ids in tokenizer.encode_batch(train_prompts):
        counts += torch.bincount(torch.tensor(ids + [tokenizer.eos_id], dtype=torch.long), minlength=vocab).double()
    logp = torch.log(counts / counts.sum())
    nats = 0.0
    tokens = 0
    truncated = 0
    for ids in tokenizer.encode_batch(test_prompts):
        body = (ids + [tokenizer.eos_id])[: max_length - 1]
        truncated += len(ids) + 1 > max_length - 1
        nats -= float(logp[torch.tensor(body, dtype=torch.long)].sum())
        tokens += len(body)
    words = sum(len(p.split()) for p in test_prompts)
    return LikelihoodResult(nats=nats, tokens=tokens, words=words, prompts=len(test_prompts), truncated=truncated)
