"""The CLI end to end on a 2,000-prompt sample of the real corpus: prepare -> train -> eval -> generate."""

import json
import subprocess
import sys

import pytest

from tests.conftest import tiny_overrides
from textopia.cli import main


def test_prepare_train_eval_generate(sample_corpus, tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["prepare", str(sample_corpus), "--out", str(data), "--vocab-size", "800"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows_read"] == 2000 and summary["kept"] == sum(summary["splits"].values())
    assert (data / "tokenizer.json").is_file()

    run = tmp_path / "run"
    args = ["train", "--no-progress"]
    for kv in tiny_overrides(data, run):
        args += ["--set", kv]
    assert main(args) == 0
    capsys.readouterr()

    assert main(["eval", str(run), "--split", "test", "--json", "--unigram"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("ce_nats_per_token", "perplexity", "perplexity_per_word", "tokens", "words", "prompts"):
        assert key in report
    assert report["prompts"] == summary["splits"]["test"]
    assert report["perplexity"] < report["unigram"]["perplexity"] * 1.5

    assert main(["eval", str(run), "--data", str(sample_corpus), "--limit", "50", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prompts"] == 50

    assert main(["generate", "woman portrait", "-n", "3", "--seed", "0", "--model", str(run), "--json"]) == 0
    outs = json.loads(capsys.readouterr().out)
    assert len(outs) == 3 and all(o["prompt"] for o in outs)
    assert main(["generate", "woman portrait", "-n", "3", "--seed", "0", "--model", str(run)]) == 0
    assert capsys.readouterr().out.splitlines() == [o["prompt"] for o in outs]
    assert all(o["settings"]["known_words_only"] is False for o in outs)  # a GPT's default
    assert main(["generate", "woman portrait", "-n", "3", "--seed", "0", "--model", str(run), "--json",
                 "--known-words-only"]) == 0
    assert all(o["settings"]["known_words_only"] is True for o in json.loads(capsys.readouterr().out))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["prepare", "/nonexistent/prompts.txt", "--out", "OUT"], "corpus not found: /nonexistent/prompts.txt"),
        (["generate", "a cat", "--model", "no-such-model"], "unknown model 'no-such-model'"),
        (["eval", "/nonexistent/ckpt"], "unknown model '/nonexistent/ckpt'"),
        (["train", "--config", "/nonexistent.toml"], "config not found: /nonexistent.toml"),
    ],
)
def test_user_errors_are_one_line(argv, message, tmp_path):
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "textopia.cli", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("textopia: error: ") and message in lines[0]
    assert not (tmp_path / "out").exists()


def test_empty_idea_on_the_command_line(tiny_checkpoint):
    """An empty idea writes from nothing, as no idea does (and as the HTTP API does)."""
    run = lambda *idea: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "textopia.cli", "generate", *idea, "--model", str(tiny_checkpoint), "-n", "2",
         "--seed", "3", "--max-new-tokens", "20"], capture_output=True, text=True, timeout=120)
    empty, none = run(""), run()
    assert empty.returncode == 0 and "Traceback" not in empty.stderr
    assert empty.stdout == none.stdout and len(empty.stdout.splitlines()) == 2


def test_console_script_exits_with_mains_status_and_flushed_output(tiny_checkpoint, tmp_path):
    """``textopia`` (cli.entry) skips the interpreter's teardown: its output still arrives whole
    through a pipe, and its exit status is main's (0, or 2 for a user's mistake)."""
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-c", "from textopia.cli import entry; entry()", *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    ok = run("generate", "castle on a hill", "-n", "3", "--seed", "1", "--model", str(tiny_checkpoint), "--json")
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads(ok.stdout)) == 3
    bad = run("generate", "castle", "-n", "0", "--model", str(tiny_checkpoint))
    assert bad.returncode == 2 and bad.stderr.startswith("textopia: error: -n must be") and not bad.stdout


def test_help_examples_parse():
    """``textopia --help`` ends with examples; each one is a command line the parser accepts."""
    import shlex

    from textopia.cli import EPILOG, EXAMPLES, build_parser

    parser = build_parser()
    assert EXAMPLES
    for example, _ in EXAMPLES:
        assert example in EPILOG
        argv = shlex.split(example)
        assert argv[0] == "textopia"
        args = parser.parse_args(argv[1:])  # exits (SystemExit) on a stale flag or command
        assert args.command == argv[1]
