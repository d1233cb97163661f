"""Blind judging of one prompt per idea: write, shuffle with the sources hidden, score.

Usage (from the repository root; steps 1 and 2 are functions of this module, step 3 the
registered benchmark)::

    # 1. one prompt per idea of benchmarks/ideas/judge_ideas.txt (idea i: seed 1000 + i), per model,
    #    and a human prompt per idea from the prepared corpus (all splits; IDEAS: another idea list)
    python -m benchmarks.blind_judging write default runs/judge/default.json [IDEAS] [KEY=VALUE ...]
    python -m benchmarks.blind_judging human data/sd runs/judge/human.json [IDEAS]
    # 2. shuffle every source's prompts into one file (the key kept apart)
    python -m benchmarks.blind_judging assemble runs/judge default=runs/judge/default.json human=...
    # 3. judges (people, or helpers who see only blind.txt) write id,relevance,coherence,keep lines
    python -m benchmarks blind_judging --set folder=runs/judge [judges=judge1.csv,judge2.csv]
    # 4. before the folder goes under benchmarks/results: the corpus's prompts out of it
    python -m benchmarks.blind_judging redact runs/judge

``score`` (the ``blind_judging`` benchmark) gives, per judge and source, the mean relevance, coherence and keep (1-10), the share
kept (keep >= 7), and how often a source's prompt was kept over the human prompt for the same
idea (keep higher: 1, equal: 1/2), over the ideas that have a human prompt. With ``write_model`` it first writes ``num_ideas``
prompts with that model (step 1, end to end: the smoke run writes 3 with the default model) and
times them. By default it scores the latest recorded judging, round 3 (``benchmarks/results/judged/r3``).
"""

from __future__ import annotations

import collections
import json
import random
import statistics
import sys
import time
from pathlib import Path

from benchmarks.harness import benchmark
from textopia.evaluation.judged import read_scores  # noqa: F401  (new_clauses reads judges' CSVs through here too)

HERE = Path(__file__).resolve().parent
IDEAS = HERE / "ideas" / "judge_ideas.txt"


def read_ideas(path: str | Path = IDEAS) -> list[str]:
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def write(model: str, out: str, ideas_file: str | Path = IDEAS, *settings: str) -> None:
    """One prompt per idea; ``settings``: generate() keywords other than the defaults, KEY=VALUE
    with a number for VALUE (``lm_weight=2.5``; an integer stays one: ``candidates=64``)."""
    import textopia

    ideas = read_ideas(ideas_file)
    generator = textopia.load(model)
    extra = {k: int(v) if v.lstrip("-").isdigit() else float(v) for k, v in (s.split("=", 1) for s in settings)}
    rows = {}
    for i, idea in enumerate(ideas):
        got = generator.generate(idea, n=1, seed=1000 + i, **extra)
        rows[idea] = got[0].prompt if got else ""
    Path(out).write_text(json.dumps(rows, indent=1) + "\n")


def human(data_dir: str, out: str, ideas_file: str | Path = IDEAS) -> None:
    """One corpus prompt per idea holding every content word of the idea (the evaluation's
    :func:`~textopia.evaluation.ideas.human_samples`), from all splits; none where no prompt has them."""
    from textopia.data.corpus import read_split
    from textopia.evaluation.ideas import human_samples

    prompts = [p for split in ("train", "valid", "test") for p in read_split(Path(data_dir), split)]
    found = human_samples(read_ideas(ideas_file), prompts, n_per_idea=1, seed=0)
    Path(out).write_text(json.dumps({idea: got[0] for idea, got in found.items() if got}, indent=1) + "\n")


