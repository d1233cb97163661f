"""The judged model prompts for ideas naming a design, a print or a craft that credit a maker the
idea did not, against those that credit none (textopia.text.credits_a_design)."""
import collections
import statistics as st
from record import judged_prompts
import textopia.text as T
from textopia.text import _phrases, credit_count, KnownWords

names = KnownWords.load('src/textopia/assets/default/known_words.txt').names
FAMILIES = {'design': T._FLAT_DESIGNS, 'print': T._PRINTED, 'craft': T._CRAFTED}
rows, ex = collections.defaultdict(list), collections.defaultdict(list)
for source, idea, prompt, m in judged_prompts():
    fam = next((f for f, kinds in FAMILIES.items() if _phrases(idea) & kinds), None)
    if source == 'human' or fam is None:
        continue
    credits = credit_count(prompt, names) - credit_count(idea, names)
    rows[(fam, credits > 0)].append(m)
    if credits > 0:
        ex[fam].append((m, idea, prompt[:120]))
for (fam, c), r in sorted(rows.items()):
    print(fam, 'credits added' if c else 'none added', len(r),
          'rel %.2f coh %.2f keep %.2f' % tuple(st.mean(x[j] for x in r) for j in range(3)))
for fam in FAMILIES:
    for e in sorted(ex[fam])[:25]:
        print(' ', fam, '%.1f %.1f %.1f' % e[0], '|', e[1], '|', e[2])
