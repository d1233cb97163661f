"""The arms of ``../judged/ab_s37_design_flat`` (``record.write_arms``): the design rows of
USER_MEDIUM_CLASHES and the designs of credits_a_design as at d8efb8d (before) and as in the
tree that wrote it (after). Usage: table_ab.py IDEAS BEFORE.json AFTER.json."""
import sys
from record import newly_clashing, write_arms
import textopia.text as T

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


def use(after):
    # credits_a_design read _FLAT_DESIGNS when this was written
    T.USER_MEDIUM_CLASHES, T._FLAT_DESIGNS = (new_rows, new_flat) if after else (old_rows, old_flat)



write_arms(ideas_file, out_before, out_after, use, newly_clashing(use))
