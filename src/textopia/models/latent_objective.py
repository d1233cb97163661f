"""The objective the latent autoencoders share (the LSTM text VAE, the prompt autoencoder).

λ_recon·L_recon + β·KL_free-bits + λ_div·MMD: the Gaussian posterior's KL to the prior, the
reparameterised sample, free bits, the MMD divergence, the KL weight's annealing schedule, the
active-unit count, and the checks of the settings they read.
"""

from __future__ import annotations

import torch
from torch.distributions import Normal, kl_divergence

from textopia.errors import TextopiaError


#: The KL weight's annealing schedules (:func:`kl_beta`).
KL_SCHEDULES = ("constant", "linear", "cyclical")


def check_objective(config, name: str, builder: str) -> None:
    """Check the settings a latent autoencoder's objective shares (the text VAE's, the prompt
    autoencoder's): the dropouts, the KL schedule and the word-dropout token.

    Raises:
        TextopiaError: a dropout outside [0, 1), an unknown ``kl_schedule``, or ``unk_id`` unset
            (``name`` and ``builder`` name the config class and the function that fills it).
    """
    for key in ("dropout", "word_dropout"):
        if not 0.0 <= getattr(config, key) < 1.0:
            raise TextopiaError(f"{key} must be in [0, 1), got {getattr(config, key)}")
    if config.kl_schedule not in KL_SCHEDULES:
        raise TextopiaError(f"kl_schedule must be constant, linear or cyclical, got {config.kl_schedule!r}")
    if config.unk_id is None:
        raise TextopiaError(f"{name}.unk_id is not set (build the model with {builder})")


#: log σ² is clamped to this range when a posterior is built: exp(0.5·log σ²) stays a normal
#: float32 and the KL finite, whatever an untrained encoder outputs.
LOGVAR_RANGE = (-30.0, 20.0)


def posterior(mu: torch.Tensor, logvar: torch.Tensor) -> Normal:
    """q(z | x) = N(mu, diag exp(logvar)) as a ``torch.distributions.Normal`` (batch shape of ``mu``)."""
    return Normal(mu, torch.exp(0.5 * logvar.clamp(*LOGVAR_RANGE)))


def prior_like(q: Normal) -> Normal:
    """The standard normal prior N(0, I) with ``q``'s batch shape, dtype and device."""
    return Normal(torch.zeros_like(q.loc), torch.ones_like(q.scale))


