"""Throughput of ``textopia generate --ideas-file`` on 1,000 ideas, killed half-way and rerun.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python -m benchmarks generate_ideas [--set ideas_file=benchmarks/ideas/derived_1000.txt
        num_ideas=1000 model=default n=1 kill_at=500 batch_size=16] [--out benchmarks/results]

The ideas file is derived once from the shared Discord corpus (1 to 4 subject words of prompts
from its second hundred-thousand lines, as training derives them; seed 0; :func:`derive_ideas`,
run when ``ideas_file`` is missing) and kept in the repo; the run reads its first ``num_ideas``.
The first run is killed (SIGKILL, as a spot interruption or an OOM would) once ``kill_at`` ideas
are on disk; the second run resumes. The check: the finished file holds every idea once, in
order, and nothing else (a run that fails it raises). Figures: ideas/s and prompts/s of each
run's generation (model loading excluded; the first run's from its progress on disk), each run's
wall-clock time from a cold process (seconds). Writes ``generate_ideas.json`` and ``.md``.
"""

from __future__ import annotations

import gzip
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import benchmark

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "sd-discord-2022" / "prompts.txt.gz"
IDEAS = ROOT / "benchmarks" / "ideas"


def derive_ideas(path: Path, count: int, skip: int = 100_000, seed: int = 0) -> None:
    """Write ``count`` distinct ideas derived from corpus prompts after the first ``skip`` lines."""
    from textopia.data.ideas import derive_idea

    rng = random.Random(seed)
    ideas: dict[str, None] = {}
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i < skip:
                continue
            idea = derive_idea(" ".join(line.split()), rng)
            if idea:
                ideas.setdefault(idea.lower(), None)
            if len(ideas) >= count:
                break
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{idea}\n" for idea in ideas), encoding="utf-8")


def count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def killed_run(command: list[str], partial: Path, kill_at: int) -> dict:
    """Start ``command`` and SIGKILL it once ``kill_at`` ideas are in ``partial``: what it wrote and how fast."""
    started = time.monotonic()
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_record = None  # (when, how many) the first records reached the disk
    while first.poll() is None:
        written = count_lines(partial)
        if written and first_record is None:
            first_record = (time.monotonic(), written)
        if written >= kill_at:
            first.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    first.wait()
    killed_at = count_lines(partial)
    if first.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the first run ended (exit {first.returncode}) before it was killed: lower kill_at")
    if first_record is None or killed_at == first_record[1]:
        raise RuntimeError("the first run wrote one batch or none before it was killed: raise kill_at")
    return {"killed_after_ideas": killed_at, "wall_s": round(time.monotonic() - started, 2),
            "ideas_per_s": round((killed_at - first_record[1]) / (time.monotonic() - first_record[0]), 3)}


@benchmark("generate_ideas", smoke=dict(ideas_file=str(IDEAS / "user_ideas.txt"), num_ideas=8, kill_at=2, batch_size=1))
def run(ideas_file: str = str(IDEAS / "derived_1000.txt"), num_ideas: int = 1000, model: str = "default", n: int = 1,
        kill_at: int = 500, batch_size: int = 16) -> dict:
    """Throughput of `textopia generate --ideas-file`, killed half-way (SIGKILL) and resumed.

    ``num_ideas``: the first that many of ``ideas_file`` (derived from the shared corpus when the
    file is missing); ``n``: prompts per idea; ``kill_at``: ideas on disk when the first run is
    killed; ``batch_size``: ideas written to disk at once (``--batch-size``).
    """
    path = Path(ideas_file)
    if not path.is_file():
        derive_ideas(path, num_ideas)
    ideas = [" ".join(line.split()) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    ideas = ideas[:num_ideas]
    with tempfile.TemporaryDirectory() as tmp:
        ideas_path = Path(tmp) / "ideas.txt"
        ideas_path.write_text("".join(f"{idea}\n" for idea in ideas), encoding="utf-8")
        out = Path(tmp) / "prompts.jsonl"
        command = [sys.executable, "-m", "textopia.cli", "generate", "--ideas-file", str(ideas_path), "--out",
                   str(out), "--model", model, "-n", str(n), "--seed", "0", "--batch-size", str(batch_size), "--json"]
        first = killed_run(command, out.with_name(out.name + ".partial"), kill_at)
        started = time.monotonic()
        second = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True)
        second_wall = time.monotonic() - started
        report = json.loads(second.stdout)
        records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    each_once = [r["idea"] for r in records] == ideas and len({r["line"] for r in records}) == len(records)
    if not each_once:
        raise RuntimeError("the resumed output does not hold every idea exactly once, in order")
    return {
        "command": " ".join(["textopia", *command[3:]]).replace(str(ideas_path), ideas_file),
        "ideas": len(ideas), "prompts_per_idea": n,
        "runs": [{"run": "first, SIGKILLed", "ideas_written": first["killed_after_ideas"], "wall_s": first["wall_s"],
                  "ideas_per_s": first["ideas_per_s"], "prompts_per_s": first["ideas_per_s"] * n},
                 {"run": "second, resumed", "ideas_written": report["written"], "skipped": report["skipped"],
                  "wall_s": round(second_wall, 2), "ideas_per_s": report["ideas_per_s"],
                  "prompts_per_s": report["prompts_per_s"]}],
        "records": len(records), "each_idea_once_in_order": each_once,
        "prompts": sum(len(r["prompts"]) for r in records),
    }
