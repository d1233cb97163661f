"""Write n=1 prompts for each idea (seed 1000 + i, every default) with one rule of
textopia.text off (before) and on (after). The rule only ranks candidates down, so an answer
can change only where the before answer breaks it: only those ideas are written twice."""
import json, sys, time
sys.path.insert(0, 'src')  # run from the checkout's root
import textopia, textopia.text as T
rule, ideas_file, out_before, out_after = sys.argv[1:5]
on = getattr(T, rule)
ideas = [l.strip() for l in open(ideas_file) if l.strip()]
g = textopia.load('default')
names = g.known_words.names if getattr(g, 'known_words', None) is not None else ()
before, after = {}, {}
t0 = time.time()
for i, idea in enumerate(ideas):
    setattr(T, rule, lambda *a, **k: False)
    got = g.generate(idea, n=1, seed=1000 + i)
    before[idea] = b = got[0].prompt if got else ''
    setattr(T, rule, on)
    if on(idea, b, names) if rule == 'credits_a_design' else on(b, idea):
        got = g.generate(idea, n=1, seed=1000 + i)
        after[idea] = got[0].prompt if got else ''
        print(i, idea, '|', b, '->', after[idea], flush=True)
    else:
        after[idea] = b
    if i % 50 == 0: print(i, round(time.time() - t0), flush=True)
json.dump(before, open(out_before, 'w'), indent=1); json.dump(after, open(out_after, 'w'), indent=1)
print('done', len(ideas), sum(before[i] != after[i] for i in ideas))
