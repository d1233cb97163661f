"""Training ideas derived from prompts: what a user might have typed to get this prompt.

An idea is 1 to 4 content words or short phrases taken from the prompt's subject (not its
generic style tail such as "trending on artstation", nor artist credits "by ..."), shuffled, so
that the model learns to write a whole prompt around words that may stand anywhere in it.
"""

from __future__ import annotations

import random
import re

from textopia.text import STOP_WORDS

#: Words never taken into an idea: English stop words (:data:`textopia.text.STOP_WORDS`, the one
#: list) and the filler verbs and prepositions of prompts ("made of", "using", "like").
IDEA_STOP_WORDS = STOP_WORDS | frozenset("without onto made make like using use".split())

# Words that make up the generic style tail of SD prompts; a comma segment made only of these
# (or starting with "by ") is not part of the subject.
STYLE_WORDS = frozenset(
    """trending artstation art station cgsociety deviantart pixiv behance unreal engine octane
    render rendered rendering redshift vray 4k 8k 16k 32k hd uhd hdr highly detailed detail
    details intricate sharp focus smooth elegant illustration digital painting concept art
    cinematic lighting volumetric masterpiece award winning photorealistic hyperrealistic
    hyperrealism realistic ultra ultrarealistic hyper photo photograph photography quality high
    resolution best studio dramatic ambient light soft global illumination matte artgerm
    greg rutkowski wlop alphonse mucha style featured beautiful epic stunning amazing
    professional symmetrical symmetry centered 35mm 50mm 85mm lens bokeh depth field dof
    f/1.8 f/2.8 dslr canon nikon sony 3d 2d cgi anime""".split()
)

_WORD = re.compile(r"[^\W_][\w'\-]*")


def _is_style_segment(segment: str) -> bool:
    seg = segment.strip().lower()
    if seg.startswith("by ") or seg.startswith("in the style of") or seg.startswith("style of"):
        return True
    words = _WORD.findall(seg)
    return bool(words) and all(w in STYLE_WORDS or w in IDEA_STOP_WORDS for w in words)


def content_words(text: str) -> list[str]:
    """Lowercased content words of ``text``: no stop words, at least 3 characters, not numbers."""
    out = []
    for w in _WORD.findall(text.lower()):
        if len(w) >= 3 and w not in IDEA_STOP_WORDS and not w[0].isdigit():
            out.append(w)
    return out


def subject_phrases(prompt: str) -> list[list[str]]:
    """Runs of adjacent content words in the prompt's subject segments (comma-separated)."""
    runs: list[list[str]] = []
    for segment in prompt.split(","):
        if _is_style_segment(segment):
            continue
        segment = re.split(r"\bby\b", segment, maxsplit=1)[0]  # "digital art by X": X is credit
        current: list[str] = []
        for w in _WORD.findall(segment):
            lw = w.lower()
            if len(lw) >= 3 and lw not in IDEA_STOP_WORDS and lw not in STYLE_WORDS and not lw[0].isdigit():
                current.append(w if not w.isupper() else lw)  # keep names' case, tame SHOUTING
            else:
                if current:
                    runs.append(current)
                current = []
        if current:
            runs.append(current)
    return runs


def derive_idea(prompt: str, rng: random.Random, max_items: int = 4) -> str | None:
    """Derive one training idea from a prompt, or None if it has no content words.

    Picks 1 to ``max_items`` items, each a single content word or a phrase of two adjacent
    ones, from the subject; shuffles them; joins with spaces or commas (as users type).
    """
    runs = subject_phrases(prompt)
    if not runs:
        return None
    candidates: list[str] = []
    for run in runs:
        i = 0
        while i < len(run):
            if i + 1 < len(run) and rng.random() < 0.3:
                candidates.append(f"{run[i]} {run[i + 1]}")
                i += 2
            else:
                candidates.append(run[i])
                i += 1
    # Earlier words are the subject more often than later ones: weight the pick towards them.
    k = min(len(candidates), rng.choice((1, 2, 2, 3, 3, 4)), max_items)
    pool = candidates[: max(k, min(len(candidates), 8))]
    chosen = rng.sample(pool, k)
    lower = rng.random() < 0.7
    items = [c.lower() if lower else c for c in chosen]
    sep = ", " if rng.random() < 0.25 else " "
    return sep.join(items)
