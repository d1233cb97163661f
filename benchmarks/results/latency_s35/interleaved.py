import time, torch, textopia, statistics, sys
N = int(sys.argv[1])
torch.set_num_threads(2)
old = textopia.load("/tmp/s35/default_old"); new = textopia.load("default")
ideas = ["a fox in the snow", "old library with candles", "desert caravan", "portrait of an old sailor", "wizard tower on a cliff", "a koi pond", "a cyberpunk street", "a lighthouse in a storm"]
for g in (old, new): g.generate("warm up", n=1, seed=0)
t = {"old": [], "new": []}
for s in range(3):
    for i in ideas:
        for name, g in (("old", old), ("new", new)):
            t0 = time.perf_counter(); g.generate(i, n=N, seed=s); t[name].append(time.perf_counter() - t0)
for k, v in t.items(): print(k, "p50 %.3f s mean %.3f" % (statistics.median(v), statistics.mean(v)))
