"""End-to-end Bradley-Terry reward model (the writer fine-tuned) vs the linear keep head, grouped 5-fold CV by folder."""
import torch, time, sys, math, random
torch.set_num_threads(2)
from transformers import GPT2LMHeadModel
import textopia
from textopia.models.keep_head import fit_keep_head
from textopia.generation.rerank import FLUENCY_CAP
torch.manual_seed(0); random.seed(0)
d = torch.load("/tmp/s35/jf.pt", weights_only=False)
raw, A, B, won, folder, items = d["raw"], d["a"], d["b"], d["won"], d["folder"], d["items"]
tok = textopia.load("default").tokenizer
seqs, starts = [], []
for idea, p in items:
    ctx = tok.context_ids(idea); body = tok.encode(p) + [tok.eos_id]
    seqs.append(ctx + body); starts.append(len(ctx))
nf = int(folder.max()) + 1
fold_of = torch.tensor([i % 5 for i in range(nf)])[folder]  # folders round-robin into 5 folds
EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
LR = float(sys.argv[2]) if len(sys.argv) > 2 else 5e-5
FOLDS = int(sys.argv[3]) if len(sys.argv) > 3 else 5

def batch_states(model, idx):
    rows = [seqs[i] for i in idx]; L = max(map(len, rows))
    ids = torch.full((len(rows), L), tok.pad_id); mask = torch.zeros(len(rows), L)
    for r, s in enumerate(rows): ids[r, :len(s)] = torch.tensor(s); mask[r, :len(s)] = 1
    h = model.transformer(input_ids=ids, attention_mask=mask).last_hidden_state  # (n, L, E)
    body = torch.zeros_like(mask)
    for r, i in enumerate(idx): body[r, starts[i]:len(seqs[i])] = 1   # prompt tokens and end
    mean = (h * body[..., None]).sum(1) / body.sum(1, keepdim=True)
    end = h[torch.arange(len(idx)), torch.tensor([len(seqs[i]) - 1 for i in idx])]
    return torch.cat([mean, end], 1)

total_lin = total_rm = total = 0
START = int(sys.argv[4]) if len(sys.argv) > 4 else 0
for k in range(START, FOLDS):
    tr, te = fold_of != k, fold_of == k
    head = fit_keep_head(raw[A[tr]], raw[B[tr]], won[tr], 256, FLUENCY_CAP, 0.03)
    lin = (((head.utility(raw[A[te]]) - head.utility(raw[B[te]])) > 0).float() == won[te]).float().sum().item()
    model = GPT2LMHeadModel.from_pretrained("src/textopia/assets/default", torch_dtype=torch.float32)
    model.train()
    w = torch.nn.Parameter(head.weight.clone()); mu, sd = head.mean.clone(), head.std.clone()
    fl = raw[:, :2].clone(); fl[:, 0] = fl[:, 0].clamp_max(FLUENCY_CAP)
    opt = torch.optim.AdamW([{"params": model.transformer.parameters(), "lr": LR}, {"params": [w], "lr": 1e-3}], weight_decay=0.0)
    pairs = torch.nonzero(tr).squeeze(1).tolist()
    t0 = time.time(); step = 0
    nsteps = EPOCHS * math.ceil(len(pairs) / 32)
    for ep in range(EPOCHS):
        random.shuffle(pairs)
        for s in range(0, len(pairs), 32):
            pb = pairs[s:s + 32]
            ia, ib = A[pb].tolist(), B[pb].tolist()
            st = batch_states(model, ia + ib)
            x = torch.cat([fl[ia + ib], (st - mu) / sd], 1)
            u = x @ w; n = len(pb)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(u[:n] - u[n:], won[pb])
            for gr in opt.param_groups: gr["lr_now"] = None
            scale = 0.5 * (1 + math.cos(math.pi * step / nsteps))
            opt.param_groups[0]["lr"] = LR * scale; opt.param_groups[1]["lr"] = 1e-3 * scale
            opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(list(model.parameters()) + [w], 1.0); opt.step(); step += 1
    model.eval()
    with torch.no_grad():
        test_items = sorted(set(A[te].tolist()) | set(B[te].tolist()))
        util = {}
        for s in range(0, len(test_items), 64):
            idx = test_items[s:s + 64]
            st = batch_states(model, idx)
            u = torch.cat([fl[idx], (st - mu) / sd], 1) @ w
            util.update(zip(idx, u.tolist()))
        pa = torch.tensor([util[i] for i in A[te].tolist()]); pbb = torch.tensor([util[i] for i in B[te].tolist()])
        rm = (((pa - pbb) > 0).float() == won[te]).float().sum().item()
    n = int(te.sum())
    total_lin += lin; total_rm += rm; total += n
    print(f"fold {k}: {n} pairs, linear {lin / n:.4f}, fine-tuned {rm / n:.4f}, {time.time() - t0:.0f} s", flush=True)
print(f"all: linear {total_lin / total:.4f}, fine-tuned {total_rm / total:.4f} ({total} pairs), epochs {EPOCHS} lr {LR}")
