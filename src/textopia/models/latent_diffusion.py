"""Latent diffusion over the text VAE's latents: "Stable Diffusion for text".

A frozen latent autoencoder (the text VAE, :class:`~textopia.models.text_vae.TextVAE`, or the
prompt autoencoder, :class:`~textopia.models.prompt_ae.PromptAE`) maps a prompt to z (B, nz); a DDPM learns
the distribution of z given an idea; sampling runs DDIM with classifier-free guidance and the
VAE's decoder turns each z into a prompt::

    training:  prompt ─▶ VAE encoder (frozen) ─▶ μ (B, nz) ─▶ z0 = scale_factor · μ
               z_t = √ᾱ_t · z0 + √(1 − ᾱ_t) · ε,  t ~ U{0, T−1},  ε ~ N(0, I)
               idea ─▶ idea encoder ─▶ c (B, H)  (the learned null idea with prob. p_uncond)
               loss = ‖ε − ε_θ(z_t, t, c)‖²                     (or v for v-prediction)
    sampling:  z_T ~ N(0, I) ─▶ DDIM steps with ε̂ = ε_u + g · (ε_c − ε_u) ─▶ z0 / scale_factor
               ─▶ VAE decoder ─▶ prompt

Sources: Ho et al. 2020, "Denoising Diffusion Probabilistic Models" (the ε objective, eq. 14);
Song et al. 2021, "Denoising Diffusion Implicit Models" (the sampler, eq. 12, η = 0 is
deterministic); Ho & Salimans 2022, "Classifier-Free Diffusion Guidance" (idea dropout and
guidance, eq. 6; our guidance scale is their 1 + w); Rombach et al. 2022, "High-Resolution
Image Synthesis with Latent Diffusion Models" (diffusion in a frozen autoencoder's latent space,
the latent rescaled to unit variance by s = 1/σ̂ of the training latents); Salimans & Ho 2022,
"Progressive Distillation for Fast Sampling of Diffusion Models" (v-prediction, §4); Nichol &
Dhariwal 2021 (the cosine schedule, ``squaredcos_cap_v2``); Peebles & Xie 2023, "Scalable
Diffusion Models with Transformers" (adaLN-Zero conditioning). The schedulers are diffusers'
``DDPMScheduler`` and ``DDIMScheduler``, with ``clip_sample=False`` (z is not an image in [-1, 1]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from textopia.bounds import bounded, check_fields
from textopia.errors import TextopiaError
from textopia.models import prompt_ae, text_vae  # noqa: F401  (registers the autoencoders build_diffusion builds)
from textopia.models.denoisers import AdaLNBlock, Denoiser, IdeaEncoder, TransformerDenoiser, timestep_embedding
from textopia.models.spec import LatentAutoencoder, LatentDiffusionModel, ModelSpec, config_for, lookup, register

__all__ = ["AdaLNBlock", "Denoiser", "DiffusionConfig", "IdeaEncoder", "LatentDiffusion", "TransformerDenoiser",
           "build_diffusion", "idea_token_ids", "save_diffusion", "timestep_embedding"]

SCHEDULER_CONFIG = "scheduler_config.json"


# The sampling defaults of every latent diffusion model (a checkpoint may carry its own measured
# ones: ``default_guidance``, ``default_steps``). g = 1 (the plain conditional model) measured
# better than g = 3 on the first shipped model: FD 0.1165 against 0.1206, Div 0.590 against
# 0.581, cosine(idea, prompt) 0.201 against 0.198 (benchmarks/results/diffusion/).
DEFAULT_GUIDANCE = 1.0
DEFAULT_STEPS = 50
MAX_STEPS = 1000


#: The noise schedules of diffusers' DDPM scheduler, by its names.
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "laplace", "sigmoid")


@dataclass
class DiffusionConfig:
    """Sizes of the denoiser and the idea encoder, the noise schedule, and the frozen VAE."""

    kind: str = "latent-diffusion"
    n_hidden: int = 512  # H, width of the denoiser's residual blocks and of the idea vector
    n_blocks: int = 6  # residual MLP blocks of the denoiser
    time_dim: int = 128  # width of the sinusoidal timestep embedding (before its MLP)
    dropout: float = bounded(0.0, 0, 1, high_open=True)  # inside each residual block
    idea_hidden: int = 512  # hidden width of the idea encoder's MLP
    max_idea_tokens: int = 32  # ideas are cut to this many tokens
    num_train_timesteps: int = 1000  # T, steps of the forward (noising) process
    beta_schedule: str = bounded("squaredcos_cap_v2", choices=BETA_SCHEDULES)  # cosine: Nichol & Dhariwal 2021
    prediction_type: str = bounded("epsilon", choices=("epsilon", "v_prediction"))  # what the denoiser predicts
    p_uncond: float = bounded(0.1, 0, 1)  # P(an idea is replaced by the null idea) in training (CFG)
    scale_factor: float = bounded(1.0, 0, 1e6, low_open=True)  # z0 = scale_factor · latent: 1/std of training's
    latents: str = bounded("sample", choices=("sample", "mean"))  # what it learns: z ~ q(z|x) fresh each step, or μ
    denoiser: str = bounded("mlp", choices=("mlp", "transformer"))  # transformer: for a latent sequence (prompt-ae's)
    n_head: int = 4  # attention heads of the transformer denoiser
    vae: dict[str, Any] = field(default_factory=dict)  # the frozen VAE's VAEConfig, as a dict
    vae_checkpoint: str | None = None  # where the VAE came from (provenance; its weights are in ours)
    init_from: str | None = None  # a latent diffusion checkpoint to continue from (its sizes and VAE are kept)
    initialized_from: str | None = None  # provenance: where init_from pointed when training started

    def __post_init__(self) -> None:
        check_fields(self, "model")


class LatentDiffusion(nn.Module):
    """The frozen VAE, the idea encoder and the denoiser.

    Args:
        config: the sizes, schedule and the VAE's config (``config.vae``).
        vae: the VAE (its weights are frozen here: ``requires_grad`` False, always in eval mode).
        vocab_size: ``len(tokenizer)``; pad_id: the tokenizer's pad id.

    Attributes:
        config: the :class:`DiffusionConfig`.
    """

    def __init__(self, config: DiffusionConfig, vae: nn.Module, vocab_size: int, pad_id: int) -> None:
        super().__init__()
        if min(config.n_hidden, config.n_blocks, config.time_dim, config.idea_hidden, config.max_idea_tokens) < 1:
            raise TextopiaError("n_hidden, n_blocks, time_dim, idea_hidden and max_idea_tokens must be >= 1")
        if config.denoiser not in ("mlp", "transformer"):
            raise TextopiaError(f"denoiser must be mlp or transformer, got {config.denoiser!r}")
        if config.denoiser == "transformer" and config.n_hidden % max(1, config.n_head):
            raise TextopiaError(f"n_hidden ({config.n_hidden}) must be a multiple of n_head ({config.n_head})")
        if config.prediction_type not in ("epsilon", "v_prediction"):
            raise TextopiaError(f"prediction_type must be epsilon or v_prediction, got {config.prediction_type!r}")
        if config.latents not in ("mean", "sample"):
            raise TextopiaError(f"latents must be 'mean' or 'sample', got {config.latents!r}")
        if not 0.0 <= config.p_uncond <= 1.0:
            raise TextopiaError(f"p_uncond must be in [0, 1], got {config.p_uncond}")
        if not 0.0 <= config.dropout < 1.0:
            raise TextopiaError(f"dropout must be in [0, 1), got {config.dropout}")
        if not (config.scale_factor > 0 and math.isfinite(config.scale_factor)):
            raise TextopiaError(f"scale_factor must be a positive number, got {config.scale_factor}")
        self.config = config
        self.vae = vae
        self.vae.requires_grad_(False)
        nz = vae.config.latent_dim
        self.idea_encoder = IdeaEncoder(vocab_size, vae.config.n_embd, config.idea_hidden, config.n_hidden, pad_id)
        if config.denoiser == "transformer":
            self.denoiser = TransformerDenoiser(nz, int(getattr(vae.config, "n_latents", 1)), config.n_hidden,
                                                config.n_blocks, config.n_head, config.time_dim, config.dropout)
        else:
            self.denoiser = Denoiser(nz, config.n_hidden, config.n_blocks, config.time_dim, config.dropout)
        self._train_scheduler = self.noise_scheduler()
        self.train()

    @property
    def latent_dim(self) -> int:
        return self.vae.config.latent_dim

    def train(self, mode: bool = True) -> LatentDiffusion:
        """Set the mode of the trainable parts; the frozen VAE stays in eval mode."""
        super().train(mode)
        self.vae.eval()
        return self

    def init_from_vae(self, vae: nn.Module) -> None:
        """Copy a trained VAE's weights in and start the idea embedding from its token table."""
        with torch.no_grad():
            self.vae.load_state_dict(vae.state_dict())
            self.idea_encoder.embed.weight.copy_(vae.embed.weight)

    def noise_scheduler(self):
        """A fresh diffusers ``DDPMScheduler`` for this model's forward process."""
        from diffusers import DDPMScheduler

        cfg = self.config
        return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                             prediction_type=cfg.prediction_type, clip_sample=False)

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, idea_vec: torch.Tensor) -> torch.Tensor:
        """The denoiser's output (ε or v, per ``prediction_type``).

        Args:
            noisy: (B, nz) float, z_t in the scaled latent space.
            timesteps: (B,) int64 in [0, num_train_timesteps).
            idea_vec: (B, H) float from :attr:`idea_encoder`.

        Returns:
            (B, nz) float32.
        """
        return self.denoiser(noisy, timesteps, idea_vec).float()

    def loss(self, z0: torch.Tensor, idea_ids: torch.Tensor, has_idea: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """The simple DDPM loss of a batch (Ho et al. 2020, eq. 14), with idea dropout.

        t ~ U{0, T−1}, ε ~ N(0, I), z_t = √ᾱ_t z0' + √(1−ᾱ_t) ε where z0' = scale_factor · z0;
        the target is ε, or v = √ᾱ_t ε − √(1−ᾱ_t) z0' for v-prediction (Salimans & Ho 2022, §4).
        Each idea is replaced by the null idea with probability ``p_uncond``.

        Args:
            z0: (B, nz) float, VAE latents (posterior means or samples, see ``latents``), unscaled.
            idea_ids: (B, L) int64 idea tokens padded with the pad id (see :func:`idea_token_ids`).
            has_idea: (B,) bool, False for examples without an idea.
            generator: a CPU ``torch.Generator`` for t, ε and the dropout (all drawn on the CPU).

        Returns:
            0-dim float32: the mean squared error per latent coordinate.
        """
        device = z0.device
        b = z0.size(0)
        z0 = z0.float() * self.config.scale_factor
        t = torch.randint(0, self.config.num_train_timesteps, (b,), generator=generator).to(device)
        noise = torch.randn(z0.shape, generator=generator).to(device)
        drop = torch.rand(b, generator=generator).to(device) < self.config.p_uncond
        sched = self._train_scheduler
        noisy = sched.add_noise(z0, noise, t)
        target = noise if self.config.prediction_type == "epsilon" else sched.get_velocity(z0, noise, t)
        idea_vec = self.idea_encoder(idea_ids.to(device), has_idea.to(device) & ~drop)
        return F.mse_loss(self.predict(noisy, t, idea_vec), target.float())

    def forward(self, z0: torch.Tensor, idea_ids: torch.Tensor, has_idea: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Same as :meth:`loss` (so wrappers that call ``forward`` work)."""
        return self.loss(z0, idea_ids, has_idea, generator)

    @torch.no_grad()
    def sample_latents(self, idea_ids: torch.Tensor | None, num: int, *, steps: int = DEFAULT_STEPS,
                       guidance: float = DEFAULT_GUIDANCE,
                       generator: torch.Generator | None = None, eta: float = 0.0,
                       init: torch.Tensor | None = None, strength: float = 1.0) -> torch.Tensor:
        """Draw latents with DDIM and classifier-free guidance.

        ε̂ = ε_θ(z_t, ∅) + g · (ε_θ(z_t, c) − ε_θ(z_t, ∅)) (Ho & Salimans 2022, eq. 6, where their
        w is g − 1): g = 0 is the unconditional model (computed alone, so it is exactly the
        unconditional sample), g = 1 the conditional one, g > 1 pushes further towards the idea.
        The same formula is applied to v for v-prediction (it is linear in the prediction).

        Args:
            idea_ids: (1, L) int64 tokens of one idea (see :func:`idea_token_ids`), or None
                (unconditional; so is an idea with no token).
            num: how many latents.
            steps: DDIM steps (Song et al. 2021).
            guidance: g.
            generator: a CPU ``torch.Generator``; the initial noise (and DDIM's noise when
                η > 0) is drawn from it on the CPU, so a seed gives the same latents on any device.
            eta: η, DDIM's stochasticity (0: deterministic; 1: DDPM-like).
            init: (nz,) or (num, nz) float, a latent to start from instead of pure noise (in the
                autoencoder's space): it is noised to the timestep ``strength`` of the way up the
                schedule and denoised from there (SDEdit, Meng et al. 2022, §3). None: from noise.
            strength: SDEdit's t0 in (0, 1]: the share of the DDIM steps that are run from ``init``.

        Returns:
            z: (num, nz) float32 in the VAE's latent space (divided by ``scale_factor``).
        """
        from diffusers import DDIMScheduler

        if num < 1 or steps < 1:
            raise TextopiaError(f"num and steps must be >= 1, got {num}, {steps}")
        device = next(self.denoiser.parameters()).device
        was_training = self.training
        self.eval()
        # diffusers' default "leading" spacing on purpose: "trailing" (Lin et al. 2024) starts at
        # t = T - 1, where the cosine schedule's alpha_bar is ~0 and an epsilon-prediction's x0
        # estimate divides by sqrt(alpha_bar): on the shipped model the latents came out with std
        # 207 instead of the data's 0.59 ("leading": 0.59). Trailing needs v-prediction and zero
        # terminal SNR together.
        scheduler = DDIMScheduler.from_config(self.noise_scheduler().config)
        scheduler.set_timesteps(steps)
        null = self.idea_encoder(None, batch_size=num)  # (num, H)
        cond = None
        if idea_ids is not None and guidance != 0:
            if idea_ids.dim() != 2 or idea_ids.size(0) != 1:
                raise TextopiaError(f"idea_ids must have shape (1, L), got {tuple(idea_ids.shape)}")
            idea_ids = idea_ids.to(device)
            if bool((idea_ids != self.idea_encoder.pad_id).any()):
                cond = self.idea_encoder(idea_ids).expand(num, -1)  # (num, H)
        z = torch.randn((num, self.latent_dim), generator=generator, dtype=torch.float32).to(device)
        timesteps = scheduler.timesteps
        if init is not None:
            if not 0.0 < strength <= 1.0:
                raise TextopiaError(f"strength must be in (0, 1], got {strength}")
            timesteps = timesteps[len(timesteps) - max(1, round(strength * len(timesteps))):]
            start = init.float().reshape(-1, self.latent_dim).to(device) * self.config.scale_factor
            if start.size(0) not in (1, num):
                raise TextopiaError(f"init has {start.size(0)} latents for {num} samples")
            start = start.expand(num, -1)
            z = scheduler.add_noise(start, z, timesteps[:1].repeat(num))
        for t in timesteps:
            if cond is None or guidance == 1.0:  # g = 1 is the conditional model alone: one pass
                out = self.predict(z, torch.full((num,), int(t), device=device, dtype=torch.long),
                                   null if cond is None else cond)
            else:
                tt = torch.full((2 * num,), int(t), device=device, dtype=torch.long)
                both = self.predict(torch.cat([z, z]), tt, torch.cat([null, cond]))  # (2·num, nz)
                uncond, conditional = both.chunk(2)
                out = uncond + guidance * (conditional - uncond)
            z = scheduler.step(out, t, z, eta=eta, generator=generator).prev_sample
        self.train(was_training)
        return (z / self.config.scale_factor).float()


def idea_token_ids(tokenizer, ideas: list[str | None], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise ideas for :class:`IdeaEncoder`.

    Args:
        tokenizer: a :class:`~textopia.data.tokenizer.PromptTokenizer`.
        ideas: one idea per example; None or blank for none.
        max_tokens: ideas are cut to this many tokens.

    Returns:
        ``(ids, has_idea)``: (B, L) int64 right-padded with ``tokenizer.pad_id`` (L >= 1, the
        longest idea), (B,) bool (False: no idea, or one with no token).
    """
    rows = [tokenizer.encode(idea)[:max_tokens] if idea and idea.strip() else [] for idea in ideas]
    width = max([1, *(len(r) for r in rows)])
    ids = torch.full((len(rows), width), tokenizer.pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    has_idea = torch.tensor([bool(r) for r in rows], dtype=torch.bool)
    return ids, has_idea


def build_diffusion(config: DiffusionConfig, tokenizer) -> LatentDiffusion:
    """A fresh latent diffusion model around an (untrained) VAE built from ``config.vae``.

    The training script copies the trained VAE's weights in (:meth:`LatentDiffusion.init_from_vae`);
    a checkpoint loads them with the rest.

    Raises:
        TextopiaError: ``config.vae`` is empty or a setting is out of range.
    """
    if not config.vae:
        raise TextopiaError("DiffusionConfig.vae is empty: latent diffusion needs the VAE's config "
                            "(train it with textopia train: textopia.training.trainer.train)")
    values = dict(config.vae)
    kind = values.pop("kind", "vae")
    spec = lookup(kind)
    if not issubclass(spec.role, LatentAutoencoder):
        raise TextopiaError(f"latent diffusion needs a latent autoencoder, not a {kind!r} model")
    vae_config = config_for(kind, values)
    vae = spec.build(vae_config, tokenizer)
    config.vae = {"kind": kind, **{k: v for k, v in vars(vae_config).items() if k != "kind"}}  # unk_id filled in
    return LatentDiffusion(config, vae, vocab_size=len(tokenizer), pad_id=tokenizer.pad_id)


def save_diffusion(model: LatentDiffusion, directory: Path) -> None:
    """Write ``model.safetensors`` (VAE included) and diffusers' ``scheduler_config.json``."""
    from safetensors.torch import save_model

    save_model(model, str(Path(directory) / "model.safetensors"))
    model.noise_scheduler().save_config(str(directory))


register(ModelSpec("latent-diffusion", DiffusionConfig, build_diffusion, save=save_diffusion,
                   role=LatentDiffusionModel))