def pool(model: str, out_dir: str, ideas_file: str | Path = IDEAS, k: str = "5") -> None:
    """The prompts the reranker chose among for one prompt per idea (idea i: seed 1000 + i), as
    :func:`write` asks for them: ``chosen.json`` (``{idea: the prompt it returned}``) and
    ``pool.json`` (``{idea: [up to k - 1 other prompts of the best tier, in sampling order]}``).
    Judged together they show whether the within-tier choice (the keep head) picks what judges
    keep, and their pairs are the keep head's own kind of choice to fit it on."""
    from unittest import mock

    import textopia
    from textopia.generation import decoder

    generator = textopia.load(model)
    seen: list = []
    select = decoder.select

    def spy(candidates, n, groups=None):
        seen.append(candidates)
        return select(candidates, n, groups)

    chosen, others = {}, {}
    with mock.patch.object(decoder, "select", spy):
        for i, idea in enumerate(read_ideas(ideas_file)):
            seen.clear()
            got = generator.generate(idea, n=1, seed=1000 + i)
            if not got or len(seen) != 1:
                continue
            best = min(c[0].tier() for c in seen[0])
            tier = list(dict.fromkeys(c[1] for c in seen[0] if c[0].tier() == best and c[1] != got[0].prompt))
            chosen[idea], others[idea] = got[0].prompt, tier[: int(k) - 1]
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "chosen.json").write_text(json.dumps(chosen, indent=1) + "\n")
    (Path(out_dir) / "pool.json").write_text(json.dumps(others, indent=1) + "\n")


def assemble(folder: str, sources: list[str]) -> None:
    """Shuffle every source's prompts (``NAME=PATH``, a JSON ``{idea: prompt}`` or ``{idea: [prompts]}``)
    into ``folder/blind.txt``, the sources kept apart in ``folder/key.json``."""
    data = {name: json.loads(Path(path).read_text()) for name, path in (s.split("=", 1) for s in sources)}
    ideas = list(next(iter(data.values())))
    items = [{"idea": idea, "prompt": prompt, "source": name}
             for idea in ideas for name, rows in data.items()
             for prompt in ([rows[idea]] if isinstance(rows.get(idea), str) else rows.get(idea) or []) if prompt]
    random.Random(20261203).shuffle(items)
    for i, item in enumerate(items, 1):
        item["id"] = i
    out = Path(folder)
    (out / "blind.txt").write_text("".join(f"[{it['id']}] idea: {it['idea']}\n    prompt: {it['prompt']}\n\n"
                                           for it in items))
    (out / "key.json").write_text(json.dumps(items, indent=1) + "\n")


#: What a judged folder kept in the repository holds in place of a human prompt's text: the
#: corpus stays in ``../shared`` (:func:`human` draws the same prompt again from it).
REDACTED = ("(a human prompt from the corpus with every content word of the idea: not copied here; "
            "python -m benchmarks.blind_judging human writes it)")


def redact(folder: str) -> None:
    """Replace the human prompts' text in ``folder``'s ``key.json`` and ``blind.txt`` by
    :data:`REDACTED` (ids, ideas and sources kept, so the judges' scores still read), before the
    folder goes under version control."""
    out = Path(folder)
    items = json.loads((out / "key.json").read_text())
    humans = {it["id"] for it in items if it["source"] == "human"}
    for it in items:
        if it["id"] in humans:
            it["prompt"] = REDACTED
    (out / "key.json").write_text(json.dumps(items, indent=1) + "\n")
    blind = out / "blind.txt"
    if blind.is_file():
        blocks = blind.read_text().split("\n\n")
        for b, block in enumerate(blocks):
            head = block.split("]", 1)[0].lstrip("[")
            if head.isdigit() and int(head) in humans:
                blocks[b] = block.split("\n    prompt: ", 1)[0] + "\n    prompt: " + REDACTED
        blind.write_text("\n\n".join(blocks))


