"""Decoding speed of the shipped models, side by side in one run on the same weights and settings.

Usage (from the repository root)::

    python -m benchmarks speed [--set models=default,lstm repeats=5 baseline_rev=e2dd2c2]
        [--out benchmarks/results]

Rows, for each model (``new_tokens`` = 48 new tokens per prompt, EOS suppressed so every engine writes the same
number of tokens; top-p 0.95, temperature 0.9, no reranking):

- ``textopia``: :meth:`Generator.generate` on the default engine (for GPT-2 checkpoints the lean
  engine of :mod:`textopia.models.gpt_engine`, with its default "mixed" weights: float16 blocks,
  an int8 output layer);
- ``textopia (float16 weights)``, ``textopia (float32 weights)``: the lean engine with its other
  weight dtypes (float32: transformers' logits exactly);
- ``textopia (transformers model)``: the same Generator over transformers' model
  (``load(engine="transformers")``), our sampling loop;
- ``transformers generate``: ``model.generate`` of transformers on the same weights;
- ``floor (weights streamed ...)``: the time to stream the weights from memory once per token
  (bytes x 48 over the memory bandwidth measured here with a large copy);
- ``floor (the forward's matmuls ...)``: the compute floor, the forward's matrix products timed
  with ``torch.mm`` at the model's shapes (:func:`matmul_floor_s`), with the GFLOP/s they reach;
  each textopia row gets ``batchB_x_floor``, its time over that floor;
- ``floor (the same matmuls in the forward's order ...)``: those products timed as a forward runs
  them, a weight of its own each (``matmul_floor_s(..., in_order=True)``): the floor with the
  weights' trips through the caches that decoding makes; ``batchB_x_ordered_floor`` over it.

Batch 1 and batch 32 (``batches``) seconds are medians over ``repeats`` seeds. The cold start is the whole
``textopia generate "woman portrait" -n 4`` CLI call from a new process, for this checkout and for
``baseline_rev`` (a temporary git worktree of that revision, run with its own sources): the
ratio is measured in the same run, and so is the warm latency of one and of eight prompts with
every default setting (reranking on) in both. With ``load_clients``, the HTTP service under
load too (:mod:`benchmarks.load` at those client counts, 2 prompts per request, 20 s and 400 requests
per level; its levels are copied under ``service``). Writes ``speed.json`` and ``speed.md``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import ROOT, benchmark

SETTINGS = {"temperature": 0.9, "top_p": 0.95, "top_k": 0, "repetition_penalty": 1.0, "min_p": 0.0}


def _median_time(fn, repeats: int) -> float:
    fn(0)  # warm-up
    times = []
    for seed in range(1, repeats + 1):
        t0 = time.perf_counter()
        fn(seed)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def memory_bandwidth_bytes_per_s() -> float:
    import torch

    x = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB, past the caches
    y = torch.empty_like(x)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        y.copy_(x)
        best = min(best, time.perf_counter() - t0)
    return 2 * x.numel() * 4 / best  # read + write


def matmul_floor_s(config, batch: int, new_tokens: int, repeats: int = 20, in_order: bool = False) -> tuple[float, float]:
    """The compute floor of decoding ``new_tokens`` tokens for ``batch`` rows with a GPT-2 of
    ``config`` (an :class:`~textopia.models.gpt_engine.EngineConfig`) on this CPU: ``(seconds,
    GFLOP/s)``. Each token's forward is, per layer, four float32 matrix products of ``batch`` rows
    (``d x 3d``, ``d x d``, ``d x 4d``, ``4d x d``) and the output layer's ``d x V``; their time is
    measured with ``torch.mm`` at those shapes (best of ``repeats``) and summed over the tokens.
    Attention over the cache, layer norms and sampling are left out: the floor is what the
    arithmetic alone costs, the engine's time over it the overhead left.

    By default each shape is timed alone, its one weight read again and again (so from the core's
    own cache). ``in_order``: one token's products are timed together, a weight of its own for
    each, in the order a forward runs them, so that each weight comes from wherever the others
    left it, as in decoding (the default's 21 MB of float32 weights pass through a 2 MB cache
    per core every token): the floor of the same work with its memory traffic."""
    import torch

    d, layers, vocab = config.n_embd, config.n_layer, config.vocab_size
    shapes = [(d, 3 * d), (d, d), (d, 4 * d), (4 * d, d)] * layers + [(d, vocab)]
    if in_order:
        operands = [(torch.randn(batch, k), torch.randn(k, n), torch.empty(batch, n)) for k, n in shapes]
        best = float("inf")
        for _ in range(repeats + 1):  # the first pass warms the allocator and the kernels
            t0 = time.perf_counter()
            for x, w, out in operands:
                torch.mm(x, w, out=out)
            best = min(best, time.perf_counter() - t0)
        flops = sum(2 * batch * k * n for k, n in shapes)
        return new_tokens * best, flops / best / 1e9
    total, flops = 0.0, 0
    for k, n in dict.fromkeys(shapes):
        x, w = torch.randn(batch, k), torch.randn(k, n)
        out = torch.empty(batch, n)
        torch.mm(x, w, out=out)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(x, w, out=out)
            best = min(best, time.perf_counter() - t0)
        count = shapes.count((k, n))
        total += count * best
        flops += count * 2 * batch * k * n
    return new_tokens * total, flops / total / 1e9


def bench_model(name: str, repeats: int, new_tokens: int, batches: tuple[int, ...]) -> list[dict]:
    import torch

    import textopia

    settings = {**SETTINGS, "max_new_tokens": new_tokens, "min_new_tokens": new_tokens}
    rows = []
    fast = textopia.load(name)
    slow = textopia.load(name, engine="transformers")
    engines = [("textopia", fast)]
    if hasattr(fast.model, "set_weight_dtype"):
        engines += [(f"textopia ({dt} weights)", textopia.load(name, weight_dtype=dt)) for dt in ("float16", "float32")]
    engines.append(("textopia (transformers model)", slow))
    for label, gen in engines:
        if label == "textopia (transformers model)" and type(gen.model) is type(fast.model):
            continue  # no separate engine for this model kind
        row = {"model": name, "engine": label, "backend": type(gen.model).__name__}
        for batch in batches:
            row[f"batch{batch}_s"] = _median_time(
                lambda seed, b=batch, g=gen: g.generate("woman portrait", n=b, seed=seed, rerank=False, **settings),
                repeats)
        rows.append(row)
    hf = slow.model
    if hasattr(hf, "generate"):
        tok = slow.tokenizer
        context = torch.tensor([tok.context_ids("woman portrait")])

        def hf_generate(seed: int, batch: int) -> None:
            torch.manual_seed(seed)
            hf.generate(context.expand(batch, -1), attention_mask=torch.ones_like(context).expand(batch, -1),
                        do_sample=True, temperature=0.9, top_p=0.95, max_new_tokens=new_tokens,
                        min_new_tokens=new_tokens, pad_token_id=tok.pad_id, eos_token_id=tok.eos_id)

        rows.append({"model": name, "engine": "transformers generate", "backend": type(hf).__name__,
                     **{f"batch{b}_s": _median_time(lambda s, b=b: hf_generate(s, b), repeats) for b in batches}})
    weight_bytes = sum(p.numel() * p.element_size() for p in fast.model.parameters())
    rows.append({"model": name, "engine": "floor (weights streamed once per token)", "backend": "-",
                 f"batch{batches[0]}_s": new_tokens * weight_bytes / memory_bandwidth_bytes_per_s(),
                 "weight_mb": weight_bytes / 1e6})
    config = getattr(fast.model, "config", None)
    if config is not None and hasattr(config, "n_embd"):  # the lean GPT engine: the floor of its arithmetic
        floor = {"model": name, "engine": "floor (the forward's matmuls, torch.mm at the model's shapes)", "backend": "-"}
        ordered = {"model": name, "engine": "floor (the same matmuls in the forward's order, each weight once per token)",
                   "backend": "-"}
        for batch in batches:
            seconds, gflops = matmul_floor_s(config, batch, new_tokens)
            floor[f"batch{batch}_s"], floor[f"batch{batch}_gflop_per_s"] = seconds, gflops
            seconds, gflops = matmul_floor_s(config, batch, new_tokens, in_order=True)
            ordered[f"batch{batch}_s"], ordered[f"batch{batch}_gflop_per_s"] = seconds, gflops
        rows += [floor, ordered]
        for r in rows:
            if r["engine"].startswith("textopia"):
                for batch in batches:
                    r[f"batch{batch}_x_floor"] = r[f"batch{batch}_s"] / floor[f"batch{batch}_s"]
                    r[f"batch{batch}_x_ordered_floor"] = r[f"batch{batch}_s"] / ordered[f"batch{batch}_s"]
    top = max(batches)
    for r in rows:
        if r.get(f"batch{top}_s"):
            r[f"prompts_per_s_batch{top}"] = top / r[f"batch{top}_s"]
    return rows


def cold_start(src: Path | None, repeats: int) -> float:
    """Median seconds of `textopia generate "woman portrait" -n 4` in a new process."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    # What the `textopia` console script runs: cli.entry where the revision has it, else main.
    cmd = [sys.executable, "-c", "import sys, textopia.cli as c; sys.exit(getattr(c, 'entry', c.main)())",
           "generate", "woman portrait", "-n", "4", "--seed", "0"]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=tempfile.gettempdir())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


