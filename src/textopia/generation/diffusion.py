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
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from textopia.generation.base import Generation, Generator, TextopiaError
from textopia.generation.config import LATENT_MIN_POOL, GenerationConfig, check_setting
from textopia.generation.fusion import ShallowFusion, check_lm_weight
from textopia.generation.vae import DEFAULT_SPREAD, VAEGenerator
from textopia.models.latent_diffusion import DEFAULT_GUIDANCE, DEFAULT_STEPS


#: The sampling temperature of :meth:`DiffusionGenerator.variations` (the rest of the decoding is
#: the default). On 12 test prompts (not the benchmark's), 8 variations each at strength 0.5 with the
#: shipped model: temperature 0.8 gave perplexity 103 under the default GPT against 165 at the
#: default 1.2, subject kept 1.000 for both, distinct-2 0.640 against 0.681
#: (benchmarks/archive/variation_temperature.py, benchmarks/results/variation_temperature.md).
VARIATION_TEMPERATURE = 0.8

#: The latent diffusion model's default sampling temperature for generate (the other families
#: keep GenerationConfig's 1.0). On 12 ideas (benchmarks/archive/latent_temperature.py,
#: benchmarks/results/latent_temperature.md): perplexity under the default GPT 190.2 at 0.9
#: against 240.7 at 1.2, idea recall 1.000 for both, distinct-2 0.891 against 0.912.
GENERATE_TEMPERATURE = 0.9

#: The latent pair's own CTRL repetition penalty (Keskar et al. 2019) for generate: its fused
#: decoder was tuned and judged with 1.1, whatever the language models' default becomes.
REPETITION_PENALTY = 1.1


