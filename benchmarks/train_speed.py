"""Training throughput: `textopia train` against a minimal plain PyTorch loop, side by side.

Usage (from the repository root, after `textopia prepare ... --out data/sd`)::

    python -m benchmarks train_speed [--set data_dir=data/sd families=gpt,lstm,vae precisions=fp32,bf16
        steps=60 warmup=10 train_limit=30000 sets=train.batch_size=32] [--out benchmarks/results]

For each family (its `configs/<family>-small.toml` model, batch 48, with the ``sets`` overrides
on both sides) and precision, in one run on the same data (the first ``train_limit`` prompts of
the train split) and the same model:

- ``textopia``: ``textopia train`` (a fresh process) for ``steps`` optimizer steps; the median of
  its own log windows (every ``warmup`` steps) after the first ``warmup`` steps;
- ``plain``: the same model, examples, length-bucketed batches and collation, with a bare loop:
  ``torch.autocast`` (bf16) or none, forward, backward, gradient clipping at 1.0, AdamW; the rate
  over the steps after the first ``warmup``.

Rates are per second of wall clock: tokens (every non-padding token of a batch) for the language
models. ``families=latent-diffusion`` measures the latent diffusion loop instead, in latents per
second: both sides continue the shipped ``src/textopia/assets/latent`` (``model.init_from``) on
the posteriors of the same ``train_limit`` prompts (encoded once by
:func:`textopia.training.diffusion.cached_latents` before timing), each step drawing a batch of
latents and ideas from a seeded generator, the plain side with the model's own ``loss``, AdamW and
clipping. Writes ``train_speed.json`` and ``.md``.
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from benchmarks.harness import benchmark

ROOT = Path(__file__).resolve().parents[1]
LATENT = "latent-diffusion"
SHIPPED_LATENT = ROOT / "src" / "textopia" / "assets" / "latent"


def family_config(family: str) -> Path:
    """The config a family is measured with: ``configs/<family>-small.toml``, else ``configs/<family>.toml``
    (the prompt autoencoder's, whose decoder starts from the embedded default GPT)."""
    small = ROOT / "configs" / f"{family}-small.toml"
    return small if small.is_file() else ROOT / "configs" / f"{family}.toml"


logger = logging.getLogger("benchmarks.train_speed")


def textopia_rate(family: str, precision: str, data_dir: str, steps: int, warmup: int, limit: int,
                  sets: Sequence[str]) -> float:
    """`textopia train` in a fresh process (Accelerate fixes the precision once per process): the
    median of its log windows (every ``warmup`` steps) after the first ``warmup`` steps."""
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"data.dir={data_dir}", f"data.train_limit={limit}", "data.valid_limit=10",
                     f"train.out_dir={tmp}/run", f"train.max_steps={steps}", "train.eval_every=0",
                     "train.save_every=0", f"train.log_every={warmup}", f"train.precision={precision}",
                     "train.max_minutes=None", *sets]
        if family == LATENT:
            overrides.append(f"model.init_from={SHIPPED_LATENT}")
        cmd = [sys.executable, "-m", "textopia.cli", "train", "--config", str(family_config(family)),
               "--no-progress", *(x for s in overrides for x in ("--set", s))]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        lines = [json.loads(x) for x in Path(f"{tmp}/run/metrics.jsonl").read_text().splitlines()]
    unit = "examples_per_s" if family == LATENT else "tokens_per_s"
    rates = [x[unit] for x in lines if x.get("split") == "train" and x["step"] > warmup]
    if not rates:
        raise ValueError(f"no log window after step {warmup} of {steps}: steps must be at least 2 x warmup")
    return statistics.median(rates)


