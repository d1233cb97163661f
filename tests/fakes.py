"""Stand-in generators for tests: no model, no torch, deterministic (benchmarks/load.py has its own).

They follow the :class:`~textopia.generation.base.Generator` contract (distinct prompts,
seeded, banned words honoured, ``TextopiaError`` on bad settings) so the service can be tested
without a trained model. Never used by the real service.
"""

from __future__ import annotations

import random
import re
import time
from typing import Any

from textopia.generation.base import (
    GenerationConfig,
    Generation,
    Generator,
    LatentGenerator,
    TextopiaError,
)

_STYLES = (
    "highly detailed", "digital painting", "trending on artstation", "sharp focus",
    "volumetric lighting", "concept art", "by greg rutkowski", "octane render", "4k",
    "matte painting", "cinematic", "golden hour", "intricate", "studio ghibli style",
    "unreal engine", "soft light", "watercolor", "by alphonse mucha", "dramatic sky",
)


class FakeGenerator(Generator):
    """Writes ``"<idea>, <style>, <style>…"`` prompts from a fixed list of styles.

    Args:
        name: the model's name.
        kind: the model family it pretends to be.
        delay_s: seconds to sleep per prompt, to stand in for a model's compute time.
        fail_with: an exception to raise from :meth:`generate`, to test error handling.
    """

    def __init__(
        self,
        name: str = "fake",
        kind: str = "gpt",
        delay_s: float = 0.0,
        fail_with: BaseException | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.delay_s = delay_s
        self.fail_with = fail_with
        self.calls: list[dict[str, Any]] = []

    def generate_with(self, idea: str | None, n: int, settings: GenerationConfig, latent: Any = None) -> list[Generation]:
        settings.validate()
        if n < 1:
            raise TextopiaError(f"n must be >= 1, got {n}")
        self.calls.append({"idea": idea, "n": n, **settings.__dict__})
        if self.fail_with is not None:
            raise self.fail_with
        rng = random.Random(settings.seed)
        banned = [w.lower() for w in settings.banned_words]
        styles = [s for s in _STYLES if not any(re.search(rf"\b{re.escape(b)}\b", s) for b in banned)]
        base = " ".join((idea or "a scene").split())
        out: list[Generation] = []
        seen: set[str] = set()
        for _ in range(n * 4):
            if len(out) == n:
                break
            picked = rng.sample(styles, k=min(len(styles), rng.randint(2, 5)))
            words = (base + ", " + ", ".join(picked)).split(" ")[: settings.max_new_tokens]
            prompt = " ".join(words)
            if prompt.lower() in seen:
                continue
            seen.add(prompt.lower())
            if self.delay_s:
                time.sleep(self.delay_s)
            out.append(
                Generation(
                    prompt=prompt, idea=idea, num_tokens=len(words),
                    finished=len(words) < settings.max_new_tokens, model=self.name,
                    settings=dict(settings.__dict__),
                )
            )
        return out

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "parameters": 1234, "fake": True}


class FakeBatchGenerator(FakeGenerator):
    """A :class:`FakeGenerator` with ``generate_batch``, as the decoder-only family has: the
    service gives it a micro-batcher, so requests reach it on the batched path. ``batches``
    records each batch's ``(idea, n, settings)`` calls as they arrived."""

    def __init__(self, name: str = "fake-batch", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.batches: list[list[tuple[str | None, int, GenerationConfig]]] = []

    def generate_batch(self, calls: list[tuple[str | None, int, GenerationConfig]]) -> list[list[Generation] | TextopiaError]:
        self.batches.append(list(calls))
        out: list[list[Generation] | TextopiaError] = []
        for idea, n, settings in calls:
            try:
                out.append(self.generate_with(idea, n, settings))
            except TextopiaError as e:
                out.append(e)
        return out


class FakeLatentGenerator(FakeGenerator, LatentGenerator):
    """A fake with a "latent space": interpolation mixes the two prompts' words."""

    #: a latent family's own default temperature, as latent diffusion's (the page and the API show it)
    default_decoding = GenerationConfig(temperature=0.9)
    #: the variations' spread when a request gives none (the page's slider starts there)
    default_spread = 0.7

    def __init__(self, name: str = "fake-vae", kind: str = "vae", delay_s: float = 0.0) -> None:
        super().__init__(name=name, kind=kind, delay_s=delay_s)
        self.refine_steps_asked: list[int | None] = []  # what each call was told, in order
        self.variations_asked: list[tuple[float | None, float | None]] = []  # (spread, strength) per call

    def reconstruct(self, prompt: str, *, seed: int | None = None, refine_steps: int | None = None) -> str:
        self.refine_steps_asked.append(refine_steps)
        return " ".join(prompt.split())

    def interpolate(self, prompt_a: str, prompt_b: str, steps: int = 8, *, refine_steps: int | None = None) -> list[str]:
        self.refine_steps_asked.append(refine_steps)
        if steps < 2:
            raise TextopiaError(f"steps must be >= 2, got {steps}")
        a, b = prompt_a.split(), prompt_b.split()
        out = []
        for i in range(steps):
            t = i / (steps - 1)
            out.append(" ".join(a[: round(len(a) * (1 - t))] + b[len(b) - round(len(b) * t):]))
        return out

    def variations(
        self, prompt: str, n: int = 8, *, spread: float | None = None, strength: float | None = None,
        seed: int | None = None, refine_steps: int | None = None,
    ) -> list[str]:
        self.refine_steps_asked.append(refine_steps)
        self.variations_asked.append((spread, strength))
        rng = random.Random(seed)
        return [f"{' '.join(prompt.split())}, {rng.choice(_STYLES)}" for _ in range(n)]
