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

from pathlib import Path

from benchmarks.harness import benchmark

JUDGED = Path(__file__).resolve().parent / "results" / "judged"
SIGNALS = ("critic", "fluency", "words")


def _held_out(x, y, groups, names: list[str]):
    """Accuracy of a Bradley-Terry fit on ``x`` (P, F) differences, each folder of ``groups``
    (P,) left out of the fit in turn and predicted: per folder ``(right, pairs)``."""
    from textopia.models.keep_head import fit_bradley_terry

    out = {}
    for g in groups.unique():
        train, test = groups != g, groups == g
        if not bool(train.any()):  # one folder: nothing to fit on without it
            continue
        w = fit_bradley_terry(x[train], y[train])
        out[names[int(g)]] = (int((((x[test] @ w) > 0).float() == y[test]).sum()), int(test.sum()))
    return out


def _accuracy(hits: dict[str, tuple[int, int]], prefix: str = "") -> float | None:
    """The share right over the folders of ``hits`` whose names start with ``prefix``."""
    right, total = (sum(v[i] for k, v in hits.items() if k.startswith(prefix)) for i in (0, 1))
    return round(right / total, 4) if total else None


@benchmark("judge_agreement", smoke=dict(folders=(str(JUDGED / "ab_s21_temperature"), str(JUDGED / "ab_s22_length"))))
def run(model: str = "default", folders: tuple[str, ...] = (), critic: bool = True, l2: float = 0.3,
        write_head: str = "") -> dict:
    """How often the critic, fluency, length, the reranker's joint score and the keep head pick the prompt judges kept."""
    import torch

    import textopia
    from textopia.generation import rerank
    from textopia.evaluation.judged import fit_on_judged, held_out_hits, judged_features

    paths = [Path(f) for f in folders] or sorted(p.parent for p in JUDGED.glob("*/key.json")
                                                 if any(p.parent.glob("judge*.csv")))
    generator = textopia.load(model, critic=critic)
    judged = judged_features(generator, paths)
    items, raw, a, b, y, groups = judged.items, judged.raw, judged.a, judged.b, judged.won, judged.folder
    critic_logits = (generator.critic.logits([p for _, p in items]) if generator.critic is not None
                     else torch.zeros(len(items)))

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
    hits = {"bradley_terry (critic, fluency, words/10)": _held_out(x, y, groups, names),
            "bradley_terry (capped fluency, words/10)": _held_out(capped[a] - capped[b], y, groups, names),
            f"keep head (l2 {l2})": held_out_hits(judged, l2, cap, generator.model.config.n_embd)}
    # Per signal: all folders, the A/B folders (``ab_*``: two settings of one model, the reranker's
    # kind of choice) alone, and per folder.
    heads = {k: (_accuracy(v), _accuracy(v, "ab_"), {f: round(r / t, 4) for f, (r, t) in v.items()})
             for k, v in hits.items()}
    out = {"model": model, "pairs": len(y), "prompts": len(items),
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
        head = fit_on_judged(generator, judged, l2, cap, held_out_accuracy=heads[f"keep head (l2 {l2})"][0],
                             command=f"python -m benchmarks judge_agreement --set l2={l2} --set write_head=DIR",
                             notes={"folders": names})
        head.save(write_head)
        out["written"] = {"head": write_head, "weights (capped fluency, words/10)": [round(v, 4) for v in head.weight[:2].tolist()]}
    return out


def _fit(x, y):
    from textopia.models.keep_head import fit_bradley_terry

    return fit_bradley_terry(x, y)
