"""Does a sentence embedding (all-MiniLM-L6-v2) of the prompt add to the keep head's held-out accuracy?"""
import json, sys, time, torch
torch.set_num_threads(2)
import textopia
from textopia.evaluation.judged import judged_features, held_out_hits, JudgedFeatures
from textopia.evaluation.metrics.relevance import SentenceEmbedder

cfg = json.load(open("src/textopia/assets/default/keep/config.json"))
folders = cfg["notes"]["folders"]
print(len(folders), "folders")
g = textopia.load("default")
t = time.time()
jf = judged_features(g, ["benchmarks/results/judged/" + f if "/" not in f else f for f in folders])
print("features", jf.raw.shape, "pairs", len(jf.won), time.time() - t)
torch.save({"raw": jf.raw, "a": jf.a, "b": jf.b, "won": jf.won, "folder": jf.folder, "items": jf.items, "folders": jf.folders}, "/tmp/s35/jf.pt")
emb = SentenceEmbedder()
t = time.time()
P = torch.as_tensor(emb.encode([p for _, p in jf.items]))
I = torch.as_tensor(emb.encode([i for i, _ in jf.items]))
print("minilm", P.shape, time.time() - t)
torch.save({"P": P, "I": I}, "/tmp/s35/minilm.pt")
