"""Sampling from decoder-only language models, with transformers' logits processors.

One loop serves every decoder (GPT, LSTM): the model is called as
``model(input_ids=..., past_key_values=..., use_cache=True)`` and must return ``.logits``
(B, T, V) and ``.past_key_values`` (its cache or recurrent state, opaque here).
Temperature, top-k, top-p (Holtzman et al. 2020), min-p (Nguyen et al. 2024, "Turning Up the
Heat: Min-p Sampling"), the repetition penalty (Keskar et al. 2019), banned words and a minimum
length are :mod:`textopia.generation.processors`, tested equal to transformers' processors; the
idea boost (:mod:`textopia.generation.boost`) and the known-word constraint
(:mod:`textopia.generation.lexicon`) are ours. Top-p is drawn by :func:`draw`.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

import torch

from textopia.data.tokenizer import PromptTokenizer
from textopia.errors import TextopiaError
from textopia.generation.config import GenerationConfig
from textopia.generation.boost import IdeaBoostProcessor, idea_boost_words
from textopia.models.outputs import output_cache
from textopia.text import STOP_WORDS, KnownWords, dedup_key, fix_articles, strip_controls  # noqa: F401  (dedup_key re-exported)


def banned_word_ids(tokenizer: PromptTokenizer, words: tuple[str, ...] | list[str]) -> list[list[int]]:
    """Token sequences of each banned word as it may appear (after a space, capitalised or not)."""
    seqs: set[tuple[int, ...]] = set()
    for word in words:
        word = word.strip()
        if not word:
            continue
        for variant in {word, word.lower(), word.capitalize(), word.title(), word.upper()}:
            seqs.add(tuple(tokenizer.hf.encode(" " + variant, add_special_tokens=False)))
            seqs.add(tuple(tokenizer.hf.encode(variant, add_special_tokens=False)))
    return [list(s) for s in seqs if s]




def logits_processors(settings: GenerationConfig, tokenizer: PromptTokenizer, context_length: int,
                      idea: str | None = None, *, idea_rows: list[tuple[str | None, int, int]] | None = None,
                      known_words: KnownWords | None = None):
    """The :class:`ProcessorList` for ``settings``: penalties, idea boost and bans, then warpers
    (min-p, temperature, top-k). ``settings.top_p`` is not among them: :func:`draw` takes it.

    ``idea``: in expand mode, the idea whose words :class:`IdeaBoostProcessor` raises
    (``settings.idea_boost`` nats; 0 disables it). ``idea_rows``: for a batch of several jobs,
    ``(idea, start, stop)`` per job instead, each idea boosted on rows ``[start, stop)`` only.
    ``known_words``: the word list of ``settings.known_words_only``
    (:class:`~textopia.generation.lexicon.KnownWordsOnly`, after the bans; every job's idea words
    are allowed on every row).

    Raises:
        TextopiaError: ``settings.known_words_only`` without ``known_words``.
    """
    from textopia.generation.processors import (
        MinNewTokens,
        MinP,
        NoBadWords,
        NoRepeatNGram,
        ProcessorList,
        RepetitionPenalty,
        Temperature,
        TopK,
    )

    procs = ProcessorList()
    if settings.min_new_tokens > 0:
        procs.append(MinNewTokens(context_length, settings.min_new_tokens, tokenizer.eos_id))
    if settings.no_repeat_ngram_size > 0:
        procs.append(NoRepeatNGram(settings.no_repeat_ngram_size))
    if settings.repetition_penalty != 1.0:
        procs.append(RepetitionPenalty(settings.repetition_penalty))
    if settings.idea_boost > 0 and settings.mode == "expand":
        parts = []
        for job_idea, start, stop in idea_rows if idea_rows is not None else [(idea, None, None)]:
            words = idea_boost_words(job_idea, settings.banned_words)
            if words:
                parts.append((IdeaBoostProcessor(tokenizer, words, settings.idea_boost, context_length), start, stop))
        if idea_rows is None:
            procs += [boost for boost, _, _ in parts]
        elif parts:
            procs.append(PerJob(parts))
    bad = banned_word_ids(tokenizer, settings.banned_words)
    specials = [[tokenizer.pad_id], [tokenizer.idea_id], [tokenizer.prompt_id]]
    procs.append(NoBadWords([s for s in bad + specials if s != [tokenizer.eos_id]]))
    if settings.known_words_only:
        if known_words is None:
            raise TextopiaError("known_words_only needs the model's known-word list (known_words.txt), and this "
                                "model has none")
        from textopia.generation.lexicon import KnownWordsOnly

        ideas = [idea] if idea_rows is None else [job_idea for job_idea, _, _ in idea_rows]
        procs.append(KnownWordsOnly(tokenizer, known_words, context_length, " ".join(i for i in ideas if i)))
    # Min-p truncates on the model's own distribution, before temperature (as Nguyen et al. 2024
    # apply it): a higher temperature then spreads over plausible tokens only, never the long tail.
    if settings.min_p > 0:
        procs.append(MinP(settings.min_p))
    if settings.temperature != 1.0:
        procs.append(Temperature(settings.temperature))
    if settings.top_k > 0:
        procs.append(TopK(settings.top_k))
    return procs  # top_p is applied by draw(), without sorting the vocabulary


class Sampled(NamedTuple):
    """One sampled continuation.

    Attributes:
        ids: the generated token ids, without EOS.
        finished: whether the model ended it with EOS.
        logprob: the sum over its tokens (EOS included when finished) of the model's own
            log-probability (nats, before any processor or warper): its fluency.
    """

    ids: list[int]
    finished: bool
    logprob: float

    @property
    def num_tokens(self) -> int:
        return len(self.ids) + (1 if self.finished else 0)


#: Rounds of rejection (see :func:`draw`) before the rows still unsettled are drawn from the
#: sorted nucleus. A round keeps a row with probability >= top_p, so this is never reached in
#: practice; it bounds the loop.
NUCLEUS_ROUNDS = 16


class RowGenerators:
    """The random generator of each row of a batch: ``spans`` of ``(generator, start, stop)``
    cover rows ``[0, N)`` (one job of a micro-batch each). A row's uniforms come from its own
    job's generator, in row order, so that a job's draws are the same alone as in a batch."""

    def __init__(self, spans: list[tuple[torch.Generator, int, int]]) -> None:
        self.spans = spans

    def uniform(self, rows: torch.Tensor) -> torch.Tensor:
        """(len(rows), 1) float64 uniforms in (0, 1] for the sorted row indices ``rows``."""
        if rows.numel() == self.spans[-1][2]:  # every row
            counts = [stop - start for _, start, stop in self.spans]
        else:
            bounds = torch.tensor([stop for _, _, stop in self.spans])
            counts = torch.bincount(torch.bucketize(rows, bounds, right=True), minlength=len(self.spans)).tolist()
        parts = []
        for (generator, _, _), k in zip(self.spans, counts):
            if k:
                parts.append(1.0 - torch.rand((k, 1), generator=generator, dtype=torch.float64))
        return torch.cat(parts) if parts else torch.empty(0, 1, dtype=torch.float64)


#: Tokens per block of :func:`draw`'s two-level inverse transform: each row's block sums and
#: their cumulative sum, then a cumulative sum within the one block its draw falls in, instead of
#: a float64 cumulative sum over the whole vocabulary. From :data:`BLOCK_ROWS` rows up, and where
#: the vocabulary holds more than two blocks; fewer rows take the one-level sum, whose fewer
#: calls cost less there (a draw with top-p 0.95 on 8,192 tokens, 2-core Xeon, one process with
#: BLOCK_ROWS set either way: 8 rows 125 us one-level against 153 in blocks; 16 rows 251 against
#: 245; 32 rows 442 against 388). Against the one-level draw of before:
#: benchmarks/results/speed_floor/draw_s35.txt.
DRAW_BLOCK = 128
BLOCK_ROWS = 16


class _CDF:
    """The cumulative probability of each row of ``probs`` (N, V) float, float64: whole
    (``cdf`` (N, V)), or in blocks of :data:`DRAW_BLOCK` (``blocks`` (N, K, S) zero-padded and
    ``ends`` (N, K), the mass up to each block's end, block sums taken in float32); ``total``
    (N, 1) float64, the last of either."""

    def __init__(self, probs: torch.Tensor) -> None:
        n, v = probs.shape
        self.vocab = v
        if v <= 2 * DRAW_BLOCK or n < BLOCK_ROWS:
            self.cdf = probs.double().cumsum(dim=-1)
            self.total = self.cdf[:, -1:]
            return
        self.cdf = None
        k = -(-v // DRAW_BLOCK)
        pad = k * DRAW_BLOCK - v
        self.blocks = (torch.nn.functional.pad(probs, (0, pad)) if pad else probs).view(n, k, DRAW_BLOCK)
        self.ends = self.blocks.sum(dim=-1).double().cumsum(dim=-1)
        self.total = self.ends[:, -1:]

    def inverse(self, rows: torch.Tensor | None, targets: torch.Tensor) -> torch.Tensor:
        """For ``rows`` (R,) int64 (None: every row), the first token whose cumulative probability
        reaches ``targets`` (R, 1) float64, each in (0, the row's total]; never a token of
        probability 0 (where rounding leaves a target past its block's sum within the block, the
        block's last token of positive probability). Returns (R,) int64."""
        if self.cdf is not None:
            cdf = self.cdf if rows is None else self.cdf[rows]
            return torch.searchsorted(cdf, targets)[:, 0].clamp_(max=self.vocab - 1)
        blocks, ends = (self.blocks, self.ends) if rows is None else (self.blocks[rows], self.ends[rows])
        k, size = blocks.shape[1:]
        block = torch.searchsorted(ends, targets).clamp_(max=k - 1)  # (R, 1): the block that reaches it
        start = torch.where(block > 0, ends.gather(1, (block - 1).clamp(min=0)), 0.0)  # the mass before it
        within = blocks[torch.arange(blocks.size(0)), block[:, 0]].double().cumsum(dim=-1)  # (R, S)
        # argmax: the first index at the block's sum (cumulative sums never decrease).
        pos = torch.minimum(torch.searchsorted(within, targets - start)[:, 0], within.argmax(dim=-1))
        return (block[:, 0] * size + pos).clamp_(max=self.vocab - 1)


def draw(probs: torch.Tensor, generator: torch.Generator | RowGenerators, top_p: float = 1.0) -> torch.Tensor:
    """One token per row of ``probs`` (N, V), by inverse transform sampling: the first token whose
    cumulative probability reaches u·total, u uniform in (0, 1] from ``generator`` (one for every
    row, or :class:`RowGenerators`); never a token of probability 0. Returns (N,) int64. (As
    ``torch.multinomial(probs, 1)`` in distribution, at a fraction of its cost on a large
    vocabulary.) The cumulative sums are float64, in two levels for many rows (:data:`DRAW_BLOCK`;
    the block sums float32).

    With ``top_p`` < 1, from the nucleus (Holtzman et al. 2020, "The Curious Case of Neural Text
    Degeneration", section 3.1): the smallest set of likeliest tokens whose probability reaches
    ``top_p``, renormalised. Drawn by rejection instead of sorting the vocabulary: a token drawn
    from ``probs`` is kept iff the tokens likelier than it hold less than ``top_p`` of the mass,
    which is exactly membership of the nucleus (up to the float32 rounding of that mass), so the
    kept draws follow the renormalised nucleus. Each round keeps a row with probability >=
    ``top_p``; rows still unsettled after :data:`NUCLEUS_ROUNDS` are drawn from
    :class:`~textopia.generation.processors.TopP`'s sorted nucleus. (Sorting 8,192 logits per row
    per token was most of the sampling time.)
    """
    n = probs.size(0)
    rngs = generator if isinstance(generator, RowGenerators) else RowGenerators([(generator, 0, n)])
    cdf = _CDF(probs)
    total = cdf.total

    def inverse(rows: torch.Tensor) -> torch.Tensor:
        every = rows.numel() == n
        return cdf.inverse(None if every else rows, rngs.uniform(rows) * (total if every else total[rows]))

    pending = torch.arange(n)  # rows whose draw is not yet known to be in the nucleus
    ids = inverse(pending)
    if top_p >= 1.0:
        return ids
    for _ in range(NUCLEUS_ROUNDS):
        every = pending.numel() == n  # the first round: no copies
        p = probs if every else probs[pending]
        picked = p.gather(1, (ids if every else ids[pending])[:, None])  # (n, 1)
        # The mass likelier than the draw: the float32 sum of p times the mask p > picked, made as
        # sign(p - picked) clipped at 0 (p - picked > 0 iff p > picked, in IEEE arithmetic with
        # subnormals): the terms of a boolean mask, without its conversion to float.
        above = (p * torch.sign(p - picked).clamp_(min=0)).sum(dim=-1)
        outside = above >= top_p * (total if every else total[pending])[:, 0]
        if not bool(outside.any()):
            return ids
        pending = pending[outside]
        ids[pending] = inverse(pending)
    from textopia.generation.processors import TopP

    nucleus = torch.softmax(TopP(top_p)(None, probs[pending].log()), dim=-1)
    ids[pending] = draw(nucleus, RowGenerators([(g, int((pending < a).sum()), int((pending < b).sum()))
                                                for g, a, b in rngs.spans]))
    return ids


#: How many of a step's likeliest tokens :func:`support_draw` looks at first, and at most: with
#: min-p on, a row keeps the tokens within a factor of the likeliest, a few dozen in practice.
SUPPORT_SIZES = (96, 512)


def nucleus_of_support(scores: torch.Tensor, top_p: float = 1.0, rows: torch.Tensor | None = None):
    """The tokens each row of ``scores`` (N, V) may still draw (its finite scores: min-p, top-k
    and the bans write ``-inf``), likeliest first, with their probabilities after the softmax and
    the nucleus of ``top_p`` (Holtzman et al. 2020, section 3.1: the smallest set of likeliest
    tokens whose probability reaches ``top_p``), renormalised; or None where one of ``rows``
    (bool (N,); None: every row) keeps more tokens than the largest of :data:`SUPPORT_SIZES`.

    Returns:
        ``(ids, probs)``: (N, k) int64 vocabulary ids and (N, k) float64 probabilities (0 past a
        row's support or nucleus); k is one of :data:`SUPPORT_SIZES` or the vocabulary's size.
        A row outside ``rows`` gets the likeliest k of its scores, whatever its support.
    """
    for k in SUPPORT_SIZES:
        values, ids = scores.topk(min(k, scores.size(-1)), dim=-1)  # descending
        last = values[:, -1] if rows is None else values[rows, -1]
        if k >= scores.size(-1) or bool((last == -math.inf).all()):
            break
    else:
        return None
    probs = torch.softmax(values.double(), dim=-1)
    if top_p < 1.0:
        from textopia.generation.processors import in_nucleus

        probs = torch.where(in_nucleus(probs, top_p), probs, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return ids, probs


def support_draw(scores: torch.Tensor, rngs: RowGenerators, top_p: float = 1.0,
                 rows: torch.Tensor | None = None) -> torch.Tensor | None:
    """One token per row of ``scores`` (N, V), from the distribution :func:`draw` draws from on
    ``softmax(scores)`` with ``top_p``, over each row's support only (:func:`nucleus_of_support`:
    no pass over the whole vocabulary in float64): one uniform per row from ``rngs``, by inverse
    transform sampling over the support sorted likeliest first. ``rows``: the rows whose draw
    counts (bool (N,), the unfinished ones): only they are searched, and the others get token 0;
    every row still takes its uniform, so that a row's draws do not depend on when the others end.
    Returns (N,) int64, or None where a row's support is too large (:func:`draw` then serves)."""
    n = scores.size(0)
    rows = None if rows is None else rows.to(scores.device)  # the sampler's flags may live on the model's device
    active = None if rows is None or bool(rows.all()) else rows.nonzero().squeeze(1)
    support = nucleus_of_support(scores if active is None else scores[active], top_p)
    if support is None:
        return None
    ids, probs = support
    cdf = probs.cumsum(dim=-1)
    u = rngs.uniform(torch.arange(n))
    pos = torch.searchsorted(cdf, (u if active is None else u[active]) * cdf[:, -1:]).clamp_(max=ids.size(1) - 1)
    picked = ids.gather(1, pos).squeeze(1)
    if active is None:
        return picked
    return picked.new_zeros(n).index_copy_(0, active, picked)


class PerJob:
    """Applies each job's processor to its own rows ``[start, stop)`` of a batch, in place (the idea
    boost of each request in a micro-batch)."""

    def __init__(self, parts: list[tuple[Any, int, int]]) -> None:
        self.parts = parts

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for processor, start, stop in self.parts:
            part = scores[start:stop]
            out = processor(input_ids[start:stop], part)
            if out.data_ptr() != part.data_ptr():  # a rule that did not write in place
                part.copy_(out)
        return scores


#: A static cache drops its finished rows once the rows still running are at most this share of
#: it: a third of the rows of a micro-batch end before the last one does, and each step costs
#: about as much per row at that size; a compaction copies the cache once.
COMPACT_AT = 0.75


#: Where a batch's rows are candidates to choose among (the reranker's pool), it stops once at
#: most this share of them are still running: those rows are the longest samples, and a step of
#: a few rows costs most of a full one (the engine's fixed cost a step). Under load (four requests
#: of eight candidates), 38% of the decoding steps ran with 1-4 of the 32 rows, and stopping at a
#: quarter made a request 27% cheaper (benchmarks/results/request_cost, s33_tail). The stopped
#: rows come back unfinished, cut where their last clause ended, and their clause openings are
#: candidates like any sample's (:func:`~textopia.generation.rerank.score_opening`): of 1,189
#: ideas' one prompt at rest, 34 changed, and three blind judges kept the new ones as much as
#: the old (keep +0.00 to +0.06, coherence +0.21 to +0.26, the new higher in 51-53% of pairs:
#: benchmarks/results/judged/ab_s33_tail).
TAIL_SHARE = 0.25


class SampleJob(NamedTuple):
    """One request of a batch: ``num_samples`` continuations of ``context``, drawn with ``generator``
    (seeded by the caller), the words of ``idea`` boosted (expand mode; None: no boost)."""

    context: list[int]
    num_samples: int
    generator: torch.Generator
    idea: str | None = None


@torch.no_grad()
def sample_many(
    model,
    tokenizer: PromptTokenizer,
    jobs: list[SampleJob],
    settings: GenerationConfig,
    max_positions: int | None = None,
    known_words: KnownWords | None = None,
    tail_share: float = 0.0,
) -> list[list[Sampled]]:
    """Sample every job in one batch (the service's micro-batches); the same settings for all.

    ``tail_share``: the batch stops once at most this share of its rows are still running (and
    ``min_new_tokens`` are written): those rows come back unfinished (:data:`TAIL_SHARE`, where the
    rows are candidates a reranker chooses among); 0: every row runs to its end or the limit.

    Contexts of different lengths are left-padded, with an attention mask and positions, on a
    model that takes them (``model.supports_left_padding``, the lean GPT-2 engine); any other
    model runs the jobs one after another. Each job's tokens are drawn with its own generator,
    so a job alone in its batch gets what :func:`sample` gives it.

    Returns:
        for each job, a :class:`Sampled` per sample.
    """
    if not jobs:
        return []
    lengths = {len(job.context) for job in jobs}
    if len(jobs) > 1 and len(lengths) > 1 and not getattr(model, "supports_left_padding", False):
        return [sample_many(model, tokenizer, [job], settings, max_positions, known_words)[0] for job in jobs]
    device = next(model.parameters()).device
    width = max(lengths)
    budget = settings.max_new_tokens
    if max_positions is not None:
        budget = min(budget, max_positions - width)
    rows: list[list[int]] = []
    mask_rows: list[list[int]] = []
    spans: list[tuple[int, int]] = []
    for job in jobs:
        pad = width - len(job.context)
        spans.append((len(rows), len(rows) + job.num_samples))
        rows += [[tokenizer.pad_id] * pad + job.context] * job.num_samples
        mask_rows += [[0] * pad + [1] * len(job.context)] * job.num_samples
    n = len(rows)
    input_ids = torch.tensor(rows, dtype=torch.long, device=device)  # (N, T0)
    padded = len(lengths) > 1
    attention_mask = torch.tensor(mask_rows, dtype=torch.long, device=device) if padded else None
    positions = (attention_mask.cumsum(dim=1) - 1).clamp(min=0) if padded else None  # (N, T0)
    procs = logits_processors(settings, tokenizer, width, idea=jobs[0].idea, idea_rows=None if len(jobs) == 1 else
                              [(job.idea, start, stop) for job, (start, stop) in zip(jobs, spans)],
                              known_words=known_words)
    rngs = RowGenerators([(job.generator, a, b) for job, (a, b) in zip(jobs, spans)])
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    logprob = torch.zeros(n, dtype=torch.float64)
    # A static cache only as long as this batch can get (not the model's whole context).
    past = model.new_cache(n, width + max(0, budget)) if hasattr(model, "new_cache") else None
    live = torch.arange(n, device=device)  # the batch row that each row of the model's cache holds
    bounded_support = settings.min_p > 0 or settings.top_k > 0  # a step's support is a few dozen tokens
    step_input, step_pos = input_ids, positions
    # Rows of one context (a call's candidates) share its prefill: the model reads each distinct
    # context once and its cache rows are copied out to every row that holds it. Only where rows
    # differ by nothing but their context (the engine alone, not a decoder conditioned on a
    # latent per row).
    shared = None
    if getattr(model, "shares_prefill", False) and past is not None and budget > 0:
        unique, inverse = torch.unique(input_ids, dim=0, return_inverse=True)  # (U, T0), (N,)
        if unique.size(0) < n:
            first = torch.full((unique.size(0),), n, dtype=torch.long, device=device).scatter_reduce_(
                0, inverse, torch.arange(n, device=device), reduce="amin")  # each distinct context's first row
            shared = (first, inverse)
            past.keep_rows(torch.arange(unique.size(0), device=device))  # nothing filled yet: no copy
    for _ in range(max(0, budget)):
        kwargs = {}
        if padded:
            kwargs = {"attention_mask": attention_mask[live], "position_ids": step_pos[live]}
        if shared is not None:  # the prefill, once per distinct context
            first, inverse = shared
            kwargs = {k: v[first] for k, v in kwargs.items()}
            out = model(input_ids=step_input[first], past_key_values=past, use_cache=True, **kwargs)
            past = output_cache(out)
            past.keep_rows(inverse)
            logits = out.logits[inverse, -1, :].float()  # (N, V)
            shared = None
        else:
            out = model(input_ids=step_input, past_key_values=past, use_cache=True, **kwargs)
            past = output_cache(out)
            logits = out.logits[:, -1, :].float()  # (rows in the cache, V)
        if live.numel() < n:  # finished rows were dropped: they get EOS below whatever they score
            logits = logits.new_zeros(n, logits.size(1)).index_copy_(0, live, logits)
        scores = procs(input_ids, logits.clone()).cpu()  # the rules write in place; logits stay the model's
        next_ids = support_draw(scores, rngs, settings.top_p, ~finished) if bounded_support else None
        if next_ids is None:
            next_ids = draw(torch.softmax(scores, dim=-1), rngs, settings.top_p)
        next_ids = next_ids.to(device)
        next_ids = torch.where(finished, torch.full_like(next_ids, tokenizer.eos_id), next_ids)
        # The model's own log-probability of each unfinished row's token (a pass over the vocabulary
        # for those rows only: the finished ones add nothing).
        unfinished = (~finished).nonzero().squeeze(1)
        rows_logits = logits if unfinished.numel() == n else logits[unfinished]
        token_logprob = (rows_logits.gather(1, next_ids[unfinished, None]).squeeze(1)
                         - torch.logsumexp(rows_logits, dim=-1))  # (unfinished,)
        logprob.index_add_(0, unfinished.cpu(), token_logprob.double().cpu())
        input_ids = torch.cat([input_ids, next_ids[:, None]], dim=1)
        finished |= next_ids == tokenizer.eos_id
        if bool(finished.all()):
            break
        if padded:
            attention_mask = torch.cat([attention_mask, torch.ones(n, 1, dtype=torch.long, device=device)], dim=1)
            step_pos = step_pos[:, -1:] + 1
        running = ~finished[live]
        still = int(running.sum())
        if still <= tail_share * n and input_ids.size(1) - width >= settings.min_new_tokens:
            break  # the tail: the longest rows, cut where their last clause ended
        if hasattr(past, "keep_rows") and still <= COMPACT_AT * live.numel():
            past.keep_rows(running.nonzero().squeeze(1))
            live = live[running]
        step_input = next_ids[live][:, None]
    results: list[Sampled] = []
    for row, lp in zip(input_ids[:, width:].tolist(), logprob.tolist()):
        if tokenizer.eos_id in row:
            results.append(Sampled(row[: row.index(tokenizer.eos_id)], True, lp))
        else:
            results.append(Sampled(row, False, lp))
    return [results[a:b] for a, b in spans]


def sample(
    model,
    tokenizer: PromptTokenizer,
    context: list[int],
    num_samples: int,
    settings: GenerationConfig,
    generator: torch.Generator,
    max_positions: int | None = None,
    idea: str | None = None,
    known_words: KnownWords | None = None,
) -> list[Sampled]:
    """Sample ``num_samples`` continuations of ``context`` in one batch.

    Args:
        context: the ids fed first (see :meth:`PromptTokenizer.context_ids`).
        generator: the RNG that draws every token (seeded by the caller).
        max_positions: the model's context length; generation stops there.
        idea: the idea whose words are boosted (expand mode; see :func:`logits_processors`).
        known_words: the word list of ``settings.known_words_only`` (see :func:`logits_processors`).

    Returns:
        a :class:`Sampled` per sample.
    """
    return sample_many(model, tokenizer, [SampleJob(context, num_samples, generator, idea)], settings,
                       max_positions, known_words)[0]


_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_REPEATED_COMMAS = re.compile(r"(,\s*){2,}")


def clean_prompt(text: str, finished: bool) -> str:
    """Tidy a decoded prompt; when the model was cut off, end it where a phrase ends: drop the
    clause it was in the middle of (after the last comma), or where it has no comma, the word.

    U+FFFD (what a byte-level BPE decodes when its tokens stop inside a UTF-8 sequence, common at
    high temperature) is dropped: it is never what the model meant to write. So are control
    characters (:func:`~textopia.text.strip_controls`), whether the model wrote them or they came
    with the text a prompt continues: an ESC or a BEL must not reach the terminal. "a"/"an" are
    made to agree with the next word (:func:`~textopia.text.fix_articles`: "an snowy forest").
    """
    text = " ".join(strip_controls(text.replace("\ufffd", "")).split())
    if not finished and "," in text:
        text = text.rsplit(",", 1)[0]
    elif not finished and " " in text:
        text = text.rsplit(" ", 1)[0]
    if not finished:  # nor on a word that needs the next one ("with a", "trending on")
        words = text.split(" ")
        while len(words) > 1 and words[-1].lower().strip(",.;:") in STOP_WORDS:
            words.pop()
        text = " ".join(words)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _REPEATED_COMMAS.sub(", ", text)
    return fix_articles(text).strip(" ,;:-")


