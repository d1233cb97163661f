"""The evaluation harness: the same ideas and seeds for every model, one table to compare them.

For each model: the exact likelihood of a held-out split (decoder-only models; see
:mod:`textopia.evaluation.likelihood`) and the text figures of ``n_per_idea`` prompts written
for each idea (:func:`textopia.evaluation.metrics.text_metrics`). Held-out human prompts
give the reference row::

    ideas: a file (one per line), or derived from the test split (seeded)
      │
      ├─▶ model A ─ generate n per idea (seed + i for idea i) ─▶ text figures ─┐
      ├─▶ model B ─ ...                                                         ├─▶ results.json
      │   (and each model's CE / PPL on the split)                              │   results.md
      └─▶ human: held-out prompts that contain the idea ─────▶ text figures ───┘   *.png

**The human row.** For an idea derived from a held-out prompt, that prompt comes first; the
group is filled up to ``n_per_idea`` with other prompts of the same split that contain every
content word of the idea (:func:`textopia.text.content_stems`), drawn with
the seed. Its relevance recall is therefore 1 by construction (an upper bound, not a target);
its diversity and form figures are what people wrote. Groups of one have no within-idea
figures (they are skipped in the means). It has no likelihood.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textopia.data.corpus import load_prompts, read_split
from textopia.evaluation.ideas import (
    DEFAULT_NUM_IDEAS,
    DEFAULT_SAMPLES,
    human_samples,
    ideas_from_prompts,
    load_ideas,
)
from textopia.evaluation.metrics import SentenceEmbedder, TrainingIndex, text_metrics
from textopia.evaluation.metrics.novelty import training_index_for
from textopia.evaluation.metrics.relevance import default_embedder
from textopia.evaluation.report import HUMAN, check_results_dir, write_results
from textopia.generation.base import Generator, TextopiaError
from textopia.text import tokenize

logger = logging.getLogger(__name__)


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
        from textopia.evaluation.metrics.clip_tokens import count_clip_tokens_batch

        lengths["clip_tokens"] = count_clip_tokens_batch(texts)
    return metrics, lengths


def model_likelihood(
    generator: Generator, prompts: Sequence[str], *, ideas: str = "none", batch_size: int = 32, seed: int = 0
) -> dict[str, Any] | None:
    """Exact CE, PPL and per-word PPL of ``prompts`` (a :class:`LikelihoodResult` as a dict).

    The hook for other model kinds: a Generator with a :attr:`~textopia.generation.base.Generator.likelihood`
    (a :class:`~textopia.generation.base.Likelihood`, a VAE's importance-sampled bound, say) is
    scored with it. Decoder-only models are scored exactly with :func:`score_prompts`; any other
    model gets None (no likelihood row).
    """
    from textopia.evaluation.likelihood import score_prompts
    from textopia.generation.decoder import DecoderGenerator

    if generator.likelihood is not None:
        return generator.likelihood(list(prompts), ideas=ideas, batch_size=batch_size, seed=seed).to_dict()
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
    overwrite: bool = False,
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
        overwrite: replace files of those names in ``out_dir`` that are not an earlier
            comparison's (:func:`~textopia.evaluation.report.check_results_dir`).
        Others: as :func:`evaluate_model`.

    Returns:
        the results (what ``results.json`` holds).

    Raises:
        TextopiaError: no models, an unknown model, missing data, a missing optional package
            (sacrebleu, matplotlib) or CLIP tokenizer, or an ``out_dir`` whose files it would
            replace; all checked before the first model's work.
    """
    from textopia.generation.loader import resolve_model
    from textopia.models.checkpoint import check_checkpoint, read_meta

    if not models:
        raise TextopiaError("compare needs at least one model")
    check_results_dir(out_dir, overwrite)
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
