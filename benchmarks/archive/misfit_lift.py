"""Does the corpus tell a style tag that misfits its subject? For the default's prompts of
``judged/s30_diagnostic/b`` (70 ideas, one demanding judge naming each "style-misfit" tag), each
tag clause's lift with the idea in the prepared train split (its share among prompts holding every
content word of the idea, or the rarest such word where fewer than 30 do, over its share in all),
and the AUC of lower lift for the tags the judge marked.

Usage: ``python benchmarks/archive/misfit_lift.py`` (reads ``data/sd/train.txt``; a few minutes).
"""

import collections
import csv
import json
import re
import statistics
from pathlib import Path

from textopia.text import clause_parts, content_words, tokenize

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "benchmarks" / "results" / "judged" / "s30_diagnostic" / "b"
MIN_PROMPTS = 30


def norm(clause: str) -> str:
    return " ".join(tokenize(clause))


def auc(lower: list[float], higher: list[float]) -> float:
    """P(a < b) for a of ``lower`` and b of ``higher``, ties counted half."""
    return sum((a < b) + 0.5 * (a == b) for a in lower for b in higher) / max(1, len(lower) * len(higher))


def main() -> None:
    lines = (FOLDER / "blind.txt").read_text(encoding="utf-8").splitlines()
    prompts = {}
    for i, line in enumerate(lines):
        if m := re.match(r"\[(\d+)\] idea: (.*)", line):
            prompts[m.group(1)] = (m.group(2), lines[i + 1].split("prompt: ", 1)[1])
    with open(FOLDER / "faults.csv", encoding="utf-8") as f:
        faults = {row["id"]: row["faults"] for row in csv.DictReader(f)}
    corpus = [p.lower() for p in (ROOT / "data" / "sd" / "train.txt").read_text(encoding="utf-8").split("\n") if p]
    pairs = []  # (idea, tag, marked a misfit)
    for item, (idea, prompt) in prompts.items():
        marked = {norm(t) for t in re.findall(r'style-misfit: ""?([^"|]+)', faults.get(item, ""))}
        pairs += [(idea, norm(c), norm(c) in marked) for c in clause_parts(prompt.lower())[1:]]
    base = {tag: sum(tag in p for p in corpus) / len(corpus) for tag in {t for _, t, _ in pairs}}
    subsets: dict[str, list[str]] = {}
    rows = []  # (lift, marked, tag, idea)
    for idea, tag, marked in pairs:
        if idea not in subsets:
            words = [w for w in content_words(idea) if len(w) > 2]
            subset = [p for p in corpus if all(w in p for w in words)]
            if len(subset) < MIN_PROMPTS:
                singles = [[p for p in corpus if w in p] for w in words]
                singles = [s for s in singles if len(s) >= MIN_PROMPTS]
                subset = min(singles, key=len) if singles else []
            subsets[idea] = subset
        subset = subsets[idea]
        if subset and base[tag]:
            rows.append((sum(tag in p for p in subset) / len(subset) / base[tag], marked, tag, idea))
    misfit = [r[0] for r in rows if r[1]]
    others = [r[0] for r in rows if not r[1]]
    print(f"tag clauses {len(rows)}, marked a misfit {len(misfit)}")
    print(f"median lift: marked {statistics.median(misfit):.2f}, others {statistics.median(others):.2f}")
    print(f"AUC of lower lift for the marked: {auc(misfit, others):.3f}")
    marked_tags = {r[2] for r in rows if r[1]}
    same = [r[0] for r in rows if not r[1] and r[2] in marked_tags]
    print(f"within the tags ever marked ({len(misfit)} against {len(same)}): AUC {auc(misfit, same):.3f}")
    for tag in sorted(marked_tags):
        of = [r for r in rows if r[2] == tag]
        print(f"  {tag}: marked in {sum(r[1] for r in of)} of {len(of)}")


if __name__ == "__main__":
    main()
