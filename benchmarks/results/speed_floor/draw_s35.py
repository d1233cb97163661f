"""The record of session 35's draw() measurement: the previous commit's draw (a float64 cumulative
sum over the whole vocabulary) against this checkout's (two levels from BLOCK_ROWS rows up), the
same tokens for the same uniforms and the time of a draw, in one process.

    git show e6b6919~1:src/textopia/generation/decoding.py > /tmp/old_decoding.py
    python benchmarks/results/speed_floor/draw_s35.py /tmp/old_decoding.py > benchmarks/results/speed_floor/draw_s35.txt
"""

import importlib.util
import sys
import time

import torch

import textopia
from textopia.generation import decoding as new

torch.set_num_threads(2)
spec = importlib.util.spec_from_file_location("old_decoding", sys.argv[1])
old = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)

mismatches = total = 0
for trial in range(300):
    g = torch.Generator().manual_seed(trial)
    v = [6, 200, 300, 1000, 8192, 8193][trial % 6]
    scores = torch.randn(32, v, generator=g) * (1 + 4 * torch.rand(32, 1, generator=g))
    scores[:, ::7] = -float("inf")
    probs = torch.softmax(scores, -1)
    for top_p in (1.0, 0.95, 0.5):
        a = old.draw(probs, torch.Generator().manual_seed(trial), top_p)
        b = new.draw(probs, torch.Generator().manual_seed(trial), top_p)
        mismatches += int((a != b).sum())
        total += a.numel()
print(f"tokens drawn differently: {mismatches} of {total}")

model = textopia.load("default")
context = torch.tensor([model.tokenizer.context_ids("woman portrait")] * 32)
logits = model.model(input_ids=context).logits[:, -1].float()
logits = logits + 0.5 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(0))
print("rows | previous draw (us) | this draw (us), top-p 0.95, temperature 0.9, 8,192 tokens, 300 draws")
for rows in (1, 2, 4, 8, 16, 32):
    probs = torch.softmax(logits[:rows] / 0.9, -1)
    times = []
    for module in (old, new):
        gen = torch.Generator().manual_seed(0)
        module.draw(probs, gen, 0.95)
        t0 = time.perf_counter()
        for _ in range(300):
            module.draw(probs, gen, 0.95)
        times.append((time.perf_counter() - t0) / 300 * 1e6)
    print(f"{rows} | {times[0]:.0f} | {times[1]:.0f}")
