"""Fault injection: every failure named in issue 15 gives one line, early, and loses nothing.

Interrupted checkpoint saves (through a wrapped ``os.replace``), outputs written where the user's
files are, untrusted checkpoint sizes, missing optional packages (a subprocess with the package
hidden), bad input to ``prepare``, ``eval`` and ``serve``, file modes and the service's security
headers.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, tiny_overrides
from textopia.cli import main
from textopia.generation.base import TextopiaError
from textopia.io import _process_start, atomic_dir, atomic_write_text, recover_dir

DEFAULT = ROOT / "src" / "textopia" / "assets" / "default"


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("textopia: error: ")]
    assert len(errors) == 1, err
    assert "Traceback" not in "\n".join(err)
    return errors[0]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------------------------
# Interrupted saves
# --------------------------------------------------------------------------------------------


class _ReplaceFaults:
    """Wraps ``os.replace``: calls touching ``name`` are counted; from call ``fail_from`` on they raise."""

    def __init__(self, name: str, fail_from: int) -> None:
        self.name, self.fail_from, self.calls = name, fail_from, 0
        self.real = os.replace

    def _touches(self, path) -> bool:
        name = Path(path).name
        return name == self.name or name.startswith(f".{self.name}.")

    def __call__(self, src, dst, *args, **kwargs):
        if self._touches(src) or self._touches(dst):
            self.calls += 1
            if self.calls >= self.fail_from:
                raise KeyboardInterrupt(f"simulated kill at os.replace call {self.calls}")
        return self.real(src, dst, *args, **kwargs)


def test_atomic_dir_interrupted_at_either_rename_keeps_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("old")
    for fail_from in (1, 2):  # path -> old, then tmp -> path (the restore fails too: a kill)
        faults = _ReplaceFaults("ckpt", fail_from)
        monkeypatch.setattr(os, "replace", faults)
        with pytest.raises(KeyboardInterrupt):
            with atomic_dir(target) as tmp:
                (tmp / "a.txt").write_text("new")
        monkeypatch.setattr(os, "replace", faults.real)
        recover_dir(target)
        assert (target / "a.txt").read_text() == "old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # nothing left over


def test_leftovers_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "run"
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
    dead, alive = _dead_pid(), os.getppid()
    started = _process_start(alive)  # a writer is its PID and its start time (clock ticks since boot)
    for name in (f".run.tmp-{dead}-abc", f".run.old-{dead}", f".run.tmp-{alive}-def",
                 f".run.tmp-{alive}.{started}-ghi", f".run.old-{alive}.{started + 1}"):
        (tmp_path / name).mkdir()
    assert recover_dir(target) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".run.tmp-{alive}-def", f".run.tmp-{alive}.{started}-ghi",
                                                          "run"]


def test_training_save_killed_between_the_renames_resumes_without_loss(prepared, tmp_path, monkeypatch, caplog):
    """The checkpoint hidden in .NAME.old-PID is found by --resume; the run ends as an uninterrupted one."""
    from textopia.models.checkpoint import load_checkpoint
    from textopia.training.config import load_config
    from textopia.models.checkpoint import weights_digest
    from textopia.training.trainer import train

    extra = {"train.max_steps": 8, "train.save_every": 4, "train.eval_every": 0, "data.train_limit": 64}
    straight = train(load_config(None, tiny_overrides(prepared, tmp_path / "a", **extra)), progress=False)
    config = load_config(None, tiny_overrides(prepared, tmp_path / "b", **extra))
    # calls touching "b": save at step 4 (tmp -> b), then at step 8: b -> .b.old-PID (3), tmp -> b (4) killed
    faults = _ReplaceFaults("b", fail_from=4)
    monkeypatch.setattr(os, "replace", faults)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    monkeypatch.setattr(os, "replace", faults.real)
    assert not (tmp_path / "b").exists()
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".b.")]
    assert any(name.startswith(".b.old-") for name in hidden)
    with caplog.at_level("WARNING"):
        resumed = train(config, resume=True, progress=False)
    assert "restored" in caplog.text and "no checkpoint" not in caplog.text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".b.")] == []
    state = json.loads((resumed / "trainer_state.json").read_text())
    assert state["step"] == 8
    a, _, _ = load_checkpoint(straight)
    b, _, _ = load_checkpoint(resumed)
    assert weights_digest(a) == weights_digest(b)


def test_a_leftover_whose_pid_now_names_another_live_process_is_restored(prepared, tmp_path, monkeypatch, caplog):
    """A save killed between its renames leaves ``.b.old-PID...``; after a restart another, live,
    process may hold that PID (containers number their processes from 1). --resume must still
    restore the checkpoint, not start from step 0."""
    from textopia.training.config import load_config
    from textopia.training.trainer import train

    extra = {"train.max_steps": 4, "train.save_every": 2, "train.eval_every": 0, "data.train_limit": 32}
    config = load_config(None, tiny_overrides(prepared, tmp_path / "b", **extra))
    faults = _ReplaceFaults("b", fail_from=4)  # the save at step 4: b -> .b.old-* (3), tmp -> b (4) killed
    monkeypatch.setattr(os, "replace", faults)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    monkeypatch.setattr(os, "replace", faults.real)
    [old] = [p for p in tmp_path.iterdir() if p.name.startswith(".b.old-")]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        # the same leftover, its writer's PID now another live process's
        old.rename(old.with_name(old.name.replace(f"-{os.getpid()}", f"-{other.pid}", 1)))
        with caplog.at_level("WARNING"):
            resumed = train(config, resume=True, progress=False)
    finally:
        other.kill()
        other.wait()
    assert "restored" in caplog.text and "no checkpoint" not in caplog.text
    assert json.loads((resumed / "trainer_state.json").read_text())["step"] == 4
    assert _hidden(tmp_path) == []


def test_resume_with_nothing_to_resume_says_so(prepared, tmp_path, caplog):
    args = [a for kv in tiny_overrides(prepared, tmp_path / "fresh", **{"train.max_steps": 1, "train.eval_every": 0})
            for a in ("--set", kv)]
    with caplog.at_level("WARNING"):
        assert main(["train", "--resume", "--no-progress", *args]) == 0
    assert "--resume: no checkpoint with trainer state" in caplog.text


# --------------------------------------------------------------------------------------------
# Untrusted checkpoint sizes
# --------------------------------------------------------------------------------------------


def _checkpoint_with(tmp_path: Path, **changes) -> Path:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for f in DEFAULT.iterdir():
        if f.name != "config.json":
            os.symlink(f, ckpt / f.name)
    config = json.loads((DEFAULT / "config.json").read_text())
    config.update(changes)
    (ckpt / "config.json").write_text(json.dumps(config))
    return ckpt


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_layer": 100_000}, "n_layer = 100000 is out of bounds"),
        ({"n_positions": 10**9}, "n_positions = 1000000000 is out of bounds"),
        ({"vocab_size": -1}, "vocab_size = -1 is out of bounds"),
        ({"n_embd": "wide"}, "n_embd must be an integer"),
        ({"n_layer": 256, "n_embd": 32_768, "n_head": 256}, "needs about .* GiB, more than"),
        ({"n_embd": 128, "n_head": 4}, r"transformer.wte.weight has shape \[8192, 256\] but .* gives \[8192, 128\]"),
        ({"vocab_size": 9000}, r"transformer.wte.weight has shape \[8192, 256\] but .* gives \[9000, 256\]"),
        ({"n_layer": 6}, "lacks .* tensors"),
    ],
)
def test_untrusted_checkpoint_sizes_fail_before_allocation(tmp_path, changes, message):
    from textopia.models.checkpoint import load_checkpoint

    ckpt = _checkpoint_with(tmp_path, **changes)
    started = time.monotonic()
    with pytest.raises(TextopiaError, match=message) as err:
        load_checkpoint(ckpt)
    assert time.monotonic() - started < 30 and "\n" not in str(err.value)


def test_huge_config_is_one_line_from_the_cli(tmp_path, capsys):
    ckpt = _checkpoint_with(tmp_path, n_layer=100_000)
    assert main(["eval", str(ckpt), "--data", str(ROOT / "README.md"), "--limit", "1"]) == 2
    assert "n_layer = 100000 is out of bounds (1 to 256)" in _one_error_line(capsys)


@pytest.mark.parametrize("garbage", [os.urandom(1 << 20), b"[" * 100_000, b'{"textopia": "' + b"x" * 100_000 + b'"}'],
                         ids=["1MB-random", "deep-nesting", "long-string"])
def test_garbage_config_gives_a_short_error(tmp_path, capsys, garbage):
    ckpt = _checkpoint_with(tmp_path)
    (ckpt / "config.json").write_bytes(garbage)
    assert main(["generate", "cat", "--model", str(ckpt)]) == 2
    line = _one_error_line(capsys)
    assert "corrupt checkpoint config" in line and len(line) < 400


def test_memory_budget_is_an_environment_setting(tmp_path, monkeypatch):
    from textopia.models.checkpoint import load_checkpoint

    monkeypatch.setenv("TEXTOPIA_MAX_MODEL_BYTES", "1000000")  # 1 MB: the 21 MB default model does not fit
    with pytest.raises(TextopiaError, match="TEXTOPIA_MAX_MODEL_BYTES"):
        load_checkpoint(DEFAULT)


# --------------------------------------------------------------------------------------------
# Damaged files: one line naming the file
# --------------------------------------------------------------------------------------------


def _copy_of(checkpoint: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(checkpoint, tmp_path / "copy"))


def _edit_weights(ckpt: Path, edit) -> None:
    """Rewrite ``model.safetensors`` with ``edit(name, tensor)`` applied to every tensor in place."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(ckpt / "model.safetensors"))
    for name, tensor in tensors.items():
        edit(name, tensor)
    save_file(tensors, str(ckpt / "model.safetensors"), metadata={"format": "pt"})


