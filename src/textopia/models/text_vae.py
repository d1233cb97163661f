"""The text VAE: a bidirectional LSTM encoder, a diagonal Gaussian posterior, an LSTM decoder.

::

    prompt tokens (B, L) ─▶ embedding ─▶ biLSTM ─▶ [h_fwd; h_bwd] (B, 2·He) ─▶ μ, log σ² (B, nz)
    z = μ + σ·ε,  ε ~ N(0, I)                                   (reparameterisation)
    decoder input (B, T): ``[<|idea|> idea] <|prompt|> prompt`` with word dropout
        ─▶ [embedding; z] (B, T, E + nz) ─▶ LSTM (initial state from z) ─▶ logits (B, T, V)

The decoder reads the same examples as the LSTM and GPT language models, so it can be
conditioned on an idea (the idea part is dropped in ``p_unconditional`` of the training
examples); the encoder reads only the prompt and its EOS.

The training objective (per sentence, averaged over the batch; divided by the mean number of
counted tokens so that the learning rate means what it means for the LMs)::

    J = λ_recon · L_recon + β(t) · KL + λ_div · L_div

* ``L_recon = -log p(x | z, idea)``: summed over the prompt's tokens and EOS (nats).
* ``KL = KL(q(z|x) || N(0, I))`` (nats), with free bits per dimension when ``free_bits > 0``:
  ``Σ_j max(λ_fb, E_batch[KL_j])`` (Kingma et al. 2016, "Improved Variational Inference with
  Inverse Autoregressive Flow", §C.8). β(t) follows the KL annealing schedule, set by the
  trainer (:func:`textopia.models.latent_objective.kl_beta`).
* ``L_div = MMD(q(z), p(z))``: the maximum mean discrepancy between the batch's posterior
  samples (the aggregate posterior) and draws from the prior (InfoVAE, Zhao et al. 2019, eq. 6;
  Gretton et al. 2012, the unbiased estimator with a Gaussian kernel). It rewards an aggregate
  posterior that fills the prior: samples from N(0, I) then land where real prompts live, so they
  decode to varied *and* meaningful prompts, while it does not push each q(z|x) towards the
  prior (the per-example KL does that), so the code can keep information about x.

Word dropout (Bowman et al. 2016, "Generating Sentences from a Continuous Space", §3.2):
during training each prompt token fed to the decoder is replaced by ``<|pad|>`` (acting as UNK)
with probability ``word_dropout``, so the decoder must lean on z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from textopia.bounds import MAX_STEPS, bounded, check_fields
from textopia.data.tokenizer import IGNORE_INDEX
from textopia.errors import TextopiaError
from textopia.models.latent_objective import (
    KL_SCHEDULES,
    active_units,
    annealed_kl_weight,
    check_objective,
    free_bits_kl,
    gaussian_kl,
    mmd,
    reparameterize,
    word_dropout,
)
from textopia.models.likelihood import token_nll
from textopia.models.lstm_lm import init_embedding_and_head
from textopia.models.outputs import causal_lm_output
from textopia.models.spec import LatentAutoencoder, ModelSpec, register



@dataclass
class VAEConfig:
    """Text VAE sizes and the terms of its training objective."""

    kind: str = "vae"
    n_positions: int = 256  # longest example (idea + prompt + EOS), tokens
    n_embd: int = 256  # token embedding width, shared by encoder and decoder
    n_hidden_enc: int = 128  # encoder LSTM units per direction
    bidirectional: bool = True  # biLSTM encoder (final states of both directions)
    n_hidden: int = 256  # decoder LSTM units
    n_layer: int = 1  # decoder LSTM layers
    latent_dim: int = 32  # nz, the size of z
    dropout: float = bounded(0.0, 0, 1, high_open=True)  # on decoder embeddings and outputs
    word_dropout: float = bounded(0.0, 0, 1, high_open=True)  # P(a decoder input token -> UNK) (Bowman et al. 2016)
    z_to_inputs: bool = True  # concatenate z to every decoder input embedding
    z_to_state: bool = True  # the decoder's initial (h, c) is a function of z
    tie_weights: bool = True  # output layer reuses the embedding (through a projection if needed)
    init_range: float = 0.1
    # The objective.
    lambda_recon: float = bounded(1.0, 0, 1e6)  # weight of the reconstruction NLL
    lambda_div: float = bounded(0.0, 0, 1e6)  # weight of L_div (MMD between aggregate posterior and prior)
    mmd_kernel_scale: float = bounded(1.0, 0, 1e6, low_open=True)  # k(a, b) = exp(-|a - b|² / (2 · scale · nz))
    free_bits: float = bounded(0.0, 0, 1e3)  # nats per latent dimension (Kingma et al. 2016); 0 disables
    kl_schedule: str = bounded("linear", choices=KL_SCHEDULES)  # "constant", "linear" or "cyclical" (Fu et al. 2019)
    beta_max: float = bounded(1.0, 0, 1e3)  # the KL weight reached by the schedule
    kl_anneal_steps: int = bounded(2000, 0, MAX_STEPS)  # linear: steps to beta_max; cyclical: steps of all cycles
    kl_cycles: int = bounded(4, 1, MAX_STEPS)  # cyclical: M, the number of cycles
    kl_ratio: float = bounded(0.5, 0, 1, low_open=True)  # cyclical: R, the share of each cycle spent rising
    kl_start: float = bounded(0.0, 0, 1e3)  # the KL weight at step 0 (linear and cyclical)
    unk_id: int | None = bounded(None, 0)  # set from the tokenizer at build: the word-dropout token

    def __post_init__(self) -> None:
        check_fields(self, "model")


@dataclass
class VAEOutput:
    """What :meth:`TextVAE.forward` returns.

    Attributes:
        loss: 0-dim, the objective J divided by the mean counted tokens per example (or None).
        logits: (B, T, V) float.
        past_key_values: the decoder's final (h, c) when ``use_cache``.
        metrics: each term on its own, as floats (nats per example unless named otherwise).
        mu, logvar: (B, nz), the posterior (None when z was given).
    """

    loss: torch.Tensor | None
    logits: torch.Tensor
    past_key_values: Any = None
    metrics: dict[str, float] = field(default_factory=dict)
    mu: torch.Tensor | None = None
    logvar: torch.Tensor | None = None


def prompt_tokens(input_ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The counted tokens (prompt + EOS) of each row, moved to the left.

    Args:
        input_ids: (B, T) int64 examples; labels: (B, T) int64, -100 outside the prompt body.

    Returns:
        ``(ids, lengths)``: (B, L) int64 (padded with 0), (B,) int64, L = the longest body.

    Raises:
        ValueError: a row has no counted token.
    """
    counted = labels != IGNORE_INDEX  # (B, T)
    lengths = counted.sum(dim=1)
    if bool((lengths == 0).any()):
        raise ValueError("an example has no prompt tokens to encode")
    start = counted.float().argmax(dim=1)  # (B,) first counted position
    width = int(lengths.max())
    pos = start[:, None] + torch.arange(width, device=input_ids.device)[None, :]  # (B, L)
    pos = pos.clamp(max=input_ids.size(1) - 1)
    ids = input_ids.gather(1, pos)
    valid = torch.arange(width, device=input_ids.device)[None, :] < lengths[:, None]
    return ids.masked_fill(~valid, 0), lengths


