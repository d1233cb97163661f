"""The models a running service holds: loading them at startup and finding one by name.

The service only knows the :class:`~textopia.generation.base.Generator` interface; models are
loaded through ``textopia.load`` (imported lazily, at startup, never at import time).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textopia.generation.base import Generator, LatentGenerator, TextopiaError
from textopia.io import json_safe
from textopia.serving.settings import ServingSettings

logger = logging.getLogger(__name__)


class ModelNotFound(LookupError):
    """A request named a model that is not loaded (answered 404)."""


class NotLatent(ValueError):
    """A latent-space view was asked of a model without a latent space (answered 400)."""


@dataclass
class LoadedModel:
    """One loaded model and what it says of itself (JSON-safe)."""

    name: str
    generator: Generator
    info: dict[str, Any] = field(default_factory=dict)
    batcher: Any = None  # a MicroBatcher when requests to this model are decoded together
    spec: str | None = None  # what textopia.load loaded it by (None: given, or loaded otherwise)

    @property
    def kind(self) -> str:
        return str(getattr(self.generator, "kind", "unknown"))

    @property
    def latent(self) -> bool:
        return isinstance(self.generator, LatentGenerator)

    @property
    def parameters(self) -> int | None:
        """Parameter count, read from :meth:`Generator.info` under any of its usual names."""
        for key in ("parameters", "num_parameters", "n_params", "params"):
            value = self.info.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None


class ModelStore:
    """The loaded models by name, and the default one.

    Args:
        generators: the models, by the name requests use.
        default: the model used when a request names none; the first one when None.

    Raises:
        ModelNotFound: ``default`` is not among ``generators``.
    """

    def __init__(self, generators: Mapping[str, Generator], default: str | None = None) -> None:
        self.models: dict[str, LoadedModel] = {}
        for name, generator in generators.items():
            try:
                info = json_safe(dict(generator.info()))
            except Exception:  # a broken info() must not keep the model from serving
                logger.exception("info() failed for model %s", name)
                info = {}
            self.models[name] = LoadedModel(name=name, generator=generator, info=info)
        if default is not None and default not in self.models:
            raise ModelNotFound(f"default model {default!r} is not loaded; loaded: {self.names()}")
        self.default = default if default is not None else next(iter(self.models), None)

    def names(self) -> list[str]:
        return list(self.models)

    def get(self, name: str | None) -> LoadedModel:
        """The model called ``name``, or the default one for None.

        Raises:
            ModelNotFound: no such model is loaded.
        """
        key = self.default if name is None else name
        if key is None or key not in self.models:
            raise ModelNotFound(f"model {name!r} is not loaded; loaded models: {self.names()}")
        return self.models[key]

    def get_latent(self, name: str | None) -> LoadedModel:
        """The latent model called ``name``, or the first latent model for None.

        Raises:
            ModelNotFound: no such model, or no latent model at all, is loaded.
            NotLatent: the model named has no latent space.
        """
        if name is None:
            for model in self.models.values():
                if model.latent:
                    return model
            raise ModelNotFound("no model with a latent space (a VAE) is loaded")
        model = self.get(name)
        if not model.latent:
            raise NotLatent(f"model {name!r} (kind {model.kind}) has no latent space")
        return model


def _model_key(spec: str, generator: Generator, taken: Mapping[str, Any]) -> str:
    """The name requests use: the generator's name, or the checkpoint directory's base name."""
    name = str(getattr(generator, "name", "") or spec)
    if "/" in name or "\\" in name:
        name = Path(name.rstrip("/\\")).name or name
    key, i = name, 2
    while key in taken:
        key, i = f"{name}-{i}", i + 1
    return key


def model_specs(settings: ServingSettings, default_name: str | None, latent_name: str | None = None) -> list[str]:
    """What to load, in order: the embedded default, the embedded latent model (the latent views'
    default), the named models, SageMaker's model dir."""
    specs: list[str] = []
    if settings.load_default and default_name:
        specs.append(default_name)
    if settings.load_latent and latent_name:
        specs.append(latent_name)
    specs.extend(settings.models)
    sagemaker_dir = settings.sagemaker_model_dir
    if (sagemaker_dir / "config.json").is_file():
        specs.append(str(sagemaker_dir))
    return list(dict.fromkeys(specs))


