"""The ``textopia`` command: prepare | train | eval | compare | generate | reconstruct | interpolate |
variations | export | serve.

User errors (bad input, missing files, unknown models) print one line, ``textopia: error: ...``,
and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from textopia.generation.base import DecodingSettings, TextopiaError

logger = logging.getLogger("textopia")


def _add_prepare(sub) -> None:
    p = sub.add_parser("prepare", help="normalise, filter, deduplicate and split a corpus; train the tokenizer")
    p.add_argument("sources", nargs="+", help="corpus files or fsspec URLs (text, CSV, JSONL, Parquet)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--column", help="column holding the prompt (CSV, JSONL, Parquet); default 'prompt'")
    p.add_argument("--format", choices=["text", "csv", "jsonl", "parquet"], help="default: from the suffix")
    p.add_argument("--min-words", type=int, default=4)
    p.add_argument("--max-words", type=int, default=100)
    p.add_argument("--max-chars", type=int, default=600)
    p.add_argument("--valid-fraction", type=float, default=0.01)
    p.add_argument("--test-fraction", type=float, default=0.01)
    p.add_argument("--limit", type=int, help="read at most this many rows")
    p.add_argument("--vocab-size", type=int, default=8192, help="BPE vocabulary size (tokens)")
    p.add_argument("--tokenizer", choices=["bpe", "word"], default="bpe",
                   help="bpe: byte-level BPE of --vocab-size; word: whitespace words, all kept (PTB-style data)")
    p.add_argument("--no-tokenizer", action="store_true", help="do not train a tokenizer")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model from a TOML config")
    p.add_argument("--config", help="TOML file with [model], [data] and [train] tables")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a setting")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in train.out_dir")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--sagemaker", action="store_true",
                   help="run as a SageMaker training job: data from the train channel, settings from "
                        "hyperparameters.json, checkpoints in /opt/ml/checkpoints, the model to SM_MODEL_DIR "
                        "(see textopia.sagemaker)")


def _add_eval(sub) -> None:
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


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="evaluate several models on the same ideas and seeds; write tables and plots")
    p.add_argument("models", nargs="+", metavar="MODEL", help="embedded models' names or checkpoint directories")
    p.add_argument("--out", required=True, help="output directory (results.json, results.md, *.png)")
    p.add_argument("--data-dir", help="prepared data directory (default: the one the first model was trained on)")
    p.add_argument("--data", help="any corpus file that `prepare` reads: its prompts replace the split "
                                  "(likelihood, derived ideas, the human row); no data directory needed")
    p.add_argument("--column", help="column of --data holding the prompt")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"],
                   help="held-out split: likelihood, derived ideas and the human row")
    p.add_argument("--likelihood-limit", type=int, help="score only the first N prompts of the split (0: none)")
    p.add_argument("--batch-size", type=int, default=32)
    _add_text_eval_args(p, samples=5)


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="write prompts from an idea")
    p.add_argument("idea", nargs="?", default=None, help="the idea (expand) or the prompt's beginning (continue)")
    p.add_argument("-n", type=int, default=4, help="number of prompts")
    p.add_argument("--model", default=None, help="an embedded model's name or a checkpoint directory")
    d = DecodingSettings()  # one source of the defaults: the Python API's
    p.add_argument("--mode", choices=["expand", "continue"], default=d.mode)
    p.add_argument("--temperature", type=float, default=d.temperature)
    p.add_argument("--top-p", type=float, default=d.top_p)
    p.add_argument("--top-k", type=int, default=d.top_k)
    p.add_argument("--repetition-penalty", type=float, default=d.repetition_penalty)
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    p.add_argument("--min-new-tokens", type=int, default=d.min_new_tokens, help="EOS is suppressed before this many tokens")
    p.add_argument("--min-p", type=float, default=d.min_p,
                   help="min-p sampling: drop tokens below this share of the likeliest one's probability (0: off)")
    p.add_argument("--idea-boost", type=float, default=d.idea_boost,
                   help="expand mode: nats added to the idea's words until each is written (0: off)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--ban", action="append", default=[], metavar="WORD", help="a word the prompts must not contain")
    p.add_argument("--no-rerank", action="store_true",
                   help="do not oversample and prefer prompts with the whole idea, known words and no stutter")
    p.add_argument("--guidance", type=float, default=None,
                   help="latent diffusion models: classifier-free guidance scale (0: ignore the idea; default 1)")
    p.add_argument("--steps", type=int, default=None, help="latent diffusion models: DDIM steps (default 50)")
    p.add_argument("--json", action="store_true", help="print a JSON list (with --ideas-file: the run's summary)")
    f = p.add_argument_group("a file of ideas (resumable; see textopia.batch_generate)")
    f.add_argument("--ideas-file", help="ideas, one a line: write -n prompts for each to --out instead of printing")
    f.add_argument("--out", help="JSON-lines output, one line per idea in order; a rerun skips ideas already written")
    f.add_argument("--batch-size", type=int, default=16, help="ideas written and synced to disk at once")


def _add_latent(sub) -> None:
    help_model = "a model with a latent space: an embedded name or a checkpoint directory (default: latent)"
    p = sub.add_parser("reconstruct", help="encode prompts to their posterior mean and decode them (VAE)")
    p.add_argument("prompts", nargs="+", metavar="PROMPT")
    p.add_argument("--model", default="latent", help=help_model)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p = sub.add_parser("interpolate", help="decode points on the spherical path between two prompts' latents (VAE)")
    p.add_argument("prompt_a")
    p.add_argument("prompt_b")
    p.add_argument("--steps", type=int, default=8, help="points on the path, both ends included")
    p.add_argument("--model", default="latent", help=help_model)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p = sub.add_parser("variations", help="decode latents drawn around a prompt's posterior (VAE)")
    p.add_argument("prompt")
    p.add_argument("-n", type=int, default=8, help="number of variations")
    p.add_argument("--spread", type=float, default=None,
                   help="scale of the posterior's standard deviation (default: the model's own)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--model", default="latent", help=help_model)
    p.add_argument("--json", action="store_true", help="print a JSON list")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="copy a checkpoint without its trainer state (for shipping)")
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="storage type of the weights (half precision halves the file; loaded back as float32)")
    p.add_argument("--default", action="append", default=[], metavar="NAME=VALUE",
                   help="a generator default measured for this model: default_spread, default_guidance, default_steps")


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve the web page and the JSON API")
    p.add_argument("--host", default=None, help="address to listen on (default: TEXTOPIA_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default: TEXTOPIA_PORT or 8000)")
    p.add_argument("--models", nargs="*", default=[], help="checkpoint directories to load beside the default")
    e = p.add_argument_group("the front of an inference endpoint (no model loaded; see serving.endpoint_client)")
    e.add_argument("--endpoint", metavar="URL",
                   help="send generations to this endpoint's POST /invocations: another `textopia serve`, a "
                        "SageMaker endpoint's URL, or an API Gateway URL in front of the Lambda")
    e.add_argument("--endpoint-timeout", type=float, default=60.0, help="seconds one endpoint call may take")
    e.add_argument("--endpoint-retries", type=int, default=3, help="retries after a 503, with doubling backoff")


def build_parser() -> argparse.ArgumentParser:
    from textopia import __version__

    parser = argparse.ArgumentParser(prog="textopia", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"textopia {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_prepare, _add_train, _add_eval, _add_compare, _add_generate, _add_latent, _add_export, _add_serve):
        add(sub)
    return parser


def cmd_prepare(args) -> None:
    from textopia.data.corpus import PrepareConfig, prepare

    config = PrepareConfig(
        column=args.column, format=args.format, min_words=args.min_words, max_words=args.max_words,
        max_chars=args.max_chars, valid_fraction=args.valid_fraction, test_fraction=args.test_fraction,
        limit=args.limit,
    )
    finish = None
    if not args.no_tokenizer:
        _check_vocab_size(args.vocab_size, args.tokenizer)

        def finish(tmp: Path, splits: dict[str, list[str]]) -> None:  # inside the atomic write: all or nothing
            _train_tokenizer_into(tmp, splits["train"], args.vocab_size, args.tokenizer)

    summary = prepare(args.sources, args.out, config, finish=finish)
    print(summary.to_json())


def _check_vocab_size(vocab_size: int, kind: str) -> None:
    """A BPE needs its 256 byte tokens and the special tokens; the bound is the models' own."""
    from textopia.data.tokenizer import SPECIAL_TOKENS
    from textopia.models.registry import SIZE_BOUNDS

    if kind != "bpe":
        return
    low, high = 256 + len(SPECIAL_TOKENS), SIZE_BOUNDS["vocab_size"]
    if not low <= vocab_size <= high:
        raise TextopiaError(f"--vocab-size must be between {low} (256 bytes and {len(SPECIAL_TOKENS)} special "
                            f"tokens) and {high:,}, got {vocab_size}")


