import sys, json, textopia
from benchmarks.blind_judging import read_ideas
from textopia.text import KnownWords
model, ideas_file, with_subjects, out = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
ideas = read_ideas(ideas_file)
g = textopia.load(model)
if with_subjects:
    src = KnownWords.load('/work/main/src/textopia/assets/default/known_words.txt')
    kw = g.known_words
    g.known_words = KnownWords(kw.words, kw.names, kw.clauses, src.subjects)
rows = {}
for i, idea in enumerate(ideas):
    got = g.generate(idea, n=1, seed=1000 + i)
    rows[idea] = got[0].prompt if got else ""
open(out, "w").write(json.dumps(rows, indent=1) + "\n")
