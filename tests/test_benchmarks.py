"""Every registered benchmark runs at its smoke size and writes a result the schema reads back.

The benchmarks (``python -m benchmarks``, :mod:`benchmarks.harness`) are imported from the
repository root; their smoke sizes take seconds each on a 2-core CPU. A benchmark that names a
``corpus`` option reads the ``prepared`` fixture's 2,000-prompt corpus (from ../shared, in a
temporary folder).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import harness  # the checkout's package: pytest puts the repository root on the path

ROOT = Path(__file__).resolve().parents[1]

NAMES = sorted(harness.registry())


def test_list_names_every_benchmark():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT),
                                                                    os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--list"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    listed = {line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")}
    assert listed == set(NAMES)
    assert {"quality", "speed", "latency", "blind_judging", "load", "soak", "diffusion_speed", "critic_samples",
            "generate_ideas", "train_speed", "latent_eval", "diffusion_eval"} <= listed


def test_unknown_option_is_refused():
    with pytest.raises(KeyError, match="no option"):
        harness.registry()["latency"].options(overrides={"no_such_option": 1})


def test_set_values_take_the_defaults_type():
    assert harness.parse_value("1,8", (1, 8)) == (1, 8)
    assert harness.parse_value("false", True) is False
    assert harness.parse_value("0.5", 1.0) == 0.5
    assert harness.parse_value("", ()) == ()


@pytest.mark.parametrize("name", NAMES)
def test_smoke_run_writes_json_and_markdown(name, tmp_path, request):
    corpus = harness.registry()[name].corpus  # a prepared corpus the repository does not hold: conftest's small one
    result = harness.run(name, smoke=True, overrides={corpus: str(request.getfixturevalue("prepared"))} if corpus else {})
    json_path, md_path = harness.write(result, tmp_path)
    assert json_path == tmp_path / f"{name}.json" and md_path == tmp_path / f"{name}.md"
    back = harness.Result.from_json(json_path.read_text())
    assert back.benchmark == name and back.figures and back.seconds > 0 and back.timestamp.endswith("+00:00")
    assert back.options == json.loads(json.dumps(result.options))  # every option recorded, smoke sizes included
    assert back.options.items() >= json.loads(json.dumps(dict(harness.registry()[name].smoke))).items()
    assert {"cpu", "cpus", "torch"} <= back.machine.keys()
    text = md_path.read_text()
    assert text.startswith(f"# {name}\n") and "\nMachine: " in text and "|---|" in text
    assert not list(tmp_path.glob(".*.tmp"))  # the writer left no temporary file behind


def test_every_set_flag_applies(tmp_path):
    """``--set a=1 --set b=2`` sets both (a later flag once replaced the earlier ones)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT),
                                                                    os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, "-m", "benchmarks", "latency", "--smoke", "--out", str(tmp_path),
                    "--set", "n=2", "--set", "num_ideas=1"], cwd=ROOT, env=env, capture_output=True, text=True,
                   timeout=300, check=True)
    options = json.loads((tmp_path / "latency.json").read_text())["options"]
    assert options["n"] == [2] and options["num_ideas"] == 1


def test_critic_samples_writes_what_the_critic_trains_on(prepared, tmp_path):
    """``python -m benchmarks.critic_samples`` (the command configs/critic.toml names) writes the rows
    :class:`textopia.training.tasks.CriticTask` reads."""
    from textopia.evaluation.critic import read_samples

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT),
                                                                    os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, "-m", "benchmarks.critic_samples", "--data-dir", str(prepared), "--out",
                    str(tmp_path), "--train", "3", "--valid", "2"], cwd=ROOT, env=env, capture_output=True, text=True,
                   timeout=300, check=True)
    for split, rows in (("train", 3), ("valid", 2)):
        samples = read_samples(tmp_path / f"{split}.jsonl")
        assert len(samples) == rows and all(s.keys() == {"idea", "human", "sample"} for s in samples)
    assert harness.Result.from_json((tmp_path / "critic_samples.json").read_text()).options["samples_dir"] == str(tmp_path)


