"""The form of a prompt: repetition within it (conventions: :mod:`textopia.evaluation.metrics`)."""

from __future__ import annotations

import math

from textopia.evaluation.metrics.diversity import ngrams
from textopia.text import tokenize


# --------------------------------------------------------------------------------------------
# Form
# --------------------------------------------------------------------------------------------


def repetition_rate(text: str, n: int) -> float:
    """Share of a prompt's n-gram occurrences that repeat an earlier n-gram of the same prompt.

    ``1 - unique n-grams / total n-grams`` within one text, the seq-rep-n of Welleck et al.
    2020, "Neural Text Generation with Unlikelihood Training" (ICLR). ``"a cat, a cat"`` has
    bigrams (a cat)(cat a)(a cat): 1 - 2/3 = 1/3. 0 means no repeats.

    Returns:
        A share in [0, 1); NaN if the text has fewer than n words.

    Raises:
        ValueError: if ``n < 1``.
    """
    grams = ngrams(tokenize(text), n)
    if not grams:
        return math.nan
    return 1.0 - len(set(grams)) / len(grams)