class TextVAE(nn.Module):
    """The text VAE (see the module docstring).

    Args:
        config: sizes and loss settings.
        vocab_size: ``len(tokenizer)``.

    Attributes:
        kl_weight: β, the KL weight used by ``forward`` (set by the trainer each step).
    """

    def __init__(self, config: VAEConfig, vocab_size: int) -> None:
        super().__init__()
        if min(config.n_layer, config.n_embd, config.n_hidden, config.n_hidden_enc, config.latent_dim) < 1:
            raise TextopiaError("n_layer, n_embd, n_hidden, n_hidden_enc and latent_dim must be >= 1")
        check_objective(config, "VAEConfig", "build_vae")
        self.config = config
        self.vocab_size = vocab_size
        nz, e, h = config.latent_dim, config.n_embd, config.n_hidden
        self.embed = nn.Embedding(vocab_size, e)
        self.encoder = nn.LSTM(e, config.n_hidden_enc, batch_first=True, bidirectional=config.bidirectional)
        enc_out = config.n_hidden_enc * (2 if config.bidirectional else 1)
        self.to_posterior = nn.Linear(enc_out, 2 * nz)
        self.drop = nn.Dropout(config.dropout)
        self.decoder = nn.LSTM(e + (nz if config.z_to_inputs else 0), h, num_layers=config.n_layer, batch_first=True)
        self.z_to_state = nn.Linear(nz, 2 * config.n_layer * h) if config.z_to_state else None
        self.proj = None
        out_width = h
        if config.tie_weights and h != e:
            self.proj = nn.Linear(h, e, bias=False)
            out_width = e
        self.lm_head = nn.Linear(out_width, vocab_size)
        if config.tie_weights:
            self.lm_head.weight = self.embed.weight
        self.kl_weight = float(config.beta_max if config.kl_schedule == "constant" else config.kl_start)
        self._init_weights()

    def set_step(self, step: int) -> None:
        """Set the KL weight β for optimizer ``step`` from the config's annealing schedule (the
        training loop calls this before each step; :func:`~textopia.models.latent_objective.kl_beta`)."""
        self.kl_weight = annealed_kl_weight(self.config, step)

    def _init_weights(self) -> None:
        init_embedding_and_head(self.embed, self.lm_head, self.config.init_range, self.config.tie_weights)
        # Start with a posterior close to the prior (small means, unit variances).
        nn.init.normal_(self.to_posterior.weight, std=0.01)
        nn.init.zeros_(self.to_posterior.bias)
        for lstm in (self.encoder, self.decoder):
            hsz = lstm.hidden_size
            for name, p in lstm.named_parameters():
                if name.startswith("bias_ih"):
                    with torch.no_grad():
                        p[hsz : 2 * hsz].fill_(1.0)  # forget gate open (Jozefowicz et al. 2015)

    # -- encoder -------------------------------------------------------------------------------
    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior q(z | x) of each prompt.

        Args:
            ids: (B, L) int64 prompt tokens (with EOS), left-aligned; lengths: (B,) int64 >= 1.

        Returns:
            ``(mu, logvar)``, each (B, nz) float32.
        """
        x = self.embed(ids).float()  # (B, L, E)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.encoder(packed)  # h_n: (directions, B, He)
        h = torch.cat(list(h_n), dim=-1)  # (B, directions · He)
        mu, logvar = self.to_posterior(h).chunk(2, dim=-1)
        return mu, logvar

    # -- decoder -------------------------------------------------------------------------------
    def initial_state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The decoder's (h0, c0), each (n_layer, B, H), from z (B, nz); None if not used."""
        if self.z_to_state is None:
            return None
        b = z.size(0)
        hc = self.z_to_state(z).view(b, 2, self.config.n_layer, self.config.n_hidden)
        return torch.tanh(hc[:, 0]).transpose(0, 1).contiguous(), hc[:, 1].transpose(0, 1).contiguous()

    def decode(self, input_ids: torch.Tensor, z: torch.Tensor, state=None) -> tuple[torch.Tensor, Any]:
        """Logits of p(x_t | x_<t, z).

        Args:
            input_ids: (B, T) int64 decoder inputs.
            z: (B, nz) float latents.
            state: the (h, c) carried from an earlier call, or None to start from z.

        Returns:
            ``(logits (B, T, V), (h, c))``.
        """
        x = self.drop(self.embed(input_ids)).float()  # (B, T, E)
        if self.config.z_to_inputs:
            x = torch.cat([x, z[:, None, :].expand(-1, x.size(1), -1).to(x.dtype)], dim=-1)
        # The recurrence and its initial state run in float32 even under autocast: the CPU's
        # LSTM kernel refuses a bf16 state with fp32 inputs (and the state needs the precision).
        with torch.autocast(device_type=x.device.type, enabled=False):
            if state is None:
                state = self.initial_state(z.float())
            if state is not None:
                state = tuple(s.float() for s in state)
            h, new_state = self.decoder(x, state)
        h = self.drop(h)
        if self.proj is not None:
            h = self.proj(h)
        return self.lm_head(h), new_state

    def word_dropout(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Replace prompt tokens among the decoder inputs by UNK with probability ``word_dropout``
        in training (:func:`~textopia.models.latent_objective.word_dropout`)."""
        if not self.training:
            return input_ids
        return word_dropout(input_ids, labels, self.config.word_dropout, self.config.unk_id)

    # -- the objective -------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
    ) -> VAEOutput:
        """Encode the prompts of a batch, sample z, decode, and score the objective.

        Args:
            input_ids: (B, T) int64 examples (``[<|idea|> idea] <|prompt|> prompt EOS``),
                right-padded.
            attention_mask: (B, T), unused (the recurrences run left to right; padding adds no loss).
            labels: (B, T) int64, -100 outside prompt + EOS. Needed unless ``z`` is given.
            z: (B, nz) latents to decode instead of encoding (no loss then).

        Returns:
            :class:`VAEOutput`. ``metrics``: ``recon`` (nats per example), ``recon_per_token``,
            ``kl`` (nats per example, before free bits), ``kl_term`` (after free bits), ``mmd``,
            ``beta``, ``elbo`` (-(recon + kl), nats per example).

        Raises:
            ValueError: neither ``labels`` nor ``z`` given, or an example with no prompt token.
        """
        if z is not None:
            logits, _ = self.decode(input_ids, z)
            return VAEOutput(loss=None, logits=logits)
        if labels is None:
            raise ValueError("TextVAE.forward needs labels (to find the prompt to encode) or z")
        cfg = self.config
        enc_ids, lengths = prompt_tokens(input_ids, labels)
        mu, logvar = self.encode(enc_ids, lengths)
        z = reparameterize(mu, logvar) if self.training else mu
        logits, _ = self.decode(self.word_dropout(input_ids, labels), z)
        nll = token_nll(logits, labels)  # (B,) nats per example
        tokens = (labels[:, 1:] != IGNORE_INDEX).sum()
        recon = nll.mean()
        kl_dims = gaussian_kl(mu, logvar)  # (B, nz)
        kl = kl_dims.sum(dim=1).mean()
        kl_term = free_bits_kl(kl_dims, cfg.free_bits)
        div = torch.zeros((), device=mu.device)
        if cfg.lambda_div > 0 and mu.size(0) >= 2:
            prior = torch.randn_like(z)
            div = mmd(z, prior, cfg.mmd_kernel_scale)
        objective = cfg.lambda_recon * recon + self.kl_weight * kl_term + cfg.lambda_div * div
        loss = objective * mu.size(0) / tokens.clamp(min=1)
        metrics = {
            "recon": float(recon.detach()),
            "recon_per_token": float(nll.sum().detach() / tokens.clamp(min=1)),
            "kl": float(kl.detach()),
            "kl_term": float(kl_term.detach()),
            "mmd": float(div.detach()),
            "beta": self.kl_weight,
            "elbo": -float((recon + kl).detach()),
        }
        return VAEOutput(loss=loss, logits=logits, metrics=metrics, mu=mu, logvar=logvar)


class ConditionedDecoder(nn.Module):
    """The VAE's decoder with z fixed, shaped like a causal LM for the sampling loop.

    ``forward(input_ids, past_key_values=None, use_cache=False)`` returns a
    ``CausalLMOutputWithPast``; ``z`` (N, nz) has one row per sequence of the batch.
    """

    def __init__(self, vae: TextVAE, z: torch.Tensor) -> None:
        super().__init__()
        self.vae = vae
        self.register_buffer("z", z, persistent=False)
        self.config = vae.config

    def forward(self, input_ids, attention_mask=None, past_key_values=None, use_cache=False, labels=None):
        z = self.z
        if past_key_values is None and z.size(0) != input_ids.size(0):  # later calls may drop finished rows
            raise ValueError(f"z has {z.size(0)} rows for a batch of {input_ids.size(0)}")
        logits, state = self.vae.decode(input_ids, z, past_key_values)
        return causal_lm_output(logits, state if use_cache else None)


def build_vae(config: VAEConfig, tokenizer) -> TextVAE:
    """A fresh text VAE for ``tokenizer``; word dropout uses its pad token as UNK.

    Raises:
        TextopiaError: a size or setting is out of range.
    """
    if config.unk_id is None:
        config.unk_id = tokenizer.pad_id
    return TextVAE(config, vocab_size=len(tokenizer))


@torch.no_grad()
def posterior_batches(model: TextVAE, tokenizer, prompts: list[str], *, max_length: int = 256,
                      batch_size: int = 64, device=None, ideas: str = "none"):
    """Yield ``(batch, mu, logvar)`` for ``prompts`` in batches of similar length.

    ``batch`` holds ``input_ids``, ``attention_mask`` and ``labels`` (B, T) on ``device`` as
    :func:`textopia.data.batching.collate` makes them; ``mu`` and ``logvar`` are (B, nz).
    """
    from textopia.data.batching import ExampleConfig, PromptDataset, collate

    device = device or next(model.parameters()).device
    dataset = PromptDataset(prompts, tokenizer, ExampleConfig(max_length=max_length), ideas=ideas)
    lengths = dataset.lengths()
    order = sorted(range(len(dataset)), key=lengths.__getitem__)
    for i in range(0, len(order), batch_size):
        batch = collate([dataset[j] for j in order[i : i + batch_size]], tokenizer.pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        enc_ids, enc_lengths = prompt_tokens(batch["input_ids"], batch["labels"])
        mu, logvar = model.encode(enc_ids, enc_lengths)
        yield batch, mu, logvar


@torch.no_grad()
def validation_figures(model: TextVAE, tokenizer, prompts: list[str], *, max_length: int = 256,
                       batch_size: int = 64, device=None, seed: int = 0) -> dict[str, float]:
    """Single-sample ELBO terms and active units of ``prompts`` (the trainer's periodic check).

    Returns:
        ``recon`` and ``kl`` (nats per prompt), ``recon_per_token``, ``elbo_nll_per_token``
        (-ELBO over counted tokens: an upper bound of the CE), ``elbo_perplexity``,
        ``active_units``.
    """
    was_training = model.training
    model.eval()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    recon = kl = 0.0
    tokens = n = 0
    means = []
    for batch, mu, logvar in posterior_batches(model, tokenizer, prompts, max_length=max_length,
                                               batch_size=batch_size, device=device):
        z = reparameterize(mu.cpu(), logvar.cpu(), generator=gen).to(mu.device)
        logits, _ = model.decode(batch["input_ids"], z)
        recon += float(token_nll(logits, batch["labels"]).sum())
        kl += float(gaussian_kl(mu, logvar).sum())
        tokens += int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        n += mu.size(0)
        means.append(mu.cpu())
    model.train(was_training)
    nll = (recon + kl) / max(1, tokens)
    return {
        "recon": recon / max(1, n), "kl": kl / max(1, n), "recon_per_token": recon / max(1, tokens),
        "elbo_nll_per_token": nll, "elbo_perplexity": math.exp(min(nll, 700.0)),
        "active_units": float(active_units(torch.cat(means))) if n >= 2 else 0.0,
    }


register(ModelSpec("vae", VAEConfig, build_vae, role=LatentAutoencoder, validate=validation_figures))