def _train_tokenizer_into(out: Path, prompts: list[str], vocab_size: int, kind: str = "bpe") -> None:
    from textopia.data.tokenizer import PromptTokenizer, train_bpe, train_word_level

    if kind == "word":
        tokenizer = PromptTokenizer(train_word_level(prompts))
    else:
        tokenizer = PromptTokenizer(train_bpe(prompts, vocab_size=vocab_size))
    tokenizer.save(out)


def cmd_train(args) -> None:
    if args.sagemaker:
        from textopia.sagemaker import run_training_job

        if args.resume:
            raise TextopiaError("--sagemaker always resumes from /opt/ml/checkpoints when a checkpoint is there; "
                                "drop --resume")
        print(run_training_job(config=args.config, overrides=args.set, progress=not args.no_progress))
        return
    from textopia.training.config import load_config
    from textopia.training.trainer import train

    config = load_config(args.config, args.set)
    out = train(config, resume=args.resume, progress=not args.no_progress)
    print(out)


def _check_counts(args, names: tuple[str, ...], low: int) -> None:
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise TextopiaError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")


def cmd_eval(args) -> None:
    import torch

    from textopia.data.corpus import load_prompts, read_split
    from textopia.evaluation.likelihood import score_prompts, unigram_baseline
    from textopia.generation.loader import resolve_model
    from textopia.models.checkpoint import load_checkpoint, read_meta
    from textopia.models.gpt import max_positions
    from textopia.models.registry import get_spec

    # Everything the command needs is checked before the model is loaded and scored.
    _check_counts(args, ("batch_size", "num_ideas", "limit"), 1)
    _check_counts(args, ("samples", "iw_limit", "bleu_limit"), 0)
    path = resolve_model(args.model)
    meta = read_meta(path)
    is_vae = get_spec(meta["kind"]).generator == "vae"
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
    report = {"model": str(args.model), "source": source, "ideas": args.ideas, **result.to_dict(),
              "seconds": round(time.monotonic() - started, 3)}
    if train_prompts is not None:
        base = unigram_baseline(tokenizer, train_prompts, prompts, max_length=context)
        report["unigram"] = base.to_dict()
    if plan is not None:
        report.update(_text_eval(args, path, plan))
    if args.json:
        print(json.dumps(report))
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
        t = report["text"]
        print(f"  text figures of {int(t['n_samples'])} prompts for {int(t['n_ideas'])} ideas "
              f"({args.samples} asked per idea, seed {args.seed} + idea index):")
        for key, value in t.items():
            if key not in ("n_ideas", "n_samples"):
                print(f"    {key:<26} " + ("–" if value is None else f"{value:.4f}"))


