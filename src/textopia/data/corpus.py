"""Corpus reading, normalisation, filtering, deduplication and the deterministic hash split.

``prepare`` turns a raw prompt corpus (text, CSV, JSONL or Parquet; local path or fsspec URL)
into ``train.txt`` / ``valid.txt`` / ``test.txt`` (one normalised prompt per line) and a
``summary.json`` that says how many rows were read, kept and dropped, and why.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import fsspec

from textopia.errors import TextopiaError
from textopia.io import atomic_dir, check_output_dir
from textopia.text import KNOWN_FILES, KNOWN_WORDS_FILE, KnownWords, count_clauses, count_names, count_subjects, count_words, dedup_key

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")

_WS = re.compile(r"\s+")
# "1 0 8 megapixels" -> "108 megapixels": runs of single digits separated by single spaces.
_SPACED_DIGITS = re.compile(r"(?<![\w.])\d(?: \d(?![\w.]))+")
# "8 k" -> "8k", "4 K" -> "4K": a number followed by a lone k (resolution).
_SPACED_K = re.compile(r"(?<![\w.])(\d+) ([kK])\b")
_LETTER = re.compile(r"[^\W\d_]")


def normalize_prompt(text: str) -> str:
    """Normalise one prompt: Unicode NFC, collapsed whitespace, spaced-out numbers rejoined.

    >>> normalize_prompt("portrait,  8 k , 1 0 8 megapixels")
    'portrait, 8k , 108 megapixels'
    """
    text = unicodedata.normalize("NFC", text)
    text = _WS.sub(" ", text).strip()
    text = _SPACED_DIGITS.sub(lambda m: m.group(0).replace(" ", ""), text)
    text = _SPACED_K.sub(r"\1\2", text)
    return text


#: The text that decides a prompt's split (:func:`textopia.text.dedup_key`): near-identical copies
#: ("A cat, 4k" and "a cat 4K") share a key and so a split.
split_key = dedup_key


def assign_split(text: str, valid_fraction: float, test_fraction: float, salt: str = "") -> str:
    """Deterministic split of a normalised prompt by a BLAKE2b hash of its :func:`split_key`."""
    digest = hashlib.blake2b((salt + split_key(text)).encode("utf-8"), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


@dataclass
class PrepareConfig:
    """Settings of ``textopia prepare`` (saved in ``summary.json``)."""

    column: str | None = None  # column holding the prompt (CSV, JSONL, Parquet); default "prompt"
    format: str | None = None  # "text", "csv", "jsonl", "parquet"; None guesses from the suffix
    min_words: int = 4  # drop prompts with fewer whitespace words
    max_words: int = 120  # drop prompts with more whitespace words
    max_chars: int = 1000  # drop longer lines (checked before normalising, so a 1 MB line is cheap)
    valid_fraction: float = 0.01  # share of prompts in the validation split
    test_fraction: float = 0.01  # share of prompts in the test split
    salt: str = ""  # changes the split without changing the data
    limit: int | None = None  # stop after this many rows read (for quick runs)

    def check(self) -> None:
        """Check the settings before any corpus is read.

        Raises:
            TextopiaError: a fraction outside [0, 1), fractions that leave no train split, word or
                character limits below 1 or in the wrong order, a limit below 1, or an unknown format.
        """
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise TextopiaError(f"{name} must be in [0, 1), got {value!r}")
        if self.valid_fraction + self.test_fraction >= 1:
            raise TextopiaError(f"valid_fraction + test_fraction must be below 1 (the rest is the train split), "
                                f"got {self.valid_fraction} + {self.test_fraction}")
        for name in ("min_words", "max_words", "max_chars"):
            if getattr(self, name) < 1:
                raise TextopiaError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_words < self.min_words:
            raise TextopiaError(f"max_words ({self.max_words}) is below min_words ({self.min_words})")
        if self.limit is not None and self.limit < 1:
            raise TextopiaError(f"limit must be at least 1, got {self.limit}")
        if self.format not in (None, "text", "csv", "jsonl", "parquet"):
            raise TextopiaError(f"unknown corpus format {self.format!r} (text, csv, jsonl, parquet)")


@dataclass
class PrepareSummary:
    """What ``prepare`` read, kept and dropped."""

    sources: list[str]
    rows_read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)


def _guess_format(path: str) -> str:
    name = path.lower()
    for suffix in (".gz", ".bz2", ".xz", ".zst"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(".csv") or name.endswith(".tsv"):
        return "csv"
    if name.endswith(".jsonl") or name.endswith(".ndjson") or name.endswith(".json"):
        return "jsonl"
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    return "text"


def check_source(path: str) -> None:
    """Check before reading that a corpus can be opened: a local file exists, or an fsspec URL's
    backend package is installed.

    Raises:
        TextopiaError: a missing local file, an unknown URL protocol, or a missing backend (the
            package to install is named, e.g. ``s3fs`` for ``s3://``).
    """
    protocol, _ = fsspec.core.split_protocol(path)
    if protocol in (None, "file", "local"):
        local = path.split("://", 1)[-1]
        if not Path(local).is_file():
            raise TextopiaError(f"corpus not found: {path}")
        return
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError as e:
        hint = " ".join(str(e).split())[:200]
        raise TextopiaError(f"reading {protocol}:// needs an fsspec backend that is not installed ({hint})") from None
    except ValueError:
        raise TextopiaError(f"unknown URL protocol {protocol!r} in {path}") from None


def _text_value(value: object, path: str, where: str, column: str) -> str:
    """A cell as a prompt: text or a number as is, empty for null; a list or an object is an error."""
    if value is None:
        return ""
    if isinstance(value, (list, dict, tuple)):
        kind = "an object" if isinstance(value, dict) else "a list"
        raise TextopiaError(f"{path}: {where}: column {column!r} holds {kind}, not text")
    return str(value)


def _iter_lines(path: str) -> Iterator[str]:
    """Decoded lines of a (possibly compressed) file, newline kept; a bad byte names its line."""
    try:
        f = fsspec.open(path, "rb", compression="infer").open()
    except FileNotFoundError:
        raise TextopiaError(f"corpus not found: {path}") from None
    except ImportError:  # the URL's fsspec backend (s3fs, aiohttp, ...) is missing
        check_source(path)
        raise
    except (OSError, ValueError) as e:
        raise TextopiaError(f"cannot open corpus {path}: {' '.join(str(e).split())[:300]}") from None
    try:
        for lineno, raw in enumerate(f, 1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TextopiaError(
                    f"{path}: line {lineno} is not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})"
                ) from None
    except (OSError, EOFError) as e:  # a truncated or corrupt gzip stream
        raise TextopiaError(f"cannot read corpus {path}: {e}") from None
    finally:
        f.close()


def iter_corpus(path: str, *, format: str | None = None, column: str | None = None) -> Iterator[str]:
    """Yield the raw prompt strings of a corpus file, in file order.

    Args:
        path: a local path or an fsspec URL (``s3://``, ``https://``, ...); ``.gz`` and other
            compressions are inferred from the suffix.
        format: ``"text"`` (one prompt per line), ``"csv"``, ``"jsonl"`` or ``"parquet"``;
            None guesses from the suffix.
        column: the column holding the prompt for CSV / JSONL / Parquet (default ``"prompt"``).

    Raises:
        TextopiaError: the file is missing or unreadable, is not UTF-8 (the line is named), or
            lacks the column.
    """
    fmt = format or _guess_format(path)
    col = column or "prompt"
    if fmt == "parquet":
        yield from _iter_parquet(path, col)
        return
    if fmt not in ("text", "csv", "jsonl"):
        raise TextopiaError(f"unknown corpus format {fmt!r} for {path} (text, csv, jsonl, parquet)")
    lines = _iter_lines(path)
    if fmt == "text":
        for line in lines:
            yield line.rstrip("\r\n")
    elif fmt == "jsonl":
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise TextopiaError(f"{path}: line {lineno} is not valid JSON ({e.msg})") from None
            if not isinstance(row, dict) or col not in row:
                raise TextopiaError(f"{path}: line {lineno} has no column {col!r}")
            yield _text_value(row[col], path, f"line {lineno}", col)
    else:
        name = path.lower().removesuffix(".gz")
        reader = csv.DictReader(lines, delimiter="\t" if name.endswith(".tsv") else ",")
        try:
            if reader.fieldnames is None or col not in reader.fieldnames:
                raise TextopiaError(f"{path}: no column {col!r} (columns: {', '.join(reader.fieldnames or [])})")
            for row in reader:
                yield row[col] or ""
        except csv.Error as e:
            raise TextopiaError(f"{path}: bad CSV near line {reader.line_num}: {e}") from None


def _iter_parquet(path: str, column: str) -> Iterator[str]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise TextopiaError("reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        with fsspec.open(path, "rb") as f:
            table = pq.ParquetFile(f)
            if column not in table.schema_arrow.names:
                raise TextopiaError(
                    f"{path}: no column {column!r} (columns: {', '.join(table.schema_arrow.names)})"
                )
            kind = table.schema_arrow.field(column).type
            if pa.types.is_nested(kind):
                raise TextopiaError(f"{path}: column {column!r} holds {kind}, not text")
            for batch in table.iter_batches(columns=[column]):
                for value in batch.column(0).to_pylist():
                    yield "" if value is None else str(value)
    except FileNotFoundError:
        raise TextopiaError(f"corpus not found: {path}") from None
    except ImportError:
        check_source(path)
        raise
    except TextopiaError:
        raise
    except Exception as e:  # pyarrow raises its own error types for corrupt files
        raise TextopiaError(f"cannot read Parquet file {path}: {' '.join(str(e).split())[:300]}") from None


def filter_reason(raw: str, text: str, config: PrepareConfig) -> str | None:
    """Why a prompt is dropped (``raw`` before and ``text`` after normalising), or None to keep it."""
    if len(raw) > config.max_chars:
        return "too_long_chars"
    if not text:
        return "empty"
    if not _LETTER.search(text):
        return "no_letters"
    words = text.count(" ") + 1
    if words < config.min_words:
        return "too_few_words"
    if words > config.max_words:
        return "too_many_words"
    return None


#: The names of the files a prepared corpus holds: its splits, summary, known words and tokenizer,
#: and the caches that training and evaluation write beside them (a split's token ids, its n-gram
#: index, and their temporary files), so that preparing it again never takes a file of the
#: user's with it.
PREPARED_ENTRIES = frozenset({*(f"{split}.txt" for split in SPLITS), "summary.json", *KNOWN_FILES, "tokenizer.json",
                              "tokenizer_config.json", "special_tokens_map.json"})
_SPLIT_CACHE = re.compile(r"\.?(?:train|valid|test)\..+\.(?:safetensors|npz)")


def prepared_entry(name: str) -> bool:
    """Whether :func:`prepare` or a cache of a split may have put an entry of this name in a
    prepared corpus (:data:`PREPARED_ENTRIES`)."""
    return name in PREPARED_ENTRIES or _SPLIT_CACHE.fullmatch(name) is not None


def is_prepared_dir(path: Path) -> bool:
    """Whether the directory ``path`` holds what :func:`prepare` writes: a ``summary.json``
    with the sources read and the splits' sizes."""
    try:
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and "sources" in summary and "splits" in summary


def prepare(
    sources: list[str],
    out_dir: str | Path,
    config: PrepareConfig | None = None,
    finish: Callable[[Path, dict[str, list[str]]], None] | None = None,
    *,
    overwrite: bool = False,
) -> PrepareSummary:
    """Read, normalise, filter, deduplicate and split corpora into ``out_dir``.

    Writes ``train.txt``, ``valid.txt``, ``test.txt`` and ``summary.json`` atomically: the
    directory appears complete or not at all. An existing prepared corpus there is replaced only
    on success; other files only with ``overwrite``; a folder holding a source never.

    Args:
        sources: corpus files or fsspec URLs; all are checked before the first is read.
        out_dir: the output directory.
        config: the settings, checked first (:meth:`PrepareConfig.check`).
        finish: called with the temporary directory and the splits' prompts before it is
            published, to add files (the tokenizer); if it raises, nothing is published.
        overwrite: replace whatever ``out_dir`` holds (see :func:`textopia.io.check_output_dir`).

    Raises:
        TextopiaError: bad settings; ``out_dir`` may not be replaced; a source is missing,
            unreadable, malformed or needs a package that is not installed; nothing survives
            filtering; or the train split is empty.
    """
    config = config or PrepareConfig()
    config.check()
    if not sources:
        raise TextopiaError("no corpus given")
    for source in sources:
        check_source(str(source))
    check_output_dir(out_dir, "prepared corpus", is_prepared_dir, overwrite=overwrite, inputs=sources,
                     own=prepared_entry)
    summary = PrepareSummary(sources=[str(s) for s in sources], config=asdict(config))
    dropped: Counter[str] = Counter()
    seen: set[bytes] = set()
    buckets: dict[str, list[str]] = {s: [] for s in SPLITS}
    for source in sources:
        for raw in iter_corpus(str(source), format=config.format, column=config.column):
            if config.limit is not None and summary.rows_read >= config.limit:
                break
            summary.rows_read += 1
            text = normalize_prompt(raw) if len(raw) <= config.max_chars else ""
            reason = filter_reason(raw, text, config)
            if reason is None:
                key = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
                if key in seen:
                    reason = "duplicate"
                else:
                    seen.add(key)
            if reason is not None:
                dropped[reason] += 1
                continue
            split = assign_split(text, config.valid_fraction, config.test_fraction, config.salt)
            buckets[split].append(text)
    summary.kept = sum(len(v) for v in buckets.values())
    summary.dropped = dict(sorted(dropped.items()))
    summary.splits = {s: len(v) for s, v in buckets.items()}
    if summary.rows_read == 0:
        raise TextopiaError(f"corpus is empty: {', '.join(map(str, sources))}")
    if summary.kept == 0:
        raise TextopiaError(
            f"no prompt survived filtering in {', '.join(map(str, sources))} (dropped: {summary.dropped})"
        )
    if not buckets["train"]:
        raise TextopiaError(f"the train split is empty ({summary.kept} prompts kept, splits: {summary.splits}); "
                            "lower valid_fraction / test_fraction or give more data")
    with atomic_dir(out_dir) as tmp:
        for split, lines in buckets.items():
            (tmp / f"{split}.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        (tmp / "summary.json").write_text(summary.to_json() + "\n", encoding="utf-8")
        # The words people use, the names they credit and the clauses they write: what the
        # reranker and the evaluation call known (not invented).
        train = buckets["train"]
        KnownWords.from_counts(count_words(train), name_counts=count_names(train),
                               clause_counts=count_clauses(train),
                               subject_counts=count_subjects(train)).save(tmp / KNOWN_WORDS_FILE)
        if finish is not None:
            finish(tmp, buckets)
    logger.info("prepared %s: %s", out_dir, summary.splits)
    return summary


def read_split(data_dir: str | Path, split: str) -> list[str]:
    """Read a prepared split (one prompt per line).

    Raises:
        TextopiaError: the split file is missing.
    """
    path = Path(data_dir) / f"{split}.txt"
    if not path.is_file():
        raise TextopiaError(f"split not found: {path} (run `textopia prepare` first)")
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line]


def load_prompts(path: str, *, format: str | None = None, column: str | None = None) -> list[str]:
    """Read any corpus file that :func:`prepare` reads, normalised, empty lines dropped."""
    out = [normalize_prompt(raw) for raw in iter_corpus(path, format=format, column=column)]
    return [t for t in out if t]


__all__ = [
    "PrepareConfig",
    "PrepareSummary",
    "assign_split",
    "check_source",
    "is_prepared_dir",
    "iter_corpus",
    "load_prompts",
    "normalize_prompt",
    "prepare",
    "read_split",
    "split_key",
]

