"""The reranker: which of the oversampled prompts a user gets.

A sample's tier is a tuple compared in order (lexicographic), best first:

1. idea-word recall (:func:`textopia.text.relevance_recall`, the evaluation's own measure), higher first;
2. no invented word (a word the corpus's train split has fewer than 5 times; needs the model's
   ``known_words.txt``), then no stutter (:func:`textopia.text.stutters`), then ended by the
   model (not cut at ``max_new_tokens``, where a prompt may overrun CLIP's 77 tokens);
3. the idea as the subject: each idea word written once (:func:`textopia.text.repeats_idea_word`),
   in the prompt's opening (:func:`textopia.text.idea_in_subject`), and as a phrase in the
   idea's order, not scattered (:func:`textopia.text.idea_kept_together`), joined by the idea's
   own small words (:func:`textopia.text.idea_reworded`: not "cat sleeping in the windowsill" for
   "cat sleeping on a windowsill"), its articles kept (:func:`textopia.text.drops_idea_article`:
   not "caravan in desert" for "a caravan in the desert");
4. read as one picture: no tag or name written twice (:func:`textopia.text.repeats_phrase`), nor in
   two spellings (:func:`textopia.text.repeats_variant`: "thomas kincade, thomas kinkade"), no
   tag said again inside another (:func:`textopia.text.restates_tag`: "anime style, anime") or
   in another of its kind (:func:`textopia.text.restates_quality`: "8k resolution, full hd"), no
   word twice in a short clause (:func:`textopia.text.repeats_in_clause`: "stars and stars"), no
   clashing times of day or media (:func:`textopia.text.clashes`: "sunrise at sunset", a
   photograph that is an oil painting), nor a medium added that contradicts the one the idea
   names ("a linocut of a rooster, concept art"), nor another maker or a medium of its own where
   the idea names whose style it is (:func:`textopia.text.overrides_maker`: "a snowy mountain in
   the style of hokusai, art by greg rutkowski"), no article before another or before a preposition
   (:func:`textopia.text.broken_phrase`: "having a the camera"), no name credited that the
   corpus never credits (:meth:`textopia.text.KnownWords.unknown_names`: "by Tatsuya Stubbs",
   two known words made into an artist), no crowd of makers credited (:func:`textopia.text.crowded_credits`:
   more than three): faults the blind judges marked in prompts that passed 1-3;
5. fewer new clauses: clauses no prompt of the corpus holds often enough to be known
   (:meth:`textopia.text.KnownWords.new_clauses`; the idea's own words excepted), where a writer's
   nonsense lives ("elephant crossing the savanna, riding a pigs"): blind judges scored model
   prompts with one such clause 1.8 points of coherence (of 10) lower than those with none;
6. fluent: a mean log-probability per token under the model itself of at least
   :data:`MIN_MEAN_LOGPROB` nats (a per-token perplexity of at most about 90).

Where the writer has a keep head, each sample's openings that end where a clause ends are
candidates beside it (:data:`CUT_CLAUSES`, :func:`textopia.text.clause_openings`), scored by
:func:`score_opening`, so that the head may choose a shorter prompt than the writer ended; at
most one form of a sample is kept.

Within a tier, :func:`select` takes, one at a time, the sample of highest :func:`joint` +
``VARIETY_WEIGHT · new``, ``new`` being the share of its word bigrams not yet in the kept
prompts. Where the writer has a keep head (:mod:`textopia.models.keep_head`: the embedded
default, and the latent pair through its fusion LM), :func:`joint` is ``KEEP_WEIGHT`` times its
utility, a Bradley-Terry model of blind judges' choices on the candidate's hidden states (read
by an encoder fine-tuned with the head on the judged pairs), fluency and length, fitted on the
19,871 judged pairs on record in session 37, which it ranks at 0.757 as the judges did, five
groups of folders held out in turn (``textopia fit-keep --encoder-epochs``; judged A/Bs:
benchmarks/results/judged/ab_s23_keep_head, ab_s26_refit, ab_s34_refit, ab_s35_encoder,
ab_s35_encoder_b, ab_s36_refit, ab_s37_refit). Without a head it is
``FLUENCY_WEIGHT · min(mean_logprob, FLUENCY_CAP) - LENGTH_WEIGHT · words + CRITIC_WEIGHT ·
critic``: ``mean_logprob`` is the model's own log-probability per token, ``words`` the prompt's length,
``critic`` the coherence critic's logit (log-odds that a person wrote it: residual energy-based
reranking, Deng et al. 2020; weighted 0, see :data:`CRITIC_WEIGHT`); sampling order breaks ties, so that a seed gives the
same prompts. The weights are what blind judges keep: over every judged pair of model prompts
for one idea, a Bradley-Terry fit of the judges' choices on these signals weighs fluency and
brevity and gives the critic nothing (``python -m benchmarks judge_agreement``). For one prompt
that is the most fluent candidate (up to the cap), a word of length costing 1/12 nat per token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from typing import TypeVar

from textopia.text import (KnownWords, broken_phrase, clashes, crowded_credits, drops_idea_article, idea_in_subject,
                           idea_kept_together, idea_reworded, relevance_recall, repeats_idea_word, repeats_in_clause,
                           repeats_phrase, repeats_variant, restates_quality, restates_tag, stutters, tokenize)

T = TypeVar("T")

#: Mean log-probability per token (nats) below which a sample counts as disfluent.
MIN_MEAN_LOGPROB = -4.5
#: What a wholly new set of word bigrams is worth in :func:`joint`'s units when choosing among
#: samples of one tier (:func:`select`; chosen in benchmarks/results/quality/rerank_weights.md:
#: it decides nothing for one prompt, and keeps eight apart).
VARIETY_WEIGHT = 10.0
#: What one nat per token of the model's own log-probability is worth in :func:`joint`.
FLUENCY_WEIGHT = 3.0
#: The mean log-probability per token (nats) above which a sample earns no more fluency
#: (:func:`joint`; None: no cap). Uncapped, fluency favours the corpus's memorised templates,
#: whose tokens the model finds easiest ("..., j. c. leyendecker, greg rutkowski, artem": 168 corpus
#: prompts end so). Three blind judges kept the choices under a cap of -1.5 over the uncapped ones
#: on the 38 of 110 new ideas where they differ (keep 6.08 / 4.61 / 4.79 -> 6.58 / 5.39 / 5.37,
#: higher in 22 / 22.5 / 21 of 38: benchmarks/results/judged/ab_s22_fluency_cap). In session 19 a
#: cap of -2.0 was judged worse, when the critic chose within a tier (ab_s19_fluency_cap).
FLUENCY_CAP: float | None = -1.5
#: What each word of a prompt costs in :func:`joint`: FLUENCY_WEIGHT / 12, one nat per token for
#: twelve words. A Bradley-Terry fit of blind judges' choices between model prompts for one idea
#: weighs 1.51 a nat per token against 0.09 a word (0.74 of the judged pairs predicted, each
#: judging round held out in turn: ``python -m benchmarks judge_agreement``,
#: benchmarks/results/judged/agreement_s22); an ad hoc fit on fewer rounds gave 0.13, the weight
#: judged: on 40 new ideas where it chose otherwise, with CRITIC_WEIGHT 0, three judges' keep went
#: 5.23 / 4.78 / 4.73 -> 6.28 / 5.80 / 5.43, higher in 28.5 / 27.5 / 27 of 40 pairs
#: (benchmarks/results/judged/ab_s22_length).
LENGTH_WEIGHT = 0.25
#: Weight of the coherence critic's logit in :func:`joint`: 0. On the same judged pairs the
#: prompt with the higher logit was kept higher in 0.43 of them (the fit gives it -0.07): people
#: write long, tag-heavy prompts, and the judges keep concise ones. The critic stays the
#: two-sample measure of ``benchmarks/quality.py``; with a weight of 0 the reranker does not run it.
CRITIC_WEIGHT = 0.0
#: What one logit of the keep head's utility is worth in :func:`joint`, where the writer has a
#: head (:mod:`textopia.models.keep_head`, a Bradley-Terry model of blind judges' choices on the
#: writer's hidden states, fluency and length). The head weighs about 2 a nat per token of
#: fluency, so 1.5 keeps fluency's weight near :data:`FLUENCY_WEIGHT`'s and variety's
#: (:data:`VARIETY_WEIGHT`) against it as it was.
KEEP_WEIGHT = 1.5
#: Whether, where the writer has a keep head, each sample's openings that end where a clause ends
#: (:func:`textopia.text.clause_openings`, two clauses at least) are candidates beside it, so that
#: the head may choose a shorter prompt than the writer happened to end: within an idea, blind
#: judges score model prompts of 8-15 words 0.15-0.16 standard deviations of coherence above
#: the idea's mean and those of 28 or more 0.26-0.60 below (``python -m benchmarks.blind_judging
#: lengths``). At most one of a sample's forms is kept. Judged on 73 of 80 new ideas where it
#: chose otherwise: coherence 6.27 / 6.86 -> 7.27 / 7.67, keep 6.18 / 6.67 -> 6.70 / 7.08
#: (benchmarks/results/judged/ab_s25_cut).
CUT_CLAUSES = True


@dataclass(frozen=True)
class SampleScore:
    """The reranker's view of one sample; :meth:`key` sorts best first."""

    recall: float  # share of the idea's content words in the prompt, [0, 1]; 1 without an idea
    invented: int  # words not in the known-word list (0 without a list)
    stutter: bool
    mean_logprob: float  # nats per token, under the model
    finished: bool = True  # ended with EOS, not cut (at max_new_tokens, or as one of a batch's longest rows)
    repeats_idea: bool = False  # an idea word written twice
    idea_late: bool = False  # an idea word first written after the prompt's subject
    idea_scattered: bool = False  # the idea's words out of its order or far apart
    idea_reworded: bool = False  # two idea words joined by other small words than the idea's
    drops_article: bool = False  # an idea word written bare where the idea has an article before it
    critic: float = 0.0  # the coherence critic's logit (log-odds human; 0 without a critic)
    repeats_phrase: bool = False  # a phrase written twice ("greg rutkowski"), or a tag inside another
    clash: bool = False  # two times of day or two media that cannot be one picture
    broken: bool = False  # an article before another article or a preposition ("a the camera")
    unknown_name: bool = False  # a credited name the corpus never credits ("by Tatsuya Stubbs")
    crowded: bool = False  # more makers credited than text.MAX_CREDITS
    new_clauses: int = 0  # clauses, without the idea's words, that the corpus does not know
    words: int = 0  # the prompt's words (:func:`textopia.text.tokenize`)
    keep: float | None = None  # the keep head's utility (log-odds a judge keeps it; None: no head)
    human_subject: bool = False  # opens with a subject clause people wrote around the idea

    @property
    def clean(self) -> bool:
        """The whole idea as the subject, written once, no invented word, no stutter: what a user
        would keep."""
        return self.recall == 1.0 and self.invented == 0 and not self.stutter and not self.idea_misplaced

    @property
    def idea_misplaced(self) -> bool:
        """The idea not written as the subject: a word of it twice, after the subject, scattered,
        joined by other small words, or without its article (:meth:`tier`'s third rank)."""
        return (self.repeats_idea or self.idea_late or self.idea_scattered or self.idea_reworded
                or self.drops_article)

    @property
    def faultless(self) -> bool:
        """:attr:`clean`, ended by the model, and none of the faults of the tiers after the idea's
        place (a phrase twice, a clash, a broken phrase, an unknown name, a new clause): the
        reranker's first tier but for fluency, a prompt the judges found nothing to mark in. Read
        off :meth:`tier`, so that a fault added there counts here too."""
        recall, *faults, _ = self.tier()
        return recall == -1.0 and not any(faults)

    def tier(self) -> tuple:
        """The quality tier (lower is better): recall, then invented words, stutter, an unfinished
        prompt, the idea's place, a repeated phrase, a clash, a broken phrase, an unknown name or a
        crowd of makers, new clauses, and fluency."""
        return (-self.recall, self.invented > 0, self.stutter, not self.finished,
                self.idea_misplaced,
                self.repeats_phrase or self.clash or self.broken or self.unknown_name or self.crowded,
                self.new_clauses, self.mean_logprob < MIN_MEAN_LOGPROB)

    def rank(self) -> tuple:
        """What :func:`select` orders by: :meth:`tier`, and within each tier but for fluency a
        prompt that opens with a subject people wrote around the idea (a detail that fits it:
        "an ice dragon breathing blue flames", :meth:`textopia.text.KnownWords.subjects_for`)
        before one that does not ("ice dragon, highly detailed"). Not a fault: :attr:`faultless`
        reads :meth:`tier` alone."""
        *tier, disfluent = self.tier()
        return (*tier, not self.human_subject, disfluent)


