"""GPT-style decoder: transformers' ``GPT2LMHeadModel`` from a config, or any causal LM to fine-tune.

A GPT checkpoint directory is also a valid transformers checkpoint: ``config.json`` is the
transformers config (with Textopia's settings under the key ``"textopia"``), so
``AutoModelForCausalLM.from_pretrained(dir)`` and ``pipeline("text-generation", dir)`` load it.
Its ``prefix`` (``<|prompt|>``) makes that pipeline, and the tools built on it (Dynamic Prompts'
MagicPrompt), read a text as Textopia's continue mode does: as the beginning of a prompt.

Radford et al. 2019, "Language Models are Unsupervised Multitask Learners" (GPT-2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textopia.bounds import bounded, check_fields
from textopia.errors import TextopiaError
from textopia.models.spec import CausalLM, ModelSpec, register


@dataclass
class GPTConfig:
    """GPT hyperparameters. Ignored except ``init_from`` when fine-tuning a pretrained model."""

    kind: str = "gpt"
    n_positions: int = 256  # longest sequence (idea + prompt + EOS), tokens
    n_embd: int = 256  # width of the residual stream
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads (n_embd must divide by it)
    dropout: float = bounded(0.1, 0, 1, high_open=True)  # residual, embedding and attention dropout
    init_from: str | None = None  # local dir or hub name of a causal LM to fine-tune; None: scratch

    def __post_init__(self) -> None:
        check_fields(self, "model")


def build_gpt(config: GPTConfig, tokenizer):
    """A fresh GPT-2 sized by ``config`` for ``tokenizer``, or ``config.init_from`` resized to it.

    Raises:
        TextopiaError: ``init_from`` cannot be loaded, or the sizes do not fit together.
    """
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    if config.init_from:
        try:
            # float32 master weights whatever the checkpoint stores: transformers would keep a
            # half-precision checkpoint (an exported default, most hub models) in half precision,
            # and AdamW on half-precision weights loses small updates (mixed precision autocasts).
            model = AutoModelForCausalLM.from_pretrained(config.init_from, dtype=torch.float32)
        except Exception as e:
            raise TextopiaError(f"cannot load causal LM {config.init_from!r}: {e}") from None
        if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        model.config.pad_token_id = tokenizer.pad_id
        model.config.eos_token_id = tokenizer.eos_id
        return model
    if config.n_embd % config.n_head:
        raise TextopiaError(f"n_embd ({config.n_embd}) must be a multiple of n_head ({config.n_head})")
    hf_config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=config.n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        bos_token_id=tokenizer.eos_id,
        eos_token_id=tokenizer.eos_id,
        pad_token_id=tokenizer.pad_id,
    )
    return GPT2LMHeadModel(hf_config)


def save_gpt(model, directory: Path) -> None:
    """Write ``config.json`` (transformers') and ``model.safetensors``.

    The config's ``prefix`` is ``<|prompt|>``: transformers' text-generation pipeline prepends it to
    every text, so the model continues it as the beginning of a prompt, as it was trained to (the
    default, greedy, from "a castle": "... in the middle of a forest, by greg rutkowski, trending on
    artstation"; without the prefix: "... in a field of a girl in a field of flowers, a girl in ...").
    """
    from textopia.data.tokenizer import PROMPT

    model.config.prefix = PROMPT
    model.save_pretrained(str(directory), safe_serialization=True)


def load_gpt(directory: Path, config: GPTConfig):
    """Load the model of a GPT checkpoint directory (any transformers causal LM)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(directory))


def max_positions(model) -> int | None:
    """The model's context length in tokens, if it has one (None for a model without ``.config``)."""
    config = getattr(model, "config", None)
    for attr in ("n_positions", "max_position_embeddings"):
        value = getattr(config, attr, None)
        if value:
            return int(value)
    return None


register(ModelSpec("gpt", GPTConfig, build_gpt, load=load_gpt, save=save_gpt, role=CausalLM))
