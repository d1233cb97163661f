"""Tokenizers: a byte-level BPE trained on the train split, or a pretrained model's own.

Both carry Textopia's special tokens and load as a transformers fast tokenizer
(``PreTrainedTokenizerFast.from_pretrained(dir)``).

Example format for decoder-only models (DESIGN.md)::

    <|idea|> woman portrait <|prompt|> portrait of a beautiful woman ... <|endoftext|>

The loss covers the prompt tokens and EOS; unconditional examples omit the idea part.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textopia.errors import TextopiaError
from textopia.text import strip_controls

EOS = "<|endoftext|>"
PAD = "<|pad|>"
IDEA = "<|idea|>"
PROMPT = "<|prompt|>"
SPECIAL_TOKENS = [EOS, PAD, IDEA, PROMPT]
IGNORE_INDEX = -100  # label value that the loss skips (transformers' convention)


def train_bpe(texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2):
    """Train a byte-level BPE (GPT-2 style, prefix space added) on ``texts``.

    Returns:
        a ``transformers.PreTrainedTokenizerFast`` with :data:`SPECIAL_TOKENS`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return _as_transformers(tok)


def _as_transformers(tok, **extra):
    """Wrap a ``tokenizers.Tokenizer`` as a transformers fast tokenizer with our special tokens."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=PAD,
        additional_special_tokens=[IDEA, PROMPT], model_max_length=1024, **extra,
    )


UNK = "<unk>"  # out-of-vocabulary word of word-level vocabularies (PTB's own spelling)


def train_word_level(texts: Iterable[str], vocab_size: int | None = None):
    """Build a word-level vocabulary: whitespace-separated words, the most frequent kept.

    Words are split on whitespace only (``WhitespaceSplit``, not ``Whitespace``, which would cut
    "mr." and "hydro-quebec" at punctuation), case and punctuation kept. Words outside the
    vocabulary map to ``<unk>``; a corpus that already spells its rare words ``<unk>`` (PTB)
    shares that id. Decoding joins words with single spaces.

    Args:
        texts: the training texts.
        vocab_size: entries in all, special tokens and ``<unk>`` included; None keeps every word.

    Returns:
        a ``transformers.PreTrainedTokenizerFast`` with :data:`SPECIAL_TOKENS` and ``<unk>``.
    """
    from collections import Counter

    from tokenizers import Tokenizer, models, pre_tokenizers

    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text.split())
    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, UNK])}
    # Most frequent first, ties alphabetical: the ids are a pure function of the word counts.
    # (Built here rather than by tokenizers' WordLevelTrainer, which leaves a hole in the ids
    # when the texts contain a special token such as PTB's "<unk>".)
    words = sorted((w for w in counts if w not in vocab), key=lambda w: (-counts[w], w))
    if vocab_size is not None:
        words = words[: max(0, vocab_size - len(vocab))]
    vocab.update({w: i for i, w in enumerate(words, start=len(vocab))})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens([*SPECIAL_TOKENS, UNK])
    return _as_transformers(tok, unk_token=UNK)


def load_hf_tokenizer(name_or_dir: str | Path):
    """Load a transformers tokenizer and add Textopia's special tokens to it.

    Raises:
        TextopiaError: nothing loadable is there.
    """
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(name_or_dir))
    except Exception as e:
        raise TextopiaError(f"cannot load a tokenizer from {name_or_dir}: {e}") from None
    extra = {}
    if tok.eos_token is None:
        extra["eos_token"] = EOS
    if tok.pad_token is None:
        extra["pad_token"] = PAD
    tok.add_special_tokens({**extra, "additional_special_tokens": [IDEA, PROMPT]})
    return tok


class LiteTokenizer:
    """An inference-only stand-in for transformers' ``PreTrainedTokenizerFast`` over the same
    ``tokenizer.json`` (the Rust ``tokenizers`` library alone), for writing prompts without the
    import time of transformers. Encodes and decodes exactly as the fast tokenizer does when its
    ``clean_up_tokenization_spaces`` is off (our tokenizers' setting; see :meth:`from_dir`).
    """

    def __init__(self, tok, eos_token: str, pad_token: str) -> None:
        self.backend_tokenizer = tok
        self.eos_token = eos_token
        self.pad_token = pad_token
        self.unk_token_id = None

    @classmethod
    def from_dir(cls, path: Path) -> "LiteTokenizer | None":
        """The lite tokenizer of a directory, or None where only transformers can load it exactly
        (another tokenizer class, clean-up of spaces on, or special tokens not as Textopia writes them).

        Raises:
            TextopiaError: the tokenizer file is corrupt.
        """
        import json

        try:
            config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if config.get("tokenizer_class") not in ("TokenizersBackend", "PreTrainedTokenizerFast"):
            return None
        if config.get("clean_up_tokenization_spaces"):
            return None
        eos, pad = config.get("eos_token"), config.get("pad_token")
        if not isinstance(eos, str) or not isinstance(pad, str):
            return None
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as e:
            raise TextopiaError(f"corrupt tokenizer in {path}: {e}") from None
        if any(tok.token_to_id(t) is None for t in (eos, pad, IDEA, PROMPT)):
            return None
        return cls(tok, eos, pad)

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.backend_tokenizer.token_to_id(token)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def __call__(self, texts: list[str], add_special_tokens: bool = False) -> dict[str, list[list[int]]]:
        encoded = self.backend_tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)
        return {"input_ids": [e.ids for e in encoded]}

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.backend_tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def save_pretrained(self, path: str) -> None:
        raise TextopiaError("a tokenizer loaded for inference only cannot be saved; load it with transformers")


class PromptTokenizer:
    """Textopia's view of a tokenizer: the special ids and the example layout.

    Attributes:
        hf: the underlying ``PreTrainedTokenizerFast``.
        eos_id, pad_id, idea_id, prompt_id: ids of the special tokens.
    """

    def __init__(self, hf) -> None:
        self.hf = hf
        self.eos_id = hf.convert_tokens_to_ids(hf.eos_token)
        self.pad_id = hf.convert_tokens_to_ids(hf.pad_token)
        self.idea_id = hf.convert_tokens_to_ids(IDEA)
        self.prompt_id = hf.convert_tokens_to_ids(PROMPT)
        unk = getattr(hf, "unk_token_id", None)
        if unk is not None and unk in (self.idea_id, self.prompt_id):
            raise TextopiaError("tokenizer lacks Textopia's special tokens <|idea|> and <|prompt|>")

    @classmethod
    def from_dir(cls, path: str | Path, *, lite: bool = False) -> "PromptTokenizer":
        """Load ``tokenizer.json`` (and its config) from a checkpoint or data directory.

        Args:
            lite: for inference, use :class:`LiteTokenizer` where it reads the files exactly
                (no transformers import); transformers' fast tokenizer otherwise.

        Raises:
            TextopiaError: the tokenizer file is missing or corrupt.
        """
        path = Path(path)
        if not (path / "tokenizer.json").is_file():
            raise TextopiaError(f"missing tokenizer file: {path / 'tokenizer.json'}")
        if lite:
            tok = LiteTokenizer.from_dir(path)
            if tok is not None:
                return cls(tok)
        from transformers import PreTrainedTokenizerFast

        try:
            hf = PreTrainedTokenizerFast.from_pretrained(str(path))
        except Exception as e:
            raise TextopiaError(f"corrupt tokenizer in {path}: {e}") from None
        return cls(hf)

    def save(self, path: str | Path) -> None:
        """Write ``tokenizer.json``, ``tokenizer_config.json`` and the special tokens map."""
        self.hf.save_pretrained(str(path))

    def __len__(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` as it appears after a space, no special tokens added.

        Control characters are dropped first (:func:`~textopia.text.strip_controls`): every text a
        model reads passes here (an idea, the beginning of a prompt to continue, from the CLI, the
        Python API and the service alike), and none of them is something to write a prompt from.
        """
        return self.hf.encode(" " + strip_controls(text).strip(), add_special_tokens=False)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """:meth:`encode` for many texts at once (the Rust tokenizer's batch path)."""
        return self.hf([" " + strip_controls(t).strip() for t in texts], add_special_tokens=False)["input_ids"]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` with special tokens dropped and surrounding space stripped."""
        return self.hf.decode(list(ids), skip_special_tokens=True).strip()

    def context_ids(self, idea: str | None, prompt_prefix: str | None = None) -> list[int]:
        """The ids the model is fed before it writes.

        ``expand``: ``<|idea|> idea <|prompt|>``; ``continue``: ``<|prompt|> prefix``;
        unconditional: ``<|prompt|>``.
        """
        ids: list[int] = []
        if idea:
            ids += [self.idea_id, *self.encode(idea)]
        ids.append(self.prompt_id)
        if prompt_prefix:
            ids += self.encode(prompt_prefix)
        return ids

    def example(
        self, prompt_ids: list[int], idea: str | None, max_length: int
    ) -> tuple[list[int], list[int]]:
        """One training example: ``(input_ids, labels)``, labels -100 outside prompt and EOS.

        The prompt is cut to fit ``max_length`` (then it has no EOS: it did not end there).
        """
        context = self.context_ids(idea)
        room = max_length - len(context)
        if room < 2:  # an idea too long for the window: drop it
            context = [self.prompt_id]
            room = max_length - 1
        body = prompt_ids + [self.eos_id]
        body = body[:room]
        input_ids = context + body
        labels = [IGNORE_INDEX] * len(context) + body
        return input_ids, labels
