"""The LSTM LM: the GPT's contracts (loss, overfitting, checkpoints, generation) on the same path."""

import json
import math

import pytest
import torch

import textopia
from textopia.data.batching import PromptDataset, collate
from textopia.data.corpus import read_split
from textopia.evaluation.likelihood import score_prompts
from textopia.models.checkpoint import load_checkpoint, save_checkpoint
from textopia.models.lstm_lm import LSTMConfig, build_lstm
from textopia.models.registry import known_kinds


def _batch(tokenizer, prepared, n=8):
    ds = PromptDataset(read_split(prepared, "train")[:n], tokenizer, seed=0, ideas="derived")
    return collate([ds[i] for i in range(n)], tokenizer.pad_id)


def test_registered_as_a_decoder():
    from textopia.models.registry import CausalLM, get_spec

    assert "lstm" in known_kinds() and get_spec("lstm").role is CausalLM


def test_loss_at_init_is_near_ln_vocab(tokenizer, prepared):
    torch.manual_seed(0)
    model = build_lstm(LSTMConfig(n_embd=32, n_hidden=48, n_layer=2), tokenizer)
    with torch.no_grad():
        loss = float(model(**_batch(tokenizer, prepared)).loss)
    assert abs(loss - math.log(len(tokenizer))) < 0.1


def test_loss_is_the_mean_over_counted_tokens(tokenizer, prepared):
    torch.manual_seed(0)
    model = build_lstm(LSTMConfig(n_embd=32, n_hidden=32, n_layer=1), tokenizer).eval()
    batch = _batch(tokenizer, prepared)
    with torch.no_grad():
        out = model(**batch)
    logp = torch.log_softmax(out.logits.double(), dim=-1)  # (B, T, V)
    labels = batch["labels"]
    picked = [-logp[b, t - 1, labels[b, t]] for b in range(labels.size(0)) for t in range(1, labels.size(1))
              if labels[b, t] != -100]
    assert float(out.loss) == pytest.approx(float(sum(picked) / len(picked)), rel=1e-5)


def test_overfits_one_batch(tokenizer, prepared):
    torch.manual_seed(0)
    model = build_lstm(LSTMConfig(n_embd=64, n_hidden=128, n_layer=1), tokenizer)
    batch = _batch(tokenizer, prepared, n=4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.1


def test_right_padding_does_not_change_the_scores(tokenizer, prepared):
    torch.manual_seed(0)
    model = build_lstm(LSTMConfig(n_embd=32, n_hidden=32, n_layer=2), tokenizer).eval()
    prompts = read_split(prepared, "valid")[:12]
    one = score_prompts(model, tokenizer, prompts, batch_size=1)
    many = score_prompts(model, tokenizer, prompts, batch_size=12)
    assert one.tokens == many.tokens and one.nats == pytest.approx(many.nats, rel=1e-5)
    with pytest.raises(ValueError, match="right-padded"):
        model(input_ids=torch.ones(1, 3, dtype=torch.long), attention_mask=torch.tensor([[0, 1, 1]]))


def test_the_cached_state_continues_the_sequence(tokenizer):
    torch.manual_seed(0)
    model = build_lstm(LSTMConfig(n_embd=16, n_hidden=24, n_layer=2), tokenizer).eval()
    ids = torch.randint(0, len(tokenizer), (3, 9))
    with torch.no_grad():
        full = model(input_ids=ids).logits  # (3, 9, V)
        first = model(input_ids=ids[:, :5], use_cache=True)
        rest = model(input_ids=ids[:, 5:], past_key_values=first.past_key_values, use_cache=True)
    assert torch.allclose(torch.cat([first.logits, rest.logits], dim=1), full, atol=1e-5)
    h, c = rest.past_key_values
    assert h.shape == c.shape == (2, 3, 24)


@pytest.mark.parametrize("sizes", [{"n_embd": 32, "n_hidden": 48, "tie_weights": True},
                                   {"n_embd": 32, "n_hidden": 32, "tie_weights": False}])
def test_checkpoint_round_trip_identical_logits(tokenizer, prepared, tmp_path, sizes):
    torch.manual_seed(0)
    config = LSTMConfig(n_layer=2, **sizes)
    model = build_lstm(config, tokenizer).eval()
    save_checkpoint(tmp_path / "ckpt", model, tokenizer, {"kind": "lstm", "model": vars(config)})
    loaded, tok2, meta = load_checkpoint(tmp_path / "ckpt")
    batch = _batch(tokenizer, prepared)
    with torch.no_grad():
        a = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        b = loaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.equal(a, b)
    assert meta["kind"] == "lstm" and tok2.encode("a cat") == tokenizer.encode("a cat")
    assert (loaded.lm_head.weight is loaded.embed.weight) == config.tie_weights
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())


def test_trained_with_the_common_loop(tiny_lstm_checkpoint, tokenizer):
    meta = json.loads((tiny_lstm_checkpoint / "config.json").read_text())["textopia"]
    assert meta["kind"] == "lstm" and meta["model"]["n_hidden"] == 48
    lines = [json.loads(x) for x in (tiny_lstm_checkpoint / "metrics.jsonl").read_text().splitlines()]
    valid = [x for x in lines if x["split"] == "valid"]
    assert valid[-1]["ce_nats_per_token"] < math.log(len(tokenizer)) - 0.5


def test_generates_in_both_modes(tiny_lstm_checkpoint):
    gen = textopia.load(str(tiny_lstm_checkpoint), device="cpu")
    assert gen.kind == "lstm" and gen.info()["context_tokens"] == 128
    a = gen.generate("castle on a hill", n=3, seed=7, max_new_tokens=24)
    b = gen.generate("castle on a hill", n=3, seed=7, max_new_tokens=24)
    assert [g.prompt for g in a] == [g.prompt for g in b] and len(a) == 3
    cont = gen.generate("a portrait of", n=2, mode="continue", seed=1, max_new_tokens=16)
    assert cont and all(g.prompt.startswith("a portrait of") for g in cont)
    free = gen.generate(None, n=2, seed=3, max_new_tokens=16)
    assert all(g.idea is None and g.prompt for g in free)


def test_each_role_has_its_generator_and_training_task():
    from textopia.errors import TextopiaError
    from textopia.generation.decoder import DecoderGenerator
    from textopia.generation.loader import generator_class
    from textopia.generation.vae import VAEGenerator
    from textopia.models.registry import CausalLM, LatentAutoencoder, Role, get_spec, known_kinds
    from textopia.training.tasks import TokenTask
    from textopia.training.trainer import task_class

    roles = {kind: get_spec(kind).role for kind in known_kinds()}
    assert roles["gpt"] is CausalLM and roles["lstm"] is CausalLM
    assert roles["vae"] is LatentAutoencoder and roles["prompt-ae"] is LatentAutoencoder
    assert generator_class(CausalLM) is DecoderGenerator and generator_class(LatentAutoencoder) is VAEGenerator
    assert task_class(CausalLM) is TokenTask and task_class(LatentAutoencoder) is TokenTask
    with pytest.raises(TextopiaError, match="no generator"):
        generator_class(Role)