def gaussian_kl(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    mu_p: torch.Tensor | None = None,
    logvar_p: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(N(mu, diag e^logvar) || N(mu_p, diag e^logvar_p)) per dimension, in nats
    (``torch.distributions.kl_divergence`` of two :func:`posterior` Normals).

    Args:
        mu, logvar: (..., nz) float, the first Gaussian.
        mu_p, logvar_p: (..., nz) float or None for the standard normal prior.

    Returns:
        (..., nz) float: sum over the last dimension for the full KL (Kingma & Welling 2014,
        appendix B, for the prior case).
    """
    q = posterior(mu, logvar)
    p = prior_like(q) if mu_p is None and logvar_p is None else posterior(
        torch.zeros_like(mu) if mu_p is None else mu_p, torch.zeros_like(logvar) if logvar_p is None else logvar_p)
    return kl_divergence(q, p)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None,
                   num_samples: int | None = None) -> torch.Tensor:
    """z = mu + exp(logvar / 2) · ε, ε ~ N(0, I) (Kingma & Welling 2014, §2.4): :func:`posterior`'s
    ``rsample``, with ε drawn from ``generator`` (``Normal.rsample`` draws from the global RNG
    only, and seeded runs must be reproducible).

    Args:
        mu, logvar: (B, nz) float.
        generator: the RNG of ε (None: the global one); ε is drawn on its device and moved.
        num_samples: None gives (B, nz); K gives (B, K, nz).

    Returns:
        z, differentiable with respect to ``mu`` and ``logvar``.
    """
    q = posterior(mu, logvar)
    shape = mu.shape if num_samples is None else (mu.size(0), num_samples, mu.size(1))
    device = generator.device if generator is not None else mu.device
    eps = torch.randn(shape, generator=generator, device=device, dtype=mu.dtype).to(mu.device)
    if num_samples is None:
        return q.loc + q.scale * eps
    return q.loc[:, None, :] + q.scale[:, None, :] * eps


def log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag e^logvar) summed over the last dimension (nats), broadcasting shapes:
    :func:`posterior`'s ``log_prob``."""
    return posterior(mu, logvar).log_prob(z).sum(dim=-1)


def word_dropout(input_ids: torch.Tensor, labels: torch.Tensor, p: float, unk_id: int) -> torch.Tensor:
    """Replace prompt tokens (``labels`` not ignored) among the decoder inputs by ``unk_id`` with
    probability ``p`` (Bowman et al. 2016, §3.3: the decoder cannot lean on its inputs alone and
    must read the latent). ``input_ids``, ``labels``: (B, T) int64; returns a new (B, T) tensor.
    Callers apply it in training only."""
    from textopia.data.tokenizer import IGNORE_INDEX

    if p <= 0:
        return input_ids
    drop = (labels != IGNORE_INDEX) & (torch.rand(input_ids.shape, device=input_ids.device) < p)
    return input_ids.masked_fill(drop, int(unk_id))


def free_bits_kl(kl_per_dim: torch.Tensor, free_bits: float) -> torch.Tensor:
    """The free-bits KL term: Σ_j max(free_bits, mean over the batch of KL_j), in nats.

    Args:
        kl_per_dim: (B, nz) float, KL of each example's posterior per dimension.
        free_bits: λ, nats per dimension; 0 gives the plain mean KL per example.

    Returns:
        0-dim tensor. A dimension whose batch-mean KL is under λ gets no gradient, so the
        optimiser has no reason to shrink its information below λ nats (Kingma et al. 2016, §C.8).
    """
    per_dim = kl_per_dim.mean(dim=0)  # (nz,)
    if free_bits > 0:
        per_dim = torch.clamp(per_dim, min=free_bits)
    return per_dim.sum()


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """k(a_i, b_j) = exp(-|a_i - b_j|² / (2 · scale · nz)) for (N, nz) and (M, nz) -> (N, M)."""
    d2 = torch.cdist(a, b).pow(2)
    return torch.exp(-d2 / (2.0 * scale * a.size(1)))


def mmd(z: torch.Tensor, prior_z: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Unbiased squared MMD between samples ``z`` (N, nz) and ``prior_z`` (M, nz), N, M >= 2.

    Gretton et al. 2012, "A Kernel Two-Sample Test", eq. 3; the divergence InfoVAE (Zhao et al.
    2019) adds to the ELBO. Zero in expectation when both sets come from the same distribution.
    """
    n, m = z.size(0), prior_z.size(0)
    kzz = gaussian_kernel(z, z, scale)
    kpp = gaussian_kernel(prior_z, prior_z, scale)
    kzp = gaussian_kernel(z, prior_z, scale)
    return ((kzz.sum() - kzz.diagonal().sum()) / (n * (n - 1))
            + (kpp.sum() - kpp.diagonal().sum()) / (m * (m - 1))
            - 2.0 * kzp.mean())


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> int:
    """Dimensions whose posterior mean varies across the data: Cov_x(E_q[z_j]) >= threshold.

    Burda et al. 2016, "Importance Weighted Autoencoders", §5.2 (threshold 0.01).

    Args:
        mu: (N, nz) float, posterior means of N examples (N >= 2).
    """
    return int((mu.double().var(dim=0, unbiased=True) >= threshold).sum())


def kl_beta(
    step: int,
    *,
    schedule: str = "linear",
    beta_max: float = 1.0,
    anneal_steps: int = 2000,
    cycles: int = 4,
    ratio: float = 0.5,
    start: float = 0.0,
) -> float:
    """The KL weight β at optimizer ``step`` (0-based) of a VAE's training.

    * ``"constant"``: ``beta_max`` throughout.
    * ``"linear"``: from ``start`` up to ``beta_max`` over ``anneal_steps``, then flat
      (Bowman et al. 2016, §3.1).
    * ``"cyclical"``: ``anneal_steps`` split into ``cycles`` periods (M); in each, β rises
      linearly from ``start`` to ``beta_max`` over the first ``ratio`` (R) of the period and stays
      at ``beta_max`` for the rest; after the last cycle it stays at ``beta_max``. Fu et al. 2019,
      "Cyclical Annealing Schedule: A Simple Approach to Mitigating KL Vanishing", eq. 4.

    Raises:
        ValueError: an unknown schedule, ``cycles < 1`` or ``ratio`` outside (0, 1].
    """
    if schedule == "constant":
        return beta_max
    if step >= anneal_steps or anneal_steps <= 0:
        return beta_max
    if schedule == "linear":
        return start + (beta_max - start) * step / anneal_steps
    if schedule == "cyclical":
        if cycles < 1 or not 0 < ratio <= 1:
            raise ValueError(f"cyclical annealing needs cycles >= 1 and ratio in (0, 1], got {cycles}, {ratio}")
        period = anneal_steps / cycles
        tau = (step % period) / period
        return start + (beta_max - start) * min(1.0, tau / ratio)
    raise ValueError(f"schedule must be constant, linear or cyclical, got {schedule!r}")


def annealed_kl_weight(config, step: int) -> float:
    """:func:`kl_beta` at ``step`` with the schedule a model's config names (``kl_schedule``,
    ``beta_max``, ``kl_anneal_steps``, ``kl_cycles``, ``kl_ratio``, ``kl_start``)."""
    return kl_beta(step, schedule=config.kl_schedule, beta_max=config.beta_max, anneal_steps=config.kl_anneal_steps,
                   cycles=config.kl_cycles, ratio=config.kl_ratio, start=config.kl_start)

