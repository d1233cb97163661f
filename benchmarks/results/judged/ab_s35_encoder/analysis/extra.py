import torch, re
torch.set_num_threads(2)
import textopia
from textopia import text as T
d = torch.load("/tmp/s35/jf.pt", weights_only=False)
g = textopia.load("default", critic=True)
items = d["items"]
crit = g.critic.logits([p for _, p in items])
print("critic", crit.shape)
names = g.known_words.names if g.known_words is not None else ()
QUAL = T._DETAILED | T._PHOTOREAL | T._DIGITAL_LOOK | {"artstation", "trending on artstation", "high quality", "high detail", "highly detailed", "detailed", "masterpiece", "award winning", "realistic", "beautiful", "cinematic", "epic", "4k resolution", "8k resolution", "high resolution", "best quality", "trending on art station", "hyper detailed"}
MEDIA = T._BY_HAND | T._PRINTED | T._CRAFTED | T._DRAWN_FLAT | T._DIGITAL | T._RENDERED | T._PHOTOGRAPHED | T._GRAPHIC | {"painting", "illustration", "drawing", "matte painting", "sketch", "anime"}
rows = []
for idea, p in items:
    parts = [c.strip() for c in re.split(r"[,.;|]", p) if c.strip()]
    low = [c.lower() for c in parts]
    nq = sum(c in QUAL or re.fullmatch(r"\d+k", c) is not None for c in low)
    credits = T.credit_count(p, names)
    ph = T._phrases(p)
    media = sum(m in ph for m in MEDIA)
    idea_n = len(T.tokenize(idea)) if idea else 0
    first = len(T.tokenize(parts[0])) - idea_n if parts else 0
    rows.append([len(parts), nq, nq / max(1, len(parts) - 1), float(nq == len(parts) - 1), min(credits, 6), float(credits > 3),
                 float(credits == 0), min(media, 4), float(media == 0), max(-3, min(first, 8)), float(first > 0)])
H = torch.tensor(rows, dtype=torch.float32)
torch.save({"crit": crit.float().reshape(len(items), -1), "hand": H}, "/tmp/s35/extra.pt")
print(H.mean(0))
