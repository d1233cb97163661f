"""The coherence critic's cost: the lean GPT-2 engine against transformers, side by side in one run.

Usage (from the repository root)::

    python -m benchmarks critic_speed [--set model=default num_prompts=128 repeats=10] [--out benchmarks/results]

Scores the first ``num_prompts`` prompts of the prepared corpus's test split (a reranker's
candidates are prompts of the same lengths) with the critic of ``model``, ``repeats`` times each way,
alternating: :meth:`~textopia.models.critic.CoherenceCritic.logits` (tokenised, sorted by length,
through the engine) and the path it replaced (one right-padded batch of at most 128 through
transformers' ``GPT2ForSequenceClassification``). Figures: seconds per call (median) each way, their
ratio, and the largest difference of the logits.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from benchmarks.harness import benchmark


@benchmark("critic_speed", smoke=dict(num_prompts=6, repeats=1), corpus="data_dir")
def run(model: str = "default", data_dir: str = "data/sd", num_prompts: int = 128, repeats: int = 10) -> dict:
    """Seconds the coherence critic takes to score a reranker's batch: the engine against transformers."""
    import torch

    from textopia.generation.loader import resolve_model
    from textopia.models.checkpoint import load_coherence_critic
    from textopia.models.critic import CRITIC_DIR, critic_inputs, critic_logits

    critic = load_coherence_critic(resolve_model(model) / CRITIC_DIR)
    lines = Path(data_dir, "test.txt").read_text(encoding="utf-8").splitlines()
    prompts = [line for line in lines if line.strip()][:num_prompts]

    def transformers_path() -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([critic_logits(critic.model, **critic_inputs(critic.tokenizer, prompts[i:i + 128],
                                                                          critic.max_length))
                              for i in range(0, len(prompts), 128)])

    ways = {"engine": lambda: critic.logits(prompts), "transformers": transformers_path}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    got = {name: way() for name, way in ways.items()}  # warm-up, and the logits compared
    for _ in range(repeats):
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            seconds[name].append(time.perf_counter() - start)
    engine_s, transformers_s = (statistics.median(seconds[n]) for n in ("engine", "transformers"))
    return {"prompts": len(prompts), "engine_used": critic.engine is not None, "engine_s": round(engine_s, 5),
            "transformers_s": round(transformers_s, 5), "speedup": round(transformers_s / engine_s, 2),
            "max_abs_logit_diff": float((got["engine"] - got["transformers"]).abs().max())}
