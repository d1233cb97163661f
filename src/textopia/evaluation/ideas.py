"""The ideas an evaluation writes from, and the human reference: held-out prompts grouped by idea.

Ideas come from a file (one per line) or are derived from a held-out split, seeded
(:func:`ideas_from_prompts`). The human row of a comparison (:func:`human_samples`) holds, for
each idea, its source prompt and other held-out prompts that contain every content word of the
idea: what people wrote about it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path

from textopia.data.corpus import read_split
from textopia.data.ideas import derive_idea
from textopia.generation.base import TextopiaError
from textopia.text import content_stems

DEFAULT_NUM_IDEAS = 100
DEFAULT_SAMPLES = 5


# --------------------------------------------------------------------------------------------
# Ideas and the human reference
# --------------------------------------------------------------------------------------------


def ideas_from_prompts(prompts: Sequence[str], num_ideas: int = DEFAULT_NUM_IDEAS, seed: int = 0) -> list[tuple[str, str]]:
    """``(idea, source prompt)`` pairs: ideas derived from held-out prompts, deterministically.

    Prompts are visited in a seeded order; each gives one idea (:func:`derive_idea`, seeded per
    prompt); prompts without content words and ideas already taken (case-insensitive) are skipped.
    """
    order = list(range(len(prompts)))
    random.Random(f"ideas/{seed}").shuffle(order)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for j in order:
        if len(out) >= num_ideas:
            break
        idea = derive_idea(prompts[j], random.Random(f"idea/{seed}/{j}"))
        key = " ".join(idea.lower().split()) if idea else ""
        if not key or key in seen:
            continue
        seen.add(key)
        out.append((idea, prompts[j]))
    return out


def read_ideas_file(path: str | Path) -> list[str]:
    """Ideas from a text file: one per line, blank lines and repeats dropped, order kept.

    Raises:
        TextopiaError: the file is missing or holds no idea.
    """
    p = Path(path)
    if not p.is_file():
        raise TextopiaError(f"ideas file not found: {p}")
    ideas = list(dict.fromkeys(" ".join(line.split()) for line in p.read_text(encoding="utf-8").splitlines()))
    ideas = [i for i in ideas if i]
    if not ideas:
        raise TextopiaError(f"no ideas in {p}")
    return ideas


def load_ideas(
    ideas_file: str | Path | None = None,
    *,
    data_dir: str | Path | None = None,
    split: str = "test",
    num_ideas: int = DEFAULT_NUM_IDEAS,
    seed: int = 0,
) -> tuple[list[str], dict[str, str]]:
    """The ideas to write from, and for derived ideas the prompt each came from.

    Returns:
        ``(ideas, sources)``: ``sources`` maps an idea to its held-out prompt (empty for a file).

    Raises:
        TextopiaError: no file and no data directory, a missing split, or no ideas.
    """
    if ideas_file is not None:
        return read_ideas_file(ideas_file), {}
    if data_dir is None:
        raise TextopiaError("give an ideas file or a data directory to derive ideas from")
    pairs = ideas_from_prompts(read_split(data_dir, split), num_ideas, seed)
    if not pairs:
        raise TextopiaError(f"no ideas could be derived from {Path(data_dir) / split}.txt")
    return [idea for idea, _ in pairs], dict(pairs)


def human_samples(
    ideas: Sequence[str],
    prompts: Sequence[str],
    *,
    n_per_idea: int = DEFAULT_SAMPLES,
    seed: int = 0,
    sources: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """Held-out human prompts for each idea (see the module docstring): ``{idea: [prompt, ...]}``.

    An idea whose content words no prompt contains (and that has no source) gets an empty list.
    """
    sources = sources or {}
    stems = [content_stems(p) for p in prompts]
    index: dict[str, set[int]] = {}
    for j, s in enumerate(stems):
        for w in s:
            index.setdefault(w, set()).add(j)
    out: dict[str, list[str]] = {}
    for i, idea in enumerate(ideas):
        group = [sources[idea]] if idea in sources else []
        wanted = content_stems(idea)
        if wanted:
            matches = set.intersection(*(index.get(w, set()) for w in wanted))
            pool = sorted(j for j in matches if prompts[j] not in group)
            rng = random.Random(f"human/{seed}/{i}")
            group += [prompts[j] for j in rng.sample(pool, min(len(pool), n_per_idea - len(group)))]
        out[idea] = group[:n_per_idea]
    return out


