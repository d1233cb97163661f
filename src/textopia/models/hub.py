"""Model cards and the Hugging Face Hub: the ``README.md`` that ``textopia export`` writes into a
checkpoint, and the upload of an exported folder (``textopia export ... --push-to-hub REPO``).

A card is the Hub's format: YAML front matter (``pipeline_tag``, ``tags``, ``license``,
``datasets``, ``library_name``, ``language``, and a ``model-index`` when test figures are given),
then the model (kind, size, config), how it was trained, its figures from ``textopia eval``, and
what it is for. Every figure comes from a file: the checkpoint's ``config.json`` and
``metrics.jsonl``, or the JSON report of ``textopia eval --json``; a figure not given is written
as not measured, never guessed.

The shipped models' cards (``src/textopia/assets/*/README.md``) are written from
:data:`SHIPPED_CARDS` (the figures and commands of each shipped model, copied from the docs)::

    python -m textopia.models.hub          # rewrite every shipped model's README.md
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textopia.errors import TextopiaError

logger = logging.getLogger(__name__)

CARD_FILE = "README.md"
#: The figures and commands of the shipped models, by name (see :func:`write_shipped_cards`).
SHIPPED_CARDS = Path(__file__).resolve().parents[1] / "assets" / "cards.json"
LICENSE = "mit"
LIBRARY = "textopia"

#: What each model family is, in a line, and the Hub's pipeline tag for it.
KINDS = {
    "gpt": ("a GPT-2-style decoder that writes text-to-image prompts from a short idea", "text-generation"),
    "lstm": ("an LSTM language model of text-to-image prompts that writes them from a short idea",
             "text-generation"),
    "vae": ("an LSTM text VAE of text-to-image prompts: it writes prompts from an idea or from a latent "
            "(reconstructions, interpolations, variations)", "text-generation"),
    "prompt-ae": ("a transformer autoencoder of text-to-image prompts (a latent space of prompts)",
                  "text-generation"),
    "latent-diffusion": ("a diffusion model over a prompt autoencoder's latents, conditioned on an idea; "
                         "the autoencoder's decoder writes the prompt", "text-generation"),
    "critic": ("a coherence critic that tells human text-to-image prompts from machine-written ones",
               "text-classification"),
}

#: The figures of a ``textopia eval --json`` report shown in a card: (key, label).
LM_FIGURES = (("ce_nats_per_token", "cross-entropy (nats/token)"), ("perplexity", "perplexity (per token)"),
              ("perplexity_per_word", "perplexity (per word)"))
VAE_FIGURES = (("nll_per_token", "IW-NLL (nats/token)"), ("perplexity", "perplexity (IW-NLL)"),
               ("elbo", "ELBO (nats/prompt)"), ("recon_ce_per_token", "reconstruction CE (nats/token)"),
               ("elbo_perplexity", "perplexity (ELBO bound)"), ("kl", "KL (nats/prompt)"),
               ("mutual_information", "mutual information (nats)"), ("active_units", "active units"),
               ("bleu", "reconstruction BLEU"))
COUNTS = (("prompts", "prompts"), ("tokens", "tokens"), ("iw_prompts", "prompts (IW-NLL)"),
          ("iw_samples", "importance samples (K)"))


@dataclass
class CardFacts:
    """What a card says that the checkpoint does not record.

    Attributes:
        name: the model's name (the card's title; default: the folder's name).
        train_command: the command line that trained it (default: "not recorded", with the
            training config the checkpoint did record).
        eval_report: the JSON object ``textopia eval MODEL --split test --json`` printed, or None
            (the card then says the figures were not measured).
        eval_command: the command that made ``eval_report``.
        datasets: the training data's Hub dataset ids (or source repositories).
        data_note: a sentence on the training data.
        notes: more lines for the card's "Training" section (stages, hardware, time).
    """

    name: str | None = None
    train_command: str | None = None
    eval_report: dict[str, Any] | None = None
    eval_command: str | None = None
    datasets: list[str] = field(default_factory=list)
    data_note: str | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, values: dict[str, Any], name: str | None = None) -> CardFacts:
        """Facts from a JSON object with the attributes' names (``eval`` for ``eval_report``)."""
        values = dict(values)
        if "eval" in values:
            values["eval_report"] = values.pop("eval")
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise TextopiaError(f"unknown model card fields: {', '.join(unknown)}")
        return cls(**{"name": name, **values})


