"""Latent diffusion against the VAE prior, the LSTM and the GPT: the same ideas, the same seeds.

The question of the "latent diffusion" issue: does a diffusion model over the VAE's latents write
better prompts than decoding z ~ N(0, I) (the VAE prior, which may land in the aggregate
posterior's holes), and how does it compare with the plain language models? Rows::

    conditional (idea i, n prompts, seed + i)       unconditional (group i of n, seed + i, no idea)
    ─────────────────────────────────────────       ───────────────────────────────────────────────
    diffusion, g = guidance, idea in decoder         diffusion, g irrelevant (no idea: null branch)
    diffusion, g = guidance, latent only             VAE prior
    VAE prior, idea in decoder                       each lms model (a model without holes)
    each lms model (LSTM, GPT)                       human: random held-out prompts (the floor)
    human: held-out prompts holding the idea

Figures per row (``textopia.evaluation``): Fréchet distance between MiniLM sentence embeddings
of the row's prompts and a reference set of held-out human prompts (FD, lower is better;
:func:`frechet_distance`), Div and distinct-n, novelty against the train split, relevance (idea
words found, cosine) and fluency: the perplexity of the row's prompts under ``fluency_model``
(p(prompt), no idea; :func:`score_prompts`). Then a guidance sweep of the diffusion model with the
idea *only* in the latent: relevance against diversity for each guidance scale.

Protocol:

* Ideas: ``num_ideas`` derived from ``split`` of ``data_dir`` (seed ``seed``), as
  ``textopia compare`` does; idea i is written with seed ``seed + i`` by every model.
* Held-out prompts of the split are cut into disjoint sets: the ideas' source prompts and the
  human row (:func:`human_samples`); the FD reference (``reference_size`` prompts, seeded);
  the random human row (as many prompts as a model row, seeded). FD is biased by sample size and
  by conditioning: compare conditional rows with the human row grouped by idea (same ideas, same
  size) and unconditional rows with the random human row.
* Decoding: the Generator's defaults (rerank by idea words on, as in ``textopia compare``) for
  the main table; the sweep turns rerank off, since reranking by idea words is conditioning
  outside the latent and would hide what guidance alone does.
* Fluency: the fluency LM scores its own samples too, which favours it; read its own row with care.

Usage (from the repository root, after `textopia prepare ... --out data/sd`)::

    python -m benchmarks diffusion_eval                                 # 100 ideas x 5, sweep 0 1 2 3 5 8 (hours on a CPU)
    python -m benchmarks diffusion_eval --set estimate_only=true        # time one idea per row and stop
    python -m benchmarks diffusion_eval --set diffusion=runs/diff vae=runs/vae lms=lstm,default

Writes ``diffusion_eval.json`` (settings, ideas, every row with its samples, the sweep, under
``details``) and ``diffusion_eval.md``; :func:`plot_sweep` draws the sweep from the result.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import Result, benchmark

SMOKE_DATA = Path(__file__).resolve().parent / "smoke_data"

logger = logging.getLogger("benchmarks.diffusion_eval")



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


def _get(row: Mapping[str, Any], path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        value = (value or {}).get(part) if isinstance(value, Mapping) else None
    return value


# (header, path in the row)
MAIN_COLUMNS = [
    ("FD ↓", "frechet"),
    ("fluency PPL/token ↓", "fluency.perplexity"),
    ("fluency PPL/word ↓", "fluency.perplexity_per_word"),
    ("idea words found", "text.relevance_recall"),
    ("cosine (MiniLM)", "text.relevance_cosine"),
    ("Div", "text.div"),
    ("Div within", "text.div_within"),
    ("novel", "text.train_novel_share"),
    ("prompts", "text.n_samples"),
    ("s / prompt", "seconds.per_prompt"),
]
DIVERSITY_COLUMNS = [
    ("distinct-1", "text.distinct_1"),
    ("distinct-2", "text.distinct_2"),
    ("distinct-3", "text.distinct_3"),
    ("distinct-4", "text.distinct_4"),
    ("distinct-2 within", "text.distinct_2_within"),
    ("self-BLEU (0-100)", "text.self_bleu"),
    ("verbatim in train", "text.train_verbatim_share"),
    ("4-grams in train", "text.train_4gram_overlap"),
    ("words", "text.words_mean"),
    ("CLIP tokens", "text.clip_tokens_mean"),
    ("repetition-2", "text.repetition_rate_2"),
]
SWEEP_COLUMNS = [
    ("guidance", "guidance"),
    ("decoder reads the idea", "idea_in_decoder"),
    ("idea words found", "text.relevance_recall"),
    ("cosine (MiniLM)", "text.relevance_cosine"),
    ("Div", "text.div"),
    ("Div within", "text.div_within"),
    ("FD ↓", "frechet"),
    ("fluency PPL/token ↓", "fluency.perplexity"),
    ("prompts", "text.n_samples"),
]


def table(rows: Sequence[Mapping[str, Any]], columns, *, first: str | None = "row") -> list[dict[str, Any]]:
    """``rows`` as flat table rows: the row's name (``first``), then each column's value (None: not measured)."""
    return [({first: r["name"]} if first else {}) | {head: _get(r, path) for head, path in columns} for r in rows]


def paired_rows(paired: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The paired bootstraps as table rows (a − b: negative ΔFD, diffusion closer to human prompts;
    ΔDiv ≥ 0, at no less diversity)."""
    return [{"rows (a − b)": f"{item['a']} − {item['b']}", "slots": r["slots"], "resamples": r["resamples"],
             "ΔFD": r["fd_delta"], "ΔFD 90% interval": r["fd_delta_ci90"], "P(ΔFD < 0)": r["p_fd_lower"],
             "ΔDiv": r["div_delta"], "ΔDiv 90% interval": r["div_delta_ci90"], "P(ΔDiv ≥ 0)": r["p_div_not_lower"]}
            for item in paired for r in [item["result"]]]


