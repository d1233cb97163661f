"""The comparison's reports: ``results.json`` (standard JSON), ``results.md`` and the plots."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textopia.errors import TextopiaError
from textopia.io import atomic_write_text, json_safe

HUMAN = "human"
PLOTS = ("perplexity.png", "diversity_relevance.png", "lengths.png")
#: The files a comparison writes into its ``--out`` directory (:func:`write_results`).
RESULT_FILES = ("results.json", "results.md", *PLOTS)


def check_results_dir(out_dir: str | Path, overwrite: bool = False) -> None:
    """Refuse to write a comparison into ``out_dir`` where it would replace a file the user made:
    one of :data:`RESULT_FILES` is there and the directory does not hold an earlier comparison
    (a ``results.json`` object with ``settings``, ``ideas`` and ``rows``). Other files are left
    alone either way. Checked before any work.

    Raises:
        TextopiaError: ``out_dir`` is a file, or would lose a file (one line; ``overwrite`` allows it).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TextopiaError(f"--out must be a directory for the results, and {str(out_dir)!r} is a file")
    clashing = [name for name in RESULT_FILES if (out / name).exists()]
    if not clashing or overwrite:
        return
    try:
        earlier = json.loads((out / "results.json").read_text(encoding="utf-8"))
        if isinstance(earlier, dict) and {"settings", "ideas", "rows"} <= earlier.keys():
            return  # an earlier comparison: a rerun replaces it
    except (OSError, ValueError):
        pass
    raise TextopiaError(f"{out} holds {clashing[0]}, which is not a comparison's: not replaced (--overwrite replaces it)")


# --------------------------------------------------------------------------------------------
# Reports: JSON, Markdown, PNG
# --------------------------------------------------------------------------------------------


def write_results(results: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write ``results.json``, ``results.md`` and the plots into ``out_dir``; returns it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(json_safe(results), indent=2, ensure_ascii=False,
                                                       allow_nan=False) + "\n")
    atomic_write_text(out / "results.md", markdown_report(results))
    plot_results(results, out)
    return out


# (section, [(where, key, header, format)]); where is "likelihood", "text" or "info".
TABLES: list[tuple[str, list[tuple[str, str, str, str]]]] = [
    ("Likelihood (held-out split, p(prompt), exact)", [
        ("info", "parameters", "parameters", "{:,.0f}"),
        ("likelihood", "ce_nats_per_token", "CE (nats/token)", "{:.4f}"),
        ("likelihood", "perplexity", "PPL (per token)", "{:.2f}"),
        ("likelihood", "perplexity_per_word", "PPL (per word)", "{:.2f}"),
        ("likelihood", "tokens", "tokens", "{:,.0f}"),
        ("likelihood", "prompts", "prompts", "{:,.0f}"),
    ]),
    ("Diversity", [
        ("text", "distinct_1", "distinct-1", "{:.3f}"),
        ("text", "distinct_2", "distinct-2", "{:.3f}"),
        ("text", "distinct_3", "distinct-3", "{:.3f}"),
        ("text", "distinct_4", "distinct-4", "{:.3f}"),
        ("text", "distinct_1_within", "distinct-1 within", "{:.3f}"),
        ("text", "distinct_2_within", "distinct-2 within", "{:.3f}"),
        ("text", "distinct_3_within", "distinct-3 within", "{:.3f}"),
        ("text", "self_bleu", "self-BLEU (0-100)", "{:.1f}"),
        ("text", "div", "Div", "{:.3f}"),
        ("text", "div_within", "Div within", "{:.3f}"),
    ]),
    ("Relevance", [
        ("text", "relevance_recall", "idea words found", "{:.3f}"),
        ("text", "relevance_cosine", "cosine (MiniLM)", "{:.3f}"),
    ]),
    ("Novelty and memorisation", [
        ("text", "train_verbatim_share", "verbatim in train", "{:.3f}"),
        ("text", "train_novel_share", "novel", "{:.3f}"),
        ("text", "train_4gram_overlap", "4-grams in train", "{:.3f}"),
    ]),
    ("Form", [
        ("text", "n_samples", "prompts", "{:,.0f}"),
        ("text", "words_mean", "words", "{:.1f}"),
        ("text", "clip_tokens_mean", "CLIP tokens", "{:.1f}"),
        ("text", "clip_tokens_max", "CLIP max", "{:.0f}"),
        ("text", "clip_tokens_over_77_share", "> 75 CLIP tokens (cut)", "{:.3f}"),
        ("text", "repetition_rate_1", "repetition-1", "{:.3f}"),
        ("text", "repetition_rate_2", "repetition-2", "{:.3f}"),
        ("text", "repetition_rate_3", "repetition-3", "{:.3f}"),
    ]),
]


def _cell(row: Mapping[str, Any], where: str, key: str, fmt: str) -> str:
    value = (row.get(where) or {}).get(key)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return fmt.format(value)


