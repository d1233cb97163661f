import sys, json, textopia, torch
torch.set_num_threads(1)
model, pool = sys.argv[1], int(sys.argv[2]); ideas = [l.strip() for l in open(sys.argv[3]) if l.strip()]
g = textopia.load(model); g.min_pool = pool
out = {}
for i, idea in enumerate(ideas):
    got = g.generate(idea, n=1, seed=1000 + i); out[idea] = got[0].prompt if got else ""
json.dump(out, open(sys.argv[4], 'w'), indent=1)
