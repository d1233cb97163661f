"""``textopia generate --ideas-file FILE --out FILE.jsonl``: in order, resumable, each idea once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textopia.batch_generate import generate_file, partial_path, read_ideas
from textopia.cli import main
from textopia.generation.base import TextopiaError
from tests.fakes import FakeGenerator

IDEAS = ["castle on a hill", "", "  red   fox ", "woman portrait", "lighthouse", "old fisherman", "jazz musician"]


@pytest.fixture
def ideas_file(tmp_path: Path) -> Path:
    path = tmp_path / "ideas.txt"
    path.write_text("\n".join(IDEAS) + "\n", encoding="utf-8")
    return path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_idea_in_order(ideas_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "prompts.jsonl"
    report = generate_file(FakeGenerator(), ideas_file, out, n=2, seed=10, settings={"temperature": 0.7},
                           batch_size=4, progress=False)
    records = _records(out)
    assert [r["idea"] for r in records] == ["castle on a hill", "red fox", "woman portrait", "lighthouse",
                                            "old fisherman", "jazz musician"]
    assert [r["line"] for r in records] == [1, 3, 4, 5, 6, 7]
    assert [r["seed"] for r in records] == [10, 11, 12, 13, 14, 15]
    assert all(len(r["prompts"]) == 2 and r["model"] == "fake" and r["settings"]["temperature"] == 0.7
               for r in records)
    assert report.written == 6 and report.skipped == 0 and report.prompts == 12 and report.ideas_per_s > 0
    assert not partial_path(out).exists()


def test_a_killed_run_resumes_and_writes_each_idea_once(ideas_file: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole.jsonl"
    generate_file(FakeGenerator(), ideas_file, whole, n=1, seed=0, progress=False)
    lines = whole.read_text(encoding="utf-8").splitlines(keepends=True)

    # What a kill leaves: three records and half of the fourth, in the partial file only.
    out = tmp_path / "resumed.jsonl"
    partial_path(out).write_text("".join(lines[:3]) + lines[3][:25], encoding="utf-8")
    fake = FakeGenerator()
    report = generate_file(fake, ideas_file, out, n=1, seed=0, progress=False)
    assert report.skipped == 3 and report.written == 3
    assert [c["idea"] for c in fake.calls] == ["lighthouse", "old fisherman", "jazz musician"]
    assert out.read_text(encoding="utf-8") == whole.read_text(encoding="utf-8")  # as if never killed

    # Done already: nothing to write. More ideas: only they are written.
    again = FakeGenerator()
    assert generate_file(again, ideas_file, out, n=1, seed=0, progress=False).written == 0 and not again.calls
    ideas_file.write_text(ideas_file.read_text() + "tiny robot\n", encoding="utf-8")
    more = FakeGenerator()
    assert generate_file(more, ideas_file, out, n=1, seed=0, progress=False).written == 1
    assert [r["idea"] for r in _records(out)][-2:] == ["jazz musician", "tiny robot"]


def test_a_partial_from_other_ideas_or_settings_is_refused(ideas_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    generate_file(FakeGenerator(), ideas_file, out, n=1, seed=0, progress=False)
    first_two = "".join(out.read_text().splitlines(keepends=True)[:2])
    partial_path(out).write_text(first_two)
    out.unlink()
    fake = FakeGenerator()
    with pytest.raises(TextopiaError, match=r"other settings \(n 1 there, 2 now\)"):
        generate_file(fake, ideas_file, out, n=2, seed=0, progress=False)
    with pytest.raises(TextopiaError, match="by model 'fake'"):
        generate_file(FakeGenerator(name="other"), ideas_file, out, n=1, seed=0, progress=False)
    other = tmp_path / "other.txt"
    other.write_text("something else\n")
    with pytest.raises(TextopiaError, match="other ideas"):
        generate_file(fake, other, out, n=1, seed=0, progress=False)
    assert not fake.calls and partial_path(out).read_text() == first_two  # nothing touched
    partial_path(out).write_text("garbage\n" + first_two)
    with pytest.raises(TextopiaError, match="line 1 is not a JSON record"):
        generate_file(fake, ideas_file, out, n=1, seed=0, progress=False)
    partial_path(out).unlink()
    out.write_text('{"text": "a prompt of my own"}\n')  # a JSON-lines file the user wrote: not ours
    with pytest.raises(TextopiaError, match="is not the output of `textopia generate --ideas-file`.*left alone"):
        generate_file(fake, ideas_file, out, n=1, seed=0, progress=False)
    assert out.read_text() == '{"text": "a prompt of my own"}\n' and not fake.calls


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 0}, "-n must be an integer from 1 to 64"),
    ({"settings": {"temperature": 0}}, r"temperature must be a number in \[0.05, 2\]"),
    ({"seed": -1}, "--seed must be an integer from 0 to 18,446,744,073,709,551,615"),
    ({"batch_size": 0}, "--batch-size must be >= 1"),
])
def test_bad_settings_fail_before_any_work(ideas_file: Path, tmp_path: Path, kwargs, message) -> None:
    fake = FakeGenerator()
    with pytest.raises(TextopiaError, match=message):
        generate_file(fake, ideas_file, tmp_path / "o.jsonl", progress=False, **kwargs)
    assert not fake.calls and not list(tmp_path.glob("o.jsonl*"))


def test_bad_ideas_files(tmp_path: Path) -> None:
    with pytest.raises(TextopiaError, match="not found"):
        read_ideas(tmp_path / "missing.txt")
    (tmp_path / "blank.txt").write_text("\n  \n")
    with pytest.raises(TextopiaError, match="holds no idea"):
        read_ideas(tmp_path / "blank.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(TextopiaError, match="not UTF-8"):
        read_ideas(tmp_path / "latin1.txt")


def test_cli_end_to_end(ideas_file: Path, tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    out = tmp_path / "cli.jsonl"
    args = ["generate", "--ideas-file", str(ideas_file), "--out", str(out), "--model", str(tiny_checkpoint),
            "-n", "2", "--seed", "0", "--max-new-tokens", "8", "--min-new-tokens", "1", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["written"] == 6 and report["prompts"] == len([p for r in _records(out) for p in r["prompts"]])
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["written"] == 0

    assert main(["generate", "--ideas-file", str(ideas_file)]) == 2
    assert capsys.readouterr().err.strip() == "textopia: error: --ideas-file and --out go together"
    assert main(["generate", "x", "--ideas-file", str(ideas_file), "--out", str(out)]) == 2
    assert main(["generate", "--ideas-file", str(tmp_path / "nope.txt"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().endswith("ideas file not found: " + str(tmp_path / "nope.txt"))


class _TooLong(FakeGenerator):
    """Refuses one idea as a model too short for it does (the text is too long)."""

    def generate_with(self, idea, n, settings, latent=None):
        if idea == "old fisherman":
            raise TextopiaError("the text is too long: 802 tokens, the model reads at most 128")
        return super().generate_with(idea, n, settings, latent)


def test_an_idea_the_model_refuses_is_named_by_its_line_and_the_ones_before_it_are_kept(ideas_file: Path,
                                                                                          tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    with pytest.raises(TextopiaError, match=r"ideas.txt, line 6: the text is too long.*the 4 ideas before it"):
        generate_file(_TooLong(), ideas_file, out, n=1, seed=0, batch_size=16, progress=False)
    assert [r["line"] for r in _records(partial_path(out))] == [1, 3, 4, 5]
    ideas_file.write_text(ideas_file.read_text().replace("old fisherman", "old sailor"), encoding="utf-8")
    fake = FakeGenerator()
    report = generate_file(fake, ideas_file, out, n=1, seed=0, batch_size=16, progress=False)
    assert report.skipped == 4 and [c["idea"] for c in fake.calls] == ["old sailor", "jazz musician"]
