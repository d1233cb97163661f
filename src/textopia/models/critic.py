"""The coherence critic: a small transformer that tells human prompts from a writer's samples.

Residual energy-based reranking (Deng et al. 2020, "Residual Energy-Based Models for Text
Generation", ICLR, section 3): with a language model P_LM as the proposal, the joint model is
P(x) ∝ P_LM(x) · exp(-E(x)), and a classifier trained to tell real text (label 1) from P_LM's
samples (label 0) gives the energy as its negated logit, E(x) = -logit(x). Drawing candidates from
P_LM and keeping the one of highest logit is the argmax limit of the paper's importance
resampling (weights ∝ exp(-E(x))); the reranker (:mod:`textopia.generation.rerank`) does that.

The critic is transformers' ``GPT2ForSequenceClassification`` with one label (the logit of
"human"), read at each row's last real token; its input is the prompt's tokens and EOS (the same
tokenizer as the writer), at most :attr:`CriticConfig.n_positions` of them. A critic directory is a
transformers checkpoint (``config.json`` with Textopia's settings under ``"textopia"``,
``model.safetensors``, the tokenizer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textopia.bounds import bounded, check_fields
from textopia.errors import TextopiaError
from textopia.models.spec import ModelSpec, Role, register

if TYPE_CHECKING:
    import torch


#: A checkpoint's own critic lives in a folder of this name inside it (exports carry it along).
CRITIC_DIR = "critic"


class Critic(Role):
    """A classifier of whole prompts: one logit per prompt (log-odds that a person wrote it)."""


@dataclass
class CriticConfig:
    """The critic's sizes (a GPT-2 body with a one-label classification head)."""

    kind: str = "critic"
    n_positions: int = 128  # tokens read per prompt (EOS included); longer prompts are cut
    n_embd: int = 128  # width of the residual stream
    n_layer: int = 2  # transformer blocks
    n_head: int = 4  # attention heads (n_embd must divide by it)
    dropout: float = bounded(0.1, 0, 1, high_open=True)  # residual, embedding and attention dropout

    def __post_init__(self) -> None:
        check_fields(self, "model")


def build_critic(config: CriticConfig, tokenizer):
    """A fresh critic sized by ``config`` for ``tokenizer``.

    Raises:
        TextopiaError: ``n_embd`` is not a multiple of ``n_head``.
    """
    from transformers import GPT2Config, GPT2ForSequenceClassification

    if config.n_embd % config.n_head:
        raise TextopiaError(f"n_embd ({config.n_embd}) must be a multiple of n_head ({config.n_head})")
    hf_config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=config.n_positions, n_embd=config.n_embd,
        n_layer=config.n_layer, n_head=config.n_head, resid_pdrop=config.dropout,
        embd_pdrop=config.dropout, attn_pdrop=config.dropout, num_labels=1,
        bos_token_id=tokenizer.eos_id, eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id,
    )
    return GPT2ForSequenceClassification(hf_config)


def save_critic(model, directory: Path) -> None:
    """Write ``config.json`` (transformers') and ``model.safetensors``."""
    model.save_pretrained(str(directory), safe_serialization=True)


def load_critic(directory: Path, config: CriticConfig):
    """Load the classifier of a critic directory: transformers' config, then ``model.safetensors``
    strictly (no download, no progress bar)."""
    from safetensors.torch import load_model
    from transformers import GPT2Config, GPT2ForSequenceClassification

    model = GPT2ForSequenceClassification(GPT2Config.from_pretrained(str(directory)))
    load_model(model, str(Path(directory) / "model.safetensors"))
    return model


register(ModelSpec(name="critic", config_cls=CriticConfig, build=build_critic, load=load_critic, save=save_critic,
                   role=Critic))


def critic_rows(tokenizer, prompts: Sequence[str], max_length: int) -> list[list[int]]:
    """What the critic reads of each prompt: its tokens and EOS, cut to ``max_length``."""
    return [(ids + [tokenizer.eos_id])[:max_length] for ids in tokenizer.encode_batch(list(prompts))]