def test_truncated_weights_are_one_line_naming_the_file(tiny_checkpoint, tmp_path, capsys):
    ckpt = _copy_of(tiny_checkpoint, tmp_path)
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert main(["generate", "a cat", "--model", str(ckpt)]) == 2
    assert str(weights) in _one_error_line(capsys)
    assert main(["eval", str(ckpt), "--data", str(ROOT / "README.md"), "--limit", "2"]) == 2
    assert str(weights) in _one_error_line(capsys)


def test_non_finite_weights_are_refused_when_loaded(tiny_checkpoint, tmp_path, capsys):
    """NaN weights crashed ``generate`` (a traceback) and gave ``eval`` a NaN cross-entropy, exit 0."""
    ckpt = _copy_of(tiny_checkpoint, tmp_path)
    _edit_weights(ckpt, lambda name, t: t.fill_(float("nan")) if name.endswith("ln_f.weight") else None)
    assert main(["generate", "a cat", "--model", str(ckpt)]) == 2
    line = _one_error_line(capsys)
    assert str(ckpt / "model.safetensors") in line and "not finite" in line
    assert main(["eval", str(ckpt), "--data", str(ROOT / "README.md"), "--limit", "2"]) == 2
    assert "not finite" in _one_error_line(capsys)


def test_eval_fails_on_a_non_finite_result(tiny_checkpoint, tmp_path, capsys):
    """Finite weights whose logits overflow float32: the cross-entropy is not a number, and eval says so."""
    ckpt = _copy_of(tiny_checkpoint, tmp_path)
    _edit_weights(ckpt, lambda name, t: t.mul_(1e30) if name.endswith("wte.weight") else None)
    assert main(["eval", str(ckpt), "--data", str(ROOT / "README.md"), "--limit", "4", "--json"]) == 2
    assert "not finite" in _one_error_line(capsys)


