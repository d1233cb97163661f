"""The Generator for decoder-only language models (GPT, LSTM)."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import torch

from textopia.clip_count import fit_clip
from textopia.data.tokenizer import PromptTokenizer
from textopia.generation import rerank
from textopia.generation.base import Generation, Generator, TextopiaError
from textopia.generation.config import (MAX_ROWS, GenerationConfig, check_rows, check_setting, from_nothing,
                                       rows_per_round)
from textopia.generation.decoding import TAIL_SHARE, SampleJob, Sampled, clean_prompt, dedup_key, sample_many
from textopia.generation.rerank import SampleScore, score_opening, score_sample, select
from textopia.safety import contains_banned, nsfw_pattern
from textopia.text import KnownWords, clause_openings, close_spaced_compounds

logger = logging.getLogger(__name__)

MAX_ROUNDS = 4  # sampling rounds before returning fewer than n distinct prompts
CLEAN_ROUNDS = 3  # with rerank: rounds drawn at most while fewer than n samples are faultless


@dataclass(frozen=True)
class Draw:
    """One job of a sampling round: ``rows`` continuations of ``context`` for one call.

    Attributes:
        context: the token ids fed first (:meth:`PromptTokenizer.context_ids`).
        rows: how many samples to draw.
        generator: the call's RNG (seeded by its ``seed``).
        idea: the call's idea in expand mode (None in continue mode or without one).
        opening: the prompt's opening that ``context`` ends with (the idea's own words; None: none).
        latent: a latent model's own settings object for the call (None: its defaults).
    """

    context: list[int]
    rows: int
    generator: torch.Generator
    idea: str | None = None
    opening: str | None = None
    latent: Any = None


class TokenSampler(Protocol):
    """How a :class:`DecoderGenerator` draws the rows of a sampling round."""

    def draw(self, jobs: list[Draw], settings: GenerationConfig) -> list[list[Sampled]]:
        """Each job's samples (``job.rows`` :class:`Sampled` each), in the jobs' order; the jobs'
        calls share ``settings`` but for their seeds (each job draws with its own RNG)."""


class BatchedLMSampler:
    """The language models' :class:`TokenSampler`: every job of a round in one batch
    (:func:`sample_many`), the calls of a service's micro-batch together; the idea's words are
    boosted where the job has no opening made of them."""

    def __init__(self, generator: "DecoderGenerator") -> None:
        self.generator = generator

    def draw(self, jobs: list[Draw], settings: GenerationConfig) -> list[list[Sampled]]:
        g = self.generator
        batch = [SampleJob(j.context, j.rows, j.generator, j.idea if j.opening is None else None) for j in jobs]
        return sample_many(g.model, g.tokenizer, batch, settings, g.max_positions, g.known_words,
                           tail_share=TAIL_SHARE if settings.rerank else 0.0)


#: Decoding defaults of a decoder-only family where they differ from :class:`GenerationConfig`'s:
#: the LSTM without the repetition penalty. Two blind judges of one prompt for 50 new ideas scored
#: its keep 5.10 / 5.06 with 1.1 against 5.48 / 5.48 with 1.0, kept 24% against 42%, 1.0 higher in
#: 29 of 50 pairs for both (benchmarks/results/judged/ab_s21_lstm_repetition); for the GPT the
#: penalty was judged better (ab_s21_repetition) and stays.
FAMILY_DECODING: dict[str, GenerationConfig] = {"lstm": GenerationConfig(repetition_penalty=1.0)}


class DecoderGenerator(Generator):
    """Writes prompts with a decoder-only LM and :func:`textopia.generation.decoding.sample_many`.

    Args:
        model: the LM (eval mode).
        tokenizer: its tokenizer.
        meta: the checkpoint's Textopia settings (``kind``, ``model``, ...).
        name: the model's name as the user gave it.
        sampler: draws each sampling round's rows (None: :class:`BatchedLMSampler` on ``model``;
            a latent model passes one that fixes a latent per row first).
    """

    #: Of the candidates that open with the idea's own words, the share whose opening is left
    #: open ("a lighthouse in a storm": the model may go on with the scene), the rest closed as a
    #: clause of its own ("a lighthouse in a storm,": style and detail follow). None for a language
    #: model: left open, the writer went on with scenes that fight the idea ("a clock tower in the
    #: rain, eats a sign", "a desert nomad on a clear ocean"); two blind judges of one prompt on 30
    #: ideas scored all closed against half open coherence 6.20 / 6.30 against 5.73 / 5.93 and
    #: relevance 8.60 / 9.13 against 8.03 / 8.50 (keep 5.63 / 6.00 against 5.43 / 5.63). The free
    #: candidates still place the idea, and the scene, themselves.
    open_opening_share = 0.0
    #: Of those candidates, how many open instead with a subject clause people wrote around the
    #: idea (:meth:`~textopia.text.KnownWords.subjects_for`: "an ice dragon breathing blue flames",
    #: "a beautiful young witch with a crystal ball"), one row each, drawn by how many prompts
    #: open with each; the reranker prefers them within a tier (:meth:`SampleScore.rank`). The
    #: writer's own detail after the idea fought the subject as often as it fitted it ("a parrot
    #: made of cheese", "a mountain village in the sea"): benchmarks/results/judged/ab_s27_detail.
    subject_openings = 4

    def __init__(self, model, tokenizer: PromptTokenizer, meta: dict[str, Any], name: str, *,
                 sampler: TokenSampler | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.name = name
        self.kind = meta["kind"]
        if self.kind in FAMILY_DECODING:
            self.default_decoding = FAMILY_DECODING[self.kind]
        from textopia.models.gpt import max_positions

        self.max_positions = max_positions(model)
        self.known_words: KnownWords | None = None  # set by the loader from the checkpoint's known_words.txt
        self.critic = None  # a CoherenceCritic the reranker consults (set by the loader); None: none
        #: the writer's :class:`~textopia.models.keep_head.KeepHead`, which chooses within a tier
        #: (set by the loader from the checkpoint's ``keep/``); None: rerank's fluency and length
        self.keep_head = None
        self.sampler: TokenSampler = BatchedLMSampler(self) if sampler is None else sampler

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "vocab_size": len(self.tokenizer),
            "context_tokens": self.max_positions,
        }

    def prefix_lm(self):
        """The causal LM that chooses an opening made of the idea (:meth:`idea_prefix`): the model
        itself; None where the generator has none (the idea is then its own opening)."""
        return self.model

    def generate_with(self, idea: str | None, n: int, settings: GenerationConfig, latent: Any = None) -> list[Generation]:
        """:meth:`Generator.generate` with its settings as objects: ``settings`` for decoding, and
        ``latent`` for how a latent model draws its latents (its own settings object; None: its
        defaults).

        Raises:
            TextopiaError: as :meth:`generate`.
        """
        request = self._request(idea, n, settings, latent)
        self._complete([request])
        return request.result()

    def generate_batch(self, calls: list[tuple[str | None, int, GenerationConfig]],
                       min_pool: int | None = None) -> list[list[Generation] | TextopiaError]:
        """Several :meth:`generate` calls decoded together (the service's micro-batches).

        Args:
            calls: ``(idea, n, settings)`` each; calls whose settings differ only in ``seed`` share
                each sampling round in one batch (:func:`sample_many`).
            min_pool: with reranking, the fewest samples each call draws
                (:func:`~textopia.generation.config.rows_per_round`); None: the generator's
                :attr:`min_pool`. The service lowers it while requests wait
                (:class:`~textopia.serving.batcher.MicroBatcher`'s ``brownout_pool``).

        Returns:
            per call, its prompts, or the :class:`TextopiaError` that its input raised. A call
            batched with others may get other prompts than alone for the same seed, where float
            rounding differs in a larger batch, or the batch's longest rows stop at another step
            (:data:`~textopia.generation.decoding.TAIL_SHARE`).
        """
        if min_pool is not None and not 1 <= min_pool <= MAX_ROWS:
            raise ValueError(f"min_pool must be in [1, {MAX_ROWS}], got {min_pool}")
        out: list[list[Generation] | TextopiaError | None] = [None] * len(calls)
        requests: dict[int, _Request] = {}
        for i, (idea, n, settings) in enumerate(calls):
            try:
                requests[i] = self._request(idea, n, settings, min_pool=min_pool)
            except TextopiaError as e:
                out[i] = e
        self._complete(list(requests.values()))
        for i, r in requests.items():
            out[i] = r.result()
        return out  # type: ignore[return-value]

    def _request(self, idea: str | None, n: int, settings: GenerationConfig, latent: Any = None,
                 min_pool: int | None = None) -> "_Request":
        """Check one call's input and set it up (no sampling yet); ``min_pool`` None: the
        generator's. Raises TextopiaError."""
        check_setting("n", n)
        idea, settings = from_nothing(idea, settings)
        if settings.known_words_only and self.known_words is None:
            raise TextopiaError(f"known_words_only needs the model's known-word list, and {self.name} has none "
                                f"(no known_words.txt in its checkpoint)")
        if settings.seed is None:
            settings = replace(settings, seed=random.SystemRandom().randrange(2**31))
        settings.validate()
        pool = self.min_pool if min_pool is None else min_pool
        check_rows(n, settings, min_pool=pool)
        if settings.mode == "expand":
            from textopia.generation.boost import banned_idea_words

            for word in banned_idea_words(idea, settings.banned_words):
                logger.warning("the idea word %r is also banned: the ban wins, prompts will not contain it", word)
        if settings.mode == "continue":
            context = self.tokenizer.context_ids(None, prompt_prefix=idea)
        else:
            context = self.tokenizer.context_ids(idea)
        if self.max_positions is not None and len(context) >= self.max_positions - 1:
            raise TextopiaError(
                f"the text is too long: {len(context)} tokens, the model reads at most {self.max_positions}"
            )
        request = _Request(self, idea, n, settings, context, latent, pool)
        rows = int(request.per_round * settings.idea_prefix)
        if settings.rerank and settings.mode == "expand" and idea and rows:
            # The opening as a clause of its own ("a lighthouse in a storm,": style and detail follow)
            # and left open ("a lighthouse in a storm": the model may go on with the scene), as
            # open_opening_share says.
            prefix = self.idea_prefix(idea)
            left_open = round(rows * self.open_opening_share)
            subjects = [f"{c}," for c in self.subject_clauses(idea, settings.seed, min(self.subject_openings,
                                                                                         rows - left_open - 1),
                                                              banned=request.banned)]
            request.subject_openings = set(subjects)
            for text, count in ((f"{prefix},", rows - left_open - len(subjects)), (prefix, left_open),
                                *((t, 1) for t in subjects)):
                context = self.tokenizer.context_ids(idea, prompt_prefix=text)
                if count and (self.max_positions is None or len(context) < self.max_positions - 1):
                    request.openings.append((text, count, context))
        return request

    def _complete(self, requests: list["_Request"]) -> None:
        """Sample rounds until every request has enough candidates (or :data:`MAX_ROUNDS`). Each
        round, the jobs of the requests that still need one and whose settings differ only in
        ``seed`` go to :attr:`sampler` together, the service's later rounds included."""
        while True:
            pending = [r for r in requests if r.rounds < MAX_ROUNDS and not r.enough()]
            if not pending:
                self._judge(requests)
                return
            groups: dict[GenerationConfig, list[_Request]] = {}
            for r in pending:
                groups.setdefault(replace(r.settings, seed=None), []).append(r)
            for settings, members in groups.items():
                jobs, owners = [], []
                for r in members:
                    idea = r.idea if settings.mode == "expand" else None
                    for context, rows, opening in r.jobs():
                        jobs.append(Draw(context, rows, r.generator, idea, opening, r.latent))
                        owners.append((r, opening))
                for (r, opening), samples in zip(owners, self.sampler.draw(jobs, settings)):
                    r.add(samples, prefix=opening)
                for r in members:
                    r.rounds += 1

    def subject_clauses(self, idea: str, seed: int, k: int, banned: Sequence[re.Pattern] = ()) -> list[str]:
        """Up to ``k`` different subject clauses people wrote around ``idea`` (the known words'
        :meth:`~textopia.text.KnownWords.subjects_for`; none without them), drawn without
        replacement in proportion to how many prompts open with each, by an RNG of ``seed``. A
        clause with a word of ``banned`` or of safe mode's list (:data:`textopia.safety.NSFW_WORDS`,
        whether safe mode is on or not: a subject the user did not ask for) is never drawn."""
        found = self.known_words.subjects_for(idea) if self.known_words is not None and k > 0 else []
        found = [(c, n) for c, n in found if not contains_banned(c, nsfw_pattern()) and not any(p.search(c) for p in banned)]
        if not found:
            return []
        weights = torch.tensor([float(count) for _, count in found])
        picks = torch.multinomial(weights, min(k, len(found)), replacement=False,
                                  generator=torch.Generator().manual_seed(seed))
        return [found[i][0] for i in picks.tolist()]

    @torch.no_grad()
    def idea_prefix(self, idea: str) -> str:
        """The opening of a prompt made of the idea itself: the likeliest under the model, given the
        idea, of "IDEA", "a IDEA", "an IDEA" and "the IDEA" (the articles only where the idea does
        not begin with a stop word; "a" and "an" only where its head noun is singular:
        :func:`~textopia.text.plural_phrase`); summed log-probabilities of the opening's tokens, nats."""
        from textopia.text import STOP_WORDS, plural_phrase, tokenize

        lm = self.prefix_lm()
        words = tokenize(idea)
        if lm is None or not words or words[0] in STOP_WORDS:
            return idea
        forms = [idea, f"the {idea}"] if plural_phrase(idea) else [idea, f"a {idea}", f"an {idea}", f"the {idea}"]
        base = len(self.tokenizer.context_ids(idea))
        rows = [(form, ids) for form in forms
                if (self.max_positions is None or len(ids := self.tokenizer.context_ids(idea, prompt_prefix=form))
                    < self.max_positions)]
        if not rows:
            return idea
        # One right-padded batch (causal: a real token never sees the padding after it).
        width = max(len(ids) for _, ids in rows)
        input_ids = torch.tensor([ids + [self.tokenizer.pad_id] * (width - len(ids)) for _, ids in rows])
        logprobs = torch.log_softmax(lm(input_ids=input_ids).logits[:, base - 1:].float(), dim=-1)  # (F, W - base + 1, V)
        best, best_logprob = idea, -float("inf")
        for row, (form, ids) in enumerate(rows):
            targets = torch.tensor(ids[base:])
            logprob = float(logprobs[row, : len(ids) - base].gather(1, targets[:, None]).sum())
            if logprob > best_logprob:
                best, best_logprob = form, logprob
        return best

    def keep_scorer(self):
        """``(writer, keep head)``: the model whose hidden states the keep head reads, and the head;
        None where there is no head (the reranker then weighs fluency and length)."""
        return None if self.keep_head is None else (self.model, self.keep_head)

    def _judge(self, requests: list["_Request"]) -> None:
        """Give the reranked candidates their within-tier scores, all requests in one batch: the
        keep head's utility to those of the tiers the reranker chooses among
        (:func:`~textopia.generation.rerank.contenders`), where the writer has a head; and the
        coherence critic's logit to every one, where it has a critic of weight
        (``rerank.CRITIC_WEIGHT``) above 0."""
        scorer = self.keep_scorer() if any(r.reranking for r in requests) else None
        if scorer is not None:
            model, head = scorer
            slots = [(r, i) for r in requests if r.reranking
                     for i in rerank.contenders([c[0] for c in r.candidates], r.n)]
            if slots:
                ideas = [r.idea if r.settings.mode == "expand" else None for r, _ in slots]
                raw = head.features(model, self.tokenizer, ideas, [r.candidates[i][1] for r, i in slots],
                                    wholes=[r.wholes[i] for r, i in slots], weight_dtype=model.scoring_dtype)
                for (r, i), utility in zip(slots, head.utility(raw).tolist()):
                    score, text, gen = r.candidates[i]
                    r.candidates[i] = (replace(score, keep=utility), text, gen)
        if self.critic is None or rerank.CRITIC_WEIGHT == 0:
            return
        slots = [(r, i) for r in requests if r.reranking for i, c in enumerate(r.candidates) if c[0] is not None]
        if not slots:
            return
        logits = self.critic.logits([r.candidates[i][1] for r, i in slots]).tolist()
        for (r, i), logit in zip(slots, logits):
            score, text, gen = r.candidates[i]
            r.candidates[i] = (replace(score, critic=logit), text, gen)


class _Request:
    """One generate call in progress: its settings, its RNG, and the candidates sampled so far."""

    def __init__(self, owner: DecoderGenerator, idea: str | None, n: int, settings: GenerationConfig,
                 context: list[int], latent: Any, min_pool: int) -> None:
        self.owner, self.idea, self.n, self.settings, self.context = owner, idea, n, settings, context
        self.latent = latent  # a latent model's own settings for this call (None: its defaults)
        self.reranking = settings.rerank
        self.settings_dict = asdict(settings)  # each candidate's Generation holds a copy of it
        self.per_round = rows_per_round(n, settings, min_pool)  # the call's pool, resolved by _request
        self.banned = [re.compile(rf"(?<!\w){re.escape(w.strip())}(?!\w)", re.IGNORECASE)
                       for w in settings.banned_words if w.strip()]
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.seen: set[str] = set()
        self.candidates: list[tuple[SampleScore | None, str, Generation]] = []
        self.groups: list[int] = []  # the sample each candidate was cut from (rerank.select's groups)
        self.wholes: list[str] = []  # and that sample's text (the keep head reads both in one pass)
        self.samples = 0  # samples taken so far, duplicates and banned ones included
        # A sample's openings are candidates too (rerank.CUT_CLAUSES) where a keep head scores them:
        # the fluency that ranks without a head is the sample's own and cannot tell them apart.
        self.cutting = self.reranking and rerank.CUT_CLAUSES and owner.keep_scorer() is not None
        self.rounds = 0
        # ``(text, rows, context)`` of each opening made of the idea's own words that rows of each
        # round continue (GenerationConfig.idea_prefix): set by DecoderGenerator._request.
        self.openings: list[tuple[str, int, list[int]]] = []
        self.subject_openings: set[str] = set()  # the openings that are subject clauses people wrote

    def jobs(self) -> list[tuple[list[int], int, str | None]]:
        """One round's sampling jobs, ``(context, rows, opening)``: the free rows (opening None),
        then the rows of each opening."""
        free = self.per_round - sum(rows for _, rows, _ in self.openings)
        return ([(self.context, free, None)] if free else []) + [(c, k, t) for t, k, c in self.openings]

    def add(self, samples: list[Sampled], prefix: str | None = None) -> None:
        """Take samples of one job of a round (continuations of ``prefix``, the prompt's given
        opening, where not None)."""
        owner, mode, idea = self.owner, self.settings.mode, self.idea
        scored_idea = idea if mode == "expand" else None
        opening = idea if mode == "continue" else prefix
        if prefix in self.subject_openings:  # the corpus's words, spaced as the model reads them ("red - haired")
            opening = close_spaced_compounds(prefix)
        texts = []
        for s in samples:
            text = close_spaced_compounds(owner.tokenizer.decode(s.ids))  # the model's words, not the user's
            if opening:
                text = f"{opening}{text}" if text[:1] in (",", ".") else f"{opening} {text}"
            texts.append(clean_prompt(text, s.finished))
        # Stable Diffusion's text encoder reads 77 CLIP tokens: a longer prompt loses its last tags
        # there anyway, so they are dropped here, where the reranker can still see what is left.
        for s, text in zip(samples, fit_clip(texts)):
            group, self.samples = self.samples, self.samples + 1
            whole = (score_sample(scored_idea, text, s.logprob, s.num_tokens, owner.known_words, s.finished)
                     if self.reranking else None)
            for form in [text, *(clause_openings(text) if self.cutting else [])]:
                key = dedup_key(form)
                if not key or key in self.seen or any(p.search(form) for p in self.banned):
                    continue
                self.seen.add(key)
                gen = Generation(prompt=form, idea=idea, num_tokens=s.num_tokens, finished=s.finished,
                                 model=owner.name, settings=dict(self.settings_dict))
                score = whole if form is text or whole is None else score_opening(scored_idea, form, whole,
                                                                                   owner.known_words)
                if score is not None and prefix in self.subject_openings:
                    score = replace(score, human_subject=True)
                self.candidates.append((score, form, gen))
                self.groups.append(group)
                self.wholes.append(text)

    def enough(self) -> bool:
        if self.rounds == 0:
            return False
        if not self.reranking:
            return len(self.candidates) >= self.n
        if len(set(self.groups)) < self.per_round:  # duplicates dropped: another round
            return False
        # A hard idea (fewer than n samples without a fault the reranker ranks down: the whole idea
        # as the subject, known words, no stutter, no clash or repeated phrase, no new clause) gets
        # more rounds of samples, so that the reranker has enough good ones to choose from.
        faultless = {g for (score, _, _), g in zip(self.candidates, self.groups) if score is not None and score.faultless}
        return len(faultless) >= self.n or self.rounds >= CLEAN_ROUNDS

    def result(self) -> list[Generation]:
        # See textopia.generation.rerank: relevance, then known words and no stutter, then fluency,
        # then variety; without reranking, sampling order.
        out = select(self.candidates, self.n, self.groups) if self.reranking else [c[2] for c in self.candidates[: self.n]]
        if len(out) < self.n:
            logger.warning("only %d distinct prompts out of %d asked for", len(out), self.n)
        return out
