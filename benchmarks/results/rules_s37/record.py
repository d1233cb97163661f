"""What the session-37 rule scripts share: the judged record read, and the two arms of a rule's
A/B written. Run the scripts from the checkout's root (they import ``src``)."""
import json
import statistics as st
import sys
import time
from pathlib import Path

sys.path.insert(0, 'src')
from textopia.evaluation.judged import read_scores  # noqa: E402


def judged_prompts(skip='_s37'):
    """Every judged prompt on record, folders named with ``skip`` left out (those judged after
    the measures, the rules' own A/Bs among them): ``(source, idea, prompt, (relevance,
    coherence, keep))``, the scores each the mean of the folder's judges, in folder order."""
    for key_file in sorted(Path('benchmarks/results/judged').glob('*/key.json')):
        if skip in key_file.parent.name:
            continue
        judges = [read_scores(p) for p in sorted(key_file.parent.glob('judge*.csv'))]
        for item in json.loads(key_file.read_text()):
            scores = [j[item['id']] for j in judges if item['id'] in j]
            if scores and 'prompt' in item:
                yield item['source'], item['idea'], item['prompt'], tuple(st.mean(s[k] for s in scores) for k in range(3))


def newly_clashing(use):
    """A ``breaks`` for :func:`write_arms`: the prompt clashes (``textopia.text.clashes``) with the
    rules as after and not as before."""
    import textopia.text as T

    def breaks(idea, prompt, names):
        use(False)
        was = T.clashes(prompt, idea, names)
        use(True)
        return T.clashes(prompt, idea, names) and not was
    return breaks


def write_arms(ideas_file, out_before, out_after, use, breaks, causes=None, out_causes=None):
    """Write each idea's n=1 prompt (idea i: seed 1000 + i, every default) with the rules as
    before (``use(False)`` sets them in ``textopia.text``) and, where that answer ``breaks(idea,
    prompt, names)`` under the rules as after (``use(True)``), again with those: the rules only
    rank candidates down, so no other answer can change. ``causes(idea, prompt)`` tags each idea
    written twice."""
    import textopia
    ideas = [line.strip() for line in open(ideas_file) if line.strip()]
    generator = textopia.load('default')
    names = generator.known_words.names
    before, after, why = {}, {}, {}
    start = time.time()
    for i, idea in enumerate(ideas):
        use(False)
        got = generator.generate(idea, n=1, seed=1000 + i)
        before[idea] = b = got[0].prompt if got else ''
        use(True)
        if breaks(idea, b, names):
            got = generator.generate(idea, n=1, seed=1000 + i)
            after[idea] = got[0].prompt if got else ''
            if causes:
                why[idea] = causes(idea, b)
            print(i, idea, why.get(idea, ''), '|', b, '->', after[idea], flush=True)
        else:
            after[idea] = b
        if i % 50 == 0:
            print(i, round(time.time() - start), flush=True)
    json.dump(before, open(out_before, 'w'), indent=1)
    json.dump(after, open(out_after, 'w'), indent=1)
    if out_causes:
        json.dump(why, open(out_causes, 'w'), indent=1)
    print('done', len(ideas), sum(before[i] != after[i] for i in ideas))
