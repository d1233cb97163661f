"""Session 37: how the judged folders on record (to session 36) score the model prompts a rule
would rank down; run from the checkout's root with data/sd prepared."""
import collections, json, glob, csv, sys, statistics as st
sys.path.insert(0, 'src')  # run from the checkout's root
from textopia.text import _phrases, credit_count, KnownWords
kw = KnownWords.load('src/textopia/assets/default/known_words.txt')
names = kw.names
KINDS = {"logo", "icon", "app icon", "emoji", "sticker", "coloring page", "coloring book", "tattoo design", "shirt design",
         "clipart", "clip art", "emblem", "badge", "pattern", "seamless pattern", "ascii art", "infographic", "diagram",
         "blueprint", "pixel art", "font", "typography", "flag", "pictogram", "sprite", "cross stitch", "icons", "logos",
         "stickers", "emojis", "patterns"}
rows = collections.defaultdict(list); ex = []
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
        if not (_phrases(idea) & KINDS): continue
        credits = credit_count(k['prompt'], names) - credit_count(idea, names)
        m = tuple(st.mean(s[j] for s in scores[i]) for j in range(3))
        rows[credits > 0].append(m)
        if credits > 0: ex.append((m, idea, k['prompt'][:120]))
for c, r in rows.items():
    print('credits added' if c else 'none added', len(r), 'rel %.2f coh %.2f keep %.2f' % tuple(st.mean(x[j] for x in r) for j in range(3)))
for e in sorted(ex)[:40]: print(' ', '%.1f %.1f %.1f' % e[0], '|', e[1], '|', e[2])