def markdown_report(results: Mapping[str, Any]) -> str:
    """The Markdown tables of a comparison: one per group of figures, one row per model + human."""
    s = results["settings"]
    data_file = s.get("data_file")  # a user's file: its prompts stand in for the split
    held_out = f"the prompts of `{data_file}`" if data_file else f"split `{s['split']}`"
    lines = [
        "# Model comparison",
        "",
        (f"- Data: `{data_file or s['data_dir']}`; ideas: {s['ideas']} ({s['num_ideas']} ideas, {s['n_per_idea']} "
         f"prompts asked per idea, seed {s['seed']} + idea index)"),
        (f"- Likelihood: {held_out}"
         + (f", first {s['likelihood_limit']} prompts" if s.get("likelihood_limit") else "")
         + "; counted: prompt tokens and EOS (not the idea, the `<|prompt|>` marker or padding)"),
        f"- Decoding: {json.dumps(s['decoding']) if s['decoding'] else 'the Generator defaults'}",
        "",
    ]
    rows = results["rows"]
    for title, columns in TABLES:
        if title.startswith("Relevance") and not s.get("embedder"):
            columns = [c for c in columns if c[1] != "relevance_cosine"]
        if title.startswith("Novelty") and not s.get("training_index"):
            continue
        if title.startswith("Form") and not s.get("clip_tokens"):
            columns = [c for c in columns if not c[1].startswith("clip_")]
        lines += [f"## {title}", "", "| model | " + " | ".join(c[2] for c in columns) + " |",
                  "|---|" + "---:|" * len(columns)]
        for row in rows:
            lines.append(f"| {row['name']} | " + " | ".join(_cell(row, *c[:2], c[3]) for c in columns) + " |")
        lines.append("")
    lines += [
        ("Shares and distinct-n are in [0, 1]; self-BLEU is on sacrebleu's 0-100 scale (higher: less diverse). "
         "*Within* figures are computed among one idea's prompts and averaged over ideas; the others pool all "
         "prompts. Div is the product of pooled distinct-2, 3 and 4 (LD4LG). Per-word perplexity divides the same "
         "nats by whitespace words, so models with different tokenizers compare. The human row holds held-out "
         "prompts that contain each idea's content words, so its relevance recall is 1 by construction; it has no "
         "likelihood. – : not measured or undefined."),
        "",
    ]
    return "\n".join(lines)


def plot_results(results: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``perplexity.png``, ``diversity_relevance.png`` and ``lengths.png`` (matplotlib, no display)."""
    from matplotlib.figure import Figure

    out = Path(out_dir)
    rows = results["rows"]
    paths = [out / name for name in PLOTS]

    # Perplexity bars, per token and per word.
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    scored = [r for r in rows if r.get("likelihood")]
    for ax, key, label in zip(axes, ("perplexity", "perplexity_per_word"), ("per token", "per word")):
        if scored:
            values = [r["likelihood"][key] for r in scored]
            bars = ax.bar([r["name"] for r in scored], values, color="tab:blue")
            ax.bar_label(bars, labels=[f"{v:.1f}" for v in values], fontsize=8)
            ax.tick_params(axis="x", labelrotation=20)
        else:
            ax.text(0.5, 0.5, "no likelihood measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"perplexity {label} (lower is better)")
    fig.savefig(paths[0], dpi=120)

    # Diversity against relevance.
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    use_cos = all((r.get("text") or {}).get("relevance_cosine") is not None for r in rows if r.get("text"))
    xkey = "relevance_cosine" if use_cos and results["settings"].get("embedder") else "relevance_recall"
    for r in rows:
        t = r.get("text") or {}
        x, y = t.get(xkey), t.get("div")
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            continue
        human = r["name"] == HUMAN
        ax.scatter([x], [y], marker="*" if human else "o", s=160 if human else 60,
                   color="black" if human else None, zorder=3)
        ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("relevance: " + ("cosine(idea, prompt), MiniLM" if xkey == "relevance_cosine" else "share of idea words found"))
    ax.set_ylabel("diversity: Div (distinct-2 × 3 × 4, pooled)")
    ax.set_title("diversity against relevance (up and right is better)")
    ax.grid(alpha=0.3)
    fig.savefig(paths[1], dpi=120)

    # Length histograms: words and CLIP tokens per prompt.
    kinds = [k for k in ("words", "clip_tokens") if any(k in (r.get("lengths") or {}) for r in rows)]
    fig = Figure(figsize=(5 * max(1, len(kinds)), 3.8), layout="constrained")
    axes = fig.subplots(1, max(1, len(kinds)), squeeze=False)[0]
    for ax, kind in zip(axes, kinds):
        top = max((max(r["lengths"][kind]) for r in rows if r.get("lengths", {}).get(kind)), default=1)
        bins = range(0, top + 3, max(1, (top + 2) // 30))
        for r in rows:
            values = (r.get("lengths") or {}).get(kind)
            if values:
                ax.hist(values, bins=bins, histtype="step", weights=[1 / len(values)] * len(values),
                        linewidth=2 if r["name"] == HUMAN else 1.2,
                        color="black" if r["name"] == HUMAN else None, label=r["name"])
        if kind == "clip_tokens":
            ax.axvline(75, color="red", linestyle="--", linewidth=1, label="75 (CLIP limit)")
        ax.set_xlabel("words per prompt" if kind == "words" else "CLIP tokens per prompt (no start/end)")
        ax.set_ylabel("share of prompts per bin")
        ax.legend(fontsize=8)
    if not kinds:
        axes[0].text(0.5, 0.5, "no samples", ha="center", va="center", transform=axes[0].transAxes)
    fig.savefig(paths[2], dpi=120)
    return paths
