"""CLIP token counts without transformers: how long a prompt is for Stable Diffusion 1.x.

The same tokenizer as :mod:`textopia.evaluation.metrics.clip_tokens` (CLIP's byte-level BPE, NFC,
collapsed whitespace, lower case, CLIP's word regex, ``</w>`` ends of words), built with the
``tokenizers`` library alone from the merges file shipped in the package, so that the prompt
writer can keep every prompt within the text encoder's 77 tokens (75 plus start and end) without
importing transformers. The tests check the counts equal transformers' on real prompts.
"""

from __future__ import annotations

import functools
import gzip
import threading
from collections.abc import Sequence
from pathlib import Path

#: CLIP's merges file, shipped in the package (MIT licence beside it).
CLIP_BPE = Path(__file__).resolve().parent / "assets" / "clip" / "bpe_simple_vocab_16e6.txt.gz"
#: Prompt tokens that fit the encoder: 77 less the start and end tokens.
CLIP_MAX_PROMPT_TOKENS = 75
_N_MERGES = 49152 - 256 - 2
_CLIP_WORDS = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


def bytes_to_unicode() -> dict[int, str]:
    """Map each byte 0..255 to a printable unicode character, as GPT-2's and CLIP's BPE do.

    Printable Latin-1 bytes map to themselves; the other 68 bytes map to ``chr(256 + k)``.

    Returns:
        A dict of 256 entries, byte value -> one-character string, in CLIP's vocabulary order.
    """
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


_BUILDING = threading.Lock()


def clip_backend(path: str = str(CLIP_BPE)):
    """The ``tokenizers.Tokenizer`` of CLIP's text encoder, built from its merges file once per
    process (about 0.1 s; callers while it is being built wait for it).

    Raises:
        FileNotFoundError: the merges file is missing (a broken install).
    """
    with _BUILDING:
        return _build_clip_backend(path)


def prefetch_clip_backend() -> None:
    """Start building :func:`clip_backend` in a background thread: a cold ``textopia generate``
    overlaps it with loading the model and sampling."""
    threading.Thread(target=clip_backend, daemon=True, name="clip-tokenizer").start()


@functools.lru_cache(maxsize=1)
def _build_clip_backend(path: str):
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    with gzip.open(path, "rt", encoding="utf-8") as f:
        merges = [tuple(line.split()) for line in f.read().split("\n")[1 : _N_MERGES + 1]]
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<|endoftext|>", continuing_subword_prefix="",
                               end_of_word_suffix="</w>", fuse_unk=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_WORDS), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.add_special_tokens(["<|startoftext|>", "<|endoftext|>"])
    return tok


def count_clip_tokens(texts: Sequence[str]) -> list[int]:
    """CLIP tokens of each text, without the start and end tokens, untruncated.

    A text fits Stable Diffusion 1.x's encoder iff its count is at most
    :data:`CLIP_MAX_PROMPT_TOKENS` (75).
    """
    if not texts:
        return []
    return [len(e.ids) for e in clip_backend().encode_batch(list(texts), add_special_tokens=False)]


def fit_clip(texts: Sequence[str], limit: int = CLIP_MAX_PROMPT_TOKENS) -> list[str]:
    """Each text cut to at most ``limit`` CLIP tokens: at its last comma that fits (prompts are
    comma-separated lists of tags, so the cut drops the last tags whole), else at a word.

    Texts that fit are returned unchanged.
    """
    out = list(texts)
    counts = count_clip_tokens(out)
    for i, count in enumerate(counts):
        text = out[i]
        while count > limit and ("," in text or " " in text.strip()):
            cut = text.rsplit(",", 1)[0] if "," in text else text.strip().rsplit(" ", 1)[0]
            text = cut.rstrip(" ,;:-")
            count = count_clip_tokens([text])[0]
        out[i] = text
    return out
