"""Safe mode and banned words: what the service and the integrations keep out of their answers.

The training corpus holds NSFW prompts. Safe mode bans :data:`NSFW_WORDS` while decoding
(through the Generator's ``banned_words``) and then drops any prompt that still contains one,
for example through a spelling the decoder's ban did not cover. Plain Python, in the lowest layer,
so that every front end (``textopia.serving``, ``textopia.integrations``) shares one list.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

#: A short list on purpose: the words that mark most NSFW prompts in text-to-image corpora.
NSFW_WORDS: tuple[str, ...] = (
    "nsfw",
    "nude",
    "nudes",
    "nudity",
    "naked",
    "topless",
    "nipple",
    "nipples",
    "breasts",
    "boobs",
    "genitals",
    "porn",
    "pornographic",
    "hentai",
    "erotic",
    "erotica",
    "sexual",
    "sex",
    "lingerie",
    "undressed",
    "sexy",
    "seductive",
    "seductively",
    "gore",
)


def clean_words(words: Iterable[str]) -> list[str]:
    """Strip, collapse inner spaces and drop empty or duplicate entries (order kept, any case)."""
    seen: set[str] = set()
    out: list[str] = []
    for word in words:
        cleaned = " ".join(word.split())
        if cleaned and cleaned.lower() not in seen:
            seen.add(cleaned.lower())
            out.append(cleaned)
    return out


def banned_pattern(words: Iterable[str]) -> re.Pattern[str] | None:
    """A case-insensitive regex matching any of ``words`` as whole words (plural ``s`` too).

    Multi-word entries ("greg rutkowski") match across any run of spaces. Returns None for no
    words.
    """
    parts = []
    for word in clean_words(words):
        tokens = [re.escape(token) for token in word.split(" ")]
        parts.append(r"\s+".join(tokens))
    if not parts:
        return None
    # Longest first, so "nudes" is tried before "nude"; (?<!\w)/(?!\w) also work for words
    # that start or end in punctuation, where \b would not.
    parts.sort(key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?:e?s)?(?!\w)", re.IGNORECASE)


@functools.cache
def nsfw_pattern() -> re.Pattern[str]:
    """:func:`banned_pattern` of :data:`NSFW_WORDS`, compiled once for every caller."""
    return banned_pattern(NSFW_WORDS)


def contains_banned(text: str, pattern: re.Pattern[str] | None) -> bool:
    """True if ``text`` holds a word that ``pattern`` (from :func:`banned_pattern`) bans."""
    return pattern is not None and pattern.search(text) is not None


def mask_banned(text: str, pattern: re.Pattern[str] | None, mask: str = "***") -> str:
    """``text`` with every banned word replaced by ``mask``."""
    if pattern is None:
        return text
    return pattern.sub(mask, text)
