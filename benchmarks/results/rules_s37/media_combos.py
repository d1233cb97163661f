"""For each family of media an idea may name and each kind of addition, the judged model prompts
with and without it (those the rules already rank down left out)."""
import collections, json, statistics as st
from record import judged_prompts
import textopia.text as T
from textopia.text import _phrases, credit_count, clashes, KnownWords
names = KnownWords.load('src/textopia/assets/default/known_words.txt').names
IDEA = {'by_hand': T._BY_HAND | {"painting", "dot painting", "miniature", "acrylic pour", "gouache", "pastel"},
        'printed': T._PRINTED, 'crafted': T._CRAFTED | {"claymation", "clay", "plasticine", "felt", "lego", "embroidered", "knitted", "wood carving", "carved", "sculpture", "statue", "ceramic", "porcelain"},
        'drawn_flat': T._DRAWN_FLAT | {"cartoon", "comic", "manga", "anime", "cel shaded", "chibi"},
        'photographed': T._PHOTOGRAPHED | {"film noir", "photo"}, 'graphic': T._GRAPHIC, 'design': T._FLAT_DESIGNS,
        'period': set()}
ADD = {'credit': None, 'render': T._RENDERED, 'photo': T._PHOTOGRAPHED, 'digital': T._DIGITAL, 'photoreal': T._PHOTOREAL | {"realistic", "hyperrealistic", "ultra realistic"},
       'lit': T._LIT | {"volumetric lighting", "cinematic lighting"}, 'digital_look': T._DIGITAL_LOOK, 'artstation': {"artstation", "trending on artstation"}}
res = collections.defaultdict(list); ex = collections.defaultdict(list)
for source, idea, p, (_, coh, keep) in judged_prompts():
    if source == 'human' or clashes(p, idea, names): continue
    ip = _phrases(idea); added = _phrases(p) - ip
    m = (coh, keep)
    for fam, words in IDEA.items():
        if not ip & words: continue
        for a, aw in ADD.items():
            has = credit_count(p, names) > credit_count(idea, names) if a == 'credit' else bool(added & aw)
            res[(fam, a, has)].append(m)
            if has: ex[(fam, a)].append((m[1], idea, p[:100]))
for fam in IDEA:
    for a in ADD:
        y, n = res[(fam, a, True)], res[(fam, a, False)]
        if len(y) >= 4 and n:
            ky, kn = st.mean(x[1] for x in y), st.mean(x[1] for x in n)
            print(f'{fam:13s} {a:12s} with {len(y):3d} keep {ky:.2f} coh {st.mean(x[0] for x in y):.2f} | without {len(n):3d} keep {kn:.2f} coh {st.mean(x[0] for x in n):.2f}  diff {ky-kn:+.2f}')
json.dump({f'{k[0]}|{k[1]}': sorted(v)[:8] for k, v in ex.items()}, open('media_combos_examples.json', 'w'), indent=1)