#: What the tables' figures are (the result's ``notes``).
NOTES = ("FD: Fréchet distance between Gaussians fitted to MiniLM embeddings of the row's prompts and of the "
         "reference (squared embedding units; biased by sample size and, for conditional rows, by the ideas: compare "
         "conditional rows with `human · grouped by idea`, unconditional ones with `human · random held-out`). "
         "Fluency: perplexity of the row's prompts, p(prompt) without the idea, under the fluency LM (tokens of its "
         "tokenizer, EOS counted; per word: the same nats over whitespace words); it scores its own samples too. "
         "Relevance: share of the idea's content words found, and cosine(idea, prompt) in MiniLM space, per idea. "
         "Div: distinct-2 × 3 × 4 pooled (LD4LG); *within*: among one idea's (or one seed's) prompts. Novel: share "
         "of prompts not verbatim in the train split. Paired bootstrap: resamples of the slots (ideas, or seeds of "
         "the unconditional rows), the same draw for both rows, each measured on the distinct slots drawn (about "
         "63%: conservative intervals), FD against the fixed reference.")



def plot_sweep(result: Result, path: str | Path) -> None:
    """Relevance (y) against Div (x), one point per guidance scale, the main rows in grey for reference,
    from a diffusion_eval result (its ``details``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = result.details
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


@benchmark("diffusion_eval", smoke=dict(lms=("lstm",), data_dir=str(SMOKE_DATA), num_ideas=2, n_per_idea=2, steps=2,
                                        sweep=(0.0,), sweep_idea_in_decoder=True, reference_size=10, bootstrap=2,
                                        progress=False))
def run(diffusion: str = "diffusion", vae: str = "vae", lms: tuple[str, ...] = ("lstm", "default"),
        data_dir: str = "data/sd", split: str = "test", num_ideas: int = 100, n_per_idea: int = 5, seed: int = 0,
        guidance: float = 3.0, steps: int = 50, eta: float = 0.0, sweep: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0),
        sweep_idea_in_decoder: bool = False, reference_size: int = 2000, fluency_model: str = "default",
        uncond_lms: bool = True, rerank: bool = True, clip_tokens: bool = True, device: str | None = None,
        estimate_only: bool = False, bootstrap: int = 200, progress: bool = True) -> dict:
    """Latent diffusion against the VAE prior, the LSTM and the GPT: the same ideas, the same seeds.

    ``diffusion``, ``vae``, ``lms``: checkpoint directories or embedded models (``vae``: the
    diffusion's VAE; ``lms`` may be empty); ``guidance``, ``steps`` (DDIM), ``eta`` (0:
    deterministic; 1: DDPM-like noise): the main diffusion rows; ``sweep``: guidance scales of the
    sweep (also with the idea in the decoder with ``sweep_idea_in_decoder``, twice the cost);
    ``reference_size``: held-out prompts in the FD reference; ``fluency_model``: the decoder-only LM
    that scores fluency ("none": none); ``uncond_lms``: unconditional rows for the LMs; ``rerank``:
    the main table reranked by idea words; ``clip_tokens``: count CLIP tokens; ``device``: torch
    device (None: CUDA when available); ``estimate_only``: time one idea per row and stop;
    ``bootstrap``: paired bootstrap resamples of ΔFD and ΔDiv, diffusion against the VAE prior (0: none).
    """
    if num_ideas < 1 or n_per_idea < 1 or steps < 1:
        raise ValueError("num_ideas, n_per_idea and steps must be >= 1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from textopia.data.corpus import read_split
    from textopia.evaluation.compare import default_embedder, training_index_for
    from textopia.evaluation.ideas import load_ideas
    from textopia.generation.decoder import DecoderGenerator
    from textopia.generation.diffusion import DiffusionGenerator
    from textopia.generation.loader import load

    data = Path(data_dir)
    # Ideas and held-out sets.
    ideas, sources = load_ideas(data_dir=data, split=split, num_ideas=num_ideas, seed=seed)
    held_out = read_split(data, split)
    human, reference, human_random = held_out_sets(held_out, ideas, sources, n_per_idea=n_per_idea,
                                                   reference_size=reference_size, seed=seed)

    # Generators.
    gens: dict[str, Any] = {}
    diffusion_gen = load(diffusion, device=device)
    if not isinstance(diffusion_gen, DiffusionGenerator):
        raise ValueError(f"diffusion={diffusion} is a {diffusion_gen.kind} model, not latent diffusion")
    gens["diffusion"] = diffusion_gen
    gens["diffusion-latent"] = DiffusionGenerator(diffusion_gen.diffusion, diffusion_gen.tokenizer, diffusion_gen.meta,
                                                  diffusion_gen.name, idea_in_decoder=False, eta=eta,
                                                  load_lm=diffusion_gen.load_lm)
    diffusion_gen.eta = eta
    gens["vae"] = load(vae, device=device)
    for lm in lms:
        gens[f"lm:{lm}"] = load(lm, device=device)
    fluency = None
    if fluency_model.lower() != "none":
        fluency = gens.get(f"lm:{fluency_model}") or load(fluency_model, device=device)
        if not isinstance(fluency, DecoderGenerator) or hasattr(fluency, "vae"):
            raise ValueError(f"fluency_model={fluency_model} must be a decoder-only LM (GPT, LSTM)")
    matches = vae_matches(diffusion_gen, gens["vae"])
    if not matches:
        logger.warning("vae=%s is not the diffusion model's VAE: the VAE rows decode with other weights", vae)

    # Rows.
    g = guidance
    dec = {"steps": steps} | ({} if rerank else {"rerank": False})
    plain = {} if rerank else {"rerank": False}
    dname, vname = Path(diffusion).name, Path(vae).name
    specs = [
        Spec(f"{dname} · g={g:g} · idea in latent + decoder", "diffusion", True, dec | {"guidance": g},
             {"kind": "diffusion", "guidance": g, "steps": steps, "idea_in_decoder": True}),
        Spec(f"{dname} · g={g:g} · idea in latent only", "diffusion-latent", True, dec | {"guidance": g},
             {"kind": "diffusion", "guidance": g, "steps": steps, "idea_in_decoder": False}),
        Spec(f"{vname} · prior N(0, I) · idea in decoder", "vae", True, dict(plain),
             {"kind": "vae", "idea_in_decoder": True}),
        *[Spec(f"{lm} ({gens[f'lm:{lm}'].kind})", f"lm:{lm}", True, dict(plain), {"kind": gens[f"lm:{lm}"].kind})
          for lm in lms],
        Spec(f"{dname} · no idea", "diffusion", False, {"steps": steps},
             {"kind": "diffusion", "guidance": None, "steps": steps, "idea_in_decoder": False}),
        Spec(f"{vname} · prior N(0, I) · no idea", "vae", False, {}, {"kind": "vae", "idea_in_decoder": False}),
        *([] if not uncond_lms else
          [Spec(f"{lm} ({gens[f'lm:{lm}'].kind}) · no idea", f"lm:{lm}", False, {}, {"kind": gens[f"lm:{lm}"].kind})
           for lm in lms]),
    ]
    variants = [False, True] if sweep_idea_in_decoder else [False]
    sweep_specs = [Spec(f"sweep g={s:g} · {'latent + decoder' if v else 'latent only'}",
                        "diffusion" if v else "diffusion-latent", True,
                        {"guidance": s, "steps": steps, "rerank": False},
                        {"kind": "diffusion", "guidance": s, "steps": steps, "idea_in_decoder": v})
                   for v in variants for s in sweep]

    # Estimate: one slot per row, timed after a warm-up; the slot is kept as the row's first.
    for key, gen in gens.items():
        if key != "diffusion-latent":
            warm_up(gen)
    firsts: list[list[str]] = []
    estimate_rows = []
    n_slots = len(ideas)
    logger.info("estimate: timing one of %d slots (%d prompts) for each of %d rows", n_slots, n_per_idea,
                len(specs) + len(sweep_specs))
    for spec in specs + sweep_specs:
        first, seconds = probe(gens[spec.key], spec, ideas, n_per_idea=n_per_idea, seed=seed)
        firsts.append(first)
        estimate_rows.append({"row": spec.name, "slot_s": round(seconds, 3), "row_s": round(seconds * n_slots, 1)})
        logger.info("  %-55s %7.2f s per slot -> %8.0f s", spec.name, seconds, seconds * n_slots)
    total_est = sum(r["row_s"] for r in estimate_rows)
    logger.info("estimated generation time: %.0f s (%.2f h), plus measuring (embeddings, fluency, novelty: minutes)",
                total_est, total_est / 3600)
    if estimate_only:
        return {"estimate": estimate_rows, "estimated_generation_s": total_est}

    # What every row is measured with.
    embedder = default_embedder(device)
    embedder = CachedEmbedder(embedder) if embedder is not None else None
    t0 = time.perf_counter()
    ref_emb = embedder.encode(reference) if embedder is not None and len(reference) >= 2 else None
    logger.info("reference: %d prompts embedded in %.1f s", len(reference), time.perf_counter() - t0)
    measure = Measure(embedder=embedder, reference=ref_emb, training_index=training_index_for(data),
                      fluency=fluency, clip_tokens=clip_tokens, seed=seed)

    def measured(spec: Spec, first: list[str]) -> dict[str, Any]:
        gen = gens[spec.key]
        t0 = time.perf_counter()
        samples = generate_row(gen, spec, ideas, n_per_idea=n_per_idea, seed=seed, first=first,
                               progress=progress)
        seconds = time.perf_counter() - t0 + next(r["slot_s"] for r in estimate_rows if r["row"] == spec.name)
        n = sum(map(len, samples.values()))
        row = {"name": spec.name, "model": str(getattr(gen, "name", spec.key)), "conditional": spec.conditional,
               **spec.about, "decoding": spec.decoding, **measure.row(samples, conditional=spec.conditional)}
        row["seconds"] = {"generate": round(seconds, 3), "per_prompt": seconds / max(1, n), "measure": row["seconds"]}
        row["samples"] = samples
        logger.info("%s: %d prompts in %.0f s; FD %s", spec.name, n, seconds, row["frechet"])
        return row

    rows = [measured(spec, first) for spec, first in zip(specs, firsts)]
    human_rows = [
        ({"name": "human · grouped by idea", "model": f"held-out {split} prompts holding the idea's words",
          "conditional": True, "kind": "human"}, human),
        ({"name": "human · random held-out", "model": f"random held-out {split} prompts", "conditional": False,
          "kind": "human"}, human_random),
    ]
    for about, samples in human_rows:
        row = {**about, **measure.row(samples, conditional=about["conditional"])}
        row["seconds"] = {"measure": row["seconds"]}
        row["samples"] = samples
        rows.append(row)
    sweep_rows = [measured(spec, first) for spec, first in zip(sweep_specs, firsts[len(specs):])]

    paired = []
    by_name = {r["name"]: r for r in rows}
    for a, b in ((specs[0].name, specs[2].name), (specs[1].name, specs[2].name),
                 (f"{dname} · no idea", f"{vname} · prior N(0, I) · no idea")):
        result = paired_bootstrap(measure, by_name[a]["samples"], by_name[b]["samples"], resamples=bootstrap,
                                  seed=seed)
        if result is not None:
            paired.append({"a": a, "b": b, "result": result})
            logger.info("paired bootstrap %s − %s: %s", a, b, result)

    conditional = [r for r in rows if r["conditional"]]
    unconditional = [r for r in rows if not r["conditional"]]
    return {
        "vae_matches_diffusion": matches, "embedder": embedder is not None, "ideas": len(ideas),
        "reference_prompts": len(reference), "estimated_generation_s": total_est,
        "conditional: written from the ideas": table(conditional, MAIN_COLUMNS),
        "unconditional: no idea (does N(0, I) land in holes?)": table(unconditional, MAIN_COLUMNS),
        "diffusion against the VAE prior: paired bootstrap": paired_rows(paired),
        "diversity, novelty and form (all rows)": table(conditional + unconditional, DIVERSITY_COLUMNS),
        "guidance sweep (diffusion, rerank off)": table(sweep_rows, SWEEP_COLUMNS, first=None),
        "notes": NOTES,
        "details": {"models": {k: v.info() for k, v in gens.items()}, "estimate": estimate_rows, "ideas": list(ideas),
                    "rows": rows, "sweep": sweep_rows, "paired": paired},
    }
