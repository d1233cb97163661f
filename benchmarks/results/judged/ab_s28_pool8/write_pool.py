import sys, json, textopia, torch
torch.set_num_threads(1)
pool=int(sys.argv[1]); ideas=[l.strip() for l in open(sys.argv[2]) if l.strip()]
g=textopia.load('default'); g.min_pool=pool
out={}
for i,idea in enumerate(ideas):
    got=g.generate(idea, n=1, seed=1000+i); out[idea]=got[0].prompt if got else ""
json.dump(out,open(sys.argv[3],'w'),indent=1)
