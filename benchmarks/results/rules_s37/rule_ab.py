"""The arms of one rule's A/B (``record.write_arms``): a rank-down rule of textopia.text off
(before) and on (after). Usage: rule_ab.py RULE IDEAS BEFORE.json AFTER.json, with RULE
``credits_a_design`` (for ``../judged/ab_s37_design_credit``) or ``_period_clash``."""
import sys
from record import write_arms
import textopia.text as T

rule, ideas_file, out_before, out_after = sys.argv[1:5]
on = getattr(T, rule)


def use(after):
    setattr(T, rule, on if after else (lambda *a, **k: False))


def breaks(idea, prompt, names):
    return on(idea, prompt, names) if rule == 'credits_a_design' else on(prompt, idea)


write_arms(ideas_file, out_before, out_after, use, breaks)
