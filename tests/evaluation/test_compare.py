"""The evaluation harness: ideas, the human reference, the report, and compare end to end."""

import json
import math

import pytest

from textopia.cli import main
from textopia.evaluation.compare import compare
from textopia.evaluation.ideas import (
    human_samples,
    ideas_from_prompts,
    load_ideas,
    read_ideas_file,
)
from textopia.evaluation.report import PLOTS, markdown_report
from textopia.generation.base import TextopiaError

HELD_OUT = [
    "a red castle on a hill, oil painting",
    "castles in the fog, red sky",
    "portrait of an old sailor, by rembrandt",
    "a cat sleeping on a red sofa",
    "the castle of a red king, matte painting",
    "two birds on a wire",
]


def test_ideas_are_derived_deterministically_and_distinct():
    a = ideas_from_prompts(HELD_OUT, num_ideas=4, seed=3)
    assert a == ideas_from_prompts(HELD_OUT, num_ideas=4, seed=3)
    assert len(a) == 4 and len({i.lower() for i, _ in a}) == 4
    assert all(src in HELD_OUT for _, src in a)
    assert len(ideas_from_prompts(HELD_OUT, num_ideas=100)) <= len(HELD_OUT)


def test_ideas_file(tmp_path):
    f = tmp_path / "ideas.txt"
    f.write_text("red castle\n\n  a   cat \nred castle\n")
    assert read_ideas_file(f) == ["red castle", "a cat"]
    assert load_ideas(f) == (["red castle", "a cat"], {})
    f.write_text("\n \n")
    with pytest.raises(TextopiaError, match="no ideas"):
        read_ideas_file(f)
    with pytest.raises(TextopiaError, match="not found"):
        read_ideas_file(tmp_path / "nope.txt")


def test_human_samples_hold_prompts_with_every_idea_word():
    groups = human_samples(["red castle", "sailor", "dragon", "birds"], HELD_OUT, n_per_idea=3,
                           sources={"birds": HELD_OUT[5]})
    # "castles" matches "castle" (stemmed); the sofa prompt has "red" but no castle.
    assert len(groups["red castle"]) == 3
    assert set(groups["red castle"]) <= {HELD_OUT[0], HELD_OUT[1], HELD_OUT[4]}
    assert groups["sailor"] == [HELD_OUT[2]]
    assert groups["dragon"] == []
    assert groups["birds"] == [HELD_OUT[5]]  # the source comes first and is not repeated
    assert groups == human_samples(["red castle", "sailor", "dragon", "birds"], HELD_OUT, n_per_idea=3,
                                   sources={"birds": HELD_OUT[5]})


def test_markdown_report_marks_missing_figures():
    results = {
        "settings": {"data_dir": "d", "split": "test", "ideas": "derived from test", "num_ideas": 1, "n_per_idea": 2,
                     "seed": 0, "likelihood_limit": None, "decoding": {}, "training_index": False,
                     "embedder": False, "clip_tokens": False},
        "rows": [
            {"name": "m", "info": {"parameters": 1234}, "likelihood": {"ce_nats_per_token": 2.0, "perplexity": math.e ** 2,
                                                                     "perplexity_per_word": 20.0, "tokens": 10, "prompts": 2},
             "text": {"distinct_1": 0.5, "self_bleu": math.nan, "relevance_recall": 0.25, "words_mean": 4.0}},
            {"name": "human", "info": {}, "likelihood": None, "text": {"distinct_1": 0.75}},
        ],
    }
    md = markdown_report(results)
    assert "| m | 1,234 | 2.0000 | 7.39 | 20.00 | 10 | 2 |" in md
    assert "| human | – | – | – | – | – | – |" in md
    assert "Novelty" not in md and "cosine" not in md and "CLIP tokens |" not in md