def test_blind_judging_sets_two_sources_side_by_side(tmp_path):
    """versus() counts, per judge, the ideas where the first source's keep beat the second's
    (ties a half), over the ideas both wrote for."""
    from benchmarks.blind_judging import versus

    key = [{"id": 1, "idea": "a", "source": "new"}, {"id": 2, "idea": "a", "source": "old"},
           {"id": 3, "idea": "b", "source": "new"}, {"id": 4, "idea": "b", "source": "old"},
           {"id": 5, "idea": "c", "source": "new"}, {"id": 6, "idea": "c", "source": "old"},
           {"id": 7, "idea": "d", "source": "new"}]
    (tmp_path / "key.json").write_text(json.dumps(key))
    (tmp_path / "judge1.csv").write_text("id,relevance,coherence,keep\n1,5,5,8\n2,5,5,6\n3,5,5,4\n4,5,5,7\n"
                                         "5,5,5,6\n6,5,5,6\n7,5,5,9\n")
    [row] = versus(tmp_path, [tmp_path / "judge1.csv"], "new", "old")
    assert (row["judge"], row["pairs"], row["first_higher"]) == ("judge1", 3, 1.5)
    assert row["share"] == 0.5
    # differences 2, -3, 0: mean -1/3, standard deviation sqrt(19/3), interval over the three ideas
    assert row["keep_diff"] == pytest.approx(-1 / 3)
    half = 1.96 * (19 / 3) ** 0.5 / 3 ** 0.5
    assert (row["keep_diff_low"], row["keep_diff_high"]) == (pytest.approx(-1 / 3 - half), pytest.approx(-1 / 3 + half))


def test_versus_averages_a_pool_and_sets_the_judges_together(tmp_path):
    """A source with several prompts for an idea counts with their mean keep; with two judges a
    row of the judges together takes each idea's difference averaged over them."""
    from benchmarks.blind_judging import versus

    key = [{"id": 1, "idea": "a", "source": "chosen"}, {"id": 2, "idea": "a", "source": "pool"},
           {"id": 3, "idea": "a", "source": "pool"}, {"id": 4, "idea": "b", "source": "chosen"},
           {"id": 5, "idea": "b", "source": "pool"}]
    (tmp_path / "key.json").write_text(json.dumps(key))
    (tmp_path / "j1.csv").write_text("id,relevance,coherence,keep\n1,5,5,6\n2,5,5,4\n3,5,5,7\n4,5,5,5\n5,5,5,5\n")
    (tmp_path / "j2.csv").write_text("id,relevance,coherence,keep\n1,5,5,8\n2,5,5,4\n3,5,5,4\n4,5,5,3\n5,5,5,6\n")
    one, two, together = versus(tmp_path, [tmp_path / "j1.csv", tmp_path / "j2.csv"], "chosen", "pool")
    assert (one["keep_diff"], one["first_higher"]) == (pytest.approx(0.25), 1.5)  # a: 6 - 5.5, b: 0 (a tie)
    assert (two["keep_diff"], two["first_higher"]) == (pytest.approx(0.5), 1.0)  # a: 8 - 4, b: -3
    assert together["judge"] == "judges together"
    assert (together["pairs"], together["keep_diff"]) == (2, pytest.approx((2.25 - 1.5) / 2))


def test_redact_takes_the_corpus_prompts_out_of_a_judged_folder(tmp_path):
    from benchmarks.blind_judging import REDACTED, assemble, redact

    (tmp_path / "model.json").write_text(json.dumps({"a fox": "a fox in snow, oil painting"}))
    (tmp_path / "human.json").write_text(json.dumps({"a fox": "a corpus prompt about a fox"}))
    assemble(str(tmp_path), [f"model={tmp_path / 'model.json'}", f"human={tmp_path / 'human.json'}"])
    redact(str(tmp_path))
    key = json.loads((tmp_path / "key.json").read_text())
    assert {it["source"]: it["prompt"] for it in key} == {"model": "a fox in snow, oil painting", "human": REDACTED}
    blind = (tmp_path / "blind.txt").read_text()
    assert "corpus prompt about" not in blind and "a fox in snow, oil painting" in blind and blind.count("idea: a fox") == 2