def read_eval_report(path: str | Path) -> dict[str, Any]:
    """The JSON object ``textopia eval ... --json`` wrote to ``path``.

    Raises:
        TextopiaError: the file is missing, not JSON, or not one JSON object with a figure.
    """
    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TextopiaError(f"--eval-json: cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise TextopiaError(f"--eval-json: {path} is not JSON ({e})") from None
    if not isinstance(report, dict) or not any(k in report for k, _ in LM_FIGURES + VAE_FIGURES + (("text", ""),)):
        raise TextopiaError(f"--eval-json: {path} is not the report of `textopia eval ... --json` (no figure in it)")
    return report


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"`{json.dumps(value)}`" if isinstance(value, (dict, list)) else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    return f"{round(value, 4 if abs(value) < 100 else 2):,}"  # as many digits as the source has, at most 4


def _toml(tables: dict[str, Any], prefix: str = "") -> list[str]:
    """``tables`` (name -> dict) as TOML lines: nested dicts as sub-tables, None left out."""
    lines: list[str] = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            continue
        lines.append(f"[{prefix}{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items() if v is not None and not isinstance(v, dict)]
        lines.append("")
        lines += _toml({k: v for k, v in table.items() if isinstance(v, dict)}, f"{prefix}{name}.")
    return lines


def _last_validation(directory: Path) -> tuple[int | None, dict[str, Any] | None]:
    """The last step of the training log (``metrics.jsonl``) and its last validation record."""
    path = directory / "metrics.jsonl"
    if not path.is_file():
        return None, None
    step, valid = None, None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line torn by a kill
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            step = record["step"]
            if record.get("split") == "valid":
                valid = record
    return step, valid


def _eval_section(facts: CardFacts) -> tuple[list[str], list[Any]]:
    """The card's "Evaluation" lines and the Hub's eval results for them."""
    from huggingface_hub import EvalResult

    report = facts.eval_report
    lines = ["## Evaluation", ""]
    if not report:
        lines += ["Not measured: no `textopia eval` report was given when this card was written (`textopia export "
                  "... --eval-json FILE`, FILE from `textopia eval MODEL --split test --json`).", ""]
        return lines, []
    source = report.get("source", "the held-out split")
    lines += [f"From `{facts.eval_command}`" if facts.eval_command else "From `textopia eval` (its JSON report)",
              f"on `{source}`" + (f", ideas: {report['ideas']}" if report.get("ideas") else "") + ".", "",
              "| figure | value |", "|---|---:|"]
    shown = VAE_FIGURES if "nll_per_token" in report else LM_FIGURES
    for key, label in shown + COUNTS:
        if isinstance(report.get(key), (int, float)):
            lines.append(f"| {label} | {_number(report[key])} |")
    text = report.get("text")
    if isinstance(text, dict):
        lines += [f"| {key} | {_number(value)} |" for key, value in text.items() if isinstance(value, (int, float))]
    if report.get("counted_tokens"):
        lines += ["", f"Tokens counted: `{report['counted_tokens']}`."]
    lines.append("")
    results = []
    dataset = str(facts.datasets[0]) if facts.datasets else "prompts"
    for key, metric in (("perplexity", "perplexity"), ("ce_nats_per_token", "cross-entropy")):
        value = report.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            results.append(EvalResult(task_type="text-generation", dataset_type=dataset, dataset_name=str(source),
                                      dataset_split="test", metric_type=metric, metric_value=round(float(value), 4),
                                      metric_name=dict(shown).get(key, metric)))
    return lines, results


def model_card(directory: str | Path, facts: CardFacts | None = None):
    """The model card (a ``huggingface_hub.ModelCard``) of the checkpoint in ``directory``.

    Args:
        directory: a checkpoint directory (its ``config.json`` is read, and ``metrics.jsonl``
            and ``model.safetensors`` where present).
        facts: what the checkpoint does not record (see :class:`CardFacts`).

    Raises:
        TextopiaError: ``directory`` holds no readable Textopia config.
    """
    from huggingface_hub import ModelCard, ModelCardData

    from textopia.models.checkpoint import read_meta

    directory = Path(directory)
    facts = facts or CardFacts()
    meta = read_meta(directory)
    kind = str(meta["kind"])
    name = facts.name or directory.resolve().name
    what, pipeline_tag = KINDS.get(kind, (f"a Textopia model of kind {kind!r}", "text-generation"))
    eval_lines, eval_results = _eval_section(facts)
    data = ModelCardData(
        language="en", license=LICENSE, library_name=LIBRARY, pipeline_tag=pipeline_tag,
        tags=["textopia", kind, "text-to-image-prompts", "stable-diffusion", "prompt-generation"],
        datasets=list(facts.datasets) or None, model_name=name if eval_results else None,
        eval_results=eval_results or None,
    )

    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    weights = directory / "model.safetensors"
    size = [("kind", f"`{kind}`")]
    for key, label in (("num_parameters", "parameters"), ("num_trainable_parameters", "trained parameters")):
        if isinstance(meta.get(key), int) and (key == "num_parameters" or meta[key] != meta.get("num_parameters")):
            size.append((label, f"{meta[key]:,}"))
    if weights.is_file():
        size.append(("weights", f"`model.safetensors`, {weights.stat().st_size / 1e6:.1f} MB, stored as "
                                f"{meta.get('stored_dtype', 'float32')} (computed in float32)"))
    size.append(("Textopia version", str(meta.get("version", "unknown"))))
    lines = [f"# {name}", "", f"A Textopia model: {what}.", "",
             "## Model", "", "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in size], "",
             "Its config (`config.json`, section `textopia.model`):", "", "| setting | value |", "|---|---|",
             *[f"| `{k}` | {_number(v)} |" for k, v in model.items() if k != "kind"], ""]
    defaults = {k: v for k, v in meta.items() if k.startswith(("default_", "generate_"))}
    if defaults:
        lines += ["Generator defaults measured for it: "
                  + ", ".join(f"`{k}` = {_number(v)}" for k, v in defaults.items()) + ".", ""]

    lines += ["## Training", ""]
    lines += [f"Command: `{facts.train_command}`" if facts.train_command else
              "Command: not recorded in the checkpoint. The settings it recorded are below; saved as a TOML "
              "file, `textopia train --config FILE` trains with them.", ""]
    lines += facts.notes + ([""] if facts.notes else [])
    if facts.data_note:
        lines += [f"Data: {facts.data_note}", ""]
    step, valid = _last_validation(directory)
    if step is not None:
        line = f"Training log (`metrics.jsonl`): last logged step {step:,}"
        if valid and isinstance(valid.get("perplexity"), (int, float)):
            line += (f"; last validation (step {valid['step']:,}): perplexity {valid['perplexity']:.2f}"
                     + (f", CE {valid['ce_nats_per_token']:.4f} nats/token"
                        if isinstance(valid.get("ce_nats_per_token"), (int, float)) else ""))
        lines += [line + ".", ""]
    recorded = {k: meta[k] for k in ("model", "data", "train") if isinstance(meta.get(k), dict)}
    if recorded:
        lines += ["The training settings recorded in the checkpoint (`config.json`, section `textopia`):", "",
                  "```toml", *_toml(recorded)[:-1], "```", ""]

    lines += eval_lines
    lines += ["## Use", "", "With Textopia installed, name the folder that holds this card with `--model` "
              "(a model shipped inside Textopia also by its name):", "", "```bash",
              'textopia generate "a lighthouse in a storm" -n 4 --model PATH/TO/THIS/FOLDER', "```", "",
              "or in Python: `textopia.load(\"PATH/TO/THIS/FOLDER\").generate(\"a lighthouse in a storm\", n=4)`.",
              "", "## Intended use and limits", "",
              "- Intended use: writing and studying prompts for text-to-image models (Stable Diffusion and its "
              "kin) from a short English idea; a baseline or a subject for research on prompt generation.",
              "- It writes prompts in the style of those people typed for Stable Diffusion in 2022: artists' "
              "names, style tags, resolution words. It knows no facts and follows no instructions.",
              "- The training prompts are real user data with NSFW and celebrity content; the model can write "
              "such prompts. Textopia's service filters NSFW words by default (`safe_mode`); filter the output "
              "of this model before showing it to others.",
              "- English only; a small model, made to run on a CPU: prompts can be incoherent, repeat "
              "themselves or miss the idea. Its figures hold for the data it was measured on, nothing else.", ""]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines).rstrip() + "\n"
    return ModelCard(content)


def write_model_card(directory: str | Path, facts: CardFacts | None = None) -> Path:
    """Write :func:`model_card` of ``directory`` to ``directory/README.md``; returns the path."""
    path = Path(directory) / CARD_FILE
    path.write_text(str(model_card(directory, facts)), encoding="utf-8")
    return path


def card_writer(facts: CardFacts) -> Callable[[Path], None]:
    """A ``write_extra`` for :func:`textopia.models.checkpoint.export_checkpoint` that writes the
    card of the checkpoint being written (give ``facts.name``: the folder it writes in is temporary)."""

    def write_extra(directory: Path) -> None:
        write_model_card(directory, facts)

    return write_extra


def write_shipped_cards(assets: str | Path | None = None, figures: str | Path = SHIPPED_CARDS) -> list[Path]:
    """Rewrite the card of every shipped model named in ``figures`` (default :data:`SHIPPED_CARDS`).

    Args:
        assets: the folder of the shipped models (default: the package's ``assets``).
        figures: JSON: ``{name: {train_command, eval, eval_command, datasets, data_note, notes}}``.

    Returns:
        the cards written.
    """
    assets = Path(assets) if assets is not None else Path(__file__).resolve().parents[1] / "assets"
    table = json.loads(Path(figures).read_text(encoding="utf-8"))
    return [write_model_card(assets / name, CardFacts.from_dict(values, name=name))
            for name, values in table.items() if not name.startswith("_")]


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if the Hub would take it as a repository id (``owner/name``).

    Raises:
        TextopiaError: it would not (one line: why).
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise TextopiaError(f"--push-to-hub: {' '.join(str(e).split())}") from None
    return repo_id


def push_to_hub(folder: str | Path, repo_id: str, *, private: bool | None = None,
                commit_message: str | None = None) -> str:
    """Upload the exported checkpoint ``folder`` (its card included) to the Hub's model repository
    ``repo_id``, made first when it does not exist. The token is the Hub client's own
    (``HF_TOKEN`` or ``hf auth login``).

    Returns:
        the URL of the commit.

    Raises:
        TextopiaError: ``folder`` is not a directory, or the Hub refused (one line).
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise TextopiaError(f"--push-to-hub: {folder} is not a directory")
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                                 commit_message=commit_message or f"Upload {folder.name} (textopia export)")
    except TextopiaError:
        raise
    except Exception as e:  # network, authentication, a bad repo id: one line
        raise TextopiaError(f"--push-to-hub {repo_id}: {type(e).__name__}: {e}") from None
    return str(getattr(info, "commit_url", info))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for card in write_shipped_cards():
        logger.info("wrote %s", card)
