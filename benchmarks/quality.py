"""What a user gets from `textopia generate IDEA`: relevance, fluency, variety and form.

Usage (from the repository root, after `textopia prepare ... --out data/sd`)::

    python -m benchmarks quality [--set models=default,lstm data_dir=data/sd num_ideas=100 n=1,4,8
        ideas_file=benchmarks/ideas/user_ideas.txt critic=false] [--out benchmarks/results]

Two idea sets: ``test`` (``num_ideas`` ideas derived from the test split, as training derives
them) and ``user`` (``ideas_file``: short ideas written by hand, one per line). For each model,
each idea gets ``n`` prompts with the default settings (idea i: seed i), for each value of ``n``
(a user clicking once asks for one). The ``human`` row is
held-out prompts of the test split (``human`` of them for the word-level rates; grouped by
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
  (these four are :func:`textopia.evaluation.metrics.text_metrics`' ``distinct_2_within``,
  ``train_novel_share``, 1 - ``clip_tokens_over_77_share`` and ``words_mean``);
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

Writes ``quality.json`` (figures, settings, machine; every prompt under ``details``) and
``quality.md``; :func:`plot` draws relevance against diversity from the JSON.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

from benchmarks.harness import Result, benchmark

HERE = Path(__file__).resolve().parent
FIGURES = ("recall", "all_words", "invented", "stutter", "repeats_idea", "idea_late", "distinct_2", "novel", "clip_fit",
           "words")


def _share(flags) -> float:
    flags = list(flags)
    return sum(map(bool, flags)) / max(1, len(flags))


def figures(samples: dict[str, list[str]], known, index, flat: list[str] | None = None) -> dict[str, float]:
    """The figures of ``{idea: [prompt, ...]}``; word-level rates (invented, stutter) over ``flat``
    when given (the human row)."""
    from textopia.evaluation.metrics import text_metrics
    from textopia.evaluation.metrics.diversity import distinct_n_within
    from textopia.text import has_all_idea_words, idea_in_subject, relevance_recall, repeats_idea_word, stutters

    pairs = [(idea, p) for idea, prompts in samples.items() for p in prompts]
    recalls = [r for r in (relevance_recall(i, p) for i, p in pairs) if not math.isnan(r)]
    shared = (text_metrics(samples, training_index=index) if pairs else  # no human prompt holds these ideas
              dict.fromkeys(("train_novel_share", "clip_tokens_over_77_share", "words_mean"), math.nan))
    return {
        "ideas": len(samples),
        "prompts": len(pairs),
        "recall": sum(recalls) / max(1, len(recalls)),
        "all_words": _share(has_all_idea_words(i, p) for i, p in pairs),
        "invented": (_share(known.invented(p, i) for i, p in pairs) if flat is None
                     else _share(known.invented(p) for p in flat)),
        "stutter": _share(stutters(p) for p in (flat if flat is not None else (p for _, p in pairs))),
        "repeats_idea": _share(repeats_idea_word(i, p) for i, p in pairs),
        "idea_late": _share(not idea_in_subject(i, p) for i, p in pairs),
        # ideas with one prompt have no within-idea variety: left out, not counted as NaN
        "distinct_2": distinct_n_within({k: v for k, v in samples.items() if len(v) > 1}, 2),
        "novel": shared["train_novel_share"],
        "clip_fit": 1.0 - shared["clip_tokens_over_77_share"],
        "words": shared["words_mean"],
    }


def run_model(name: str, idea_sets: dict[str, list[str]], n: int, known, index, decoding: dict, *,
              critic: bool, human: list[str], judges, max_new_tokens: int | None) -> dict:
    import textopia
    from textopia.evaluation.metrics.humanness import mauve_score, two_sample_accuracy

    generator = textopia.load(name, critic=critic)
    if max_new_tokens:
        decoding = {**decoding, "max_new_tokens": max_new_tokens}
    out: dict = {"model": name, "n": n, "critic": generator.critic is not None, "sets": {}}
    samples_of: dict[str, dict[str, list[str]]] = {}
    for set_name, ideas in idea_sets.items():
        start = time.perf_counter()
        samples = {idea: [g.prompt for g in generator.generate(idea, n, seed=i, **decoding)]
                   for i, idea in enumerate(ideas)}
        seconds = time.perf_counter() - start
        row = figures(samples, known, index)
        row["seconds_per_idea"] = seconds / len(ideas)
        out["sets"][set_name] = row
        samples_of[set_name] = samples
    texts = [p for samples in samples_of.values() for prompts in samples.values() for p in prompts]
    embedder, shipped_critic = judges
    pool = human[: len(texts)]
    out["mauve"] = mauve_score(texts, pool, embedder) if embedder is not None else None
    out["critic_2st"] = two_sample_accuracy(shipped_critic, texts, pool) if shipped_critic is not None else None
    return out, {"model": name, "n": n, "info": generator.info(), "samples": samples_of}


def _decoding(pairs: tuple[str, ...]) -> dict:
    return {k: (int(v) if k in ("top_k", "candidates", "max_new_tokens") else v.lower() == "true" if k == "rerank"
                else float(v)) for k, v in (kv.split("=", 1) for kv in pairs)}


@benchmark("quality", smoke=dict(data_dir=str(HERE / "smoke_data"), num_ideas=2, user_ideas=2, n=(2,), human=20,
                                 max_new_tokens=8))
def run(models: tuple[str, ...] = ("default",), data_dir: str = "data/sd", ideas_file: str = str(HERE / "ideas" / "user_ideas.txt"),
        num_ideas: int = 100, user_ideas: int = 0, n: tuple[int, ...] = (1, 4, 8), critic: bool = True,
        fluency_weight: float | None = None, fluency_cap: float | None = None, human: int = 2000, decoding: tuple[str, ...] = (), judges: bool = True,
        max_new_tokens: int = 0) -> dict:
    """What a user gets from `textopia generate IDEA`: relevance, fluency, variety and form.

    ``models``: embedded names or checkpoint directories; ``user_ideas``: the first that many of
    ``ideas_file`` (0: all); ``critic``: load the models' coherence critic (the two-sample
    measure; the reranker weighs it by ``rerank.CRITIC_WEIGHT``); ``fluency_weight``: the
    reranker's FLUENCY_WEIGHT (None: the shipped one); ``fluency_cap``: its FLUENCY_CAP (None:
    the shipped one); ``human``: held-out prompts for the human
    word-level rates; ``decoding``: ``KEY=VALUE`` settings other than the defaults; ``judges``:
    compute MAUVE and the critic's two-sample accuracy; ``max_new_tokens``: 0 for the default.
    """
    from textopia.generation import rerank

    if fluency_weight is not None:
        rerank.FLUENCY_WEIGHT = fluency_weight
    if fluency_cap is not None:
        rerank.FLUENCY_CAP = fluency_cap
    from textopia.data.corpus import read_split
    from textopia.evaluation.compare import training_index_for
    from textopia.evaluation.ideas import human_samples, load_ideas, read_ideas_file
    from textopia.text import KNOWN_WORDS_FILE, KnownWords

    data = Path(data_dir)
    known = KnownWords.load(data / KNOWN_WORDS_FILE)
    index = training_index_for(data)
    test = read_split(data, "test")
    derived, sources = load_ideas(data_dir=data, split="test", num_ideas=num_ideas, seed=0)
    user = read_ideas_file(ideas_file)
    idea_sets = {"test": derived, "user": user[:user_ideas] if user_ideas else user}
    flat = random.Random(0).sample(test, min(human, len(test)))
    human_rows = {name: figures(human_samples(ideas, test, n_per_idea=max(n), sources=sources), known, index, flat=flat)
                  for name, ideas in idea_sets.items()}
    embedder = shipped_critic = None
    if judges:
        from textopia.evaluation.metrics.relevance import default_embedder
        from textopia.generation.loader import DEFAULT_MODEL, assets_dir, critic_dir
        from textopia.models.checkpoint import load_coherence_critic

        shipped = critic_dir(assets_dir() / DEFAULT_MODEL)
        embedder = default_embedder()
        shipped_critic = load_coherence_critic(shipped) if shipped is not None else None
    rows, details = [], []
    for model in models:
        for k in n:
            row, detail = run_model(model, idea_sets, k, known, index, _decoding(decoding), critic=critic, human=flat,
                                    judges=(embedder, shipped_critic), max_new_tokens=max_new_tokens)
            rows.append(row)
            details.append(detail)
    by_set = {set_name: [{"row": f"{r['model']}, n={r['n']}", **r["sets"][set_name]} for r in rows]
              + [{"row": "human (test split)", **human_rows[set_name]}] for set_name in idea_sets}
    return {"human_prompts": len(flat), "idea_sets": {k: len(v) for k, v in idea_sets.items()},
            **{f"ideas: {k}": v for k, v in by_set.items()},
            "against human prompts": [{"row": f"{r['model']}, n={r['n']}" + ("" if r["critic"] else " (no critic)"),
                                       "mauve": r["mauve"], "critic_2st": r["critic_2st"]} for r in rows],
            "details": {"models": details}}


def plot(result: Result, path: str | Path) -> None:
    """Relevance (idea-word recall) against diversity (distinct-2) of every row, from a quality result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for set_name, marker in zip(result.figures["idea_sets"], "os^"):
        for f in result.figures[f"ideas: {set_name}"]:
            ax.scatter(f["distinct_2"], f["recall"], marker=marker)
            ax.annotate(f"{f['row']} ({set_name})", (f["distinct_2"], f["recall"]), fontsize=8)
    ax.set_xlabel("distinct-2 among one idea's prompts")
    ax.set_ylabel("idea-word recall")
    ax.set_title("Relevance against diversity")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
