"""The Generator interface: every model kind writes prompts through it.

The CLI, the Python API and the web service only ever call :meth:`Generator.generate`;
they never touch model classes.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from textopia.errors import TextopiaError  # noqa: F401  (re-exported for the generators' callers)
from textopia.generation.config import MIN_POOL, GenerationConfig, Mode

if TYPE_CHECKING:
    from textopia.models.likelihood import LikelihoodResult


@dataclass
class Generation:
    """One written prompt.

    Attributes:
        prompt: the cleaned prompt text (no special tokens, no broken word at the cut).
        idea: the user's text it was written from (None for unconditional samples).
        num_tokens: tokens the model generated for it (our tokenizer's tokens).
        finished: True if the model ended it with EOS, False if it hit ``max_new_tokens``.
        model: the name of the model that wrote it.
        settings: the decoding settings used, as a plain dict.
    """

    prompt: str
    idea: str | None
    num_tokens: int
    finished: bool
    model: str
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Likelihood(Protocol):
    """A model's likelihood of prompts, where the model computes one itself (a VAE's bound)."""

    def __call__(self, prompts: list[str], *, ideas: str = "none", batch_size: int = 8,
                 seed: int = 0) -> LikelihoodResult:
        """The summed NLL of ``prompts`` (nats) and what it was counted on.

        Raises:
            TextopiaError: the model cannot score ``ideas`` ("none": p(prompt); "derived":
                p(prompt | derived idea)).
        """


class Generator(abc.ABC):
    """Writes prompts. Every model kind implements :meth:`generate`.

    Attributes:
        name: the model's name (an embedded model's name or the checkpoint directory).
        kind: the registry name of the model family ("gpt", "lstm", ...).
    """

    name: str
    kind: str
    #: the keywords :meth:`generate` takes beyond :class:`GenerationConfig`'s (a family's own settings)
    extra_settings: tuple[str, ...] = ()
    #: the family's decoding defaults where they differ from :class:`GenerationConfig`'s (the
    #: temperature and ``known_words_only``, which callers leave to the model with None)
    default_decoding: GenerationConfig = GenerationConfig()
    #: with reranking, the fewest samples a call draws (:func:`~textopia.generation.config.rows_per_round`)
    min_pool: int = MIN_POOL
    #: the model's own likelihood of prompts (a VAE's importance-weighted bound); None where it
    #: computes none (a decoder-only LM is scored exactly by
    #: :func:`~textopia.models.likelihood.score_prompts` instead)
    likelihood: Likelihood | None = None

    def generate(
        self,
        idea: str | None,
        n: int = 4,
        *,
        mode: Mode = "expand",
        temperature: float | None = None,
        top_p: float = GenerationConfig.top_p,
        top_k: int = GenerationConfig.top_k,
        repetition_penalty: float | None = None,
        max_new_tokens: int = GenerationConfig.max_new_tokens,
        min_new_tokens: int = GenerationConfig.min_new_tokens,
        seed: int | None = None,
        banned_words: list[str] | tuple[str, ...] = (),
        rerank: bool = True,
        min_p: float = GenerationConfig.min_p,
        idea_boost: float = GenerationConfig.idea_boost,
        known_words_only: bool | None = None,
        candidates: int | None = None,
        idea_prefix: float | None = None,
    ) -> list[Generation]:
        """Write ``n`` different prompts from ``idea``.

        Args:
            idea: the user's short idea (expand mode) or the prompt's beginning (continue mode);
                None or "" samples unconditionally.
            n: how many distinct prompts to return (1..64).
            temperature: the softmax temperature; None: the model's default
                (:attr:`default_decoding`: 1.0, or 0.9 for latent diffusion).
            repetition_penalty: CTRL's penalty on tokens already written; None: the model's default
                (:attr:`default_decoding`: 1.1, or 1.0 for the LSTM).
            candidates: samples drawn per prompt asked for; None: the model's default
                (:attr:`default_decoding`: 8, or 4 for latent diffusion, whose samples cost more).
            known_words_only: spell only known words; None: the model's default
                (:meth:`default_known_words_only`: on for latent diffusion, off for the others).
            idea_prefix: share of the candidates that open with the idea; None: the model's
                default (:attr:`default_decoding`: 0.5, or 1 for latent diffusion).

        Returns:
            ``n`` :class:`Generation` objects, distinct after normalising case and spacing
            (fewer only if the model cannot produce that many distinct prompts).

        Raises:
            TextopiaError: a setting is out of range or n < 1.
        """
        return self.generate_with(idea, n, self.decoding(
            mode=mode, temperature=temperature, top_p=top_p, top_k=top_k,
            repetition_penalty=repetition_penalty, max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens, seed=seed, banned_words=banned_words, rerank=rerank,
            min_p=min_p, idea_boost=idea_boost, known_words_only=known_words_only, candidates=candidates,
            idea_prefix=idea_prefix,
        ))

    def decoding(self, **settings: Any) -> GenerationConfig:
        """:class:`GenerationConfig` from :meth:`generate`'s keywords, the model's defaults in place
        of those left None (``temperature``, ``repetition_penalty``, ``candidates``, ``idea_prefix``,
        ``known_words_only``)."""
        for name in ("temperature", "repetition_penalty", "candidates", "idea_prefix"):
            if settings.get(name) is None:
                settings[name] = getattr(self.default_decoding, name)
        if settings.get("known_words_only") is None:
            settings["known_words_only"] = self.default_known_words_only()
        settings["banned_words"] = tuple(settings.get("banned_words", ()))
        return GenerationConfig(**settings)

    def default_known_words_only(self) -> bool:
        """``known_words_only`` when a caller leaves it to the model: :attr:`default_decoding`'s,
        where the model has a known-word list (off where it has none)."""
        return self.default_decoding.known_words_only and getattr(self, "known_words", None) is not None

    @abc.abstractmethod
    def generate_with(self, idea: str | None, n: int, settings: GenerationConfig, latent: Any = None) -> list[Generation]:
        """:meth:`generate` with its settings as one object (``latent``: a latent model's own
        settings object for drawing its latents; None: its defaults). Every family implements this.

        Raises:
            TextopiaError: as :meth:`generate`.
        """

    def info(self) -> dict[str, Any]:
        """What the model is: name, kind, parameter count, and anything else worth showing."""
        return {"name": self.name, "kind": self.kind}


def unsupported_settings(generator: Generator, names) -> list[str]:
    """The ``names`` that ``generator`` does not take beyond :class:`GenerationConfig` (e.g.
    ``guidance`` and ``steps``, which only latent diffusion models take: their
    :attr:`Generator.extra_settings`), in the order given."""
    return [name for name in names if name not in generator.extra_settings]


class LatentGenerator(Generator):
    """A generator with a latent space (the text VAE and what builds on it).

    The service shows its interpolation and variations views only for these.
    """

    # Each method encodes its prompts to posterior means refined by ``refine_steps`` gradient steps
    # on the decoder's likelihood of the prompt (None: the model's default; 0: the encoder's own mean).

    @abc.abstractmethod
    def reconstruct(self, prompt: str, *, seed: int | None = None, refine_steps: int | None = None) -> str:
        """Encode ``prompt`` to its posterior mean and decode it greedily."""

    @abc.abstractmethod
    def interpolate(self, prompt_a: str, prompt_b: str, steps: int = 8, *, refine_steps: int | None = None) -> list[str]:
        """Decode ``steps`` points on the spherical path between two posterior means (ends included)."""

    @abc.abstractmethod
    def variations(
        self, prompt: str, n: int = 8, *, spread: float | None = None, strength: float | None = None,
        seed: int | None = None, refine_steps: int | None = None,
    ) -> list[str]:
        """Decode ``n`` latents drawn around ``prompt``'s posterior: a VAE's scaled by ``spread``
        (the posterior std's scale), latent diffusion's noised by SDEdit at ``strength`` (in
        [0, 1]); None: the model's own default, measured to keep the subject while the variations
        differ. A model refuses the other model's setting.

        Raises:
            TextopiaError: a setting out of its bound, or one the model does not take.
        """