def score_sample(idea: str | None, prompt: str, logprob: float, num_tokens: int,
                 known_words: KnownWords | None, finished: bool = True) -> SampleScore:
    """Score one sample.

    Args:
        idea: the user's idea (None: unconditional; recall is then 1).
        prompt: the cleaned prompt text.
        logprob: the sum of the model's log-probabilities of its tokens (nats).
        num_tokens: how many tokens that sum covers.
        known_words: the corpus's known words, names and clauses, or None to skip the
            invented-word, unknown-name and new-clause checks.
        finished: whether the model ended the prompt (EOS) rather than being cut (at the token
            limit, or as one of a batch's longest rows: :data:`~textopia.generation.decoding.TAIL_SHARE`).
    """
    recall = relevance_recall(idea, prompt) if idea else math.nan
    names = known_words.names if known_words is not None else ()
    return SampleScore(
        recall=1.0 if math.isnan(recall) else recall,
        invented=len(known_words.invented(prompt, idea)) if known_words is not None else 0,
        stutter=stutters(prompt),
        mean_logprob=logprob / max(1, num_tokens),
        finished=finished,
        repeats_idea=bool(idea) and repeats_idea_word(idea, prompt),
        idea_late=bool(idea) and not idea_in_subject(idea, prompt),
        idea_scattered=bool(idea) and not idea_kept_together(idea, prompt),
        idea_reworded=bool(idea) and idea_reworded(idea, prompt),
        drops_article=bool(idea) and drops_idea_article(idea, prompt),
        repeats_phrase=(repeats_phrase(prompt) or restates_tag(prompt) or repeats_in_clause(prompt, idea)
                        or repeats_variant(prompt) or restates_quality(prompt)),
        clash=clashes(prompt, idea, names),
        broken=broken_phrase(prompt, idea),
        unknown_name=known_words is not None and bool(known_words.unknown_names(prompt, idea)),
        crowded=crowded_credits(prompt, names),
        new_clauses=len(known_words.new_clauses(prompt, idea)) if known_words is not None else 0,
        words=len(tokenize(prompt)),
    )


