"""The Generator for latent diffusion: latents drawn by DDIM with guidance, decoded by the VAE.

``generate(idea)`` draws each prompt's latent from the diffusion model conditioned on the idea
(classifier-free guidance scale ``guidance``, ``steps`` DDIM steps) instead of from N(0, I), then
the frozen VAE decoder writes the prompt. With ``idea_in_decoder`` (the default) the decoder also
reads the idea, as for the VAE alone; without it the latent is the only conditioning, so the
guidance scale alone trades relevance against diversity. Reconstruction, interpolation and
variations are the VAE's own.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

from textopia.generation.base import Generation, TextopiaError
from textopia.generation.vae import VAEGenerator, check_count

# g = 1 (the plain conditional model) measured better than g = 3 on the shipped model: FD 0.1165
# against 0.1206, Div 0.590 against 0.581, cosine(idea, prompt) 0.201 against 0.198
# (benchmarks/results/diffusion/ and diffusion_experiments/sample-g3/)
DEFAULT_GUIDANCE = 1.0
DEFAULT_STEPS = 50
MAX_STEPS = 1000


class DiffusionGenerator(VAEGenerator):
    """Writes prompts with a :class:`textopia.models.latent_diffusion.LatentDiffusion`.

    Args:
        model: the latent diffusion model (its ``vae`` decodes); tokenizer, meta, name: as for
            :class:`~textopia.generation.decoder.DecoderGenerator`.
        guidance, steps: the defaults of :meth:`generate`.
        eta: DDIM's η (Song et al. 2021, eq. 16): 0 samples deterministically from the initial
            noise, 1 adds fresh noise at every step as DDPM does.
        idea_in_decoder: the VAE decoder also reads the idea (True) or only the latent (False;
            then samples are not reranked by the idea's words either, so the latent alone conditions).
    """

    def __init__(self, model, tokenizer, meta: dict[str, Any], name: str, *, guidance: float | None = None,
                 steps: int | None = None, idea_in_decoder: bool = True, eta: float = 0.0) -> None:
        super().__init__(model.vae, tokenizer, meta, name)
        self.diffusion = model
        # A checkpoint may carry the defaults measured for it (``default_guidance``, ``default_steps``).
        self.guidance = float(meta.get("default_guidance", DEFAULT_GUIDANCE) if guidance is None else guidance)
        self.steps = int(meta.get("default_steps", DEFAULT_STEPS) if steps is None else steps)
        self.idea_in_decoder = idea_in_decoder
        self.eta = eta
        self._call = threading.local()  # per-call guidance and steps (the service calls from threads)

    # The diffusion model has no tractable likelihood of its own; its VAE's bound is not its.
    likelihood = None

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update(parameters=sum(p.numel() for p in self.diffusion.parameters()), guidance=self.guidance,
                   steps=self.steps, scale_factor=self.diffusion.config.scale_factor)
        return out

    def latents(self, num: int, generator: torch.Generator, *, idea: str | None = None) -> torch.Tensor:
        from textopia.models.latent_diffusion import idea_token_ids

        guidance = getattr(self._call, "guidance", self.guidance)
        steps = getattr(self._call, "steps", self.steps)
        init, strength = getattr(self._call, "sdedit", (None, 1.0))  # set by variations
        ids = None
        if idea:
            ids, _ = idea_token_ids(self.tokenizer, [idea], self.diffusion.config.max_idea_tokens)
        return self.diffusion.sample_latents(ids, num, steps=steps, guidance=guidance, generator=generator,
                                             eta=self.eta, init=init, strength=strength).cpu()

    def _sample(self, context, num, settings, generator, *, idea, mode):
        if not self.idea_in_decoder and mode == "expand" and idea:
            context = self.tokenizer.context_ids(None)
        return super()._sample(context, num, settings, generator, idea=idea, mode=mode)

    #: SDEdit strength that pulls each interior point of an interpolation back onto the data
    #: (see :meth:`interpolate`); a checkpoint may set ``interpolation_strength``.
    interpolation_strength: float = 0.3

    def settle_path(self, path: torch.Tensor) -> torch.Tensor:
        """The interpolation path with each interior point pulled back onto the data.

        The ends stay the prompts' own posterior means (their reconstructions). Each interior point
        is noised ``interpolation_strength`` of the way up the schedule and denoised by the
        unconditional diffusion model before it is decoded (SDEdit, Meng et al. 2022): a straight
        path between two latents crosses regions no prompt was encoded to, where the decoder writes
        broken text, and the denoiser moves each point to the nearest region it knows.
        Deterministic (DDIM, η = 0, a fixed noise seed).
        """
        strength = float(self.meta.get("interpolation_strength", self.interpolation_strength))
        if path.size(0) <= 2 or strength <= 0:
            return path
        inner = path[1:-1]
        z = self.diffusion.sample_latents(None, inner.size(0), steps=self.steps, guidance=0.0, eta=0.0,
                                          generator=torch.Generator().manual_seed(0), init=inner, strength=strength)
        return torch.cat([path[:1], z.cpu(), path[-1:]])

    def variations(self, prompt: str, n: int = 8, *, spread: float | None = None,
                   seed: int | None = None) -> list[str]:
        """Variations by SDEdit (Meng et al. 2022), written as :meth:`generate` writes prompts.

        Each latent starts from the prompt's posterior mean, noised ``spread`` of the way up the
        noise schedule, and is denoised by the diffusion model conditioned on the prompt's subject
        (the content words of its first clause). The subject is then the idea of an ordinary
        :meth:`generate` call: the decoder reads it and samples with the default settings, its
        words are boosted until written, and the reranker picks the ``n`` best of the oversampled
        prompts (every idea word, no invented word, no stutter, fluent, varied). So the latent
        carries the rest of the source (its style, its order), the sampling the variety, and the
        boost the subject, which decoding a noised latent greedily loses about half the time.

        Args:
            spread: SDEdit's strength in [0, 1] (None: the model's ``default_spread``): 0 gives
                the reconstruction alone; 1 forgets the source but for its subject.

        Raises:
            TextopiaError: n outside 1..64, spread outside [0, 1], or an empty prompt.
        """
        import math

        from textopia.text import content_words, subject

        strength = self.default_spread if spread is None else spread
        check_count(n)
        if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
            raise TextopiaError(f"spread (the SDEdit strength of a latent diffusion model) must be in [0, 1], "
                                f"got {strength}")
        if strength == 0:
            return [self.reconstruct(prompt)]
        mu, _ = self.encode(prompt)
        about = " ".join(content_words(subject(prompt))) or None
        self._call.sdedit = (mu, strength)
        try:
            return [g.prompt for g in self.generate(about, n, seed=seed)]
        finally:
            del self._call.sdedit

    def generate(self, idea: str | None, n: int = 4, *, guidance: float | None = None, steps: int | None = None,
                 **settings) -> list[Generation]:
        """:meth:`Generator.generate`, plus the diffusion's ``guidance`` (>= 0) and DDIM ``steps``.

        Raises:
            TextopiaError: as for the other generators, or guidance < 0, or steps outside 1..1000.
        """
        guidance = self.guidance if guidance is None else float(guidance)
        steps = self.steps if steps is None else int(steps)
        if not guidance >= 0:
            raise TextopiaError(f"guidance must be >= 0, got {guidance}")
        if not 1 <= steps <= MAX_STEPS:
            raise TextopiaError(f"steps must be between 1 and {MAX_STEPS}, got {steps}")
        if not self.idea_in_decoder:
            settings["rerank"] = False  # the latent alone conditions: no reranking by the idea's words
        self._call.guidance, self._call.steps = guidance, steps
        try:
            out = super().generate(idea, n, **settings)
        finally:
            del self._call.guidance, self._call.steps
        conditioned = bool(idea) and settings.get("mode", "expand") == "expand"
        for g in out:
            g.settings.update(guidance=guidance if conditioned else None, steps=steps)
        return out
