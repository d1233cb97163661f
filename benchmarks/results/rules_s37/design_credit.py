"""Session 37: how the judged folders on record (to session 36) score the model prompts a rule
would rank down; run from the checkout's root with data/sd prepared."""
import collections, json, glob, csv, sys, statistics as st
sys.path.insert(0, 'src')  # run from the checkout's root
from textopia.text import _phrases, credit_count, KnownWords
kw = KnownWords.load('src/textopia/assets/default/known_words.txt')
names = kw.names
import textopia.text as T
FAMILIES = {'design': T._FLAT_DESIGNS, 'print': T._PRINTED, 'craft': T._CRAFTED}
rows = collections.defaultdict(list); ex = collections.defaultdict(list)
for kf in glob.glob('benchmarks/results/judged/*/key.json'):
    if '_s37' in kf:
        continue  # the folders judged after this measure, the rules' own A/Bs among them
    d = kf.rsplit('/', 1)[0]
    key = {k['id']: k for k in json.load(open(kf))}
    scores = collections.defaultdict(list)
    for jf in glob.glob(d + '/judge*.csv'):
        for r in csv.DictReader(open(jf)):
            try: scores[int(r['id'])].append((float(r['relevance']), float(r['coherence']), float(r['keep'])))
            except Exception: pass
    for i, k in key.items():
        if i not in scores or 'prompt' not in k or k.get('source') == 'human': continue
        idea = k['idea']
        fam = next((f for f, kinds in FAMILIES.items() if _phrases(idea) & kinds), None)
        if fam is None: continue
        credits = credit_count(k['prompt'], names) - credit_count(idea, names)
        m = tuple(st.mean(s[j] for s in scores[i]) for j in range(3))
        rows[(fam, credits > 0)].append(m)
        if credits > 0: ex[fam].append((m, idea, k['prompt'][:120]))
for (fam, c), r in sorted(rows.items()):
    print(fam, 'credits added' if c else 'none added', len(r), 'rel %.2f coh %.2f keep %.2f' % tuple(st.mean(x[j] for x in r) for j in range(3)))
for fam in FAMILIES:
    for e in sorted(ex[fam])[:25]: print(' ', fam, '%.1f %.1f %.1f' % e[0], '|', e[1], '|', e[2])