@pytest.fixture(scope="module")
def resumable(prepared, tmp_path_factory) -> Path:
    """A tiny GPT run saved at step 2 of 4, with its trainer state."""
    from textopia.training.config import load_config
    from textopia.training.trainer import train

    out = tmp_path_factory.mktemp("resumable") / "run"
    train(load_config(None, tiny_overrides(prepared, out, **{"train.max_steps": 2, "train.eval_every": 0,
                                                             "data.train_limit": 32})), progress=False)
    return out


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _safetensors_edit(name: str, edit):
    def damage(path: Path) -> None:
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(path))
        edit(tensors)
        save_file(tensors, str(path))
    return name, damage


def _first_moment_nan(tensors) -> None:
    name = next(n for n in sorted(tensors) if n.endswith("exp_avg"))
    tensors[name] = tensors[name].fill_(float("nan"))


def _moment_reshaped(tensors) -> None:
    name = next(n for n in sorted(tensors) if n.endswith("exp_avg") and tensors[n].dim() == 2)
    tensors[name] = tensors[name].flatten()[:5].clone()


def _state_json(edit):
    def damage(path: Path) -> None:
        state = json.loads(path.read_text())
        edit(state)
        path.write_text(json.dumps(state))
    return "trainer_state.json", damage


@pytest.mark.parametrize(("name", "damage"), [
    ("trainer_state.json", _truncate),
    _state_json(lambda s: s.update(step="ten")),
    _state_json(lambda s: s.pop("optimizer")),
    _state_json(lambda s: s["optimizer"]["param_groups"].pop()),
    ("optimizer.safetensors", _truncate),
    ("optimizer.safetensors", Path.unlink),
    _safetensors_edit("optimizer.safetensors", _first_moment_nan),
    _safetensors_edit("optimizer.safetensors", _moment_reshaped),
    ("rng_state.safetensors", _truncate),
    _safetensors_edit("rng_state.safetensors", lambda t: t.update({"0.torch": t["0.torch"][:100].clone()})),
    _safetensors_edit("rng_state.safetensors", lambda t: t.update({"0.python": t["0.python"][:10].clone()})),
    ("model.safetensors", _truncate),
    _safetensors_edit("model.safetensors", lambda t: t["transformer.ln_f.weight"].fill_(float("nan"))),
], ids=["state-truncated", "state-step-text", "state-no-optimizer", "state-param-group-lost", "optimizer-truncated",
        "optimizer-missing", "optimizer-nan", "optimizer-shape", "rng-truncated", "rng-torch-short", "rng-python-short",
        "weights-truncated", "weights-nan"])
def test_resume_from_a_damaged_file_is_one_line_naming_it(prepared, resumable, tmp_path, capsys, name, damage):
    """Each file of a checkpoint that --resume reads, damaged: one line naming it, before any training."""
    import shutil

    out = Path(shutil.copytree(resumable, tmp_path / "run"))
    damage(out / name)
    log = (out / "metrics.jsonl").read_text()
    args = [a for kv in tiny_overrides(prepared, out, **{"train.max_steps": 4, "train.eval_every": 0,
                                                         "data.train_limit": 32}) for a in ("--set", kv)]
    assert main(["train", "--no-progress", "--resume", *args]) == 2
    assert str(out / name) in _one_error_line(capsys)
    assert (out / "metrics.jsonl").read_text() == log  # nothing trained


# --------------------------------------------------------------------------------------------
# Outputs never destroy what the user did not make
# --------------------------------------------------------------------------------------------


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _precious(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "important.txt").write_text("precious")
    return folder / "important.txt"


def test_prepare_refuses_a_folder_of_other_files_unless_told(tmp_path, user_file, capsys):
    out = tmp_path / "u"
    mine = _precious(out)
    assert main(["prepare", str(user_file), "--out", str(out), "--no-tokenizer"]) == 2
    assert "--overwrite" in _one_error_line(capsys)
    assert mine.read_text() == "precious" and sorted(p.name for p in out.iterdir()) == ["important.txt"]
    assert main(["prepare", str(user_file), "--out", str(out), "--no-tokenizer", "--overwrite"]) == 0
    assert (out / "summary.json").is_file() and not mine.exists()
    assert _hidden(tmp_path) == []


def test_prepare_replaces_its_own_output_and_an_empty_folder(tmp_path, user_file):
    out = tmp_path / "data"
    out.mkdir()
    for _ in range(2):
        assert main(["prepare", str(user_file), "--out", str(out), "--no-tokenizer"]) == 0
        assert (out / "train.txt").is_file()
    assert _hidden(tmp_path) == []


def test_prepare_again_keeps_a_users_file_beside_its_output(tmp_path, user_file, capsys):
    """A rerun onto an earlier corpus replaces it, caches and all, but not with a file of the user's
    (or a checkpoint trained into it) beside it: that needs --overwrite."""
    out = tmp_path / "data"
    assert main(["prepare", str(user_file), "--out", str(out), "--no-tokenizer"]) == 0
    (out / "train.500.ids.safetensors").write_bytes(b"cache")  # what training caches there
    assert main(["prepare", str(user_file), "--out", str(out), "--no-tokenizer"]) == 0
    mine = _precious(out)
    (out / "run").mkdir()
    assert main(["prepare", str(user_file), "--out", str(out), "--no-tokenizer"]) == 2
    assert "'important.txt' and 1 more" in _one_error_line(capsys)
    assert mine.read_text() == "precious" and (out / "run").is_dir()
    assert main(["prepare", str(user_file), "--out", str(out), "--no-tokenizer", "--overwrite"]) == 0
    assert not mine.exists() and _hidden(tmp_path) == []


