import torch, sys
torch.set_num_threads(2)
from textopia.models.keep_head import fit_keep_head
from textopia.generation.rerank import FLUENCY_CAP
d = torch.load("/tmp/s35/jf.pt", weights_only=False); m = torch.load("/tmp/s35/minilm.pt"); x = torch.load("/tmp/s35/extra.pt")
raw, a, b, won, folder = d["raw"], d["a"], d["b"], d["won"], d["folder"]
P = m["P"].float(); crit = x["crit"][:, :1] if x["crit"].dim() > 1 else x["crit"][:, None]; H = x["hand"]
variants = {
  "writer + critic": torch.cat([raw, crit], 1),
  "writer + hand": torch.cat([raw, H], 1),
  "writer + critic + hand": torch.cat([raw, crit, H], 1),
  "writer + critic + hand + minilm": torch.cat([raw, crit, H, P], 1),
}
l2s = [float(v) for v in sys.argv[1:]] or [0.03]
for name, X in variants.items():
    if X.size(1) % 2: X = torch.cat([X, torch.zeros(X.size(0), 1)], 1)
    e = (X.size(1) - 2) // 2
    for l2 in l2s:
        right = tot = 0
        for g in folder.unique().tolist():
            tr, te = folder != g, folder == g
            head = fit_keep_head(X[a[tr]], X[b[tr]], won[tr], e, FLUENCY_CAP, l2)
            margin = head.utility(X[a[te]]) - head.utility(X[b[te]])
            right += int(((margin > 0).float() == won[te]).sum()); tot += int(te.sum())
        print(f"{name:40s} l2 {l2}: held-out {right / tot:.4f} ({right}/{tot})", flush=True)
