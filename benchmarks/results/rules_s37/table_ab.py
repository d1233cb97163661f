"""Write n=1 prompts for each idea (seed 1000 + i, every default) with the design rules as at
d8efb8d (before) and as in the working tree (after): the flat-design rows of USER_MEDIUM_CLASHES
and the designs of credits_a_design. Only ideas whose before answer clashes under the new rules
are written twice (the rules only rank candidates down)."""
import json, sys, time
sys.path.insert(0, 'src')  # run from the checkout's root
import textopia, textopia.text as T
ideas_file, out_before, out_after = sys.argv[1:4]
new_rows, new_flat = T.USER_MEDIUM_CLASHES, T._FLAT_DESIGNS
old_row = (T._DESIGNED, T._PHOTOGRAPHED | T._PHOTOREAL | {"realistic", "a painting", "detailed painting", "painting by",
                                                         "painted by", "oil painting", "oil on canvas", "watercolor",
                                                         "studio lighting", "cinematic lighting", "volumetric lighting"})
i_design = [i for i, r in enumerate(new_rows) if r[0] == T._DESIGNED | T._DRAWN_DESIGNS][0]
old_rows = new_rows[:i_design] + (old_row,) + new_rows[i_design + 3:]
assert len(old_rows) == len(new_rows) - 2 and old_rows[i_design + 1][0] == T._MINIMAL
old_flat = T._DESIGNED | frozenset({
    "logos", "icons", "emojis", "stickers", "pattern", "patterns", "seamless pattern", "ascii art", "pixel art",
    "sprite", "sprite sheet", "blueprint", "blueprints", "cross stitch", "infographic", "diagram", "pictogram",
    "typography", "lettering", "font"})
def state(old):
    T.USER_MEDIUM_CLASHES, T._FLAT_DESIGNS = (old_rows, old_flat) if old else (new_rows, new_flat)
ideas = [l.strip() for l in open(ideas_file) if l.strip()]
g = textopia.load('default')
names = g.known_words.names
before, after = {}, {}
t0 = time.time()
for i, idea in enumerate(ideas):
    state(True)
    got = g.generate(idea, n=1, seed=1000 + i)
    before[idea] = b = got[0].prompt if got else ''
    was = T.clashes(b, idea, names)
    state(False)
    if T.clashes(b, idea, names) and not was:
        got = g.generate(idea, n=1, seed=1000 + i)
        after[idea] = got[0].prompt if got else ''
        print(i, idea, '|', b, '->', after[idea], flush=True)
    else:
        after[idea] = b
    if i % 50 == 0: print(i, round(time.time() - t0), flush=True)
json.dump(before, open(out_before, 'w'), indent=1); json.dump(after, open(out_after, 'w'), indent=1)
print('done', len(ideas), sum(before[i] != after[i] for i in ideas))
