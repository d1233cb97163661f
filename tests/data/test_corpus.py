import gzip
import json

import pytest

from textopia.data.corpus import (
    PrepareConfig,
    assign_split,
    iter_corpus,
    normalize_prompt,
    prepare,
    read_split,
)
from textopia.generation.base import TextopiaError


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("a cat,  8 k", "a cat, 8k"),
        ("castle, 4 K, unreal engine", "castle, 4K, unreal engine"),
        ("shot on 1 0 8 megapixels camera", "shot on 108 megapixels camera"),
        ("1 6 k wallpaper", "16k wallpaper"),
        ("  tabs\tand\nnewlines  ", "tabs and newlines"),
        ("35 mm lens, f 1.8", "35 mm lens, f 1.8"),  # a real two-digit number is left alone
        ("cafe\u0301", "caf\u00e9"),  # NFC
    ],
)
def test_normalize(raw, expected):
    assert normalize_prompt(raw) == expected


def test_split_is_deterministic_and_near_duplicates_share_it():
    texts = [f"a photo of a cat number {i}, 4k" for i in range(2000)]
    first = [assign_split(t, 0.1, 0.1) for t in texts]
    assert first == [assign_split(t, 0.1, 0.1) for t in texts]
    assert {"train", "valid", "test"} == set(first)
    share = first.count("test") / len(first)
    assert 0.05 < share < 0.15
    for t in texts[:200]:
        variant = t.upper().replace(",", " ,")
        assert assign_split(variant, 0.1, 0.1) == assign_split(t, 0.1, 0.1)


def test_prepare_summary_counts_every_row(tmp_path):
    src = tmp_path / "p.txt"
    lines = [
        "a red fox in the snow, 8 k",
        "a red fox in the snow,  8k",  # duplicate after normalisation
        "hi",  # too few words
        "1234 5678 , ,",  # no letters
        "x" * 2000,  # too long
        "",  # empty
        "a castle on a hill at dawn",
    ]
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    summary = prepare([str(src)], out, PrepareConfig(min_words=3))
    assert summary.rows_read == 7
    assert summary.kept == 2
    assert summary.dropped == {"duplicate": 1, "empty": 1, "no_letters": 1, "too_few_words": 1, "too_long_chars": 1}
    saved = json.loads((out / "summary.json").read_text())
    assert saved["kept"] == 2
    kept = sorted(read_split(out, "train") + read_split(out, "valid") + read_split(out, "test"))
    assert kept == ["a castle on a hill at dawn", "a red fox in the snow, 8k"]


def test_formats(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.csv").write_text('id,text\n1,"a cat, on a mat"\n2,a dog in a hat\n')
    (tmp_path / "a.jsonl").write_text('{"text": "a cat"}\n\n{"text": "a dog"}\n')
    pq.write_table(pa.table({"text": ["a cat", None, "a dog"]}), tmp_path / "a.parquet")
    with gzip.open(tmp_path / "a.txt.gz", "wt") as f:
        f.write("a cat\na dog\n")
    assert list(iter_corpus(str(tmp_path / "a.csv"), column="text")) == ["a cat, on a mat", "a dog in a hat"]
    assert list(iter_corpus(str(tmp_path / "a.jsonl"), column="text")) == ["a cat", "a dog"]
    assert list(iter_corpus(str(tmp_path / "a.parquet"), column="text")) == ["a cat", "", "a dog"]
    assert list(iter_corpus(str(tmp_path / "a.txt.gz"))) == ["a cat", "a dog"]
    # fsspec URLs go through the same path
    assert list(iter_corpus(f"file://{tmp_path / 'a.txt.gz'}")) == ["a cat", "a dog"]


def test_bad_inputs_name_the_problem_and_leave_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(TextopiaError, match="corpus not found: .*missing.txt"):
        prepare([str(tmp_path / "missing.txt")], out)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(TextopiaError, match="corpus is empty"):
        prepare([str(tmp_path / "empty.txt")], out)
    (tmp_path / "a.csv").write_text("id,text\n1,a cat on a mat\n")
    with pytest.raises(TextopiaError, match=r"a.csv: no column 'prompt'"):
        prepare([str(tmp_path / "a.csv")], out)
    (tmp_path / "bad.txt").write_bytes(b"a fine prompt here ok\nbad \xff\xfe bytes here now\n")
    with pytest.raises(TextopiaError, match=r"bad.txt: line 2 is not valid UTF-8 \(byte 0xff at column 5\)"):
        prepare([str(tmp_path / "bad.txt")], out)
    (tmp_path / "bad.jsonl").write_text('{"prompt": "ok ok ok ok"}\n{oops\n')
    with pytest.raises(TextopiaError, match="line 2 is not valid JSON"):
        prepare([str(tmp_path / "bad.jsonl")], out)
    assert not out.exists()
    assert list(tmp_path.glob(".out*")) == []  # no temporary leftovers


def test_failed_prepare_keeps_previous_output(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("a castle on a hill at dawn\n")
    out = tmp_path / "out"
    prepare([str(good)], out, PrepareConfig(valid_fraction=0, test_fraction=0))
    (tmp_path / "bad.txt").write_bytes(b"\xff\n")
    with pytest.raises(TextopiaError):
        prepare([str(tmp_path / "bad.txt")], out)
    assert read_split(out, "train") == ["a castle on a hill at dawn"]


def test_megabyte_line_is_dropped_and_counted(tmp_path):
    src = tmp_path / "big.txt"
    src.write_text("a castle on a hill at dawn\n" + "word " * 200_000 + "\n")
    summary = prepare([str(src)], tmp_path / "out")
    assert summary.dropped == {"too_long_chars": 1}
    assert summary.kept == 1


def test_prepare_writes_the_known_words_of_the_train_split(prepared):
    from collections import Counter

    from textopia.text import KNOWN_WORDS_FILE, MIN_KNOWN_COUNT, MIN_NAME_COUNT, KnownWords, credited_names, tokenize

    known = KnownWords.load(prepared / KNOWN_WORDS_FILE)
    lines = (prepared / "train.txt").read_text().splitlines()
    counts = Counter(w for line in lines for w in tokenize(line))
    assert known.words == {w for w, c in counts.items() if c >= MIN_KNOWN_COUNT}
    names = Counter(n for line in lines for n in set(credited_names(line)))
    assert known.names == {n for n, c in names.items() if c >= MIN_NAME_COUNT} and known.names
    assert "portrait" in known and len(known) > 100
    from textopia.text import MIN_CLAUSE_COUNT, clause_key, count_clauses

    clauses = count_clauses(lines)
    assert set(known.clauses.tolist()) == {k for k, c in clauses.items() if c >= MIN_CLAUSE_COUNT}
    assert len(known.clauses) and clause_key("highly detailed") in set(known.clauses.tolist())
    from textopia.text import count_subjects, misspelled

    subjects = count_subjects(lines)  # the subjects its prompts open with, for the writer's openings
    assert known.subjects == {s: c for s, c in subjects.items()
                              if c >= MIN_CLAUSE_COUNT and not any(misspelled(w, counts) for w in tokenize(s))}
    assert known.subjects
