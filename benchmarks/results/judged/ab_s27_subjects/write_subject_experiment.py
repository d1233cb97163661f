import sys, json, re, random, textopia
from benchmarks.blind_judging import read_ideas
from textopia.text import content_words, stem, has_all_idea_words, idea_kept_together, idea_reworded, repeats_idea_word
ideas = read_ideas(sys.argv[1]); k = int(sys.argv[2]); out = sys.argv[3]
COUNTS = dict((l.split('\t')[0], int(l.split('\t')[1])) for l in open('/tmp/s27/subjects_counts.tsv').read().split('\n')[:-1])
SUBJECTS = list(COUNTS)
PREFER = len(sys.argv) > 4 and sys.argv[4] == 'prefer'
import textopia.generation.decoder as D
orig_select = D.select
def select(cands, n, groups=None):
    if PREFER:
        tagged = [c for c in cands if c[0] is not None and c[0].faultless and any(c[1].lower().startswith(t) for t in CHOSEN)]
        if tagged:
            keep_idx = [i for i, c in enumerate(cands) if c in tagged]
            cands = [cands[i] for i in keep_idx]
            groups = None if groups is None else [groups[i] for i in keep_idx]
    return orig_select(cands, n, groups)
D.select = select
CHOSEN = []
g = textopia.load()
cls = type(g)
orig = cls._request
from textopia.text import STOP_WORDS, tokenize
ARTICLES = {"a", "an", "the"}
def headed(idea, s):
    """the idea is the clause's subject: before it only modifiers (a leading article, one 'of'
    after a first noun such as 'portrait of'), after it a small word, a participle or nothing."""
    iw = [stem(w) for w in content_words(idea)]
    toks = tokenize(s)
    st = [stem(t) for t in toks]
    if iw[0] not in st: return False
    i0 = st.index(iw[0])
    # the idea's last word position
    try:
        i1 = max(i for i, x in enumerate(st) if x == iw[-1])
    except ValueError:
        return False
    before = toks[:i0]
    if before and before[0] in ARTICLES: before = before[1:]
    ofs = [w for w in before if w == "of"]
    if len(ofs) > 1: return False
    for j, w in enumerate(before):
        if w == "of":
            continue
        if w in STOP_WORDS and not (w in ARTICLES and j > 0 and before[j-1] == "of"):
            return False
        if w.endswith("ing") and len(w) > 4 and w not in ("painting", "drawing", "king", "string"):
            return False
    after = toks[i1 + 1:]
    if after:
        w = after[0]
        if not (w in STOP_WORDS or w.endswith("ing") or w.endswith("ed")):
            return False
    return True
def matching(idea):
    words = [w.lower() for w in content_words(idea)]
    stems = {stem(w) for w in words}
    pre = [s for s in SUBJECTS if all(stem(w)[:4] in s for w in words)]
    res = []
    for s in pre:
        if not has_all_idea_words(idea, s) or not idea_kept_together(idea, s) or idea_reworded(idea, s) or repeats_idea_word(idea, s):
            continue
        if not [w for w in content_words(s) if stem(w) not in stems]:
            continue
        if re.search(r"\d", s) or not headed(idea, s):
            continue
        res.append(s)
    return res
def _request(self, idea, n, settings, latent=None):
    r = orig(self, idea, n, settings, latent)
    if k and r.openings and settings.mode == "expand" and idea:
        found = matching(idea)
        rng = random.Random(settings.seed)
        chosen = []
        pool = list(found)
        while pool and len(chosen) < k:
            pick = rng.choices(pool, weights=[COUNTS[p] for p in pool])[0]
            chosen.append(pick); pool.remove(pick)
        CHOSEN[:] = chosen
        text, count, context = r.openings[0]
        take = min(len(chosen), count - 1)
        if take:
            r.openings[0] = (text, count - take, context)
            for s in chosen[:take]:
                t = f"{s},"
                r.openings.append((t, 1, self.tokenizer.context_ids(idea, prompt_prefix=t)))
    return r
cls._request = _request
rows = {}
for i, idea in enumerate(ideas):
    got = g.generate(idea, n=1, seed=1000 + i)
    rows[idea] = got[0].prompt if got else ""
open(out, "w").write(json.dumps(rows, indent=1) + "\n")