def plain_latent_rate(precision: str, data_dir: str, steps: int, warmup: int, limit: int,
                      sets: Sequence[str]) -> float:
    """The plain loop for latent diffusion: latents per second."""
    import random

    import torch

    from textopia.data.corpus import read_split
    from textopia.data.ideas import derive_idea
    from textopia.models.checkpoint import load_checkpoint
    from textopia.models.latent_diffusion import idea_token_ids
    from textopia.training.config import load_config
    from textopia.training.diffusion import Latents, cached_latents

    config = load_config(str(family_config(LATENT)), [f"data.dir={data_dir}", *sets])
    model, tokenizer, _ = load_checkpoint(SHIPPED_LATENT)
    model.train()
    prompts = read_split(data_dir, "train")[:limit]
    max_length = min(config.data.max_length, int(model.config.vae.get("n_positions", config.data.max_length)))
    with tempfile.TemporaryDirectory() as tmp:
        (mu, logvar), _ = cached_latents(Path(tmp) / "latents.safetensors", model.vae, tokenizer, prompts, prompts[:10],
                                         max_length=max_length)
    latents = Latents(mu, logvar, model.config.latents)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.train.lr, weight_decay=config.train.weight_decay)
    batch, examples, start = config.train.batch_size, 0, None
    for step in range(steps):
        if step == warmup:
            examples, start = 0, time.perf_counter()
        gen = torch.Generator().manual_seed(step)
        idx = torch.randint(0, len(latents), (batch,), generator=gen)
        ideas = [derive_idea(prompts[j], random.Random(f"{step}/{i}")) for i, j in enumerate(idx.tolist())]
        idea_ids, has_idea = idea_token_ids(tokenizer, ideas, model.config.max_idea_tokens)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model.loss(latents.draw(idx, gen), idea_ids, has_idea, gen)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        examples += batch
    return examples / (time.perf_counter() - start)


def plain_rate(family: str, precision: str, data_dir: str, steps: int, warmup: int, limit: int,
               sets: Sequence[str]) -> float:
    """The plain loop: tokens per second (latents per second for latent diffusion) after ``warmup`` steps."""
    if family == LATENT:
        return plain_latent_rate(precision, data_dir, steps, warmup, limit, sets)
    import torch

    from textopia.data.batching import BucketBatchSampler, ExampleConfig, PromptDataset, collate
    from textopia.data.corpus import read_split
    from textopia.data.tokenizer import PromptTokenizer
    from textopia.models.registry import get_spec, make_config
    from textopia.training.config import load_config

    config = load_config(str(family_config(family)), [f"data.dir={data_dir}", *sets])
    kind = config.model.get("kind", family)
    tokenizer = PromptTokenizer.from_dir(data_dir)
    model = get_spec(kind).build(make_config(kind, config.model), tokenizer)
    model.train()
    torch.manual_seed(0)
    prompts = read_split(data_dir, "train")[:limit]
    dataset = PromptDataset(prompts, tokenizer, ExampleConfig(config.data.p_unconditional, config.data.max_length))
    sampler = BucketBatchSampler(dataset.lengths(), config.train.batch_size, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=partial(collate, pad_id=tokenizer.pad_id))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    tokens, start = 0, None
    for step, batch in enumerate(loader):
        if step == steps:
            break
        if step == warmup:
            tokens, start = 0, time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    return tokens / (time.perf_counter() - start)


@benchmark("train_speed", smoke=dict(families=("gpt", LATENT), precisions=("bf16",), steps=4, warmup=2,
                                     train_limit=200, sets=("train.batch_size=8",)), corpus="data_dir")
def run(data_dir: str = "data/sd", families: tuple[str, ...] = ("gpt", "lstm", "vae"),
        precisions: tuple[str, ...] = ("fp32", "bf16"), steps: int = 60, warmup: int = 10, train_limit: int = 30000,
        sets: tuple[str, ...] = ()) -> dict:
    """Training throughput: `textopia train` against a minimal plain PyTorch loop, side by side.

    ``families``: ``configs/<family>-small.toml`` (else ``<family>.toml``) models, or
    ``latent-diffusion``; ``precisions``: ``fp32``, ``bf16`` (autocast); ``steps``: optimizer steps
    per side, the first ``warmup`` untimed; ``sets``: ``KEY=VALUE`` config overrides for both sides.
    """
    if steps < 2 * warmup or warmup < 1:
        raise ValueError(f"steps ({steps}) must be at least 2 x warmup ({warmup}), warmup >= 1")
    rows = []
    for family in families:
        for precision in precisions:
            plain = plain_rate(family, precision, data_dir, steps, warmup, train_limit, sets)
            ours = textopia_rate(family, precision, data_dir, steps, warmup, train_limit, sets)
            rows.append({"family": family, "precision": precision, "unit": "latents" if family == LATENT else "tokens",
                         "textopia_per_s": ours, "plain_per_s": plain, "ratio": ours / plain})
            logger.info("%s", rows[-1])
    return {"steps": steps, "rows": rows}
