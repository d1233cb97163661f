"""The commands that measure models: ``eval`` (one model's likelihood, its VAE figures or its text
figures) and ``compare`` (several models on the same ideas and seeds)."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from textopia.errors import TextopiaError
from textopia.io import json_safe

logger = logging.getLogger("textopia")


def add_eval(sub) -> None:
    """Add the ``eval`` sub-parser to ``sub`` (argparse's sub-parsers action)."""
    p = sub.add_parser("eval", help="cross-entropy and perplexity of a model on held-out prompts")
    p.add_argument("model", help="an embedded model's name or a checkpoint directory")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--split", default="test", choices=["train", "valid", "test"])
    src.add_argument("--data", help="any corpus file that `prepare` reads (normalised, not filtered)")
    p.add_argument("--data-dir", help="prepared data directory (default: the one the model was trained on)")
    p.add_argument("--column", help="column of --data holding the prompt")
    p.add_argument("--ideas", choices=["none", "derived"], default="none",
                   help="none: p(prompt); derived: p(prompt | idea derived from it)")
    p.add_argument("--limit", type=int, help="score only the first N prompts")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--unigram", action="store_true", help="also score a unigram model of the train split")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    v = p.add_argument_group("VAE figures (He et al. 2019 protocol; VAE checkpoints only)")
    v.add_argument("--iw-samples", type=int, default=500, help="importance samples per prompt for the NLL")
    v.add_argument("--iw-limit", type=int, default=500,
                   help="estimate the NLL on the first N prompts (K decoder passes each); 0: all")
    v.add_argument("--bleu-limit", type=int, default=500, help="reconstruct the first N prompts for BLEU; 0: skip")
    _add_text_eval_args(p, samples=0)


def _add_text_eval_args(p, samples: int) -> None:
    """Options of the text figures (eval and compare): ideas, samples, seeds, decoding."""
    g = p.add_argument_group("text figures (diversity, relevance, novelty, form of generated prompts)")
    g.add_argument("--samples", type=int, default=samples,
                   help=f"prompts to write per idea (default {samples}" + ("; 0: no text figures)" if not samples else ")"))
    g.add_argument("--ideas-file", help="ideas, one per line (default: derived from the held-out split)")
    g.add_argument("--num-ideas", type=int, default=100, help="ideas derived from the split when no file is given")
    g.add_argument("--seed", type=int, default=0, help="seed of idea derivation; idea i is sampled with seed + i")
    g.add_argument("--no-embedder", action="store_true", help="skip the MiniLM cosine relevance")
    g.add_argument("--no-novelty", action="store_true", help="skip the training-set overlap figures")
    g.add_argument("--no-clip", action="store_true", help="skip CLIP token counts")
    g.add_argument("--temperature", type=float, help="decoding settings; default: the Generator's")
    g.add_argument("--top-p", type=float)
    g.add_argument("--top-k", type=int)
    g.add_argument("--repetition-penalty", type=float)
    g.add_argument("--max-new-tokens", type=int)


def add_compare(sub) -> None:
    """Add the ``compare`` sub-parser to ``sub``."""
    p = sub.add_parser("compare", help="evaluate several models on the same ideas and seeds; write tables and plots")
    p.add_argument("models", nargs="+", metavar="MODEL", help="embedded models' names or checkpoint directories")
    p.add_argument("--out", required=True, help="output directory (results.json, results.md, *.png)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace results.json, results.md or the plots in --out where they are not an earlier comparison's")
    p.add_argument("--data-dir", help="prepared data directory (default: the one the first model was trained on)")
    p.add_argument("--data", help="any corpus file that `prepare` reads: its prompts replace the split "
                                  "(likelihood, derived ideas, the human row); no data directory needed")
    p.add_argument("--column", help="column of --data holding the prompt")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"],
                   help="held-out split: likelihood, derived ideas and the human row")
    p.add_argument("--likelihood-limit", type=int, help="score only the first N prompts of the split (0: none)")
    p.add_argument("--batch-size", type=int, default=32)
    _add_text_eval_args(p, samples=5)


def _check_counts(args, names: tuple[str, ...], low: int) -> None:
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise TextopiaError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")


