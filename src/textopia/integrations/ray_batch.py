"""Prompts for a big file of ideas on a Ray cluster: ``textopia generate --ideas-file IDEAS --out OUT
--ray [ADDRESS]``, the same records as :func:`textopia.batch_generate.generate_file` writes.

::

    ideas.txt ─▶ shards of --batch-size ideas ─▶ a Ray Dataset, one row a shard
                 (idea i: seed + i)                  │ map_batches(ShardWriter, concurrency=workers):
                                                     ▼ one model per actor, one shard per call
                 OUT.shards/shard-000000.jsonl, shard-000001.jsonl, ...   (each written whole)
                                                     │ every shard there
                                                     ▼
                 concatenated in order ─▶ OUT (written whole) ; OUT.shards/ removed

Each record is made by :func:`textopia.batch_generate.idea_record` with the seed of
:func:`textopia.batch_generate.idea_seed`, as in the single-process run, so a seeded run writes
the same prompts here, whatever the number of workers and whichever worker wrote which shard.

A worker killed mid-shard is restarted by Ray Data and its shard retried (its actors' defaults:
``max_restarts=-1``, ``max_task_retries=-1``); a shard is written only when all its ideas are done,
so a retried one is written once. A run that stops anyway (the driver killed, retries used up) leaves
its finished shards in ``OUT.shards/``: the same command again checks them (same ideas, model and
settings, as a resume of the single-process run does) and writes only the others. ``OUT`` and its
shards may be local paths or fsspec URLs (``s3://...``) that every worker can write; the model is
an embedded name or a checkpoint directory that every worker can read.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textopia.batch_generate import (
    BatchReport,
    Idea,
    check_batch_settings,
    check_out,
    check_records,
    idea_record,
    idea_seed,
    read_ideas,
    record_settings,
)
from textopia.errors import TextopiaError
from textopia.generation.loader import DEFAULT_MODEL, embedded_models

SHARDS_SUFFIX = ".shards"


def require_ray():
    """The ``ray`` module, with Ray Data.

    Raises:
        TextopiaError: Ray Data is not installed (one line: how to install it).
    """
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is an extra of ray)
    except ImportError:
        raise TextopiaError("--ray needs Ray Data, which is not installed: pip install 'textopia[ray]' "
                            "(or pip install 'ray[data]>=2.9')") from None
    return ray


def shard_name(index: int) -> str:
    """The file name of shard ``index`` (0-based) in ``OUT.shards/``."""
    return f"shard-{index:06d}.jsonl"


def write_whole(fs: Any, path: str, data: bytes) -> None:
    """``data`` as the file ``path`` of the fsspec filesystem ``fs``, whole: written under a
    temporary name beside it (one per writer, so that a retried worker never shares it), then
    moved into place, so that a reader finds the whole file or none."""
    head, _, name = path.rpartition("/")
    tmp = f"{head}/.{name}.tmp-{uuid.uuid4().hex}" if head else f".{name}.tmp-{uuid.uuid4().hex}"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


class ShardWriter:
    """Ray Data's callable class: each actor loads the model once; each call writes whole shards.

    Args:
        model: an embedded model's name or a checkpoint directory (:func:`textopia.load`).
        name: the model's name in the records (what ``textopia.load`` names it on the driver).
        n: prompts per idea.
        settings: keyword arguments of :meth:`Generator.generate` other than ``idea``, ``n``, ``seed``.
        shards: the shards' folder (a path or an fsspec URL).
    """

    def __init__(self, model: str, name: str, n: int, settings: Mapping[str, Any], shards: str) -> None:
        import fsspec

        from textopia.generation.loader import load

        self.generator = load(model)
        self.generator.name = name  # a relative directory's name, though a worker loads it by its full path
        self.n = n
        self.settings = dict(settings)
        self.kept = record_settings(n, settings)
        self.fs, self.root = fsspec.core.url_to_fs(shards)

    def write_shard(self, shard: int, rows: list[list]) -> tuple[int, int]:
        """Write the records of ``rows`` (``[index, line, idea, seed]`` each) as shard ``shard``,
        whole: to a temporary name first, then renamed. Returns ``(ideas, prompts)``."""
        lines, prompts = [], 0
        for _index, line, text, seed in rows:
            record = idea_record(self.generator, Idea(int(line), str(text)), int(seed), self.n, self.settings,
                                 self.kept)
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
            prompts += len(record["prompts"])
        write_whole(self.fs, f"{self.root}/{shard_name(shard)}", "".join(lines).encode("utf-8"))
        return len(lines), prompts

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A batch of shards (columns ``shard``: int, ``ideas``: JSON of ``[index, line, idea, seed]``
        rows) -> one row per shard: ``shard``, ``ideas`` and ``prompts`` written."""
        import numpy as np

        done = {"shard": [], "ideas": [], "prompts": []}
        for shard, ideas in zip(batch["shard"], batch["ideas"]):
            count, prompts = self.write_shard(int(shard), json.loads(str(ideas)))
            done["shard"].append(int(shard))
            done["ideas"].append(count)
            done["prompts"].append(prompts)
        return {k: np.asarray(v, dtype=np.int64) for k, v in done.items()}


