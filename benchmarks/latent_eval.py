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
   against distinct-2 for each guidance scale, plotted.

::

    python -m benchmarks.latent_eval --data-dir data/sd                 # the shipped models
    python -m benchmarks.latent_eval --data-dir data/sd --quick         # a smoke run
    python -m benchmarks.latent_eval --latent runs/latent-diffusion --data-dir data/sd

Writes ``results.json``, ``results.md`` and ``guidance_sweep.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path


from benchmarks.harness import machine


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


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--latent", default="latent", help="the latent diffusion model over the prompt autoencoder")
    p.add_argument("--vae", default="vae", help="the LSTM VAE row")
    p.add_argument("--lms", nargs="*", default=["default"], help="language-model rows")
    p.add_argument("--data-dir", required=True, help="prepared data (its test split)")
    p.add_argument("--num-recon", type=int, default=500)
    p.add_argument("--num-sources", type=int, default=40)
    p.add_argument("--num-pairs", type=int, default=20)
    p.add_argument("--num-ideas", type=int, default=100)
    p.add_argument("--reference-size", type=int, default=2000)
    p.add_argument("--guidance", type=float, nargs="*", default=[0.0, 1.0, 2.0, 4.0, 7.0])
    p.add_argument("--sweep-ideas", type=int, default=30)
    p.add_argument("--quick", action="store_true", help="small numbers: a smoke run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "latent"))
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.num_recon, args.num_sources, args.num_pairs, args.num_ideas = 40, 4, 3, 8
        args.reference_size, args.sweep_ideas, args.guidance = 300, 4, [0.0, 3.0]
        args.out += "_quick"
    from textopia.data.corpus import read_split
    from textopia.evaluation.compare import default_embedder
    from textopia.evaluation.ideas import human_samples, ideas_from_prompts
    from textopia.generation.loader import load, resolve_model
    from textopia.models.checkpoint import load_checkpoint

    started = time.time()
    test = read_split(Path(args.data_dir), "test")
    rng = random.Random(f"latent-eval/{args.seed}")
    order = list(range(len(test)))
    rng.shuffle(order)
    recon_prompts = [test[j] for j in order[: args.num_recon]]
    sources = [test[j] for j in order[: args.num_sources]]
    pair_pool = [test[j] for j in order[args.num_sources: args.num_sources + 2 * args.num_pairs]]
    pairs = list(zip(pair_pool[::2], pair_pool[1::2]))
    idea_pairs = ideas_from_prompts(test, args.num_ideas, seed=args.seed)
    ideas = [i for i, _ in idea_pairs]
    used = {s for _, s in idea_pairs}
    rest = [test[j] for j in order if test[j] not in used]
    reference_prompts = rest[-args.reference_size:]
    human = human_samples(ideas, rest[: -args.reference_size], n_per_idea=8, seed=args.seed,
                          sources=dict(idea_pairs))

    fluency_model, fluency_tok, _ = load_checkpoint(resolve_model("default"))
    embedder = default_embedder()
    reference = embedder.encode(reference_prompts) if embedder is not None else None

    latent = load(args.latent)
    report: dict = {"machine": machine(), "settings": vars(args), "models": {},
                    "command": " ".join(["python -m benchmarks.latent_eval", *(argv if argv is not None else sys.argv[1:])])}
    for name, gen in (("latent", latent), ("vae", load(args.vae))):
        t0 = time.time()
        # each model's default (the encoder's mean refined, refine_posterior_mean) and the encoder's own
        entry = {"refine_steps": gen.refine_steps, "reconstruction": reconstruction(gen, recon_prompts, gen.refine_steps),
                 "reconstruction_encoder_mean": reconstruction(gen, recon_prompts, 0),
                 "variations": variations(gen, sources), "interpolation": interpolation(gen, pairs)}
        entry["seconds"] = time.time() - t0
        report["models"][name] = entry
        print(name, json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "examples"} if isinstance(v, dict) else v
                                for k, v in entry.items()}), flush=True)

    rows = {}
    row_models = [("latent", latent), ("vae", load(args.vae))] + [(m, load(m)) for m in args.lms]
    for name, gen in row_models:
        t0 = time.time()
        samples = generation(gen, ideas, 8)
        seconds = time.time() - t0
        rows[name] = {**row_figures(samples, (fluency_model, fluency_tok), embedder, reference),
                      "seconds_per_call": seconds / len(ideas), "examples": {k: samples[k] for k in ideas[:3]}}
        print(name, {k: v for k, v in rows[name].items() if k != "examples"}, flush=True)
    human_rows = {k: v for k, v in human.items() if v}
    rows["human"] = {**row_figures(human_rows, (fluency_model, fluency_tok), embedder, reference),
                     "examples": {k: human_rows[k] for k in list(human_rows)[:3]}}
    report["generation"] = rows

    sweep = []
    for g in args.guidance:
        samples = generation(latent, ideas[: args.sweep_ideas], 8, guidance=g, rerank=False)
        from textopia.evaluation.metrics import distinct_n

        recalls = [recall(i, t) for i, group in samples.items() for t in group]
        sweep.append({"guidance": g, "idea_recall": sum(recalls) / len(recalls),
                      "distinct_2": sum(distinct_n(v, 2) for v in samples.values()) / len(samples)})
        print("sweep", sweep[-1], flush=True)
    report["guidance_sweep"] = sweep
    report["seconds"] = time.time() - started

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out / "results.md").write_text(markdown(report))
    plot(sweep, out / "guidance_sweep.png")
    print((out / "results.md").read_text())
    return 0


