import torch, sys
torch.set_num_threads(2)
from textopia.models.keep_head import fit_keep_head
from textopia.generation.rerank import FLUENCY_CAP
d = torch.load("/tmp/s35/jf.pt", weights_only=False); m = torch.load("/tmp/s35/minilm.pt")
raw, a, b, won, folder = d["raw"], d["a"], d["b"], d["won"], d["folder"]
P, I = m["P"].float(), m["I"].float()
cos = (P * I).sum(1, keepdim=True)
variants = {
  "writer (shipped)": raw,
  "writer + minilm prompt": torch.cat([raw, P], 1),
  "writer + minilm prompt + prompt*idea": torch.cat([raw, P, P * I], 1),
  "writer + cosine": torch.cat([raw, cos, cos], 1),
  "fluency, length + minilm prompt": torch.cat([raw[:, :2], P, P * I], 1),
}
l2s = [float(x) for x in sys.argv[1:]] or [0.3]
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