def _eval_vae(args, model, tokenizer, prompts, source, context, started) -> None:
    from textopia.evaluation.vae_metrics import evaluate_vae

    r = evaluate_vae(model, tokenizer, prompts, iw_samples=args.iw_samples, iw_limit=args.iw_limit or None,
                     bleu_limit=args.bleu_limit, batch_size=args.batch_size, max_length=context,
                     progress=not args.json)
    report = {"model": str(args.model), "source": source, **r, "seconds": round(time.monotonic() - started, 3)}
    if args.json:
        print(json.dumps(report))
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
    from textopia.io import json_safe
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
    from textopia.evaluation.compare import compare
    from textopia.evaluation.report import markdown_report

    results = compare(
        args.models, args.out, ideas_file=args.ideas_file, num_ideas=args.num_ideas, n_per_idea=args.samples,
        seed=args.seed, data_dir=args.data_dir, split=args.split, likelihood_limit=args.likelihood_limit,
        batch_size=args.batch_size, training_index=None if args.no_novelty else "auto",
        embedder=None if args.no_embedder else "auto", clip_tokens=not args.no_clip,
        decoding=_decoding_args(args), progress=True, data_file=args.data, column=args.column,
    )
    print(markdown_report(results))
    print(f"written to {args.out}: results.json, results.md, perplexity.png, diversity_relevance.png, lengths.png")


