"""Latent diffusion against the VAE prior, the LSTM and the GPT: the same ideas, the same seeds.

The question of the "latent diffusion" issue: does a diffusion model over the VAE's latents write
better prompts than decoding z ~ N(0, I) (the VAE prior, which may land in the aggregate
posterior's holes), and how does it compare with the plain language models? Rows::

    conditional (idea i, n prompts, seed + i)       unconditional (group i of n, seed + i, no idea)
    ─────────────────────────────────────────       ───────────────────────────────────────────────
    diffusion, g = --guidance, idea in decoder       diffusion, g irrelevant (no idea: null branch)
    diffusion, g = --guidance, latent only           VAE prior
    VAE prior, idea in decoder                       each --lms model (a model without holes)
    each --lms model (LSTM, GPT)                     human: random held-out prompts (the floor)
    human: held-out prompts holding the idea

Figures per row (``textopia.evaluation``): Fréchet distance between MiniLM sentence embeddings
of the row's prompts and a reference set of held-out human prompts (FD, lower is better;
:func:`frechet_distance`), Div and distinct-n, novelty against the train split, relevance (idea
words found, cosine) and fluency: the perplexity of the row's prompts under ``--fluency-model``
(p(prompt), no idea; :func:`score_prompts`). Then a guidance sweep of the diffusion model with the
idea *only* in the latent: relevance against diversity for each guidance scale.

Protocol:

* Ideas: ``--num-ideas`` derived from ``--split`` of ``--data-dir`` (seed ``--seed``), as
  ``textopia compare`` does; idea i is written with seed ``seed + i`` by every model.
* Held-out prompts of the split are cut into disjoint sets: the ideas' source prompts and the
  human row (:func:`human_samples`); the FD reference (``--reference-size`` prompts, seeded);
  the random human row (as many prompts as a model row, seeded). FD is biased by sample size and
  by conditioning: compare conditional rows with the human row grouped by idea (same ideas, same
  size) and unconditional rows with the random human row.
* Decoding: the Generator's defaults (rerank by idea words on, as in ``textopia compare``) for
  the main table; the sweep turns rerank off, since reranking by idea words is conditioning
  outside the latent and would hide what guidance alone does.
* Fluency: the fluency LM scores its own samples too, which favours it; read its own row with care.

::

    python -m benchmarks.diffusion_eval                   # 100 ideas x 5, sweep 0 1 2 3 5 8 (hours on a CPU)
    python -m benchmarks.diffusion_eval --estimate-only   # time one idea per row and stop
    python -m benchmarks.diffusion_eval --quick           # 10 ideas x 2, sweep 0 3: a smoke run
    python -m benchmarks.diffusion_eval --diffusion runs/diff --vae runs/vae --lms lstm default

Writes ``results.json`` (settings, ideas, every row with its samples, the sweep), ``results.md``
and ``guidance_sweep.png`` into ``--out`` (``<out>_quick`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.harness import machine

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "diffusion"

logger = logging.getLogger("benchmarks.diffusion_eval")

FULL = {"num_ideas": 100, "n_per_idea": 5, "sweep": [0.0, 1.0, 2.0, 3.0, 5.0, 8.0], "reference_size": 2000}
QUICK = {"num_ideas": 10, "n_per_idea": 2, "sweep": [0.0, 3.0], "reference_size": 500}


# --------------------------------------------------------------------------------------------
# Held-out prompts: human rows and the FD reference, disjoint
# --------------------------------------------------------------------------------------------


def held_out_sets(prompts: Sequence[str], ideas: Sequence[str], sources: Mapping[str, str], *, n_per_idea: int,
                  reference_size: int, seed: int) -> tuple[dict[str, list[str]], list[str], dict[str, list[str]]]:
    """``(human, reference, human_random)`` from the split's prompts, pairwise disjoint.

    ``human``: :func:`human_samples` (the idea's source prompt, then prompts holding its content
    words); ``reference``: ``reference_size`` other prompts (seeded), the FD reference;
    ``human_random``: ``len(ideas)`` groups of ``n_per_idea`` further prompts (seeded), the
    unconditional floor. Sets shrink (with a warning) if the split is too small.
    """
    from textopia.evaluation.ideas import human_samples

    human = human_samples(ideas, prompts, n_per_idea=n_per_idea, seed=seed, sources=sources)
    taken = set(sources.values()) | {p for group in human.values() for p in group}
    rest = sorted({p for p in prompts if p not in taken})  # distinct texts, a stable order to shuffle
    random.Random(f"diffusion-eval/{seed}").shuffle(rest)
    n_random = len(ideas) * n_per_idea
    if len(rest) < reference_size + n_random:
        logger.warning("only %d held-out prompts left for the reference (%d asked) and the random row (%d)",
                       len(rest), reference_size, n_random)
    reference = rest[:reference_size]
    pool = rest[reference_size : reference_size + n_random]
    human_random = {f"(random held-out #{i})": pool[i * n_per_idea : (i + 1) * n_per_idea]
                    for i in range(len(ideas)) if pool[i * n_per_idea : (i + 1) * n_per_idea]}
    return human, reference, human_random


# --------------------------------------------------------------------------------------------
# Rows: what to generate, and measuring what was generated
# --------------------------------------------------------------------------------------------


@dataclass
class Spec:
    """One row to generate.

    Attributes:
        name: the row's label in the tables.
        key: which loaded generator writes it.
        conditional: written from the ideas (True) or with no idea (False).
        decoding: extra :meth:`Generator.generate` keywords (guidance, steps, rerank).
        about: the row's settings, for the JSON.
    """

    name: str
    key: str
    conditional: bool
    decoding: dict[str, Any]
    about: dict[str, Any]


def uncond_label(i: int) -> str:
    return f"(no idea #{i})"


def generate_row(generator, spec: Spec, ideas: Sequence[str], *, n_per_idea: int, seed: int,
                 first: list[str] | None = None, progress: bool = False) -> dict[str, list[str]]:
    """The row's samples: ``{idea: [prompt, ...]}``, or ``{"(no idea #i)": [...]}`` unconditionally.

    Slot i (idea i, or unconditional group i) is written with seed ``seed + i``; ``first`` is slot
    0's output when already made (by the timing probe, with the same seed).
    """
    from textopia.evaluation.compare import generate_samples

    if spec.conditional:
        out = {ideas[0]: first} if first is not None else {}
        rest = ideas[1:] if first is not None else ideas
        offset = 1 if first is not None else 0
        out.update(generate_samples(generator, rest, n_per_idea=n_per_idea, seed=seed + offset,
                                    decoding=spec.decoding, progress=progress))
        return out
    slots: Any = range(len(ideas))
    if progress:
        from tqdm.auto import tqdm

        slots = tqdm(slots, desc=f"generate {spec.name}", unit="group")
    out = {}
    for i in slots:
        if i == 0 and first is not None:
            out[uncond_label(0)] = first
        else:
            out[uncond_label(i)] = [g.prompt for g in generator.generate(None, n_per_idea, seed=seed + i,
                                                                          **spec.decoding)]
    return out


def probe(generator, spec: Spec, ideas: Sequence[str], *, n_per_idea: int, seed: int) -> tuple[list[str], float]:
    """Slot 0 of the row and the seconds it took (for the estimate; reused by :func:`generate_row`)."""
    t0 = time.perf_counter()
    out = generator.generate(ideas[0] if spec.conditional else None, n_per_idea, seed=seed, **spec.decoding)
    return [g.prompt for g in out], time.perf_counter() - t0


def warm_up(generator) -> None:
    """One tiny call, so lazy imports (transformers' processors, diffusers) do not count in the probe."""
    from textopia.generation.diffusion import DiffusionGenerator

    extra = {"steps": 2} if isinstance(generator, DiffusionGenerator) else {}
    generator.generate("a castle", 1, seed=0, max_new_tokens=4, min_new_tokens=0, **extra)


class CachedEmbedder:
    """A :class:`SentenceEmbedder` that embeds each distinct text once (FD and cosine share them)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.dim = inner.dim
        self._cache: dict[str, Any] = {}

    def encode(self, texts: Sequence[str]):
        """As :meth:`SentenceEmbedder.encode`: (N, 384) float32, rows of L2 norm 1."""
        import numpy as np

        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self._cache.update(zip(missing, self.inner.encode(missing)))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])


@dataclass
class Measure:
    """What every row is measured with.

    Attributes:
        embedder: MiniLM (:class:`SentenceEmbedder`) or None (no FD, no cosine).
        reference: (R, 384) float32 embeddings of the FD reference, or None.
        training_index: the train split's n-gram index (novelty), or None.
        fluency: the fluency LM (a :class:`DecoderGenerator`) or None.
        clip_tokens: count CLIP tokens.
        seed, batch_size: for :func:`score_prompts`.
    """

    embedder: Any
    reference: Any
    training_index: Any
    fluency: Any
    clip_tokens: bool
    seed: int = 0
    batch_size: int = 32

    def frechet(self, texts: Sequence[str]) -> float | None:
        """FD of ``texts`` against the reference (squared MiniLM units), or None when unmeasurable."""
        from textopia.evaluation.metrics import frechet_distance

        if self.embedder is None or self.reference is None or len(texts) < 2:
            return None
        return frechet_distance(self.embedder.encode(list(texts)), self.reference)

    def perplexity(self, texts: Sequence[str]) -> dict[str, Any] | None:
        """p(prompt) of ``texts`` under the fluency LM (a :class:`LikelihoodResult` as a dict), or None."""
        from textopia.evaluation.likelihood import score_prompts

        if self.fluency is None or not texts:
            return None
        g = self.fluency
        result = score_prompts(g.model, g.tokenizer, list(texts), ideas="none", batch_size=self.batch_size,
                               max_length=g.max_positions or 256, seed=self.seed)
        return result.to_dict()

    def row(self, samples: Mapping[str, Sequence[str]], *, conditional: bool) -> dict[str, Any]:
        """``{"text", "frechet", "fluency", "seconds"}`` of one row's samples.

        Unconditional rows have no relevance (their "ideas" are slot labels); their *within*
        figures are among the n prompts of one seed.
        """
        from textopia.evaluation.compare import text_figures

        t0 = time.perf_counter()
        texts = [t for group in samples.values() for t in group]
        if not texts:
            return {"text": None, "frechet": None, "fluency": None, "seconds": 0.0}
        metrics, _ = text_figures(samples, training_index=self.training_index,
                                  embedder=self.embedder if conditional else None, clip_tokens=self.clip_tokens)
        if not conditional:
            metrics.pop("relevance_recall", None)
        out = {"text": metrics, "frechet": self.frechet(texts), "fluency": self.perplexity(texts)}
        out["seconds"] = round(time.perf_counter() - t0, 3)
        return out


def paired_bootstrap(measure: Measure, a: Mapping[str, Sequence[str]], b: Mapping[str, Sequence[str]], *,
                     resamples: int, seed: int) -> dict[str, Any] | None:
    """How sure is "row a has lower FD than row b at no less Div"? A paired bootstrap over slots.

    Both rows hold the same slots (ideas, or seeds of the unconditional rows). Each resample
    draws the slots with replacement (the same draw for both rows: the comparison is paired, as
    the rows share ideas and seeds) and measures ΔFD = FD(a) − FD(b) against the fixed reference
    and ΔDiv = Div(a) − Div(b) on the *distinct* slots drawn (Efron & Tibshirani 1993, ch. 6;
    percentile intervals). Distinct, because a repeated slot repeats its prompts, which Div
    counts as repeated n-grams and FD as a rank-deficient covariance; the distinct slots are
    about 63% of them, so the intervals are those of a smaller set: wider, i.e. conservative.

    Returns:
        ``{"resamples", "slots", "fd_delta", "fd_delta_ci90", "p_fd_lower", "div_delta", "div_delta_ci90",
        "p_div_not_lower"}`` (the deltas measured on the full rows; p_*: share of resamples where
        a's FD is lower / a's Div is at least b's), or None without embeddings or shared slots.
    """
    import numpy as np

    from textopia.evaluation.metrics import div_score, frechet_distance

    slots = [k for k in a if k in b and a[k] and b[k]]
    if measure.embedder is None or measure.reference is None or len(slots) < 2 or resamples < 1:
        return None
    emb = {name: {k: measure.embedder.encode(list(rows[k])) for k in slots} for name, rows in (("a", a), ("b", b))}

    def deltas(keys: Sequence[str]) -> tuple[float, float]:
        fd = [frechet_distance(np.concatenate([emb[n][k] for k in keys]), measure.reference) for n in ("a", "b")]
        div = [div_score([t for k in keys for t in rows[k]]) for rows in (a, b)]
        return fd[0] - fd[1], div[0] - div[1]

    fd0, div0 = deltas(slots)
    rng = np.random.default_rng(seed)
    draws = np.array([deltas([slots[i] for i in sorted(set(rng.integers(0, len(slots), len(slots)).tolist()))])
                      for _ in range(resamples)])
    return {"resamples": resamples, "slots": len(slots),
            "fd_delta": fd0, "fd_delta_ci90": [float(np.quantile(draws[:, 0], q)) for q in (0.05, 0.95)],
            "p_fd_lower": float((draws[:, 0] < 0).mean()),
            "div_delta": div0, "div_delta_ci90": [float(np.quantile(draws[:, 1], q)) for q in (0.05, 0.95)],
            "p_div_not_lower": float((draws[:, 1] >= 0).mean())}


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def _fmt(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return fmt.format(value)


def _get(row: Mapping[str, Any], path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        value = (value or {}).get(part) if isinstance(value, Mapping) else None
    return value


# (header, path in the row, format)
MAIN_COLUMNS = [
    ("FD ↓", "frechet", "{:.4f}"),
    ("fluency PPL/token ↓", "fluency.perplexity", "{:.1f}"),
    ("fluency PPL/word ↓", "fluency.perplexity_per_word", "{:.1f}"),
    ("idea words found", "text.relevance_recall", "{:.3f}"),
    ("cosine (MiniLM)", "text.relevance_cosine", "{:.3f}"),
    ("Div", "text.div", "{:.3f}"),
    ("Div within", "text.div_within", "{:.3f}"),
    ("novel", "text.train_novel_share", "{:.3f}"),
    ("prompts", "text.n_samples", "{:,.0f}"),
    ("s / prompt", "seconds.per_prompt", "{:.3f}"),
]
DIVERSITY_COLUMNS = [
    ("distinct-1", "text.distinct_1", "{:.3f}"),
    ("distinct-2", "text.distinct_2", "{:.3f}"),
    ("distinct-3", "text.distinct_3", "{:.3f}"),
    ("distinct-4", "text.distinct_4", "{:.3f}"),
    ("distinct-2 within", "text.distinct_2_within", "{:.3f}"),
    ("self-BLEU (0-100)", "text.self_bleu", "{:.1f}"),
    ("verbatim in train", "text.train_verbatim_share", "{:.3f}"),
    ("4-grams in train", "text.train_4gram_overlap", "{:.3f}"),
    ("words", "text.words_mean", "{:.1f}"),
    ("CLIP tokens", "text.clip_tokens_mean", "{:.1f}"),
    ("repetition-2", "text.repetition_rate_2", "{:.3f}"),
]
SWEEP_COLUMNS = [
    ("guidance", "guidance", "{:g}"),
    ("decoder reads the idea", "idea_in_decoder", "{}"),
    ("idea words found", "text.relevance_recall", "{:.3f}"),
    ("cosine (MiniLM)", "text.relevance_cosine", "{:.3f}"),
    ("Div", "text.div", "{:.3f}"),
    ("Div within", "text.div_within", "{:.3f}"),
    ("FD ↓", "frechet", "{:.4f}"),
    ("fluency PPL/token ↓", "fluency.perplexity", "{:.1f}"),
    ("prompts", "text.n_samples", "{:,.0f}"),
]


def _table(rows: Sequence[Mapping[str, Any]], columns, *, first: str | None = "row") -> list[str]:
    heads = ([first] if first else []) + [c[0] for c in columns]
    lines = ["| " + " | ".join(heads) + " |", "|" + ("---|" if first else "") + "---:|" * len(columns)]
    for r in rows:
        cells = ([r["name"]] if first else []) + [_fmt(_get(r, path), fmt) for _, path, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(report: Mapping[str, Any]) -> str:
    s = report["settings"]
    m = report["machine"]
    cond = [r for r in report["rows"] if r["conditional"]]
    uncond = [r for r in report["rows"] if not r["conditional"]]
    lines = ["# Latent diffusion against the VAE prior and the language models" + (" — quick smoke run" if s["quick"] else ""), ""]
    if s["quick"]:
        lines += [("> **A smoke run** (`--quick`): it checks the path end to end; its figures rest on a few "
                   "prompts and must not be read as results."), ""]
    lines += [
        f"- Date: {report['date']}; command: `{report['command']}`",
        (f"- Machine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']} ({m['torch_threads']} threads), "
         f"{m.get('gpu', 'no GPU')}; load average before {m['load_average']}"),
        (f"- Models: diffusion `{s['diffusion']}` (guidance {s['guidance']:g}, {s['steps']} DDIM steps, eta {s.get('eta', 0.0):g}), VAE `{s['vae']}` "
         f"(same weights as the diffusion's VAE: {s['vae_matches_diffusion']}), LMs {', '.join(f'`{x}`' for x in s['lms']) or 'none'}; "
         f"fluency LM `{s['fluency_model']}`"),
        (f"- Ideas: {s['num_ideas']} derived from `{s['data_dir']}/{s['split']}.txt` (seed {s['seed']}), "
         f"{s['n_per_idea']} prompts asked per idea, idea i with seed {s['seed']} + i; unconditional rows: "
         f"{s['num_ideas']} groups of {s['n_per_idea']}, group i with seed {s['seed']} + i"),
        (f"- FD reference: {s['reference_size']} held-out prompts of `{s['split']}`, disjoint from the ideas' sources "
         "and both human rows; MiniLM (all-MiniLM-L6-v2) embeddings"),
        f"- Decoding: Generator defaults{' (rerank on)' if s['rerank'] else ', rerank off'}; sweep: rerank off",
        f"- Wall time: {report['seconds']['total']:.0f} s (estimated beforehand: {report['estimate']['total_s']:.0f} s of generation)",
        "",
        "## Conditional: written from the ideas",
        "",
        *_table(cond, MAIN_COLUMNS),
        "",
        "## Unconditional: no idea (does N(0, I) land in holes?)",
        "",
        *_table(uncond, MAIN_COLUMNS),
        "",
        *_paired_lines(report.get("paired", [])),
        "## Diversity, novelty and form (all rows)",
        "",
        *_table(cond + uncond, DIVERSITY_COLUMNS),
        "",
        "## Guidance sweep (diffusion, rerank off)",
        "",
        *_table(report["sweep"], SWEEP_COLUMNS, first=None),
        "",
        "![relevance against diversity](guidance_sweep.png)",
        "",
        ("FD: Fréchet distance between Gaussians fitted to MiniLM embeddings of the row's prompts and of the "
         "reference (squared embedding units; biased by sample size and, for conditional rows, by the ideas: compare "
         "conditional rows with `human · grouped by idea`, unconditional ones with `human · random held-out`). "
         "Fluency: perplexity of the row's prompts, p(prompt) without the idea, under the fluency LM (tokens of its "
         "tokenizer, EOS counted; per word: the same nats over whitespace words); it scores its own samples too. "
         "Relevance: share of the idea's content words found, and cosine(idea, prompt) in MiniLM space, per idea. "
         "Div: distinct-2 × 3 × 4 pooled (LD4LG); *within*: among one idea's (or one seed's) prompts. Novel: share "
         "of prompts not verbatim in the train split. – : not measured or undefined."),
        "",
    ]
    return "\n".join(lines)


def _paired_lines(paired: Sequence[Mapping[str, Any]]) -> list[str]:
    if not paired:
        return []
    lines = ["## Diffusion against the VAE prior: paired bootstrap", "",
             "| rows (a − b) | slots | ΔFD | 90% interval | P(ΔFD < 0) | ΔDiv | 90% interval | P(ΔDiv ≥ 0) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for item in paired:
        r = item["result"]
        lines.append(f"| {item['a']} − {item['b']} | {r['slots']} | {r['fd_delta']:+.4f} | "
                     f"[{r['fd_delta_ci90'][0]:+.4f}, {r['fd_delta_ci90'][1]:+.4f}] | {r['p_fd_lower']:.2f} | "
                     f"{r['div_delta']:+.3f} | [{r['div_delta_ci90'][0]:+.3f}, {r['div_delta_ci90'][1]:+.3f}] | "
                     f"{r['p_div_not_lower']:.2f} |")
    n = paired[0]["result"]["resamples"]
    lines += ["", (f"{n} resamples of the slots (ideas, or seeds of the unconditional rows), the same draw for both "
                   "rows, each measured on the distinct slots drawn (about 63%: conservative intervals); FD against "
                   "the fixed reference. Negative ΔFD: diffusion is closer to human prompts; "
                   "ΔDiv ≥ 0: at no less diversity."), ""]
    return lines


def plot_sweep(report: Mapping[str, Any], path: Path) -> None:
    """Relevance (y) against Div (x), one point per guidance scale, the main rows in grey for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ykeys = [k for k in ("relevance_cosine", "relevance_recall")
             if any(_get(r, f"text.{k}") is not None for r in report["sweep"])]
    fig, axes = plt.subplots(1, max(1, len(ykeys)), figsize=(6.2 * max(1, len(ykeys)), 4.8), squeeze=False,
                             layout="constrained")
    for ax, ykey in zip(axes[0], ykeys):
        for variant, style in ((False, "o-"), (True, "s--")):
            pts = [r for r in report["sweep"] if r["idea_in_decoder"] is variant and r.get("text")]
            pts = [r for r in pts if _finite(r["text"].get("div")) and _finite(r["text"].get(ykey))]
            if not pts:
                continue
            xs = [r["text"]["div"] for r in pts]
            ys = [r["text"][ykey] for r in pts]
            ax.plot(xs, ys, style, label="latent only" if not variant else "idea also in the decoder", zorder=3)
            for r, x, y in zip(pts, xs, ys):
                ax.annotate(f"g={r['guidance']:g}", (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        for r in report["rows"]:
            t = r.get("text") or {}
            if r["conditional"] and _finite(t.get("div")) and _finite(t.get(ykey)):
                ax.scatter([t["div"]], [t[ykey]], color="grey", marker="*" if r["kind"] == "human" else "x", zorder=2)
                ax.annotate(r["name"], (t["div"], t[ykey]), textcoords="offset points", xytext=(5, -9), fontsize=7,
                            color="grey")
        ax.set_xlabel("diversity: Div (distinct-2 × 3 × 4, pooled)")
        ax.set_ylabel("relevance: " + ("cosine(idea, prompt), MiniLM" if ykey == "relevance_cosine"
                                       else "share of idea words found"))
        ax.set_title("guidance sweep (grey: main table rows, rerank on)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if not ykeys:
        axes[0][0].text(0.5, 0.5, "no sweep measured", ha="center", va="center")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def vae_matches(diffusion_gen, vae_gen) -> bool:
    """True if the VAE checkpoint holds exactly the diffusion model's (frozen) VAE weights."""
    import torch

    a, b = diffusion_gen.diffusion.vae.state_dict(), vae_gen.vae.state_dict()
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diffusion", default="diffusion", help="checkpoint directory or embedded model")
    parser.add_argument("--vae", default="vae", help="checkpoint directory or embedded model (the diffusion's VAE)")
    parser.add_argument("--lms", nargs="*", default=["lstm", "default"], help="language models to compare (may be none)")
    parser.add_argument("--data-dir", type=Path, default=Path("data/sd"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--num-ideas", type=int, help=f"ideas (default {FULL['num_ideas']}; --quick {QUICK['num_ideas']})")
    parser.add_argument("--n-per-idea", type=int, help=f"prompts per idea (default {FULL['n_per_idea']}; --quick {QUICK['n_per_idea']})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--guidance", type=float, default=3.0, help="guidance scale of the main diffusion rows")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0: deterministic; 1: DDPM-like noise)")
    parser.add_argument("--sweep", type=float, nargs="*", help="guidance scales of the sweep (default 0 1 2 3 5 8; --quick 0 3)")
    parser.add_argument("--sweep-idea-in-decoder", action="store_true",
                        help="also sweep with the idea in the decoder (doubles the sweep's cost)")
    parser.add_argument("--reference-size", type=int, help="held-out prompts in the FD reference (default 2000; --quick 500)")
    parser.add_argument("--fluency-model", default="default", help="LM that scores fluency; 'none' skips it")
    parser.add_argument("--no-uncond-lms", action="store_true", help="no unconditional rows for the LMs")
    parser.add_argument("--no-rerank", action="store_true", help="main table without reranking by idea words")
    parser.add_argument("--no-clip-tokens", action="store_true", help="do not count CLIP tokens")
    parser.add_argument("--device", help="torch device (default: CUDA when available)")
    parser.add_argument("--quick", action="store_true", help="10 ideas x 2, sweep 0 3: a smoke run into <out>_quick")
    parser.add_argument("--estimate-only", action="store_true", help="time one idea per row, print the estimate, stop")
    parser.add_argument("--bootstrap", type=int, default=200,
                        help="paired bootstrap resamples of ΔFD and ΔDiv, diffusion against the VAE prior (0: none)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.quick and not args.out.name.endswith("_quick"):
        args.out = args.out.with_name(args.out.name + "_quick")
    if args.num_ideas < 1 or args.n_per_idea < 1 or args.steps < 1:
        parser.error("--num-ideas, --n-per-idea and --steps must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = time.monotonic()
    info = machine()

    from textopia.data.corpus import read_split
    from textopia.evaluation.compare import default_embedder, training_index_for
    from textopia.io import json_safe
    from textopia.evaluation.ideas import load_ideas
    from textopia.generation.decoder import DecoderGenerator
    from textopia.generation.diffusion import DiffusionGenerator
    from textopia.generation.loader import load
    from textopia.io import atomic_write_text

    # Ideas and held-out sets.
    ideas, sources = load_ideas(data_dir=args.data_dir, split=args.split, num_ideas=args.num_ideas, seed=args.seed)
    held_out = read_split(args.data_dir, args.split)
    human, reference, human_random = held_out_sets(held_out, ideas, sources, n_per_idea=args.n_per_idea,
                                                   reference_size=args.reference_size, seed=args.seed)

    # Generators.
    gens: dict[str, Any] = {}
    diffusion = load(args.diffusion, device=args.device)
    if not isinstance(diffusion, DiffusionGenerator):
        raise SystemExit(f"--diffusion {args.diffusion} is a {diffusion.kind} model, not latent diffusion")
    gens["diffusion"] = diffusion
    gens["diffusion-latent"] = DiffusionGenerator(diffusion.diffusion, diffusion.tokenizer, diffusion.meta,
                                                  diffusion.name, idea_in_decoder=False, eta=args.eta,
                                                  load_lm=diffusion.load_lm)
    diffusion.eta = args.eta
    vae = load(args.vae, device=args.device)
    gens["vae"] = vae
    for lm in args.lms:
        gens[f"lm:{lm}"] = load(lm, device=args.device)
    fluency = None
    if args.fluency_model.lower() != "none":
        fluency = gens.get(f"lm:{args.fluency_model}") or load(args.fluency_model, device=args.device)
        if not isinstance(fluency, DecoderGenerator) or hasattr(fluency, "vae"):
            raise SystemExit(f"--fluency-model {args.fluency_model} must be a decoder-only LM (GPT, LSTM)")
    matches = vae_matches(diffusion, vae)
    if not matches:
        logger.warning("--vae %s is not the diffusion model's VAE: the VAE rows decode with other weights", args.vae)

    # Rows.
    g, steps = args.guidance, args.steps
    dec = {"steps": steps} | ({} if not args.no_rerank else {"rerank": False})
    plain = {} if not args.no_rerank else {"rerank": False}
    dname, vname = Path(args.diffusion).name, Path(args.vae).name
    specs = [
        Spec(f"{dname} · g={g:g} · idea in latent + decoder", "diffusion", True, dec | {"guidance": g},
             {"kind": "diffusion", "guidance": g, "steps": steps, "idea_in_decoder": True}),
        Spec(f"{dname} · g={g:g} · idea in latent only", "diffusion-latent", True, dec | {"guidance": g},
             {"kind": "diffusion", "guidance": g, "steps": steps, "idea_in_decoder": False}),
        Spec(f"{vname} · prior N(0, I) · idea in decoder", "vae", True, dict(plain),
             {"kind": "vae", "idea_in_decoder": True}),
        *[Spec(f"{lm} ({gens[f'lm:{lm}'].kind})", f"lm:{lm}", True, dict(plain), {"kind": gens[f"lm:{lm}"].kind})
          for lm in args.lms],
        Spec(f"{dname} · no idea", "diffusion", False, {"steps": steps},
             {"kind": "diffusion", "guidance": None, "steps": steps, "idea_in_decoder": False}),
        Spec(f"{vname} · prior N(0, I) · no idea", "vae", False, {}, {"kind": "vae", "idea_in_decoder": False}),
        *([] if args.no_uncond_lms else
          [Spec(f"{lm} ({gens[f'lm:{lm}'].kind}) · no idea", f"lm:{lm}", False, {}, {"kind": gens[f"lm:{lm}"].kind})
           for lm in args.lms]),
    ]
    variants = [False, True] if args.sweep_idea_in_decoder else [False]
    sweep_specs = [Spec(f"sweep g={s:g} · {'latent + decoder' if v else 'latent only'}",
                        "diffusion" if v else "diffusion-latent", True,
                        {"guidance": s, "steps": steps, "rerank": False},
                        {"kind": "diffusion", "guidance": s, "steps": steps, "idea_in_decoder": v})
                   for v in variants for s in args.sweep]

    # Estimate: one slot per row, timed after a warm-up; the slot is kept as the row's first.
    for key, gen in gens.items():
        if key != "diffusion-latent":
            warm_up(gen)
    firsts: list[list[str]] = []
    estimate_rows = []
    n_slots = len(ideas)
    print(f"estimate: timing one of {n_slots} slots ({args.n_per_idea} prompts) for each of "
          f"{len(specs) + len(sweep_specs)} rows ...", flush=True)
    for spec in specs + sweep_specs:
        first, seconds = probe(gens[spec.key], spec, ideas, n_per_idea=args.n_per_idea, seed=args.seed)
        firsts.append(first)
        estimate_rows.append({"row": spec.name, "slot_s": round(seconds, 3), "row_s": round(seconds * n_slots, 1)})
        print(f"  {spec.name:<55} {seconds:7.2f} s per slot -> {seconds * n_slots:8.0f} s", flush=True)
    total_est = sum(r["row_s"] for r in estimate_rows)
    print(f"estimated generation time: {total_est:.0f} s ({total_est / 3600:.2f} h), plus measuring "
          "(embeddings, fluency, novelty: minutes)", flush=True)
    if args.estimate_only:
        return 0

    # What every row is measured with.
    embedder = default_embedder(args.device)
    embedder = CachedEmbedder(embedder) if embedder is not None else None
    t0 = time.perf_counter()
    ref_emb = embedder.encode(reference) if embedder is not None and len(reference) >= 2 else None
    logger.info("reference: %d prompts embedded in %.1f s", len(reference), time.perf_counter() - t0)
    measure = Measure(embedder=embedder, reference=ref_emb, training_index=training_index_for(args.data_dir),
                      fluency=fluency, clip_tokens=not args.no_clip_tokens, seed=args.seed)

    def run(spec: Spec, first: list[str]) -> dict[str, Any]:
        gen = gens[spec.key]
        t0 = time.perf_counter()
        samples = generate_row(gen, spec, ideas, n_per_idea=args.n_per_idea, seed=args.seed, first=first,
                               progress=not args.no_progress)
        seconds = time.perf_counter() - t0 + next(r["slot_s"] for r in estimate_rows if r["row"] == spec.name)
        n = sum(map(len, samples.values()))
        row = {"name": spec.name, "model": str(getattr(gen, "name", spec.key)), "conditional": spec.conditional,
               **spec.about, "decoding": spec.decoding, **measure.row(samples, conditional=spec.conditional)}
        row["seconds"] = {"generate": round(seconds, 3), "per_prompt": seconds / max(1, n), "measure": row["seconds"]}
        row["samples"] = samples
        logger.info("%s: %d prompts in %.0f s; FD %s", spec.name, n, seconds, row["frechet"])
        return row

    rows = [run(spec, first) for spec, first in zip(specs, firsts)]
    human_rows = [
        ({"name": "human · grouped by idea", "model": f"held-out {args.split} prompts holding the idea's words",
          "conditional": True, "kind": "human"}, human),
        ({"name": "human · random held-out", "model": f"random held-out {args.split} prompts", "conditional": False,
          "kind": "human"}, human_random),
    ]
    for about, samples in human_rows:
        row = {**about, **measure.row(samples, conditional=about["conditional"])}
        row["seconds"] = {"measure": row["seconds"]}
        row["samples"] = samples
        rows.append(row)
    sweep = []
    for spec, first in zip(sweep_specs, firsts[len(specs):]):
        row = run(spec, first)
        sweep.append(row)

    paired = []
    by_name = {r["name"]: r for r in rows}
    for a, b in ((specs[0].name, specs[2].name), (specs[1].name, specs[2].name),
                 (f"{dname} · no idea", f"{vname} · prior N(0, I) · no idea")):
        result = paired_bootstrap(measure, by_name[a]["samples"], by_name[b]["samples"], resamples=args.bootstrap,
                                  seed=args.seed)
        if result is not None:
            paired.append({"a": a, "b": b, "result": result})
            logger.info("paired bootstrap %s − %s: %s", a, b, result)

    report = {
        "benchmark": "latent-diffusion-eval",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(shlex.quote(a) for a in
                                        ["-m", "benchmarks.diffusion_eval", *(argv if argv is not None else sys.argv[1:])]),
        "machine": info,
        "settings": {
            "quick": args.quick, "diffusion": args.diffusion, "vae": args.vae, "lms": list(args.lms),
            "fluency_model": args.fluency_model, "data_dir": str(args.data_dir), "split": args.split,
            "num_ideas": len(ideas), "n_per_idea": args.n_per_idea, "seed": args.seed, "guidance": g, "steps": steps,
            "eta": args.eta, "sweep": list(args.sweep), "sweep_idea_in_decoder": args.sweep_idea_in_decoder,
            "reference_size": len(reference), "bootstrap": args.bootstrap, "rerank": not args.no_rerank, "vae_matches_diffusion": matches,
            "embedder": embedder is not None, "clip_tokens": not args.no_clip_tokens,
            "models": {k: v.info() for k, v in gens.items()},
        },
        "estimate": {"rows": estimate_rows, "total_s": total_est},
        "ideas": list(ideas),
        "rows": rows,
        "sweep": sweep,
        "paired": paired,
        "seconds": {"total": round(time.monotonic() - started, 1)},
    }
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(json_safe(report), indent=2, ensure_ascii=False,
                                                       allow_nan=False) + "\n")
    text = markdown(report)
    atomic_write_text(out / "results.md", text)
    plot_sweep(report, out / "guidance_sweep.png")
    print(text)
    print(f"wrote {out}/results.json, results.md, guidance_sweep.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
