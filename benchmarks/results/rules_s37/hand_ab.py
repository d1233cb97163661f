"""Write n=1 prompts for each idea (seed 1000 + i, every default) with the rows for a painting
or drawing by hand and a print as at 87c5c68 (before) and with a light set up for a photograph
(both rows) and photorealism (the hand row) added to what the writer may not add (after). Only
ideas whose before answer clashes under the new rows are written twice; each is tagged with
what it broke ("lit", "photoreal" or both)."""
import json, sys, time
sys.path.insert(0, 'src')  # run from the checkout's root
import textopia, textopia.text as T
ideas_file, out_before, out_after, out_causes = sys.argv[1:5]
old_rows = T.USER_MEDIUM_CLASHES
assert old_rows[0][0] == T._BY_HAND and old_rows[1][0] == T._PRINTED
LIT, REAL = T._LIT, T._PHOTOREAL
new_rows = ((T._BY_HAND, old_rows[0][1] | LIT | REAL), (T._PRINTED, old_rows[1][1] | LIT)) + old_rows[2:]
def causes(idea, text):
    asked = T._phrases(idea); added = T._phrases(text) - asked
    out = []
    if (asked & T._BY_HAND or asked & T._PRINTED) and added & LIT: out.append('lit')
    if asked & T._BY_HAND and added & REAL: out.append('photoreal')
    return out
ideas = [l.strip() for l in open(ideas_file) if l.strip()]
g = textopia.load('default')
names = g.known_words.names
before, after, why = {}, {}, {}
t0 = time.time()
for i, idea in enumerate(ideas):
    T.USER_MEDIUM_CLASHES = old_rows
    got = g.generate(idea, n=1, seed=1000 + i)
    before[idea] = b = got[0].prompt if got else ''
    was = T.clashes(b, idea, names)
    T.USER_MEDIUM_CLASHES = new_rows
    if T.clashes(b, idea, names) and not was:
        got = g.generate(idea, n=1, seed=1000 + i)
        after[idea] = got[0].prompt if got else ''
        why[idea] = causes(idea, b)
        print(i, idea, why[idea], '|', b, '->', after[idea], flush=True)
    else:
        after[idea] = b
    if i % 50 == 0: print(i, round(time.time() - t0), flush=True)
json.dump(before, open(out_before, 'w'), indent=1); json.dump(after, open(out_after, 'w'), indent=1)
json.dump(why, open(out_causes, 'w'), indent=1)
print('done', len(ideas), sum(before[i] != after[i] for i in ideas))
