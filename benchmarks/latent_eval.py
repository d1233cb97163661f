"""What the latent models are for, measured: reconstruction, variations, interpolation, and
idea-conditioned generation by latent diffusion, with the LSTM VAE and the default GPT as rows.

Figures (every relevance figure is :func:`textopia.text.relevance_recall`, the reranker's own):

1. Reconstruction of ``--num-recon`` test prompts, greedy decoding of the posterior mean:
   corpus BLEU (sacrebleu) and content recall (the share of each prompt's content words, by
   Snowball stem, found in its reconstruction; mean over prompts). The mean is each model's
   default (the encoder's, refined by the model's ``refine_steps``, as ``reconstruct`` does), and
   the encoder's own, unrefined, beside it.
2. Variations of ``--num-sources`` test prompts, 8 each at the model's default spread: the share
   of the source's *subject* words (content words of its first clause) each variation keeps,
   and distinct-2 among the 8.
3. Interpolation between ``--num-pairs`` pairs of test prompts, 5 points: the endpoints' content
   recall, and the share of midpoints that share a content word with both ends.
4. Generation: ``--num-ideas`` ideas derived from the test split, 8 prompts each (seed = idea
   index), every model with its default settings: idea-word recall, distinct-2 among the 8,
   fluency (the perplexity of the prompts under the embedded default GPT, p(prompt), no idea)
   and the Fréchet distance of MiniLM embeddings to ``--reference-size`` held-out human prompts;
   the human row is held-out prompts holding each idea's words (same ideas, same count).
5. The guidance sweep of the latent model (rerank off; its decoder still reads the idea): recall
   against distinct-2 for each guidance scale (:func:`plot` draws it from the result).

Usage (from the repository root, after `textopia prepare ... --out data/sd`)::

    python -m benchmarks latent_eval --set data_dir=data/sd                         # the shipped models
    python -m benchmarks latent_eval --set data_dir=data/sd latent=runs/latent-diffusion [num_recon=500
        num_sources=40 num_pairs=20 num_ideas=100 n=8 reference_size=2000 guidance=0,1,2,4,7 sweep_ideas=30]

Writes ``latent_eval.json`` (every example under ``details``) and ``latent_eval.md``.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

from benchmarks.harness import Result, benchmark

SMOKE_DATA = Path(__file__).resolve().parent / "smoke_data"

logger = logging.getLogger("benchmarks.latent_eval")


def recall(reference: str, output: str) -> float:
    from textopia.text import relevance_recall

    return relevance_recall(reference, output)


#: Token-length buckets [lo, hi) of the reconstruction's content recall.
LENGTH_BUCKETS = ((0, 20), (20, 40), (40, 60), (60, 77), (77, 10**9))


def bucket_name(lo: int, hi: int) -> str:
    """A length bucket's label: "20-39", ">=77"."""
    return f"{lo}-{hi - 1}" if hi < 10**9 else f">={lo}"


def reconstruction(generator, prompts: list[str], refine_steps: int) -> dict:
    from textopia.evaluation.vae_metrics import reconstruction_scores

    scores = reconstruction_scores(generator.vae, generator.tokenizer, prompts, batch_size=32,
                                   max_length=generator.max_positions or 256, refine_steps=refine_steps)
    pairs = scores.pop("pairs")
    recalls = [recall(ref, hyp) for ref, hyp in pairs]
    by_length: dict[str, list[float]] = {}
    for (ref, _), r in zip(pairs, recalls):  # recall falls with length: by the prompt's tokens
        n = len(generator.tokenizer.encode(ref))
        lo, hi = next((lo, hi) for lo, hi in LENGTH_BUCKETS if lo <= n < hi)
        by_length.setdefault(bucket_name(lo, hi), []).append(r)
    return {**scores, "content_recall": sum(recalls) / len(recalls), "examples": pairs[:8],
            "content_recall_by_length": {k: {"prompts": len(v), "content_recall": sum(v) / len(v)}
                                         for k, v in by_length.items()}}


