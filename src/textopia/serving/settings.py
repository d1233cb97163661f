"""Settings of the HTTP service, read from ``TEXTOPIA_*`` environment variables.

Every field can be set by an environment variable named ``TEXTOPIA_`` plus the field's name in
capitals, for example ``TEXTOPIA_MAX_CONCURRENCY=2`` or
``TEXTOPIA_MODELS=runs/gpt-small,runs/vae`` (a comma-separated list or a JSON list).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from textopia.generation.config import MAX_ROWS


class ServingSettings(BaseSettings):
    """How the service runs: what it loads, where it listens, and the limits that keep it up.

    Attributes:
        host: address to listen on; ``127.0.0.1`` by default, ``0.0.0.0`` in the container.
        port: TCP port to listen on (8080 in the container, as SageMaker expects).
        models: checkpoint directories (or embedded model names) to load besides the default.
        load_default: load the embedded default model (``textopia.DEFAULT_MODEL``).
        load_latent: load the embedded latent model (``textopia.LATENT_MODEL``), which the latent
            views (reconstruct, interpolate, variations) use when a request names no model.
        default_model: the model used when a request names none; the embedded default (or the
            first model loaded) when unset.
        sagemaker_model_dir: loaded too when it holds a checkpoint (``config.json``): SageMaker
            unpacks a model's artifacts there.
        max_concurrency: generations that run at the same time (worker threads). Values above 1
            need a thread-safe Generator; on a small CPU one is usually fastest.
        queue_size: requests allowed to wait for a worker; beyond it the service answers 503.
        batch_window_ms: how long the first of a batch of generate requests waits for others to
            decode together (:class:`~textopia.serving.batcher.MicroBatcher`), in milliseconds;
            0 decodes each request alone.
        batch_requests: requests that can wait in one batch (the limiter's threads when batching).
        max_batch_rows: sampled rows per batch at most (n prompts with reranking are n · candidates rows).
        batch_workers: batches decoded at the same time on the CPU, each on its own thread with
            ``cpus // batch_workers`` torch threads (see :class:`~textopia.serving.batcher.MicroBatcher`).
        batch_processes: on a CPU, decode the default model's batches in child processes, one per
            batch worker (:class:`~textopia.serving.decode_worker.ProcessDecoder`: each loads the
            model again, about 0.4 GiB of memory each), not on threads of the service's process
            that wait on each other for Python's lock; applies to a model loaded by name or path.
        brownout_pool: the fewest candidates a one-prompt request draws while requests wait for
            a batch worker (:class:`~textopia.serving.batcher.MicroBatcher`'s
            brownout): more requests share a batch and each waits less; 0 keeps every model's
            ``min_pool`` (32 for the language models, 16 for latent diffusion) under any load.
        request_timeout_s: the longest a request may wait and run, in seconds; then 504. A JSON-lines
            call has one such deadline for all its lines; lines not answered by then are answered 504.
        max_request_rows: sampled rows (n × candidates, summed over the lines) one JSON-lines call may
            ask for; then 413. The default is one request's most (16 × 64).
        max_request_tokens: tokens (rows × max_new_tokens, summed over the lines) one JSON-lines call
            may ask for; then 413. The default is one request's most (16 × 64 × 128).
        retry_after_s: the ``Retry-After`` value sent with a 503, in seconds.
        max_body_bytes: the largest request body accepted, in bytes; then 413.
        max_connections: open connections uvicorn accepts before answering 503 itself.
        header_timeout_s: the longest a connection may take to send a request's headers, in seconds,
            from its opening or from the request's first byte; then it is closed.
        body_timeout_s: the longest a request's body may take to arrive, in seconds, from its
            headers on; then 408 and the connection is closed.
        keep_alive_s: how long an idle connection is kept open between requests, in seconds.
        shutdown_timeout_s: on SIGTERM, how long requests in progress may take to finish before they
            are cancelled, in seconds (a JSON-lines call answers no further line).
        clip_tokens: count each prompt's CLIP tokens (the tokenizer loads in the background).
        log_level: uvicorn's and the service's log level.
    """

    model_config = SettingsConfigDict(env_prefix="TEXTOPIA_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    load_default: bool = True
    load_latent: bool = True
    default_model: str | None = None
    sagemaker_model_dir: Path = Path("/opt/ml/model")
    max_concurrency: int = Field(default=1, ge=1, le=64)
    queue_size: int = Field(default=64, ge=0, le=10_000)
    batch_window_ms: float = Field(default=10.0, ge=0, le=1000)
    batch_requests: int = Field(default=32, ge=1, le=256)
    max_batch_rows: int = Field(default=36, ge=1, le=1024)
    batch_workers: int = Field(default=2, ge=1, le=16)
    batch_processes: bool = True
    brownout_pool: int = Field(default=8, ge=0, le=MAX_ROWS)
    request_timeout_s: float = Field(default=60.0, gt=0)
    max_request_rows: int = Field(default=1024, ge=1)
    max_request_tokens: int = Field(default=131_072, ge=1)
    retry_after_s: int = Field(default=2, ge=1)
    max_body_bytes: int = Field(default=16_384, ge=256)
    max_connections: int | None = Field(default=1024, ge=1)
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=10.0, gt=0)
    keep_alive_s: int = Field(default=5, ge=1)
    shutdown_timeout_s: int = Field(default=5, ge=0, le=300)
    clip_tokens: bool = True
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        """Accept a JSON list or a comma-separated string (the usual form in an env file)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value
