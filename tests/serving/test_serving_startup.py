"""Startup with the CLIP counter and real models loading at once, in fresh processes.

The first imports of transformers and diffusers happen during startup, on the CLIP counter's
thread and the model store's; done by both at once they failed (``cannot import name
'PreTrainedTokenizerFast'``). Each run is a new process, since only a first import can race.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

# torch imported first and no default model: the store reaches transformers while the CLIP thread imports it.
_STARTUP = """
import time
import torch
from fastapi.testclient import TestClient
from textopia.serving.app import create_app
from textopia.serving.settings import ServingSettings

app = create_app(ServingSettings(load_default=False, models=["latent"], sagemaker_model_dir="/nonexistent"))
with TestClient(app) as client:
    clip, deadline = app.state.textopia.clip, time.monotonic() + 120
    while clip.state == "loading" and time.monotonic() < deadline:
        time.sleep(0.02)
    print(client.get("/readyz").status_code, clip.state, *app.state.textopia.store.names())
"""


def test_startup_imports_never_race(tmp_path) -> None:
    if not (ROOT / "src" / "textopia" / "assets" / "latent" / "config.json").is_file():
        pytest.skip("the embedded latent model is not in this checkout")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env = {k: v for k, v in env.items() if not k.startswith("TEXTOPIA_")}
    for _ in range(2):  # 4 starts, 2 at a time
        procs = [subprocess.Popen([sys.executable, "-c", _STARTUP], cwd=tmp_path, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-3000:]
            assert out.split() == ["200", "ready", "latent"], err[-3000:]
