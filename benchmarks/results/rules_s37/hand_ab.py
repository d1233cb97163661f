"""The arms of ``../judged/ab_s37_hand`` (``record.write_arms``): the rows for a painting or
drawing by hand and a print as at 87c5c68 (before) and with a light set up for a photograph
(both rows) and photorealism (the hand row) among what the writer may not add (after); each
idea written twice tagged with what it broke ("lit", "photoreal"). Usage: hand_ab.py IDEAS
BEFORE.json AFTER.json CAUSES.json."""
import sys
from record import newly_clashing, write_arms
import textopia.text as T

ideas_file, out_before, out_after, out_causes = sys.argv[1:5]
old_rows = T.USER_MEDIUM_CLASHES
assert old_rows[0][0] == T._BY_HAND and old_rows[1][0] == T._PRINTED
LIT, REAL = T._LIT, T._PHOTOREAL
new_rows = ((T._BY_HAND, old_rows[0][1] | LIT | REAL), (T._PRINTED, old_rows[1][1] | LIT)) + old_rows[2:]


def use(after):
    T.USER_MEDIUM_CLASHES = new_rows if after else old_rows



def causes(idea, text):
    asked = T._phrases(idea)
    added = T._phrases(text) - asked
    out = []
    if (asked & T._BY_HAND or asked & T._PRINTED) and added & LIT:
        out.append('lit')
    if asked & T._BY_HAND and added & REAL:
        out.append('photoreal')
    return out


write_arms(ideas_file, out_before, out_after, use, newly_clashing(use), causes, out_causes)
