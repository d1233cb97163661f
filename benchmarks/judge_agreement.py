"""Which signal picks the prompt blind judges keep: the reranker's within-tier score, measured
against every judged A/B on record.

Usage (from the repository root)::

    python -m benchmarks judge_agreement [--set folders=DIR,DIR] [--out benchmarks/results/judged]

The pairs: in each judged folder (``key.json`` and ``judge*.csv``, as ``blind_judging`` writes
them), two model prompts for the same idea that one judge kept differently (keep 1-10; human
prompts and ties left out). For each signal, the share of pairs where the prompt it ranks higher
got the higher keep (0.5: it knows nothing of what judges keep): the coherence critic's logit,
fluency (the model's mean log-probability per token of the prompt and its end, given the idea,
float32), fewer words, and :func:`textopia.generation.rerank.joint` as shipped (on those three).
Then a Bradley-Terry model (a logistic regression on the pairs' differences, Bradley and Terry
1952) fits weights for the three, and its accuracy is measured leaving each folder out in turn.
Pairs of one folder share judges and ideas: the folders, not the pairs, are the independent units.
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


def _fit(x, y):
    """Bradley-Terry weights for differences ``x`` (P, F) and outcomes ``y`` (P,): logistic regression without intercept."""
    import torch

    w = torch.zeros(x.size(1), requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w, y)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


@benchmark("judge_agreement", smoke=dict(folders=(str(JUDGED / "ab_s21_temperature"),)))
def run(model: str = "default", folders: tuple[str, ...] = ()) -> dict:
    """How often the critic, fluency, length and the reranker's joint score pick the prompt judges kept."""
    import torch

    import textopia
    from textopia.generation import rerank
    from textopia.text import tokenize

    paths = [Path(f) for f in folders] or sorted(p.parent for p in JUDGED.glob("*/key.json")
                                                 if any(p.parent.glob("judge*.csv")))
    generator = textopia.load(model, critic=True)
    tokenizer, engine = generator.tokenizer, generator.model
    features: dict[tuple[str, str], tuple[float, float, float]] = {}

    def signals(idea: str, prompt: str) -> tuple[float, float, float]:
        if (idea, prompt) not in features:
            context, body = tokenizer.context_ids(idea), tokenizer.encode(prompt) + [tokenizer.eos_id]
            with torch.no_grad(), engine.exact():
                logits = engine(input_ids=torch.tensor([context + body])).logits[0, len(context) - 1:-1]
            fluency = float(torch.log_softmax(logits.float(), dim=-1).gather(1, torch.tensor(body)[:, None]).mean())
            critic = float(generator.critic.logits([prompt])[0]) if generator.critic is not None else 0.0
            features[(idea, prompt)] = (critic, fluency, float(len(tokenize(prompt))))
        return features[(idea, prompt)]

    diffs, outcomes, folder_of, rows = [], [], [], []
    for index, folder in enumerate(paths):
        pairs = judged_pairs(folder)
        for idea, a, b, a_won in pairs:
            fa, fb = signals(idea, a), signals(idea, b)
            joint_a, joint_b = (rerank.joint(rerank.SampleScore(recall=1.0, invented=0, stutter=False, mean_logprob=f[1],
                                                                critic=f[0], words=int(f[2]))) for f in (fa, fb))
            diffs.append([fa[0] - fb[0], fa[1] - fb[1], (fa[2] - fb[2]) / 10, joint_a - joint_b])
            outcomes.append(a_won)
            folder_of.append(index)
        rows.append({"folder": folder.name, "pairs": len(pairs)})
    x, y, groups = torch.tensor(diffs), torch.tensor(outcomes), torch.tensor(folder_of)
    # Higher critic, higher fluency, fewer words, higher joint: the direction each signal prefers.
    agree = {name: float((((x[:, col] * sign) > 0).float() == y)[x[:, col] != 0].float().mean())
             for name, col, sign in (("critic", 0, 1), ("fluency", 1, 1), ("fewer words", 2, -1), ("joint", 3, 1))}
    weights = _fit(x[:, :3], y)
    held_out = right = 0
    for g in groups.unique():
        train, test = groups != g, groups == g
        if not bool(train.any()):  # one folder: nothing to fit on without it
            continue
        w = _fit(x[train][:, :3], y[train])
        right += int((((x[test][:, :3] @ w) > 0).float() == y[test]).sum())
        held_out += int(test.sum())
    return {"model": model, "pairs": len(outcomes), "folders": rows,
            "agreement": {name: round(v, 4) for name, v in agree.items()},
            "bradley_terry": {"weights (critic logit, fluency nats/token, words/10)": [round(v, 4) for v in weights.tolist()],
                              "held_out_accuracy": round(right / held_out, 4) if held_out else None},
            "shipped_joint": {"critic_weight": rerank.CRITIC_WEIGHT, "fluency_weight": rerank.FLUENCY_WEIGHT,
                              "length_weight": rerank.LENGTH_WEIGHT}}
