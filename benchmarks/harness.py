"""One way to benchmark: a registry, one result schema and one writer.

A benchmark is a function of keyword options that returns its figures (a dict)::

    @benchmark("latency", smoke=dict(n=(1,), num_ideas=2))
    def run(model: str = "default", n: tuple[int, ...] = (1, 8), ...) -> dict:
        \"\"\"Warm latency of one `generate` call.\"\"\"  # first line: the description
        ...
        return {"rows": [...]}

The options and their defaults are the function's keyword arguments; ``smoke`` overrides them
with the smallest sizes that still run every line (seconds, for the tests). A benchmark that reads
a prepared corpus (``textopia prepare``'s folder: splits and tokenizer) that the repository does not
hold names the option with ``corpus="data_dir"``; the tests give it a small one built from
``../shared`` (``tests/conftest.py``'s ``prepared``). :func:`run` calls it
and wraps the figures in a :class:`Result` (options, machine, UTC time, git commit, seconds);
:func:`write` writes ``NAME.json`` and ``NAME.md`` atomically. ``python -m benchmarks --list``
lists what is registered (:data:`MODULES`, imported on first use).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Where a run writes unless told otherwise.
RESULTS = ROOT / "benchmarks" / "results"
#: The modules that register benchmarks (``benchmarks.<name>``), imported by :func:`registry`.
MODULES = ("quality", "speed", "latency", "blind_judging", "load", "soak", "diffusion_speed", "critic_samples",
           "generate_ideas", "train_speed", "latent_eval", "diffusion_eval", "pool", "new_clauses", "critic_speed",
           "judge_agreement", "request_cost")

_REGISTRY: dict[str, Benchmark] = {}


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: ``run(**options) -> figures``.

    Attributes:
        name: what ``python -m benchmarks NAME`` runs; also the results files' stem.
        description: one line (the run function's docstring's first line).
        run: the function; its keyword arguments are the options, their defaults the full size.
        smoke: the options that make it run in seconds (the tests' size), on top of the defaults.
        corpus: the option naming a prepared corpus the smoke size still needs (None: it needs none
            beyond the repository's ``benchmarks/smoke_data``).
    """

    name: str
    description: str
    run: Callable[..., dict[str, Any]]
    smoke: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    corpus: str | None = None

    @property
    def defaults(self) -> dict[str, Any]:
        """Every option and its default, from the run function's signature."""
        return {p.name: p.default for p in inspect.signature(self.run).parameters.values()
                if p.default is not inspect.Parameter.empty}

    def options(self, smoke: bool = False, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The defaults, then the smoke options (``smoke``), then ``overrides``; unknown names refused."""
        out = self.defaults
        for source in (self.smoke if smoke else {}), (overrides or {}):
            unknown = sorted(set(source) - set(out))
            if unknown:
                raise KeyError(f"{self.name}: no option {', '.join(unknown)} (options: {', '.join(out)})")
            out.update(source)
        return out


def benchmark(name: str, *, smoke: Mapping[str, Any] | None = None, corpus: str | None = None) -> Callable:
    """Register the decorated function as benchmark ``name`` (its docstring's first line describes it);
    ``corpus``: see :attr:`Benchmark.corpus`."""

    def register(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        if fn.__module__ == "__main__":  # a module run as a script (python -m benchmarks.NAME): the
            return fn                    # registry imports it again by its name and registers that copy
        if name in _REGISTRY and _REGISTRY[name].run is not fn:
            raise ValueError(f"benchmark {name!r} registered twice")
        description = (fn.__doc__ or "").strip().split("\n")[0]
        bench = Benchmark(name, description, fn, dict(smoke or {}), corpus)
        bench.options(smoke=True)  # a smoke option the function does not take fails at import
        if corpus is not None and corpus not in bench.defaults:
            raise ValueError(f"benchmark {name!r}: corpus={corpus!r} is not one of its options")
        _REGISTRY[name] = bench
        return fn

    return register


def registry() -> dict[str, Benchmark]:
    """Every registered benchmark by name, in :data:`MODULES` order."""
    for module in MODULES:
        importlib.import_module(f"benchmarks.{module}")
    return dict(_REGISTRY)


# --------------------------------------------------------------------------- the result


def machine() -> dict[str, Any]:
    """What a benchmark ran on: CPU model, cores, torch threads, GPU, load average (read at the start)."""
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def git_commit(root: Path = ROOT) -> str | None:
    """The checkout's commit (with ``+dirty`` when it has changes), or None outside a git checkout."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


@dataclasses.dataclass
class Result:
    """One run of one benchmark, as ``NAME.json`` holds it.

    Attributes:
        benchmark: the benchmark's name.
        options: every option the run used (defaults included).
        figures: what it measured (units in the key: ``_s`` seconds, ``_per_s`` per second, ``_mib``).
        machine: :func:`machine`, read before the run.
        timestamp: UTC start time, ISO 8601 to the second.
        commit: :func:`git_commit`, or None.
        seconds: wall-clock time of the whole run.
        details: what the figures came from (every prompt written, ...): in the JSON only.
    """

    benchmark: str
    options: dict[str, Any]
    figures: dict[str, Any]
    machine: dict[str, Any]
    timestamp: str
    commit: str | None
    seconds: float
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> Result:
        """The result a ``NAME.json`` holds (unknown or missing fields raise ``TypeError``)."""
        return cls(**json.loads(text))

    def to_json(self) -> str:
        from textopia.io import json_safe

        return json.dumps(json_safe(dataclasses.asdict(self)), indent=1, ensure_ascii=False) + "\n"


def run(name: str, *, smoke: bool = False, overrides: Mapping[str, Any] | None = None) -> Result:
    """Run benchmark ``name`` with its options (see :meth:`Benchmark.options`) into a :class:`Result`."""
    bench = registry()[name]
    options = bench.options(smoke, overrides)
    info = machine()
    timestamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    figures = dict(bench.run(**options))
    seconds = time.perf_counter() - start
    details = figures.pop("details", {})
    return Result(name, options, figures, info, timestamp, git_commit(), round(seconds, 3), details)


# --------------------------------------------------------------------------- the writer


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts flattened into ``a.b`` keys (for one table row)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _tables(figures: Mapping[str, Any], level: int) -> list[str]:
    """Scalars as one ``figure | value`` table; a list of dicts as a table of rows; a dict of
    dicts under its own heading."""
    scalars = {k: v for k, v in figures.items() if not isinstance(v, Mapping) and not _is_rows(v)}
    lines: list[str] = []
    if scalars:
        lines += ["| figure | value |", "|---|---:|", *(f"| {k} | {_cell(v)} |" for k, v in scalars.items()), ""]
    for key, value in figures.items():
        if _is_rows(value):
            rows = [_flat(r) for r in value]
            columns = list(dict.fromkeys(c for r in rows for c in r))
            lines += [f"{'#' * level} {key}", "", "| " + " | ".join(columns) + " |",
                      "|" + "|".join("---" for _ in columns) + "|"]
            lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows] + [""]
        elif isinstance(value, Mapping):
            lines += [f"{'#' * level} {key}", "", *_tables(value, min(level + 1, 6))]
    return lines


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def markdown(result: Result) -> str:
    """The result as Markdown: title, the machine line, the options, then the figures' tables."""
    m = result.machine
    options = " ".join(f"{k}={_cell(v)}" for k, v in result.options.items())
    lines = [f"# {result.benchmark}", "",
             f"Machine: {m.get('cpu')}, {m.get('cpus')} cores, torch {m.get('torch')} ({m.get('torch_threads')} "
             f"threads{', ' + m['gpu'] if m.get('gpu') else ''}), load average {m.get('load_average')}. "
             f"Run {result.timestamp} at commit {result.commit or 'unknown'} in {result.seconds:.1f} s.", "",
             f"Options: `{options}`", "", *_tables(result.figures, 2)]
    return "\n".join(lines).rstrip("\n") + "\n"


def write(result: Result, out_dir: str | Path = RESULTS) -> tuple[Path, Path]:
    """Write ``out_dir/NAME.json`` and ``out_dir/NAME.md``, each atomically; returns their paths."""
    from textopia.io import atomic_write_text

    out = Path(out_dir)
    paths = out / f"{result.benchmark}.json", out / f"{result.benchmark}.md"
    atomic_write_text(paths[0], result.to_json())
    atomic_write_text(paths[1], markdown(result))
    return paths


def parse_value(text: str, default: Any) -> Any:
    """``--set KEY=VALUE``'s value in the type of the option's default (lists: comma-separated;
    a default of None: JSON if it parses, else the text)."""
    if isinstance(default, bool):
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"not a boolean: {text!r}")
        return text.lower() in ("1", "true", "yes")
    if isinstance(default, (list, tuple)):
        items = [t for t in text.split(",") if t] if text else []
        kind = type(default[0]) if default else str
        return tuple(parse_value(t, kind()) for t in items)
    if isinstance(default, (int, float, str)):
        return type(default)(text)
    try:
        return json.loads(text)
    except ValueError:
        return text
