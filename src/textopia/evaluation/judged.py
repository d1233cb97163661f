"""Blind judges' scores as training data: the pairs of model prompts one judge kept differently,
and the keep head fitted on them (:mod:`textopia.models.keep_head`).

A judged folder is what ``benchmarks/blind_judging.py`` writes: ``key.json`` (a list of ``{"id",
"idea", "prompt", "source"}``) and one ``judge*.csv`` per judge (``id,relevance,coherence,keep``,
scores 1-10). Human prompts (source ``"human"``) are left out: the head chooses among a model's
prompts.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from textopia.errors import TextopiaError


def read_scores(path: str | Path) -> dict[int, tuple[float, float, float]]:
    """A judge's CSV (``id,relevance,coherence,keep``): each prompt id's three scores; the header and
    malformed lines (a field that is not a number, fewer than four fields) skipped."""
    scores = {}
    with open(path, newline="") as f:
        for row in csv.reader(f):
            try:
                relevance, coherence, keep = (float(x) for x in row[1:4])
                scores[int(row[0])] = (relevance, coherence, keep)
            except ValueError:
                continue
    return scores


def judged_pairs(folder: str | Path) -> list[tuple[str, str, str, float]]:
    """``(idea, prompt a, prompt b, 1.0 if a was kept higher else 0.0)`` for each pair of model
    prompts for one idea that one judge of ``folder`` kept differently (ties and human prompts
    left out; malformed lines skipped).

    Raises:
        TextopiaError: ``folder`` has no readable ``key.json``.
    """
    folder = Path(folder)
    try:
        key = {item["id"]: item for item in json.loads((folder / "key.json").read_text())}
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise TextopiaError(f"{folder} is not a judged folder (key.json: {e})") from None
    pairs = []
    for path in sorted(folder.glob("judge*.csv")):
        by_idea: dict[str, list[tuple[str, float]]] = {}
        for i, (_, _, keep) in read_scores(path).items():
            item = key.get(i)
            if item is not None and item["source"] != "human":
                by_idea.setdefault(item["idea"], []).append((item["prompt"], keep))
        for idea, rows in by_idea.items():
            for i, (a, keep_a) in enumerate(rows):
                for b, keep_b in rows[i + 1:]:
                    if a != b and keep_a != keep_b:
                        pairs.append((idea, a, b, 1.0 if keep_a > keep_b else 0.0))
    return pairs


@dataclass
class JudgedFeatures:
    """The judged pairs of several folders with the keep head's raw features of their prompts.

    Attributes:
        items: the distinct ``(idea, prompt)`` of the pairs, N of them.
        raw: (N, 2 + 2E) float32, :func:`textopia.models.keep_head.features` of each item.
        a, b: (P,) int64, each pair's first and second item.
        won: (P,) float32, 1 where the first was kept higher.
        folder: (P,) int64, each pair's folder (its index in ``folders``).
        folders: the folders' names.
    """

    items: list[tuple[str, str]]
    raw: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    won: torch.Tensor
    folder: torch.Tensor
    folders: list[str]


def judged_features(generator, folders: Sequence[str | Path]) -> JudgedFeatures:
    """Read ``folders``' judged pairs and compute their prompts' features with ``generator``'s
    writer (a :class:`~textopia.generation.decoder.DecoderGenerator` on the lean GPT-2 engine).

    Raises:
        TextopiaError: a folder is not a judged folder, no folder holds a pair, the writer is not
            one whose hidden states a head reads, or a judged prompt is longer than it reads.
    """
    from textopia.models.keep_head import features

    if not hasattr(getattr(generator, "model", None), "output_logits"):
        raise TextopiaError(f"{generator.name} is not a GPT-2 writer on Textopia's engine: a keep head reads its hidden states")
    pairs = [(index, *pair) for index, folder in enumerate(folders) for pair in judged_pairs(folder)]
    if not pairs:
        raise TextopiaError("no judged pairs: the folders hold no two model prompts for one idea kept differently")
    items = sorted({(idea, p) for _, idea, pa, pb, _ in pairs for p in (pa, pb)})
    limit, tokenizer = generator.model.config.n_positions, generator.tokenizer
    for idea, prompt in items:  # before any pass: one too long for the writer fails here, named
        length = len(tokenizer.context_ids(idea)) + len(tokenizer.encode(prompt)) + 1
        if length > limit:
            raise TextopiaError(f"a judged prompt for {idea!r} is {length} tokens with its idea and end, and "
                                f"{generator.name} reads at most {limit}: fit the head on a writer with more positions")
    at = {item: i for i, item in enumerate(items)}
    raw = features(generator.model, generator.tokenizer, [i for i, _ in items], [p for _, p in items])
    return JudgedFeatures(items=items, raw=raw,
                          a=torch.tensor([at[(idea, pa)] for _, idea, pa, _, _ in pairs]),
                          b=torch.tensor([at[(idea, pb)] for _, idea, _, pb, _ in pairs]),
                          won=torch.tensor([won for *_, won in pairs], dtype=torch.float32),
                          folder=torch.tensor([index for index, *_ in pairs]),
                          folders=[Path(f).name for f in folders])


def fit_on_judged(generator, judged: JudgedFeatures, l2: float, fluency_cap: float | None, **config):
    """The :class:`~textopia.models.keep_head.KeepHead` fitted on every pair of ``judged``, for
    ``generator``'s writer."""
    from textopia.models.keep_head import fit_keep_head

    return fit_keep_head(judged.raw[judged.a], judged.raw[judged.b], judged.won, generator.model.config.n_embd,
                         fluency_cap, l2, **config)