_LATENCY = """
import statistics, sys, time, textopia
repeats = int(sys.argv[1])
g = textopia.load()
g.generate("woman portrait", n=1, seed=0)
out = {}
for n in (1, 8):
    times = []
    for seed in range(1, repeats + 1):
        t0 = time.perf_counter()
        g.generate("woman portrait", n=n, seed=seed)
        times.append(time.perf_counter() - t0)
    out[n] = statistics.median(times)
print(out[1], out[8])
"""


def warm_latency(src: Path, repeats: int) -> dict[str, float]:
    """Median seconds of ``generate("woman portrait", n)`` with every default (reranking on), n = 1
    and 8, over ``repeats`` seeds, in a process running the sources in ``src``, after one warm-up call."""
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run([sys.executable, "-c", _LATENCY, str(repeats)], check=True, capture_output=True, text=True,
                         env=env, cwd=tempfile.gettempdir())
    one, eight = (float(x) for x in out.stdout.split()[-2:])
    return {"one_prompt_s": one, "eight_prompts_s": eight}


@benchmark("speed", smoke=dict(repeats=1, cold_repeats=1, latency_repeats=1, baseline_rev="", load_clients=(),
                               new_tokens=8, batches=(1, 2)))
def run(models: tuple[str, ...] = ("default",), repeats: int = 5, cold_repeats: int = 3, latency_repeats: int = 5,
        baseline_rev: str = "e2dd2c2", load_clients: tuple[int, ...] = (1, 16, 64), new_tokens: int = 48,
        batches: tuple[int, ...] = (1, 32)) -> dict:
    """Decoding speed of the shipped models on every engine, cold start and warm latency against a baseline revision.

    ``baseline_rev``: "" for no baseline; ``load_clients``: () to leave out the service under load.
    """
    rows = [r for m in models for r in bench_model(m, repeats, new_tokens, batches)]
    cold = {"this checkout": cold_start(ROOT / "src", cold_repeats)}
    latency = {"this checkout": warm_latency(ROOT / "src", latency_repeats)}
    if baseline_rev:
        with tempfile.TemporaryDirectory() as tmp:
            wt = Path(tmp) / "baseline"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(wt), baseline_rev],
                           check=True, capture_output=True)
            try:
                cold[f"baseline {baseline_rev}"] = cold_start(wt / "src", cold_repeats)
                latency[f"baseline {baseline_rev}"] = warm_latency(wt / "src", latency_repeats)
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)], capture_output=True)
    cold_rows = [{"checkout": k, "cold_generate_n4_s": v} for k, v in cold.items()]
    if baseline_rev:
        cold_rows.append({"checkout": "ratio (this / baseline)",
                          "cold_generate_n4_s": cold["this checkout"] / cold[f"baseline {baseline_rev}"]})
    out = {"new_tokens": new_tokens, "settings": SETTINGS, "decoding": rows, "cold_start": cold_rows,
           "default_settings_warm_latency": [{"checkout": k, **v} for k, v in latency.items()]}
    if load_clients:
        from benchmarks import load

        service = load.run(concurrency=load_clients, duration_s=20.0, max_requests=400)
        out["service"] = [{k: lv[k] for k in ("concurrency", "requests_per_s", "errors")}
                          | {"p50_s": lv["latency_s"]["p50"], "p99_s": lv["latency_s"]["p99"]}
                          for lv in service["levels"]]
    return out
