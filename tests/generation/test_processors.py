"""Our logits processors compute what transformers' processors of the same name compute."""

from __future__ import annotations

import math

import pytest
import torch

from textopia.generation import processors as ours


def _cases():
    import transformers as tf

    return [
        (ours.MinNewTokens(3, 5, 0), tf.MinNewTokensLengthLogitsProcessor(3, 5, 0)),
        (ours.MinNewTokens(3, 2, 0), tf.MinNewTokensLengthLogitsProcessor(3, 2, 0)),
        (ours.NoRepeatNGram(2), tf.NoRepeatNGramLogitsProcessor(2)),
        (ours.NoRepeatNGram(3), tf.NoRepeatNGramLogitsProcessor(3)),
        (ours.RepetitionPenalty(1.3), tf.RepetitionPenaltyLogitsProcessor(1.3)),
        (ours.NoBadWords([[4], [7, 2], [3, 3, 9]]), tf.NoBadWordsLogitsProcessor([[4], [7, 2], [3, 3, 9]], eos_token_id=0)),
        (ours.Temperature(0.7), tf.TemperatureLogitsWarper(0.7)),
        (ours.TopK(5), tf.TopKLogitsWarper(5)),
        (ours.MinP(0.1), tf.MinPLogitsWarper(0.1)),
        (ours.TopP(0.9), tf.TopPLogitsWarper(0.9)),
        (ours.TopP(0.3), tf.TopPLogitsWarper(0.3)),
    ]


@pytest.mark.parametrize("case", range(11))
def test_processor_equals_transformers(case):
    mine, theirs = _cases()[case]
    g = torch.Generator().manual_seed(case)
    for trial in range(5):
        input_ids = torch.randint(0, 12, (4, 6 + trial), generator=g)
        input_ids[0, -1], input_ids[0, -2] = 2, 7  # make the (7, 2) and n-gram rules fire somewhere
        input_ids[1, -2:] = torch.tensor([3, 3])
        scores = torch.randn(4, 12, generator=g) * 3
        torch.testing.assert_close(mine(input_ids, scores.clone()), theirs(input_ids, scores.clone()))


@pytest.mark.parametrize("spread", [0.05, 1.0, 6.0])  # flat (the whole vocabulary sorted), mixed, peaked
def test_top_p_on_a_large_vocabulary_equals_transformers(spread):
    import transformers as tf

    g = torch.Generator().manual_seed(7)
    scores = torch.randn(6, 3000, generator=g) * spread
    scores[0] *= 20  # one very peaked row next to flat ones
    ids = torch.zeros(6, 1, dtype=torch.long)
    for p in (0.5, 0.95):
        torch.testing.assert_close(ours.TopP(p)(ids, scores.clone()), tf.TopPLogitsWarper(p)(ids, scores.clone()))


def test_draw_follows_the_distribution_and_skips_zeros():
    from textopia.generation.decoding import draw

    probs = torch.tensor([[0.0, 0.5, 0.0, 0.3, 0.2, 0.0]]).repeat(20000, 1)
    picks = draw(probs, torch.Generator().manual_seed(0))
    counts = torch.bincount(picks, minlength=6).double() / len(picks)
    assert counts[[0, 2, 5]].sum() == 0
    torch.testing.assert_close(counts, probs[0].double(), atol=0.015, rtol=0)
    again = draw(probs[:50], torch.Generator().manual_seed(0))
    assert torch.equal(again, picks[:50])  # the same generator state gives the same tokens


@pytest.mark.parametrize("rounds", [None, 0])
def test_nucleus_draws_follow_the_renormalised_nucleus(monkeypatch, rounds):
    """draw(top_p) samples TopP's nucleus renormalised, by rejection (rounds None) and by the
    sorted fallback alone (rounds 0); a token outside the nucleus is never drawn."""
    from textopia.generation import decoding

    if rounds is not None:
        monkeypatch.setattr(decoding, "NUCLEUS_ROUNDS", rounds)
    probs = torch.tensor([[0.05, 0.4, 0.0, 0.25, 0.2, 0.1],   # nucleus at 0.8: 0.4, 0.25, 0.2
                          [0.9, 0.02, 0.02, 0.02, 0.02, 0.02]])  # nucleus: the first token alone
    rows = probs.repeat(10000, 1)
    picks = decoding.draw(rows, torch.Generator().manual_seed(1), top_p=0.8).view(-1, 2)
    keep = ours.TopP(0.8)(None, probs.log()) > -math.inf
    for r in range(2):
        counts = torch.bincount(picks[:, r], minlength=6).double() / picks.size(0)
        assert counts[~keep[r]].sum() == 0
        want = torch.where(keep[r], probs[r], 0).double()
        torch.testing.assert_close(counts, want / want.sum(), atol=0.015, rtol=0)


