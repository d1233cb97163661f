"""CLIP token counts without transformers equal transformers' fast CLIP tokenizer's."""

from __future__ import annotations

from textopia.clip_count import CLIP_MAX_PROMPT_TOKENS, count_clip_tokens, fit_clip


def test_counts_equal_transformers(prepared):
    from textopia.evaluation.metrics.clip_tokens import count_clip_tokens_batch

    texts = (prepared / "train.txt").read_text().splitlines()[:800]
    texts += ["Caf\u00e9 au lait, 8K, it's   ART!!", "\u5bcc\u58eb\u5c71 at dawn, \U0001f525 emoji", ""]
    assert count_clip_tokens(texts) == count_clip_tokens_batch(texts)


def test_fit_clip_cuts_at_commas_then_words():
    tags = ", ".join(f"tag{i} detailed" for i in range(60))
    fitted = fit_clip([tags, "a short prompt", "word " * 120])
    assert fitted[1] == "a short prompt"
    assert all(c <= CLIP_MAX_PROMPT_TOKENS for c in count_clip_tokens(fitted))
    assert tags.startswith(fitted[0]) and not fitted[0].endswith(",")
    assert count_clip_tokens([fitted[0] + ", tag99 detailed"])[0] > CLIP_MAX_PROMPT_TOKENS or len(fitted[0]) < len(tags)
