"""The prompt autoencoder: a transformer that compresses a prompt to a short latent sequence and
a GPT-2 decoder that writes the prompt back from it.

::

    prompt tokens + EOS (B, L) ─▶ wte + encoder positions ─▶ [K learned queries; tokens]
        ─▶ bidirectional transformer encoder ─▶ outputs at the K query slots (B, K, E)
        ─▶ Linear ─▶ μ, log σ² (B, K, dz)          q(z|x) = N(μ, diag σ²), flattened to (B, K·dz)
    z ~ q(z|x) (rsample) [+ latent_noise · ε]     during training; μ when decoding a prompt back
    decoder input: [Linear(z_k) + latent position]_k=1..K  ++  wte(``[<|idea|> idea] <|prompt|> prompt``)
        ─▶ GPT-2 (causal) ─▶ logits of the prompt's tokens and EOS (B, T, V)

The latent is a *sequence* of K vectors of dz numbers (16 x 32 by default), not one vector: a
prompt's subject, its style and its artists each have room, as in latent diffusion for language
(Lovelace et al. 2023, "Latent Diffusion for Language Generation", §3: a compression network of
learned queries over a frozen encoder, and a decoder that reads the latent). Here the encoder is
trained with the rest; the decoder starts from the embedded default GPT (same tokenizer) when
``init_from`` names it, so it writes fluent prompts from the first step and only has to learn to
read the latent prefix.

It is still a VAE in the sense of Textopia's other latent model (:mod:`textopia.models.text_vae`),
with the same objective, per prompt::

    J = λ_recon · L_recon + β(t) · KL(q(z|x) ‖ N(0, I)) + λ_div · MMD(q(z), N(0, I))

(free bits per latent number when ``free_bits > 0``; β(t) set each step by the trainer's KL
schedule), divided by the mean counted tokens per example. The posterior noise, plus
``latent_noise`` on top of it, is what makes the latent space smooth: nearby latents must decode
to the same prompt, so that a denoiser's imperfect latents, interpolation paths and variations
decode to fluent prompts (LD4LG, §3.1, trains its decoder on noised latents for this reason).

The Gaussian math is :mod:`torch.distributions` (``Normal``, ``rsample``, ``kl_divergence``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from textopia.bounds import MAX_STEPS, bounded, check_fields
from textopia.data.tokenizer import IGNORE_INDEX
from textopia.errors import TextopiaError
from textopia.models.latent_objective import (
    KL_SCHEDULES,
    annealed_kl_weight,
    check_objective,
    free_bits_kl,
    gaussian_kl,
    mmd,
    prior_like,
    word_dropout,
)
from textopia.models.latent_objective import posterior as gaussian_posterior
from textopia.models.likelihood import token_nll
from textopia.models.outputs import output_cache
from textopia.models.spec import LatentAutoencoder, ModelSpec, register
from textopia.models.text_vae import VAEOutput, prompt_tokens

KIND = "prompt-ae"
# log σ² of the posterior at initialisation (σ ≈ 0.08). With σ = 1 the first latents are nearly
# pure noise, the pretrained decoder learns to ignore them, and the posterior collapses (measured:
# 220 steps at the language model's 3.46 nats per token, token accuracy 0.41, no gain).
INIT_LOGVAR = -5.0


@dataclass
class PromptAEConfig:
    """Sizes of the prompt autoencoder and the terms of its objective."""

    kind: str = KIND
    n_positions: int = 240  # longest example (idea + prompt + EOS) the decoder reads, tokens (K more with the latent)
    n_embd: int = 256  # E: token embedding and transformer width, encoder and decoder
    n_head: int = 4  # attention heads, encoder and decoder
    n_layer: int = 4  # decoder (GPT-2) blocks
    n_layer_enc: int = 3  # encoder blocks
    n_latents: int = 16  # K: vectors in the latent sequence
    latent_width: int = 32  # dz: numbers per latent vector
    latent_dim: int = 512  # K · dz, the flattened latent (derived; kept for the latent tools)
    dropout: float = bounded(0.0, 0, 1, high_open=True)  # inside the transformers
    word_dropout: float = bounded(0.0, 0, 1, high_open=True)  # P(a decoder input token -> UNK) (Bowman et al. 2016)
    latent_noise: float = bounded(0.0, 0, 1e3)  # std of extra Gaussian noise on z in training, beyond q's
    train_encoder: bool = True  # False: the encoder is frozen (a decoder fine-tune that keeps every latent)
    init_from: str | None = None  # a GPT checkpoint (the decoder starts there) or a prompt-ae checkpoint (all of it)
    initialized_from: str | None = None  # provenance: where the decoder started (set by the build)
    # The objective (as the text VAE's).
    lambda_recon: float = bounded(1.0, 0, 1e6)
    lambda_div: float = bounded(0.0, 0, 1e6)  # weight of MMD(aggregate posterior, prior)
    mmd_kernel_scale: float = bounded(1.0, 0, 1e6, low_open=True)
    free_bits: float = bounded(0.0, 0, 1e3)  # nats per latent number
    kl_schedule: str = bounded("linear", choices=KL_SCHEDULES)  # "constant", "linear" or "cyclical"
    beta_max: float = bounded(0.02, 0, 1e3)  # the KL weight reached by the schedule
    kl_anneal_steps: int = bounded(1000, 0, MAX_STEPS)
    kl_cycles: int = bounded(4, 1, MAX_STEPS)
    kl_ratio: float = bounded(0.5, 0, 1, low_open=True)
    kl_start: float = bounded(0.0, 0, 1e3)
    unk_id: int | None = bounded(None, 0)  # set from the tokenizer at build

    def __post_init__(self) -> None:
        check_fields(self, "model")
        self.latent_dim = self.n_latents * self.latent_width


class PromptAE(nn.Module):
    """The prompt autoencoder (see the module docstring).

    Args:
        config: sizes and loss settings; vocab_size: ``len(tokenizer)``.

    Attributes:
        kl_weight: β, the KL weight used by ``forward`` (set by the trainer each step).
        greedy_overrides: greedy decoding of a latent without the loop guards (repetition
            penalty, n-gram ban): a prompt that repeats a word is reconstructed as it is. Measured on
            the first 100 valid prompts with the shipped autoencoder: BLEU 66.6 without the guards,
            63.6 with them.
    """

    greedy_overrides = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0}

    def __init__(self, config: PromptAEConfig, vocab_size: int) -> None:
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        c = config
        if min(c.n_positions, c.n_embd, c.n_head, c.n_layer, c.n_layer_enc, c.n_latents, c.latent_width) < 1:
            raise TextopiaError("the prompt autoencoder's sizes must all be >= 1")
        if c.n_embd % c.n_head:
            raise TextopiaError(f"n_embd ({c.n_embd}) must be a multiple of n_head ({c.n_head})")
        check_objective(c, "PromptAEConfig", "build_prompt_ae")
        if not (c.latent_noise >= 0 and math.isfinite(c.latent_noise)):
            raise TextopiaError(f"latent_noise must be a finite number >= 0, got {c.latent_noise}")
        self.config = c
        self.vocab_size = vocab_size
        e = c.n_embd
        self.decoder = GPT2LMHeadModel(GPT2Config(
            vocab_size=vocab_size, n_positions=c.n_positions + c.n_latents, n_embd=e, n_layer=c.n_layer,
            n_head=c.n_head, resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout,
            bos_token_id=0, eos_token_id=0,
        ))
        self.enc_positions = nn.Embedding(c.n_positions, e)
        self.queries = nn.Parameter(torch.randn(c.n_latents, e) * 0.02)  # (K, E)
        layer = nn.TransformerEncoderLayer(e, c.n_head, 4 * e, c.dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.n_layer_enc, enable_nested_tensor=False)
        self.enc_norm = nn.LayerNorm(e)
        self.to_posterior = nn.Linear(e, 2 * c.latent_width)
        self.from_latent = nn.Linear(c.latent_width, e)
        self.latent_positions = nn.Parameter(torch.zeros(c.n_latents, e))  # (K, E)
        nn.init.normal_(self.enc_positions.weight, std=0.02)
        nn.init.normal_(self.to_posterior.weight, std=0.02)
        with torch.no_grad():  # start with little noise: the latent carries the prompt from the first step
            self.to_posterior.bias.zero_()
            self.to_posterior.bias[c.latent_width:].fill_(INIT_LOGVAR)
        self.kl_weight = float(c.beta_max if c.kl_schedule == "constant" else c.kl_start)

    def set_step(self, step: int) -> None:
        """Set the KL weight β for optimizer ``step`` from the config's annealing schedule (the
        training loop calls this before each step; :func:`~textopia.models.latent_objective.kl_beta`)."""
        self.kl_weight = annealed_kl_weight(self.config, step)

    def _apply(self, fn, *args, **kwargs):  # .to(device), .half(), ...: the decoding engine follows
        self.__dict__.pop("_engine", None)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True) -> "PromptAE":
        self.__dict__.pop("_engine", None)  # its packed copies would go stale as the weights train
        return super().train(mode)

    def decoding_engine(self):
        """The lean GPT-2 engine (:mod:`textopia.models.gpt_engine`) over the decoder's own weights
        (shared, not copied; float16-packed on the CPU, whose perplexity equals float32's to 1e-6),
        used by :meth:`decode` in eval mode; None where the engine cannot run this decoder. Kept
        outside the module's parameters and state dict; dropped on ``train()`` or a device move."""
        if "_engine" not in self.__dict__:
            from textopia.models.gpt_engine import EngineConfig, GPT2Engine, supports

            config = self.decoder.config.to_dict()
            engine = None
            if supports(config):
                engine = GPT2Engine(EngineConfig.from_json(config), self.decoder.state_dict()).eval()
                engine.set_weight_dtype("float16")
            self.__dict__["_engine"] = engine  # not a submodule: no second copy in the state dict
        return self.__dict__["_engine"]

    @property
    def embed(self) -> nn.Embedding:
        """The token embedding (V, E), shared by the encoder, the decoder and its output layer."""
        return self.decoder.transformer.wte

    # -- encoder -------------------------------------------------------------------------------
    def posterior(self, ids: torch.Tensor, lengths: torch.Tensor) -> Normal:
        """q(z | x) of each prompt as a ``Normal`` with batch shape (B, K, dz), float32.

        Args:
            ids: (B, L) int64 prompt tokens with EOS, left-aligned; lengths: (B,) int64 in 1..L.
        """
        b, width = ids.shape
        if width > self.config.n_positions:
            ids, lengths = ids[:, : self.config.n_positions], lengths.clamp(max=self.config.n_positions)
            width = ids.size(1)
        pos = torch.arange(width, device=ids.device)
        x = self.embed(ids) + self.enc_positions(pos)[None]  # (B, L, E)
        seq = torch.cat([self.queries[None].expand(b, -1, -1).to(x.dtype), x], dim=1)  # (B, K + L, E)
        pad = torch.zeros((b, self.config.n_latents + width), dtype=torch.bool, device=ids.device)
        pad[:, self.config.n_latents:] = pos[None, :] >= lengths.to(ids.device)[:, None]
        h = self.encoder(seq, src_key_padding_mask=pad)[:, : self.config.n_latents]  # (B, K, E)
        mu, logvar = self.to_posterior(self.enc_norm(h)).float().chunk(2, dim=-1)  # (B, K, dz) each
        return gaussian_posterior(mu, logvar)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q(z | x), each (B, K·dz) float32 (the latent tools' flat layout)."""
        q = self.posterior(ids, lengths)
        b = ids.size(0)
        return q.loc.reshape(b, -1), (2.0 * q.scale.log()).reshape(b, -1)

    # -- decoder -------------------------------------------------------------------------------
    def prefix(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's latent prefix (B, K, E) from z (B, K·dz)."""
        c = self.config
        return self.from_latent(z.reshape(z.size(0), c.n_latents, c.latent_width)) + self.latent_positions[None]

    def decode(self, input_ids: torch.Tensor, z: torch.Tensor, state=None) -> tuple[torch.Tensor, Any]:
        """Logits of p(x_t | x_<t, z).

        Args:
            input_ids: (B, T) int64 decoder inputs (right-padded; causal attention ignores the padding).
            z: (B, K·dz) float latents.
            state: the decoder's cache from an earlier call (it already holds the prefix), or None.

        In eval mode without gradients or autocast, the decoder runs on :meth:`decoding_engine`
        (its cache is then the engine's); in training, where gradients are wanted, or under
        autocast, on transformers' model.

        Returns:
            ``(logits (B, T, V), cache)``.
        """
        # Under autocast (the trainer's bf16 validation) activations are not float32, which the
        # engine's packed kernels need: transformers' model runs there.
        fast = not (self.training or torch.is_grad_enabled() or torch.is_autocast_enabled(input_ids.device.type))
        engine = self.decoding_engine() if fast else None
        if state is not None:
            if engine is not None:
                out = engine(input_ids=input_ids, past_key_values=state, use_cache=True)
            else:
                out = self.decoder(input_ids, state, use_cache=True)  # the cache is the 2nd argument in every version
            return out.logits, output_cache(out)
        emb = self.embed(input_ids)
        inputs = torch.cat([self.prefix(z.to(emb.dtype)).to(emb.dtype), emb], dim=1)  # (B, K + T, E)
        if engine is not None:
            out = engine(inputs_embeds=inputs, use_cache=True)
        else:
            out = self.decoder(inputs_embeds=inputs, use_cache=not self.training)
        return out.logits[:, self.config.n_latents:], output_cache(out)

    # -- the objective -------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, z: torch.Tensor | None = None) -> VAEOutput:
        """Encode the prompts of a batch, draw z, decode, and score the objective.

        Args:
            input_ids: (B, T) int64 examples (``[<|idea|> idea] <|prompt|> prompt EOS``), right-padded.
            attention_mask: (B, T), unused (causal attention; padding is at the end and unscored).
            labels: (B, T) int64, -100 outside prompt + EOS. Needed unless ``z`` is given.
            z: (B, K·dz) latents to decode instead of encoding (no loss then).

        Returns:
            :class:`~textopia.models.text_vae.VAEOutput`; ``metrics`` as the text VAE's (nats per
            example unless named otherwise), with ``token_accuracy`` (teacher-forced argmax).

        Raises:
            ValueError: neither ``labels`` nor ``z`` given, or an example with no prompt token.
        """
        if z is not None:
            return VAEOutput(loss=None, logits=self.decode(input_ids, z)[0])
        if labels is None:
            raise ValueError("PromptAE.forward needs labels (to find the prompt to encode) or z")
        cfg = self.config
        enc_ids, lengths = prompt_tokens(input_ids, labels)
        with torch.set_grad_enabled(torch.is_grad_enabled() and cfg.train_encoder):
            q = self.posterior(enc_ids, lengths)  # batch shape (B, K, dz)
        b = input_ids.size(0)
        z = q.rsample() if self.training else q.loc
        if self.training and cfg.latent_noise > 0:
            z = z + cfg.latent_noise * torch.randn_like(z)
        z = z.reshape(b, -1)
        dropped = word_dropout(input_ids, labels, cfg.word_dropout if self.training else 0.0, cfg.unk_id)
        logits, _ = self.decode(dropped, z)
        shift_labels = labels[:, 1:]
        nll = token_nll(logits, labels)  # (B,) nats per example
        counted = shift_labels != IGNORE_INDEX
        tokens = counted.sum()
        recon = nll.mean()
        prior = prior_like(q)
        kl_dims = kl_divergence(q, prior).reshape(b, -1)  # (B, K·dz) nats
        kl = kl_dims.sum(dim=1).mean()
        kl_term = free_bits_kl(kl_dims, cfg.free_bits)
        div = torch.zeros((), device=z.device)
        if cfg.lambda_div > 0 and b >= 2:
            div = mmd(z.float(), torch.randn_like(z, dtype=torch.float32), cfg.mmd_kernel_scale)
        objective = cfg.lambda_recon * recon + self.kl_weight * kl_term + cfg.lambda_div * div
        loss = objective * b / tokens.clamp(min=1)
        with torch.no_grad():
            hits = ((logits[:, :-1].argmax(-1) == shift_labels) & counted).sum()
        n = tokens.clamp(min=1)
        metrics = {
            "recon": float(recon.detach()), "recon_per_token": float(nll.sum().detach() / n),
            "kl": float(kl.detach()), "kl_term": float(kl_term.detach()), "mmd": float(div.detach()),
            "beta": self.kl_weight, "elbo": -float((recon + kl).detach()), "token_accuracy": float(hits / n),
        }
        flat_mu = q.loc.reshape(b, -1)
        return VAEOutput(loss=loss, logits=logits, metrics=metrics, mu=flat_mu,
                         logvar=(2.0 * q.scale.log()).reshape(b, -1))


def build_prompt_ae(config: PromptAEConfig, tokenizer) -> PromptAE:
    """A fresh prompt autoencoder for ``tokenizer``; its decoder (and the shared embedding) start
    from the GPT checkpoint ``config.init_from`` when it is set (moved to ``initialized_from``,
    so a saved checkpoint never needs it again).

    Raises:
        TextopiaError: a size or setting is out of range, or ``init_from`` is not a GPT checkpoint
            with this tokenizer's vocabulary and the decoder's sizes.
    """
    if config.unk_id is None:
        config.unk_id = tokenizer.pad_id
    model = PromptAE(config, vocab_size=len(tokenizer))
    if config.init_from:
        _init_weights(model, Path(config.init_from))
        config.initialized_from, config.init_from = str(config.init_from), None
    if not config.train_encoder:
        # the token embedding too: the encoder reads it (tied, it is also the output layer)
        for module in (model.embed, model.enc_positions, model.encoder, model.enc_norm, model.to_posterior):
            module.requires_grad_(False)
        model.queries.requires_grad_(False)
    return model


def _init_weights(model: PromptAE, directory: Path) -> None:
    import json

    from safetensors.torch import load_file

    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise TextopiaError(f"init_from: no model.safetensors in {directory}")
    state = load_file(str(weights))
    try:
        kind = json.loads((directory / "config.json").read_text()).get("textopia", {}).get("kind")
    except (OSError, ValueError):
        kind = None
    if kind == KIND:  # a whole prompt autoencoder: every weight (sizes must agree)
        missing, unexpected = model.load_state_dict(state, strict=False)
        tied = {"decoder.lm_head.weight", "decoder.transformer.wte.weight"}
        if unexpected or set(missing) - tied:
            raise TextopiaError(f"init_from {directory}: its weights do not fit this config "
                                f"(missing {sorted(set(missing) - tied)[:3]}, unexpected {unexpected[:3]})")
        return
    own = model.decoder.state_dict()
    for name, tensor in state.items():
        if name not in own:
            continue
        target = own[name]
        if name.endswith("wpe.weight") and tensor.shape[1:] == target.shape[1:]:
            # The GPT's positions serve the decoder's first positions (latent prefix included).
            rows = min(tensor.size(0), target.size(0))
            target[:rows].copy_(tensor[:rows])
            continue
        if tensor.shape != target.shape:
            raise TextopiaError(f"init_from {directory}: {name} has shape {list(tensor.shape)}, the decoder "
                                f"needs {list(target.shape)} (same vocabulary and sizes as the GPT)")
        target.copy_(tensor)


@torch.no_grad()
def validation_figures(model: PromptAE, tokenizer, prompts: list[str], *, max_length: int = 256,
                       batch_size: int = 64, device=None, seed: int = 0) -> dict[str, float]:
    """The objective's terms on ``prompts`` with z = μ (the trainer's periodic check).

    Returns:
        ``recon`` and ``kl`` (nats per prompt), ``recon_per_token`` (nats per token, teacher
        forced from the posterior mean), ``token_accuracy`` (share of prompt tokens whose argmax
        is right), ``active_units`` (latent numbers whose mean varies, Burda et al. 2016).
    """
    from textopia.models.latent_objective import active_units
    from textopia.models.text_vae import posterior_batches

    was_training = model.training
    model.eval()
    recon = kl = 0.0
    tokens = hits = n = 0
    means = []
    for batch, mu, logvar in posterior_batches(model, tokenizer, prompts, max_length=max_length,
                                               batch_size=batch_size, device=device):
        logits, _ = model.decode(batch["input_ids"], mu)
        labels = batch["labels"][:, 1:]
        counted = labels != IGNORE_INDEX
        recon += float(token_nll(logits, batch["labels"]).sum())
        hits += int(((logits[:, :-1].argmax(-1) == labels) & counted).sum())
        kl += float(gaussian_kl(mu.float(), logvar.float()).sum())
        tokens += int(counted.sum())
        n += mu.size(0)
        means.append(mu.float().cpu())
    model.train(was_training)
    return {
        "recon": recon / max(1, n), "kl": kl / max(1, n), "recon_per_token": recon / max(1, tokens),
        "token_accuracy": hits / max(1, tokens),
        "active_units": float(active_units(torch.cat(means))) if n >= 2 else 0.0,
    }


register(ModelSpec(KIND, PromptAEConfig, build_prompt_ae, role=LatentAutoencoder, validate=validation_figures))