@dataclass(frozen=True)
class DiffusionSettings:
    """How a latent diffusion model draws the latents of one call (beside :class:`GenerationConfig`).

    Attributes:
        guidance: the classifier-free guidance scale g >= 0 (see
            :meth:`~textopia.models.latent_diffusion.LatentDiffusion.sample_latents`).
        steps: DDIM steps, 1..1000.
        init: (nz,) float32, a latent to start from (SDEdit; None: from noise).
        strength: SDEdit's share of the schedule run from ``init``, in (0, 1].
        lm_weight: λ of shallow fusion with the model's language model (:mod:`textopia.generation.fusion`;
            0: the decoder alone), in [0, 4].
    """

    guidance: float
    steps: int
    init: torch.Tensor | None = None
    strength: float = 1.0
    lm_weight: float = 0.0

    def validate(self) -> None:
        """Raise :class:`TextopiaError` for a setting out of range."""
        check_lm_weight(self.lm_weight)
        check_setting("guidance", self.guidance)
        check_setting("steps", self.steps)


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
        load_lm: ``load_lm(name, device) -> Generator``, how shallow fusion loads its language
            model (:attr:`load_lm`); ``textopia.load`` passes
            :func:`~textopia.generation.loader.load_fusion_lm`.
    """

    extra_settings = ("guidance", "steps", "lm_weight")
    # Spelling only known words: without it 74% of the fused samples held an invented word (and
    # the reranker drew 2.2 rounds per call to find clean ones), with it none did (1.2 rounds):
    # benchmarks/results/latent_known_words.md.
    # 4 candidates per prompt: a latent sample costs a diffusion and a fused decoder (n = 8 took
    # 5.2-6.0 s with 8 against 2.3 s with 3, one thread).
    # Every candidate opens with the idea: where the boost places its words instead, the fused
    # decoder breaks the phrase around them ("a grandmother an a polaroid baking on bread").
    min_pool = LATENT_MIN_POOL
    default_decoding = GenerationConfig(temperature=GENERATE_TEMPERATURE, known_words_only=True, candidates=4,
                                        idea_prefix=1.0, repetition_penalty=REPETITION_PENALTY)

    def __init__(self, model, tokenizer, meta: dict[str, Any], name: str, *, guidance: float | None = None,
                 steps: int | None = None, idea_in_decoder: bool = True, eta: float = 0.0,
                 load_lm: Callable[[str, str], Generator] | None = None) -> None:
        super().__init__(model.vae, tokenizer, meta, name, own_likelihood=False)
        self.diffusion = model
        #: :meth:`variations`' SDEdit strength when none is given: the checkpoint's
        #: ``default_strength``, else its ``default_spread`` (the key's older name), else 0.5.
        self.default_strength = float(meta.get("default_strength", meta.get("default_spread", DEFAULT_SPREAD)))
        # A checkpoint may carry the defaults measured for it (``default_guidance``, ``default_steps``).
        self.guidance = float(meta.get("default_guidance", DEFAULT_GUIDANCE) if guidance is None else guidance)
        self.steps = int(meta.get("default_steps", DEFAULT_STEPS) if steps is None else steps)
        self.idea_in_decoder = idea_in_decoder
        self.eta = eta
        #: λ of shallow fusion when a call gives none: the checkpoint's ``default_lm_weight``
        #: (measured for it: benchmarks/archive/latent_temperature.py, benchmarks/results/latent_fusion.md),
        #: else 0 (the decoder alone).
        self.lm_weight = check_lm_weight(meta.get("default_lm_weight", 0.0))
        #: λ when writing prompts from an idea (:meth:`generate`, the service's batches): the
        #: checkpoint's ``generate_lm_weight``, else :attr:`lm_weight`. Variations and
        #: interpolation, which must keep what their latent carries, fuse at :attr:`lm_weight`.
        self.generate_lm_weight = check_lm_weight(meta.get("generate_lm_weight", self.lm_weight))
        #: Loads shallow fusion's language model by an embedded model's name or a checkpoint
        #: directory; None: a weight above 0 is an error when the model is first needed.
        self.load_lm = load_lm
        self._lm = None
        self._lm_keep_head = None  # the fusion LM's keep head (loaded with it)
        self._lm_lock = threading.Lock()

    def settings(self, guidance: float | None = None, steps: int | None = None, lm_weight: float | None = None,
                 **sdedit) -> DiffusionSettings:
        """A checked :class:`DiffusionSettings`, this model's defaults where None.

        Raises:
            TextopiaError: a setting is out of range.
        """
        out = DiffusionSettings(self.guidance if guidance is None else float(guidance),
                                self.steps if steps is None else int(steps), **sdedit,
                                lm_weight=self.lm_weight if lm_weight is None else float(lm_weight))
        out.validate()
        return out

    def fusion_lm(self):
        """The language model of shallow fusion (loaded once, on first use): the model named by the
        checkpoint's ``fusion_lm`` (an embedded model's name or a checkpoint directory; default
        ``"default"``, the embedded GPT), as a causal LM over this model's tokenizer.

        Raises:
            TextopiaError: it cannot be loaded, or its tokenizer is not this model's.
        """
        with self._lm_lock:
            if self._lm is None:
                name = str(self.meta.get("fusion_lm", "default"))
                if self.load_lm is None:
                    raise TextopiaError(f"{self.name!r} fuses with the language model {name!r} (lm_weight > 0) "
                                        f"but was given no load_lm to load it: load it with textopia.load")
                lm = self.load_lm(name, str(self.device))
                vocab = lm.tokenizer.hf.backend_tokenizer.get_vocab(), self.tokenizer.hf.backend_tokenizer.get_vocab()
                if vocab[0] != vocab[1]:
                    raise TextopiaError(f"fusion_lm {name!r} has another tokenizer than {self.name!r}: "
                                        f"shallow fusion needs the same tokens")
                self._lm = lm.model
                self._lm_keep_head = getattr(lm, "keep_head", None)
            return self._lm

    def keep_scorer(self):
        """The language model of shallow fusion and its keep head, where the model fuses with one
        when writing from an idea (:attr:`generate_lm_weight` > 0) and it has a head: the head
        reads that model's hidden states of each candidate, whatever wrote it (the same tokens).
        On three judged A/Bs of the latent pair's settings the head, fitted without each in turn,
        ranked 0.730 / 0.788 / 0.737 of the pairs as the judges did, against 0.689 / 0.742 / 0.618
        for fluency and length fitted so (``python -m benchmarks judge_agreement``). (A head of the
        latent model's own would read its decoder's hidden states, which no head is fitted on.)"""
        if self.generate_lm_weight <= 0:
            return None
        lm = self.fusion_lm()
        return None if self._lm_keep_head is None else (lm, self._lm_keep_head)

    def fusion_weight(self, latent: DiffusionSettings | None) -> float:
        """λ of a call's shallow fusion: ``latent.lm_weight``, or without settings (prompts from an
        idea, as the service batches them) :attr:`generate_lm_weight`."""
        return self.generate_lm_weight if latent is None else latent.lm_weight

    def sampling_model(self, decoder, latent: DiffusionSettings | None = None):
        """The decoder fused with :meth:`fusion_lm` at :meth:`fusion_weight` (the decoder alone at 0)."""
        weight = self.fusion_weight(latent)
        return decoder if weight == 0 else ShallowFusion(decoder, self.fusion_lm(), weight)

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update(parameters=sum(p.numel() for p in self.diffusion.parameters()), guidance=self.guidance,
                   steps=self.steps, lm_weight=self.lm_weight,
                   generate_lm_weight=self.generate_lm_weight, scale_factor=self.diffusion.config.scale_factor)
        return out

    def latents(self, num: int, generator: torch.Generator, *, idea: str | None = None,
                latent: DiffusionSettings | None = None) -> torch.Tensor:
        """``num`` latents (num, nz) float32 drawn by DDIM for ``idea`` as ``latent`` asks (None:
        this model's defaults, from noise)."""
        from textopia.models.latent_diffusion import idea_token_ids

        latent = self.settings() if latent is None else latent
        ids = None
        if idea:
            ids, _ = idea_token_ids(self.tokenizer, [idea], self.diffusion.config.max_idea_tokens)
        return self.diffusion.sample_latents(ids, num, steps=latent.steps, guidance=latent.guidance,
                                             generator=generator, eta=self.eta, init=latent.init,
                                             strength=latent.strength).cpu()

    def prefix_lm(self):
        """The language model of shallow fusion chooses the opening made of the idea, where the
        model fuses with one when writing from an idea (:attr:`generate_lm_weight` > 0); else none."""
        return self.fusion_lm() if self.generate_lm_weight > 0 else None

    #: SDEdit strength with which each interior point of an interpolation is written (see
    #: :meth:`decode_midpoints`); a checkpoint may set ``interpolation_strength``.
    interpolation_strength: float = 0.3

    def decode_midpoints(self, z: torch.Tensor, prompt_a: str, prompt_b: str) -> list[str]:
        """The interior points ``z`` (S, nz) of an interpolation, each written by SDEdit from both ends.

        The idea is the subject of the nearer end (:func:`~textopia.text.subject_idea`: "a
        lighthouse on a cliff at sunset"), so that each point reads as one scene ("lighthouse cliff
        portrait old" from both ends' first words read as none); the latent carries the blend of
        the two ends' styles and details. Each point is noised ``interpolation_strength`` of the
        way up the schedule and denoised towards that idea (SDEdit, Meng et al. 2022: a straight path between two latents crosses
        regions no prompt was encoded to, where the decoder writes broken text), then written as
        :meth:`variations` writes a variation: an ordinary :meth:`generate` call for the idea (the
        decoder reads it, its words are boosted until written, samples at
        :data:`VARIATION_TEMPERATURE` fused with the language model, known words only), whose
        reranker picks the best sample: every idea word, no stutter, fluent. Seed 0 for every
        point: the same two prompts give the same path.
        """
        from textopia.text import subject_idea

        ideas = [subject_idea(end) or None for end in (prompt_a, prompt_b)]
        strength = float(self.meta.get("interpolation_strength", self.interpolation_strength))
        decoding = self.decoding(seed=0, temperature=VARIATION_TEMPERATURE)
        out = []
        for i, point in enumerate(z):
            nearer = ideas[0] if 2 * (i + 1) <= len(z) + 1 else ideas[1]  # the middle point: the first end's
            written = self.generate_with(nearer, 1, decoding, self.settings(init=point, strength=strength))
            out.append(written[0].prompt if written else self.decode_latents(point[None], fused=True)[0])
        return out

    def variations(self, prompt: str, n: int = 8, *, spread: float | None = None, strength: float | None = None,
                   seed: int | None = None, refine_steps: int | None = None) -> list[str]:
        """Variations by SDEdit (Meng et al. 2022), written as :meth:`generate` writes prompts.

        Each latent starts from the prompt's posterior mean, noised ``strength`` of the way up the
        noise schedule, and is denoised by the diffusion model conditioned on the prompt's subject
        (:func:`~textopia.text.subject_idea`: its first clause as written). The subject is then the idea of an ordinary
        :meth:`generate` call: the decoder reads it and samples (the default settings, at
        :data:`VARIATION_TEMPERATURE`, fused with the language model at the model's
        :attr:`lm_weight`), its words are boosted until written, and the reranker
        picks the ``n`` best of the oversampled prompts (every idea word, no invented word, no
        stutter, fluent, varied); where the model spells only known words by default
        (:meth:`default_known_words_only`), so do its variations. So the latent carries the rest
        of the source (its style, its order), the sampling the variety, and the boost the subject,
        which decoding a noised latent greedily lost in a third of the variations.

        Args:
            strength: SDEdit's strength in [0, 1] (None: :attr:`default_strength`): 0 gives
                the reconstruction alone; 1 forgets the source but for its subject.
            spread: taken as ``strength`` (the documented CLI's ``--spread`` and HTTP API's
                ``spread`` of this model); not with ``strength``.

        Raises:
            TextopiaError: n outside 1..64, strength outside [0, 1], both strength and spread, an
                empty prompt, or ``refine_steps`` outside 0..200.
        """
        from textopia.text import subject_idea

        if spread is not None and strength is not None:
            raise TextopiaError("give strength alone: a latent diffusion model takes spread as its strength")
        if strength is None:
            strength = self.default_strength if spread is None else spread
        check_setting("n", n)
        check_setting("strength", strength)
        if strength == 0:
            return [self.reconstruct(prompt, refine_steps=refine_steps)]
        mu, _ = self.encode(prompt, refine_steps=refine_steps)
        about = subject_idea(prompt) or None
        # Known words only where the model spells them by default (its subject's words are allowed
        # as an idea's are): on 20 other test prompts distinct-2 0.603 against 0.574, subject kept
        # 0.992 against 0.990.
        decoding = self.decoding(seed=seed, temperature=VARIATION_TEMPERATURE)
        return [g.prompt for g in self.generate_with(about, n, decoding, self.settings(init=mu, strength=strength))]

    def _request(self, idea, n, settings, latent=None, min_pool=None):
        if not self.idea_in_decoder:  # the latent alone conditions: no reranking by the idea's words
            settings = replace(settings, rerank=False)
        return super()._request(idea, n, settings, latent, min_pool)

    def generate(self, idea: str | None, n: int = 4, *, guidance: float | None = None, steps: int | None = None,
                 lm_weight: float | None = None, **settings) -> list[Generation]:
        """:meth:`Generator.generate`, plus the diffusion's ``guidance`` (>= 0), DDIM ``steps`` and
        the shallow-fusion weight ``lm_weight`` (None: the model's defaults, :attr:`guidance`,
        :attr:`steps` and :attr:`generate_lm_weight`).

        Raises:
            TextopiaError: as for the other generators, or guidance < 0, steps outside 1..1000, or
                lm_weight outside [0, 4].
        """
        latent = self.settings(guidance, steps, self.generate_lm_weight if lm_weight is None else lm_weight)
        decoding = self.decoding(**settings)
        out = self.generate_with(idea, n, decoding, latent)
        conditioned = bool(idea) and decoding.mode == "expand"
        for g in out:
            g.settings.update(guidance=latent.guidance if conditioned else None, steps=latent.steps,
                              lm_weight=latent.lm_weight)
        return out
