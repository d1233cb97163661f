"""``textopia generate --ideas-file IDEAS --out OUT --ray``: on a local Ray instance with two workers,
the records of the single-process run, byte for byte, even when a worker is killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from textopia.batch_generate import generate_file
from textopia.cli import main
from textopia.generation.loader import load

ray = pytest.importorskip("ray", reason="Ray Data is the ray extra: pip install -e '.[ray]'")

from textopia.integrations.ray_batch import SHARDS_SUFFIX, ShardWriter, generate_file_ray, shard_name  # noqa: E402

IDEAS = ["castle on a hill", "red fox in the snow", "woman portrait", "a lighthouse in a storm", "old fisherman",
         "jazz musician", "", "cyberpunk city at night", "a cute cat wearing a hat", "mountain lake at dawn",
         "steampunk airship", "an astronaut riding a horse", "forest spirit", "desert caravan", "robot gardener",
         "  ancient   library ", "dragon over a village", "underwater temple", "a bowl of ramen", "winter cabin",
         "knight in golden armour"]
#: Small and quick: one prompt per idea from two candidates.
N, SEED, BATCH = 1, 7, 4
SETTINGS = {"candidates": 2, "max_new_tokens": 40}


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with two worker CPUs and a small object store."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # CrashOnce travels to the workers by value
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def ideas_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ideas") / "ideas.txt"
    path.write_text("\n".join(IDEAS) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def expected(ideas_file: Path, tmp_path_factory) -> bytes:
    """What the single-process run writes."""
    out = tmp_path_factory.mktemp("single") / "prompts.jsonl"
    generate_file(load("default"), ideas_file, out, n=N, seed=SEED, settings=SETTINGS, batch_size=BATCH,
                  progress=False)
    return out.read_bytes()


class CrashOnce(ShardWriter):
    """A worker that dies (``os._exit``) on its first shard, once in the whole run (a marker file)."""

    marker = ""

    def __call__(self, batch):
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return super().__call__(batch)


def test_ray_writes_what_one_process_writes(local_ray, ideas_file: Path, expected: bytes, tmp_path: Path) -> None:
    out = tmp_path / "ray" / "prompts.jsonl"
    report = generate_file_ray("default", ideas_file, out.as_uri(), n=N, seed=SEED, settings=SETTINGS,  # fsspec URL
                               batch_size=BATCH, workers=2, progress=False)
    assert out.read_bytes() == expected
    assert report.ideas == 20 and report.written == 20 and report.skipped == 0 and report.prompts == 20
    assert sorted(p.name for p in out.parent.iterdir()) == ["prompts.jsonl"]  # no shards, no temporary files
    assert [json.loads(line)["seed"] for line in expected.splitlines()] == list(range(SEED, SEED + 20))
    again = generate_file_ray("default", ideas_file, str(out), n=N, seed=SEED, settings=SETTINGS, batch_size=BATCH,
                              progress=False)
    assert again.written == 0 and again.skipped == 20  # done already: nothing to do


def test_a_killed_worker_and_a_rerun_still_write_every_idea_once(local_ray, ideas_file: Path, expected: bytes,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "prompts.jsonl"
    # What an earlier run that stopped left: its first two shards, finished.
    lines = expected.decode("utf-8").splitlines(keepends=True)
    shards = tmp_path / ("prompts.jsonl" + SHARDS_SUFFIX)
    shards.mkdir()
    for shard in (0, 1):
        (shards / shard_name(shard)).write_text("".join(lines[shard * BATCH:(shard + 1) * BATCH]), encoding="utf-8")
    CrashOnce.marker = str(tmp_path / "crashed")
    report = generate_file_ray("default", ideas_file, str(out), n=N, seed=SEED, settings=SETTINGS, batch_size=BATCH,
                               workers=2, progress=False, writer=CrashOnce)
    assert Path(CrashOnce.marker).exists()  # a worker did die
    assert out.read_bytes() == expected  # every idea once, in order, the same prompts
    assert report.skipped == 2 * BATCH and report.written == 20 - 2 * BATCH and not shards.exists()


def test_cli_ray_matches_the_single_process_cli(local_ray, tmp_path: Path, capsys) -> None:
    ideas = tmp_path / "ideas.txt"
    ideas.write_text("castle on a hill\nred fox\nlighthouse\n", encoding="utf-8")
    common = ["generate", "--ideas-file", str(ideas), "-n", "1", "--seed", "3", "--candidates", "2",
              "--max-new-tokens", "30", "--batch-size", "2", "--json"]
    assert main([*common, "--out", str(tmp_path / "one.jsonl")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray.jsonl"), "--ray", "--ray-workers", "2"]) == 0
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["written"] == 3


def test_ray_missing_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    ideas = tmp_path / "ideas.txt"
    ideas.write_text("castle\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert main(["generate", "--ideas-file", str(ideas), "--out", str(tmp_path / "o.jsonl"), "--ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ray needs Ray Data" in err[0] and "pip install" in err[0]
    assert main(["generate", "castle", "--ray"]) == 2  # --ray is for files of ideas
    assert "go with --ideas-file" in capsys.readouterr().err


def test_the_core_never_imports_ray() -> None:
    code = ("import sys, textopia, textopia.cli, textopia.cli.write, textopia.batch_generate, textopia.serving.app, "
            "textopia.integrations.ray_batch; assert 'ray' not in sys.modules, 'ray imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
