import sys, json, textopia
import textopia.generation.decoding as dec
from benchmarks.blind_judging import read_ideas
ideas = read_ideas(sys.argv[1]); share = float(sys.argv[2]); out = sys.argv[3]
if len(sys.argv) > 4: dec.HOLD_TEMPERATURE = float(sys.argv[4])
g = textopia.load()
type(g).detail_opening_share = share
rows = {}
for i, idea in enumerate(ideas):
    got = g.generate(idea, n=1, seed=1000 + i)
    rows[idea] = got[0].prompt if got else ""
open(out, "w").write(json.dumps(rows, indent=1) + "\n")
