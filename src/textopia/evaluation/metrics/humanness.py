"""How far a model's prompts are from human ones as a whole: MAUVE and the critic's two-sample test
(conventions: :mod:`textopia.evaluation.metrics`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mauve_score(model_texts: Sequence[str], human_texts: Sequence[str], embedder, *, seed: int = 0) -> float:
    """MAUVE (Pillutla et al. 2021, "MAUVE: Measuring the Gap Between Neural Text and Human Text
    using Divergence Frontiers", NeurIPS) of ``model_texts`` against ``human_texts``, on the
    sentence embeddings of ``embedder`` (:class:`~textopia.evaluation.metrics.relevance.SentenceEmbedder`,
    MiniLM) instead of GPT-2 large's: the ``mauve-text`` library quantises both sets together
    (PCA, k-means with its own number of clusters) and returns the area under the divergence
    frontier, in (0, 1]; 1 means indistinguishable. A few hundred texts a side give a stable figure.

    Raises:
        ValueError: either side is empty.
    """
    if not model_texts or not human_texts:
        raise ValueError("MAUVE needs texts on both sides")
    import mauve

    p = np.asarray(embedder.encode(list(human_texts)), dtype=np.float32)
    q = np.asarray(embedder.encode(list(model_texts)), dtype=np.float32)
    return float(mauve.compute_mauve(p_features=p, q_features=q, verbose=False, seed=seed).mauve)


def two_sample_accuracy(critic, model_texts: Sequence[str], human_texts: Sequence[str]) -> float:
    """A classifier two-sample test (Lopez-Paz & Oquab 2017): the balanced accuracy with which
    ``critic`` (:class:`~textopia.models.critic.CoherenceCritic`; logit > 0 reads "human") tells
    ``human_texts`` from ``model_texts``. 0.5 means it cannot tell them apart; the mean of its
    accuracy on each side, so that the sides' sizes do not matter.

    Raises:
        ValueError: either side is empty.
    """
    if not model_texts or not human_texts:
        raise ValueError("a two-sample test needs texts on both sides")
    human = critic.logits(list(human_texts))
    model = critic.logits(list(model_texts))
    return 0.5 * (float((human > 0).float().mean()) + float((model <= 0).float().mean()))