def score(folder: str | Path, paths: list[str | Path]) -> list[dict]:
    """One row per judge and source: mean relevance, coherence and keep (1-10), the share kept
    (keep >= 7) and ``over_human``, the share of ideas with a human prompt where this source's
    prompt was kept over it (keep higher: 1, equal: 1/2; None for the human row)."""
    key = {it["id"]: it for it in json.loads((Path(folder) / "key.json").read_text())}
    rows = []
    for path in paths:
        scores = read_scores(path)
        by = collections.defaultdict(list)
        for i, s in scores.items():
            by[key[i]["source"]].append((key[i]["idea"], s))
        human = dict(by.get("human", []))
        for src, vals in sorted(by.items()):
            r, c, k = (statistics.fmean(v[1][j] for v in vals) for j in range(3))
            pairs = [(s[2], human[idea][2]) for idea, s in vals if idea in human and src != "human"]
            rows.append({"judge": Path(path).stem, "source": src, "items": len(vals), "relevance": r, "coherence": c,
                         "keep": k, "kept": sum(v[1][2] >= 7 for v in vals) / len(vals),
                         "over_human": (sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
                                        if pairs else None), "pairs": len(pairs)})
    return rows


def versus(folder: str | Path, paths: list[str | Path], first: str, second: str) -> list[dict]:
    """One row per judge, and one for the judges together: over the ideas both sources wrote for,
    how often ``first``'s prompt got a higher keep than ``second``'s (higher: 1, equal: 1/2), as a
    count of pairs and a share, and the mean keep difference (first minus second) with a 95%
    interval over the ideas (mean +- 1.96 standard errors). A source with several prompts for an
    idea (a reranker's pool) counts with their mean keep. The judges' row takes each idea's
    difference averaged over the judges: judges who agree closely (helpers of one kind: keep
    correlates about 0.9 between two of them) add little to each other, and the interval over
    the ideas is the one a decision should read (two rounds of 75 and 110 ideas gave the same
    change +0.24 and -0.09: benchmarks/results/judged/ab_s34_refit, ab_s34_refit_b)."""
    key = {it["id"]: it for it in json.loads((Path(folder) / "key.json").read_text())}
    rows, per_judge = [], []
    for path in paths:
        keep = collections.defaultdict(lambda: collections.defaultdict(list))
        for i, s in read_scores(path).items():
            keep[key[i]["source"]][key[i]["idea"]].append(s[2])
        diffs = {idea: statistics.mean(keep[first][idea]) - statistics.mean(keep[second][idea])
                 for idea in keep[first] if idea in keep[second]}
        per_judge.append(diffs)
        rows.append({"judge": Path(path).stem, "first": first, "second": second, **_compared(list(diffs.values()))})
    if len(per_judge) > 1:
        ideas = set.intersection(*(set(d) for d in per_judge))
        mean_diffs = [statistics.mean(d[idea] for d in per_judge) for idea in sorted(ideas)]
        rows.append({"judge": "judges together", "first": first, "second": second, **_compared(mean_diffs)})
    return rows


def _compared(diffs: list[float]) -> dict:
    """Pairs, wins (a positive difference 1, none 1/2), their share, and the mean difference with
    its 95% interval (normal approximation over the pairs; None with fewer than two)."""
    wins = sum(1.0 if d > 0 else 0.5 if d == 0 else 0.0 for d in diffs)
    mean = statistics.mean(diffs) if diffs else None
    half = 1.96 * statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else None
    return {"pairs": len(diffs), "first_higher": wins, "share": wins / len(diffs) if diffs else None,
            "keep_diff": mean, "keep_diff_low": None if half is None else mean - half,
            "keep_diff_high": None if half is None else mean + half}