def cmd_eval(args) -> None:
    """``textopia eval``: cross-entropy and perplexity of a model on held-out prompts (a VAE's figures
    for a VAE), and with ``--samples`` the text figures; prints a report, or one JSON object."""
    import torch

    from textopia.data.corpus import load_prompts, read_split
    from textopia.evaluation.likelihood import score_prompts, unigram_baseline
    from textopia.generation.loader import resolve_model
    from textopia.models.checkpoint import load_checkpoint, read_meta
    from textopia.models.gpt import max_positions
    from textopia.models.registry import LatentAutoencoder, LatentDiffusionModel, get_spec

    # Everything the command needs is checked before the model is loaded and scored.
    _check_counts(args, ("batch_size", "num_ideas", "limit"), 1)
    _check_counts(args, ("samples", "iw_limit", "bleu_limit"), 0)
    path = resolve_model(args.model)
    meta = read_meta(path)
    role = get_spec(meta["kind"]).role
    is_vae = issubclass(role, LatentAutoencoder)
    text_only = issubclass(role, LatentDiffusionModel)
    if text_only and (args.samples == 0 or args.ideas != "none" or args.unigram):
        # A diffusion over latents gives no probability of a prompt's tokens: only its writing can be measured.
        raise TextopiaError(f"{args.model} is a latent diffusion model ({meta['kind']}): it gives no likelihood of a "
                            "prompt, which eval scores (and --ideas and --unigram need); give --samples N for the "
                            "text figures of its prompts, or use `textopia compare`")
    data_dir = Path(args.data_dir or meta.get("data", {}).get("dir", "data/prepared"))
    if args.data:
        all_prompts = load_prompts(args.data, column=args.column)
        source = args.data
    else:
        all_prompts = read_split(data_dir, args.split)
        source = str(data_dir / f"{args.split}.txt")
    prompts = all_prompts[: args.limit]
    if not prompts:
        raise TextopiaError(f"no prompts to score in {source}")
    if is_vae:
        if args.ideas != "none" or args.samples > 0 or args.unigram:
            raise TextopiaError("a VAE is scored on p(prompt) only: --ideas, --samples and --unigram do not apply "
                                "(use `textopia compare` for its text figures)")
        if args.iw_samples < 1:
            raise TextopiaError(f"--iw-samples must be >= 1, got {args.iw_samples}")
        if args.bleu_limit:
            from textopia.checks import require_packages

            require_packages(["sacrebleu"], "the reconstruction BLEU of a VAE (--bleu-limit 0 skips it)")
    train_prompts = read_split(data_dir, "train") if args.unigram else None
    plan = _plan_text_eval(args, data_dir, all_prompts, source) if args.samples > 0 else None
    if text_only:
        report = {"model": str(args.model), "source": source, **_text_eval(args, path, plan)}
        if args.json:
            print(json.dumps(report))
            return
        print(f"{report['model']} ({meta['kind']}: no likelihood to score)")
        _print_text_figures(args, report["text"])
        return

    model, tokenizer, meta = load_checkpoint(path)
    context = max_positions(model) or 256
    started = time.monotonic()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    if is_vae:
        _eval_vae(args, model, tokenizer, prompts, source, context, started)
        return
    result = score_prompts(model, tokenizer, prompts, ideas=args.ideas, batch_size=args.batch_size,
                           max_length=context, device=device, progress=not args.json)
    _check_finite(args.model, source, {"cross-entropy": result.ce_nats_per_token})
    report = {"model": str(args.model), "source": source, "ideas": args.ideas, **result.to_dict(),
              "seconds": round(time.monotonic() - started, 3)}
    if train_prompts is not None:
        base = unigram_baseline(tokenizer, train_prompts, prompts, max_length=context)
        report["unigram"] = base.to_dict()
    if plan is not None:
        report.update(_text_eval(args, path, plan))
    if args.json:
        print(json.dumps(json_safe(report)))
        return
    print(f"{report['model']} on {source} ({result.prompts} prompts, {result.tokens} tokens, ideas: {args.ideas})")
    print(f"  cross-entropy      {result.ce_nats_per_token:.4f} nats/token")
    print(f"  perplexity         {result.perplexity:.2f} (per token), {result.perplexity_per_word:.2f} (per word)")
    if result.truncated:
        print(f"  truncated prompts  {result.truncated} (longer than {context} tokens)")
    if args.unigram:
        u = report["unigram"]
        print(f"  unigram baseline   {u['ce_nats_per_token']:.4f} nats/token, perplexity {u['perplexity']:.2f}")
    if plan is not None:
        _print_text_figures(args, report["text"])


def _print_text_figures(args, t: dict) -> None:
    """The text figures of ``textopia eval``'s report, one a line."""
    print(f"  text figures of {int(t['n_samples'])} prompts for {int(t['n_ideas'])} ideas "
          f"({args.samples} asked per idea, seed {args.seed} + idea index):")
    for key, value in t.items():
        if key not in ("n_ideas", "n_samples"):
            print(f"    {key:<26} " + ("–" if value is None else f"{value:.4f}"))


def _check_finite(model: str, source: str, figures: dict[str, float]) -> None:
    """Refuse a result that is not a number: NaN or an overflow says the model is broken, not how
    good it is, and a script reading the exit status must not take it for a score.

    Raises:
        TextopiaError: a figure of ``figures`` (name: value) is NaN or infinite.
    """
    for name, value in figures.items():
        if not math.isfinite(value):
            raise TextopiaError(f"the {name} of {model} on {source} is {value}, not finite: the model's weights "
                                "overflow or are damaged")


