"""SageMaker's training and processing contract, laid out in a temporary root.

The image's entry point (``python -m textopia.sagemaker``) runs as SageMaker runs it: ``train``
with nothing else, reading ``/opt/ml/...`` under ``TEXTOPIA_SAGEMAKER_ROOT``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tiny_overrides
from textopia.generation.base import TextopiaError
from textopia.training.sagemaker import SageMakerPaths, read_hyperparameters, training_arguments


def _job_root(tmp_path: Path, prepared: Path, hyperparameters: dict[str, str]) -> Path:
    """The tree SageMaker lays out for a training job with one ``train`` channel."""
    root = tmp_path / "root"
    shutil.copytree(prepared, root / "opt/ml/input/data/train")
    (root / "opt/ml/input/config").mkdir(parents=True)
    (root / "opt/ml/input/config/hyperparameters.json").write_text(json.dumps(hyperparameters))
    for folder in ("opt/ml/model", "opt/ml/checkpoints", "opt/ml/output"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    return root


def _tiny_hyperparameters(**extra: object) -> dict[str, str]:
    """The tiny GPT of ``tests/conftest.py`` as SageMaker sends hyperparameters: all strings."""
    values = dict(o.split("=", 1) for o in tiny_overrides(Path("unused"), Path("unused")))
    del values["data.dir"], values["train.out_dir"]  # the job's channel and checkpoint folder
    values.update({k: str(v) for k, v in extra.items()})
    values["sagemaker_region"] = '"eu-west-1"'  # what the SageMaker Python SDK adds; ignored
    return values


def _run_entry_point(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TEXTOPIA_SAGEMAKER_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    env.pop("SM_MODEL_DIR", None)
    return subprocess.run([sys.executable, "-m", "textopia.sagemaker", *args], env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_training_job_end_to_end_and_spot_resume(tmp_path: Path, prepared: Path) -> None:
    root = _job_root(tmp_path, prepared, _tiny_hyperparameters(**{"train.max_steps": 10, "train.save_every": 5}))
    first = _run_entry_point(root, "train")
    assert first.returncode == 0, first.stderr
    checkpoint = root / "opt/ml/checkpoints/run"
    assert json.loads((checkpoint / "trainer_state.json").read_text())["step"] == 10
    model_dir = root / "opt/ml/model"
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "config.json").is_file()
    assert not (model_dir / "trainer_state.json").exists()  # exported without optimizer state
    assert not (root / "opt/ml/output/failure").exists()

    # A spot interruption: the job restarts with the same checkpoint folder and a longer schedule.
    (root / "opt/ml/input/config/hyperparameters.json").write_text(
        json.dumps(_tiny_hyperparameters(**{"train.max_steps": 20, "train.save_every": 5})))
    second = _run_entry_point(root, "train")
    assert second.returncode == 0, second.stderr
    assert "resuming from" in second.stderr
    assert json.loads((checkpoint / "trainer_state.json").read_text())["step"] == 20
    steps = [json.loads(line).get("step") for line in (checkpoint / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and max(steps) == 20  # one log, continued, not restarted

    import textopia

    generator = textopia.load(str(model_dir))
    assert generator.generate("castle", 1, seed=0, max_new_tokens=8)


def test_training_job_failure_is_written_for_sagemaker(tmp_path: Path, prepared: Path) -> None:
    root = _job_root(tmp_path, prepared, {"train.no_such_setting": "1"})
    result = _run_entry_point(root, "train")
    assert result.returncode == 2
    reason = (root / "opt/ml/output/failure").read_text()
    assert "no_such_setting" in reason and reason.count("\n") == 1
    assert result.stderr.strip().splitlines()[-1].startswith("textopia: error: ")
    assert not any((root / "opt/ml/model").iterdir())


def test_processing_job_runs_prepare_and_reports_failures(tmp_path: Path, sample_corpus: Path) -> None:
    root = tmp_path / "root"
    corpus = root / "opt/ml/processing/input/corpus"
    corpus.mkdir(parents=True)
    shutil.copy(sample_corpus, corpus / "prompts.txt.gz")
    out = root / "opt/ml/processing/output/data"
    ok = _run_entry_point(root, "prepare", str(corpus / "prompts.txt.gz"), "--out", str(out),
                          "--vocab-size", "500", "--limit", "300")
    assert ok.returncode == 0, ok.stderr
    assert (out / "train.txt").is_file() and (out / "tokenizer.json").is_file()

    bad = _run_entry_point(root, "prepare", str(corpus / "missing.txt"), "--out", str(out))
    assert bad.returncode == 2
    assert "missing.txt" in (root / "opt/ml/output/message").read_text()


def test_hyperparameters_map_onto_settings(tmp_path: Path) -> None:
    root = tmp_path
    (root / "opt/ml/input/data/train").mkdir(parents=True)
    (root / "opt/ml/input/data/vae").mkdir(parents=True)
    paths = SageMakerPaths.from_env({"TEXTOPIA_SAGEMAKER_ROOT": str(root)})
    config, overrides = training_arguments(
        paths, {"config": '"configs/gpt-small.toml"', "train.max_steps": "7", "model.vae_checkpoint": "channel:vae",
                "sagemaker_program": "x"},
    )
    assert config == "configs/gpt-small.toml"
    assert overrides == [f"data.dir={root}/opt/ml/input/data/train", "train.max_steps=7",
                         f"model.vae_checkpoint={root}/opt/ml/input/data/vae",
                         f"train.out_dir={root}/opt/ml/checkpoints/run"]
    sm = SageMakerPaths.from_env({"TEXTOPIA_SAGEMAKER_ROOT": str(root), "SM_CHANNEL_TRAIN": "/elsewhere",
                                  "SM_MODEL_DIR": str(root / "m")})
    assert sm.model_dir == root / "m"
    with pytest.raises(TextopiaError, match="channel 'train' not found at /elsewhere"):
        training_arguments(sm, {})
    with pytest.raises(TextopiaError, match="unknown hyperparameter 'epochs'"):
        training_arguments(paths, {"epochs": "3"})
    with pytest.raises(TextopiaError, match="train.out_dir cannot be set"):
        training_arguments(paths, {"train.out_dir": "/tmp/x"})
    with pytest.raises(TextopiaError, match="channel 'missing' not found"):
        training_arguments(paths, {"model.vae_checkpoint": "channel:missing"})
    (root / "opt/ml/input/config").mkdir(parents=True)
    paths.hyperparameters.write_text("[1, 2]")
    with pytest.raises(TextopiaError, match="JSON object"):
        read_hyperparameters(paths)


def test_entry_point_serves_by_default_as_sagemaker_calls_it(tmp_path: Path) -> None:
    for args in (["serve", "--help"], ["--help"]):
        result = _run_entry_point(tmp_path, *args)
        assert result.returncode == 0 and "--port" in result.stdout
    dockerfile = (Path(__file__).resolve().parents[1] / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "textopia.sagemaker"]' in dockerfile
