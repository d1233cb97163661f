"""CLIP token counting, built offline from CLIP's merges file (tests against the shared copy skip
without it, and fail in CI: ``tests.conftest.REQUIRE_SHARED``)."""

from __future__ import annotations

import gzip
import itertools
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CORPUS, SHARED, shared_missing
from textopia.evaluation.metrics import clip_tokens
from textopia.evaluation.metrics.clip_tokens import (
    CLIP_BPE_ENV,
    CLIP_HUB_NAME,
    CLIP_VOCAB_SIZE,
    bytes_to_unicode,
    clip_tokenizer,
    clip_vocab_and_merges,
    count_clip_tokens,
    count_clip_tokens_batch,
    resolve_clip_source,
)

# The reference merges file is the shared copy, not the packaged one the code under test reads.
BPE = Path(os.environ.get(CLIP_BPE_ENV) or SHARED / "data" / "clip" / "bpe_simple_vocab_16e6.txt.gz")
needs_bpe = pytest.mark.skipif(not BPE.is_file(), reason=shared_missing(BPE))


def test_bytes_to_unicode_is_a_bijection_onto_printable_chars() -> None:
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert table[ord("a")] == "a" and table[ord(" ")] == "Ġ"  # space -> chr(256 + 32)
    assert all(c.isprintable() for c in table.values())


@needs_bpe
def test_vocab_matches_clip_ids() -> None:
    vocab, merges = clip_vocab_and_merges(BPE)
    assert len(vocab) == CLIP_VOCAB_SIZE == 49408 and len(merges) == 48894
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["!"] == 0 and vocab["!</w>"] == 256  # bytes, then bytes + '</w>'
    assert (vocab["a</w>"], vocab["photo</w>"], vocab["of</w>"], vocab["cat</w>"]) == (320, 1125, 539, 2368)


@needs_bpe
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a photo of a cat", 5),  # five common words, each one '</w>' token
        ("A  Photo\nof a CAT", 5),  # lower-cased, whitespace collapsed
        ("", 0),
        ("8k", 2),  # CLIP's regex splits digits one by one: '8', 'k'
        ("it's 1080p", 7),  # it, 's, 1, 0, 8, 0, p
        ("a cat!!", 3),  # a, cat, '!!' (a punctuation run is one pre-token and one merge)
        ("greg rutkowski", 3),  # greg, rut, kowski
    ],
)
def test_known_counts(text: str, expected: int) -> None:
    assert count_clip_tokens(text, bpe_path=BPE) == expected


@needs_bpe
def test_tokenizer_adds_start_and_end_and_knows_77() -> None:
    tok = clip_tokenizer(BPE)
    assert tok("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok.model_max_length == 77
    assert clip_tokenizer(BPE) is tok  # cached
    assert count_clip_tokens_batch(["cat " * 100, "a cat"], bpe_path=BPE) == [100, 2]  # untruncated
    assert count_clip_tokens_batch([], bpe_path=BPE) == []


def _reference_counter(bpe_path: Path) -> Callable[[str], int]:
    """openai/CLIP simple_tokenizer's algorithm, re-written plainly (without ftfy/html.unescape)."""
    regex = pytest.importorskip("regex")
    with gzip.open(bpe_path, "rt", encoding="utf-8") as f:
        merges = [tuple(line.split()) for line in f.read().split("\n")[1 : 48894 + 1]]
    ranks = {m: i for i, m in enumerate(merges)}
    byte_char = bytes_to_unicode()
    pat = regex.compile(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
        regex.IGNORECASE,
    )

    def bpe(chars: str) -> list[str]:
        word = [*chars[:-1], chars[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
            if best not in ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    def count(text: str) -> int:
        text = " ".join(text.split()).lower()
        return sum(len(bpe("".join(byte_char[b] for b in tok.encode("utf-8")))) for tok in pat.findall(text))

    return count


@needs_bpe
@pytest.mark.skipif(not CORPUS.is_file(), reason=shared_missing(CORPUS))
def test_counts_match_reference_bpe_on_real_prompts() -> None:
    reference = _reference_counter(BPE)
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        # '&' excluded: openai's tokenizer html-unescapes first ("&amp;" -> "&"), HF's does not.
        prompts = [p.rstrip("\n") for p in itertools.islice(f, 300) if "&" not in p]
    assert count_clip_tokens_batch(prompts, bpe_path=BPE) == [reference(p) for p in prompts]


def test_source_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CLIP_BPE_ENV, raising=False)
    assert resolve_clip_source() == str(clip_tokens.PACKAGED_CLIP_BPE)  # shipped: works offline
    local = tmp_path / "shared" / "data" / "clip" / "bpe_simple_vocab_16e6.txt.gz"
    local.parent.mkdir(parents=True)
    local.write_bytes(b"")
    monkeypatch.chdir(tmp_path / "shared")  # ../shared/data/clip/... is never read
    assert resolve_clip_source() == str(clip_tokens.PACKAGED_CLIP_BPE)
    other = tmp_path / "other.txt.gz"
    other.write_bytes(b"")
    monkeypatch.setenv(CLIP_BPE_ENV, str(other))
    assert resolve_clip_source() == str(other.resolve())  # env var before the packaged file
    assert resolve_clip_source(local) == str(local.resolve())  # argument before the env var
    monkeypatch.setenv(CLIP_BPE_ENV, str(tmp_path / "missing.gz"))
    with pytest.raises(FileNotFoundError, match=CLIP_BPE_ENV):
        resolve_clip_source()
    with pytest.raises(FileNotFoundError):
        resolve_clip_source(tmp_path / "missing.gz")
    monkeypatch.delenv(CLIP_BPE_ENV)
    monkeypatch.setattr(clip_tokens, "PACKAGED_CLIP_BPE", tmp_path / "not-installed.gz")
    assert resolve_clip_source() == CLIP_HUB_NAME  # the Hub only for a broken install


def test_packaged_merges_file_ships_with_its_licence() -> None:
    packaged = clip_tokens.PACKAGED_CLIP_BPE
    assert packaged.is_file() and "Copyright (c) 2021 OpenAI" in (packaged.parent / "LICENSE").read_text()
    assert len(clip_vocab_and_merges(packaged)[0]) == CLIP_VOCAB_SIZE


def test_hub_failure_says_to_set_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CLIP_BPE_ENV, raising=False)
    monkeypatch.setattr(clip_tokens, "PACKAGED_CLIP_BPE", tmp_path / "not-installed.gz")

    def offline(name: str) -> None:
        raise OSError(f"cannot reach the Hub for {name}")

    monkeypatch.setattr(clip_tokens, "_from_hub", offline)
    clip_tokens._load_clip_tokenizer.cache_clear()
    with pytest.raises(RuntimeError, match=CLIP_BPE_ENV):
        clip_tokenizer()

    class Empty:  # what transformers 5 returns when every download failed
        def __len__(self) -> int:
            return 2

    monkeypatch.setattr(clip_tokens, "_from_hub", lambda name: Empty())
    with pytest.raises(RuntimeError, match=CLIP_BPE_ENV):
        clip_tokenizer()
    clip_tokens._load_clip_tokenizer.cache_clear()
