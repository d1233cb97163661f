"""Penn Treebank check of the LSTM LM: sentence-level test perplexity next to published figures.

The data are Mikolov's PTB (10k-word vocabulary, rare words already ``<unk>``, numbers ``N``,
one sentence per line), read from ``../shared/data/ptb``. PTB's own splits are kept as they are:
``textopia prepare`` is not used, because it re-splits by hash, drops duplicates and short
lines and normalises digits, and each would change the benchmark. The tokenizer is the
word-level vocabulary of the train split (:func:`textopia.data.tokenizer.train_word_level`):
PTB's 9,999 words (``<unk>`` included) plus Textopia's four special tokens.

Protocol (sentence level, He et al. 2019): each sentence is modelled on its own from a fresh
state; ``<|prompt|>`` plays BOS and is not counted; every word and the EOS that ends the
sentence are counted, so the test set has 78,669 words + 3,761 EOS = 82,430 counted tokens.
Perplexity is ``exp(total nats / counted tokens)`` (:func:`score_prompts`, exact). Training is
Textopia's own loop (``textopia train``'s), every example unconditional (no ideas).

::

    python benchmarks/ptb.py            # 1 x 1024 LSTM, 512-wide embeddings, dropout 0.5, 30 epochs (a GPU job)
    python benchmarks/ptb.py --quick    # a small model for a few CPU minutes: checks the path, not the figure
    python benchmarks/ptb.py --cpu --max-minutes 25   # the most a 2-core CPU trains in ~25 minutes

Writes ``benchmarks/results/ptb.json`` and ``ptb.md`` (``ptb_quick.*`` with ``--quick``,
``ptb_cpu.*`` with ``--cpu``).

Anchors (test perplexity): 100.47 for an LSTM LM at sentence level (the Optimus table, Li et al.
2020, in He et al. 2019's setting), the comparable one; 115 / 114.7 for Zaremba et al. 2014's small
LSTM on the continuous stream (state carried across sentences: not the same protocol).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import math
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "ptb"

logger = logging.getLogger("benchmarks.ptb")

ANCHORS = [
    {"ppl": "100.47", "what": "LSTM LM, sentence level (Optimus table, Li et al. 2020; He et al. 2019's setting)",
     "comparable": True},
    {"ppl": "115 / 114.7", "what": "Zaremba et al. 2014, small LSTM (2 x 200), continuous stream",
     "comparable": False},
]

# The full run: He et al. 2019's decoder (512-wide embeddings, one 1024-unit LSTM, dropout 0.5 on
# its input and output, untied, batch 32), trained with our loop (AdamW, warmup and cosine decay)
# rather than their SGD with learning-rate halving.
FULL = {
    "model": {"kind": "lstm", "n_positions": 128, "n_embd": 512, "n_hidden": 1024, "n_layer": 1,
              "dropout": 0.5, "tie_weights": False},
    "train": {"batch_size": 32, "lr": 1e-3, "warmup_steps": 500, "epochs": 30, "weight_decay": 0.01,
              "grad_clip": 5.0, "min_lr_ratio": 0.05},
}
# A few CPU minutes (600 steps, 0.9 epoch; unmeasured here): checks the path, not the figure.
QUICK = {
    "model": {"kind": "lstm", "n_positions": 128, "n_embd": 128, "n_hidden": 256, "n_layer": 1,
              "dropout": 0.0, "tie_weights": True},
    "train": {"batch_size": 64, "lr": 3e-3, "warmup_steps": 50, "max_steps": 600, "weight_decay": 0.01,
              "grad_clip": 1.0, "min_lr_ratio": 0.1},
}
# The most this 2-core CPU trains in about 25 minutes (a 1 x 512 LSTM, tied 256-wide embeddings,
# dropout 0.3); stopped by --max-minutes if slower. Shows where a CPU gets, not the anchor.
CPU = {
    "model": {"kind": "lstm", "n_positions": 128, "n_embd": 256, "n_hidden": 512, "n_layer": 1,
              "dropout": 0.3, "tie_weights": True},
    "train": {"batch_size": 64, "lr": 3e-3, "warmup_steps": 200, "epochs": 4, "weight_decay": 0.01,
              "grad_clip": 1.0, "min_lr_ratio": 0.05},
}
PRESETS = {"full": FULL, "quick": QUICK, "cpu": CPU}


def read_ptb(path: Path) -> list[str]:
    """Sentences of one PTB file: whitespace collapsed, nothing else changed; empty lines dropped."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = [" ".join(line.split()) for line in f]
    return [line for line in lines if line]


