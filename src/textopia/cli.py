"""The ``textopia`` command: prepare | train | eval | generate | export | serve.

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

from textopia.generation.base import TextopiaError

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
    p.add_argument("--no-tokenizer", action="store_true", help="do not train a tokenizer")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model from a TOML config")
    p.add_argument("--config", help="TOML file with [model], [data] and [train] tables")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a setting")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in train.out_dir")
    p.add_argument("--no-progress", action="store_true")


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


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="write prompts from an idea")
    p.add_argument("idea", nargs="?", default=None, help="the idea (expand) or the prompt's beginning (continue)")
    p.add_argument("-n", type=int, default=4, help="number of prompts")
    p.add_argument("--model", default=None, help="an embedded model's name or a checkpoint directory")
    p.add_argument("--mode", choices=["expand", "continue"], default="expand")
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--repetition-penalty", type=float, default=1.1)
    p.add_argument("--max-new-tokens", type=int, default=77)
    p.add_argument("--min-new-tokens", type=int, default=12)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--ban", action="append", default=[], metavar="WORD", help="a word the prompts must not contain")
    p.add_argument("--no-rerank", action="store_true", help="do not prefer samples that use more of the idea")
    p.add_argument("--json", action="store_true", help="print a JSON list")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="copy a checkpoint without its trainer state (for shipping)")
    p.add_argument("checkpoint")
    p.add_argument("out")


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve the web page and the JSON API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--models", nargs="*", default=[], help="checkpoint directories to load beside the default")


def build_parser() -> argparse.ArgumentParser:
    from textopia import __version__

    parser = argparse.ArgumentParser(prog="textopia", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"textopia {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_prepare, _add_train, _add_eval, _add_generate, _add_export, _add_serve):
        add(sub)
    return parser


def cmd_prepare(args) -> None:
    from textopia.data.corpus import PrepareConfig, prepare, read_split

    config = PrepareConfig(
        column=args.column, format=args.format, min_words=args.min_words, max_words=args.max_words,
        max_chars=args.max_chars, valid_fraction=args.valid_fraction, test_fraction=args.test_fraction,
        limit=args.limit,
    )
    summary = prepare(args.sources, args.out, config)
    if not args.no_tokenizer:
        _train_tokenizer_into(Path(args.out), read_split(args.out, "train"), args.vocab_size)
    print(summary.to_json())


def _train_tokenizer_into(out: Path, prompts: list[str], vocab_size: int) -> None:
    from textopia.data.tokenizer import PromptTokenizer, train_bpe
    from textopia.io import atomic_dir

    tokenizer = PromptTokenizer(train_bpe(prompts, vocab_size=vocab_size))
    with atomic_dir(out / ".tokenizer") as tmp:
        tokenizer.save(tmp)
    for f in (out / ".tokenizer").iterdir():
        os.replace(f, out / f.name)
    (out / ".tokenizer").rmdir()


def cmd_train(args) -> None:
    from textopia.training.config import load_config
    from textopia.training.trainer import train

    config = load_config(args.config, args.set)
    out = train(config, resume=args.resume, progress=not args.no_progress)
    print(out)


def cmd_eval(args) -> None:
    import torch

    from textopia.data.corpus import load_prompts, read_split
    from textopia.evaluation.likelihood import score_prompts, unigram_baseline
    from textopia.generation.loader import resolve_model
    from textopia.models.checkpoint import load_checkpoint
    from textopia.models.gpt import max_positions

    path = resolve_model(args.model)
    model, tokenizer, meta = load_checkpoint(path)
    data_dir = Path(args.data_dir or meta.get("data", {}).get("dir", "data/prepared"))
    if args.data:
        prompts = load_prompts(args.data, column=args.column)
        source = args.data
    else:
        prompts = read_split(data_dir, args.split)
        source = str(data_dir / f"{args.split}.txt")
    prompts = prompts[: args.limit]
    if not prompts:
        raise TextopiaError(f"no prompts to score in {source}")
    context = (max_positions(model) if hasattr(model, "config") else None) or 256
    started = time.monotonic()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    result = score_prompts(model, tokenizer, prompts, ideas=args.ideas, batch_size=args.batch_size,
                           max_length=context, device=device, progress=not args.json)
    report = {"model": str(args.model), "source": source, "ideas": args.ideas, **result.to_dict(),
              "seconds": round(time.monotonic() - started, 3)}
    if args.unigram:
        base = unigram_baseline(tokenizer, read_split(data_dir, "train"), prompts, max_length=context)
        report["unigram"] = base.to_dict()
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


def cmd_generate(args) -> None:
    from textopia.generation.loader import load

    generator = load(args.model)
    gens = generator.generate(
        args.idea, args.n, mode=args.mode, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        repetition_penalty=args.repetition_penalty, max_new_tokens=args.max_new_tokens,
        min_new_tokens=args.min_new_tokens, seed=args.seed, banned_words=args.ban, rerank=not args.no_rerank,
    )
    if args.json:
        print(json.dumps([g.to_dict() for g in gens], ensure_ascii=False))
    else:
        for g in gens:
            print(g.prompt)


def cmd_export(args) -> None:
    from textopia.models.checkpoint import export_checkpoint

    print(export_checkpoint(args.checkpoint, args.out))


def cmd_serve(args) -> None:
    from textopia.serving.app import run_server

    run_server(args.host, args.port, args.models)


COMMANDS = {
    "prepare": cmd_prepare, "train": cmd_train, "eval": cmd_eval, "generate": cmd_generate,
    "export": cmd_export, "serve": cmd_serve,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        COMMANDS[args.command](args)
    except TextopiaError as e:
        print(f"textopia: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("textopia: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
