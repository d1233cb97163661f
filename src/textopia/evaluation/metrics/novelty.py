"""Novelty and memorisation: how much of a prompt a training set already holds (conventions:
:mod:`textopia.evaluation.metrics`)."""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from textopia.data.corpus import read_split
from textopia.errors import TextopiaError
from textopia.text import tokenize

logger = logging.getLogger(__name__)


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


def training_index_for(data_dir: str | Path, *, n: int = 4) -> TrainingIndex:
    """The :class:`TrainingIndex` of ``data_dir/train.txt``, cached beside it.

    The cache file is named by a digest of ``train.txt``, so a changed split is re-indexed.
    """
    data_dir = Path(data_dir)
    train = data_dir / "train.txt"
    if not train.is_file():
        raise TextopiaError(f"split not found: {train} (needed for the novelty figures)")
    h = hashlib.sha256()
    with train.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    cache = data_dir / f"train.{n}gram-index.{h.hexdigest()[:16]}.npz"
    if cache.is_file():
        try:
            return TrainingIndex.load(cache)
        except Exception as e:  # noqa: BLE001 - a damaged or outdated cache is rebuilt, whatever numpy raises
            logger.warning("rebuilding the training index (%s)", e)
    index = TrainingIndex.build(read_split(data_dir, "train"), n=n)
    tmp = cache.with_name(f".{cache.stem}.{os.getpid()}.npz")
    try:
        index.save(tmp)
        os.replace(tmp, cache)
    except OSError as e:
        logger.warning("cannot cache the training index in %s: %s", data_dir, e)
    return index
