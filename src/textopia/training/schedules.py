"""Learning-rate schedules as pure functions of the optimizer step."""

from __future__ import annotations

import math


def warmup_cosine_lr(step: int, *, lr: float, warmup_steps: int, max_steps: int, min_lr_ratio: float = 0.1) -> float:
    """Linear warmup from 0 to ``lr`` over ``warmup_steps``, then cosine decay to ``lr·min_lr_ratio``
    at ``max_steps`` (and flat after). Loshchilov & Hutter 2017 (SGDR), without restarts.

    Args:
        step: optimizer steps taken so far (0-based).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return lr * min_lr_ratio
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * coeff)


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
