"""LSTM language model: the baseline decoder, on the same path as the GPT.

Same examples (``<|idea|> ... <|prompt|> ... <|endoftext|>``), tokenizer, training loop,
checkpoint format and Generator as the GPT: the model's ``forward`` takes and returns what
transformers' causal LMs do, so the trainer, :func:`textopia.evaluation.likelihood.score_prompts`
and :func:`textopia.generation.decoding.sample` run it unchanged::

    input_ids (B, T) ─▶ embedding (B, T, E) ─▶ dropout ─▶ LSTM × n_layer (B, T, H) ─▶ dropout
        ─▶ [projection H→E, if tied and H ≠ E] ─▶ output layer (B, T, V) = logits

Zaremba et al. 2014, "Recurrent Neural Network Regularization" (dropout on the non-recurrent
connections); Press & Wolf 2017 and Inan et al. 2017 (tied input and output embeddings);
pytorch/examples ``word_language_model``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from textopia.bounds import bounded, check_fields
from textopia.data.tokenizer import IGNORE_INDEX
from textopia.errors import TextopiaError
from textopia.models.likelihood import token_nll
from textopia.models.outputs import causal_lm_output
from textopia.models.spec import CausalLM, ModelSpec, register


@dataclass
class LSTMConfig:
    """LSTM LM hyperparameters."""

    kind: str = "lstm"
    n_positions: int = 256  # longest training example (idea + prompt + EOS), tokens; also caps generation
    n_embd: int = 256  # token embedding width (also the output embedding's when tied)
    n_hidden: int = 256  # LSTM units per layer
    n_layer: int = 2  # stacked LSTM layers
    dropout: float = bounded(0.0, 0, 1, high_open=True)  # on the embeddings, between layers, on the top output
    tie_weights: bool = True  # the output layer reuses the input embedding (with a projection if n_hidden != n_embd)
    init_range: float = bounded(0.1, 0, 10, low_open=True)  # embeddings start uniform in [-init_range, init_range]

    def __post_init__(self) -> None:
        check_fields(self, "model")


def init_embedding_and_head(embed: nn.Embedding, lm_head: nn.Linear, init_range: float, tied: bool) -> None:
    """U(-r, r) token embedding and output layer (one tensor when ``tied``), zero output bias, as
    Zaremba et al. 2014 initialise their LSTM language models; shared by the LSTM LM and VAE."""
    nn.init.uniform_(embed.weight, -init_range, init_range)
    if not tied:
        nn.init.uniform_(lm_head.weight, -init_range, init_range)
    nn.init.zeros_(lm_head.bias)


class LSTMLanguageModel(nn.Module):
    """A multi-layer LSTM LM whose ``forward`` mirrors a transformers causal LM.

    Args:
        config: the sizes.
        vocab_size: tokens in the vocabulary (``len(tokenizer)``).

    Attributes:
        config: the :class:`LSTMConfig` (``config.n_positions`` is read by ``max_positions``).
    """

    def __init__(self, config: LSTMConfig, vocab_size: int) -> None:
        super().__init__()
        if config.n_layer < 1 or config.n_embd < 1 or config.n_hidden < 1:
            raise TextopiaError(f"n_layer, n_embd and n_hidden must be >= 1, got {config.n_layer}, "
                                f"{config.n_embd}, {config.n_hidden}")
        if not 0.0 <= config.dropout < 1.0:
            raise TextopiaError(f"dropout must be in [0, 1), got {config.dropout}")
        self.config = config
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            config.n_embd, config.n_hidden, num_layers=config.n_layer, batch_first=True,
            dropout=config.dropout if config.n_layer > 1 else 0.0,
        )
        out_width = config.n_hidden
        self.proj = None
        if config.tie_weights and config.n_hidden != config.n_embd:
            self.proj = nn.Linear(config.n_hidden, config.n_embd, bias=False)
            out_width = config.n_embd
        self.lm_head = nn.Linear(out_width, vocab_size)
        if config.tie_weights:
            self.lm_head.weight = self.embed.weight  # one (V, E) tensor; safetensors saves it once
        self._init_weights()

    def _init_weights(self) -> None:
        init_embedding_and_head(self.embed, self.lm_head, self.config.init_range, self.config.tie_weights)
        # Forget gates start open (bias 1), as Jozefowicz et al. 2015 advise; PyTorch's gate
        # order is (input, forget, cell, output), each n_hidden wide.
        h = self.config.n_hidden
        for layer in range(self.config.n_layer):
            with torch.no_grad():
                getattr(self.lstm, f"bias_ih_l{layer}")[h : 2 * h].fill_(1.0)
                getattr(self.lstm, f"bias_hh_l{layer}")[h : 2 * h].zero_()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        past_key_values: tuple[torch.Tensor, torch.Tensor] | None = None,
        use_cache: bool = False,
    ):
        """Next-token logits, and the loss when ``labels`` are given.

        Args:
            input_ids: ``(batch_size, seq_len)`` int64 token ids.
            attention_mask: ``(batch_size, seq_len)``, 1 on real tokens, 0 on padding. Only
                right padding is accepted, and then no masking is needed: the recurrence runs
                left to right, so the padding after a row's last token cannot change the outputs
                at its real positions, and the labels are -100 on padding, so it adds no loss.
            labels: ``(batch_size, seq_len)`` int64, -100 where a token does not count. Shifted
                here, as transformers does: the logits at position t are scored against
                ``labels[:, t + 1]``.
            past_key_values: the recurrent state ``(h, c)``, each ``(n_layer, batch_size,
                n_hidden)`` float32, returned by an earlier call with ``use_cache``; None
                starts from zeros.
            use_cache: return the final state as ``past_key_values`` (for sampling).

        Returns:
            ``CausalLMOutputWithPast`` with ``loss`` (0-dim, mean nats per counted token, or
            None), ``logits`` ``(batch_size, seq_len, vocab_size)`` and ``past_key_values``
            (the final ``(h, c)``, or None without ``use_cache``).
        """
        if attention_mask is not None and bool((attention_mask[:, 1:] > attention_mask[:, :-1]).any()):
            raise ValueError("LSTMLanguageModel takes right-padded batches only (a 0 before a 1 in attention_mask)")
        x = self.drop(self.embed(input_ids))  # (B, T, E)
        # The recurrence runs in float32 even under autocast: cuDNN and CPU kernels lack bf16
        # LSTMs on some versions, and the state carried over many steps keeps its precision.
        # The output layer (the costly V-wide product) still runs in the autocast dtype.
        with torch.autocast(device_type=x.device.type, enabled=False):
            state = None if past_key_values is None else tuple(s.float() for s in past_key_values)
            h, new_state = self.lstm(x.float(), state)  # (B, T, H); ((L, B, H), (L, B, H))
        h = self.drop(h)
        if self.proj is not None:
            h = self.proj(h)  # (B, T, E)
        logits = self.lm_head(h)  # (B, T, V)
        loss = None
        if labels is not None:
            nats, count = token_nll(logits, labels).sum(), (labels[:, 1:] != IGNORE_INDEX).sum()
            loss = nats / count.clamp(min=1)  # mean nats per counted token
        return causal_lm_output(logits, new_state if use_cache else None, loss)


def build_lstm(config: LSTMConfig, tokenizer) -> LSTMLanguageModel:
    """A fresh LSTM LM sized by ``config`` for ``tokenizer``.

    Raises:
        TextopiaError: a size is out of range.
    """
    return LSTMLanguageModel(config, vocab_size=len(tokenizer))


# Default save and load (checkpoint.py): safetensors.torch.save_model / load_model, which store
# the tied embedding once and restore the tie.
register(ModelSpec("lstm", LSTMConfig, build_lstm, role=CausalLM))