def pad_rows(rows: Sequence[list[int]], pad_id: int, multiple: int = 1) -> dict[str, torch.Tensor]:
    """Right-pad token rows to the longest, rounded up to a ``multiple`` of tokens.

    Returns:
        ``input_ids`` (N, T) int64 (``pad_id`` after each row's end) and ``attention_mask`` (N, T)
        int64 (1 = real token).
    """
    import torch

    width = -(-max((len(r) for r in rows), default=1) // multiple) * multiple
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        attention_mask[i, : len(r)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def critic_inputs(tokenizer, prompts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Right-padded critic input for ``prompts`` (:func:`critic_rows`, :func:`pad_rows`)."""
    return pad_rows(critic_rows(tokenizer, prompts, max_length), tokenizer.pad_id)


def critic_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The critic's logit per row, (N,) float32, read at each row's last token that is not
    padding (transformers' pooling; the pad token never occurs inside a prompt)."""
    return model(input_ids=input_ids, attention_mask=attention_mask).logits.squeeze(-1).float()


#: Prompts the critic reads per batch (:meth:`CoherenceCritic.logits`).
BATCH_ROWS = 32


class CoherenceCritic:
    """A trained critic ready to score prompts (eval mode, no gradients); a critic checkpoint
    loads as one with :func:`textopia.models.checkpoint.load_coherence_critic`.

    Args:
        model: the ``GPT2ForSequenceClassification``.
        tokenizer: its :class:`~textopia.data.tokenizer.PromptTokenizer`.
    """

    def __init__(self, model, tokenizer) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = int(model.config.n_positions)
        self.engine, self.score_weight = _engine_for(model)

    def _logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """:func:`critic_logits` of a right-padded batch: through the lean GPT-2 engine where it
        runs this critic exactly (the same trunk in float32, read at each row's last real token),
        else through transformers."""
        import torch

        if self.engine is None:
            return critic_logits(self.model, input_ids, attention_mask)
        hidden = self.engine.hidden_states(input_ids)  # (N, T, E)
        last = attention_mask.sum(dim=1) - 1  # (N,) each row's last real token
        pooled = hidden[torch.arange(hidden.size(0)), last]  # (N, E)
        return (pooled @ self.score_weight.t()).squeeze(-1).float()

    def logits(self, prompts: Sequence[str], batch_size: int = BATCH_ROWS) -> torch.Tensor:
        """Log-odds that a person wrote each prompt: (N,) float32 (the negated energy, -E(x)), in
        the order given. Prompts are read in batches of up to ``batch_size`` of similar length
        (sorted by tokens), so that a batch is padded to little more than its own rows: a
        reranker's candidates run from 10 to 77 tokens.

        Raises:
            TextopiaError: ``prompts`` is empty.
        """
        import torch

        if not prompts:
            raise TextopiaError("the critic needs at least one prompt to score")
        rows = critic_rows(self.tokenizer, prompts, self.max_length)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        out = torch.empty(len(rows), dtype=torch.float32)
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                out[chunk] = self._logits(**pad_rows([rows[i] for i in chunk], self.tokenizer.pad_id))
        return out


def _engine_for(model):
    """``(engine, score_weight)``: the lean GPT-2 engine (:mod:`textopia.models.gpt_engine`) over
    the critic's trunk and its head's weight (1, E), where the engine runs this configuration
    exactly; ``(None, None)`` otherwise. With the batches sorted by length, 128 test prompts took
    0.073 s against transformers' 0.213 s on one thread, logits within 2e-6
    (``python -m benchmarks critic_speed``: ``benchmarks/results/critic_speed/``)."""
    from textopia.models.gpt_engine import EngineConfig, GPT2Engine, supports

    config = model.config.to_dict()
    state = model.state_dict()
    if (not supports({**config, "architectures": ["GPT2LMHeadModel"]}) or config.get("num_labels", 1) != 1
            or "score.weight" not in state or "score.bias" in state):
        return None, None
    weights = {name: tensor.detach().float() for name, tensor in state.items() if name.startswith("transformer.")}
    try:
        engine = GPT2Engine(EngineConfig.from_json(config), weights)
    except (KeyError, ValueError):
        return None, None
    return engine.eval(), state["score.weight"].detach().float()
