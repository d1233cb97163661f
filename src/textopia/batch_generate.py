"""Prompts for a whole file of ideas, offline: ``textopia generate --ideas-file FILE --out FILE.jsonl``.

::

    ideas.txt ──▶ idea 1 ─▶ generate ─┐
    (one a line)  idea 2 ─▶ generate ─┼─▶ one batch of JSON lines ─▶ append + fsync ─▶ out.jsonl.partial
                  ...                 ┘                                                   │ all ideas done
                                                                                          ▼
                                                                          rename ─▶ out.jsonl

Each output line is one idea's answer: ``{"line", "idea", "model", "kind", "seed", "prompts":
[{"prompt", "num_tokens", "finished"}], "settings"}``, in the ideas' order. Work in progress lives
in ``OUT.partial``; ``OUT`` appears, by a rename, only when every idea is written, so no reader
sees half a file. A rerun after a kill reads the partial file, drops a torn last line, checks
that it was written from the same ideas, model and settings, and carries on after the last idea
written: every idea is written once. With ``seed``, idea ``i`` (0-based) is sampled with seed
``seed + i``, so an interrupted and resumed run writes what an uninterrupted one would.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from textopia.bounds import DRAWN_SEEDS, MAX_SEED, check_out_path
from textopia.generation.base import Generator, TextopiaError
from textopia.generation.config import GenerationConfig, check_setting


@dataclass(frozen=True)
class Idea:
    """One idea of the ideas file: its 1-based line number and its text (whitespace collapsed)."""

    line: int
    text: str


@dataclass
class BatchReport:
    """What a run did.

    Attributes:
        ideas: ideas in the file.
        written: ideas written by this run.
        skipped: ideas already in the output from an earlier run.
        prompts: prompts written by this run.
        seconds: wall-clock time of this run's generation, in seconds (model loading excluded).
        ideas_per_s: ``written / seconds``, ideas per second.
        prompts_per_s: ``prompts / seconds``, prompts per second.
        out: the finished output file.
    """

    ideas: int
    written: int
    skipped: int
    prompts: int
    seconds: float
    ideas_per_s: float
    prompts_per_s: float
    out: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def partial_path(out: Path) -> Path:
    """Where the work in progress for ``out`` is kept: ``out`` plus ``.partial``."""
    return out.with_name(out.name + ".partial")


def check_out(out: str | Path) -> Path:
    """``out`` as a :class:`Path` if it can be the JSON-lines output: a file of its own, not a
    directory and not a ``.partial`` name (that is where work in progress goes).

    Raises:
        TextopiaError: one line naming ``--out``, the path and what is wrong with it.
    """
    path = check_out_path(out, "--out", "file")
    if path.is_dir():
        raise TextopiaError(f"--out is the JSON-lines file to write, and {str(out)!r} is a directory "
                            f"(give a file name, e.g. {str(path / 'prompts.jsonl')!r})")
    if path.suffix == ".partial":
        raise TextopiaError(f"--out must not end in .partial (that is where work in progress goes): {path}")
    return path


def read_ideas(path: str | Path) -> list[Idea]:
    """The non-blank lines of an ideas file, whitespace collapsed.

    Raises:
        TextopiaError: the file is missing, not UTF-8, or holds no idea.
    """
    path = Path(path)
    if not path.is_file():
        raise TextopiaError(f"ideas file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TextopiaError(f"ideas file {path} is not UTF-8 text: {e}") from None
    ideas = [Idea(i, " ".join(line.split())) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not ideas:
        raise TextopiaError(f"ideas file {path} holds no idea (one idea a line)")
    return ideas


def record_settings(n: int, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a record carries (JSON-normalised), so a resume can check it has the same."""
    return json.loads(json.dumps({"n": n, **{k: v for k, v in settings.items() if k != "seed"}}))


