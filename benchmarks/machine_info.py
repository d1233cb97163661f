"""What a benchmark ran on: CPU model, cores, torch threads, GPU, load; shared by the benchmarks."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """The machine's description for a benchmark's results (read at the start of a run)."""
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


def write_results(out: str | Path, result: dict[str, Any], title: str, table: list[str]) -> str:
    """Write ``<out>.json`` (``result``, which holds "command" and "machine") and ``<out>.md``
    (``title``, the machine and command line, then the ``table`` lines); returns the markdown."""
    import json

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    m = result["machine"]
    lines = [f"# {title}", "", f"Machine: {m['cpu']}, {m['cpus']} cores, torch {m['torch']} "
             f"({m['torch_threads']} threads). Command: `{result['command']}`", "", *table]
    text = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(text)
    return text