def score_opening(idea: str | None, opening: str, whole: SampleScore,
                  known_words: KnownWords | None) -> SampleScore:
    """:func:`score_sample` of an opening of a scored sample (:func:`textopia.text.clause_openings`),
    equal to it, for less work: the opening's words, phrases, clauses and credits are the whole's,
    so a fault that the checks look for within clauses (an invented word, a stutter, a repeated or
    clashing phrase, a broken phrase, an unknown name, a crowd of makers, a new clause) and that
    the whole does not have, the opening has not either; only the faults the whole has are looked
    for again, and the idea's recall and place (its words late, scattered or reworded), which a
    cut can change. Fluency is the whole sample's (the keep head scores the opening's own). An
    opening is finished whether or not its whole was: the writer ended its last clause and wrote
    on, and only the whole was cut (at ``max_new_tokens``, or as one of a batch's longest rows:
    :data:`~textopia.generation.decoding.TAIL_SHARE`)."""
    recall = relevance_recall(idea, opening) if idea else math.nan
    names = known_words.names if known_words is not None else ()
    return replace(
        whole,
        recall=1.0 if math.isnan(recall) else recall,
        invented=whole.invented and (len(known_words.invented(opening, idea)) if known_words is not None else 0),
        stutter=whole.stutter and stutters(opening),
        repeats_idea=whole.repeats_idea and repeats_idea_word(idea, opening),
        idea_late=bool(idea) and not idea_in_subject(idea, opening),
        idea_scattered=bool(idea) and not idea_kept_together(idea, opening),
        # Not read off the whole: a whole that writes the idea as the user did after a reworded
        # form ("a pen ink drawing, ..., pen and ink") passes, and its opening may not.
        idea_reworded=bool(idea) and idea_reworded(idea, opening),
        drops_article=whole.drops_article and drops_idea_article(idea, opening),
        repeats_phrase=whole.repeats_phrase and (repeats_phrase(opening) or restates_tag(opening)
                                                 or repeats_in_clause(opening, idea) or repeats_variant(opening)
                                                 or restates_quality(opening)),
        clash=whole.clash and clashes(opening, idea, names),
        broken=whole.broken and broken_phrase(opening, idea),
        unknown_name=whole.unknown_name and bool(known_words.unknown_names(opening, idea)),
        crowded=whole.crowded and crowded_credits(opening, names),
        new_clauses=whole.new_clauses and len(known_words.new_clauses(opening, idea)),
        words=len(tokenize(opening)),
        finished=True,
    )


