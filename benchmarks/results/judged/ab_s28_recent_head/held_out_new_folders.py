import glob, torch, textopia, json
from pathlib import Path
from textopia.evaluation.judged import judged_features, held_out_hits, fit_on_judged
from textopia.models.keep_head import fit_keep_head
from textopia.generation.rerank import FLUENCY_CAP
torch.set_num_threads(2)
g=textopia.load('default', critic=False)
shipped=g.keep_head
paths=sorted(p.parent for p in Path('benchmarks/results/judged').glob('*/key.json') if any(p.parent.glob('judge*.csv')))
J=judged_features(g, paths)
old=set(json.load(open('src/textopia/assets/default/keep/config.json'))['notes']['folders'])
new=[i for i,f in enumerate(J.folders) if f not in old]
print('new folders', [J.folders[i] for i in new])
E=g.model.config.n_embd
def acc_on(head, sel):
    m=head.utility(J.raw[J.a[sel]])-head.utility(J.raw[J.b[sel]])
    return int(((m>0).float()==J.won[sel]).sum()), int(sel.sum())
res={}
for l2 in (0.3,1.0):
  for scheme in ('all','recent'):
    tot=[0,0,0,0]
    for gi in new:
        test=J.folder==gi
        if scheme=='all': train=J.folder!=gi
        else: train=(J.folder!=gi)&torch.tensor([J.folders[int(f)].startswith(('s2','ab_s2')) and int(''.join(c for c in J.folders[int(f)].split('_')[1 if J.folders[int(f)].startswith('ab_') else 0] if c.isdigit()) or 0)>=22 for f in J.folder])
        head=fit_keep_head(J.raw[J.a[train]],J.raw[J.b[train]],J.won[train],E,FLUENCY_CAP,l2)
        r,t=acc_on(head,test); rs,_=acc_on(shipped,test)
        tot[0]+=r; tot[1]+=t; tot[2]+=rs
        print(l2, scheme, J.folders[gi], t, 'refit %.3f shipped %.3f'%(r/t, rs/t))
    print('TOTAL',l2,scheme,'refit %.4f shipped %.4f of %d'%(tot[0]/tot[1], tot[2]/tot[1], tot[1]))
