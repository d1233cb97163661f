"""Training throughput: `textopia train` against a minimal plain PyTorch loop, side by side.

Usage (from the repository root, after `textopia prepare ... --out data/sd`)::

    python -m benchmarks.train_speed [--data-dir data/sd] [--families gpt lstm vae]
        [--precisions fp32 bf16] [--steps 60] [--train-limit 30000] [--out benchmarks/results]

For each family (its `configs/<family>-small.toml` model, batch 48) and precision, in one run on
the same data (the first ``--train-limit`` prompts of the train split) and the same model:

- ``textopia``: ``textopia train`` (a fresh process) for ``--steps`` optimizer steps; tokens/s
  from its own log windows after the first 10 steps;
- ``plain``: the same model, examples, length-bucketed batches and collation, with a bare loop:
  ``torch.autocast`` (bf16) or none, forward, backward, gradient clipping at 1.0, AdamW; tokens/s
  over the same steps.

Tokens are every non-padding token of a batch. ``--families latent-diffusion`` measures the
latent diffusion loop instead, in latents per second: both sides continue the shipped
``src/textopia/assets/latent`` (``model.init_from``) on the posteriors of the same
``--train-limit`` prompts (encoded once by :func:`textopia.training.diffusion.cached_latents`
before timing), each step drawing a batch of latents and ideas from a seeded generator, the plain
side with the model's own ``loss``, AdamW and clipping. Writes ``train_speed.json`` and ``.md`` into ``--out`` (the harness's schema and writer).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from datetime import datetime, timezone
from pathlib import Path

from benchmarks import harness

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 10
LATENT = "latent-diffusion"
SHIPPED_LATENT = ROOT / "src" / "textopia" / "assets" / "latent"


def family_config(family: str) -> Path:
    """The config a family is measured with: ``configs/<family>-small.toml``, else ``configs/<family>.toml``
    (the prompt autoencoder's, whose decoder starts from the embedded default GPT)."""
    small = ROOT / "configs" / f"{family}-small.toml"
    return small if small.is_file() else ROOT / "configs" / f"{family}.toml"


def textopia_rate(family: str, precision: str, data_dir: str, steps: int, limit: int) -> float:
    """`textopia train` in a fresh process (Accelerate fixes the precision once per process)."""
    with tempfile.TemporaryDirectory() as tmp:
        sets = [f"data.dir={data_dir}", f"data.train_limit={limit}", "data.valid_limit=10",
                f"train.out_dir={tmp}/run", f"train.max_steps={steps}", "train.eval_every=0",
                "train.save_every=0", "train.log_every=10", f"train.precision={precision}",
                "train.max_minutes=None"]
        if family == LATENT:
            sets.append(f"model.init_from={SHIPPED_LATENT}")
        cmd = [sys.executable, "-m", "textopia.cli", "train", "--config", str(family_config(family)),
               "--no-progress", *(x for s in sets for x in ("--set", s))]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        lines = [json.loads(x) for x in Path(f"{tmp}/run/metrics.jsonl").read_text().splitlines()]
    unit = "examples_per_s" if family == LATENT else "tokens_per_s"
    rates = [x[unit] for x in lines if x.get("split") == "train" and x["step"] > WARMUP]
    return statistics.median(rates)


def plain_latent_rate(precision: str, data_dir: str, steps: int, limit: int) -> float:
    """The plain loop for latent diffusion: latents per second."""
    import random

    import torch

    from textopia.data.corpus import read_split
    from textopia.data.ideas import derive_idea
    from textopia.models.checkpoint import load_checkpoint
    from textopia.models.latent_diffusion import idea_token_ids
    from textopia.training.config import load_config
    from textopia.training.diffusion import Latents, cached_latents

    config = load_config(str(family_config(LATENT)), [f"data.dir={data_dir}"])
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
        if step == WARMUP:
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


def plain_rate(family: str, precision: str, data_dir: str, steps: int, limit: int) -> float:
    if family == LATENT:
        return plain_latent_rate(precision, data_dir, steps, limit)
    import torch

    from textopia.data.batching import BucketBatchSampler, ExampleConfig, PromptDataset, collate
    from textopia.data.corpus import read_split
    from textopia.data.tokenizer import PromptTokenizer
    from textopia.models.registry import get_spec, make_config
    from textopia.training.config import load_config

    config = load_config(str(family_config(family)), [f"data.dir={data_dir}"])
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
        if step == WARMUP:
            tokens, start = 0, time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    return tokens / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="data/sd")
    ap.add_argument("--families", nargs="+", default=["gpt", "lstm", "vae"])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--train-limit", type=int, default=30000)
    ap.add_argument("--out", default=str(harness.RESULTS), help="folder for train_speed.json and .md")
    args = ap.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k != "out"}
    info, timestamp, start = harness.machine(), datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter()
    rows = []
    for family in args.families:
        for precision in args.precisions:
            plain = plain_rate(family, precision, args.data_dir, args.steps, args.train_limit)
            ours = textopia_rate(family, precision, args.data_dir, args.steps, args.train_limit)
            rows.append({"family": family, "precision": precision, "unit": "latents" if family == LATENT else "tokens",
                         "textopia_tokens_per_s": ours, "plain_tokens_per_s": plain, "ratio": ours / plain})
            print(rows[-1], flush=True)
    result = harness.Result("train_speed", options, {"steps": args.steps, "rows": rows}, info, timestamp,
                            harness.git_commit(), round(time.perf_counter() - start, 3))
    _, md = harness.write(result, args.out)
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
