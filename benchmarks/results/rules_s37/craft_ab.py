"""The arms of ``../judged/ab_s37_craft`` (``record.write_arms``): the print and craft rules as
at aff0d43 (before: no credit rule for prints and crafts, a craft only not digital art) and as
in the tree that wrote it (after: credits ranked down, a craft not photorealistic either).
Usage: craft_ab.py IDEAS BEFORE.json AFTER.json."""
import sys
from record import newly_clashing, write_arms
import textopia.text as T

ideas_file, out_before, out_after = sys.argv[1:4]
new_rows, new_media = T.USER_MEDIUM_CLASHES, T._UNCREDITED_MEDIA
old_crafted = T._CRAFTED - {"claymation", "plasticine", "needle felted", "macrame", "beadwork"}
i_craft = [i for i, r in enumerate(new_rows) if r[0] == T._CRAFTED][0]
old_rows = new_rows[:i_craft] + ((old_crafted, T._DIGITAL),) + new_rows[i_craft + 1:]


def use(after):
    T.USER_MEDIUM_CLASHES, T._UNCREDITED_MEDIA = (new_rows, new_media) if after else (old_rows, T._FLAT_DESIGNS)



write_arms(ideas_file, out_before, out_after, use, newly_clashing(use))
