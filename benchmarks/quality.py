"""What a user gets from `textopia generate IDEA`: relevance, fluency, variety and form.

Usage (from the repository root, after `textopia prepare ... --out data/sd`)::

    python benchmarks/quality.py default lstm [--data-dir data/sd] [--num-ideas 100] [--n 1 4 8]
        [--ideas-file benchmarks/ideas/user_ideas.txt] [--no-critic] [--out benchmarks/results/quality]

Two idea sets: ``test`` (``--num-ideas`` ideas derived from the test split, as training derives
them) and ``user`` (``--ideas-file``: short ideas written by hand, one per line). For each model,
each idea gets ``n`` prompts with the default settings (idea i: seed i), for each ``n`` of ``--n``
(a user clicking once asks for one). The ``human`` row is
held-out prompts of the test split (``--human`` of them for the word-level rates; grouped by
idea, as :func:`textopia.evaluation.compare.human_samples` groups them, for the rest).

Figures (the relevance, invented-word and stutter checks are the reranker's own functions, from
:mod:`textopia.text`):

- ``recall``: idea-word recall (:func:`textopia.text.relevance_recall`), mean over prompts;
- ``all_words``: share of prompts that contain every content word of their idea;
- ``invented``: share of prompts with a word seen < 5 times in the train split that is not a word
  of their idea (the writer did not invent what the user typed);
- ``stutter``: share of prompts with an immediately repeated word n-gram (n <= 3);
- ``distinct_2``: distinct word bigrams among one idea's prompts, mean over ideas;
- ``novel``: share of prompts that are not a training prompt verbatim;
- ``clip_fit``: share of prompts within CLIP's 77 tokens; ``words``: words per prompt;
- ``repeats_idea``: share of prompts that write an idea word twice
  (:func:`textopia.text.repeats_idea_word`); ``idea_late``: share whose idea words are not all in
  the subject (:func:`textopia.text.idea_in_subject`);
- ``seconds_per_idea``: wall time to write one idea's prompts (batch of ``n``);
- per model and ``n``, over both idea sets' prompts against as many held-out human prompts:
  ``mauve`` (:func:`textopia.evaluation.metrics.humanness.mauve_score`, MiniLM features) and
  ``critic_2st``, the shipped coherence critic's two-sample accuracy
  (:func:`~textopia.evaluation.metrics.humanness.two_sample_accuracy`; 0.5: indistinguishable).
  The critic also chose among the candidates, so its accuracy after reranking flatters the model;
  MAUVE is the independent figure.

Writes ``results.json`` (figures, settings, machine, every prompt), ``results.md`` and
``relevance_diversity.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine_info

FIGURES = ("recall", "all_words", "invented", "stutter", "repeats_idea", "idea_late", "distinct_2", "novel", "clip_fit",
           "words")


def figures(samples: dict[str, list[str]], known, index, flat: list[str] | None = None) -> dict[str, float]:
    """The figures of ``{idea: [prompt, ...]}``; word-level rates over ``flat`` when given (human row)."""
    from textopia.evaluation.metrics.clip_tokens import CLIP_MAX_PROMPT_TOKENS, count_clip_tokens_batch
    from textopia.evaluation.metrics import distinct_n_within
    from textopia.text import has_all_idea_words, idea_in_subject, relevance_recall, repeats_idea_word, stutters, tokenize

    pairs = [(idea, p) for idea, prompts in samples.items() for p in prompts]
    texts = [p for _, p in pairs]
    flat = flat if flat is not None else texts
    recalls = [r for r in (relevance_recall(i, p) for i, p in pairs) if not math.isnan(r)]
    counts = count_clip_tokens_batch(texts)
    return {
        "ideas": len(samples),
        "prompts": len(texts),
        "recall": sum(recalls) / max(1, len(recalls)),
        "all_words": sum(has_all_idea_words(i, p) for i, p in pairs) / max(1, len(pairs)),
        "invented": (sum(bool(known.invented(p, i)) for i, p in pairs) / max(1, len(pairs)) if flat is texts
                     else sum(bool(known.invented(p)) for p in flat) / max(1, len(flat))),
        "stutter": sum(stutters(p) for p in flat) / max(1, len(flat)),
        "repeats_idea": sum(repeats_idea_word(i, p) for i, p in pairs) / max(1, len(pairs)),
        "idea_late": sum(not idea_in_subject(i, p) for i, p in pairs) / max(1, len(pairs)),
        "distinct_2": distinct_n_within({k: v for k, v in samples.items() if len(v) > 1}, 2),
        "novel": 1.0 - index.verbatim_share(texts),
        "clip_fit": sum(c <= CLIP_MAX_PROMPT_TOKENS for c in counts) / max(1, len(counts)),
        "words": sum(len(tokenize(p)) for p in texts) / max(1, len(texts)),
    }


def run_model(name: str, idea_sets: dict[str, list[str]], n: int, known, index, decoding: dict, *,
              critic: bool, human: list[str], judges) -> dict:
    import textopia
    from textopia.evaluation.metrics.humanness import mauve_score, two_sample_accuracy

    generator = textopia.load(name, critic=critic)
    out: dict = {"model": name, "n": n, "info": generator.info(), "critic": generator.critic is not None, "sets": {}}
    for set_name, ideas in idea_sets.items():
        start = time.perf_counter()
        samples = {idea: [g.prompt for g in generator.generate(idea, n, seed=i, **decoding)]
                   for i, idea in enumerate(ideas)}
        seconds = time.perf_counter() - start
        row = figures(samples, known, index)
        row["seconds_per_idea"] = seconds / len(ideas)
        out["sets"][set_name] = {"figures": row, "samples": samples}
        print(f"{name:>10} n={n} {set_name:>5} " + " ".join(f"{k} {row[k]:.3f}" for k in (*FIGURES, "seconds_per_idea")),
              flush=True)
    texts = [p for s in out["sets"].values() for prompts in s["samples"].values() for p in prompts]
    embedder, shipped_critic = judges
    pool = human[: len(texts)]
    out["mauve"] = mauve_score(texts, pool, embedder) if embedder is not None else None
    out["critic_2st"] = two_sample_accuracy(shipped_critic, texts, pool) if shipped_critic is not None else None
    print(f"{name:>10} n={n} mauve {out['mauve']} critic_2st {out['critic_2st']}", flush=True)
    return out


def markdown(results: dict) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in results["decoding"].items()) or "default settings"
    lines = [f"# Prompt quality (n = {', '.join(map(str, results['n']))} prompts per idea, {settings})", "",
             f"Machine: {results['machine']['cpu']}, {results['machine']['cpus']} cores. "
             f"Command: `{results['command']}`", ""]
    for set_name in results["idea_sets"]:
        lines += [f"## Ideas: {set_name} ({results['idea_sets'][set_name]} ideas)", "",
                  "| row | recall | all words | invented | stutter | repeats idea | idea late | distinct-2 | novel "
                  "| CLIP fit | words | s/idea |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        rows = [(f"{r['model']}, n={r['n']}", r["sets"][set_name]["figures"]) for r in results["models"]]
        rows.append(("human (test split)", results["human"][set_name]))
        for label, f in rows:
            cells = [f"{f[k]:.3f}" for k in FIGURES[:-1]] + [f"{f['words']:.1f}"]
            cells.append(f"{f['seconds_per_idea']:.2f}" if "seconds_per_idea" in f else "-")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Human rows: recall and all-words over held-out prompts that contain the idea's words (so they",
              "are 1 by construction where a prompt was found); invented and stutter rates over "
              f"{results['human_prompts']} held-out test prompts.", "",
              "## Against human prompts (both idea sets' prompts pooled)", "",
              "| row | prompts | MAUVE (MiniLM) | critic two-sample accuracy |", "|---|---:|---:|---:|"]
    for r in results["models"]:
        count = sum(len(p) for s in r["sets"].values() for p in s["samples"].values())
        cells = [f"{r[k]:.3f}" if r.get(k) is not None else "-" for k in ("mauve", "critic_2st")]
        lines.append(f"| {r['model']}, n={r['n']}{'' if r['critic'] else ' (no critic)'} | {count} | " + " | ".join(cells) + " |")
    lines.append("")
    for r in results["models"]:
        for set_name in results["idea_sets"]:
            first = next(iter(r["sets"][set_name]["samples"].items()))
            lines += [f"Example, {r['model']}, n={r['n']}, {set_name}: **{first[0]}**", ""] + [f"- {p}" for p in first[1]] + [""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for set_name, marker in zip(results["idea_sets"], "os^"):
        for r in results["models"]:
            f = r["sets"][set_name]["figures"]
            ax.scatter(f["distinct_2"], f["recall"], marker=marker)
            ax.annotate(f"{r['model']} n={r['n']} ({set_name})", (f["distinct_2"], f["recall"]), fontsize=8)
    ax.set_xlabel("distinct-2 among one idea's prompts")
    ax.set_ylabel("idea-word recall")
    ax.set_title("Relevance against diversity")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="embedded models' names or checkpoint directories")
    ap.add_argument("--data-dir", default="data/sd", help="prepared data (test split, train split, known words)")
    ap.add_argument("--ideas-file", default=str(Path(__file__).resolve().parent / "ideas" / "user_ideas.txt"))
    ap.add_argument("--num-ideas", type=int, default=100, help="ideas derived from the test split")
    ap.add_argument("--n", type=int, nargs="+", default=[1, 4, 8], help="prompts per idea (one run each)")
    ap.add_argument("--no-critic", action="store_true", help="rerank without the models' coherence critic")
    ap.add_argument("--fluency-weight", type=float, default=None,
                    help="the reranker's FLUENCY_WEIGHT (critic logits per nat per token); default: the shipped one")
    ap.add_argument("--human", type=int, default=2000, help="held-out prompts for the human word-level rates")
    ap.add_argument("--decoding", nargs="*", default=[], metavar="KEY=VALUE",
                    help="decoding settings other than the defaults, e.g. temperature=0.8 min_p=0.1")
    ap.add_argument("--out", default="benchmarks/results/quality")
    args = ap.parse_args(argv)
    if args.fluency_weight is not None:
        from textopia.generation import rerank

        rerank.FLUENCY_WEIGHT = args.fluency_weight
    decoding = {k: (int(v) if k in ("top_k", "candidates") else v.lower() == "true" if k == "rerank" else float(v))
                for k, v in (kv.split("=", 1) for kv in args.decoding)}

    from textopia.data.corpus import read_split
    from textopia.evaluation.ideas import human_samples, load_ideas, read_ideas_file
    from textopia.evaluation.compare import training_index_for
    from textopia.text import KNOWN_WORDS_FILE, KnownWords

    data_dir = Path(args.data_dir)
    known = KnownWords.load(data_dir / KNOWN_WORDS_FILE)
    index = training_index_for(data_dir)
    test = read_split(data_dir, "test")
    derived, sources = load_ideas(data_dir=data_dir, split="test", num_ideas=args.num_ideas, seed=0)
    idea_sets = {"test": derived, "user": read_ideas_file(args.ideas_file)}
    flat = random.Random(0).sample(test, min(args.human, len(test)))
    human = {name: figures(human_samples(ideas, test, n_per_idea=max(args.n), sources=sources), known, index, flat=flat)
             for name, ideas in idea_sets.items()}
    from textopia.evaluation.metrics.relevance import default_embedder
    from textopia.generation.loader import DEFAULT_MODEL, assets_dir, critic_dir
    from textopia.models.checkpoint import load_coherence_critic

    shipped = critic_dir(assets_dir() / DEFAULT_MODEL)
    judges = (default_embedder(), load_coherence_critic(shipped) if shipped is not None else None)
    results = {
        "command": "python benchmarks/quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info.machine(), "n": args.n, "human_prompts": len(flat),
        "idea_sets": {k: len(v) for k, v in idea_sets.items()}, "human": human,
        "decoding": decoding,
        "models": [run_model(m, idea_sets, n, known, index, decoding, critic=not args.no_critic, human=flat,
                             judges=judges) for m in args.models for n in args.n],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    (out / "results.md").write_text(markdown(results))
    plot(results, out / "relevance_diversity.png")
    print((out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