def _bigrams(text: str) -> set[tuple[str, str]]:
    words = tokenize(text)
    return set(zip(words, words[1:]))


def joint(score: SampleScore) -> float:
    """The within-tier score of a sample: ``KEEP_WEIGHT · keep`` where the writer has a keep head,
    else ``FLUENCY_WEIGHT · min(mean_logprob, FLUENCY_CAP) - LENGTH_WEIGHT · words + CRITIC_WEIGHT
    · critic``."""
    if score.keep is not None:
        return KEEP_WEIGHT * score.keep
    fluency = score.mean_logprob if FLUENCY_CAP is None else min(score.mean_logprob, FLUENCY_CAP)
    return CRITIC_WEIGHT * score.critic + FLUENCY_WEIGHT * fluency - LENGTH_WEIGHT * score.words


def contenders(scores: list[SampleScore | None], n: int) -> list[int]:
    """The indices of ``scores`` that :func:`select` may choose among for ``n`` prompts: every
    sample of the best tiers, tier by tier, until they hold ``n`` (in ascending order). Only these
    need a within-tier score such as the keep head's."""
    tiers = {i: s.rank() for i, s in enumerate(scores) if s is not None}
    out: list[int] = []
    for tier in sorted(set(tiers.values())):
        out += [i for i, t in tiers.items() if t == tier]
        if len(out) >= n:
            break
    return sorted(out)