def load_store(
    settings: ServingSettings, load: Callable[[str], Generator] | None = None
) -> ModelStore:
    """Load every model that ``settings`` names (blocking; seconds per model).

    Args:
        settings: the service's settings.
        load: the loader, ``textopia.load`` when None (imported here, not at module import).

    A missing embedded default is skipped with a warning when other models are named; any other
    failure stops the service from starting.

    Raises:
        TextopiaError: a named model is unknown or its checkpoint is broken, or nothing is named.
        RuntimeError: the core package (``textopia.load``) is not installed.
    """
    default_name: str | None = None
    latent_name: str | None = None
    if load is None:
        try:
            import textopia
        except ImportError as exc:  # pragma: no cover - the core package ships with the service
            raise RuntimeError("the textopia core package is not importable") from exc
        load = getattr(textopia, "load", None)
        default_name = getattr(textopia, "DEFAULT_MODEL", None)
        latent_name = getattr(textopia, "LATENT_MODEL", None)
        if load is None:
            raise RuntimeError("textopia.load is missing: the core package is incomplete")
    specs = model_specs(settings, default_name, latent_name)
    if not specs:
        raise TextopiaError(
            "no model to serve: set TEXTOPIA_LOAD_DEFAULT=true or name checkpoints with "
            "--models / TEXTOPIA_MODELS"
        )
    generators: dict[str, Generator] = {}
    keys: dict[str, str] = {}
    for spec in specs:
        logger.info("loading model %s", spec)
        try:
            generator = load(spec)
        except TextopiaError as exc:
            # The embedded models may be missing (a development checkout): the latent one is
            # optional; without the default, the models the user named serve (and one must be named).
            optional = spec == latent_name or (spec == default_name and any(m not in (default_name, latent_name)
                                                                              for m in specs))
            if spec in settings.models or not optional:
                raise
            logger.warning("skipping the embedded model %s: %s", spec, exc)
            continue
        key = _model_key(spec, generator, generators)
        generators[key] = generator
        keys[spec] = key
        logger.info("loaded model %s as %r (kind %s)", spec, key, getattr(generator, "kind", "?"))
    default = settings.default_model
    if default is not None:
        default = keys.get(default, default)
    elif default_name in keys:
        default = keys[default_name]
    else:  # no embedded default: the first model that was named, rather than the latent views' model
        default = next((key for spec, key in keys.items() if spec != latent_name), None)
    store = ModelStore(generators, default=default)
    if load is getattr(sys.modules.get("textopia"), "load", None):  # another process can load it again
        for spec, key in keys.items():
            store.models[key].spec = spec
    return store


def attach_batchers(store: "ModelStore", settings: ServingSettings) -> list:
    """Give every model that can decode requests together a :class:`MicroBatcher` (when the
    settings' ``batch_window_ms`` is above 0); returns them, to close at shutdown. The default
    model's batch workers decode in child processes (``batch_processes``, on a CPU, where the
    store knows what it was loaded by), each started here and ready when this returns; where one
    does not start, that model's batches decode on threads, as without ``batch_processes``."""
    from textopia.serving.batcher import MicroBatcher

    batchers = []
    if settings.batch_window_ms <= 0:
        return batchers
    import torch

    workers, threads, cpu = settings.batch_workers, None, not torch.cuda.is_available()
    if workers > 1 and cpu:  # the batches share the cores instead of each taking them all
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cpus // workers)  # sched_getaffinity: Linux's usable cores; macOS has only cpu_count
        logger.info("decoding %d batches at a time, %d torch thread(s) each", workers, threads)
    for name in store.names():
        model = store.get(name)
        if not callable(getattr(model.generator, "generate_batch", None)):
            continue
        backends = None
        if settings.batch_processes and cpu and name == store.default and model.spec is not None:
            from textopia.serving.decode_worker import ProcessDecoder, WorkerDied

            backends = [ProcessDecoder(model.spec, torch_threads=threads, start=False) for _ in range(workers)]
            try:
                start_all(backends)
                logger.info("decoding %s's batches in %d processes (%s)", name, workers,
                            ", ".join(str(b.pid) for b in backends))
            except WorkerDied as exc:  # the service still serves, on threads of its own process
                for backend in backends:
                    backend.close()
                backends = None
                logger.warning("%s; decoding %s's batches on threads instead", exc, name)
        model.batcher = MicroBatcher(model.generator, window_s=settings.batch_window_ms / 1000,
                                     max_rows=settings.max_batch_rows, workers=workers, torch_threads=threads,
                                     backends=backends, brownout_pool=settings.brownout_pool or None)
        batchers.append(model.batcher)
    return batchers


def start_all(backends: list) -> None:
    """Start every :class:`~textopia.serving.decode_worker.ProcessDecoder`'s child at once (each
    loads its model: seconds) and wait for them all.

    Raises:
        WorkerDied: one did not start.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(backends)) as pool:
        for done in [pool.submit(b.start) for b in backends]:
            done.result()