def test_compare_two_tiny_checkpoints_writes_every_output(tiny_checkpoint, tiny_lstm_checkpoint, prepared, tmp_path):
    out = tmp_path / "cmp"
    results = compare([str(tiny_checkpoint), str(tiny_lstm_checkpoint)], out, num_ideas=4, n_per_idea=3, seed=1,
                      likelihood_limit=20, embedder=None, device="cpu", decoding={"max_new_tokens": 24})
    for name in ("results.json", "results.md", *PLOTS):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "results.json").read_text())  # standard JSON: NaN written as null
    assert [r["name"] for r in saved["rows"]] == ["tiny", "tiny-lstm", "human"]
    assert len(saved["ideas"]) == 4 and saved["ideas"] == results["ideas"]
    gpt, lstm, human = saved["rows"]
    assert gpt["kind"] == "gpt" and lstm["kind"] == "lstm" and human["likelihood"] is None
    for row in (gpt, lstm):
        assert row["likelihood"]["prompts"] == 20 and row["likelihood"]["perplexity"] > 1
        assert list(row["samples"]) == saved["ideas"]  # the same ideas for every model
        for key in ("distinct_2", "div", "self_bleu", "relevance_recall", "train_verbatim_share",
                    "train_4gram_overlap", "words_mean", "clip_tokens_mean", "repetition_rate_1"):
            assert key in row["text"], key
        assert len(row["lengths"]["words"]) == len(row["lengths"]["clip_tokens"]) == row["text"]["n_samples"]
    assert human["text"]["relevance_recall"] == pytest.approx(1.0)
    md = (out / "results.md").read_text()
    assert "| tiny |" in md and "| tiny-lstm |" in md and "| human |" in md
    # The training index is cached beside the data, and the same seeds give the same samples.
    assert list(prepared.glob("train.4gram-index.*.npz"))
    again = compare([str(tiny_lstm_checkpoint)], tmp_path / "again", num_ideas=4, n_per_idea=3, seed=1,
                    likelihood_limit=0, embedder=None, clip_tokens=False, device="cpu",
                    decoding={"max_new_tokens": 24})
    assert again["rows"][0]["samples"] == results["rows"][1]["samples"]
    assert again["rows"][0]["likelihood"] is None


def test_cli_compare_and_eval_with_text_figures(tiny_checkpoint, tiny_lstm_checkpoint, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["compare", str(tiny_checkpoint), str(tiny_lstm_checkpoint), "--out", str(out), "--num-ideas", "2",
                 "--samples", "2", "--no-embedder", "--no-clip", "--likelihood-limit", "10",
                 "--max-new-tokens", "16"]) == 0
    printed = capsys.readouterr().out
    assert "## Diversity" in printed and "| human |" in printed
    assert all((out / name).is_file() for name in ("results.json", "results.md", *PLOTS))

    assert main(["eval", str(tiny_lstm_checkpoint), "--limit", "10", "--json", "--samples", "2", "--num-ideas", "2",
                 "--no-embedder", "--no-clip", "--max-new-tokens", "16"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("ce_nats_per_token", "perplexity", "perplexity_per_word", "tokens", "words", "prompts"):
        assert key in report, key
    assert report["prompts"] == 10 and report["text"]["n_ideas"] == 2 and "distinct_2" in report["text"]


def test_cli_compare_on_a_users_file_needs_no_data_dir(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    prompts = [f"a {animal} in a {place}, oil painting, highly detailed" for animal in ("red fox", "black cat", "owl")
               for place in ("forest", "castle garden", "snowy field")]
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps({"text": p, "id": i}) + "\n" for i, p in enumerate(prompts)))
    monkeypatch.chdir(tmp_path)  # nowhere near the data directory the model was trained on
    out = tmp_path / "out"
    assert main(["compare", str(tiny_checkpoint), "--data", str(data), "--column", "text", "--out", str(out),
                 "--num-ideas", "3", "--samples", "2", "--no-embedder", "--no-clip", "--no-novelty",
                 "--max-new-tokens", "16"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["data_file"] == str(data)
    assert results["rows"][0]["likelihood"]["prompts"] == len(prompts)
    assert all(any(w in " ".join(prompts) for w in idea.lower().split()) for idea in results["ideas"])
    human = results["rows"][-1]["samples"]
    assert all(p in prompts for group in human.values() for p in group)
    capsys.readouterr()
    assert main(["compare", str(tiny_checkpoint), "--data", str(tmp_path / "missing.txt"), "--out", str(out)]) != 0
    assert "data file not found" in capsys.readouterr().err
