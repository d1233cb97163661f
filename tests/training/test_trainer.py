import json
import math
import subprocess
import sys

import pytest

from tests.conftest import tiny_lstm_overrides, tiny_overrides, tiny_vae_overrides
from textopia.training import trainer as trainer_mod
from textopia.training.config import load_config
from textopia.training.schedules import warmup_cosine_lr
from textopia.models.checkpoint import weights_digest
from textopia.training.trainer import train


def test_warmup_cosine_is_a_pure_function_of_step():
    kw = dict(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert warmup_cosine_lr(0, **kw) == pytest.approx(0.1)
    assert warmup_cosine_lr(9, **kw) == pytest.approx(1.0)
    assert warmup_cosine_lr(60, **kw) == pytest.approx(0.55)
    assert warmup_cosine_lr(110, **kw) == pytest.approx(0.1)
    assert warmup_cosine_lr(500, **kw) == pytest.approx(0.1)
    values = [warmup_cosine_lr(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_training_lowers_validation_loss_and_writes_a_checkpoint(tiny_checkpoint, tokenizer):
    lines = [json.loads(x) for x in (tiny_checkpoint / "metrics.jsonl").read_text().splitlines()]
    valid = [x for x in lines if x["split"] == "valid"]
    train_lines = [x for x in lines if x["split"] == "train"]
    assert len(valid) == 2 and train_lines[-1]["step"] == 30
    assert valid[-1]["ce_nats_per_token"] < math.log(len(tokenizer)) - 0.5
    for name in ("config.json", "model.safetensors", "tokenizer.json", "trainer_state.json", "optimizer.safetensors"):
        assert (tiny_checkpoint / name).is_file(), name
    assert json.loads((tiny_checkpoint / "trainer_state.json").read_text())["step"] == 30


def test_resume_after_interruption_matches_an_uninterrupted_run(prepared, tmp_path, monkeypatch):
    extra = {"train.max_steps": 20, "train.save_every": 10, "model.dropout": 0.1}
    straight = train(load_config(None, tiny_overrides(prepared, tmp_path / "a", **extra)), progress=False)

    real_lr = trainer_mod.warmup_cosine_lr

    def crash_at_step_13(step, **kw):
        if step == 13:
            raise KeyboardInterrupt("simulated interruption")
        return real_lr(step, **kw)

    config = load_config(None, tiny_overrides(prepared, tmp_path / "b", **extra))
    monkeypatch.setattr(trainer_mod, "warmup_cosine_lr", crash_at_step_13)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    assert json.loads((tmp_path / "b" / "trainer_state.json").read_text())["step"] == 10
    monkeypatch.setattr(trainer_mod, "warmup_cosine_lr", real_lr)
    resumed = train(config, resume=True, progress=False)

    from textopia.models.checkpoint import load_checkpoint

    a, _, _ = load_checkpoint(straight)
    b, _, _ = load_checkpoint(resumed)
    assert weights_digest(a) == weights_digest(b)
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["split"] == "train"]
    assert steps == sorted(set(steps))  # no duplicated log lines after the resume


def test_bad_config_values_are_named(tmp_path):
    from textopia.generation.base import TextopiaError

    with pytest.raises(TextopiaError, match="unknown \\[train\\] settings: bogus"):
        load_config(None, ["train.bogus=1"])
    with pytest.raises(TextopiaError, match="config not found"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\n")
    with pytest.raises(TextopiaError, match="invalid TOML"):
        load_config(bad)


@pytest.mark.slow
def test_two_process_training_keeps_replicas_identical(prepared, tmp_path):
    """Data parallelism for real: torchrun starts two CPU processes (gloo); DDP keeps them in step."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "textopia.cli", "train", "--no-progress",
           *[a for kv in tiny_overrides(prepared, out, **{"train.max_steps": 8, "train.eval_every": 0, "train.save_every": 0, "train.batch_size": 8}) for a in ("--set", kv)]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    replicas = [x for x in lines if x["split"] == "replicas"]
    assert replicas and replicas[0]["num_processes"] == 2
    assert len(replicas[0]["weights_sha256"]) == 2 and replicas[0]["identical"]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["num_processes"] == 2 and state["step"] == 8


def _train_losses(out_dir) -> list[tuple[int, float, int]]:
    lines = [json.loads(x) for x in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [(x["step"], x["loss"], x["epoch"]) for x in lines if x["split"] == "train"]


def test_resume_across_epoch_boundaries_is_exact(prepared, tmp_path, monkeypatch):
    """Kills in epoch 0, at an epoch's end and in epoch 2 of a 4-epoch run: weights and losses
    equal an uninterrupted run's bit for bit (Accelerate's loader must not reset the epoch)."""
    from textopia.models.checkpoint import load_checkpoint

    # 64 prompts in batches of 16: 4 steps an epoch, 14 steps reach epoch 3.
    extra = {"train.max_steps": 14, "train.save_every": 2, "train.log_every": 1, "train.eval_every": 0,
             "data.train_limit": 64, "train.warmup_steps": 2, "model.dropout": 0.1}
    straight = train(load_config(None, tiny_overrides(prepared, tmp_path / "a", **extra)), progress=False)
    config = load_config(None, tiny_overrides(prepared, tmp_path / "b", **extra))
    real_lr = trainer_mod.warmup_cosine_lr
    for kill_at, saved_at, saved_epoch in ((3, 2, 0), (5, 4, 0), (11, 10, 2)):
        def crash(step, _kill_at=kill_at, **kw):
            if step == _kill_at:
                raise KeyboardInterrupt("simulated kill")
            return real_lr(step, **kw)

        monkeypatch.setattr(trainer_mod, "warmup_cosine_lr", crash)
        with pytest.raises(KeyboardInterrupt):
            train(config, resume=kill_at != 3, progress=False)
        state = json.loads((tmp_path / "b" / "trainer_state.json").read_text())
        assert (state["step"], state["epoch"]) == (saved_at, saved_epoch)
        monkeypatch.setattr(trainer_mod, "warmup_cosine_lr", real_lr)
    resumed = train(config, resume=True, progress=False)
    a, _, _ = load_checkpoint(straight)
    b, _, _ = load_checkpoint(resumed)
    assert _train_losses(tmp_path / "b") == _train_losses(tmp_path / "a")
    assert max(epoch for _, _, epoch in _train_losses(tmp_path / "a")) == 3
    assert weights_digest(a) == weights_digest(b)


def test_resume_without_a_checkpoint_says_so(prepared, tmp_path, caplog):
    config = load_config(None, tiny_overrides(prepared, tmp_path / "c", **{"train.max_steps": 2, "train.eval_every": 0}))
    with caplog.at_level("WARNING", logger="textopia.training.trainer"):
        train(config, resume=True, progress=False)
    assert "no checkpoint with trainer state" in caplog.text


def test_resume_with_gradient_accumulation_across_epochs_is_exact(prepared, tmp_path, monkeypatch):
    """Two batches a step, 2 steps an epoch: kills at steps 3 and 5 (epochs 1 and 2) change nothing."""
    from textopia.models.checkpoint import load_checkpoint

    extra = {"train.max_steps": 7, "train.save_every": 1, "train.log_every": 1, "train.eval_every": 0,
             "data.train_limit": 64, "train.warmup_steps": 2, "train.grad_accum": 2, "model.dropout": 0.1}
    straight = train(load_config(None, tiny_overrides(prepared, tmp_path / "a", **extra)), progress=False)
    config = load_config(None, tiny_overrides(prepared, tmp_path / "b", **extra))
    real_lr = trainer_mod.warmup_cosine_lr
    for kill_at in (3, 5):
        def crash(step, _kill_at=kill_at, **kw):
            if step == _kill_at:
                raise KeyboardInterrupt("simulated kill")
            return real_lr(step, **kw)

        monkeypatch.setattr(trainer_mod, "warmup_cosine_lr", crash)
        with pytest.raises(KeyboardInterrupt):
            train(config, resume=kill_at != 3, progress=False)
        monkeypatch.setattr(trainer_mod, "warmup_cosine_lr", real_lr)
    resumed = train(config, resume=True, progress=False)
    a, _, _ = load_checkpoint(straight)
    b, _, _ = load_checkpoint(resumed)
    assert _train_losses(tmp_path / "b") == _train_losses(tmp_path / "a")
    assert weights_digest(a) == weights_digest(b)


def test_the_loop_computes_what_a_plain_loop_computes(prepared, tmp_path):
    """The speed work (Accelerate's wrappers removed, the loss autocast by the loop) changed
    nothing that is learnt: for a seed, the first steps' losses equal a plain PyTorch loop's on
    the same model, batches, AdamW, clipping and learning-rate schedule, in the precision
    ``auto`` picks on this machine."""
    import torch

    from textopia.training.tasks import TokenTask

    config = load_config(None, tiny_overrides(prepared, tmp_path / "loop", **{
        "train.max_steps": 6, "train.log_every": 1, "train.eval_every": 0, "train.save_every": 0}))
    out = train(config, progress=False)
    logged = [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()
              if json.loads(x)["split"] == "train"]

    tc = config.train
    torch.manual_seed(tc.seed)
    task = TokenTask(config)
    model = task.model.train()
    optimizer = torch.optim.AdamW(trainer_mod._param_groups(model, tc.weight_decay), lr=tc.lr,
                                  betas=(tc.beta1, tc.beta2))
    amp = trainer_mod.resolve_precision(tc.precision) == "bf16"
    plain = []
    for step, batch in enumerate(task.batches(0, 0, accelerator=None)):
        if step == tc.max_steps:
            break
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine_lr(step, lr=tc.lr, warmup_steps=tc.warmup_steps, max_steps=tc.max_steps,
                                           min_lr_ratio=tc.min_lr_ratio)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        plain.append(float(loss.detach()))
    assert len(logged) == len(plain) == 6
    assert logged == pytest.approx(plain, rel=1e-4)


def _family_overrides(kind: str, data_dir, out_dir, **extra) -> list[str]:
    """Tiny configs of the token-trained families with everything random in a step turned on:
    dropout, word dropout and latent sampling (the autoencoders draw z from their posterior)."""
    if kind == "gpt":
        return tiny_overrides(data_dir, out_dir, **{"model.dropout": 0.1, **extra})
    if kind == "lstm":
        return tiny_lstm_overrides(data_dir, out_dir, **{"model.dropout": 0.1, **extra})
    if kind == "vae":
        return tiny_vae_overrides(data_dir, out_dir, **{"model.dropout": 0.1, **extra})
    ae = {"model.kind": "prompt-ae", "model.n_positions": 112, "model.n_layer_enc": 1, "model.n_latents": 4,
          "model.latent_width": 8, "model.dropout": 0.1, "model.word_dropout": 0.2, "model.latent_noise": 0.1,
          "data.max_length": 96, **extra}
    return tiny_overrides(data_dir, out_dir, **ae)


def _kill_at(step: int, monkeypatch) -> None:
    """Make the next run die (KeyboardInterrupt) when it computes optimizer step ``step``."""
    real_lr = trainer_mod.warmup_cosine_lr

    def crash(s, **kw):
        if s == step:
            monkeypatch.setattr(trainer_mod, "warmup_cosine_lr", real_lr)
            raise KeyboardInterrupt("simulated kill")
        return real_lr(s, **kw)

    monkeypatch.setattr(trainer_mod, "warmup_cosine_lr", crash)


def _train_records(out_dir) -> list[dict]:
    """The train lines of a run's log, without the wall-clock figures."""
    lines = [json.loads(x) for x in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in x.items() if k not in ("elapsed_s", "tokens_per_s", "examples_per_s")}
            for x in lines if x["split"] == "train"]


@pytest.mark.parametrize("kind", ["gpt", "lstm", "vae", "prompt-ae"])
def test_resume_with_everything_random_on_is_exact(kind, prepared, tmp_path, monkeypatch):
    """Dropout, word dropout and latent sampling draw from the RNG streams the checkpoint saves: a
    run killed at step 5 and resumed from its step-3 checkpoint ends with the weights and the log
    of one never stopped (64 prompts in batches of 16: the resumed run crosses into epoch 1)."""
    from textopia.models.checkpoint import load_checkpoint

    extra = {"train.max_steps": 8, "train.save_every": 3, "train.log_every": 2, "train.eval_every": 0,
             "data.train_limit": 64, "train.warmup_steps": 2}
    straight = train(load_config(None, _family_overrides(kind, prepared, tmp_path / "a", **extra)), progress=False)
    config = load_config(None, _family_overrides(kind, prepared, tmp_path / "b", **extra))
    _kill_at(5, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    assert json.loads((tmp_path / "b" / "trainer_state.json").read_text())["step"] == 3
    resumed = train(config, resume=True, progress=False)
    assert _train_records(resumed) == _train_records(straight)
    a, _, _ = load_checkpoint(straight)
    b, _, _ = load_checkpoint(resumed)
    assert weights_digest(a) == weights_digest(b)


def test_the_first_line_logged_after_a_resume_averages_the_whole_window(prepared, tmp_path, monkeypatch):
    """Saves every 3 steps, lines every 2: the line at step 4 of a run resumed at step 3 averages
    steps 3 and 4, as the uninterrupted run's does (the open window travels in the checkpoint)."""
    extra = {"train.max_steps": 6, "train.save_every": 3, "train.log_every": 2, "train.eval_every": 0,
             "data.train_limit": 64}
    straight = train(load_config(None, tiny_overrides(prepared, tmp_path / "a", **extra)), progress=False)
    config = load_config(None, tiny_overrides(prepared, tmp_path / "b", **extra))
    _kill_at(4, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    resumed = train(config, resume=True, progress=False)
    assert [x["step"] for x in _train_records(resumed)] == [2, 4, 6]
    assert _train_records(resumed) == _train_records(straight)


@pytest.mark.parametrize(("setting", "value", "old"), [
    ("model.n_embd", 64, 32), ("model.dropout", 0.2, 0.0), ("train.batch_size", 8, 16), ("train.grad_accum", 2, 1),
    ("data.max_length", 64, 128),
])
def test_resume_refuses_a_setting_that_would_change_the_run(prepared, tmp_path, setting, value, old):
    """A resumed run continues the checkpoint's model and batches: another model size or batch
    layout is refused, naming the setting, the checkpoint's value and the new one."""
    from textopia.errors import TextopiaError

    extra = {"train.max_steps": 2, "train.eval_every": 0, "data.train_limit": 32}
    train(load_config(None, tiny_overrides(prepared, tmp_path / "r", **extra)), progress=False)
    changed = load_config(None, tiny_overrides(prepared, tmp_path / "r", **{**extra, "train.max_steps": 3,
                                                                           setting: value}))
    with pytest.raises(TextopiaError, match=rf"{setting}: the checkpoint's {old}, this run's {value}") as err:
        train(changed, resume=True, progress=False)
    assert "\n" not in str(err.value)
    assert json.loads((tmp_path / "r" / "trainer_state.json").read_text())["step"] == 2


def test_resume_logs_what_it_keeps_and_what_it_changes(prepared, tmp_path, caplog):
    extra = {"train.max_steps": 2, "train.eval_every": 0, "data.train_limit": 32}
    train(load_config(None, tiny_overrides(prepared, tmp_path / "r", **extra)), progress=False)
    config = load_config(None, [o for o in tiny_overrides(prepared, tmp_path / "r", **{**extra, "train.max_steps": 3})
                                if not o.startswith("model.")])  # no model settings: the checkpoint's are kept
    with caplog.at_level("INFO", logger="textopia.training.trainer"):
        train(config, resume=True, progress=False)
    assert "keeps the checkpoint's" in caplog.text and "n_embd=32" in caplog.text and "batch_size=16" in caplog.text
    assert "train.max_steps: 2 -> 3" in caplog.text
    assert json.loads((tmp_path / "r" / "trainer_state.json").read_text())["step"] == 3


def test_training_stops_at_the_first_loss_that_is_not_finite(prepared, tmp_path, monkeypatch):
    """A loss of NaN at step 6 stops the run with one line; the step-4 checkpoint stays as it was
    and every line of the log is JSON (NaN is not)."""
    from textopia.errors import TextopiaError
    from textopia.training.tasks import TokenTask

    real_loss = TokenTask.loss

    def nan_from_step_5(self, model, batch, step):
        loss, count, terms = real_loss(self, model, batch, step)
        return (loss * float("nan") if step >= 5 else loss), count, terms

    monkeypatch.setattr(TokenTask, "loss", nan_from_step_5)
    out = tmp_path / "nan"
    config = load_config(None, tiny_overrides(prepared, out, **{
        "train.max_steps": 8, "train.save_every": 4, "train.log_every": 1, "train.eval_every": 0}))
    with pytest.raises(TextopiaError, match="step 6: the training loss is nan") as err:
        train(config, progress=False)
    assert "\n" not in str(err.value) and str(out) in str(err.value)
    assert json.loads((out / "trainer_state.json").read_text())["step"] == 4

    def refuse(constant):
        raise ValueError(f"{constant} in metrics.jsonl")

    lines = [json.loads(x, parse_constant=refuse) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5]


def test_loader_workers_train_the_same_weights_as_the_training_process(prepared, tmp_path):
    """Examples made by worker processes (train.num_workers) are the ones the training process
    would make, in the same order, across epochs: the same losses and weights bit for bit."""
    extra = {"train.max_steps": 10, "train.log_every": 1, "train.eval_every": 0, "data.train_limit": 64,
             "train.warmup_steps": 2}
    alone = train(load_config(None, tiny_overrides(prepared, tmp_path / "a", **extra)), progress=False)
    workers = train(load_config(None, tiny_overrides(prepared, tmp_path / "b", **extra, **{"train.num_workers": 2})),
                    progress=False)
    from textopia.models.checkpoint import load_checkpoint

    assert max(epoch for _, _, epoch in _train_losses(alone)) == 2
    assert _train_losses(workers) == _train_losses(alone)
    assert weights_digest(load_checkpoint(workers)[0]) == weights_digest(load_checkpoint(alone)[0])