def held_out_hits(judged: JudgedFeatures, l2: float, fluency_cap: float | None,
                  hidden_size: int) -> dict[str, tuple[int, int]]:
    """Leave-one-folder-out: for each folder, a head fitted on the other folders' pairs, and how
    many of this folder's pairs it ranks as the judge did: ``{folder: (right, pairs)}`` (none
    with a single folder). The folders, not the pairs, are the independent units: a folder's
    pairs share its judges and ideas."""
    from textopia.models.keep_head import fit_keep_head

    out = {}
    for g in judged.folder.unique().tolist():
        train, test = judged.folder != g, judged.folder == g
        if not bool(train.any()):
            continue
        head = fit_keep_head(judged.raw[judged.a[train]], judged.raw[judged.b[train]], judged.won[train],
                             hidden_size, fluency_cap, l2)
        margin = head.utility(judged.raw[judged.a[test]]) - head.utility(judged.raw[judged.b[test]])
        out[judged.folders[g]] = (int(((margin > 0).float() == judged.won[test]).sum()), int(test.sum()))
    return out


def fine_tuned_on_judged(generator, judged: JudgedFeatures, head, epochs: int, lr: float, pairs: torch.Tensor | None = None):
    """``head`` (a linear head fitted on the same pairs) with an encoder fine-tuned on
    ``judged``'s pairs (:func:`textopia.models.keep_head.fine_tune_encoder`); ``pairs``: a
    boolean (P,) mask of the pairs to train on (None: all)."""
    from textopia.models.keep_head import fine_tune_encoder

    keep = torch.ones_like(judged.won, dtype=torch.bool) if pairs is None else pairs
    return fine_tune_encoder(generator.model, generator.tokenizer, judged.items, judged.a[keep], judged.b[keep],
                             judged.won[keep], judged.raw, head, epochs, lr)


#: Groups of folders :func:`held_out_fold_hits` leaves out in turn.
HELD_OUT_FOLDS = 5


def held_out_fold_hits(generator, judged: JudgedFeatures, l2: float, fluency_cap: float | None, epochs: int,
                       lr: float, folds: int = HELD_OUT_FOLDS) -> dict[int, tuple[int, int, int]]:
    """Grouped cross-validation of a fine-tuned head (each fold a full fine-tuning, so fewer
    folds than :func:`held_out_hits`' one per folder): the folders dealt round-robin into
    ``folds`` groups; for each group, a linear head and then its fine-tuned encoder fitted on the
    other groups' pairs, and how many of this group's pairs each ranks as the judge did:
    ``{group: (linear right, fine-tuned right, pairs)}`` (groups without pairs left out)."""
    from textopia.models.keep_head import fit_keep_head

    group = judged.folder % folds
    out = {}
    for g in range(folds):
        train, test = group != g, group == g
        if not bool(test.any()) or not bool(train.any()):
            continue
        linear = fit_keep_head(judged.raw[judged.a[train]], judged.raw[judged.b[train]], judged.won[train],
                               generator.model.config.n_embd, fluency_cap, l2)
        tuned = fine_tuned_on_judged(generator, judged, linear, epochs, lr, pairs=train)
        items = sorted(set(judged.a[test].tolist()) | set(judged.b[test].tolist()))
        raw = tuned.features(generator.model, generator.tokenizer, [judged.items[i][0] for i in items],
                             [judged.items[i][1] for i in items])
        utilities = (linear.utility(judged.raw), torch.zeros(len(judged.items)).index_copy_(
            0, torch.tensor(items), tuned.utility(raw)))
        rights = [int((((u[judged.a[test]] - u[judged.b[test]]) > 0).float() == judged.won[test]).sum())
                  for u in utilities]
        out[g] = (rights[0], rights[1], int(test.sum()))
    return out
