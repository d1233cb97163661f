"""The idea boost: a soft lexical constraint that writes the idea's words into the prompt.

:class:`IdeaBoostProcessor` raises the logits of the idea's words until each has been written, in
the spirit of Hokamp & Liu 2017's constrained decoding without its beam; it is one of the rules
:func:`textopia.generation.decoding.logits_processors` applies.
"""

from __future__ import annotations

import math
import re

import torch

from textopia.data.tokenizer import PromptTokenizer
from textopia.text import content_words, tokenize


#: Nats added, beyond twice the boost, to the next token of an idea word the row has begun: a
#: begun word ("re" of "releasing") is finished, not turned into an invented one ("rendoza").
COMPLETE_BOOST = 8.0
#: Generated tokens during which a clause may not end while an idea word is missing.
HOLD_TOKENS = 24
_CLAUSE_END = re.compile(r"[,.;|]")


def clause_end_ids(tokenizer: PromptTokenizer) -> list[int]:
    """Ids of the tokens whose text holds a clause end (``,`` ``.`` ``;`` ``|``), cached per tokenizer."""
    cached = getattr(tokenizer, "_clause_end_ids", None)
    if cached is None:
        hf = tokenizer.hf
        cached = [i for i in range(len(hf)) if _CLAUSE_END.search(hf.decode([i], skip_special_tokens=True))]
        tokenizer._clause_end_ids = cached
    return cached


class IdeaBoostProcessor:
    """Adds ``boost`` (nats) to the logits that start or continue an idea word not yet written.

    For each idea word, the token sequences of its spellings after a space are the targets: lower
    case, and Capitalised only as the prompt's first word (elsewhere a capital reads as a name:
    "art by Bread"). At each step, for each row: a word counts as written once one of its
    sequences ends the row; for each unwritten word, the first token of every allowed spelling
    gets ``boost · (1 + t / 16)`` after ``t`` generated tokens (the longer a word is missing, the
    stronger the push), and where the row ends with a proper prefix of a spelling, the next token
    of that spelling gets twice that plus :data:`COMPLETE_BOOST` (so that a started word is
    finished, not misspelt). While a
    word is unwritten, EOS is forbidden: a prompt ends only once it holds the whole idea (or at
    ``max_new_tokens``, where the reranker demotes it). For the first :data:`HOLD_TOKENS` tokens,
    while a word is unwritten, tokens that end a clause (with ``,`` ``.`` ``;`` ``|``) are forbidden
    too, so that the idea's words land in the prompt's subject, in the order the model likes, and
    not one by one in its style tail ("..., trending on artstation, bread").

    A transformers ``LogitsProcessor``: called as ``processor(input_ids (N, T) int64, scores
    (N, V) float) -> scores``; ``context_length`` tokens at the start of each row are not output.
    """

    def __init__(self, tokenizer: PromptTokenizer, words: list[str], boost: float, context_length: int) -> None:
        self.boost = boost
        self.eos_id = tokenizer.eos_id
        self.clause_ends = torch.tensor(clause_end_ids(tokenizer), dtype=torch.long)
        self.context_length = context_length
        self.targets: list[list[tuple[int, ...]]] = []  # per word: [lower case, Capitalised]
        for word in words:
            lower = tuple(tokenizer.hf.encode(" " + word.lower(), add_special_tokens=False))
            capital = tuple(tokenizer.hf.encode(" " + word.capitalize(), add_special_tokens=False))
            self.targets.append([s for s in (lower, capital) if s])
        self.longest = max((len(s) for t in self.targets for s in t), default=0)
        self.written: list[list[bool]] | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if not self.targets:
            return scores
        n = input_ids.size(0)
        if self.written is None:
            self.written = [[False] * len(self.targets) for _ in range(n)]
        tails = input_ids[:, max(self.context_length, input_ids.size(1) - self.longest):].tolist()
        generated = input_ids.size(1) - self.context_length
        boost = self.boost * (1.0 + generated / 16.0)
        rows, cols, values = [], [], []
        held: list[int] = []
        for row, tail in enumerate(tails):
            written = self.written[row]
            for w, seqs in enumerate(self.targets):
                if written[w]:
                    continue
                if any(len(tail) >= len(s) and tuple(tail[-len(s):]) == s for s in seqs):
                    written[w] = True
                    continue
                rows.append(row)
                cols.append(self.eos_id)
                values.append(-math.inf)
                if generated < HOLD_TOKENS and (not held or held[-1] != row):
                    held.append(row)
                for j, s in enumerate(seqs):
                    if j == 0 or generated == 0:  # a capital only as the first word
                        rows.append(row)
                        cols.append(s[0])
                        values.append(boost)
                    for k in range(1, len(s)):
                        if len(tail) >= k and tuple(tail[-k:]) == s[:k]:
                            rows.append(row)
                            cols.append(s[k])
                            values.append(2 * boost + COMPLETE_BOOST)
        if held and self.clause_ends.numel():  # in place, as the other rules (processors.py)
            scores[torch.tensor(held)[:, None], self.clause_ends[None, :]] = -math.inf
        if rows:
            index = (torch.tensor(rows), torch.tensor(cols))
            scores.index_put_(index, scores[index] + torch.tensor(values, dtype=scores.dtype))
        return scores


def banned_idea_words(idea: str | None, banned_words: tuple[str, ...] | list[str]) -> list[str]:
    """The idea's content words that are also banned (the ban wins: they are not boosted)."""
    banned = {w for b in banned_words for w in tokenize(b)}
    return list(dict.fromkeys(w for w in content_words(idea or "") if w in banned))


def idea_boost_words(idea: str | None, banned_words: tuple[str, ...] | list[str]) -> list[str]:
    """The idea's content words to boost, less any banned word (:func:`banned_idea_words`; the
    generator warns of those once per request)."""
    if not idea:
        return []
    dropped = set(banned_idea_words(idea, banned_words))
    return list(dict.fromkeys(w for w in content_words(idea) if w not in dropped))
