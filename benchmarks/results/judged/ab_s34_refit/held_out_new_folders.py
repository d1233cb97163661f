import torch, textopia, json
from pathlib import Path
from textopia.evaluation.judged import judged_features
from textopia.models.keep_head import fit_keep_head
from textopia.generation.rerank import FLUENCY_CAP
torch.set_num_threads(1)
g = textopia.load('default', critic=False)
shipped = g.keep_head
paths = sorted(p.parent for p in Path('benchmarks/results/judged').glob('*/key.json') if any(p.parent.glob('judge*.csv')))
J = judged_features(g, paths)
old = set(json.load(open('src/textopia/assets/default/keep/config.json'))['notes']['folders'])
new = [i for i, f in enumerate(J.folders) if f not in old]
E = g.model.config.n_embd
def acc_on(head, sel):
    m = head.utility(J.raw[J.a[sel]]) - head.utility(J.raw[J.b[sel]])
    return int(((m > 0).float() == J.won[sel]).sum()), int(sel.sum())
print("folders", len(J.folders), "pairs", len(J.won), "new folders", len(new))
tot = [0, 0, 0]
ab = [0, 0, 0]
for gi in new:
    test = J.folder == gi
    train = J.folder != gi
    head = fit_keep_head(J.raw[J.a[train]], J.raw[J.b[train]], J.won[train], E, FLUENCY_CAP, 0.3)
    r, t = acc_on(head, test); rs, _ = acc_on(shipped, test)
    tot[0] += r; tot[1] += t; tot[2] += rs
    if J.folders[gi].startswith("ab_"):
        ab[0] += r; ab[1] += t; ab[2] += rs
    print(J.folders[gi], t, 'refit %.3f shipped %.3f' % (r / max(1, t), rs / max(1, t)), flush=True)
print('TOTAL refit %.4f shipped %.4f of %d' % (tot[0] / tot[1], tot[2] / tot[1], tot[1]))
print('A/B folders refit %.4f shipped %.4f of %d' % (ab[0] / max(1, ab[1]), ab[2] / max(1, ab[1]), ab[1]))
