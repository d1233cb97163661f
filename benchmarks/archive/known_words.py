"""Known words only, on and off, side by side for any model: invented words, relevance, variety,
fluency and time.

For each model of ``--models`` and each setting of ``known_words_only`` (off, on), ``--num-ideas``
ideas of the file (after the first ``--skip``) get 8 prompts each (seed 100 + idea index, every
other setting the model's default). Figures: the share of prompts holding an invented word (not
in the model's ``known_words.txt`` nor the idea's words), idea recall
(``textopia.text.relevance_recall``), distinct-2 among each idea's 8, perplexity of the prompts
under the embedded LSTM and under the embedded default GPT (float32), and seconds per 8 prompts
(``latent_temperature.written_figures``, which that benchmark shares).
The two settings of a model run one after the other in one process. Writes ``<out>.json`` and
``<out>.md``::

    python benchmarks/known_words.py --models default lstm --num-ideas 40
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine_info  # noqa: E402
from latent_temperature import read_ideas, written_figures  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["default"])
    ap.add_argument("--ideas", default=str(ROOT / "benchmarks" / "ideas" / "derived_1000.txt"))
    ap.add_argument("--skip", type=int, default=10)
    ap.add_argument("--num-ideas", type=int, default=40)
    ap.add_argument("--out", default="benchmarks/results/known_words")
    args = ap.parse_args(argv)

    import textopia

    ideas = read_ideas(args.ideas, args.skip, args.num_ideas)
    lstm, gpt = textopia.load("lstm"), textopia.load(weight_dtype="float32")
    rows = []
    for name in args.models:
        model = textopia.load(name)
        if model.known_words is None:
            raise SystemExit(f"{name} has no known_words.txt")
        model.generate("warm up", 8, seed=0)
        for known in (False, True):
            rows.append({"model": name, "known_words_only": known,
                         **written_figures(model, ideas, gpt, lstm, known_words_only=known)})
            print(rows[-1], flush=True)
    result = {"command": "python benchmarks/known_words.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine_info.machine(), "ideas": ideas, "rows": rows}
    table = [f"{len(ideas)} ideas x 8 prompts, every other setting the model's default.", "",
             "| model | known words only | invented word (share of prompts) | idea recall | distinct-2 (each 8) | "
             "perplexity under the LSTM | under the default GPT | s per 8 prompts |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    table += [f"| {r['model']} | {'yes' if r['known_words_only'] else 'no'} | {r['invented']:.3f} | {r['idea_recall']:.3f} | "
              f"{r['distinct_2_per_8']:.3f} | {r['perplexity_lstm']:.1f} | {r['perplexity']:.1f} | {r['seconds_per_8']:.2f} |"
              for r in rows]
    print(machine_info.write_results(args.out, result, "Known words only, on and off", table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
