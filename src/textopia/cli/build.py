"""The commands that make a model: ``prepare`` (a corpus and its tokenizer), ``train``, ``export``
and ``fit-keep`` (the reranker's keep head, from blind judges' scores)."""

from __future__ import annotations

import sys
from pathlib import Path

from textopia.errors import TextopiaError


def add_prepare(sub) -> None:
    """Add the ``prepare`` sub-parser to ``sub`` (argparse's sub-parsers action)."""
    p = sub.add_parser("prepare", help="normalise, filter, deduplicate and split a corpus; train the tokenizer")
    p.add_argument("sources", nargs="+", help="corpus files or fsspec URLs (text, CSV, JSONL, Parquet)")
    p.add_argument("--out", required=True,
                   help="output directory, written as a whole: a new one, or one that prepare wrote before")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out even when it holds other files than a prepared corpus")
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


def add_train(sub) -> None:
    """Add the ``train`` sub-parser to ``sub``."""
    p = sub.add_parser("train", help="train a model from a TOML config")
    p.add_argument("--config", help="TOML file with [model], [data] and [train] tables")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a setting")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in train.out_dir")
    p.add_argument("--overwrite", action="store_true",
                   help="replace train.out_dir even when it holds other files than a checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--sagemaker", action="store_true",
                   help="run as a SageMaker training job: data from the train channel, settings from "
                        "hyperparameters.json, checkpoints in /opt/ml/checkpoints, the model to SM_MODEL_DIR "
                        "(see textopia.training.sagemaker)")


def add_export(sub) -> None:
    """Add the ``export`` sub-parser to ``sub``."""
    p = sub.add_parser("export", help="copy a checkpoint without its trainer state, with a model card (for shipping)")
    p.add_argument("checkpoint")
    p.add_argument("out", help="the copy's directory, written as a whole: a new one, or a checkpoint to replace")
    p.add_argument("--overwrite", action="store_true", help="replace OUT even when it holds other files than a checkpoint")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="storage type of the weights (half precision halves the file; loaded back as float32)")
    p.add_argument("--default", action="append", default=[], metavar="NAME=VALUE",
                   help="a generator default measured for this model: default_spread, default_strength, default_guidance, "
                        "default_steps, default_lm_weight")
    c = p.add_argument_group("the model card (README.md in OUT) and the Hugging Face Hub")
    c.add_argument("--eval-json", metavar="FILE",
                   help="the figures for the card: what `textopia eval MODEL --split test --json` printed "
                        "(without it the card says they were not measured)")
    c.add_argument("--eval-command", help="the command that wrote --eval-json (default: not named)")
    c.add_argument("--train-command", help="the command line that trained the model (default: the card shows the "
                                           "training settings the checkpoint recorded)")
    c.add_argument("--dataset", action="append", default=[], metavar="ID",
                   help="the training data's Hub dataset id (repeatable)")
    c.add_argument("--push-to-hub", metavar="REPO",
                   help="upload OUT to this Hub model repository (made when missing; the token is the Hub "
                        "client's: HF_TOKEN or `hf auth login`)")
    c.add_argument("--private", action="store_true", help="with --push-to-hub: make the repository private")


def add_fit_keep(sub) -> None:
    """Add the ``fit-keep`` sub-parser to ``sub``."""
    p = sub.add_parser("fit-keep", help="fit a writer's keep head on blind judges' scores (the reranker's choice within a tier)")
    p.add_argument("folders", nargs="+", help="judged folders: key.json and judge*.csv, as benchmarks/blind_judging writes them")
    p.add_argument("--model", default="default", help="the writer: an embedded model's name or a checkpoint directory")
    p.add_argument("--out", help="where to write the head (default: the checkpoint's keep/ folder, read by textopia.load)")
    p.add_argument("--l2", type=float, default=0.3, help="the penalty on the hidden states' weights (0-100)")
    p.add_argument("--overwrite", action="store_true", help="replace --out where it holds other files than a keep head")
    p.add_argument("--encoder-epochs", type=int, default=0,
                   help="fine-tune an encoder of the writer's blocks with the head on the pairs, this many passes "
                        "(0: the linear head on the writer's hidden states alone)")
    p.add_argument("--encoder-lr", type=float, default=5e-5, help="the encoder's peak learning rate, in (0, 1]")


