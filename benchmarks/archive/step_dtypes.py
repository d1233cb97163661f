"""One decoding step of the shipped default's lean engine at 1, 8 and 32 rows (a cache of 12
positions, one torch thread), with its blocks' matrices in float16 (fbgemm), float32 or
bfloat16 (oneDNN) and the output layer in int8, three interleaved rounds.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/archive/step_dtypes.py``; prints ms per step.
"""

import time

import torch

import textopia
from textopia.models import gpt_engine as engine

torch.set_num_threads(1)
model = textopia.load("default").model
VARIANTS = {"mixed": "float16", "fp32+int8": "float32", "bf16+int8": "bfloat16"}


def step_ms(blocks: str, rows: int, steps: int = 40) -> float:
    """Pack the blocks in ``blocks`` and the output layer in int8 under the current weight dtype's
    key, then time ``steps`` one-token forwards over ``rows`` rows."""
    model._packed.clear()
    layers = []
    for i in range(model.config.n_layer):
        w = lambda n, i=i: model._w(f"transformer.h.{i}.{n}")  # noqa: E731
        layers.append((w("ln_1.weight"), w("ln_1.bias"), engine._Linear(w("attn.c_attn.weight"), w("attn.c_attn.bias"), blocks),
                       engine._Linear(w("attn.c_proj.weight"), w("attn.c_proj.bias"), blocks), w("ln_2.weight"),
                       w("ln_2.bias"), engine._Linear(w("mlp.c_fc.weight"), w("mlp.c_fc.bias"), blocks),
                       engine._Linear(w("mlp.c_proj.weight"), w("mlp.c_proj.bias"), blocks)))
    model._packed[model.weight_dtype] = (layers, engine._Linear(model._w("transformer.wte.weight").t(), None, "int8"))
    ids = torch.randint(100, 5000, (rows, 12))
    cache = model.new_cache(rows, 100)
    model(input_ids=ids, past_key_values=cache, use_cache=True)
    start = time.perf_counter()
    for _ in range(steps):
        model(input_ids=ids[:, -1:], past_key_values=cache, use_cache=True)
    return (time.perf_counter() - start) / steps * 1000


times: dict[tuple[str, int], list[float]] = {}
for _ in range(3):
    for name, blocks in VARIANTS.items():
        for rows in (1, 8, 32):
            times.setdefault((name, rows), []).append(step_ms(blocks, rows))
for (name, rows), values in sorted(times.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    print(f"rows={rows:3d} {name:10s} " + " ".join(f"{v:.2f}" for v in values) + " ms/step")
