"""Diversity of generated prompts: distinct-n, Div and self-BLEU (conventions: :mod:`textopia.evaluation.metrics`)."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from sacrebleu.metrics import BLEU

from textopia.text import tokenize


# --------------------------------------------------------------------------------------------
# Words and n-grams
# --------------------------------------------------------------------------------------------

def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """All contiguous n-grams of a token list, in order: ``len(tokens) - n + 1`` of them (or none).

    Raises:
        ValueError: if ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return list(zip(*(tokens[i:] for i in range(n)), strict=False))


def _mean(values: Iterable[float]) -> float:
    """Mean of the non-NaN values; NaN if there are none."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


# --------------------------------------------------------------------------------------------
# Diversity
# --------------------------------------------------------------------------------------------


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n of a set of texts: unique n-grams / total n-grams, pooled over the texts.

    Li et al. 2016, "A Diversity-Promoting Objective Function for Neural Conversation Models"
    (NAACL). Unique is counted over the whole set (an n-gram repeated in two texts counts once);
    the total counts every occurrence. 1.0 means no n-gram occurs twice.

    Args:
        texts: prompts (see :func:`tokenize` for words).
        n: n-gram order, >= 1.

    Returns:
        A share in (0, 1]; NaN if the texts hold no n-gram (e.g. all shorter than n words).

    Raises:
        ValueError: if ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    unique: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        grams = ngrams(tokenize(text), n)
        unique.update(grams)
        total += len(grams)
    return len(unique) / total if total else math.nan


def distinct_n_within(samples: Mapping[str, Sequence[str]], n: int) -> float:
    """Distinct-n within each idea's group of samples, averaged over ideas (equal weight).

    Measures how different the samples *for the same idea* are from each other, which pooled
    distinct-n hides (different ideas differ anyway). Groups without n-grams are skipped.

    Returns:
        A share in (0, 1]; NaN if no group has an n-gram.

    Raises:
        ValueError: if ``n < 1``.
    """
    return _mean(distinct_n(group, n) for group in samples.values())


def div_score(texts: Sequence[str], orders: Sequence[int] = (2, 3, 4)) -> float:
    """Div, the n-gram diversity of LD4LG: the product of distinct-n over n = 2, 3, 4.

    Lovelace et al. 2023, "Latent Diffusion for Language Generation" (NeurIPS), after Su et al.
    2022 (SimCTG): ``Div = prod_n (1 - rep-n)`` with ``rep-n = 1 - unique n-grams / total
    n-grams`` over the whole generated set, i.e. the product of pooled :func:`distinct_n`.
    LD4LG tokenises with spaCy and keeps case and punctuation; here words are
    :func:`tokenize`'s (lower case, no punctuation), so values are comparable in kind, not digit
    for digit.

    Returns:
        A value in (0, 1]; NaN if any order has no n-gram (all texts shorter than max(orders)).
    """
    result = 1.0
    for n in orders:
        result *= distinct_n(texts, n)
    return result


@functools.lru_cache(maxsize=1)
def _bleu() -> BLEU:
    from sacrebleu.metrics import BLEU

    # sacrebleu's sentence-level defaults (13a tokenizer, exp smoothing, effective order),
    # lower-cased like every other figure here.
    return BLEU(lowercase=True, effective_order=True)


def self_bleu(texts: Sequence[str]) -> float:
    """Self-BLEU of one group: each text's sentence BLEU against all the others, averaged.

    Zhu et al. 2018, "Texygen: A Benchmarking Platform for Text Generation Models" (SIGIR).
    Scored with sacrebleu (Post 2018) ``BLEU(lowercase=True, effective_order=True)``: 13a
    tokenization (punctuation is kept, as BLEU does), BLEU-4 with exponential smoothing, the
    other texts of the group as multiple references. Higher means *less* diverse.

    Returns:
        Mean BLEU on sacrebleu's **0-100 scale**; NaN for fewer than two texts.
    """
    if len(texts) < 2:
        return math.nan
    bleu = _bleu()
    scores = [bleu.sentence_score(t, list(texts[:i]) + list(texts[i + 1 :])).score for i, t in enumerate(texts)]
    return sum(scores) / len(scores)


def self_bleu_within(samples: Mapping[str, Sequence[str]]) -> float:
    """:func:`self_bleu` within each idea's group, averaged over ideas with >= 2 samples (0-100)."""
    return _mean(self_bleu(group) for group in samples.values())


