"""Textopia's benchmarks: one harness (:mod:`benchmarks.harness`), run as ``python -m benchmarks``
from the repository root. Recorded experiments that were not kept live in ``benchmarks/archive/``."""
