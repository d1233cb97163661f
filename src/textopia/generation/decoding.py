"""Sampling from decoder-only language models, with transformers' logits processors.

One loop serves every decoder (GPT, LSTM): the model is called as
``model(input_ids=..., past_key_values=..., use_cache=True)`` and must return ``.logits``
(B, T, V) and ``.past_key_values`` (its cache or recurrent state, opaque here).
Temperature, top-k, top-p (Holtzman et al. 2020), the repetition penalty (Keskar et al. 2019),
banned words and a minimum length are transformers' own processors.
"""

from __future__ import annotations

import re

import torch

from textopia.data.tokenizer import PromptTokenizer
from textopia.generation.base import DecodingSettings


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


def logits_processors(settings: DecodingSettings, tokenizer: PromptTokenizer, context_length: int):
    """The ``LogitsProcessorList`` for ``settings``: penalties and bans first, then warpers."""
    from transformers import (
        LogitsProcessorList,
        MinNewTokensLengthLogitsProcessor,
        NoBadWordsLogitsProcessor,
        NoRepeatNGramLogitsProcessor,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    procs = LogitsProcessorList()
    if settings.min_new_tokens > 0:
        procs.append(MinNewTokensLengthLogitsProcessor(context_length, settings.min_new_tokens, tokenizer.eos_id))
    if settings.no_repeat_ngram_size > 0:
        procs.append(NoRepeatNGramLogitsProcessor(settings.no_repeat_ngram_size))
    if settings.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
    bad = banned_word_ids(tokenizer, settings.banned_words)
    specials = [[tokenizer.pad_id], [tokenizer.idea_id], [tokenizer.prompt_id]]
    procs.append(NoBadWordsLogitsProcessor(bad + specials, eos_token_id=tokenizer.eos_id))
    if settings.temperature != 1.0:
        procs.append(TemperatureLogitsWarper(settings.temperature))
    if settings.top_k > 0:
        procs.append(TopKLogitsWarper(settings.top_k))
    if settings.top_p < 1.0:
        procs.append(TopPLogitsWarper(settings.top_p))
    return procs


@torch.no_grad()
def sample(
    model,
    tokenizer: PromptTokenizer,
    context: list[int],
    num_samples: int,
    settings: DecodingSettings,
    generator: torch.Generator,
    max_positions: int | None = None,
) -> list[tuple[list[int], bool]]:
    """Sample ``num_samples`` continuations of ``context`` in one batch.

    Args:
        context: the ids fed first (see :meth:`PromptTokenizer.context_ids`).
        generator: the RNG that draws every token (seeded by the caller).
        max_positions: the model's context length; generation stops there.

    Returns:
        for each sample, ``(new_ids, finished)``: generated ids without EOS, and whether the
        model ended it with EOS.
    """
    device = next(model.parameters()).device
    budget = settings.max_new_tokens
    if max_positions is not None:
        budget = min(budget, max_positions - len(context))
    input_ids = torch.tensor([context] * num_samples, dtype=torch.long, device=device)  # (N, T0)
    procs = logits_processors(settings, tokenizer, len(context))
    finished = torch.zeros(num_samples, dtype=torch.bool, device=device)
    past = None
    step_input = input_ids
    for _ in range(max(0, budget)):
        out = model(input_ids=step_input, past_key_values=past, use_cache=True)
        past = out.past_key_values
        scores = procs(input_ids, out.logits[:, -1, :].float())  # (N, V)
        probs = torch.softmax(scores, dim=-1)
        next_ids = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(device)  # (N,)
        next_ids = torch.where(finished, torch.full_like(next_ids, tokenizer.eos_id), next_ids)
        input_ids = torch.cat([input_ids, next_ids[:, None]], dim=1)
        finished |= next_ids == tokenizer.eos_id
        if bool(finished.all()):
            break
        step_input = next_ids[:, None]
    results = []
    for row in input_ids[:, len(context):].tolist():
        if tokenizer.eos_id in row:
            results.append((row[: row.index(tokenizer.eos_id)], True))
        else:
            results.append((row, False))
    return results


_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_REPEATED_COMMAS = re.compile(r"(,\s*){2,}")


def clean_prompt(text: str, finished: bool) -> str:
    """Tidy a decoded prompt; when the model was cut off, drop the word it was in the middle of."""
    text = " ".join(text.split())
    if not finished and " " in text:
        text = text.rsplit(" ", 1)[0]
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _REPEATED_COMMAS.sub(", ", text)
    return text.strip(" ,;:-")


def dedup_key(text: str) -> str:
    """Two prompts are the same if they differ only in case, spacing and punctuation."""
    return " ".join(re.findall(r"[^\W_]+", text.lower()))
