"""In CI a test that needs ../shared fails when it is missing, rather than skipping to a green run."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def _run(tmp_path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "TEXTOPIA_REQUIRE_SHARED")}
    environ.update(TEXTOPIA_SHARED=str(tmp_path / "no-shared"), **env)
    test = "tests/evaluation/test_clip_tokens.py::test_counts_match_reference_bpe_on_real_prompts"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=ROOT,
                          env=environ, capture_output=True, text=True, timeout=120)


def test_missing_shared_data_skips_locally_and_fails_in_ci(tmp_path):
    local = _run(tmp_path)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout
    for env in ({"CI": "true"}, {"TEXTOPIA_REQUIRE_SHARED": "1"}):
        ci = _run(tmp_path, **env)
        assert ci.returncode == 1 and "shared data not found" in ci.stdout and "1 error" in ci.stdout, ci.stdout
