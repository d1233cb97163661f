"""Run from the repository root after `mkdir -p /tmp/s36/old_keep && for f in config.json encoder.safetensors
model.safetensors; do git show a5e7e26:src/textopia/assets/default/keep/$f > /tmp/s36/old_keep/$f; done`
(session 35's head, as shipped before 4c2fd34). How session 35's and session 36's keep heads rank the judged pairs of s36_pool, which is in
neither head's fit: all pairs, and the pairs of two unchosen prompts (the chosen one is the new
head's argmax, which favours it)."""
import json, textopia, torch
from textopia.models.keep_head import KeepHead
from textopia.evaluation.judged import judged_pairs
torch.set_num_threads(2)
F = "benchmarks/results/judged/s36_pool"
gen = textopia.load("default")
writer, tok = gen.model, gen.tokenizer
chosen = set(json.load(open(F + "/chosen.json")).values())
pairs = judged_pairs(F)
texts = sorted({(i, p) for i, a, b, _ in pairs for p in (a, b)})
for name, path in (("s35 head", "/tmp/s36/old_keep"), ("s36 head", "src/textopia/assets/default/keep")):
    head = KeepHead.load(path)
    u = head.utility(head.features(writer, tok, [i for i, _ in texts], [p for _, p in texts]))
    util = {t: float(x) for t, x in zip(texts, u)}
    def acc(sel):
        r = [(util[(i, a)] > util[(i, b)]) == (won == 1.0) for i, a, b, won in sel]
        return sum(r), len(r)
    unch = [p for p in pairs if p[1] not in chosen and p[2] not in chosen]
    print(name, "all pairs %d/%d" % acc(pairs), "unchosen pairs %d/%d" % acc(unch))
