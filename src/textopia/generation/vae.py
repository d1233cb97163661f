"""The Generator for the text VAE: prompts from latents, and what a latent space is good for.

* ``generate(idea)``: z ~ N(0, I) (the prior), decoded by the VAE's decoder, which also reads the
  idea (``<|idea|> idea <|prompt|>``, the same context as the language models) when one is given.
  The latent chooses *which* prompt; the idea keeps it on topic.
* ``reconstruct``: the prompt's posterior mean, decoded greedily. The mean is the encoder's,
  refined by gradient steps on the decoder's likelihood of the prompt (``refine_steps``:
  :func:`textopia.models.refinement.refine_posterior_mean`), as for every latent below.
* ``interpolate``: greedy decodes along the spherical path between two posterior means
  (slerp: Shoemake 1985; White 2016, "Sampling Generative Networks", for latent spaces).
* ``variations``: z = μ + spread · σ · ε around a prompt's posterior, each decoded greedily.
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from typing import Any

import torch

from textopia.data.tokenizer import IGNORE_INDEX
from textopia.generation.base import LatentGenerator, TextopiaError
from textopia.generation.config import GenerationConfig, check_setting, describe
from textopia.generation.decoder import DecoderGenerator, Draw
from textopia.generation.decoding import Sampled, clean_prompt, dedup_key, sample
from textopia.generation.fusion import ShallowFusion
from textopia.models.refinement import REFINE_STEPS, check_refine_steps, refine_posterior_mean
from textopia.models.vae_likelihood import ImportanceWeightedNLL
from textopia.text import close_spaced_compounds

logger = logging.getLogger(__name__)
DEFAULT_SPREAD = 0.5
# Greedy decoding of a latent, kept out of loops: plain greedy decoding of the shipped VAE ran
# "wearing a black dress, wearing a black dress, ..." to the token limit; a CTRL repetition
# penalty of 1.2 and no repeated 3-gram end it in a fluent prompt.
GREEDY = GenerationConfig(temperature=1.0, top_p=1.0, top_k=1, repetition_penalty=1.2, min_new_tokens=0,
                          max_new_tokens=77, no_repeat_ngram_size=3, min_p=0.0, idea_boost=0.0)


def greedy_settings(model) -> GenerationConfig:
    """:data:`GREEDY` with the model's own ``greedy_overrides`` (a family whose decodes do not loop
    can turn the loop guards off, which would otherwise change a faithful reconstruction)."""
    overrides = getattr(model, "greedy_overrides", None) or {}
    return GREEDY if not overrides else GenerationConfig(**{**GREEDY.__dict__, **overrides})


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between ``a`` and ``b`` (nz,) at fractions ``t`` (S,) -> (S, nz).

    Follows the great circle when the vectors are not parallel, and the straight line when they
    are (the angle is then too small to divide by).
    """
    a64, b64, t64 = a.double(), b.double(), t.double()[:, None]
    cos = torch.dot(a64, b64) / (a64.norm() * b64.norm()).clamp(min=1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(torch.sin(omega)) < 1e-6:
        out = (1 - t64) * a64 + t64 * b64
    else:
        out = (torch.sin((1 - t64) * omega) * a64 + torch.sin(t64 * omega) * b64) / torch.sin(omega)
    return out.to(a.dtype)


class LatentSampler:
    """A latent model's :class:`~textopia.generation.decoder.TokenSampler`: job by job, a latent per
    row (:meth:`VAEGenerator.latents`: the prior, or latent diffusion's draw for the idea), then the
    decoder with those latents fixed samples the row (:meth:`VAEGenerator.sampling_model`)."""

    def __init__(self, generator: "VAEGenerator") -> None:
        self.generator = generator

    def draw(self, jobs: list[Draw], settings: GenerationConfig) -> list[list[Sampled]]:
        return [self._draw(job, settings) for job in jobs]

    def _draw(self, job: Draw, settings: GenerationConfig) -> list[Sampled]:
        from textopia.models.text_vae import ConditionedDecoder

        g = self.generator
        z = g.latents(job.rows, job.generator, idea=job.idea, latent=job.latent).to(g.device)  # (rows, nz)
        context = job.context
        if not g.idea_in_decoder and job.idea:  # the latent alone conditions: the decoder reads no idea
            context = g.tokenizer.context_ids(None, prompt_prefix=job.opening)
        model = g.sampling_model(ConditionedDecoder(g.vae, z), job.latent)
        if isinstance(model, ShallowFusion):
            # Fused scores add λ times the language model's log-probabilities to the decoder's: the
            # boost of the idea's words scales with them, or the idea's rare words (names: "kyogre")
            # are lost (benchmarks/results/latent_fusion_unscaled_boost.md).
            settings = replace(settings, idea_boost=settings.idea_boost * (1.0 + model.weight))
        # The decoder reads the idea, so its words are boosted as for the language models (not
        # after an opening made of them).
        boosted = job.idea if g.idea_in_decoder and job.opening is None else None
        return sample(model, g.tokenizer, context, job.rows, settings, job.generator, g.max_positions,
                      idea=boosted, known_words=g.known_words)


class VAEGenerator(DecoderGenerator, LatentGenerator):
    """Writes prompts with a :class:`textopia.models.text_vae.TextVAE`.

    Args:
        model: the VAE (eval mode); tokenizer, meta, name: as for :class:`DecoderGenerator`.
        own_likelihood: the VAE's importance-weighted bound is the model's likelihood
            (:class:`ImportanceWeightedNLL` as :attr:`likelihood`); False where the VAE only
            decodes another model's latents (latent diffusion), whose likelihood it is not.
    """

    #: the decoder reads the idea (and its words are boosted); a latent diffusion model may be
    #: told to condition through the latent alone
    idea_in_decoder: bool = True
    #: half the openings made of the idea left open: closed, the latent decoder's nonsense moved
    #: to the clause after (eyed on 30 ideas; not judged), so the latent families keep half each
    open_opening_share = 0.5

    def __init__(self, model, tokenizer, meta: dict[str, Any], name: str, *, own_likelihood: bool = True) -> None:
        super().__init__(model, tokenizer, meta, name, sampler=LatentSampler(self))
        self.vae = model
        if own_likelihood:
            self.likelihood = ImportanceWeightedNLL(model, tokenizer, self.max_positions)
        self.latent_dim = int(model.config.latent_dim)
        #: ``variations``' spread when none is given: the checkpoint's ``default_spread`` (set where
        #: it was measured, see benchmarks/latent_eval.py), else 0.5.
        self.default_spread = float(meta.get("default_spread", DEFAULT_SPREAD))
        #: Adam steps that refine each encoded posterior mean when a call names none: the
        #: checkpoint's ``default_refine_steps``, else :data:`~textopia.models.refinement.REFINE_STEPS`.
        steps = meta.get("default_refine_steps", REFINE_STEPS)
        self.refine_steps = check_refine_steps(int(steps) if isinstance(steps, float) and steps.is_integer() else steps)

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["latent_dim"] = self.latent_dim
        out["default_refine_steps"] = self.refine_steps
        return out

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    # -- latents -------------------------------------------------------------------------------
    def latents(self, num: int, generator: torch.Generator, *, idea: str | None = None,
                latent: Any = None) -> torch.Tensor:
        """``num`` latents (num, nz) float32 to decode for ``idea``: here, draws from the prior N(0, I)
        (``latent``, a subclass's settings object for drawing them, is unused here)."""
        return torch.randn((num, self.latent_dim), generator=generator)

    def prefix_lm(self):
        """No causal LM of its own to choose an opening made of the idea: the idea is its own."""
        return None

    def sampling_model(self, decoder, latent: Any = None):
        """The causal LM that :meth:`generate` samples from, given the decoder with its latents
        fixed: here, the decoder itself."""
        return decoder

    def encode(self, prompt: str, *, refine_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior of ``prompt``: ``(mu, logvar)``, each (nz,) float32; ``mu`` refined by
        ``refine_steps`` gradient steps (None: :attr:`refine_steps`; 0: the encoder's own).

        Raises:
            TextopiaError: the prompt is empty, or ``refine_steps`` is not an integer in 0..200.
        """
        mu, logvar = self._posteriors([self._prompt_ids(prompt)[0]], refine_steps)
        return mu[0], logvar[0]

    def _prompt_ids(self, prompt: str) -> tuple[list[int], int]:
        """``(ids, length)``: the token ids the encoder reads (the prompt's, whitespace normalised,
        then EOS; cut to the model's positions, which is said) and the prompt's whole length in tokens.

        Raises:
            TextopiaError: the prompt is empty.
        """
        text = " ".join((prompt or "").split())
        if not text:
            raise TextopiaError("empty prompt: give the text to encode")
        ids = self.tokenizer.encode(text) + [self.tokenizer.eos_id]
        length = len(ids) - 1
        if self.max_positions is not None and len(ids) > self.max_positions - 1:
            logger.warning("the prompt is %d tokens long: %s encodes only its first %d", length, self.name,
                           self.max_positions - 1)
            ids = ids[: self.max_positions - 1]
        return ids, length

    @torch.no_grad()
    def _posteriors(self, rows: list[list[int]], refine_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q(z | ids) for each row of token ids (prompt + EOS), each (N, nz)
        float32 on the CPU; ``mu`` refined by ``refine_steps`` (None: :attr:`refine_steps`).

        Raises:
            TextopiaError: ``refine_steps`` is not an integer in 0..200.
        """
        from textopia.data.batching import collate
        from textopia.models.text_vae import prompt_tokens

        steps = check_refine_steps(self.refine_steps if refine_steps is None else refine_steps)
        # a batch as the trainer and posterior_batches lay it out: the decoder reads <|prompt|> and
        # writes the prompt and EOS; the encoder reads those counted tokens
        context = self.tokenizer.context_ids(None)
        batch = collate([(context + r, [IGNORE_INDEX] * len(context) + r) for r in rows], self.tokenizer.pad_id)
        input_ids, labels = batch["input_ids"].to(self.device), batch["labels"].to(self.device)
        mu, logvar = self.vae.encode(*prompt_tokens(input_ids, labels))
        mu = refine_posterior_mean(self.vae, input_ids, labels, mu, steps=steps)
        return mu.float().cpu(), logvar.float().cpu()

    @torch.no_grad()
    def decode_latents(self, z: torch.Tensor, *, idea: str | None = None, settings: GenerationConfig | None = None,
                       seed: int = 0, fused: bool = False) -> list[str]:
        """Decode each row of ``z`` (N, nz) float into a prompt (greedy by default: :func:`greedy_settings`).

        Args:
            idea: the decoder reads it first, and its words are boosted by ``settings.idea_boost``.
            fused: decode with :meth:`sampling_model` at the model's defaults (a latent diffusion
                model's decoder in shallow fusion with its language model) instead of the decoder alone.
        """
        settings = greedy_settings(self.vae) if settings is None else settings
        from textopia.models.text_vae import ConditionedDecoder

        context = self.tokenizer.context_ids(idea)
        generator = torch.Generator().manual_seed(seed)
        decoder = ConditionedDecoder(self.vae, z.float().to(self.device))
        model = self.sampling_model(decoder) if fused else decoder
        out = sample(model, self.tokenizer, context, z.size(0), settings, generator, self.max_positions, idea=idea)
        return [clean_prompt(close_spaced_compounds(self.tokenizer.decode(ids)), finished) for ids, finished, _ in out]

    # -- LatentGenerator -----------------------------------------------------------------------
    def reconstruct(self, prompt: str, *, seed: int | None = None, refine_steps: int | None = None) -> str:
        ids, length = self._prompt_ids(prompt)
        limit = greedy_settings(self.vae).max_new_tokens
        if length > limit:
            logger.warning("the prompt is longer than a reconstruction may be (%d tokens): its end is not written", limit)
        mu, _ = self._posteriors([ids], refine_steps)
        return self.decode_latents(mu)[0]

    def interpolate(self, prompt_a: str, prompt_b: str, steps: int = 8, *, refine_steps: int | None = None) -> list[str]:
        check_setting("points", steps, "steps")
        (mu_a, mu_b), _ = self._posteriors([self._prompt_ids(prompt_a)[0], self._prompt_ids(prompt_b)[0]],
                                           refine_steps)
        path = slerp(mu_a, mu_b, torch.linspace(0.0, 1.0, steps))
        ends = self.decode_latents(path[[0, -1]])  # the prompts' own reconstructions
        inner = self.decode_midpoints(path[1:-1], prompt_a, prompt_b) if steps > 2 else []
        return [ends[0], *inner, ends[1]]

    def decode_midpoints(self, z: torch.Tensor, prompt_a: str, prompt_b: str) -> list[str]:
        """The interior points ``z`` (S, nz) of an interpolation from ``prompt_a`` to ``prompt_b``,
        as prompts: here, greedy decodes of the latents alone."""
        return self.decode_latents(z)

    def variations(self, prompt: str, n: int = 8, *, spread: float | None = None, strength: float | None = None,
                   seed: int | None = None, refine_steps: int | None = None) -> list[str]:
        if strength is not None:
            raise TextopiaError(f"strength is latent diffusion's SDEdit strength; {self.name}'s variations take "
                                f"spread (the posterior std's scale, {describe('spread')})")
        if spread is None:
            spread = self.default_spread
        check_setting("n", n)
        check_setting("spread", spread)
        mu, logvar = self.encode(prompt, refine_steps=refine_steps)
        std = (0.5 * logvar).exp()
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        generator = torch.Generator().manual_seed(seed)
        out: list[str] = []
        seen: set[str] = set()
        for _ in range(4):  # draw 2·n latents again where two latents decode to the same prompt
            eps = torch.randn((2 * n, self.latent_dim), generator=generator)
            for text in self.decode_latents(mu[None, :] + spread * std[None, :] * eps):
                key = dedup_key(text)
                if key and key not in seen:
                    seen.add(key)
                    out.append(text)
            if len(out) >= n:
                break
        return out[:n]
