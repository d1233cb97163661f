"""Session 37: how the judged folders on record (to session 36) score the model prompts a rule
would rank down; run from the checkout's root with data/sd prepared."""
import collections, json, glob, csv, sys, statistics as st
sys.path.insert(0, 'src')  # run from the checkout's root
from textopia.text import STOP_WORDS, _clause_words, periods
def bare_date(text, idea):
    """A clause that is a year alone, the idea naming no date (textopia.text._period_clash)."""
    if idea and periods(idea): return False
    return any(len(w) <= 2 and len(p := periods(" ".join(w))) == 1 and p[0][0] == p[0][1]
               and sum(x not in STOP_WORDS for x in w) == 1 for w in _clause_words(text))
flag, rest, ex = [], [], []
for kf in glob.glob('benchmarks/results/judged/*/key.json'):
    if '_s37' in kf:
        continue  # the folders judged after this measure, the rules' own A/Bs among them
    d = kf.rsplit('/', 1)[0]
    key = {k['id']: k for k in json.load(open(kf))}
    scores = collections.defaultdict(list)
    for jf in glob.glob(d + '/judge*.csv'):
        for r in csv.DictReader(open(jf)):
            try: scores[int(r['id'])].append((float(r['coherence']), float(r['keep']), float(r['relevance'])))
            except Exception: pass
    for i, k in key.items():
        if i not in scores or 'prompt' not in k: continue
        f = bare_date(k['prompt'], k['idea'])
        m = tuple(st.mean(s[j] for s in scores[i]) for j in range(3))
        if k.get('source') == 'human':
            if f: ex.append(('HUMAN', m, k['idea'], k['prompt'][:140]))
            continue
        (flag if f else rest).append(m)
        if f: ex.append((k['source'], m, k['idea'], k['prompt'][:140]))
print(len(flag), 'coh %.2f keep %.2f rel %.2f' % tuple(st.mean(f[j] for f in flag) for j in range(3)), '| rest', len(rest), 'coh %.2f keep %.2f' % tuple(st.mean(f[j] for f in rest) for j in range(2)))
for e in ex: print('   ', e)
n = hits = 0
for line in open('data/sd/test.txt'):
    n += 1; hits += bare_date(line.strip(), None)
print('human test prompts', hits, 'of', n)
