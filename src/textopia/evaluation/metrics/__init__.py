"""Text-quality metrics of generated prompts: diversity, relevance, novelty, form and CLIP tokens.

One module each (:mod:`.diversity`, :mod:`.relevance`, :mod:`.novelty`, :mod:`.form`,
:mod:`.clip_tokens`); this package gathers their names and :func:`text_metrics`.

Everything here is a pure function of strings (and, for the embedding figures, of a
:class:`SentenceEmbedder`); :func:`text_metrics` gathers all figures in one flat dict.

Inputs are *samples*: ``{idea: [prompt, prompt, ...]}``, the prompts a model wrote for each idea.
Human held-out prompts grouped by their derived idea are just another samples dict, so the same
:func:`text_metrics` call gives the reference figures that a model's figures are compared with.

Conventions:

* **Words** (:func:`tokenize`): lower-cased runs of letters, digits and underscores, with inner
  apostrophes kept (``"it's"``); punctuation is dropped, so ``"castle, 8k"`` is
  ``["castle", "8k"]``. Prompts are comma-separated tag lists; kept commas would be the most
  frequent "word" and would dominate every n-gram figure. All n-gram figures use these words.
* **n-grams** never cross prompt boundaries.
* **Two levels of averaging**: *pooled* figures treat all samples as one set (``distinct_n``,
  ``div``, lengths, repetition, novelty); *per-idea* figures (``*_within``, ``self_bleu``,
  ``relevance_*``) are computed within each idea's group and averaged with equal weight per idea.
* **Undefined values are NaN**, e.g. distinct-3 of one-word prompts (no 3-grams) or self-BLEU of
  a group of one; averages skip NaN and are NaN only when nothing is defined. Note that
  ``json.dumps`` writes NaN as the non-standard ``NaN``.
* Shares, distinct-n and Div are in [0, 1]; self-BLEU is on sacrebleu's **0-100** scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from textopia.evaluation.metrics.diversity import (  # noqa: F401  (the package's names)
    _mean,
    distinct_n,
    distinct_n_within,
    div_score,
    ngrams,
    self_bleu,
    self_bleu_within,
)
from textopia.evaluation.metrics.form import repetition_rate  # noqa: F401
from textopia.evaluation.metrics.novelty import TrainingIndex, normalize_prompt  # noqa: F401
from textopia.evaluation.metrics.relevance import (  # noqa: F401
    SentenceEmbedder,
    frechet_distance,
    relevance_cosine,
    relevance_recall_within,
)
from textopia.text import tokenize


# --------------------------------------------------------------------------------------------
# All figures
# --------------------------------------------------------------------------------------------

#: n-gram orders reported by :func:`text_metrics` for distinct-n.
DISTINCT_ORDERS = (1, 2, 3, 4)
#: n-gram orders reported by :func:`text_metrics` for the repetition rate.
REPETITION_ORDERS = (1, 2, 3)


def text_metrics(
    samples: Mapping[str, Sequence[str]],
    *,
    training_index: TrainingIndex | None = None,
    embedder: SentenceEmbedder | None = None,
    clip_tokens: bool = True,
) -> dict[str, float]:
    """All text figures of a set of samples, in one flat dict.

    For reference figures, pass human held-out prompts grouped by their derived idea as
    ``samples``: no special code is needed.

    Args:
        samples: ``{idea: [prompt, ...]}``; ideas with no prompts are ignored.
        training_index: enables the novelty figures; skipped (keys absent) when None.
        embedder: enables ``relevance_cosine``; skipped (key absent) when None.
        clip_tokens: compute the CLIP-token figures (needs CLIP's tokenizer, see
            :mod:`textopia.evaluation.metrics.clip_tokens`); keys absent when False.

    Returns:
        Keys (shares in [0, 1] unless said; "per idea" = mean over ideas, equal weight):

        - ``n_ideas``, ``n_samples``: counts.
        - ``distinct_{1,2,3,4}``: :func:`distinct_n` pooled over all samples.
        - ``distinct_{1,2,3,4}_within``: :func:`distinct_n_within`, per idea.
        - ``div``: :func:`div_score` pooled (LD4LG); ``div_within``: per idea.
        - ``self_bleu``: :func:`self_bleu_within`, per idea, **0-100**.
        - ``relevance_recall``: :func:`relevance_recall`, per idea.
        - ``relevance_cosine``: :func:`relevance_cosine`, per idea (with ``embedder``).
        - ``train_verbatim_share``: :meth:`TrainingIndex.verbatim_share` (with ``training_index``).
        - ``train_novel_share``: 1 - ``train_verbatim_share``.
        - ``train_{n}gram_overlap`` (n of the index, 4 by default): :meth:`TrainingIndex.ngram_overlap`.
        - ``words_mean``: words per prompt (:func:`tokenize`, punctuation not counted).
        - ``clip_tokens_mean``, ``clip_tokens_max``: CLIP tokens per prompt, without start/end.
        - ``clip_tokens_over_77_share``: share of prompts longer than the encoder's 77 tokens
          with start and end, i.e. with more than 75 prompt tokens (the rest is cut off).
        - ``repetition_rate_{1,2,3}``: :func:`repetition_rate`, mean over prompts that have
          an n-gram.

        Undefined values are NaN (see the module docstring).

    Raises:
        ValueError: if there are no samples at all.
        RuntimeError: if ``clip_tokens`` and CLIP's tokenizer cannot be loaded.
    """
    groups = {idea: list(outs) for idea, outs in samples.items() if len(outs) > 0}
    texts = [t for outs in groups.values() for t in outs]
    if not texts:
        raise ValueError("text_metrics: no samples")
    out: dict[str, float] = {"n_ideas": float(len(groups)), "n_samples": float(len(texts))}

    for n in DISTINCT_ORDERS:
        out[f"distinct_{n}"] = distinct_n(texts, n)
        out[f"distinct_{n}_within"] = distinct_n_within(groups, n)
    out["div"] = div_score(texts)
    out["div_within"] = _mean(div_score(g) for g in groups.values())
    out["self_bleu"] = self_bleu_within(groups)

    out["relevance_recall"] = relevance_recall_within(groups)
    if embedder is not None:
        out["relevance_cosine"] = relevance_cosine(groups, embedder)

    if training_index is not None:
        out["train_verbatim_share"] = training_index.verbatim_share(texts)
        out["train_novel_share"] = 1.0 - out["train_verbatim_share"]
        out[f"train_{training_index.n}gram_overlap"] = training_index.ngram_overlap(texts)

    out["words_mean"] = sum(len(tokenize(t)) for t in texts) / len(texts)
    if clip_tokens:
        from textopia.evaluation.metrics.clip_tokens import (
            CLIP_MAX_PROMPT_TOKENS,
            count_clip_tokens_batch,
        )

        counts = count_clip_tokens_batch(texts)
        out["clip_tokens_mean"] = sum(counts) / len(counts)
        out["clip_tokens_max"] = float(max(counts))
        out["clip_tokens_over_77_share"] = sum(c > CLIP_MAX_PROMPT_TOKENS for c in counts) / len(counts)
    for n in REPETITION_ORDERS:
        out[f"repetition_rate_{n}"] = _mean(repetition_rate(t, n) for t in texts)
    return out
