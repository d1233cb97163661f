"""Write n=1 prompts for each idea (seed 1000 + i, every default) with the print and craft rules
as at aff0d43 (before: no credit rule for prints and crafts, a craft only not digital art) and
as in the working tree (after). Only ideas whose before answer clashes under the new rules are
written twice (the rules only rank candidates down)."""
import json, sys, time
sys.path.insert(0, 'src')  # run from the checkout's root
import textopia, textopia.text as T
ideas_file, out_before, out_after = sys.argv[1:4]
new_rows, new_media = T.USER_MEDIUM_CLASHES, T._UNCREDITED_MEDIA
old_crafted = T._CRAFTED - {"claymation", "plasticine", "needle felted", "macrame", "beadwork"}
i_craft = [i for i, r in enumerate(new_rows) if r[0] == T._CRAFTED][0]
old_rows = new_rows[:i_craft] + ((old_crafted, T._DIGITAL),) + new_rows[i_craft + 1:]
def state(old):
    T.USER_MEDIUM_CLASHES, T._UNCREDITED_MEDIA = (old_rows, T._FLAT_DESIGNS) if old else (new_rows, new_media)
ideas = [l.strip() for l in open(ideas_file) if l.strip()]
g = textopia.load('default')
names = g.known_words.names
before, after = {}, {}
t0 = time.time()
for i, idea in enumerate(ideas):
    state(True)
    got = g.generate(idea, n=1, seed=1000 + i)
    before[idea] = b = got[0].prompt if got else ''
    was = T.clashes(b, idea, names)
    state(False)
    if T.clashes(b, idea, names) and not was:
        got = g.generate(idea, n=1, seed=1000 + i)
        after[idea] = got[0].prompt if got else ''
        print(i, idea, '|', b, '->', after[idea], flush=True)
    else:
        after[idea] = b
    if i % 50 == 0: print(i, round(time.time() - t0), flush=True)
json.dump(before, open(out_before, 'w'), indent=1); json.dump(after, open(out_after, 'w'), indent=1)
print('done', len(ideas), sum(before[i] != after[i] for i in ideas))
