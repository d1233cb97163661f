"""The Generator for decoder-only language models (GPT, LSTM)."""

from __future__ import annotations

import logging
import random
import re
from dataclasses import asdict
from typing import Any

import torch

from textopia.data.tokenizer import PromptTokenizer
from textopia.generation.base import (
    DecodingSettings,
    Generation,
    Generator,
    TextopiaError,
)
from textopia.generation.decoding import Sampled, clean_prompt, dedup_key, sample
from textopia.generation.rerank import SampleScore, score_sample, select
from textopia.text import KnownWords

logger = logging.getLogger(__name__)

MAX_N = 64
OVERSAMPLE = 3  # with rerank: samples drawn per prompt returned
_D = DecodingSettings()  # the one place the decoding defaults are defined
MAX_ROUNDS = 4  # sampling rounds before returning fewer than n distinct prompts


class DecoderGenerator(Generator):
    """Writes prompts with a decoder-only LM and :func:`textopia.generation.decoding.sample`.

    Args:
        model: the LM (eval mode).
        tokenizer: its tokenizer.
        meta: the checkpoint's Textopia settings (``kind``, ``model``, ...).
        name: the model's name as the user gave it.
    """

    def __init__(self, model, tokenizer: PromptTokenizer, meta: dict[str, Any], name: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.name = name
        self.kind = meta["kind"]
        from textopia.models.gpt import max_positions

        self.max_positions = max_positions(model)
        self.known_words: KnownWords | None = None  # set by the loader from the checkpoint's known_words.txt

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "vocab_size": len(self.tokenizer),
            "context_tokens": self.max_positions,
        }

    def _sample(self, context: list[int], num: int, settings: DecodingSettings, generator: torch.Generator,
                *, idea: str | None, mode: str) -> list[Sampled]:
        """Draw ``num`` continuations of ``context``. Latent models override this to fix a latent
        per sample before decoding."""
        return sample(self.model, self.tokenizer, context, num, settings, generator, self.max_positions,
                      idea=idea if mode == "expand" else None)

    def generate(
        self,
        idea: str | None,
        n: int = 4,
        *,
        mode: str = "expand",
        temperature: float = _D.temperature,
        top_p: float = _D.top_p,
        top_k: int = _D.top_k,
        repetition_penalty: float = _D.repetition_penalty,
        max_new_tokens: int = _D.max_new_tokens,
        min_new_tokens: int = _D.min_new_tokens,
        seed: int | None = None,
        banned_words: list[str] | tuple[str, ...] = (),
        rerank: bool = True,
        min_p: float = _D.min_p,
        idea_boost: float = _D.idea_boost,
    ) -> list[Generation]:
        if not 1 <= n <= MAX_N:
            raise TextopiaError(f"n must be between 1 and {MAX_N}, got {n}")
        if idea is not None and not idea.strip():
            raise TextopiaError("empty idea: give a few words, or no idea at all to sample unconditionally")
        idea = " ".join(idea.split()) if idea else None
        if mode == "continue" and not idea:
            raise TextopiaError("continue mode needs the prompt's beginning; got an empty text")
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        settings = DecodingSettings(
            mode=mode, temperature=temperature, top_p=top_p, top_k=top_k,
            repetition_penalty=repetition_penalty, max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens, seed=seed, banned_words=tuple(banned_words), rerank=rerank,
            min_p=min_p, idea_boost=idea_boost,
        )
        settings.validate()
        if mode == "continue":
            context = self.tokenizer.context_ids(None, prompt_prefix=idea)
        else:
            context = self.tokenizer.context_ids(idea)
        if self.max_positions is not None and len(context) >= self.max_positions - 1:
            raise TextopiaError(
                f"the text is too long: {len(context)} tokens, the model reads at most {self.max_positions}"
            )
        reranking = rerank
        per_round = n * (OVERSAMPLE if reranking else 1)
        banned = [re.compile(rf"(?<!\w){re.escape(w.strip())}(?!\w)", re.IGNORECASE) for w in banned_words if w.strip()]
        generator = torch.Generator().manual_seed(seed)
        seen: set[str] = set()
        scored_idea = idea if mode == "expand" else None
        candidates: list[tuple[SampleScore, str, Generation]] = []
        for _ in range(MAX_ROUNDS):
            for s in self._sample(context, per_round, settings, generator, idea=idea, mode=mode):
                new_ids, finished = s.ids, s.finished
                text = self.tokenizer.decode(new_ids)
                if mode == "continue":
                    text = f"{idea}{text}" if text[:1] in (",", ".") else f"{idea} {text}"
                text = clean_prompt(text, finished)
                key = dedup_key(text)
                if not key or key in seen or any(p.search(text) for p in banned):
                    continue
                seen.add(key)
                gen = Generation(prompt=text, idea=idea, num_tokens=len(new_ids) + (1 if finished else 0),
                                 finished=finished, model=self.name, settings=asdict(settings))
                candidates.append((score_sample(scored_idea, text, s.logprob, s.num_tokens, self.known_words,
                                                finished)
                                   if reranking else None, text, gen))
            if len(candidates) >= per_round or (not reranking and len(candidates) >= n):
                break
        # See textopia.generation.rerank: relevance, then known words and no stutter, then fluency,
        # then variety; without reranking, sampling order.
        out = select(candidates, n) if reranking else [c[2] for c in candidates[:n]]
        if len(out) < n:
            logger.warning("only %d distinct prompts out of %d asked for", len(out), n)
        return out