def lengths(root: str = str(HERE / "results" / "judged"), width: str = "4") -> list[dict]:
    """How judged coherence and keep go with a model prompt's length within an idea, over every
    judged folder under ``root``: each judge's scores standardised (mean 0, standard deviation 1
    over the judge's file), averaged over the judges per prompt, then centred on the mean of the
    model prompts judged for the same idea in the same folder (ideas with one prompt left out);
    one row per bin of ``width`` words (the last bin: 36 words or more), printed and returned."""
    import statistics

    from textopia.evaluation.judged import read_scores

    rows = []
    for key_path in sorted(Path(root).glob("*/key.json")):
        key = {it["id"]: it for it in json.loads(key_path.read_text()) if it["source"] != "human"}
        per: dict[int, list[tuple[float, float]]] = {}
        for csv_path in sorted(key_path.parent.glob("judge*.csv")):
            scores = read_scores(csv_path)
            if len(scores) < 5:
                continue
            columns = list(zip(*scores.values()))
            (mc, sc), (mk, sk) = [(statistics.mean(c), statistics.pstdev(c) or 1.0) for c in columns[1:3]]
            for i, (_, coherence, keep) in scores.items():
                if i in key:
                    per.setdefault(i, []).append(((coherence - mc) / sc, (keep - mk) / sk))
        by_idea: dict[str, list[tuple[int, float, float]]] = {}
        for i, judged in per.items():
            it = key[i]
            by_idea.setdefault(it["idea"], []).append((len(it["prompt"].split()),
                                                       statistics.mean(c for c, _ in judged),
                                                       statistics.mean(k for _, k in judged)))
        for prompts in by_idea.values():
            if len(prompts) > 1:
                mc, mk = statistics.mean(p[1] for p in prompts), statistics.mean(p[2] for p in prompts)
                rows += [(words, c - mc, k - mk) for words, c, k in prompts]
    step, out = int(width), []
    for low in sorted({min(w // step * step, 36) for w, _, _ in rows}):
        got = [r for r in rows if min(r[0] // step * step, 36) == low]
        out.append({"words": f"{low}-{low + step - 1}" if low < 36 else "36+", "prompts": len(got),
                    "coherence": statistics.mean(r[1] for r in got), "keep": statistics.mean(r[2] for r in got)})
        print(f"{out[-1]['words']:>6} {len(got):5d}  coherence {out[-1]['coherence']:+.2f}  keep {out[-1]['keep']:+.2f}")
    return out


@benchmark("blind_judging", smoke=dict(write_model="default", num_ideas=3))
def run(folder: str = str(HERE / "results" / "judged" / "r3"), judges: tuple[str, ...] = (), write_model: str = "",
        ideas_file: str = str(IDEAS), num_ideas: int = 0, compare: tuple[str, ...] = ()) -> dict:
    """Blind judging: per judge and source, relevance, coherence, keep and kept over the human prompt.

    ``folder``: holds ``key.json`` and the judges' CSVs (``judges``: their file names; () for
    every ``judge*.csv``); ``write_model``: also write one prompt for each of the first
    ``num_ideas`` ideas (0: all) with this model, as step 1 does; ``compare``: two sources
    (``new,old``) whose prompts for the same idea are set side by side (:func:`versus`).
    """
    out: dict = {}
    if write_model:
        import textopia

        ideas = read_ideas(ideas_file)[: num_ideas or None]
        generator = textopia.load(write_model)
        start = time.perf_counter()
        written = {idea: (got[0].prompt if (got := generator.generate(idea, n=1, seed=1000 + i)) else "")
                   for i, idea in enumerate(ideas)}
        out["written"] = {"model": write_model, "ideas": len(ideas), "empty": sum(not p for p in written.values()),
                          "seconds_per_prompt": (time.perf_counter() - start) / max(1, len(ideas))}
        out["details"] = {"written": written}
    paths = [Path(folder) / j for j in judges] or sorted(Path(folder).glob("judge*.csv"))
    out["scores"] = score(folder, paths)
    if compare:
        out["versus"] = versus(folder, paths, *compare)
    return out


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    {"write": lambda: write(*rest), "human": lambda: human(*rest), "pool": lambda: pool(*rest),
     "assemble": lambda: assemble(rest[0], rest[1:]), "redact": lambda: redact(rest[0]),
     "lengths": lambda: lengths(*rest)}[command]()