def cmd_generate(args) -> None:
    from textopia.generation.loader import load

    if args.ideas_file or args.out:
        if not (args.ideas_file and args.out):
            raise TextopiaError("--ideas-file and --out go together")
        if args.idea is not None:
            raise TextopiaError("give either an idea or --ideas-file, not both")
        from textopia.batch_generate import read_ideas

        read_ideas(args.ideas_file)  # a bad file fails now, not after the model has loaded
    generator = load(args.model)
    from textopia.generation.base import unsupported_settings

    extra = {k: v for k, v in (("guidance", args.guidance), ("steps", args.steps)) if v is not None}
    if unsupported_settings(generator, extra):
        raise TextopiaError(f"--guidance and --steps apply to latent diffusion models, not to {generator.kind!r}")
    settings = dict(
        mode=args.mode, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        repetition_penalty=args.repetition_penalty, max_new_tokens=args.max_new_tokens,
        min_new_tokens=args.min_new_tokens, banned_words=args.ban, rerank=not args.no_rerank,
        min_p=args.min_p, idea_boost=args.idea_boost, **extra,
    )
    if args.ideas_file:
        from textopia.batch_generate import generate_file

        report = generate_file(generator, args.ideas_file, args.out, n=args.n, seed=args.seed, settings=settings,
                               batch_size=args.batch_size, progress=not args.json)
        if args.json:
            print(json.dumps(report.to_dict()))
        else:
            print(f"{report.out}: {report.ideas} ideas ({report.written} written now, {report.skipped} already there), "
                  f"{report.prompts} prompts in {report.seconds:.1f} s: {report.ideas_per_s:.2f} ideas/s, "
                  f"{report.prompts_per_s:.2f} prompts/s", file=sys.stderr)
        return
    gens = generator.generate(args.idea, args.n, seed=args.seed, **settings)
    if args.json:
        print(json.dumps([g.to_dict() for g in gens], ensure_ascii=False))
    else:
        for g in gens:
            print(g.prompt)


def _latent_generator(name: str):
    from textopia.generation.base import LatentGenerator
    from textopia.generation.loader import load

    generator = load(name)
    if not isinstance(generator, LatentGenerator):
        raise TextopiaError(f"model {name!r} ({generator.kind}) has no latent space; use a VAE, e.g. --model vae")
    return generator


def _print_texts(texts: list[str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(texts, ensure_ascii=False))
    else:
        for text in texts:
            print(text)


def cmd_reconstruct(args) -> None:
    generator = _latent_generator(args.model)
    _print_texts([generator.reconstruct(p) for p in args.prompts], args.json)


def cmd_interpolate(args) -> None:
    generator = _latent_generator(args.model)
    _print_texts(generator.interpolate(args.prompt_a, args.prompt_b, steps=args.steps), args.json)


def cmd_variations(args) -> None:
    generator = _latent_generator(args.model)
    _print_texts(generator.variations(args.prompt, args.n, spread=args.spread, seed=args.seed), args.json)


def cmd_export(args) -> None:
    from textopia.models.checkpoint import export_checkpoint

    defaults = {}
    for item in args.default:
        name, sep, value = item.partition("=")
        try:
            defaults[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise TextopiaError(f"--default expects NAME=NUMBER, got {item!r}")
    print(export_checkpoint(args.checkpoint, args.out, dtype=args.dtype, defaults=defaults))


def _check_serve(args) -> None:
    """What ``serve`` needs, checked before uvicorn starts: the ``serve`` extra, valid
    ``TEXTOPIA_*`` settings, and every model to load (found, and a readable checkpoint config)."""
    from textopia.checks import require_packages

    require_packages(["fastapi", "uvicorn", "pydantic", "pydantic_settings"], "textopia serve")
    from pydantic import ValidationError

    from textopia.generation.loader import resolve_model
    from textopia.models.checkpoint import check_checkpoint
    from textopia.serving.settings import ServingSettings

    try:
        settings = ServingSettings()
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "settings"
        raise TextopiaError(f"invalid TEXTOPIA_{where.upper()}: {first.get('msg', 'invalid value')}") from None
    for model in [*settings.models, *(args.models or [])]:
        check_checkpoint(resolve_model(model))


def cmd_serve(args) -> None:
    _check_serve(args)
    from textopia.serving.app import run_server

    endpoint = None
    if args.endpoint:
        from textopia.serving.endpoint_client import EndpointClient

        if args.models:
            raise TextopiaError("--endpoint serves no model of its own: drop --models")
        try:
            endpoint = EndpointClient(args.endpoint, timeout_s=args.endpoint_timeout, retries=args.endpoint_retries)
        except ValueError as e:
            raise TextopiaError(str(e)) from None
    run_server(args.host, args.port, args.models, endpoint=endpoint)


COMMANDS = {
    "prepare": cmd_prepare, "train": cmd_train, "eval": cmd_eval, "compare": cmd_compare, "generate": cmd_generate,
    "reconstruct": cmd_reconstruct, "interpolate": cmd_interpolate, "variations": cmd_variations,
    "export": cmd_export, "serve": cmd_serve,
}


def _one_line(message: str, limit: int = 1000) -> str:
    """A message on one line of at most ``limit`` characters (whatever an error carried along)."""
    text = " ".join(message.split())
    return text if len(text) <= limit else text[:limit] + "..."


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # "Loading weights" bars would clutter one-line-per-prompt output
    try:
        COMMANDS[args.command](args)
    except TextopiaError as e:
        print(f"textopia: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("textopia: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
