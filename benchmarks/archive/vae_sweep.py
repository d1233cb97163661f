"""The text VAE's trade-off between reconstruction and sample diversity as λ_div and β vary.

For each grid point a small VAE is trained on the prompt corpus (``configs/vae-small.toml`` with
``model.lambda_div`` and ``model.beta_max`` set, fewer steps), then measured:

* **Reconstruction**, on the first ``--eval-prompts`` prompts of the valid split, by
  :func:`textopia.evaluation.vae_metrics.evaluate_vae` (He et al. 2019's protocol): corpus BLEU
  and exact match of the greedy decodes of each posterior mean; the reconstruction CE (nats per
  counted token, one posterior sample); KL (nats per prompt); mutual information I_q(x; z)
  (nats, at most log N); active units; the importance-weighted NLL on a few prompts
  (``--iw-limit`` prompts, ``--iw-samples`` samples each: a rough bound, for orientation only).
* **Sample diversity** of ``--samples`` latents drawn from the prior N(0, I) (fixed seed), each
  decoded twice: *sampled* with :class:`GenerationConfig`' defaults (what ``generate(None, n)``
  does: temperature 0.9, top-p 0.95, repetition penalty 1.1) and *greedy* (all diversity then comes
  from z). Figures from :func:`textopia.evaluation.metrics.text_metrics` (the ones
  ``compare.text_figures`` reports): Div (LD4LG, distinct-2 · 3 · 4), distinct-1..4, self-BLEU
  (0-100, lower is more diverse), words per prompt; plus the share of distinct samples (after
  :func:`dedup_key`) and the share copied verbatim from the training split. Samples are decoded
  with :meth:`VAEGenerator.decode_latents` rather than ``generate``, which drops duplicates and
  would hide the collapse this sweep looks for.

Every run starts from the same seed and sees the same batches; only λ_div and β_max differ. The
KL weight anneals linearly over ``--anneal-share`` of the steps (0.3: vae-small's 1000 of 3400),
so every run reaches its β_max. A run whose directory already holds a finished checkpoint
(``trainer_state.json`` at ``--steps``, or stopped by ``--minutes-per-run``) with the same settings
is not trained again; an interrupted one is resumed from its last save::

    python benchmarks/vae_sweep.py                       # λ_div 0 10 100 1000 at β 1, β 0.5 2 at λ_div 100
    python benchmarks/vae_sweep.py --lambda-div 0 100 --beta 2 --steps 800
    python benchmarks/vae_sweep.py --set model.n_hidden=128 --set model.n_embd=128   # a smaller model
    python benchmarks/vae_sweep.py --quick               # tiny model, 20 steps, 2 points: a smoke run

Checkpoints go to ``runs/vae-sweep/<name>`` (``runs/vae-sweep_quick`` with ``--quick``); results to
``benchmarks/results/vae_sweep/`` (``vae_sweep_quick/``): ``results.json``, ``results.md`` and
``tradeoff.png`` (x: Div of the samples, y: reconstruction BLEU, one point per run).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = ROOT / "configs" / "vae-small.toml"

logger = logging.getLogger("benchmarks.vae_sweep")

# A tiny VAE for --quick: checks the path end to end in a couple of minutes, measures nothing.
QUICK_SET = ["model.n_positions=128", "data.max_length=128", "model.n_embd=64", "model.n_hidden_enc=32",
             "model.n_hidden=64", "model.latent_dim=8", "train.batch_size=16", "train.save_every=0"]
QUICK_DEFAULTS = {"steps": 20, "lambda_div": [0.0, 100.0], "beta": [], "eval_prompts": 40, "samples": 40,
                  "iw_limit": 10, "iw_samples": 10, "minutes_per_run": 3.0}
FULL_DEFAULTS = {"steps": 400, "lambda_div": [0.0, 10.0, 100.0, 1000.0], "beta": [0.5, 2.0], "eval_prompts": 200,
                 "samples": 200, "iw_limit": 50, "iw_samples": 50, "minutes_per_run": 20.0}
# Figures of text_metrics kept for each set of samples (the rest are per-idea or need an idea).
SAMPLE_KEYS = ("div", "distinct_1", "distinct_2", "distinct_3", "distinct_4", "self_bleu", "words_mean",
               "repetition_rate_1", "train_verbatim_share", "train_4gram_overlap")
VAE_KEYS = ("recon_ce_per_token", "recon", "kl", "elbo", "mutual_information", "active_units", "latent_dim",
            "bleu", "exact_match", "nll_per_token", "perplexity", "iw_prompts", "iw_samples", "prompts", "warnings")


@dataclass(frozen=True)
class Point:
    """One grid point: the MMD weight λ_div and the KL weight β_max reached by the schedule."""

    lambda_div: float
    beta: float

    @property
    def name(self) -> str:
        return f"ldiv{self.lambda_div:g}-beta{self.beta:g}"

    @property
    def label(self) -> str:
        return f"λ_div={self.lambda_div:g}, β={self.beta:g}"


def grid(lambda_divs: list[float], betas: list[float], base_beta: float, beta_at: float) -> list[Point]:
    """λ_div swept at ``base_beta``, then β_max swept at λ_div = ``beta_at``; duplicates dropped."""
    points = [Point(ld, base_beta) for ld in lambda_divs] + [Point(beta_at, b) for b in betas]
    return list(dict.fromkeys(points))


def overrides(args: argparse.Namespace, point: Point) -> list[str]:
    """The ``section.key=value`` settings of one run, on top of the base config."""
    base = QUICK_SET if args.quick else []
    return [
        *base,
        f"data.dir={args.data}",
        "train.eval_every=0",  # the sweep evaluates each run itself
        f"train.max_steps={args.steps}",
        f"train.warmup_steps={max(1, min(100, args.steps // 10))}",
        f"train.log_every={max(1, min(20, args.steps // 10))}",
        f"train.max_minutes={args.minutes_per_run}",
        f"model.kl_anneal_steps={max(1, round(args.anneal_share * args.steps))}",
        *args.set,
        f"model.lambda_div={point.lambda_div!r}",
        f"model.beta_max={point.beta!r}",
        f"train.out_dir={args.runs / point.name}",
    ]


def checkpoint_state(config, out_dir: Path) -> tuple[str, dict[str, Any] | None]:
    """``("done" | "partial" | "stale" | "none", trainer state)`` of the checkpoint in ``out_dir``.

    ``done``: trained to ``max_steps`` or stopped by ``max_minutes``; ``partial``: an earlier save of
    the same run (resumable); ``stale``: another run's settings (trained afresh).
    """
    state_path, meta_path = out_dir / "trainer_state.json", out_dir / "config.json"
    if not (state_path.is_file() and meta_path.is_file()):
        return "none", None
    state = json.loads(state_path.read_text())
    meta = json.loads(meta_path.read_text())["textopia"]
    tc = config.train
    same = (all(meta["model"].get(k) == v for k, v in config.model.items())
            and all(meta["train"].get(k) == getattr(tc, k) for k in ("max_steps", "batch_size", "lr", "seed"))
            and meta["data"].get("dir") == config.data.dir)
    if not same:
        return "stale", state
    timed_out = tc.max_minutes is not None and state.get("elapsed_s", 0.0) >= 60 * tc.max_minutes
    return ("done" if state["step"] >= tc.max_steps or timed_out else "partial"), state


def train_point(args: argparse.Namespace, point: Point) -> dict[str, Any]:
    """Train one grid point unless it is already finished; returns what happened and its timing."""
    from textopia.training.config import load_config
    from textopia.training.trainer import train

    config = load_config(args.config, overrides(args, point))
    out_dir = Path(config.train.out_dir)
    status, _ = checkpoint_state(config, out_dir)
    if status == "done":
        print(f"  checkpoint in {out_dir} is finished: not trained again", flush=True)
    else:
        if status == "stale":
            print(f"  {out_dir} holds a run with other settings: training afresh", flush=True)
        elif status == "partial":
            print(f"  resuming the interrupted run in {out_dir}", flush=True)
        train(config, resume=status == "partial", progress=not args.no_progress)
    state = json.loads((out_dir / "trainer_state.json").read_text())
    meta = json.loads((out_dir / "config.json").read_text())["textopia"]
    return {
        "out_dir": str(out_dir.relative_to(ROOT) if out_dir.is_relative_to(ROOT) else out_dir),
        "trained_now": status != "done", "steps": state["step"], "max_steps": config.train.max_steps,
        "stopped_by_time": state["step"] < config.train.max_steps,
        "train_seconds": round(state["elapsed_s"], 1), "seconds_per_step": state["elapsed_s"] / max(1, state["step"]),
        "parameters": meta["num_parameters"], "model": meta["model"],
    }


def sample_figures(texts: list[str], training_index) -> dict[str, Any]:
    """Diversity (and novelty) figures of one set of unconditional samples."""
    from textopia.evaluation.metrics import text_metrics
    from textopia.generation.decoding import dedup_key

    figures = text_metrics({"prior": texts}, training_index=training_index, clip_tokens=False)
    out: dict[str, Any] = {k: figures[k] for k in SAMPLE_KEYS if k in figures}
    keys = [dedup_key(t) for t in texts]
    out["distinct_share"] = len(set(keys)) / max(1, len(keys))
    out["empty_share"] = sum(not k for k in keys) / max(1, len(keys))
    return out


def evaluate_point(args: argparse.Namespace, out_dir: Path, prompts: list[str], training_index) -> dict[str, Any]:
    """Reconstruction figures on ``prompts`` and diversity figures of prior samples of one checkpoint."""
    import torch

    from textopia.evaluation.vae_metrics import evaluate_vae
    from textopia.generation.base import GenerationConfig
    from textopia.generation.loader import load

    gen = load(out_dir, device=args.device)
    t0 = time.monotonic()
    vae = evaluate_vae(gen.vae, gen.tokenizer, prompts, iw_samples=args.iw_samples, iw_limit=args.iw_limit,
                       bleu_limit=None, max_length=gen.max_positions or 256, seed=args.seed)
    t1 = time.monotonic()
    z = torch.randn((args.samples, gen.latent_dim), generator=torch.Generator().manual_seed(args.seed))  # (S, nz)
    chunk = 100
    decoded: dict[str, list[str]] = {"sampled": [], "greedy": []}
    for start in range(0, args.samples, chunk):
        zc = z[start : start + chunk]
        decoded["sampled"] += gen.decode_latents(zc, settings=GenerationConfig(), seed=args.seed + start)
        decoded["greedy"] += gen.decode_latents(zc)
    samples = {mode: sample_figures(texts, training_index) for mode, texts in decoded.items()}
    t2 = time.monotonic()
    return {
        "vae": {k: vae[k] for k in VAE_KEYS if k in vae},
        "reconstructions": [{"prompt": p, "reconstruction": r} for p, r in vae.get("reconstructions", [])[:3]],
        "samples": samples,
        "sample_examples": {mode: texts[:5] for mode, texts in decoded.items()},
        "eval_seconds": {"reconstruction": round(t1 - t0, 1), "samples": round(t2 - t1, 1)},
    }


def machine() -> dict[str, Any]:
    import torch

    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info: dict[str, Any] = {
        "cpu": cpu, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def plot(report: dict[str, Any], path: Path) -> None:
    """Reconstruction BLEU against the samples' Div, sampled and greedy decodes side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    base_beta = report["grid"]["base_beta"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    titles = {"sampled": "prior samples, default sampling (T 0.9, top-p 0.95)",
              "greedy": "prior samples, greedy (diversity from z alone)"}
    for ax, mode in zip(axes, ("sampled", "greedy"), strict=True):
        for is_lambda_series, marker, color in ((True, "o", "tab:blue"), (False, "s", "tab:orange")):
            pts = [r for r in runs if (r["beta"] == base_beta) == is_lambda_series]
            pts.sort(key=lambda r: (r["lambda_div"], r["beta"]))
            xs = [r["samples"][mode]["div"] for r in pts]
            ys = [r["vae"]["bleu"] for r in pts]
            if not pts:
                continue
            ax.plot(xs, ys, marker=marker, color=color, linestyle="--" if is_lambda_series else "none",
                    label=f"λ_div sweep at β={base_beta:g}" if is_lambda_series else "β sweep")
            for j, (r, x, y) in enumerate(zip(pts, xs, ys, strict=True)):
                ax.annotate(Point(r["lambda_div"], r["beta"]).label, (x, y), textcoords="offset points",
                            xytext=(5, 5 if j % 2 == 0 else -12), fontsize=8)  # alternate: fewer overlaps
        ax.set_title(titles[mode], fontsize=10)
        ax.set_xlabel("sample diversity: Div (distinct-2·3·4, higher is more diverse)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel(f"reconstruction BLEU (greedy, {report['eval_prompts']} valid prompts)")
    fig.suptitle("Text VAE: reconstruction against sample diversity" + (" — QUICK SMOKE RUN" if report["quick"] else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Text VAE: reconstruction against sample diversity (λ_div, β sweep)" + (" — quick smoke run" if report["quick"] else ""),
        "",
        f"- Date: {report['date']}; command: `{report['command']}`",
        (f"- Machine: {m['cpu']}, {m['cpus']} CPUs ({m['torch_threads']} torch threads), {m.get('gpu', 'no GPU')}, "
         f"{m['platform']}, Python {m['python']}, torch {m['torch']}; load average before {m['load_average']}"),
        (f"- Base config `{report['base_config']}` with {report['steps']} steps a run, KL annealed linearly over "
         f"{report['kl_anneal_steps']} steps, settings: `{' '.join(report['common_overrides'])}`"),
        (f"- Reconstruction on the first {report['eval_prompts']} valid prompts (IW-NLL on {report['iw_limit']} of "
         f"them, K = {report['iw_samples']}); diversity of {report['samples']} prior samples, seed {report['seed']}"),
        f"- Wall time: {report['seconds']['total']:.0f} s in all",
        "",
    ]
    if report["quick"]:
        lines += [("> **A smoke run** (`--quick`: a tiny model, a few steps): it checks the path end to end; "
                   "its figures say nothing about the trade-off."), ""]
    lines += [
        ("| run | λ_div | β_max | steps | recon CE (nats/token) | KL (nats) | MI (nats) | AU | BLEU | exact | "
         "Div | distinct-2 | self-BLEU | distinct share | verbatim share | Div greedy | distinct share greedy |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["runs"]:
        v, s, g = r["vae"], r["samples"]["sampled"], r["samples"]["greedy"]
        steps = f"{r['steps']}" + (" (time cap)" if r["stopped_by_time"] else "")
        lines.append(
            f"| {r['name']} | {r['lambda_div']:g} | {r['beta']:g} | {steps} | {_fmt(v['recon_ce_per_token'])} | "
            f"{_fmt(v['kl'], 2)} | {_fmt(v['mutual_information'], 2)} | {v['active_units']}/{v['latent_dim']} | "
            f"{_fmt(v['bleu'], 1)} | {_fmt(v['exact_match'])} | {_fmt(s['div'])} | {_fmt(s['distinct_2'])} | "
            f"{_fmt(s['self_bleu'], 1)} | {_fmt(s['distinct_share'])} | {_fmt(s.get('train_verbatim_share'))} | "
            f"{_fmt(g['div'])} | {_fmt(g['distinct_share'])} |")
    lines += [
        "",
        ("Reconstruction: greedy decode of each posterior mean; BLEU is corpus BLEU (sacrebleu, 0-100), exact match "
         "ignores case, spacing and punctuation; recon CE is one posterior sample, nats per counted token (prompt "
         "tokens and EOS); KL in nats per prompt; MI = I_q(x; z) in nats (at most ln N); AU = active units "
         "(Cov_x E_q[z_j] >= 0.01). Samples: z ~ N(0, I); Div, distinct-n and self-BLEU (0-100, lower is more "
         "diverse) from `text_metrics`; distinct share = distinct samples after `dedup_key`; verbatim share = "
         "samples found verbatim in the training split. Greedy columns: the same latents decoded greedily."),
        "",
        "![trade-off](tradeoff.png)",
        "",
        "| run | parameters | train (s) | s/step | eval (s) | trained now | warnings |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for r in report["runs"]:
        e = r["eval_seconds"]
        lines.append(f"| {r['name']} | {r['parameters']:,} | {r['train_seconds']:.0f} | {r['seconds_per_step']:.2f} | "
                     f"{e['reconstruction'] + e['samples']:.0f} | {'yes' if r['trained_now'] else 'no (reused)'} | "
                     f"{'; '.join(r['vae']['warnings']) or '–'} |")
    lines += ["", "Examples (first run and last run):", ""]
    for r in (report["runs"][:1] + report["runs"][-1:]) if len(report["runs"]) > 1 else report["runs"]:
        lines.append(f"- **{r['name']}** reconstruction: `{r['reconstructions'][0]['prompt'] if r['reconstructions'] else ''}`"
                     f" → `{r['reconstructions'][0]['reconstruction'] if r['reconstructions'] else ''}`")
        for text in r["sample_examples"]["sampled"][:3]:
            lines.append(f"  - sample: `{text}`")
    lines.append("")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """NaN and infinities as null, so that results.json is standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 20 steps, 2 grid points (a smoke run)")
    parser.add_argument("--lambda-div", type=float, nargs="+", help="λ_div values swept at --base-beta "
                        "(default 0 10 100 1000)")
    parser.add_argument("--beta", type=float, nargs="*", help="β_max values swept at λ_div = --beta-at (default 0.5 2)")
    parser.add_argument("--base-beta", type=float, default=1.0, help="β_max of the λ_div sweep")
    parser.add_argument("--beta-at", type=float, default=100.0, help="λ_div of the β sweep")
    parser.add_argument("--steps", type=int, help="optimizer steps a run (default 400)")
    parser.add_argument("--minutes-per-run", type=float, help="stop a run's training after this many minutes (default 20)")
    parser.add_argument("--anneal-share", type=float, default=0.3, help="share of the steps over which β rises to β_max")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a config override for every run, e.g. model.n_hidden=128 (repeatable)")
    parser.add_argument("--config", type=Path, default=BASE_CONFIG, help="the base config")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "sd", help="the prepared data directory")
    parser.add_argument("--eval-prompts", type=int, help="valid prompts reconstructed and scored (default 200)")
    parser.add_argument("--samples", type=int, help="unconditional prior samples (default 200)")
    parser.add_argument("--iw-limit", type=int, help="prompts of the IW-NLL estimate (default 50)")
    parser.add_argument("--iw-samples", type=int, help="importance samples a prompt (default 50)")
    parser.add_argument("--runs", type=Path, help="checkpoint root (default runs/vae-sweep[_quick])")
    parser.add_argument("--results", type=Path, help="results folder (default benchmarks/results/vae_sweep[_quick])")
    parser.add_argument("--no-novelty", action="store_true", help="skip the verbatim-copy figures (no training index)")
    parser.add_argument("--device", help="torch device for evaluation (default: CUDA when available)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation's latents and decoding")
    parser.add_argument("--no-progress", action="store_true", help="no training progress bars")
    args = parser.parse_args(argv)
    for key, value in (QUICK_DEFAULTS if args.quick else FULL_DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    suffix = "_quick" if args.quick else ""
    args.runs = (args.runs or ROOT / "runs" / f"vae-sweep{suffix}").resolve()
    args.results = args.results or ROOT / "benchmarks" / "results" / f"vae_sweep{suffix}"
    args.data = args.data.resolve()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from textopia.data.corpus import read_split

    info = machine()
    t_start = time.monotonic()
    points = grid(args.lambda_div, args.beta, args.base_beta, args.beta_at)
    prompts = read_split(args.data, "valid")[: args.eval_prompts]
    training_index = None
    if not args.no_novelty:
        from textopia.evaluation.compare import training_index_for

        training_index = training_index_for(args.data)
    print(f"VAE sweep: {len(points)} runs of {args.steps} steps, {len(prompts)} eval prompts, "
          f"{args.samples} samples -> {args.results}", flush=True)
    runs = []
    for i, point in enumerate(points, 1):
        print(f"[{i}/{len(points)}] {point.label}: {args.runs / point.name}", flush=True)
        t0 = time.monotonic()
        trained = train_point(args, point)
        t1 = time.monotonic()
        print(f"[{i}/{len(points)}] {point.label}: {trained['steps']} steps, {trained['seconds_per_step']:.2f} s/step; "
              "evaluating", flush=True)
        figures = evaluate_point(args, args.runs / point.name, prompts, training_index)
        run = {"name": point.name, "lambda_div": point.lambda_div, "beta": point.beta, **trained, **figures,
               "wall_seconds": round(time.monotonic() - t0, 1), "train_wall_seconds": round(t1 - t0, 1)}
        runs.append(run)
        v, s = run["vae"], run["samples"]
        print(f"[{i}/{len(points)}] {point.label}: BLEU {v['bleu']:.1f}, exact {v['exact_match']:.3f}, "
              f"recon CE {v['recon_ce_per_token']:.3f} nats/token, KL {v['kl']:.2f}, MI {v['mutual_information']:.2f}, "
              f"AU {v['active_units']}/{v['latent_dim']} | samples: Div {s['sampled']['div']:.3f}, "
              f"self-BLEU {s['sampled']['self_bleu']:.1f}, distinct {s['sampled']['distinct_share']:.2f}, "
              f"greedy Div {s['greedy']['div']:.3f}, greedy distinct {s['greedy']['distinct_share']:.2f} "
              f"({run['wall_seconds']:.0f} s)", flush=True)

    first = overrides(args, points[0])
    report = {
        "benchmark": "vae-lambda-div-beta-sweep",
        "quick": args.quick,
        "note": "SMOKE RUN (--quick): checks the path end to end; the figures mean nothing" if args.quick else
                "the reconstruction / sample diversity trade-off of the text VAE",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(shlex.quote(a) for a in ["benchmarks/vae_sweep.py",
                                                                  *(argv if argv is not None else sys.argv[1:])]),
        "machine": info,
        "base_config": str(args.config.relative_to(ROOT) if args.config.resolve().is_relative_to(ROOT) else args.config),
        "common_overrides": [o for o in first if not o.startswith(("model.lambda_div", "model.beta_max", "train.out_dir"))],
        "grid": {"lambda_div": args.lambda_div, "beta": args.beta, "base_beta": args.base_beta, "beta_at": args.beta_at},
        "steps": args.steps, "kl_anneal_steps": max(1, round(args.anneal_share * args.steps)),
        "minutes_per_run": args.minutes_per_run, "eval_prompts": len(prompts), "samples": args.samples,
        "iw_limit": args.iw_limit, "iw_samples": args.iw_samples, "seed": args.seed,
        "seconds": {"total": round(time.monotonic() - t_start, 1)},
        "runs": runs,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "results.json").write_text(json.dumps(_json_safe(report), indent=2, ensure_ascii=False) + "\n")
    (args.results / "results.md").write_text(markdown(report), encoding="utf-8")
    plot(report, args.results / "tradeoff.png")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
