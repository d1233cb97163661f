"""New clauses against what blind judges saw: does a clause the corpus does not know mark nonsense?

Usage (from the repository root)::

    python -m benchmarks new_clauses [--set rounds=r1,r2,... model=default test_prompts=data/sd/test.txt]

For every prompt that blind judges scored (``benchmarks/results/judged/ROUND``: ``key.json`` and
the judges' CSVs), counts its new clauses under ``model``'s known-clause list
(:meth:`textopia.text.KnownWords.new_clauses`, the reranker's own check; the idea's words
excepted) and reports the judges' mean coherence (1-10, averaged over a prompt's judges) by that
count, for the models' prompts and for the human ones (where a folder still holds their text:
:func:`benchmarks.blind_judging.redact` takes it out), with the correlation; and, where
``test_prompts`` exists, how many held-out human prompts hold a new clause. The counts use the
list as it is now, so prompts that rounds before the list existed chose are scored as the
reranker would see them today.
"""

from __future__ import annotations

import collections
import json
import statistics
from pathlib import Path

from benchmarks.blind_judging import REDACTED, read_scores
from benchmarks.harness import benchmark

HERE = Path(__file__).resolve().parent
JUDGED = HERE / "results" / "judged"


def _coherence(folder: Path) -> dict[int, float]:
    """Each prompt id's mean coherence over the judges' CSVs of ``folder``."""
    scores: dict[int, list[float]] = collections.defaultdict(list)
    for path in sorted(folder.glob("judge*.csv")):
        for i, (_, coherence, _) in read_scores(path).items():
            scores[i].append(coherence)
    return {i: statistics.mean(v) for i, v in scores.items()}


def _by_count(rows: list[tuple[int, float]]) -> dict:
    """Mean coherence and prompts by new-clause count (3 stands for 3 or more), and the correlation."""
    out: dict = {}
    for count in range(4):
        got = [c for k, c in rows if min(k, 3) == count]
        if got:
            out[f"{count}{'+' if count == 3 else ''}"] = {"prompts": len(got), "coherence": round(statistics.mean(got), 2)}
    if len(rows) > 2 and len({k for k, _ in rows}) > 1:
        out["correlation"] = round(statistics.correlation([float(k) for k, _ in rows], [c for _, c in rows]), 3)
    return out


@benchmark("new_clauses", smoke=dict(rounds=("r7",), test_prompts=""))
def run(rounds: tuple[str, ...] = ("r1", "r2", "r3", "r4", "r5", "r6", "r7"), model: str = "default",
        test_prompts: str = "data/sd/test.txt") -> dict:
    """New clauses and the coherence blind judges gave: by count, for model and human prompts."""
    from textopia.generation.loader import resolve_model
    from textopia.text import KNOWN_WORDS_FILE, KnownWords

    known = KnownWords.load(resolve_model(model) / KNOWN_WORDS_FILE)
    model_rows: list[tuple[int, float]] = []
    human_rows: list[tuple[int, float]] = []
    for name in rounds:
        folder = JUDGED / name
        coherence = _coherence(folder)
        for entry in json.loads((folder / "key.json").read_text()):
            if entry["id"] in coherence and entry["prompt"] != REDACTED:  # a kept folder holds no corpus text
                row = (len(known.new_clauses(entry["prompt"], entry["idea"])), coherence[entry["id"]])
                (human_rows if entry["source"] == "human" else model_rows).append(row)
    out: dict = {"known_clauses": int(len(known.clauses)), "rounds": list(rounds),
                 "model_prompts": _by_count(model_rows), "human_prompts": _by_count(human_rows)}
    if test_prompts and Path(test_prompts).is_file():
        prompts = [line for line in Path(test_prompts).read_text(encoding="utf-8").splitlines() if line.strip()]
        counts = [len(known.new_clauses(p)) for p in prompts]
        out["held_out_human"] = {"prompts": len(prompts), "with_new_clause": round(sum(c > 0 for c in counts) / len(prompts), 4),
                                 "new_clauses_mean": round(statistics.mean(counts), 3)}
    return out