def test_lengths_centres_each_judges_standardised_scores_on_the_ideas_mean(tmp_path):
    """Per idea, the longer prompt scored lower sits below the idea's mean; human prompts and
    ideas with one model prompt are left out."""
    from benchmarks.blind_judging import lengths

    folder = tmp_path / "round"
    folder.mkdir()
    key = [{"id": 1, "idea": "a", "prompt": "one two three four five six seven eight nine", "source": "x"},
           {"id": 2, "idea": "a", "prompt": " ".join(["w"] * 30), "source": "y"},
           {"id": 3, "idea": "a", "prompt": " ".join(["h"] * 30), "source": "human"},
           {"id": 4, "idea": "b", "prompt": "one two three", "source": "x"},
           {"id": 5, "idea": "c", "prompt": "one two three four five six seven eight nine", "source": "x"},
           {"id": 6, "idea": "c", "prompt": " ".join(["w"] * 30), "source": "y"}]
    (folder / "key.json").write_text(json.dumps(key))
    (folder / "judge1.csv").write_text("id,relevance,coherence,keep\n1,9,8,7\n2,9,4,5\n3,9,9,9\n4,9,1,1\n"
                                       "5,9,7,8\n6,9,5,4\n")
    rows = {r["words"]: r for r in lengths(str(tmp_path), "4")}
    assert set(rows) == {"8-11", "28-31"} and rows["8-11"]["prompts"] == rows["28-31"]["prompts"] == 2
    assert rows["8-11"]["coherence"] > 0 > rows["28-31"]["coherence"]
    assert rows["8-11"]["coherence"] == -rows["28-31"]["coherence"]  # centred on each idea's mean
    assert rows["8-11"]["keep"] > 0 > rows["28-31"]["keep"]


def test_the_load_benchmarks_server_runs_the_textopia_its_client_imported(monkeypatch, tmp_path):
    """A run with ``PYTHONPATH=OTHER/src`` measures OTHER's service: the server's path starts with
    the sources of the ``textopia`` the benchmark imported, not the checkout beside it."""
    import types

    from benchmarks import load

    other = tmp_path / "other" / "src"
    (other / "textopia").mkdir(parents=True)
    monkeypatch.setitem(sys.modules, "textopia", types.SimpleNamespace(__file__=str(other / "textopia" / "__init__.py")))
    seen = {}
    monkeypatch.setattr(load.subprocess, "Popen", lambda cmd, env, cwd: seen.update(env=env, cwd=cwd))
    load.start_server(8123, fake=True)
    assert seen["env"]["PYTHONPATH"].split(os.pathsep)[:2] == [str(other.resolve()), str(load.ROOT)]


def test_the_ordered_floor_counts_the_same_products_as_the_shape_floor():
    """Both floors of speed.py time the same forward's products (four a layer and the output
    layer): seconds times GFLOP/s is the same work, whichever way the products are timed."""
    from benchmarks.speed import matmul_floor_s
    from textopia.models.gpt_engine import EngineConfig

    config = EngineConfig(vocab_size=64, n_positions=16, n_embd=8, n_layer=2, n_head=2)
    expected = 2 * 3 * (2 * (8 * 24 + 8 * 8 + 8 * 32 + 32 * 8) + 8 * 64) / 1e9  # 3 rows, per token
    for in_order in (False, True):
        seconds, gflops = matmul_floor_s(config, batch=3, new_tokens=5, repeats=2, in_order=in_order)
        assert seconds > 0
        assert seconds / 5 * gflops == pytest.approx(expected, rel=1e-6)


def test_write_passes_integer_settings_as_integers(tmp_path):
    """``blind_judging write MODEL OUT IDEAS candidates=64``: an integer setting reaches generate()
    as an int (the candidate budget refuses a float), a decimal one as a float."""
    from benchmarks.blind_judging import write

    (tmp_path / "ideas.txt").write_text("a red fox\n")
    write("default", str(tmp_path / "out.json"), tmp_path / "ideas.txt", "candidates=9", "temperature=0.9",
          "max_new_tokens=12")
    prompts = json.loads((tmp_path / "out.json").read_text())
    assert list(prompts) == ["a red fox"] and "fox" in prompts["a red fox"]
