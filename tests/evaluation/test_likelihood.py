"""Exact likelihood: score_prompts against a hand computation on a model whose logits we set."""

import math

import pytest
import torch
from torch import nn

from textopia.data.batching import PromptDataset
from textopia.evaluation.likelihood import LikelihoodResult, score_prompts, token_nll_sum

PROMPTS = [
    "a red castle on a hill, oil painting",
    "cat",
    "portrait of an old sailor, dramatic light, highly detailed, by rembrandt",
    "two birds",
    "a city at night",
]


class BigramToy(nn.Module):
    """A toy LM: the logits after token ``a`` are row ``a`` of a fixed table, whatever came before."""

    def __init__(self, vocab_size: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(vocab_size, vocab_size, generator=g) * 2.0)  # (V, V)

    def forward(self, input_ids, attention_mask=None, **_):
        class Out:
            pass

        out = Out()
        out.logits = self.table[input_ids]  # (B, T, V)
        return out


def _hand_nats(table: torch.Tensor, sequences: list[tuple[list[int], list[int]]]) -> tuple[float, int]:
    """Sum of -log p(next | previous) over the counted positions, one token at a time, in float64."""
    logp = torch.log_softmax(table.double(), dim=-1)
    nats, count = 0.0, 0
    for ids, labels in sequences:
        for t in range(1, len(ids)):
            if labels[t] != -100:
                nats -= float(logp[ids[t - 1], labels[t]])
                count += 1
    return nats, count


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_exact_ce_is_the_token_mean_computed_by_hand(tokenizer, batch_size):
    model = BigramToy(len(tokenizer))
    result = score_prompts(model, tokenizer, PROMPTS, batch_size=batch_size, max_length=256)
    # By hand: each example is <|prompt|> prompt EOS; the prompt tokens and EOS count.
    sequences = []
    for p in PROMPTS:
        ids = [tokenizer.prompt_id, *tokenizer.encode(p), tokenizer.eos_id]
        sequences.append((ids, [-100, *ids[1:]]))
    nats, count = _hand_nats(model.table.detach(), sequences)
    assert result.tokens == count == sum(len(tokenizer.encode(p)) + 1 for p in PROMPTS)
    assert result.nats == pytest.approx(nats, rel=1e-5)
    assert result.ce_nats_per_token == pytest.approx(nats / count, rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(nats / count), rel=1e-5)
    words = sum(len(p.split()) for p in PROMPTS)
    assert result.words == words and result.perplexity_per_word == pytest.approx(math.exp(nats / words), rel=1e-5)
    assert result.prompts == len(PROMPTS) and result.truncated == 0


def test_the_idea_part_is_not_counted(tokenizer):
    model = BigramToy(len(tokenizer), seed=1)
    result = score_prompts(model, tokenizer, PROMPTS, ideas="derived", batch_size=3, seed=5)
    dataset = PromptDataset(PROMPTS, tokenizer, seed=5, ideas="derived")
    sequences = [dataset[i] for i in range(len(PROMPTS))]
    assert any(ids[0] == tokenizer.idea_id for ids, _ in sequences)  # some examples carry an idea
    nats, count = _hand_nats(model.table.detach(), sequences)
    assert result.tokens == count == sum(len(tokenizer.encode(p)) + 1 for p in PROMPTS)
    assert result.nats == pytest.approx(nats, rel=1e-5)


def test_truncated_prompts_are_counted_up_to_the_cut(tokenizer):
    model = BigramToy(len(tokenizer), seed=2)
    result = score_prompts(model, tokenizer, PROMPTS, max_length=6)
    sequences = []
    for p in PROMPTS:
        ids = [tokenizer.prompt_id, *tokenizer.encode(p), tokenizer.eos_id][:6]
        sequences.append((ids, [-100, *ids[1:]]))
    nats, count = _hand_nats(model.table.detach(), sequences)
    assert result.tokens == count and result.nats == pytest.approx(nats, rel=1e-5)
    assert result.truncated == sum(len(tokenizer.encode(p)) + 2 > 6 for p in PROMPTS)


def test_token_nll_sum_shifts_and_ignores():
    logits = torch.zeros(1, 3, 4)  # uniform: every counted token costs ln 4
    labels = torch.tensor([[-100, 2, -100]])
    nats, count = token_nll_sum(logits, labels)
    assert int(count) == 1 and float(nats) == pytest.approx(math.log(4))


def test_perplexity_overflow_is_inf():
    assert LikelihoodResult(nats=1e6, tokens=1, words=1, prompts=1).perplexity == math.inf
