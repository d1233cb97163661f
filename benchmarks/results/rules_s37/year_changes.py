"""Which n=1 answers the lone-year rule changes: each idea written with the rule off (the
previous _period_clash) and, where that answer holds a year alone, again with it on."""
import json, sys, time
sys.path.insert(0, 'src')  # run from the checkout's root
import textopia, textopia.text as T
new = T._period_clash
def old(text, idea):
    asked = T.periods(idea) if idea else []
    if asked:
        return new(text, idea)
    alone = [found[0] for words in T._clause_words(text)
             if len(words) <= 2 and len(found := T.periods(" ".join(words))) == 1]
    return any(a[1] < b[0] or b[1] < a[0] for i, a in enumerate(alone) for b in alone[i + 1:])
ideas = [l.strip() for f in sys.argv[2:] for l in open(f) if l.strip()]
g = textopia.load('default')
out = []
t0 = time.time()
for i, idea in enumerate(ideas):
    T._period_clash = old
    got = g.generate(idea, n=1, seed=1000 + i)
    before = got[0].prompt if got else ''
    if new(before, idea) and not old(before, idea):
        T._period_clash = new
        got = g.generate(idea, n=1, seed=1000 + i)
        out.append({'idea': idea, 'before': before, 'after': got[0].prompt if got else ''})
        print(out[-1], flush=True)
    if i % 200 == 0: print(i, time.time() - t0, flush=True)
json.dump({'ideas': len(ideas), 'changed': out}, open(sys.argv[1], 'w'), indent=1)
print('done', len(ideas), len(out))
