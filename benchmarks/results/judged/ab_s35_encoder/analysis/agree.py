import json, itertools
from pathlib import Path
from textopia.evaluation.judged import read_scores
cfg = json.load(open("src/textopia/assets/default/keep/config.json"))
agree = tot = 0
for f in cfg["notes"]["folders"]:
    folder = Path("benchmarks/results/judged") / Path(f).name
    key = {it["id"]: it for it in json.load(open(folder / "key.json"))}
    judges = [read_scores(p) for p in sorted(folder.glob("judge*.csv"))]
    by_idea = {}
    for i, it in key.items():
        if it["source"] != "human": by_idea.setdefault(it["idea"], []).append(i)
    for ids in by_idea.values():
        for x, y in itertools.combinations(ids, 2):
            outs = [(j[x][2] > j[y][2]) for j in judges if x in j and y in j and j[x][2] != j[y][2]]
            for o1, o2 in itertools.combinations(outs, 2):
                agree += o1 == o2; tot += 1
print("judge-judge pair agreement (both untied)", agree / tot, tot)
