"""The reranker's scoring and selection, the idea-boost processor, and the shared word checks."""

from __future__ import annotations

import logging
import math

import pytest
import torch

import textopia
from textopia.generation.boost import IdeaBoostProcessor, clause_end_ids, idea_boost_words
from textopia.generation.rerank import MIN_MEAN_LOGPROB, score_sample, select
from textopia.text import KnownWords, has_all_idea_words, relevance_recall, stutters

KNOWN = KnownWords("a portrait of an old fisherman with his boat oil painting by greg rutkowski grandmother baking "
                   "bread in kitchen warm light".split())


def test_recall_and_all_words_use_stems():
    assert relevance_recall("old castles", "portrait of an old castle") == 1.0
    assert relevance_recall("grandmother baking bread", "grandmother in a kitchen") == pytest.approx(1 / 3)
    assert math.isnan(relevance_recall("the a of", "anything"))
    assert has_all_idea_words("castles", "a castle on a hill")
    assert not has_all_idea_words("red fox", "a red car")


@pytest.mark.parametrize("text, expected", [
    ("a a portrait", True), ("portrait, 8k, 8k", True), ("artstation, artstation", True),
    ("red hair, red hair, blue eyes", True), ("a portrait of a woman, 8k, artstation", False),
    ("woman, ( ( ( ( ( ( ) ) ) ), by karol bak", True), ("((masterpiece)), a cat", False),
    ("a castle, unreal engine, 8k, unreal engine", True), ("a castle, 8k. detailed, 8k", True),
    ("a castle, highly detailed, sharp focus, detailed face", False),
    ("a knight, d & d, fantasy", False), ("a knight, d&d, d & d", True), ("a knight & & knight", True),
    ("a village, neutral light, light blue tones", False), ("a girl, sakura leaves leaves", True),
])
def test_stutters(text, expected):
    assert stutters(text) is expected


def test_invented_words_are_those_not_known():
    assert KNOWN.invented("portrait of an old fisherman, 1920") == []
    assert KNOWN.invented("portrait of Binudhe fisherman") == ["binudhe"]
    assert KNOWN.invented("portrait of Kyogre fisherman", idea="kyogre fisherman") == []  # typed by the user
    assert score_sample("kyogre", "kyogre fisherman", -10, 10, KNOWN).invented == 0


def test_score_orders_relevance_then_words_then_fluency():
    def score(prompt, logprob=-2.0, finished=True):
        return score_sample("old fisherman", prompt, logprob * 10, 10, KNOWN, finished)

    full = score("portrait of an old fisherman with his boat")
    partial = score("portrait of an old boat")
    invented = score("portrait of an old fisherman with his Binudhe")
    stutter = score("portrait of an old old fisherman")
    cut = score("portrait of an old fisherman with his boat", finished=False)
    disfluent = score("portrait of an old fisherman with boat", logprob=MIN_MEAN_LOGPROB - 1)
    # Worse in this order: an invented word, a stutter, cut at the token limit, disfluent.
    assert full.tier() < disfluent.tier() < cut.tier() < stutter.tier() < invented.tier()
    assert invented.tier() < partial.tier()  # relevance comes first
    assert full.recall == 1.0 and partial.recall == 0.5 and invented.invented == 1


def test_select_prefers_tier_then_new_bigrams_then_order():
    good = score_sample("fox", "a red fox in snow", -10, 10, None)
    bad = score_sample("fox", "a red car in snow", -10, 10, None)
    candidates = [(bad, "a red car in snow", "bad"), (good, "a red fox in snow", "g1"),
                  (good, "a red fox in snow at night", "g2"), (good, "painting of a fox by a river", "g3")]
    assert select(candidates, 1) == ["g1"]  # best tier; first in sampling order among equals
    assert select(candidates, 2) == ["g1", "g3"]  # g3 adds more new bigrams than g2
    assert select(candidates, 4)[-1] == "bad"


def test_select_keeps_one_candidate_of_a_group():
    good = score_sample("fox", "a red fox in snow", -10, 10, None)
    candidates = [(good, "a red fox in snow, oil painting", "whole"), (good, "a red fox in snow", "opening"),
                  (good, "painting of a fox by a river", "other")]
    assert select(candidates, 3) == ["whole", "other", "opening"]  # each its own group by default
    assert select(candidates, 3, [0, 0, 1]) == ["whole", "other"]  # one form of sample 0
    assert select(candidates, 1, [0, 0, 1]) == ["whole"]
    with pytest.raises(ValueError, match="2 groups for 3 candidates"):
        select(candidates, 1, [0, 0])


def _vocab_tokenizer(prepared):
    from textopia.data.tokenizer import PromptTokenizer

    return PromptTokenizer.from_dir(prepared)


