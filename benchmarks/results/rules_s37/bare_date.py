"""The judged model prompts with a clause that is a year alone the idea did not ask for, against
the others (textopia.text._period_clash), and the test-split human prompts with one."""
import statistics as st
from record import judged_prompts
from textopia.text import STOP_WORDS, _clause_words, periods


def bare_date(text, idea):
    """A clause that is a year alone, the idea naming no date."""
    if idea and periods(idea):
        return False
    return any(len(w) <= 2 and len(p := periods(" ".join(w))) == 1 and p[0][0] == p[0][1]
               and sum(x not in STOP_WORDS for x in w) == 1 for w in _clause_words(text))


flag, rest, ex = [], [], []
for source, idea, prompt, (rel, coh, keep) in judged_prompts():
    f = bare_date(prompt, idea)
    if f:
        ex.append(('HUMAN' if source == 'human' else source, (coh, keep, rel), idea, prompt[:140]))
    if source != 'human':
        (flag if f else rest).append((coh, keep, rel))
print(len(flag), 'coh %.2f keep %.2f rel %.2f' % tuple(st.mean(f[j] for f in flag) for j in range(3)),
      '| rest', len(rest), 'coh %.2f keep %.2f' % tuple(st.mean(f[j] for f in rest) for j in range(2)))
for e in ex:
    print('   ', e)
lines = [line.strip() for line in open('data/sd/test.txt')]
print('human test prompts', sum(bare_date(t, None) for t in lines), 'of', len(lines))
