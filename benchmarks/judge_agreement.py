"""Which signal picks the prompt blind judges keep: the reranker's within-tier score, measured
against every judged A/B on record.

Usage (from the repository root)::

    python -m benchmarks judge_agreement [--set folders=DIR,DIR] [--set model=NAME_OR_DIR]
        [--set l2=0.3] [--set write_head=DIR] [--out benchmarks/results/judged]

The pairs: in each judged folder (``key.json`` and ``judge*.csv``, as ``blind_judging`` writes
them), two model prompts for the same idea that one judge kept differently (keep 1-10; human
prompts and ties left out). For each signal, the share of pairs where the prompt it ranks higher
got the higher keep (0.5: it knows nothing of what judges keep): the coherence critic's logit,
fluency (the model's mean log-probability per token of the prompt and its end, given the idea,
float32), fewer words, and :func:`textopia.generation.rerank.joint` without a keep head (on
those three). Then Bradley-Terry models (a logistic regression on the pairs' differences,
Bradley and Terry 1952) are fitted, and their accuracy measured leaving each folder out in turn:
on the three signals, on capped fluency and length, and the keep head
(:mod:`textopia.models.keep_head`: those two and the model's pooled hidden states, penalised by
``l2``). Pairs of one folder share judges and ideas: the folders, not the pairs, are the
independent units. With ``write_head`` the head fitted on every pair is written there (a
checkpoint's ``keep/`` folder, which :func:`textopia.load` reads): the shipped default's was
written by ``--set write_head=src/textopia/assets/default/keep`` with the 28 folders of
session 22's end.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from benchmarks.harness import benchmark

JUDGED = Path(__file__).resolve().parent / "results" / "judged"
SIGNALS = ("critic", "fluency", "words")


def judged_pairs(folder: Path) -> list[tuple[str, str, str, float]]:
    """``(idea, prompt a, prompt b, 1.0 if a was kept higher else 0.0)`` for each pair of model
    prompts for one idea that one judge of ``folder`` kept differently."""
    key = {item["id"]: item for item in json.loads((folder / "key.json").read_text())}
    pairs = []
    for path in sorted(folder.glob("judge*.csv")):
        by_idea: dict[str, list[tuple[str, float]]] = {}
        with open(path, newline="") as f:
            for row in csv.reader(f):
                try:
                    item, keep = key[int(row[0])], float(row[3])
                except (ValueError, IndexError, KeyError):
                    continue
                if item["source"] != "human":
                    by_idea.setdefault(item["idea"], []).append((item["prompt"], keep))
        for idea, rows in by_idea.items():
            for i, (a, keep_a) in enumerate(rows):
                for b, keep_b in rows[i + 1:]:
                    if a != b and keep_a != keep_b:
                        pairs.append((idea, a, b, 1.0 if keep_a > keep_b else 0.0))
    return pairs


def _held_out(x, y, groups, names: list[str], l2: float = 0.0, free: int = 0, head=None):
    """Accuracy of a Bradley-Terry fit on ``x`` (P, F) differences, each folder of ``groups``
    (P,) left out of the fit in turn and predicted; with ``head`` (``(raw_a, raw_b, hidden size,
    fluency cap)``), a keep head fitted on raw features instead. Returns the accuracy over all
    folders and over the A/B folders (``ab_*``: two settings of one model, the reranker's kind of
    choice) alone, and per folder."""
    from textopia.models.keep_head import fit_bradley_terry, fit_keep_head

    right = total = ab_right = ab_total = 0
    per_folder = {}
    for g in groups.unique():
        train, test = groups != g, groups == g
        if not bool(train.any()):  # one folder: nothing to fit on without it
            continue
        if head is None:
            w = fit_bradley_terry(x[train], y[train], l2=l2, free=free)
            margin = x[test] @ w
        else:
            raw_a, raw_b, hidden, cap = head
            fitted = fit_keep_head(raw_a[train], raw_b[train], y[train], hidden, cap, l2)
            margin = fitted.utility(raw_a[test]) - fitted.utility(raw_b[test])
        hits = int(((margin > 0).float() == y[test]).sum())
        per_folder[names[int(g)]] = round(hits / int(test.sum()), 4)
        right, total = right + hits, total + int(test.sum())
        if names[int(g)].startswith("ab_"):
            ab_right, ab_total = ab_right + hits, ab_total + int(test.sum())
    return (round(right / total, 4) if total else None), (round(ab_right / ab_total, 4) if ab_total else None), per_folder


@benchmark("judge_agreement", smoke=dict(folders=(str(JUDGED / "ab_s21_temperature"), str(JUDGED / "ab_s22_length"))))
def run(model: str = "default", folders: tuple[str, ...] = (), critic: bool = True, l2: float = 0.3,
        write_head: str = "") -> dict:
    """How often the critic, fluency, length, the reranker's joint score and the keep head pick the prompt judges kept."""
    import torch

    import textopia
    from textopia.generation import rerank
    from textopia.models.keep_head import features as keep_features, fit_keep_head

    paths = [Path(f) for f in folders] or sorted(p.parent for p in JUDGED.glob("*/key.json")
                                                 if any(p.parent.glob("judge*.csv")))
    generator = textopia.load(model, critic=critic)
    pairs = [(index, *pair) for index, folder in enumerate(paths) for pair in judged_pairs(folder)]
    items = sorted({(idea, p) for _, idea, a, b, _ in pairs for p in (a, b)})
    at = {item: i for i, item in enumerate(items)}
    raw = keep_features(generator.model, generator.tokenizer, [i for i, _ in items], [p for _, p in items])
    critic_logits = (generator.critic.logits([p for _, p in items]) if generator.critic is not None
                     else torch.zeros(len(items)))
    a = torch.tensor([at[(idea, pa)] for _, idea, pa, _, _ in pairs])
    b = torch.tensor([at[(idea, pb)] for _, idea, _, pb, _ in pairs])
    y = torch.tensor([won for *_, won in pairs], dtype=torch.float32)
    groups = torch.tensor([index for index, *_ in pairs])

    def joint(i):
        score = rerank.SampleScore(recall=1.0, invented=0, stutter=False, mean_logprob=float(raw[i, 0]),
                                   critic=float(critic_logits[i]), words=round(float(raw[i, 1]) * 10))
        return rerank.joint(score)

    joints = torch.tensor([joint(i) for i in range(len(items))])
    cap = rerank.FLUENCY_CAP
    fluency = raw[:, 0] if cap is None else raw[:, 0].clamp_max(cap)
    base = torch.stack([critic_logits, raw[:, 0], raw[:, 1]], dim=1)  # critic, fluency, words / 10
    x = base[a] - base[b]
    # Higher critic, higher fluency, fewer words, higher joint: the direction each signal prefers.
    signals = {"critic": critic_logits, "fluency": raw[:, 0], "fewer words": -raw[:, 1], "joint": joints}
    agree = {}
    for name, values in signals.items():
        d = values[a] - values[b]
        agree[name] = round(float(((d > 0).float() == y)[d != 0].float().mean()), 4) if bool((d != 0).any()) else None
    capped = torch.stack([fluency, raw[:, 1]], dim=1)
    names = [p.name for p in paths]
    heads = {"bradley_terry (critic, fluency, words/10)": _held_out(x, y, groups, names),
             "bradley_terry (capped fluency, words/10)": _held_out(capped[a] - capped[b], y, groups, names),
             f"keep head (l2 {l2})": _held_out(None, y, groups, names, l2=l2,
                                               head=(raw[a], raw[b], generator.model.config.n_embd, cap))}
    out = {"model": model, "pairs": len(pairs), "prompts": len(items),
           "folders": [{"folder": p.name, "pairs": int((groups == i).sum()),
                        **{("fluency and length" if k.startswith("bradley") else "keep head"): v[2].get(p.name) for k, v in list(heads.items())[1:]}}
                       for i, p in enumerate(paths)],
           "agreement": agree,
           "held_out": [{"signals": k, "accuracy": v[0], "A/B folders": v[1]} for k, v in heads.items()],
           "bradley_terry_weights (critic logit, fluency nats/token, words/10)":
               [round(v, 4) for v in _fit(x, y).tolist()],
           "shipped_joint": {"critic_weight": rerank.CRITIC_WEIGHT, "fluency_weight": rerank.FLUENCY_WEIGHT,
                             "length_weight": rerank.LENGTH_WEIGHT, "fluency_cap": cap}}
    if write_head:
        head = fit_keep_head(raw[a], raw[b], y, generator.model.config.n_embd, cap, l2,
                             held_out_accuracy=heads[f"keep head (l2 {l2})"][0],
                             command=f"python -m benchmarks judge_agreement --set l2={l2} --set write_head=DIR",
                             notes={"folders": names})
        head.save(write_head)
        out["written"] = {"head": write_head, "weights (capped fluency, words/10)": [round(v, 4) for v in head.weight[:2].tolist()]}
    return out


def _fit(x, y):
    from textopia.models.keep_head import fit_bradley_terry

    return fit_bradley_terry(x, y)