@pytest.mark.parametrize("top_p", [1.0, 0.9])
def test_the_two_level_inverse_transform_draws_what_the_whole_cumulative_sum_does(monkeypatch, top_p):
    """From BLOCK_ROWS rows up, draw() searches block sums and then one block: the same tokens
    as the one-level cumulative sum for the same uniforms, on a vocabulary that is no multiple of
    the block (padded) and with zero-probability runs, at block ends among them; never a token of
    probability 0."""
    from textopia.generation import decoding

    g = torch.Generator().manual_seed(5)
    v = 3 * decoding.DRAW_BLOCK + 57
    scores = torch.randn(4000, v, generator=g) * torch.rand(4000, 1, generator=g).mul(6).add(0.5)
    scores[:, decoding.DRAW_BLOCK - 40: decoding.DRAW_BLOCK] = -math.inf  # a block ending in zeros
    scores[:, ::5] = -math.inf
    probs = torch.softmax(scores, dim=-1)
    blocked = decoding.draw(probs, torch.Generator().manual_seed(2), top_p=top_p)
    monkeypatch.setattr(decoding, "BLOCK_ROWS", probs.size(0) + 1)
    whole = decoding.draw(probs, torch.Generator().manual_seed(2), top_p=top_p)
    assert torch.equal(blocked, whole)
    assert bool((probs.gather(1, blocked[:, None]) > 0).all())
    assert blocked.unique().numel() > v // 2  # the draws spread over the blocks


@pytest.mark.parametrize("top_p", [1.0, 0.8])
def test_the_support_holds_the_same_distribution_as_the_whole_vocabulary(top_p):
    """After min-p, nucleus_of_support's tokens and probabilities are softmax(TopP(scores)) over the
    whole vocabulary, exactly; a row without a bound on its support (no min-p) is refused."""
    from textopia.generation.decoding import SUPPORT_SIZES, nucleus_of_support

    g = torch.Generator().manual_seed(3)
    scores = torch.randn(8, 3000, generator=g) * torch.tensor([1.5, 2, 3, 4, 6, 8, 10, 12])[:, None]
    scores = ours.MinP(0.05)(None, scores)
    ids, probs = nucleus_of_support(scores, top_p)
    dense = torch.zeros(8, 3000, dtype=torch.float64).scatter_(1, ids, probs)
    want = torch.softmax((ours.TopP(top_p)(None, scores.clone()) if top_p < 1 else scores).double(), dim=-1)
    torch.testing.assert_close(dense, want, atol=1e-12, rtol=0)
    flat = torch.randn(2, 3000, generator=g)
    assert nucleus_of_support(flat, top_p) is None  # every token possible: draw() serves
    assert nucleus_of_support(flat, top_p, rows=torch.tensor([False, False])) is not None
    assert ids.size(1) in SUPPORT_SIZES


def test_support_draws_follow_the_nucleus_and_one_uniform_a_row():
    """support_draw samples the renormalised nucleus of the support, never a token outside it,
    and takes one uniform per row from each row's generator (as draw's first pass does)."""
    from textopia.generation.decoding import RowGenerators, support_draw

    scores = torch.log(torch.tensor([[0.05, 0.4, 0.0, 0.25, 0.2, 0.1]])).repeat(20000, 1)
    g = torch.Generator().manual_seed(2)
    picks = support_draw(scores, RowGenerators([(g, 0, 20000)]), top_p=0.8)
    counts = torch.bincount(picks, minlength=6).double() / picks.numel()
    torch.testing.assert_close(counts, torch.tensor([0, 0.4, 0, 0.25, 0.2, 0]).double() / 0.85, atol=0.015, rtol=0)
    fresh = torch.Generator().manual_seed(2)
    RowGenerators([(fresh, 0, 20000)]).uniform(torch.arange(20000))  # one uniform for each row
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=fresh))


def test_support_draw_searches_the_unfinished_rows_only():
    """With ``rows``, the unfinished rows draw what they draw with every row searched, the finished
    ones get token 0, and every row still takes its uniform (the generators end alike)."""
    from textopia.generation.decoding import RowGenerators, support_draw

    g = torch.Generator().manual_seed(4)
    scores = torch.randn(6, 50, generator=g)
    scores[scores < 0.5] = -math.inf  # a support of a few tokens a row, as after min-p
    rows = torch.tensor([True, False, True, True, False, True])
    every_gen, some_gen = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    every = support_draw(scores, RowGenerators([(every_gen, 0, 6)]), top_p=0.9)
    some = support_draw(scores, RowGenerators([(some_gen, 0, 6)]), top_p=0.9, rows=rows)
    assert torch.equal(some[rows], every[rows]) and not bool(some[~rows].any())
    assert torch.equal(torch.rand(2, generator=every_gen), torch.rand(2, generator=some_gen))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_min_p_keeps_exactly_the_tokens_at_or_above_its_floor(dtype):
    g = torch.Generator().manual_seed(3)
    scores = (torch.randn(16, 500, generator=g) * 4).to(dtype)
    scores[0, :5] = scores[0].max()  # ties at the top: min_p = 1 keeps every one of them
    scores[1, 7] = -math.inf  # a banned token stays banned
    scores[2] = -math.inf  # a row with nothing left stays so
    for min_p in (1.0, 0.3, 0.01):
        floor = scores.amax(dim=-1, keepdim=True) + math.log(min_p)
        expected = scores.masked_fill(scores < floor, -math.inf)
        got = ours.MinP(min_p)(None, scores.clone())
        assert torch.equal(torch.isinf(got), torch.isinf(expected))
        torch.testing.assert_close(got, expected)
    ties = int((scores[0] == scores[0].max()).sum())
    assert ties >= 5 and int(torch.isfinite(ours.MinP(1.0)(None, scores.clone())[0]).sum()) == ties
