"""CLIP token counting: how long a prompt is for Stable Diffusion 1.x's text encoder.

Stable Diffusion 1.x encodes a prompt with the text tower of OpenAI's CLIP ViT-L/14. Its
tokenizer is a byte-level BPE with 49,408 entries (48,894 merges), and the encoder takes at most
**77 tokens including** ``<|startoftext|>`` and ``<|endoftext|>``, so at most **75 prompt
tokens**; diffusers' pipelines truncate the rest (with a warning).

Where the tokenizer comes from (first match wins, see :func:`resolve_clip_source`):

1. the ``bpe_path`` argument;
2. the environment variable ``TEXTOPIA_CLIP_BPE`` (path to ``bpe_simple_vocab_16e6.txt.gz``);
3. the merges file shipped inside the package, ``textopia/assets/clip/bpe_simple_vocab_16e6.txt.gz``
   (MIT-licensed by OpenAI, openai/CLIP; its ``LICENSE`` lies beside it), so counts work offline;
4. the Hugging Face Hub: ``CLIPTokenizerFast.from_pretrained("openai/clip-vit-large-patch14")``,
   only if the shipped file is missing (a broken install).

From a merges file the vocabulary is derived exactly as ``openai/CLIP``'s ``simple_tokenizer.py``
does (the 256 ``bytes_to_unicode`` characters, then each with ``</w>``, then every merge joined,
then ``<|startoftext|>`` and ``<|endoftext|>``), so token ids equal the Hub tokenizer's
(``<|startoftext|>`` = 49406, ``a</w>`` = 320). The text pipeline is transformers' fast CLIP
tokenizer (NFC, whitespace collapsed, lower case; words, single digits and punctuation runs
split by CLIP's regex), the one diffusers uses. It differs from ``simple_tokenizer.py`` only in
that it does not run ``ftfy`` and ``html.unescape`` first (``"&amp;"`` is 3 tokens here, 1 there).
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

from textopia.clip_count import bytes_to_unicode  # noqa: F401  (re-exported: one copy, below this layer)

logger = logging.getLogger(__name__)

#: Environment variable naming the CLIP BPE merges file (``bpe_simple_vocab_16e6.txt.gz``).
CLIP_BPE_ENV = "TEXTOPIA_CLIP_BPE"
#: The merges file shipped in the package (MIT-licensed by OpenAI; see ``assets/clip/LICENSE``).
PACKAGED_CLIP_BPE = Path(__file__).resolve().parents[2] / "assets" / "clip" / "bpe_simple_vocab_16e6.txt.gz"
#: The Hub tokenizer of Stable Diffusion 1.x's text encoder.
CLIP_HUB_NAME = "openai/clip-vit-large-patch14"
#: Context length of CLIP's text encoder, in tokens, including start and end tokens.
CLIP_MAX_LENGTH = 77
#: Prompt tokens that fit: :data:`CLIP_MAX_LENGTH` minus the start and end tokens.
CLIP_MAX_PROMPT_TOKENS = CLIP_MAX_LENGTH - 2
#: Merges used by CLIP: lines 1 .. 49152 - 256 - 2 of the merges file (line 0 is a header).
_N_MERGES = 49152 - 256 - 2
#: Entries in CLIP's vocabulary: 2 x 256 byte tokens, the merges, start and end.
CLIP_VOCAB_SIZE = 2 * 256 + _N_MERGES + 2

def clip_vocab_and_merges(bpe_path: str | os.PathLike[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Derive CLIP's vocabulary and merge list from its gzipped merges file.

    Follows ``openai/CLIP`` ``clip/simple_tokenizer.py``: merges are lines 1..48894 of the file;
    the vocabulary is the 256 byte characters, the same with ``</w>``, each merge joined, then
    ``<|startoftext|>`` (id 49406) and ``<|endoftext|>`` (id 49407).

    Args:
        bpe_path: path to ``bpe_simple_vocab_16e6.txt.gz``.

    Returns:
        ``(vocab, merges)``: token -> id (49,408 entries) and the 48,894 merge pairs in rank order.

    Raises:
        FileNotFoundError: if ``bpe_path`` does not exist.
        ValueError: if the file has fewer merges than CLIP's or a malformed merge line.
    """
    with gzip.open(bpe_path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    raw = lines[1 : _N_MERGES + 1]
    if len(raw) != _N_MERGES:
        raise ValueError(f"{bpe_path}: expected {_N_MERGES} merges after the header, found {len(raw)}")
    merges: list[tuple[str, str]] = []
    for line in raw:
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{bpe_path}: malformed merge line {line!r}")
        merges.append((parts[0], parts[1]))
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges

def resolve_clip_source(bpe_path: str | os.PathLike[str] | None = None) -> str:
    """Say where CLIP's tokenizer will be loaded from (see the module docstring for the order).

    Args:
        bpe_path: an explicit merges file; wins over everything else.

    Returns:
        An absolute path to a merges file, or :data:`CLIP_HUB_NAME`.

    Raises:
        FileNotFoundError: if ``bpe_path`` or ``$TEXTOPIA_CLIP_BPE`` names a missing file (an
            explicit setting that is wrong is an error, not a reason to fall back).
    """
    if bpe_path is not None:
        path = Path(bpe_path)
        if not path.is_file():
            raise FileNotFoundError(f"CLIP BPE merges file not found: {path}")
        return str(path.resolve())
    env = os.environ.get(CLIP_BPE_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise FileNotFoundError(f"{CLIP_BPE_ENV}={env!r} does not name an existing file")
        return str(path.resolve())
    if PACKAGED_CLIP_BPE.is_file():
        return str(PACKAGED_CLIP_BPE)
    return CLIP_HUB_NAME

def _fast_clip_class() -> Any:
    """transformers' fast CLIP tokenizer class: ``CLIPTokenizerFast`` (an alias in transformers 5,
    where ``CLIPTokenizer`` itself is the fast one), else ``CLIPTokenizer``."""
    import transformers

    return getattr(transformers, "CLIPTokenizerFast", None) or transformers.CLIPTokenizer

def _from_bpe_file(bpe_path: str) -> PreTrainedTokenizerBase:
    """Build transformers' fast CLIP tokenizer from a merges file, through a temporary folder."""
    CLIPTokenizerFast = _fast_clip_class()  # noqa: N806 - the class, named as in transformers

    vocab, merges = clip_vocab_and_merges(bpe_path)
    with tempfile.TemporaryDirectory(prefix="textopia-clip-") as tmp:
        with open(os.path.join(tmp, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False)
        with open(os.path.join(tmp, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            f.writelines(f"{a} {b}\n" for a, b in merges)
        # Through from_pretrained: the constructor's vocab_file/merges_file arguments are
        # silently ignored by transformers 5 (it then builds an empty vocabulary).
        tok = CLIPTokenizerFast.from_pretrained(tmp, model_max_length=CLIP_MAX_LENGTH)
    if len(tok) != CLIP_VOCAB_SIZE:  # guard against such silent changes in transformers
        raise RuntimeError(f"CLIP tokenizer built from {bpe_path} has {len(tok)} tokens, expected {CLIP_VOCAB_SIZE}")
    return tok

def _from_hub(name: str) -> PreTrainedTokenizerBase:
    """Load CLIP's tokenizer the usual way: the local HF cache first, then the Hub."""
    CLIPTokenizerFast = _fast_clip_class()  # noqa: N806 - the class, named as in transformers

    try:
        tok = CLIPTokenizerFast.from_pretrained(name, local_files_only=True)
        # transformers 5 returns an empty tokenizer (2 tokens) instead of raising when the files
        # are missing, so a cache hit is told by the vocabulary's size.
        if len(tok) == CLIP_VOCAB_SIZE:
            return tok
    except OSError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise OSError(f"{name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set")
    # Without a network huggingface_hub retries each file for minutes before giving up.
    logger.info("CLIP tokenizer %s not in the local HF cache; downloading", name)
    return CLIPTokenizerFast.from_pretrained(name)

@functools.lru_cache(maxsize=4)
def _load_clip_tokenizer(source: str) -> PreTrainedTokenizerBase:
    hint = (
        f"Offline, set {CLIP_BPE_ENV} to the path of CLIP's merges file bpe_simple_vocab_16e6.txt.gz "
        "(from github.com/openai/CLIP, clip/bpe_simple_vocab_16e6.txt.gz)."
    )
    if source == CLIP_HUB_NAME:
        try:
            tok = _from_hub(source)
        except Exception as err:  # OSError offline; other errors from the Hub client
            raise RuntimeError(
                f"Could not load CLIP's tokenizer {CLIP_HUB_NAME!r} from the Hugging Face Hub "
                f"({type(err).__name__}: {err}). {hint}"
            ) from err
        # transformers 5 can return an empty tokenizer (2 tokens) when every download failed.
        if len(tok) != CLIP_VOCAB_SIZE:
            raise RuntimeError(
                f"CLIP's tokenizer {CLIP_HUB_NAME!r} came back with {len(tok)} tokens, expected "
                f"{CLIP_VOCAB_SIZE} (the Hub could not be reached?). {hint}"
            )
    else:
        tok = _from_bpe_file(source)
    logger.info("CLIP tokenizer loaded from %s (%d tokens)", source, len(tok))
    return tok

def clip_tokenizer(bpe_path: str | os.PathLike[str] | None = None) -> PreTrainedTokenizerBase:
    """Return Stable Diffusion 1.x's CLIP tokenizer (a transformers fast CLIP tokenizer).

    The source is resolved on every call (argument, ``$TEXTOPIA_CLIP_BPE``, the packaged file,
    then the Hub; see the module docstring); the tokenizer itself is cached per source.

    Args:
        bpe_path: optional path to CLIP's ``bpe_simple_vocab_16e6.txt.gz``.

    Returns:
        A ``CLIPTokenizerFast`` with ``model_max_length`` 77; calling it adds
        ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407).

    Raises:
        FileNotFoundError: if an explicitly given merges file is missing.
        RuntimeError: if the packaged merges file is missing and the tokenizer is neither in the local HF
            cache nor downloadable; the message says to set ``TEXTOPIA_CLIP_BPE``. With
            ``HF_HUB_OFFLINE=1`` this fails at once; without it and without a network,
            huggingface_hub first retries each file for a few minutes.
    """
    return _load_clip_tokenizer(resolve_clip_source(bpe_path))

def count_clip_tokens_batch(texts: Sequence[str], *, bpe_path: str | os.PathLike[str] | None = None) -> list[int]:
    """Count CLIP tokens of many texts, **excluding** the start and end tokens, untruncated.

    Args:
        texts: prompts.
        bpe_path: optional merges file, as for :func:`clip_tokenizer`.

    Returns:
        One count per text (tokens); a text fits Stable Diffusion 1.x's encoder iff its count
        is at most :data:`CLIP_MAX_PROMPT_TOKENS` (75).

    Raises:
        As :func:`clip_tokenizer`.
    """
    if not texts:
        return []
    # The Rust backend directly: no truncation, and no "longer than 77" warning per long text.
    backend = clip_tokenizer(bpe_path).backend_tokenizer
    encodings = backend.encode_batch(list(texts), add_special_tokens=False)
    return [len(e.ids) for e in encodings]

def count_clip_tokens(text: str, *, bpe_path: str | os.PathLike[str] | None = None) -> int:
    """Count CLIP tokens of one text, **excluding** the start and end tokens, untruncated.

    Examples: ``"a photo of a cat"`` -> 5; ``"8k"`` -> 2 (digits are single tokens); ``""`` -> 0.
    Add 2 for the length the text encoder sees; its limit is 77 with those two.

    Raises:
        As :func:`clip_tokenizer`.
    """
    return count_clip_tokens_batch([text], bpe_path=bpe_path)[0]
