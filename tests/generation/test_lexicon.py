"""Lexically constrained sampling: the words a prompt spells are known words (or the idea's)."""

from __future__ import annotations

import math

import pytest
import torch

from textopia.errors import TextopiaError
from textopia.generation.lexicon import KnownWordsOnly, Lexicon
from textopia.generation.loader import load
from textopia.text import KnownWords

KNOWN = KnownWords(["a", "cat", "castle", "casting", "hat", "in", "of", "the", "8k", "artgerm's", "pokémon"])


def spell(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text)


def steps_allowed(proc: KnownWordsOnly, ids: list[int]) -> list[bool]:
    """Whether each token of ``ids`` (after the first) may follow the ones before it."""
    return [proc.allowed(proc._partial(ids[:j]), ids[j]) for j in range(1, len(ids))]


def test_lexicon_prefixes():
    lex = Lexicon(["castle", "cat", "pokémon"])
    assert lex.is_prefix("cas") and lex.is_prefix("castle") and lex.is_prefix("ca")
    assert not lex.is_prefix("caz") and not lex.is_prefix("castles")
    assert lex.is_prefix_before_non_ascii("pok") and not lex.is_prefix_before_non_ascii("cas")
    assert "cat" in lex and "ca" not in lex


def test_known_words_pass_and_invented_words_are_stopped(tokenizer):
    proc = KnownWordsOnly(tokenizer, KNOWN, 0, extra_words="kyogre")
    for text in ["a cat in the castle, 8k", "the castle of a cat", "a kyogre hat", "artgerm's cat", "a cat, 1920"]:
        assert all(steps_allowed(proc, spell(tokenizer, text))), text
    # Each of these spells a word that is neither known nor the idea's somewhere.
    for text in ["a cazzle in the castle", "a castles hat", "a cat in the catsle", "a 8kz cat", "a kyog cat"]:
        assert not all(steps_allowed(proc, spell(tokenizer, text))), text


def test_the_processor_keeps_only_allowed_candidates(tokenizer):
    proc = KnownWordsOnly(tokenizer, KNOWN, 0, candidates=8)
    ids = spell(tokenizer, "a cas")  # "cas" goes on as "castle" or "casting", not as "cazzle"
    vocab = len(tokenizer)
    scores = torch.zeros(1, vocab)
    good = [t for t in range(vocab) if proc.allowed(proc._partial(ids), t)]
    bad = [t for t in range(vocab) if t not in good]
    assert good and bad
    scores[0, bad[:4]] = 5.0  # the likeliest candidates all spell unknown words
    scores[0, good[0]] = 4.0
    out = proc(torch.tensor([ids]), scores.clone())
    kept = torch.isfinite(out[0]).nonzero().squeeze(1).tolist()
    assert kept and all(proc.allowed(proc._partial(ids), t) for t in kept)
    assert good[0] in kept and out[0, good[0]] == 4.0
    # None of the candidates passes: the whole vocabulary is searched for ways to go on.
    scores = torch.zeros(1, vocab)
    scores[0, bad[:8]] = 9.0
    out = proc(torch.tensor([ids]), scores.clone())
    kept = set(torch.isfinite(out[0]).nonzero().squeeze(1).tolist())
    assert kept == set(good)
    assert all(out[0, t] == -math.inf for t in bad[:8])
    # Where earlier rules removed every allowed token, the row is left as it was (never all -inf).
    scores = torch.zeros(1, vocab)
    scores[0, good] = -math.inf
    out = proc(torch.tensor([ids]), scores.clone())
    assert torch.equal(out, scores)


def test_a_model_spells_only_known_words(tiny_checkpoint):
    gen = load(tiny_checkpoint)  # 30 training steps: it spells many invented words
    assert gen.known_words is not None
    kw = {"max_new_tokens": 24, "min_new_tokens": 4, "seed": 1, "rerank": False}
    free = [g.prompt for g in gen.generate("castle", 6, **kw)]
    assert any(gen.known_words.invented(p) for p in free)  # the check below can fail
    kept = gen.generate("castle", 6, known_words_only=True, **kw)
    assert kept[0].settings["known_words_only"] is True
    for g in kept:
        assert not [w for w in gen.known_words.invented(g.prompt) if w != "castle"], g.prompt
    assert gen.default_known_words_only() is False  # a GPT leaves it off unless asked
    gen.known_words = None
    with pytest.raises(TextopiaError, match="known-word list"):
        gen.generate("castle", 1, known_words_only=True)


def test_latent_diffusion_spells_only_known_words_by_default(tiny_diffusion_checkpoint):
    gen = load(tiny_diffusion_checkpoint)
    assert gen.default_known_words_only() is True
    out = gen.generate("castle", 3, max_new_tokens=16, min_new_tokens=2, seed=0, steps=3)
    assert out[0].settings["known_words_only"] is True
    for g in out:
        assert not [w for w in gen.known_words.invented(g.prompt) if w != "castle"], g.prompt
    off = gen.generate("castle", 3, max_new_tokens=16, min_new_tokens=2, seed=0, steps=3, known_words_only=False)
    assert off[0].settings["known_words_only"] is False
    gen.known_words = None  # a checkpoint without a list: the default turns off rather than failing
    assert gen.default_known_words_only() is False
    assert gen.generate("castle", 1, max_new_tokens=8, seed=0, steps=3)


def test_latent_variations_spell_only_known_words(tiny_diffusion_checkpoint):
    from textopia.text import content_words

    gen = load(tiny_diffusion_checkpoint)
    source = "a castle on a hill at sunset, oil painting"
    allowed = set(content_words(source))
    for text in gen.variations(source, 4, seed=0):
        assert not [w for w in gen.known_words.invented(text) if w not in allowed], text