def test_a_checkpoint_is_not_replaced_with_a_users_file_beside_it(tmp_path, capsys):
    dst = tmp_path / "e"
    assert main(["export", str(DEFAULT), str(dst)]) == 0
    mine = dst / "notes.txt"
    mine.write_text("what I changed")
    assert main(["export", str(DEFAULT), str(dst)]) == 2
    assert "'notes.txt'" in _one_error_line(capsys)
    assert mine.read_text() == "what I changed"


def test_export_never_replaces_a_training_run_unless_told(prepared, tmp_path, capsys):
    """Export's arguments the wrong way round: the run's trainer state (what --resume reads) is
    not replaced by a checkpoint without it."""
    run = tmp_path / "run"
    args = [a for kv in tiny_overrides(prepared, run, **{"train.max_steps": 1, "train.eval_every": 0,
                                                          "data.train_limit": 16}) for a in ("--set", kv)]
    assert main(["train", "--no-progress", *args]) == 0
    state = (run / "trainer_state.json").read_text()
    assert main(["export", str(DEFAULT), str(run)]) == 2
    assert "--resume" in _one_error_line(capsys) and (run / "trainer_state.json").read_text() == state
    assert main(["export", str(DEFAULT), str(run), "--overwrite"]) == 0
    assert not (run / "trainer_state.json").exists()