def _connect(ray, address: str | None) -> bool:
    """Join the Ray cluster at ``address`` (None or "": Ray's default: ``RAY_ADDRESS``, a cluster
    running on this machine, else a new local one) unless this process has joined one already.
    Returns whether it joined now (and so leaves it when done)."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address or None, log_to_driver=False)
    except ConnectionError as e:
        raise TextopiaError(f"--ray {address}: no Ray cluster there ({' '.join(str(e).split())[:200]}); start "
                            "one with `ray start --head`, or give --ray alone for a local one") from None
    return True


def generate_file_ray(
    model: str | Path | None,
    ideas_file: str | Path,
    out: str,
    *,
    n: int = 4,
    seed: int | None = None,
    settings: Mapping[str, Any] | None = None,
    batch_size: int = 16,
    address: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    writer: type = ShardWriter,
) -> BatchReport:
    """Write ``n`` prompts for every idea of ``ideas_file`` to the JSON-lines file ``out`` on Ray
    workers: the records :func:`textopia.batch_generate.generate_file` writes, in the same order.

    Args:
        model: an embedded model's name or a checkpoint directory, loaded by each worker.
        out: the output, a path or an fsspec URL; its shards go to ``out + ".shards"``.
        n, seed, settings: as for :func:`~textopia.batch_generate.generate_file` (idea ``i`` is
            sampled with ``seed + i``).
        batch_size: ideas per shard: a worker writes a shard at once, and a kill loses at most one
            shard's work per worker.
        address: the Ray cluster (``"auto"``, ``"ray://host:10001"``); None or "" for Ray's default.
        workers: actors, one model each (default: the cluster's CPUs, one each).
        progress: show a tqdm progress bar of ideas.
        writer: the callable class each actor runs (:class:`ShardWriter`, or one built on it).

    Returns:
        a :class:`~textopia.batch_generate.BatchReport`; its ``seconds`` include starting the
        workers and loading their models.

    Raises:
        TextopiaError: as :func:`~textopia.batch_generate.generate_file`, before any work; Ray
            Data is not installed; no cluster at ``address``; ``workers`` < 1.
    """
    import fsspec
    from tqdm.auto import tqdm

    ray = require_ray()
    settings = dict(settings or {})
    check_batch_settings(n, batch_size, seed, settings)
    if workers is not None and workers < 1:
        raise TextopiaError(f"--ray-workers must be >= 1, got {workers}")
    ideas = read_ideas(ideas_file)
    check_out(out)
    fs, out_path = fsspec.core.url_to_fs(str(out))
    name = str(model or DEFAULT_MODEL)  # the name textopia.load gives the generator, and its records
    model_dir = Path(name).expanduser()
    # A checkpoint directory by its full path: a worker's working directory is not this one.
    load_as = str(model_dir.resolve()) if name not in embedded_models() and model_dir.is_dir() else name
    kept = record_settings(n, settings)
    if fs.isfile(out_path):
        done, _ = check_records(fs.cat_file(out_path), out, ideas, name, kept)
        if done == len(ideas):
            return BatchReport(ideas=len(ideas), written=0, skipped=done, prompts=0, seconds=0.0,
                               ideas_per_s=0.0, prompts_per_s=0.0, out=str(out))
    shards = f"{out_path}{SHARDS_SUFFIX}"
    fs.makedirs(shards, exist_ok=True)
    starts = range(0, len(ideas), batch_size)
    pending, skipped = [], 0
    for shard, start in enumerate(starts):
        chunk = ideas[start:start + batch_size]
        path = f"{shards}/{shard_name(shard)}"
        if fs.isfile(path) and check_records(fs.cat_file(path), path, chunk, name, kept)[0] == len(chunk):
            skipped += len(chunk)  # finished by an earlier run
            continue
        rows = [[start + i, idea.line, idea.text, idea_seed(seed, start + i)] for i, idea in enumerate(chunk)]
        pending.append({"shard": shard, "ideas": json.dumps(rows, ensure_ascii=False)})

    started = time.perf_counter()
    written = prompts = 0
    if pending:
        joined = _connect(ray, address)
        try:
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False  # ours counts ideas
            workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            dataset = ray.data.from_items(pending, override_num_blocks=len(pending)).map_batches(
                writer, batch_size=1, concurrency=min(workers, len(pending)), num_cpus=1,
                fn_constructor_kwargs={"model": load_as, "name": name, "n": n, "settings": settings, "shards": shards},
            )
            bar = tqdm(total=len(ideas), initial=skipped, unit="idea", desc="ideas", disable=not progress)
            for row in dataset.iter_rows():
                written += int(row["ideas"])
                prompts += int(row["prompts"])
                bar.update(int(row["ideas"]))
            bar.close()
        finally:
            if joined:
                ray.shutdown()

    parts = []
    for shard, start in enumerate(starts):
        path, chunk = f"{shards}/{shard_name(shard)}", ideas[start:start + batch_size]
        data = fs.cat_file(path) if fs.isfile(path) else b""
        if check_records(data, path, chunk, name, kept)[0] != len(chunk):
            raise TextopiaError(f"shard {path} is incomplete after the run; run the same command again")
        parts.append(data)
    write_whole(fs, out_path, b"".join(parts))
    fs.rm(shards, recursive=True)
    seconds = time.perf_counter() - started
    return BatchReport(
        ideas=len(ideas), written=written, skipped=skipped, prompts=prompts, seconds=round(seconds, 3),
        ideas_per_s=round(written / seconds, 3) if seconds > 0 else 0.0,
        prompts_per_s=round(prompts / seconds, 3) if seconds > 0 else 0.0, out=str(out),
    )
