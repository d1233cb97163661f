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