def test_boost_raises_unwritten_idea_words_and_blocks_eos(prepared):
    tok = _vocab_tokenizer(prepared)
    context = tok.context_ids("castle")
    proc = IdeaBoostProcessor(tok, ["castle"], boost=2.0, context_length=len(context))
    first = {s[0] for s in proc.targets[0]}
    input_ids = torch.tensor([context, context])
    scores = proc(input_ids, torch.zeros(2, len(tok)))
    for t in first:
        assert scores[0, t] == pytest.approx(2.0)
    assert scores[0, tok.eos_id] == -math.inf
    ends = set(clause_end_ids(tok))
    assert ends and all(scores[0, i] == -math.inf for i in ends)  # the idea goes in the first clause
    others = [i for i in range(len(tok)) if i not in first and i != tok.eos_id and i not in ends]
    assert torch.all(scores[:, others] == 0)
    # Once the word is written, nothing is boosted and EOS is allowed again.
    written = torch.tensor([context + list(proc.targets[0][0])] * 2)
    proc2 = IdeaBoostProcessor(tok, ["castle"], boost=2.0, context_length=len(context))
    assert torch.all(proc2(written, torch.zeros(2, len(tok))) == 0)


def test_ban_wins_over_idea_word(tiny_checkpoint, caplog):
    assert idea_boost_words("red castle", ["castle"]) == ["red"]
    gen = textopia.load(str(tiny_checkpoint))
    with caplog.at_level(logging.WARNING):
        gen.generate("red castle", n=2, seed=0, banned_words=["castle"], max_new_tokens=20)
    assert caplog.text.count("ban wins") == 1  # once per request, however many rounds it samples


def test_idea_words_appear_and_banned_never(tiny_checkpoint):
    gen = textopia.load(str(tiny_checkpoint))
    idea = "lighthouse storm"
    boosted = gen.generate(idea, n=6, seed=0, max_new_tokens=40)
    plain = gen.generate(idea, n=6, seed=0, max_new_tokens=40, idea_boost=0.0, rerank=False)
    recall = sum(relevance_recall(idea, g.prompt) for g in boosted) / len(boosted)
    assert recall > sum(relevance_recall(idea, g.prompt) for g in plain) / len(plain)
    assert recall >= 0.6  # a 30-step model; the shipped one is measured in benchmarks/quality.py
    banned = gen.generate(idea, n=6, seed=0, max_new_tokens=40, banned_words=["storm"])
    assert banned and all("storm" not in g.prompt.lower() for g in banned)


def test_reranked_generation_is_deterministic_for_a_seed(tiny_checkpoint):
    gen = textopia.load(str(tiny_checkpoint))
    a = [g.prompt for g in gen.generate("old fisherman", n=5, seed=11)]
    b = [g.prompt for g in gen.generate("old fisherman", n=5, seed=11)]
    assert a == b


def test_generate_batch_decodes_requests_together(tiny_checkpoint):
    from textopia.generation.base import TextopiaError
    from textopia.generation.config import GenerationConfig

    gen = textopia.load(str(tiny_checkpoint))
    settings = GenerationConfig(max_new_tokens=30)
    calls = [("red fox", 2, replace_seed(settings, 1)), ("a castle on a hill at sunset", 3, replace_seed(settings, 2)),
             ("", 2, replace_seed(settings, 3)), (None, 2, replace_seed(settings, 4))]
    out = gen.generate_batch(calls)
    assert not any(isinstance(o, TextopiaError) for o in out) and [len(o) for o in out] == [2, 3, 2, 2]
    bad = gen.generate_batch([("red fox", 0, settings), ("red fox", 1, settings)])  # one bad call fails alone
    assert isinstance(bad[0], TextopiaError) and "n must be" in str(bad[0]) and len(bad[1]) == 1
    def recall(idea, prompts):
        return sum(relevance_recall(idea, g.prompt) for g in prompts) / len(prompts)

    # Each call's rows were written from its own idea (the boost and the context went to the right rows).
    assert recall("red fox", out[0]) > recall("castle hill sunset", out[0])
    assert recall("castle hill sunset", out[1]) > recall("red fox", out[1])
    assert recall("castle hill sunset", out[1]) >= 0.5
    # Alone in its batch, a call gets exactly what generate gives for its seed.
    alone = gen.generate_batch([("red fox", 2, replace_seed(settings, 1))])[0]
    assert [g.prompt for g in alone] == [g.prompt for g in gen.generate("red fox", 2, seed=1, max_new_tokens=30)]


def replace_seed(settings, seed):
    from dataclasses import replace

    return replace(settings, seed=seed)