def variations(generator, sources: list[str], n: int = 8, spread: float | None = None) -> dict:
    """``n`` variations of each source (seed = its index; ``spread`` None: the model's default):
    subject kept, distinct-2 among each source's, and every variation (``prompts``)."""
    from textopia.evaluation.metrics import distinct_n
    from textopia.text import subject

    keeps, distinct, counts, examples, prompts = [], [], [], [], []
    for i, src in enumerate(sources):
        outs = generator.variations(src, n, spread=spread, seed=i)
        prompts += outs
        keeps += [recall(subject(src), o) for o in outs]
        distinct.append(distinct_n(outs, 2))
        counts.append(len(outs))
        if i < 3:
            examples.append({"source": src, "variations": outs})
    return {"subject_kept": sum(keeps) / max(1, len(keeps)), "distinct_2": sum(distinct) / len(distinct),
            "mean_count": sum(counts) / len(counts), "examples": examples, "prompts": prompts}


def shares_both(text: str, a: str, b: str) -> bool:
    """Whether ``text`` holds a content word (by stem) of ``a`` and one of ``b`` (a midpoint's test)."""
    from textopia.text import content_stems

    stems = content_stems(text)
    return bool(stems & content_stems(a)) and bool(stems & content_stems(b))


def interpolation(generator, pairs: list[tuple[str, str]], steps: int = 5) -> dict:
    ends, shared, examples = [], [], []
    for i, (a, b) in enumerate(pairs):
        path = generator.interpolate(a, b, steps=steps)
        ends += [recall(a, path[0]), recall(b, path[-1])]
        shared += [shares_both(p, a, b) for p in path[1:-1]]
        if i < 3:
            examples.append({"a": a, "b": b, "path": path})
    return {"endpoint_recall": sum(ends) / len(ends), "min_endpoint_recall": min(ends),
            "midpoints_sharing_both": sum(shared) / len(shared), "examples": examples}


def generation(generator, ideas: list[str], n: int, **kwargs) -> dict[str, list[str]]:
    out = {}
    for i, idea in enumerate(ideas):
        out[idea] = [g.prompt for g in generator.generate(idea, n, seed=i, **kwargs)]
    return out


def row_figures(samples: dict[str, list[str]], fluency, embedder, reference) -> dict:
    from textopia.evaluation.metrics import distinct_n, frechet_distance
    from textopia.models.likelihood import score_prompts

    texts = [t for group in samples.values() for t in group]
    recalls = [recall(idea, t) for idea, group in samples.items() for t in group]
    model, tokenizer = fluency
    ppl = score_prompts(model, tokenizer, texts, batch_size=32).perplexity
    figures = {"prompts": len(texts), "idea_recall": sum(recalls) / len(recalls),
               "distinct_2": sum(distinct_n(g, 2) for g in samples.values() if len(g) > 1) /
               max(1, sum(len(g) > 1 for g in samples.values())),
               "fluency_ppl": ppl}
    if embedder is not None:
        figures["fd"] = frechet_distance(embedder.encode(texts), reference)
    return figures


@benchmark("latent_eval", smoke=dict(data_dir=str(SMOKE_DATA), num_recon=4, num_sources=1, num_pairs=1, num_ideas=2,
                                     n=2, reference_size=10, guidance=(0.0,), sweep_ideas=1))