def test_a_fresh_run_keeps_the_old_checkpoints_log_until_it_saves(prepared, tmp_path, monkeypatch):
    """A new run (no --resume) in a folder holding a checkpoint, stopped before its first save:
    the old checkpoint is still whole, its training log included."""
    from textopia.training import trainer

    out = tmp_path / "r"
    args = [a for kv in tiny_overrides(prepared, out, **{"train.max_steps": 2, "train.eval_every": 0,
                                                          "data.train_limit": 16}) for a in ("--set", kv)]
    assert main(["train", "--no-progress", *args]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert before["metrics.jsonl"]

    def killed(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "save_checkpoint", killed)
    assert main(["train", "--no-progress", *args]) == 130
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    monkeypatch.undo()
    assert main(["train", "--no-progress", *args]) == 0  # saved: its own log from there on
    assert (out / "metrics.jsonl").read_text() != before["metrics.jsonl"].decode()


@pytest.mark.parametrize("where", [".", ".."])
def test_prepare_never_writes_over_its_corpus(tmp_path, capsys, where):
    corpus = tmp_path / "c" / "mine.txt"
    corpus.parent.mkdir()
    corpus.write_text("a castle on a hill at dawn, matte painting\na red fox in the snow, wildlife photography\n")
    out = (corpus.parent / where).resolve()
    for extra in ([], ["--overwrite"]):
        assert main(["prepare", str(corpus), "--out", str(out), "--no-tokenizer", *extra]) == 2
        assert "mine.txt" in _one_error_line(capsys)
        assert corpus.is_file()


def test_a_file_at_the_output_is_kept_unless_told_and_leaves_nothing_hidden(tmp_path, user_file, capsys):
    out = tmp_path / "f"
    out.write_text("precious")
    assert main(["prepare", str(user_file), "--out", str(out), "--no-tokenizer"]) == 2
    assert "--overwrite" in _one_error_line(capsys)
    assert out.read_text() == "precious"
    assert main(["prepare", str(user_file), "--out", str(out), "--no-tokenizer", "--overwrite"]) == 0
    assert (out / "train.txt").is_file()
    assert _hidden(tmp_path) == []


def test_export_refuses_a_folder_of_other_files_and_replaces_a_checkpoint(tmp_path, capsys):
    dst = tmp_path / "e"
    mine = _precious(dst)
    assert main(["export", str(DEFAULT), str(dst)]) == 2
    assert "--overwrite" in _one_error_line(capsys)
    assert sorted(p.name for p in dst.iterdir()) == ["important.txt"]
    assert main(["export", str(DEFAULT), str(dst), "--overwrite"]) == 0
    assert not mine.exists() and (dst / "config.json").is_file()
    assert main(["export", str(DEFAULT), str(dst)]) == 0  # a checkpoint: replaced
    assert main(["export", str(dst), str(tmp_path), "--overwrite"]) == 2  # would delete its own input
    assert "holds the input" in _one_error_line(capsys)
    assert (dst / "model.safetensors").is_file() and _hidden(tmp_path) == []


def test_train_refuses_a_folder_of_other_files_and_resumes_its_own(prepared, tmp_path, capsys):
    out = tmp_path / "r"
    mine = _precious(out)
    args = [a for kv in tiny_overrides(prepared, out, **{"train.max_steps": 2, "train.save_every": 0,
                                                          "train.eval_every": 0, "data.train_limit": 32})
            for a in ("--set", kv)]
    assert main(["train", "--no-progress", *args]) == 2
    assert "--overwrite" in _one_error_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["important.txt"]
    assert main(["train", "--no-progress", "--overwrite", *args]) == 0
    assert not mine.exists() and (out / "trainer_state.json").is_file()
    assert main(["train", "--no-progress", "--resume", *args]) == 0  # its own checkpoint
    for name in list(out.iterdir()):  # a run stopped before its first save leaves only its log
        if name.name != "metrics.jsonl":
            name.unlink()
    assert main(["train", "--no-progress", *args]) == 0
    args = [a for kv in tiny_overrides(prepared, prepared, **{"train.max_steps": 1}) for a in ("--set", kv)]
    assert main(["train", "--no-progress", "--overwrite", *args]) == 2  # the data's own folder
    assert "holds the input" in _one_error_line(capsys)
    assert (prepared / "train.txt").is_file() and _hidden(tmp_path) == []


# --------------------------------------------------------------------------------------------
# Missing optional packages: a subprocess with the package hidden
# --------------------------------------------------------------------------------------------


def _run_hidden(hidden: list[str], argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    code = ("import sys\n"
            f"for name in {hidden!r}:\n    sys.modules[name] = None  # import raises ImportError\n"
            "from textopia.cli import main\n"
            f"sys.exit(main({argv!r}))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def user_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("user") / "mine.txt"
    path.write_text("a castle on a hill at dawn, matte painting\nportrait of an old fisherman, oil on canvas\n"
                    "a red fox in the snow, wildlife photography\n")
    return path


@pytest.mark.parametrize(
    ("hidden", "argv", "message"),
    [
        (["sacrebleu"], ["eval", "default", "--data", "{file}", "--samples", "2"],
         "missing package for the text figures: sacrebleu (pip install 'textopia[eval]')"),
        (["matplotlib"], ["compare", "default", "--data", "{file}", "--out", "{out}"],
         "missing package for the text figures and plots: matplotlib (pip install 'textopia[eval]')"),
        (["sacrebleu"], ["eval", "vae", "--data", "{file}"], "missing package for the reconstruction BLEU"),
        (["fastapi"], ["serve"], "missing package for textopia serve: fastapi (pip install 'textopia[serve]')"),
        (["s3fs"], ["prepare", "s3://bucket/prompts.txt", "--out", "{out}"], "reading s3:// needs an fsspec backend"),
        (["aiohttp"], ["prepare", "https://example.com/p.txt", "--out", "{out}"], "reading https:// needs an fsspec backend"),
    ],
)
def test_missing_packages_fail_first_with_the_extra_named(tmp_path, user_file, hidden, argv, message):
    out = tmp_path / "out"
    argv = [a.format(file=user_file, out=out) for a in argv]
    started = time.monotonic()
    proc = _run_hidden(hidden, argv, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("textopia: error: ") and message in lines[-1], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not out.exists()  # nothing written, nothing half-done
    assert time.monotonic() - started < 120


# --------------------------------------------------------------------------------------------
# Bad input to prepare, eval and serve
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--vocab-size", "-5"], "--vocab-size must be between 260"),
        (["--valid-fraction", "2.0"], "valid_fraction must be in [0, 1), got 2.0"),
        (["--valid-fraction", "0.6", "--test-fraction", "0.5"], "valid_fraction + test_fraction must be below 1"),
        (["--min-words", "0"], "min_words must be at least 1"),
    ],
)
def test_prepare_refuses_bad_settings_before_reading(tmp_path, user_file, capsys, extra, message):
    out = tmp_path / "data"
    assert main(["prepare", str(user_file), "--out", str(out), *extra]) == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize(("value", "kind"), [(["a", "b"], "a list"), ({"text": "a cat"}, "an object")])
def test_jsonl_columns_must_hold_text(tmp_path, capsys, value, kind):
    corpus = tmp_path / "rows.jsonl"
    corpus.write_text(json.dumps({"prompt": "a fine castle on a hill"}) + "\n" + json.dumps({"prompt": value}) + "\n")
    assert main(["prepare", str(corpus), "--out", str(tmp_path / "data")]) == 2
    assert f"rows.jsonl: line 2: column 'prompt' holds {kind}, not text" in _one_error_line(capsys)
    assert not (tmp_path / "data").exists()


def test_a_missing_second_source_fails_before_the_first_is_read(tmp_path, user_file, capsys):
    assert main(["prepare", str(user_file), str(tmp_path / "nope.txt"), "--out", str(tmp_path / "data")]) == 2
    assert "corpus not found" in _one_error_line(capsys)


def test_prepare_writes_the_tokenizer_with_the_splits(tmp_path, sample_corpus):
    out = tmp_path / "data"
    assert main(["prepare", str(sample_corpus), "--out", str(out), "--vocab-size", "300", "--limit", "300"]) == 0
    assert {"train.txt", "tokenizer.json", "summary.json"} <= {p.name for p in out.iterdir()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_serve_with_a_bad_model_path_is_one_line(tmp_path, capsys):
    pytest.importorskip("fastapi")
    assert main(["serve", "--models", str(tmp_path / "missing")]) == 2
    assert "unknown model" in _one_error_line(capsys)
    (tmp_path / "empty").mkdir()
    assert main(["serve", "--models", str(tmp_path / "empty")]) == 2
    assert "missing file in checkpoint" in _one_error_line(capsys)
    ckpt = _checkpoint_with(tmp_path, n_embd=128, n_head=4)  # loads only in the lifespan: checked before
    assert main(["serve", "--models", str(ckpt)]) == 2
    assert "transformer.wte.weight has shape" in _one_error_line(capsys)


def test_compare_checks_every_model_before_the_first_ones_work(tmp_path, user_file, capsys):
    ckpt = _checkpoint_with(tmp_path, vocab_size=9000)
    out = tmp_path / "cmp"
    started = time.monotonic()
    assert main(["compare", "default", str(ckpt), "--data", str(user_file), "--out", str(out)]) == 2
    assert "gives [9000, 256]" in _one_error_line(capsys)
    assert not out.exists() and time.monotonic() - started < 60


def test_compare_does_not_replace_a_users_file_in_its_out_directory(tmp_path, user_file, capsys):
    from textopia.evaluation.report import check_results_dir

    out = tmp_path / "notes"
    out.mkdir()
    (out / "results.md").write_text("my own notes\n")
    started = time.monotonic()
    assert main(["compare", "default", "--data", str(user_file), "--out", str(out)]) == 2
    assert "holds results.md, which is not a comparison's: not replaced (--overwrite replaces it)" in _one_error_line(capsys)
    assert (out / "results.md").read_text() == "my own notes\n" and time.monotonic() - started < 60
    check_results_dir(out, overwrite=True)  # the user's say-so
    (out / "results.json").write_text(json.dumps({"settings": {}, "ideas": [], "rows": []}))
    check_results_dir(out)  # an earlier comparison: a rerun replaces it
    check_results_dir(tmp_path / "absent")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.csv").write_text("x\n")
    check_results_dir(tmp_path / "other")  # files of other names are left alone


def test_eval_derives_ideas_from_the_data_file_without_the_training_data(tmp_path, user_file, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default model's data directory (data/sd) does not exist here
    assert main(["eval", "default", "--data", str(user_file), "--samples", "1", "--num-ideas", "2",
                 "--no-embedder", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["text_settings"]["ideas"] == f"derived from {user_file}"
    words = set(user_file.read_text().lower().replace(",", " ").split())
    assert all(set(idea.lower().split()) <= words for idea in report["samples"])


def test_clip_counts_work_offline_from_anywhere(tmp_path, monkeypatch):
    from textopia.evaluation.metrics import clip_tokens

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(clip_tokens.CLIP_BPE_ENV, raising=False)
    assert clip_tokens.count_clip_tokens("a photo of a cat") == 5


# --------------------------------------------------------------------------------------------
# Small things: file modes, security headers
# --------------------------------------------------------------------------------------------


def test_results_files_get_ordinary_modes(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "results.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == 0o644


def test_every_response_carries_security_headers():
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from tests.serving.conftest import make_app

    with TestClient(make_app()) as client:
        responses = {path: client.get(path) for path in ("/docs", "/v1/models", "/openapi.json", "/no-such-page")}
        responses["413"] = client.post("/v1/generate", content=b"x" * 100_000,
                                       headers={"content-type": "application/json"})
    for name, r in responses.items():
        assert r.headers["x-content-type-options"] == "nosniff", name
        assert r.headers["x-frame-options"] == "DENY", name
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], name
    assert responses["/v1/models"].headers["content-security-policy"].startswith("default-src 'none'")
    assert responses["413"].status_code == 413


# --------------------------------------------------------------------------------------------
# Issue 29: settings out of bounds, and commands as a new user tries them
# --------------------------------------------------------------------------------------------

TINY = ROOT / "configs" / "tiny.toml"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("train.batch_size=-4", "train.batch_size must be an integer from 1 to 65,536, got -4"),
        ("train.batch_size=0", "train.batch_size must be an integer from 1 to 65,536, got 0"),
        ("train.batch_size=abc", "train.batch_size must be an integer from 1 to 65,536, got 'abc'"),
        ("train.grad_accum=0", "train.grad_accum must be an integer from 1 to 4,096, got 0"),
        ("train.lr=nan", "train.lr must be a number in (0, 1], got nan"),
        ("train.max_steps=100000000000", "train.max_steps must be an integer from 1 to 10,000,000, got 100000000000"),
        ("train.max_minutes=inf", "train.max_minutes must be a number in (0, 1,000,000] or none, got inf"),
        ("train.log_every=0", "train.log_every must be an integer from 1 to 10,000,000, got 0"),
        ("train.precision=fp8", "train.precision must be one of auto, fp32, bf16, fp16, got 'fp8'"),
        ("train.out_dir=.", "train.out_dir must name a directory of its own"),
        ("data.p_unconditional=1.5", "data.p_unconditional must be a number in [0, 1], got 1.5"),
        ("data.train_limit=0", "data.train_limit must be an integer >= 1 or none, got 0"),
        ("model.dropout=2", "model.dropout must be a number in [0, 1), got 2"),
        ("model.n_layer=100000", "n_layer = 100000 is out of bounds (1 to 256)"),
    ],
)
def test_training_settings_are_bounded_before_any_work(tmp_path, capsys, setting, message):
    """Each is refused in one line, before the data (which does not exist here) is looked at."""
    argv = ["train", "--config", str(TINY), "--no-progress", "--set", f"data.dir={tmp_path / 'no-data'}",
            "--set", f"train.out_dir={tmp_path / 'run'}", "--set", setting]
    assert main(argv) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("kind", "values", "message"),
    [
        ("vae", {"kl_schedule": "cosine"}, "model.kl_schedule must be one of constant, linear, cyclical, got 'cosine'"),
        ("vae", {"kl_ratio": 0.0}, "model.kl_ratio must be a number in (0, 1], got 0.0"),
        ("lstm", {"tie_weights": "yes"}, "model.tie_weights must be true or false, got 'yes'"),
        ("prompt-ae", {"latent_noise": float("nan")}, "model.latent_noise must be a number in [0, 1,000], got nan"),
        ("latent-diffusion", {"prediction_type": "x0"}, "model.prediction_type must be one of epsilon, v_prediction"),
    ],
)
def test_model_configs_check_their_own_bounds(kind, values, message):
    """A model config is checked when it is made, so a checkpoint's config.json is refused as a TOML is."""
    from textopia.models.registry import make_config

    with pytest.raises(TextopiaError) as err:
        make_config(kind, values)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seed", "1180591620717411303424"], "seed must be an integer from 0 to 18,446,744,073,709,551,615"),
        (["--seed", "-1"], "seed must be an integer from 0 to 18,446,744,073,709,551,615"),
        (["--temperature", "inf"], "temperature must be a number in [0.05, 2], got inf"),
        (["--temperature", "nan"], "temperature must be a number in [0.05, 2], got nan"),
        (["--repetition-penalty", "inf"], "repetition_penalty must be a number in [1, 2], got inf"),
        (["--idea-boost", "nan"], "idea_boost must be a number in [0, 10], got nan"),
        (["--min-new-tokens", "50", "--max-new-tokens", "10"], "--min-new-tokens must be at most --max-new-tokens (10), got 50"),
    ],
)
def test_generate_settings_are_refused_before_the_model_loads(tmp_path, capsys, extra, message):
    """The model named does not exist: the settings are refused before it is looked for."""
    assert main(["generate", "x", "--model", str(tmp_path / "no-model"), *extra]) == 2
    assert message in _one_error_line(capsys)


def test_min_new_tokens_follows_a_lower_max_new_tokens_by_default(capsys):
    assert main(["generate", "red car", "-n", "1", "--seed", "1", "--max-new-tokens", "10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["settings"]["min_new_tokens"] == 10


def test_decoding_settings_refuse_what_the_cli_refuses():
    """The Python API and the service check through GenerationConfig.validate too."""
    from textopia.generation.base import GenerationConfig

    GenerationConfig(seed=2**64 - 1).validate()
    for bad in (dict(seed=2**64), dict(seed=-1), dict(temperature=float("inf")),
                dict(repetition_penalty=float("inf")), dict(top_p=float("nan")), dict(min_p=float("nan"))):
        with pytest.raises(TextopiaError):
            GenerationConfig(**bad).validate()


def test_the_service_bounds_seeds_as_json_numbers():
    """The service's bound is narrower than the engine's: 2**64 - 1 is no exact JSON number (a
    double reads it as 2**64), so a JSON reader could not tell a seed just above it from it."""
    pytest.importorskip("pydantic")
    from pydantic import ValidationError

    from textopia.bounds import DRAWN_SEEDS
    from textopia.serving.schemas import MAX_SEED, GenerateRequest

    assert MAX_SEED == DRAWN_SEEDS - 1
    assert GenerateRequest.model_validate({"idea": "x", "seed": MAX_SEED}).seed == MAX_SEED
    for seed in (MAX_SEED + 1, 2**64, -1):
        with pytest.raises(ValidationError):
            GenerateRequest.model_validate({"idea": "x", "seed": seed})


CONTROLS = "\x1b[31m\x07\x00\x7f\x9b"


def test_control_characters_never_reach_a_prompt(capsys):
    """ESC, BEL, NUL, DEL and a C1 control in the idea: continue mode echoes the idea into its
    prompts, and none of them gets through, from the CLI or the Python API."""
    from textopia.generation.loader import load

    idea = f"a red{CONTROLS} car\x07"
    assert main(["generate", idea, "--mode", "continue", "-n", "2", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    outs = [g.prompt for g in load("default").generate(idea, 2, mode="continue", seed=1)]
    outs += [g.prompt for g in load("default").generate(idea, 2, seed=1)]
    for text in [printed, *outs]:
        assert not any(ord(c) < 32 and c != "\n" or 0x7F <= ord(c) < 0xA0 for c in text), repr(text)
    assert printed.startswith("a red[31m car")


def test_the_tokenizer_reads_no_control_characters():
    """Every text a model reads (from the CLI, the API or the service) is encoded here."""
    from textopia.data.tokenizer import PromptTokenizer
    from textopia.generation.decoding import clean_prompt

    tokenizer = PromptTokenizer.from_dir(DEFAULT)
    assert tokenizer.encode(f"a red{CONTROLS} car") == tokenizer.encode("a red[31m car")
    assert tokenizer.encode_batch([f"a\tred\x00 car\x07"]) == [tokenizer.encode("a red car")]
    assert clean_prompt(f"a red{CONTROLS} car, 4k\x1b", True) == "a red[31m car, 4k"


def test_a_banned_idea_word_is_warned_of_once():
    proc = subprocess.run([sys.executable, "-m", "textopia.cli", "generate", "red car", "--ban", "red", "-n", "2",
                           "--seed", "1"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("the idea word 'red' is also banned") == 1, proc.stderr


@pytest.mark.parametrize("model", ["latent", "diffusion"])
def test_eval_of_a_latent_diffusion_model_says_why_there_is_no_likelihood(user_file, capsys, model):
    assert main(["eval", model, "--data", str(user_file)]) == 2
    assert f"{model} is a latent diffusion model (latent-diffusion): it gives no likelihood" in _one_error_line(capsys)


def test_eval_of_a_latent_diffusion_model_gives_its_text_figures(user_file, capsys):
    assert main(["eval", "diffusion", "--data", str(user_file), "--samples", "1", "--num-ideas", "2",
                 "--no-embedder", "--no-clip", "--no-novelty", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["text"]["n_ideas"] == 2 and "perplexity" not in report


def test_compare_with_a_data_file_names_it_in_the_report(tmp_path, user_file, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "default", "--data", str(user_file), "--out", str(out), "--samples", "1",
                 "--num-ideas", "1", "--no-embedder", "--no-clip", "--no-novelty"]) == 0
    report = (out / "results.md").read_text()
    assert f"- Data: `{user_file}`" in report and f"- Likelihood: the prompts of `{user_file}`" in report
    assert "None" not in report.split("## ")[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--ideas-file", "{ideas}", "--out", "."], "--out must name a file of its own"),
        (["generate", "--ideas-file", "{ideas}", "--out", "{mine}"], "--out is the JSON-lines file to write, and"),
        (["prepare", "{file}", "--out", "."], "--out must name a directory of its own"),
        (["prepare", "{file}", "--out", "{mine}"], "{mine} holds files that are not a prepared corpus: not replaced"),
        (["export", str(DEFAULT), "{mine}"], "{mine} holds files that are not a checkpoint: not replaced"),
        (["compare", "default", "--data", "{file}", "--out", "{ideas}"], "--out must be a directory for the results"),
        (["train", "--config", str(TINY), "--set", "train.out_dir={mine}"], "{mine} holds files that are not a checkpoint"),
        (["generate", "--ideas-file", "{ideas}", "--out", "{ideas}/o.jsonl"], "{ideas} is a file, not a folder"),
        (["prepare", "{file}", "--out", "{ideas}/sub"], "{ideas} is a file, not a folder"),
        (["export", str(DEFAULT), "{ideas}/sub"], "{ideas} is a file, not a folder"),
        (["compare", "default", "--data", "{file}", "--out", "{ideas}/sub"], "{ideas} is a file, not a folder"),
        (["train", "--config", str(TINY), "--set", "train.out_dir={ideas}/sub"], "{ideas} is a file, not a folder"),
    ],
    ids=["generate-dot", "generate-dir", "prepare-dot", "prepare-other", "export-other", "compare-file", "train-other",
         "generate-under-file", "prepare-under-file", "export-under-file", "compare-under-file", "train-under-file"],
)
def test_out_must_name_what_the_command_writes(tmp_path, user_file, capsys, monkeypatch, argv, message):
    """``--out`` of generate is a JSON-lines file; of prepare, export and training a directory
    replaced as a whole, so "." and a folder of other files are refused; of compare a folder."""
    monkeypatch.chdir(tmp_path)
    ideas = tmp_path / "ideas.txt"
    ideas.write_text("red car\n")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    names = {"ideas": ideas, "mine": mine, "file": user_file}
    assert main([a.format(**names) for a in argv]) == 2
    assert message.format(**names) in _one_error_line(capsys)
    assert (mine / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ideas.txt", "mine"]


def test_every_file_a_checkpoint_writer_writes_is_a_checkpoint_entry(tiny_checkpoint):
    """The names a checkpoint may be replaced with (checkpoint_entry) cover what every writer puts
    there: the trainer's state, the critic and keep head, and each shipped model's files."""
    from textopia.generation.loader import assets_dir
    from textopia.models.checkpoint import checkpoint_entry
    from textopia.models.critic import CRITIC_DIR
    from textopia.models.keep_head import KEEP_DIR
    from textopia.training.state import OPTIMIZER_FILE, RNG_FILE, STATE_FILE

    names = {STATE_FILE, OPTIMIZER_FILE, RNG_FILE, CRITIC_DIR, KEEP_DIR, *(p.name for p in tiny_checkpoint.iterdir())}
    for model in ("default", "latent", "lstm", "vae", "diffusion"):
        names |= {p.name for p in (assets_dir() / model).iterdir()}
    assert all(checkpoint_entry(name) for name in names), sorted(n for n in names if not checkpoint_entry(n))
    assert not checkpoint_entry("notes.txt") and not checkpoint_entry("my.toml")


def test_a_path_the_system_cannot_write_is_one_line(tmp_path, monkeypatch, capsys):
    """An OSError about a path (here: a folder without write permission, as a disk or a
    permission would refuse it) is the one-line error of a user's mistake, not a traceback."""
    from textopia.cli import COMMANDS

    ideas = tmp_path / "ideas.txt"
    ideas.write_text("red car\n")

    def refused(*_, **__):
        raise PermissionError(13, "Permission denied", str(tmp_path / "o.jsonl.partial"))

    monkeypatch.setitem(COMMANDS, "generate", refused)
    assert main(["generate", "--ideas-file", str(ideas), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert _one_error_line(capsys).endswith("o.jsonl.partial: Permission denied")


def test_sigterm_unwinds_a_command_as_ctrl_c_does(tmp_path, monkeypatch, capsys):
    """``kill`` (SIGTERM) in the middle of an atomic write: the command stops with status 143, the
    half-built folder is removed (not left hidden beside its target), the old output is kept, and
    the process's own SIGTERM handler is back afterwards."""
    import signal

    from textopia.cli import COMMANDS
    from textopia.io import atomic_dir

    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("old")

    def killed_while_writing(args):
        with atomic_dir(out) as tmp:
            (tmp / "summary.json").write_text("new, half written")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs before this ends

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setitem(COMMANDS, "prepare", killed_while_writing)
    assert main(["prepare", "x.txt", "--out", str(out)]) == 143
    assert capsys.readouterr().err.strip() == "textopia: terminated"
    assert (out / "summary.json").read_text() == "old" and _hidden(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) == before


def test_the_folder_a_command_runs_in_is_never_replaced(tmp_path, user_file, monkeypatch, capsys):
    work = tmp_path / "w"
    mine = _precious(work)
    monkeypatch.chdir(work)
    for out in (str(work), str(tmp_path)):  # "." and ".." by their absolute names, even with --overwrite
        assert main(["prepare", str(user_file), "--out", out, "--no-tokenizer", "--overwrite"]) == 2
        assert "the folder this command runs in" in _one_error_line(capsys)
    assert mine.read_text() == "precious"


def test_an_output_behind_a_link_is_written_where_the_link_points(tmp_path, user_file):
    """``--out`` a symbolic link to an earlier output: the folder it names is replaced, the link kept."""
    real = tmp_path / "real"
    assert main(["prepare", str(user_file), "--out", str(real), "--no-tokenizer"]) == 0
    link = tmp_path / "link"
    link.symlink_to(real)
    (real / "train.txt").write_text("stale\n")
    assert main(["prepare", str(user_file), "--out", str(link), "--no-tokenizer"]) == 0
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert (real / "train.txt").read_text() != "stale\n" and _hidden(tmp_path) == []


def test_a_reader_that_has_gone_ends_the_command_quietly(monkeypatch, capsys):
    """stdout's reader closed (``textopia generate ... | head -1``): status 0, nothing on stderr,
    though a BrokenPipeError is an OSError as a path's errors are."""
    from textopia.cli import COMMANDS

    def gone(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(COMMANDS, "generate", gone)
    assert main(["generate", "a red fox"]) == 0
    assert capsys.readouterr().err == ""
