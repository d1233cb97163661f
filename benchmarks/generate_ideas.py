"""Throughput of ``textopia generate --ideas-file`` on 1,000 ideas, killed half-way and rerun.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python -m benchmarks.generate_ideas [--ideas benchmarks/ideas/derived_1000.txt]
        [--model default] [-n 1] [--kill-at 500] [--out benchmarks/results/generate_ideas]

The ideas file is derived once from the shared Discord corpus (1 to 4 subject words of prompts
from its second hundred-thousand lines, as training derives them; seed 0) and kept in the repo.
The first run is killed (SIGKILL, as a spot interruption or an OOM would) once ``--kill-at``
ideas are on disk; the second run resumes. The check: the finished file holds every idea once,
in order, and nothing else. Figures: ideas/s and prompts/s of each run's generation (model
loading excluded; the first run's from its progress on disk), each run's wall-clock time from
a cold process. Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import harness

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "sd-discord-2022" / "prompts.txt.gz"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ideas", type=Path, default=ROOT / "benchmarks/ideas/derived_1000.txt")
    parser.add_argument("--num-ideas", type=int, default=1000, help="ideas to derive when --ideas is missing")
    parser.add_argument("--model", default="default")
    parser.add_argument("-n", type=int, default=1, help="prompts per idea")
    parser.add_argument("--kill-at", type=int, default=500, help="kill the first run once this many ideas are written")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/generate_ideas")
    args = parser.parse_args()
    info = harness.machine()
    if not args.ideas.is_file():
        derive_ideas(args.ideas, args.num_ideas)
    ideas = [" ".join(line.split()) for line in args.ideas.read_text(encoding="utf-8").splitlines() if line.strip()]

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "prompts.jsonl"
        partial = out.with_name(out.name + ".partial")
        command = [sys.executable, "-m", "textopia.cli", "generate", "--ideas-file", str(args.ideas), "--out",
                   str(out), "--model", args.model, "-n", str(args.n), "--seed", "0", "--json"]
        # First run: killed once --kill-at ideas are on disk.
        started = time.monotonic()
        first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        first_gen_start = None  # when the first record reached the disk
        while first.poll() is None:
            written = count_lines(partial)
            if written and first_gen_start is None:
                first_gen_start = (time.monotonic(), written)
            if written >= args.kill_at:
                first.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        first.wait()
        first_wall = time.monotonic() - started
        killed_at = count_lines(partial)
        assert not out.exists(), "the first run finished before it was killed"
        if first_gen_start is None:
            raise SystemExit("the first run wrote nothing before it ended")
        first_rate = (killed_at - first_gen_start[1]) / (time.monotonic() - first_gen_start[0])

        # Second run: resumes.
        started = time.monotonic()
        second = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True)
        second_wall = time.monotonic() - started
        report = json.loads(second.stdout)
        records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert not partial.exists()

    written_ideas = [r["idea"] for r in records]
    each_once = written_ideas == ideas and len({r["line"] for r in records}) == len(records)
    results = {
        "machine": info,
        "command": " ".join(["textopia", *command[3:]]),
        "ideas": len(ideas),
        "prompts_per_idea": args.n,
        "first_run": {"killed_after_ideas": killed_at, "wall_s": round(first_wall, 2),
                      "ideas_per_s": round(first_rate, 3)},
        "second_run": {**report, "wall_s": round(second_wall, 2)},
        "records": len(records),
        "each_idea_once_in_order": each_once,
        "prompts": sum(len(r["prompts"]) for r in records),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    s = results["second_run"]
    md = [
        f"# `textopia generate --ideas-file` on {len(ideas)} ideas, killed and resumed",
        "",
        f"Machine: {info.get('cpu', info)}; `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}`.",
        f"Command: `{results['command']}`",
        "",
        "| run | ideas written | wall-clock (s) | ideas/s (generation) | prompts/s |",
        "|---|---:|---:|---:|---:|",
        f"| first, SIGKILLed | {killed_at} | {first_wall:.1f} | {first_rate:.2f} | {first_rate * args.n:.2f} |",
        f"| second, resumed | {s['written']} (skipped {s['skipped']}) | {second_wall:.1f} | {s['ideas_per_s']:.2f} | "
        f"{s['prompts_per_s']:.2f} |",
        "",
        f"Finished file: {len(records)} records; every idea once, in order: **{each_once}**.",
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))
    if not each_once:
        raise SystemExit("the resumed output does not hold every idea exactly once")


if __name__ == "__main__":
    main()
