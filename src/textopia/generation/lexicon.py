"""Lexically constrained sampling: the words a prompt spells are words of the corpus.

A decoder that reads a sampled latent often spells words no prompt ever held ("tugiles",
"kyogrechov"): each subword is likely, the word is not. :class:`KnownWordsOnly` removes, among
each row's most likely next tokens, those that would spell a word that is not known (not in
the corpus's :class:`~textopia.text.KnownWords` nor among the idea's words): a token that
continues a word must leave a prefix of a known word, and a token that ends a word (a space, a
punctuation mark, the end of the prompt) must end a known word. Numbers ("1920") are words, and
a word goes on through its digits and contractions ("8k", "artgerm's") as :func:`~textopia.text.tokenize`
reads it; a piece of a multi-byte character leaves its word unchecked. This is constrained decoding on a lexicon (a prefix check at each step, as in
lexically constrained decoding, Hokamp & Liu 2017, applied to a word list rather than to
required phrases) on each row's :data:`CANDIDATES` most likely tokens: the row samples among those
that pass (a top-k truncation too). Where none passes, every token of the vocabulary is checked
and the row samples among those that pass ("quag" + "mire", where the model wanted "ling").

The tokenizer must split words as GPT-2's byte-level BPE does: a token is a run of letters, of
digits or of other marks, with at most one leading space.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable

import torch

from textopia.errors import TextopiaError
from textopia.text import KnownWords, tokenize

#: Candidates checked per row and step (the most likely); a row then samples among those that pass.
CANDIDATES = 32

# token classes
_WORD, _SPACE_WORD, _OTHER, _FREE = 0, 1, 2, 3

#: A contraction piece glued to its word ("'s" of "haunted's"), one word for ``tokenize``.
_CONTRACTION = re.compile(r"['\u2019]\w+")


class TokenPieces:
    """The text of each token of a byte-level BPE vocabulary, classified once per tokenizer.

    Attributes:
        kind: per token id, one of word (letters, digits or a contraction, going on with the word
            before it), space + word (a new word), free (a piece of a multi-byte character) and
            other (punctuation, spaces, special tokens).
        chars: per token id, its word characters, lower-cased ("" for the other kinds).
    """

    def __init__(self, tokenizer) -> None:
        backend = tokenizer.hf.backend_tokenizer  # a tokenizers.Tokenizer, under either wrapper
        if type(backend.decoder).__name__ != "ByteLevel":
            raise TextopiaError("known_words_only needs a byte-level BPE tokenizer (GPT-2's kind); this model's "
                                f"decodes with {type(backend.decoder).__name__}")
        self.kind: list[int] = []
        self.chars: list[str] = []
        for token_id in range(backend.get_vocab_size(with_added_tokens=True)):
            token = backend.id_to_token(token_id)
            text = backend.decoder.decode([token]) if token is not None else ""
            body = text[1:] if text.startswith(" ") else text
            if "\ufffd" in body:  # a piece of a multi-byte character
                kind, chars = _FREE, ""
            elif body and (body.isalnum() or _CONTRACTION.fullmatch(body)):
                kind, chars = (_SPACE_WORD if text.startswith(" ") else _WORD), body.lower()
            else:
                kind, chars = _OTHER, ""
            self.kind.append(kind)
            self.chars.append(chars)


class Lexicon:
    """Known words as a sorted list, for exact and prefix lookups (``bisect``, no prefix table)."""

    def __init__(self, words: Iterable[str]) -> None:
        self.sorted = sorted(set(words))
        self.words = frozenset(self.sorted)

    def is_prefix(self, prefix: str) -> bool:
        """Whether some word starts with ``prefix``."""
        i = bisect.bisect_left(self.sorted, prefix)
        return i < len(self.sorted) and self.sorted[i].startswith(prefix)

    def is_prefix_before_non_ascii(self, prefix: str, scan: int = 256) -> bool:
        """Whether some word goes on from ``prefix`` with a non-ASCII character ("pok" of "pokémon";
        among the first ``scan`` words that start with it)."""
        i = bisect.bisect_left(self.sorted, prefix)
        n = len(prefix)
        for word in self.sorted[i : i + scan]:
            if not word.startswith(prefix):
                return False
            if len(word) > n and not word[n].isascii():
                return True
        return False

    def __contains__(self, word: str) -> bool:
        return word in self.words


def _cached(owner: object, attribute: str, build):
    """``owner.<attribute>``, built by ``build(owner)`` and kept there on first use."""
    value = getattr(owner, attribute, None)
    if value is None:
        value = build(owner)
        setattr(owner, attribute, value)
    return value


def lexicon_for(known: KnownWords) -> Lexicon:
    """The :class:`Lexicon` of ``known`` (built once per word list and cached on it)."""
    return _cached(known, "_lexicon", lambda k: Lexicon(k.words))


def pieces_for(tokenizer) -> TokenPieces:
    """The :class:`TokenPieces` of ``tokenizer`` (built once and cached on it)."""
    return _cached(tokenizer, "_token_pieces", TokenPieces)


class KnownWordsOnly:
    """Remove the candidate tokens that would spell an unknown word (see the module docstring).

    Args:
        tokenizer: a :class:`~textopia.data.tokenizer.PromptTokenizer` (byte-level BPE).
        known: the corpus's known words.
        context_length: tokens of each row before the prompt's first (the idea's; not checked).
        extra_words: text whose words are allowed too (the idea: a name the corpus never held).
        candidates: how many of each row's most likely tokens are checked.

    Called as a logits processor: ``(input_ids (N, T) int64, scores (N, V) float) -> scores``,
    with ``-inf`` on the removed tokens.
    """

    def __init__(self, tokenizer, known: KnownWords, context_length: int, extra_words: str | None = None,
                 candidates: int = CANDIDATES) -> None:
        self.pieces = pieces_for(tokenizer)
        self.lexicon = lexicon_for(known)
        self.extra = Lexicon(tokenize(extra_words or ""))
        self.context_length = context_length
        self.candidates = candidates
        self._cache: dict[tuple[str, int], bool] = {}
        self._full: dict[str, list[int]] = {}

    # -- words --------------------------------------------------------------------------------
    def _complete(self, word: str) -> bool:
        return word.isdigit() or word in self.lexicon or word in self.extra

    def _prefix(self, word: str) -> bool:
        return word.isdigit() or self.lexicon.is_prefix(word) or self.extra.is_prefix(word)

    def _partial(self, ids: list[int]) -> str | None:
        """The word the row is spelling (its characters so far; "" between words), or None where
        it holds a piece of a multi-byte character (not checked)."""
        kind, chars = self.pieces.kind, self.pieces.chars
        parts: list[str] = []
        i = len(ids) - 1
        while i >= self.context_length:
            k = kind[ids[i]] if ids[i] < len(kind) else _OTHER
            if k == _FREE:
                return None
            if k == _OTHER:
                break
            parts.append(chars[ids[i]])
            if k == _SPACE_WORD:
                break
            i -= 1
        return "".join(reversed(parts))

    def allowed(self, partial: str | None, token: int) -> bool:
        """Whether ``token`` may follow a row spelling ``partial`` (see :meth:`_partial`): it goes on
        with a prefix of a known word, or it ends a known word (or none) and starts a prefix of one."""
        if partial is None:
            return True
        key = (partial, token)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        kind = self.pieces.kind[token] if token < len(self.pieces.kind) else _OTHER
        ends = not partial or self._complete(partial)
        if kind == _FREE:  # a non-ASCII character: it may end the word ("koonin”") or go on with it ("poké")
            ok = ends or self.lexicon.is_prefix_before_non_ascii(partial)
        elif kind == _WORD and partial:
            ok = self._prefix(partial + self.pieces.chars[token])
        elif kind == _OTHER:
            ok = ends
        else:  # a new word
            ok = ends and self._prefix(self.pieces.chars[token])
        self._cache[key] = ok
        return ok

    def _all_allowed(self, partial: str) -> list[int]:
        """Every token that may follow ``partial`` (cached per word: a rare, slower path)."""
        hit = self._full.get(partial)
        if hit is None:
            hit = self._full[partial] = [t for t in range(len(self.pieces.kind)) if self.allowed(partial, t)]
        return hit

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        k = min(self.candidates, scores.size(-1))
        top = torch.topk(scores, k, dim=-1)
        finite = torch.isfinite(top.values).tolist()
        for row, (ids, cands, live) in enumerate(zip(input_ids.tolist(), top.indices.tolist(), finite, strict=True)):
            partial = self._partial(ids)
            if partial is None:
                continue
            kept = [t for t, ok in zip(cands, live, strict=True) if ok and self.allowed(partial, t)]
            if not kept:  # a word none of the likely tokens can finish: the vocabulary's ways to finish it
                kept = self._all_allowed(partial)
            if kept:
                keep = scores[row, kept]
                if bool(torch.isfinite(keep).any()):  # else an earlier rule removed them all: leave the row
                    scores[row] = -math.inf
                    scores[row, kept] = keep
        return scores