def _check_done(path: Path, ideas: list[Idea], model: str, settings: dict[str, Any]) -> tuple[int, int]:
    """Check the records already in ``path`` (nothing is changed): :func:`check_records` of its bytes."""
    return check_records(path.read_bytes(), path, ideas, model, settings)


def check_records(data: bytes, path: str | Path, ideas: list[Idea], model: str,
                  settings: dict[str, Any]) -> tuple[int, int]:
    """Check JSON-lines records ``data`` (read from ``path``) against the ideas they should answer, in order.

    Returns:
        ``(records, bytes)``: how many complete records there are, and the size of the file up
        to the end of the last one (what follows it is a write torn by a kill).

    Raises:
        TextopiaError: the records were written from other ideas, by another model or with other
            settings, or a complete line is not a record.
    """
    *complete, torn = data.split(b"\n")  # what follows the last newline is a write cut short, if anything
    done = 0
    for number, raw in enumerate(complete, 1):
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise TextopiaError(f"{path}: line {number} is not a JSON record; delete the file to start over")
        if not {"line", "idea", "model", "prompts"} <= record.keys():
            raise TextopiaError(f"{path} is not the output of `textopia generate --ideas-file` (line {number} is not "
                                f"its record): it is left alone; give another --out")
        if done >= len(ideas) or record.get("line") != ideas[done].line or record.get("idea") != ideas[done].text:
            raise TextopiaError(f"{path} was written from other ideas (record {done + 1}: "
                                f"{record.get('idea')!r}); use another --out or delete it")
        if record.get("model") != model:
            raise TextopiaError(f"{path} was written by model {record.get('model')!r}, this run asks {model!r}: "
                                f"use the same model, another --out, or delete it")
        theirs = record.get("settings") if isinstance(record.get("settings"), dict) else {}
        if theirs != settings:
            diff = ", ".join(f"{k} {theirs.get(k)!r} there, {settings.get(k)!r} now"
                             for k in sorted(set(theirs) | set(settings)) if theirs.get(k) != settings.get(k))
            raise TextopiaError(f"{path} was written with other settings ({diff}): use the same ones, "
                                f"another --out, or delete it")
        done += 1
    return done, len(data) - len(torn)


def check_batch_settings(n: int, batch_size: int, seed: int | None, settings: Mapping[str, Any]) -> None:
    """Check a file run's settings before any work (see :func:`generate_file`'s arguments).

    Raises:
        TextopiaError: ``n`` out of its bound, ``batch_size`` below 1, a seed out of range, or bad
            decoding settings.
    """
    check_setting("n", n, "-n")
    if batch_size < 1:
        raise TextopiaError(f"--batch-size must be >= 1, got {batch_size}")
    if seed is not None:
        check_setting("seed", seed, "--seed")
    known = GenerationConfig.__dataclass_fields__
    decoding = {k: tuple(v) if k == "banned_words" else v for k, v in settings.items() if k in known}
    GenerationConfig(**decoding).validate()


def idea_seed(seed: int | None, index: int) -> int:
    """The seed of the idea at 0-based ``index``: ``seed + index`` (wrapped into 0 .. 2**64 - 1), or a
    random one when ``seed`` is None."""
    if seed is None:
        return secrets.randbelow(DRAWN_SEEDS)
    return (seed + index) % (MAX_SEED + 1)


def idea_record(generator: Generator, idea: Idea, seed: int, n: int, settings: Mapping[str, Any],
                kept_settings: dict[str, Any]) -> dict[str, Any]:
    """One idea's output record: ``n`` prompts for ``idea`` sampled with ``seed`` (see the module's
    docstring for its fields; ``kept_settings`` is :func:`record_settings`)."""
    gens = generator.generate(idea.text, n, seed=seed, **settings)
    return {
        "line": idea.line, "idea": idea.text, "model": str(getattr(generator, "name", "")),
        "kind": str(getattr(generator, "kind", "")), "seed": seed,
        "prompts": [{"prompt": g.prompt, "num_tokens": int(g.num_tokens), "finished": bool(g.finished)}
                    for g in gens],
        "settings": kept_settings,
    }


