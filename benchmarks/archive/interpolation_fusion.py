"""Interpolation midpoints of the latent model: each point settled by an unconditional SDEdit and
decoded greedily by the decoder alone or in shallow fusion with its language model at several
weights λ (the way ``interpolate`` wrote them first), and as ``interpolate`` writes them now
(``decode_midpoints``: SDEdit towards both ends' subjects, sampled, fused and reranked).

``--num-pairs`` pairs of test prompts taken apart from ``latent_eval.py``'s (from position 2000 of
its shuffled order), 5 points each, the ends' posterior means refined as ``interpolate`` refines
them. Figures: the share of midpoints that share a content word with both ends
(``latent_eval.py``'s measure), the midpoints' perplexity under the embedded LSTM (a judge that
fusion does not decode with), and the share that stutter (a word n-gram repeated at once,
:func:`textopia.text.stutters`, the reranker's own test).

::

    python benchmarks/interpolation_fusion.py --data-dir data/sd --lm-weights 0 1 1.4

Writes ``interpolation_fusion.json`` and ``.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latent_eval import shares_both  # noqa: E402
from machine_info import machine  # noqa: E402


def midpoints(gen, pairs: list[tuple[str, str]], lm_weight: float | None) -> list[list[str]]:
    """Each pair's 5-point path, its interior decoded greedily at fusion weight ``lm_weight``
    (None: by the model's own ``decode_midpoints``)."""
    import torch

    from textopia.generation.vae import slerp

    default, paths = gen.lm_weight, []
    try:
        for a, b in pairs:
            inner = slerp(gen.encode(a)[0], gen.encode(b)[0], torch.linspace(0.0, 1.0, 5))[1:-1]
            if lm_weight is None:
                paths.append([a, *gen.decode_midpoints(inner, a, b), b])
            else:
                # settled as interpolate settled them first: unconditional DDIM (η = 0) from the
                # point noised interpolation_strength of the way, noise seed 0
                inner = gen.diffusion.sample_latents(None, inner.size(0), steps=gen.steps, guidance=0.0, eta=0.0,
                                                     generator=torch.Generator().manual_seed(0), init=inner,
                                                     strength=gen.interpolation_strength).cpu()
                gen.lm_weight = lm_weight  # decode_latents(fused=True) fuses at the model's λ
                paths.append([a, *gen.decode_latents(inner, fused=True), b])
    finally:
        gen.lm_weight = default
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--latent", default="latent")
    p.add_argument("--data-dir", required=True, help="prepared data (its test split)")
    p.add_argument("--num-pairs", type=int, default=15)
    p.add_argument("--lm-weights", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = p.parse_args(argv)

    from textopia.data.corpus import read_split
    from textopia.generation.loader import load, resolve_model
    from textopia.models.checkpoint import load_checkpoint
    from textopia.models.likelihood import score_prompts
    from textopia.text import stutters

    test = read_split(Path(args.data_dir), "test")
    order = list(range(len(test)))
    random.Random(f"latent-eval/{args.seed}").shuffle(order)
    pool = [test[j] for j in order[2000: 2000 + 2 * args.num_pairs]]
    pairs = list(zip(pool[::2], pool[1::2]))
    gen = load(args.latent)
    judge, judge_tok, _ = load_checkpoint(resolve_model("lstm"))
    report = {"machine": machine(), "settings": vars(args), "rows": {},
              "command": " ".join(["python benchmarks/interpolation_fusion.py", *(argv or sys.argv[1:])])}
    for weight in [*args.lm_weights, None]:
        paths = midpoints(gen, pairs, weight)
        mids = [m for path in paths for m in path[1:-1]]
        shared = [shares_both(m, path[0], path[-1]) for path in paths for m in path[1:-1]]
        weight = "decode_midpoints" if weight is None else weight
        report["rows"][str(weight)] = {
            "midpoints_sharing_both": sum(shared) / len(shared),
            "lstm_perplexity": score_prompts(judge, judge_tok, mids, batch_size=32).perplexity,
            "stutter": sum(map(stutters, mids)) / len(mids), "examples": paths[:3]}
        print(weight, json.dumps({k: v for k, v in report["rows"][str(weight)].items() if k != "examples"}), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "interpolation_fusion.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    lines = ["# Interpolation midpoints: settled and decoded greedily by the decoder alone (λ = 0) or in shallow "
             "fusion, and as interpolate writes them (decode_midpoints: SDEdit towards both ends' subjects, reranked)", "",
             f"`{report['command']}` on {report['machine'].get('cpu', '?')}; {len(pairs)} pairs of test prompts, "
             "3 midpoints each, greedy.", "",
             "| λ | midpoints sharing a content word with both ends | perplexity under the LSTM | stutter |",
             "|---:|---:|---:|---:|"]
    lines += [f"| {w} | {r['midpoints_sharing_both']:.3f} | {r['lstm_perplexity']:.1f} | {r['stutter']:.3f} |"
              for w, r in report["rows"].items()]
    for w, r in report["rows"].items():
        lines += ["", f"λ = {w}:", ""] + [" → ".join(f"`{x[:70]}`" for x in path) for path in r["examples"]]
    (out / "interpolation_fusion.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