def select(candidates: list[tuple[SampleScore, str, T]], n: int, groups: list[int] | None = None) -> list[T]:
    """The ``n`` best of ``(score, prompt text, item)`` in sampling order: best tier first, and
    within a tier the highest ``joint + VARIETY_WEIGHT · (share of word bigrams new to those
    kept)`` first (greedy), ties in sampling order.

    Args:
        groups: one id per candidate (None: each its own): at most one candidate of a group is
            kept, so that a prompt and its own opening (:func:`textopia.text.clause_openings`) are
            never both returned.
    """
    group = groups if groups is not None else list(range(len(candidates)))
    if len(group) != len(candidates):
        raise ValueError(f"{len(group)} groups for {len(candidates)} candidates")
    order = sorted(range(len(candidates)), key=lambda i: (candidates[i][0].rank(), i))
    kept: list[T] = []
    used: set[int] = set()
    seen: set[tuple[str, str]] = set()
    start = 0
    while start < len(order) and len(kept) < n:
        tier = candidates[order[start]][0].rank()
        end = start
        while end < len(order) and candidates[order[end]][0].rank() == tier:
            end += 1
        pool = {i: _bigrams(candidates[i][1]) for i in order[start:end] if group[i] not in used}
        while pool and len(kept) < n:
            best = max(pool, key=lambda i: (joint(candidates[i][0])
                                            + VARIETY_WEIGHT * len(pool[i] - seen) / max(1, len(pool[i])), -i))
            seen |= pool.pop(best)
            used.add(group[best])
            pool = {i: b for i, b in pool.items() if group[i] != group[best]}
            kept.append(candidates[best][2])
        start = end
    return kept
