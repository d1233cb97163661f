"""The temperature and fusion weight of the latent model's variations (DiffusionGenerator's
VARIATION_TEMPERATURE and VARIATION_LM_WEIGHT).

Usage (from the repository root): ``python benchmarks/variation_temperature.py --data-dir data/sd``

12 test-split prompts of four words or more (seed 0; not the ones benchmarks/latent_eval.py uses),
8 variations each through the shipped latent model's own path (SDEdit from the prompt's mean at
the spread, its subject as the idea), at each (temperature, min-p, spread[, lm_weight]) given
(lm_weight, shallow fusion's λ, is 0 where not given). Prints subject
kept, distinct-2 and the perplexity of all variations under the default GPT, and three examples.
"""

from __future__ import annotations

import argparse
import random


def sources(test: list[str]) -> list[str]:
    """The 12 test-split prompts of four words or more that the variation benchmarks use (seed 0)."""
    return [p for p in random.Random(0).sample(test, 60) if len(p.split()) >= 4][:12]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="data/sd")
    ap.add_argument("--settings", nargs="+", default=["1.2,0.05,0.5", "0.8,0.05,0.5", "0.8,0.05,0.6",
                                                      "1.0,0.1,0.5", "0.8,0.05,0.55", "0.9,0.05,0.5"],
                    help="temperature,min_p,spread[,lm_weight] (lm_weight 0 where not given)")
    args = ap.parse_args()
    from textopia.data.corpus import read_split
    from textopia.evaluation.metrics import distinct_n
    from textopia.generation.base import GenerationConfig
    from textopia.generation.loader import load, resolve_model
    from textopia.models.checkpoint import load_checkpoint
    from textopia.models.likelihood import score_prompts
    from textopia.text import content_words, relevance_recall, subject

    gen = load("latent")
    gpt, gpt_tokenizer, _ = load_checkpoint(resolve_model("default"))
    test = read_split(args.data_dir, "test")
    for triple in args.settings:
        temperature, min_p, spread, lm_weight = (float(x) for x in (triple + ",0").split(",")[:4])
        kept, distinct, texts = [], [], []
        for i, source in enumerate(sources(test)):
            mu, _ = gen.encode(source)
            about = " ".join(content_words(subject(source))) or None
            outs = [g.prompt for g in gen.generate_with(about, 8, GenerationConfig(seed=i, temperature=temperature,
                                                                                   min_p=min_p),
                                                        gen.settings(init=mu, strength=spread, lm_weight=lm_weight))]
            kept += [r for r in (relevance_recall(subject(source), o) for o in outs) if r == r]
            distinct.append(distinct_n(outs, 2))
            texts += outs
        ppl = score_prompts(gpt, gpt_tokenizer, texts, batch_size=32).perplexity
        print(f"T {temperature} min_p {min_p} spread {spread} lm_weight {lm_weight}: kept {sum(kept) / len(kept):.3f} "
              f"distinct2 {sum(distinct) / len(distinct):.3f} ppl {ppl:.1f}", texts[8:11], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
