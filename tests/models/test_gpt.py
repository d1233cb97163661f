import json
import math

import pytest
import torch

from textopia.data.batching import PromptDataset, collate
from textopia.generation.base import TextopiaError
from textopia.models.checkpoint import load_checkpoint, save_checkpoint
from textopia.models.gpt import GPTConfig, build_gpt


def _batch(tokenizer, prepared, n=8):
    from textopia.data.corpus import read_split

    ds = PromptDataset(read_split(prepared, "train")[:n], tokenizer, seed=0, ideas="derived")
    return collate([ds[i] for i in range(n)], tokenizer.pad_id)


def test_loss_at_init_is_near_ln_vocab(tokenizer, prepared):
    torch.manual_seed(0)
    model = build_gpt(GPTConfig(n_embd=32, n_layer=1, n_head=2, n_positions=128), tokenizer)
    loss = float(model(**_batch(tokenizer, prepared)).loss)
    assert abs(loss - math.log(len(tokenizer))) < 0.3


def test_overfits_one_batch(tokenizer, prepared):
    torch.manual_seed(0)
    model = build_gpt(GPTConfig(n_embd=64, n_layer=2, n_head=2, n_positions=128, dropout=0.0), tokenizer)
    batch = _batch(tokenizer, prepared, n=4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.1


def test_checkpoint_round_trip_identical_logits(tokenizer, prepared, tmp_path):
    torch.manual_seed(0)
    config = GPTConfig(n_embd=32, n_layer=1, n_head=2, n_positions=128)
    model = build_gpt(config, tokenizer).eval()
    save_checkpoint(tmp_path / "ckpt", model, tokenizer, {"kind": "gpt", "model": vars(config)})
    loaded, tok2, meta = load_checkpoint(tmp_path / "ckpt")
    batch = _batch(tokenizer, prepared)
    with torch.no_grad():
        a = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        b = loaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.equal(a, b)
    assert meta["kind"] == "gpt" and tok2.encode("a cat") == tokenizer.encode("a cat")
    # The directory is also a plain transformers checkpoint.
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path / "ckpt")).eval()
    with torch.no_grad():
        c = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.equal(a, c)


def test_bad_checkpoints_name_the_file(tokenizer, tmp_path):
    config = GPTConfig(n_embd=32, n_layer=1, n_head=2, n_positions=64)
    model = build_gpt(config, tokenizer)
    ckpt = tmp_path / "ckpt"
    save_checkpoint(ckpt, model, tokenizer, {"kind": "gpt", "model": vars(config)})
    with pytest.raises(TextopiaError, match="checkpoint directory not found"):
        load_checkpoint(tmp_path / "nope")
    (ckpt / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(TextopiaError, match="model.safetensors"):
        load_checkpoint(ckpt)
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(TextopiaError, match="missing file in checkpoint: .*model.safetensors"):
        load_checkpoint(ckpt)
    (ckpt / "config.json").write_text("{oops")
    with pytest.raises(TextopiaError, match="corrupt checkpoint config .*config.json"):
        load_checkpoint(ckpt)
    (ckpt / "config.json").write_text(json.dumps({"textopia": {"kind": "nonsense"}}))
    with pytest.raises(TextopiaError, match="unknown model kind 'nonsense'"):
        load_checkpoint(ckpt)


def test_fine_tune_from_a_local_pretrained_causal_lm(tokenizer, prepared, tmp_path):
    """init_from takes any transformers causal LM (here a small local GPT-2 with its own tokenizer)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from textopia.data.tokenizer import PromptTokenizer, load_hf_tokenizer

    base = tmp_path / "base"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer.hf) - 3, n_embd=32, n_layer=1, n_head=2, n_positions=64)).save_pretrained(base)
    plain = tokenizer.hf.__class__(tokenizer_object=tokenizer.hf.backend_tokenizer)
    plain.save_pretrained(base)
    tok = PromptTokenizer(load_hf_tokenizer(base))
    model = build_gpt(GPTConfig(init_from=str(base)), tok)
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    out = model(**_batch(tok, prepared, n=2))
    assert torch.isfinite(out.loss)


def test_fine_tuning_a_half_precision_checkpoint_trains_float32_weights(tiny_checkpoint, tmp_path):
    """An exported float16 checkpoint (as the shipped default is stored) or a hub model saved in
    bfloat16 is fine-tuned from float32 copies of its weights, not in half precision."""
    from textopia.data.tokenizer import PromptTokenizer, load_hf_tokenizer
    from textopia.models.checkpoint import export_checkpoint

    half = export_checkpoint(tiny_checkpoint, tmp_path / "half", dtype="float16")
    tok = PromptTokenizer(load_hf_tokenizer(half))
    model = build_gpt(GPTConfig(init_from=str(half)), tok)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    # stored in float16, computed in float32 by transformers too (the config says which)
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    with safe_open(str(half / "model.safetensors"), framework="pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}
    assert AutoModelForCausalLM.from_pretrained(half).dtype == torch.float32