def generate_file(
    generator: Generator,
    ideas_file: str | Path,
    out: str | Path,
    *,
    n: int = 4,
    seed: int | None = None,
    settings: Mapping[str, Any] | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> BatchReport:
    """Write ``n`` prompts for every idea of ``ideas_file`` to the JSON-lines file ``out``, resumably.

    Args:
        generator: the model.
        ideas_file: text, one idea a line (blank lines skipped).
        out: the JSON-lines output (see the module's docstring for a record's fields).
        n: prompts per idea.
        seed: idea ``i`` (0-based) is sampled with ``seed + i``; a random seed per idea when None
            (each record keeps its own).
        settings: keyword arguments of :meth:`Generator.generate` other than ``idea``, ``n`` and
            ``seed`` (decoding settings, ``banned_words``, ``guidance``, ...).
        batch_size: ideas written (appended and synced to disk) at once; a kill loses at most these.
        progress: show a tqdm progress bar with ideas per second.

    Returns:
        a :class:`BatchReport` with this run's throughput.

    Raises:
        TextopiaError: before any generation: an unreadable ideas file, an ``out`` that cannot
            be the output (:func:`check_out`), bad settings, ``n`` < 1, or a partial output written
            from other ideas or settings; during it, an idea the model refuses (too long for it),
            named by its line, with the ideas before it written to the partial output.
    """
    from tqdm.auto import tqdm

    settings = dict(settings or {})
    check_batch_settings(n, batch_size, seed, settings)
    ideas = read_ideas(ideas_file)
    out = check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(out)
    settings_kept = record_settings(n, settings)
    model = str(getattr(generator, "name", ""))
    done = 0
    if partial.exists():
        done, size = _check_done(partial, ideas, model, settings_kept)
        if size < partial.stat().st_size:
            with open(partial, "r+b") as f:
                f.truncate(size)  # a torn last line: that idea is written again
    elif out.exists():
        done, _ = _check_done(out, ideas, model, settings_kept)
        if done < len(ideas):
            shutil.copyfile(out, partial)  # the ideas file has grown since: carry on from the finished file
        else:
            return BatchReport(ideas=len(ideas), written=0, skipped=done, prompts=0, seconds=0.0,
                               ideas_per_s=0.0, prompts_per_s=0.0, out=str(out))

    started = time.perf_counter()
    written = prompts = 0
    bar = tqdm(total=len(ideas), initial=done, unit="idea", desc="ideas", disable=not progress, smoothing=0.1)
    with open(partial, "ab") as f:
        for start in range(done, len(ideas), batch_size):
            lines = []
            failed = None
            for index in range(start, min(start + batch_size, len(ideas))):
                try:
                    record = idea_record(generator, ideas[index], idea_seed(seed, index), n, settings, settings_kept)
                except TextopiaError as e:  # this idea's own fault: the ideas before it are kept
                    failed = TextopiaError(f"{ideas_file}, line {ideas[index].line}: {e} (the {done + written + len(lines)} "
                                           f"ideas before it are written to {partial}; a rerun goes on from there)")
                    break
                lines.append(json.dumps(record, ensure_ascii=False) + "\n")
                prompts += len(record["prompts"])
                bar.update(1)
            f.write("".join(lines).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
            written += len(lines)
            if failed is not None:
                bar.close()
                raise failed
            seconds = time.perf_counter() - started
            bar.set_postfix(prompts_per_s=f"{prompts / seconds:.2f}" if seconds else "-")
    bar.close()
    os.replace(partial, out)
    seconds = time.perf_counter() - started
    return BatchReport(
        ideas=len(ideas), written=written, skipped=done, prompts=prompts, seconds=round(seconds, 3),
        ideas_per_s=round(written / seconds, 3) if seconds > 0 else 0.0,
        prompts_per_s=round(prompts / seconds, 3) if seconds > 0 else 0.0, out=str(out),
    )