def run(latent: str = "latent", vae: str = "vae", lms: tuple[str, ...] = ("default",), data_dir: str = "data/sd",
        num_recon: int = 500, num_sources: int = 40, num_pairs: int = 20, num_ideas: int = 100, n: int = 8,
        reference_size: int = 2000, guidance: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 7.0), sweep_ideas: int = 30,
        seed: int = 0) -> dict:
    """The latent models measured: reconstruction, variations, interpolation, idea-conditioned generation.

    ``latent``: the latent diffusion model over the prompt autoencoder; ``vae``: the LSTM VAE row;
    ``lms``: language-model rows; ``data_dir``: prepared data (its test split); ``n``: variations of
    a source and prompts of an idea; ``guidance``: the sweep's scales, on ``sweep_ideas`` ideas.
    """
    from textopia.data.corpus import read_split
    from textopia.evaluation.compare import default_embedder
    from textopia.evaluation.ideas import human_samples, ideas_from_prompts
    from textopia.evaluation.metrics import distinct_n
    from textopia.generation.loader import load, resolve_model
    from textopia.models.checkpoint import load_checkpoint

    test = read_split(Path(data_dir), "test")
    rng = random.Random(f"latent-eval/{seed}")
    order = list(range(len(test)))
    rng.shuffle(order)
    recon_prompts = [test[j] for j in order[:num_recon]]
    sources = [test[j] for j in order[:num_sources]]
    pair_pool = [test[j] for j in order[num_sources: num_sources + 2 * num_pairs]]
    pairs = list(zip(pair_pool[::2], pair_pool[1::2]))
    idea_pairs = ideas_from_prompts(test, num_ideas, seed=seed)
    ideas = [i for i, _ in idea_pairs]
    used = {s for _, s in idea_pairs}
    rest = [test[j] for j in order if test[j] not in used]
    reference_prompts = rest[-reference_size:]
    human = human_samples(ideas, rest[:-reference_size], n_per_idea=n, seed=seed, sources=dict(idea_pairs))

    fluency = load_checkpoint(resolve_model("default"))[:2]
    embedder = default_embedder()
    reference = embedder.encode(reference_prompts) if embedder is not None else None

    models = {"latent": load(latent), "vae": load(vae)}
    recon, by_length, varied, interp, examples = [], [], [], [], {}
    for name, gen in models.items():
        t0 = time.perf_counter()
        # each model's default (the encoder's mean refined, refine_posterior_mean) and the encoder's own
        for label, steps in ((name, gen.refine_steps), (f"{name}, the encoder's mean unrefined", 0)):
            scores = reconstruction(gen, recon_prompts, steps)
            examples[f"{label}: reconstruction"] = scores.pop("examples")
            by_length.append({"model": label, **scores.pop("content_recall_by_length")})
            recon.append({"model": label, "refine_steps": steps, **scores})
        v = variations(gen, sources, n)
        examples[f"{name}: variations"] = v.pop("examples")
        v.pop("prompts")
        it = interpolation(gen, pairs)
        examples[f"{name}: interpolation"] = it.pop("examples")
        varied.append({"model": name, **v})
        interp.append({"model": name, **it, "seconds": time.perf_counter() - t0})
        logger.info("%s: %s %s %s", name, recon[-2], varied[-1], interp[-1])

    rows = []
    for name, gen in [*models.items(), *((m, load(m)) for m in lms)]:
        t0 = time.perf_counter()
        samples = generation(gen, ideas, n)
        seconds = time.perf_counter() - t0
        rows.append({"row": name, **row_figures(samples, fluency, embedder, reference),
                     "seconds_per_call": seconds / len(ideas)})
        examples[f"{name}: generation"] = {k: samples[k] for k in ideas[:3]}
        logger.info("%s", rows[-1])
    human_rows = {k: v for k, v in human.items() if v}
    rows.append({"row": "human", **row_figures(human_rows, fluency, embedder, reference)})

    sweep = []
    for g in guidance:
        samples = generation(models["latent"], ideas[:sweep_ideas], n, guidance=g, rerank=False)
        recalls = [recall(i, t) for i, group in samples.items() for t in group]
        sweep.append({"guidance": g, "idea_recall": sum(recalls) / len(recalls),
                      "distinct_2": sum(distinct_n(v, 2) for v in samples.values()) / len(samples)})
        logger.info("sweep %s", sweep[-1])
    return {"reconstruction": recon, "reconstruction: content recall by the prompt's length in tokens": by_length,
            "variations": varied, "interpolation": interp,
            f"generation: {len(ideas)} test-split ideas x {n} prompts, default settings": rows,
            "guidance sweep of the latent model (rerank off; the decoder still reads the idea)": sweep,
            "details": {"examples": examples}}


def plot(result: Result, path: str | Path) -> None:
    """Idea-word recall against distinct-2 for each guidance scale of the sweep, from a latent_eval result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = next(v for k, v in result.figures.items() if k.startswith("guidance sweep"))
    fig, ax = plt.subplots(figsize=(5, 4))
    xs, ys = [s["distinct_2"] for s in sweep], [s["idea_recall"] for s in sweep]
    ax.plot(xs, ys, "o-")
    for s in sweep:
        ax.annotate(f"g={s['guidance']:g}", (s["distinct_2"], s["idea_recall"]), textcoords="offset points",
                    xytext=(4, 4))
    ax.set_xlabel(f"distinct-2 among {result.options['n']} prompts (variety)")
    ax.set_ylabel("idea-word recall (relevance)")
    ax.set_title("Latent diffusion: the guidance knob")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