def cmd_fit_keep(args) -> None:
    """``textopia fit-keep``: fit a :class:`~textopia.models.keep_head.KeepHead` on judged pairs and
    write it; prints where, with its pairs and held-out accuracy (each folder left out in turn; with
    ``--encoder-epochs``, each of five groups of folders, and the linear head's beside it)."""
    import textopia
    from textopia.bounds import check_out_path
    from textopia.evaluation.judged import (fine_tuned_on_judged, fit_on_judged, held_out_fold_hits, held_out_hits,
                                            judged_features)
    from textopia.generation.loader import resolve_model
    from textopia.generation.rerank import FLUENCY_CAP
    from textopia.io import check_output_dir
    from textopia.models.keep_head import KEEP_DIR, KEEP_FILES, MAX_ENCODER_EPOCHS, is_keep_dir

    if not 0 <= args.l2 <= 100:
        raise TextopiaError(f"--l2 must be in [0, 100], got {args.l2}")
    if not 0 <= args.encoder_epochs <= MAX_ENCODER_EPOCHS:
        raise TextopiaError(f"--encoder-epochs must be in [0, {MAX_ENCODER_EPOCHS}], got {args.encoder_epochs}")
    if not 0 < args.encoder_lr <= 1:
        raise TextopiaError(f"--encoder-lr must be in (0, 1], got {args.encoder_lr}")
    for folder in args.folders:
        if not (Path(folder) / "key.json").is_file():
            raise TextopiaError(f"{folder} is not a judged folder: it has no key.json")
    if args.out is None:
        if args.model in textopia.embedded_models():
            raise TextopiaError("give --out: an embedded model's folder is the installed package's")
        args.out = str(resolve_model(args.model) / KEEP_DIR)
    check_out_path(args.out, "--out")
    # The head is written as a whole folder: one that holds the user's files is not replaced.
    check_output_dir(args.out, "keep head", is_keep_dir, overwrite=args.overwrite, inputs=args.folders,
                     own=KEEP_FILES.__contains__)
    generator = textopia.load(args.model, critic=False)
    judged = judged_features(generator, args.folders)
    command = ["textopia fit-keep", *args.folders, "--model", args.model, "--l2", str(args.l2)]
    notes: dict = {"folders": judged.folders}
    if args.encoder_epochs:
        # Each held-out fold is a whole fine-tuning: folders in HELD_OUT_FOLDS groups, not one by one.
        folds = held_out_fold_hits(generator, judged, args.l2, FLUENCY_CAP, args.encoder_epochs, args.encoder_lr)
        right, total = sum(t for _, t, _ in folds.values()), sum(n for *_, n in folds.values())
        linear_right = sum(r for r, _, _ in folds.values())
        notes["held_out"] = f"{len(folds)} groups of folders left out in turn"
        notes["held_out_linear_accuracy"] = round(linear_right / total, 4) if total else None
        command += ["--encoder-epochs", str(args.encoder_epochs), "--encoder-lr", str(args.encoder_lr)]
    else:
        hits = held_out_hits(judged, args.l2, FLUENCY_CAP, generator.model.config.n_embd)
        right, total = sum(r for r, _ in hits.values()), sum(t for _, t in hits.values())
    accuracy = round(right / total, 4) if total else None
    head = fit_on_judged(generator, judged, args.l2, FLUENCY_CAP, held_out_accuracy=accuracy, command=" ".join(command),
                         notes=notes)
    if args.encoder_epochs:
        head = fine_tuned_on_judged(generator, judged, head, args.encoder_epochs, args.encoder_lr)
    head.save(args.out)
    print(args.out)
    print(f"{len(judged.won)} judged pairs; held-out accuracy {accuracy if accuracy is not None else 'not measured (one folder)'}"
          + (f" (the linear head alone: {notes['held_out_linear_accuracy']})" if args.encoder_epochs and total else ""),
          file=sys.stderr)


def cmd_prepare(args) -> None:
    """``textopia prepare``: the splits and, unless ``--no-tokenizer``, the tokenizer, written at once;
    prints the summary as JSON."""
    from textopia.bounds import check_out_path
    from textopia.data.corpus import PrepareConfig, prepare

    check_out_path(args.out, "--out")
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

    summary = prepare(args.sources, args.out, config, finish=finish, overwrite=args.overwrite)
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
    """``textopia train``: train from a TOML config (or as a SageMaker job); prints the checkpoint's path."""
    if args.sagemaker:
        from textopia.training.sagemaker import run_training_job

        if args.resume or args.overwrite:
            raise TextopiaError("--sagemaker always resumes from /opt/ml/checkpoints when a checkpoint is there; "
                                f"drop {'--resume' if args.resume else '--overwrite'}")
        print(run_training_job(config=args.config, overrides=args.set, progress=not args.no_progress))
        return
    from textopia.training.config import load_config
    from textopia.training.trainer import train

    config = load_config(args.config, args.set)
    out = train(config, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    print(out)


def cmd_export(args) -> None:
    """``textopia export``: copy a checkpoint without its trainer state, with its model card (and with
    ``--push-to-hub``, upload it); prints the copy's path."""
    from textopia.bounds import check_out_path
    from textopia.models.checkpoint import export_checkpoint

    check_out_path(args.out, "OUT")
    defaults = {}
    for item in args.default:
        name, sep, value = item.partition("=")
        try:
            defaults[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise TextopiaError(f"--default expects NAME=NUMBER, got {item!r}")
    from textopia.models.hub import CardFacts, card_writer, check_repo_id, push_to_hub, read_eval_report

    if args.private and not args.push_to_hub:
        raise TextopiaError("--private goes with --push-to-hub")
    if args.push_to_hub:
        check_repo_id(args.push_to_hub)  # a bad id fails now, not after the export
    card = CardFacts(name=Path(args.out).resolve().name, train_command=args.train_command,
                     eval_command=args.eval_command, datasets=args.dataset,
                     eval_report=read_eval_report(args.eval_json) if args.eval_json else None)
    out = export_checkpoint(args.checkpoint, args.out, dtype=args.dtype, defaults=defaults, overwrite=args.overwrite,
                            write_extra=card_writer(card))
    print(out)
    if args.push_to_hub:
        print(f"pushed to the Hub: {push_to_hub(out, args.push_to_hub, private=args.private or None)}", file=sys.stderr)