def prepare_ptb(source: Path, out: Path) -> dict[str, Any]:
    """Write PTB's splits and its word-level tokenizer into ``out`` (atomically); returns a summary."""
    from textopia.data.tokenizer import PromptTokenizer, train_word_level
    from textopia.io import atomic_dir

    splits = {s: read_ptb(source / f"ptb.{s}.txt.gz") for s in ("train", "valid", "test")}
    summary = {
        "source": str(source),
        "sentences": {s: len(v) for s, v in splits.items()},
        "words": {s: sum(len(x.split()) for x in v) for s, v in splits.items()},
        "distinct_train_words": len({w for x in splits["train"] for w in x.split()}),
    }
    summary_path = out / "summary.json"
    if summary_path.is_file() and (out / "tokenizer.json").is_file():
        saved = json.loads(summary_path.read_text())
        if saved.get("words") == summary["words"] and "vocab_size" in saved:
            return saved
    tokenizer = PromptTokenizer(train_word_level(splits["train"]))
    summary["vocab_size"] = len(tokenizer)
    with atomic_dir(out) as tmp:
        for split, lines in splits.items():
            (tmp / f"{split}.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        tokenizer.save(tmp)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def experiment(args: argparse.Namespace, summary: dict[str, Any], preset: dict[str, Any] | None = None):
    """The :class:`ExperimentConfig` of this run (``preset``: a ``{"model", "train"}`` table,
    default ``PRESETS[args.preset]``; ``benchmarks/ptb_vae.py`` passes its own)."""
    from textopia.training.config import DataConfig, ExperimentConfig, TrainConfig

    preset = preset or PRESETS[args.preset]
    t = dict(preset["train"])
    steps_per_epoch = math.ceil(summary["sentences"]["train"] / t["batch_size"])
    epochs = t.pop("epochs", None)
    max_steps = args.max_steps or t.pop("max_steps", None) or epochs * steps_per_epoch
    t.pop("max_steps", None)
    t["warmup_steps"] = min(t["warmup_steps"], max(1, max_steps // 10))
    eval_every = min(steps_per_epoch, max_steps)
    return ExperimentConfig(
        model=dict(preset["model"]),
        data=DataConfig(dir=str(args.work), p_unconditional=1.0, max_length=preset["model"]["n_positions"],
                        valid_limit=None),
        train=TrainConfig(out_dir=str(args.out), max_steps=max_steps, eval_every=eval_every, save_every=eval_every,
                          log_every=max(1, min(50, max_steps // 10)), precision=args.precision, seed=args.seed,
                          max_minutes=args.max_minutes, **t),
    )


def machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def score(checkpoint: Path, data_dir: Path, split: str) -> dict[str, Any]:
    """Exact sentence-level CE and perplexity of a split (EOS counted, BOS not)."""
    import torch

    from textopia.data.corpus import read_split
    from textopia.evaluation.likelihood import score_prompts
    from textopia.models.checkpoint import load_checkpoint

    model, tokenizer, _ = load_checkpoint(checkpoint)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    sentences = read_split(data_dir, split)
    result = score_prompts(model, tokenizer, sentences, ideas="none", batch_size=64,
                           max_length=model.config.n_positions, device=device)
    expected = result.words + result.prompts  # every word and one EOS per sentence
    return {"split": split, "sentences": result.prompts, "words": result.words, "counted_tokens": result.tokens,
            "ce_nats_per_token": result.ce_nats_per_token, "perplexity": result.perplexity,
            "truncated": result.truncated, "protocol_ok": result.tokens == expected and result.truncated == 0}


def markdown(report: dict[str, Any]) -> str:
    cfg = report["config"]
    m = report["machine"]
    lines = [
        "# Penn Treebank: LSTM LM, sentence level" + {"quick": " — quick smoke run", "cpu": " — CPU run"}.get(report["preset"], ""),
        "",
        f"- Date: {report['date']}; command: `{report['command']}`",
        (f"- Machine: {m['cpus']} CPUs ({m['torch_threads']} torch threads), {m.get('gpu', 'no GPU')}, "
         f"{m['platform']}, Python {m['python']}, torch {m['torch']}; load average before {m['load_average']}"),
        (f"- Wall time: prepare {report['seconds']['prepare']:.1f} s, train {report['seconds']['train']:.1f} s, "
         f"evaluate {report['seconds']['evaluate']:.1f} s"),
        (f"- Model: {json.dumps(cfg['model'])}; {report['parameters']:,} parameters; vocabulary "
         f"{report['vocab_size']:,} (PTB's 9,999 words incl. `<unk>`, plus EOS, pad, idea, prompt markers)"),
        (f"- Training: {report['steps']:,} steps (of {cfg['train']['max_steps']:,} planned) of {cfg['train']['batch_size']} sentences "
         f"({report['epochs']:.2f} epochs), AdamW lr {cfg['train']['lr']}, weight decay "
         f"{cfg['train']['weight_decay']}, clip {cfg['train']['grad_clip']}, warmup {cfg['train']['warmup_steps']} "
         f"then cosine; precision {cfg['train']['precision']}"),
        "",
    ]
    if report["preset"] == "cpu":
        lines += [("> **A CPU run**: the largest configuration our 2-core CPU trains in about 25 minutes "
                   f"({report['epochs']:.1f} epochs of a 1 x 512 LSTM). It follows the protocol exactly, so its "
                   "perplexity compares with the sentence-level anchor, but the model and the training budget are "
                   "far smaller than the anchor's; `python benchmarks/ptb.py` (the full configuration, a GPU job) "
                   "is the run meant to match it."), ""]
    if report["preset"] == "quick":
        lines += [(f"> **A smoke run** (`--quick`, {cfg['train']['max_steps']} steps): it checks that data, "
                   "tokenizer, training and exact scoring work end to end on PTB. Its perplexity is not the "
                   "published protocol's and must not be compared with the anchors. Run `python benchmarks/ptb.py` "
                   "(the full configuration) for that."), ""]
    lines += ["| split | sentences | words | counted tokens (words + EOS) | CE (nats/token) | perplexity | protocol check |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for r in report["results"]:
        lines.append(f"| {r['split']} | {r['sentences']:,} | {r['words']:,} | {r['counted_tokens']:,} | "
                     f"{r['ce_nats_per_token']:.4f} | {r['perplexity']:.2f} | {'ok' if r['protocol_ok'] else 'FAILED'} |")
    lines += ["", "Published anchors (test perplexity):", "", "| perplexity | model | same protocol |", "|---:|---|---|"]
    for a in ANCHORS:
        lines.append(f"| {a['ppl']} | {a['what']} | {'yes' if a['comparable'] else 'no: continuous stream'} |")
    lines += ["", ("Counted: every word and the EOS ending each sentence; `<|prompt|>` plays BOS and is not "
                   "counted; each sentence starts from a zero state. Protocol check: counted tokens = words + "
                   "sentences, nothing truncated."), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", dest="preset", action="store_const", const="quick", default="full",
                        help="a small model for a few CPU minutes (a smoke run)")
    parser.add_argument("--cpu", dest="preset", action="store_const", const="cpu",
                        help="the most a 2-core CPU trains in about 25 minutes")
    parser.add_argument("--max-minutes", type=float, help="stop training after this many minutes (wall clock)")
    parser.add_argument("--max-steps", type=int, help="override the number of optimizer steps")
    parser.add_argument("--data", type=Path, default=DEFAULT_SOURCE, help="folder with ptb.{train,valid,test}.txt.gz")
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "ptb", help="prepared splits and tokenizer")
    parser.add_argument("--out", type=Path, help="checkpoint directory (default runs/ptb-lstm[-quick])")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16 (the recurrence is always fp32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    args.out = args.out or ROOT / "runs" / {"full": "ptb-lstm", "quick": "ptb-lstm-quick", "cpu": "ptb-lstm-cpu"}[args.preset]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from textopia.training.trainer import resolve_precision, train

    info = machine()
    t0 = time.monotonic()
    summary = prepare_ptb(args.data, args.work)
    t1 = time.monotonic()
    config = experiment(args, summary)
    train(config, resume=args.resume, progress=not args.no_progress)
    t2 = time.monotonic()
    results = [score(args.out, args.work, split) for split in ("valid", "test")]
    t3 = time.monotonic()
    params = json.loads((args.out / "config.json").read_text())["textopia"]["num_parameters"]
    steps = json.loads((args.out / "trainer_state.json").read_text())["step"]  # fewer if --max-minutes stopped it
    tc = config.to_dict()["train"]
    tc["precision"] = f"{tc['precision']} ({resolve_precision(tc['precision'])} autocast)"
    report = {
        "benchmark": "ptb-sentence-level-lstm",
        "preset": args.preset,
        "note": {"quick": "SMOKE RUN (--quick): checks the path end to end; not the published protocol's result",
                 "cpu": "CPU run (--cpu): the published protocol with a much smaller model and budget",
                 "full": "full configuration"}[args.preset],
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(shlex.quote(a) for a in ["benchmarks/ptb.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": info,
        "data": summary,
        "vocab_size": summary["vocab_size"],
        "config": {"model": config.model, "train": tc},
        "parameters": params,
        "steps": steps,
        "epochs": steps * tc["batch_size"] / summary["sentences"]["train"],
        "seconds": {"prepare": round(t1 - t0, 2), "train": round(t2 - t1, 2), "evaluate": round(t3 - t2, 2)},
        "results": results,
        "anchors": ANCHORS,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = {"full": "ptb", "quick": "ptb_quick", "cpu": "ptb_cpu"}[args.preset]
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all(r["protocol_ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