def _eval_vae(args, model, tokenizer, prompts, source, context, started) -> None:
    from textopia.evaluation.vae_metrics import evaluate_vae

    r = evaluate_vae(model, tokenizer, prompts, iw_samples=args.iw_samples, iw_limit=args.iw_limit or None,
                     bleu_limit=args.bleu_limit, batch_size=args.batch_size, max_length=context,
                     progress=not args.json)
    _check_finite(args.model, source, {"ELBO": r["elbo"], "IW-NLL": r["nll"]})
    report = {"model": str(args.model), "source": source, **r, "seconds": round(time.monotonic() - started, 3)}
    if args.json:
        print(json.dumps(json_safe(report)))
        return
    print(f"{report['model']} on {source} ({r['prompts']} prompts, {r['tokens']} tokens)")
    print(f"  ELBO               {r['elbo']:.3f} nats/prompt (reconstruction {r['recon']:.3f}, KL {r['kl']:.3f})")
    print(f"  reconstruction CE  {r['recon_ce_per_token']:.4f} nats/token")
    print(f"  IW-NLL (K={r['iw_samples']})     {r['nll']:.3f} nats/prompt, {r['nll_per_token']:.4f} nats/token, "
          f"on {r['iw_prompts']} prompts")
    print(f"  perplexity         {r['perplexity']:.2f} (IW-NLL), {r['elbo_perplexity']:.2f} (ELBO bound)")
    print(f"  mutual information {r['mutual_information']:.3f} nats")
    print(f"  active units       {r['active_units']} of {r['latent_dim']}")
    if "bleu" in r:
        print(f"  reconstruction     BLEU {r['bleu']:.2f}, exact match {r['exact_match']:.3f} "
              f"({r['bleu_prompts']} prompts)")
    for w in r["warnings"]:
        print(f"  WARNING: {w}")


def _decoding_args(args) -> dict:
    names = ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens")
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _plan_text_eval(args, data_dir: Path, prompts: list[str], source: str) -> dict:
    """Check what the text figures need and settle their ideas, before any work (``textopia eval``).

    Ideas come from ``--ideas-file``, else from ``--data``'s prompts, else from the split. The
    novelty figures need the model's train split: without it they are left out (with a warning)
    when the prompts come from ``--data`` and no ``--data-dir`` was given.
    """
    from textopia.evaluation.compare import check_compare_needs
    from textopia.evaluation.ideas import ideas_from_prompts, load_ideas

    check_compare_needs(clip_tokens=not args.no_clip, plots=False)
    if args.ideas_file:
        ideas, _ = load_ideas(args.ideas_file)
        described = args.ideas_file
    elif args.data:
        ideas = [idea for idea, _ in ideas_from_prompts(prompts, args.num_ideas, args.seed)]
        if not ideas:
            raise TextopiaError(f"no ideas could be derived from {args.data}")
        described = f"derived from {args.data}"
    else:
        ideas, _ = load_ideas(None, data_dir=data_dir, split=args.split, num_ideas=args.num_ideas, seed=args.seed)
        described = f"derived from {source}"
    novelty = not args.no_novelty
    if novelty and not (data_dir / "train.txt").is_file():
        if args.data and not args.data_dir:
            logger.warning("no train split in %s to check novelty against: the novelty figures are left out", data_dir)
            novelty = False
        else:
            raise TextopiaError(f"split not found: {data_dir / 'train.txt'} (needed for the novelty figures; "
                                "--no-novelty skips them)")
    return {"ideas": ideas, "described": described, "novelty": novelty, "data_dir": data_dir}


def _text_eval(args, path: Path, plan: dict) -> dict:
    """The text figures of ``args.samples`` prompts per idea, for ``textopia eval``."""
    from textopia.evaluation.compare import default_embedder, generate_samples, text_figures, training_index_for
    from textopia.generation.loader import load

    generator = load(path)
    samples = generate_samples(generator, plan["ideas"], n_per_idea=args.samples, seed=args.seed,
                               decoding=_decoding_args(args), progress=not args.json)
    metrics, _ = text_figures(
        samples, training_index=training_index_for(plan["data_dir"]) if plan["novelty"] else None,
        embedder=None if args.no_embedder else default_embedder(), clip_tokens=not args.no_clip,
    )
    return {"text": json_safe(metrics), "text_settings": {"ideas": plan["described"],
                                                          "samples_per_idea": args.samples, "seed": args.seed,
                                                          "decoding": _decoding_args(args)},
            "samples": samples}


def cmd_compare(args) -> None:
    """``textopia compare``: several models on the same ideas and seeds; prints the Markdown table and
    writes results.json, results.md and the plots to ``--out``."""
    from textopia.bounds import check_out_path
    from textopia.evaluation.compare import compare
    from textopia.evaluation.report import markdown_report

    check_out_path(args.out, "--out")  # before any model runs: an evaluation's work is not lost at the end
    results = compare(
        args.models, args.out, ideas_file=args.ideas_file, num_ideas=args.num_ideas, n_per_idea=args.samples,
        seed=args.seed, data_dir=args.data_dir, split=args.split, likelihood_limit=args.likelihood_limit,
        batch_size=args.batch_size, training_index=None if args.no_novelty else "auto",
        embedder=None if args.no_embedder else "auto", clip_tokens=not args.no_clip,
        decoding=_decoding_args(args), progress=True, data_file=args.data, column=args.column,
        overwrite=args.overwrite,
    )
    print(markdown_report(results))
    print(f"written to {args.out}: results.json, results.md, perplexity.png, diversity_relevance.png, lengths.png")
