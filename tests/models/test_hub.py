"""Model cards (``README.md`` in an exported checkpoint) and ``textopia export --push-to-hub``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard, ModelCardData, metadata_load

from textopia.cli import main
from textopia.generation.loader import assets_dir
from textopia.models.hub import SHIPPED_CARDS, CardFacts, model_card

DEFAULT = assets_dir() / "default"


def _check_hub_metadata(path: Path, kind: str) -> ModelCard:
    """The card at ``path`` as the Hub reads it: front matter with the fields the Hub indexes."""
    card = ModelCard.load(path)
    meta = metadata_load(path)
    assert meta["pipeline_tag"] == "text-generation" and meta["license"] == "mit" and meta["language"] == "en"
    assert meta["library_name"] == "textopia" and {"textopia", kind} <= set(meta["tags"])
    assert ModelCardData(**card.data.to_dict()).to_dict() == card.data.to_dict()  # round trip
    text = path.read_text(encoding="utf-8")
    for section in ("## Model", "## Training", "## Evaluation", "## Intended use and limits"):
        assert section in text
    return card


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("textopia: error: ")
    return err[0]


def test_export_writes_a_card_with_the_eval_figures(tiny_checkpoint: Path, prepared: Path, tmp_path: Path,
                                                    capsys) -> None:
    assert main(["eval", str(tiny_checkpoint), "--data-dir", str(prepared), "--split", "test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    figures = tmp_path / "eval.json"
    figures.write_text(json.dumps(report))
    out = tmp_path / "shipped"
    assert main(["export", str(tiny_checkpoint), str(out), "--eval-json", str(figures),
                 "--eval-command", "textopia eval tiny --split test --json", "--train-command",
                 "textopia train --config configs/tiny.toml", "--dataset", "someone/prompts"]) == 0
    card = _check_hub_metadata(out / "README.md", "gpt")
    assert card.data.datasets == ["someone/prompts"] and card.data.model_name == "shipped"
    found = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert found == {"perplexity": round(report["perplexity"], 4),
                     "cross-entropy": round(report["ce_nats_per_token"], 4)}
    text = card.text
    assert "Command: `textopia train --config configs/tiny.toml`" in text
    row = next(line for line in text.splitlines() if line.startswith("| perplexity (per token) |"))
    assert float(row.split("|")[2].replace(",", "")) == pytest.approx(report["perplexity"], abs=0.01)
    assert f"| tokens | {report['tokens']:,} |" in text and "n_layer" in text and "Not measured" not in text


def test_a_card_without_figures_says_not_measured(tmp_path: Path) -> None:
    out = tmp_path / "plain"
    assert main(["export", str(DEFAULT), str(out)]) == 0
    card = _check_hub_metadata(out / "README.md", "gpt")
    assert "Not measured" in card.text and not card.data.eval_results and "perplexity (per token)" not in card.text
    out_dir = json.loads((DEFAULT / "config.json").read_text())["textopia"]["train"]["out_dir"]
    assert "Command: not recorded in the checkpoint" in card.text and f'out_dir = "{out_dir}"' in card.text


@pytest.mark.parametrize("content, message", [("not json", "is not JSON"), ('{"model": "x"}', "no figure in it")])
def test_a_bad_eval_report_fails_before_the_export(tmp_path: Path, capsys, content: str, message: str) -> None:
    figures = tmp_path / "eval.json"
    figures.write_text(content)
    assert main(["export", str(DEFAULT), str(tmp_path / "out"), "--eval-json", str(figures)]) == 2
    assert message in _one_line(capsys) and not (tmp_path / "out").exists()


def test_every_shipped_model_has_its_card_written_from_the_figures_file() -> None:
    table = {k: v for k, v in json.loads(SHIPPED_CARDS.read_text()).items() if not k.startswith("_")}
    shipped = sorted(p.name for p in assets_dir().iterdir() if (p / "config.json").is_file())
    assert sorted(table) == shipped
    for name, values in table.items():
        path = assets_dir() / name / "README.md"
        expected = str(model_card(path.parent, CardFacts.from_dict(values, name=name)))
        assert path.read_text(encoding="utf-8") == expected, \
            f"{path} is stale: rewrite the shipped cards with `python -m textopia.models.hub`"
        kind = json.loads((path.parent / "config.json").read_text())["textopia"]["kind"]
        card = _check_hub_metadata(path, kind)
        assert (card.data.eval_results is not None) == ("eval" in values)
    default = ModelCard.load(assets_dir() / "default" / "README.md")
    figures = table["default"]["eval"]
    assert {r.metric_type: r.metric_value for r in default.data.eval_results} == {
        "perplexity": figures["perplexity"], "cross-entropy": figures["ce_nats_per_token"]}
    assert table["default"]["train_command"] in default.text


def test_push_to_hub_uploads_the_exported_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        assert (Path(kwargs["folder_path"]) / "README.md").is_file()  # the card goes up with the weights
        calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        return type("CommitInfo", (), {"commit_url": "https://huggingface.co/me/tiny/commit/1"})()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    out = tmp_path / "export"
    assert main(["export", str(DEFAULT), str(out), "--push-to-hub", "me/tiny", "--private"]) == 0
    assert [(c[0], c[1]) for c in calls] == [("create_repo", "me/tiny"), ("upload_folder", "me/tiny")]
    assert calls[0][2]["exist_ok"] is True and calls[0][2]["private"] is True
    assert calls[1][2]["folder_path"] == str(out) and calls[1][2]["repo_type"] == "model"
    assert "https://huggingface.co/me/tiny/commit/1" in capsys.readouterr().err

    calls.clear()
    assert main(["export", str(DEFAULT), str(tmp_path / "bad"), "--push-to-hub", "not a repo id"]) == 2
    assert "--push-to-hub" in _one_line(capsys) and not calls and not (tmp_path / "bad").exists()