def markdown(r: dict) -> str:
    lines = ["# Latent models: reconstruction, variations, interpolation, generation",
             "", f"Machine: {r['machine']}. Command: `{r.get('command', 'python -m benchmarks.latent_eval')}`.", "",
             "FD is biased upwards on small samples: the human row holds only the held-out prompts that "
             "contain each idea's words, fewer than a model row's.", "",
             "| model | BLEU | content recall | variations: subject kept | distinct-2 | interpolation: endpoint recall | midpoints sharing both |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, m in r["models"].items():
        rc, v, it = m["reconstruction"], m["variations"], m["interpolation"]
        lines.append(f"| {name} | {rc['bleu']:.1f} | {rc['content_recall']:.3f} | {v['subject_kept']:.3f} | "
                     f"{v['distinct_2']:.3f} | {it['endpoint_recall']:.3f} | {it['midpoints_sharing_both']:.3f} |")
        if "reconstruction_encoder_mean" in m:
            rc0 = m["reconstruction_encoder_mean"]
            lines.append(f"| {name}, the encoder's mean unrefined | {rc0['bleu']:.1f} | {rc0['content_recall']:.3f} | | | | |")
    lines += ["", "Each model encodes a prompt to its posterior mean refined by "
              + ", ".join(f"{m.get('refine_steps', 0)} ({name})" for name, m in r["models"].items())
              + " gradient steps on the decoder's likelihood (refine_posterior_mean); the unrefined rows "
              "decode the encoder's own mean."]
    lines += ["", "Reconstruction's content recall by the prompt's length in tokens (prompts in each):", "",
              "| model | " + " | ".join(bucket_name(lo, hi) for lo, hi in LENGTH_BUCKETS) + " |",
              "|---|" + "---:|" * len(LENGTH_BUCKETS)]
    for name, m in r["models"].items():
        for label, key in ((name, "reconstruction"), (f"{name}, unrefined", "reconstruction_encoder_mean")):
            if key not in m:
                continue
            cells = [m[key].get("content_recall_by_length", {}).get(bucket_name(lo, hi)) for lo, hi in LENGTH_BUCKETS]
            lines.append(f"| {label} | " + " | ".join(f"{c['content_recall']:.3f} ({c['prompts']})" if c else ""
                                                   for c in cells) + " |")
    lines += ["", f"Generation: {r['settings']['num_ideas']} test-split ideas x 8 prompts, default settings.", "",
              "| row | idea recall | distinct-2 | fluency PPL (default GPT) | FD (MiniLM) | s per 8 prompts |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, g in r["generation"].items():
        fd = g.get("fd", float("nan"))
        lines.append(f"| {name} | {g['idea_recall']:.3f} | {g['distinct_2']:.3f} | {g['fluency_ppl']:.1f} | "
                     f"{fd:.4f} | {g.get('seconds_per_call', float('nan')):.2f} |")
    lines += ["", "Guidance sweep of the latent model (rerank off; the decoder still reads and boosts the idea):", "",
              "| guidance | idea recall | distinct-2 |", "|---:|---:|---:|"]
    lines += [f"| {s['guidance']:g} | {s['idea_recall']:.3f} | {s['distinct_2']:.3f} |" for s in r["guidance_sweep"]]
    lines += ["", "Examples:", ""]
    for name, m in r["models"].items():
        for src, hyp in m["reconstruction"]["examples"][:3]:
            lines.append(f"- {name} reconstruct: `{src}` -> `{hyp}`")
    return "\n".join(lines) + "\n"


def plot(sweep: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    xs, ys = [s["distinct_2"] for s in sweep], [s["idea_recall"] for s in sweep]
    ax.plot(xs, ys, "o-")
    for s in sweep:
        ax.annotate(f"g={s['guidance']:g}", (s["distinct_2"], s["idea_recall"]), textcoords="offset points",
                    xytext=(4, 4))
    ax.set_xlabel("distinct-2 among 8 prompts (variety)")
    ax.set_ylabel("idea-word recall (relevance)")
    ax.set_title("Latent diffusion: the guidance knob")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
