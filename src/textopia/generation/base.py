"""The Generator interface: every model kind writes prompts through it.

The CLI, the Python API and the web service only ever call :meth:`Generator.generate`;
they never touch model classes.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from textopia.errors import TextopiaError  # noqa: F401  (re-exported for the generators' callers)

Mode = Literal["expand", "continue"]

#: The most samples the reranker may draw per prompt asked for (``DecodingSettings.candidates``).
MAX_CANDIDATES = 64




@dataclass(frozen=True)
class DecodingSettings:
    """How to sample.

    Attributes:
        mode: ``"expand"`` writes a prompt around an idea found anywhere in it; ``"continue"``
            treats the text as the prompt's beginning.
        temperature: softmax temperature (> 0), applied after min-p truncation; 1.0 leaves the
            distribution as is.
        top_p: nucleus sampling mass in (0, 1]; 1.0 disables it (Holtzman et al. 2020).
        top_k: keep the k most likely tokens; 0 disables it.
        repetition_penalty: CTRL penalty (Keskar et al. 2019) on tokens already present; 1.0 is none.
        max_new_tokens: cap on generated tokens per prompt (tokens of our tokenizer).
        min_new_tokens: EOS is suppressed before this many tokens.
        seed: RNG seed; the same seed and settings give the same prompts.
        banned_words: words that must not appear in the output (case-insensitive, whole words).
        rerank: oversample and keep the best samples (:mod:`textopia.generation.rerank`: the
            idea's words, written once, in the subject; known words, no stutter; the coherence
            critic's choice).
        candidates: with ``rerank``, samples drawn per prompt asked for, in one batch, whatever
            ``n`` is (1 to :data:`MAX_CANDIDATES`), so that one prompt is chosen as carefully as
            eight.
        idea_prefix: with ``rerank``, in expand mode, the share of the candidates that open with
            the idea's own words (the likeliest of "IDEA", "a IDEA", "an IDEA", "the IDEA" under
            the model) and go on from there, beside those that place the idea themselves; in [0, 1].
        no_repeat_ngram_size: forbid any n-gram of this many tokens from appearing twice (0: off);
            keeps greedy decoding out of loops.
        min_p: min-p sampling (Nguyen et al. 2024): drop tokens less likely than ``min_p`` times
            the most likely one; 0 disables it.
        idea_boost: in expand mode, nats added to the logits of the idea's words until each is
            written (:class:`textopia.generation.boost.IdeaBoostProcessor`); 0 disables it.
        known_words_only: spell only words of the model's corpus (its ``known_words.txt``) and of
            the idea (:class:`textopia.generation.lexicon.KnownWordsOnly`): no invented words.
    """

    mode: Mode = "expand"
    temperature: float = 1.2  # with min-p first (Nguyen et al. 2024): measured in benchmarks/quality.py
    top_p: float = 0.95
    top_k: int = 0
    repetition_penalty: float = 1.1
    max_new_tokens: int = 77
    min_new_tokens: int = 16
    seed: int | None = None
    banned_words: tuple[str, ...] = ()
    rerank: bool = True
    no_repeat_ngram_size: int = 0
    min_p: float = 0.05
    idea_boost: float = 2.0
    known_words_only: bool = False
    candidates: int = 8  # measured in benchmarks/quality.py (results/quality/candidates.md)
    idea_prefix: float = 0.5

    def validate(self) -> None:
        """Raise :class:`TextopiaError` naming the first out-of-range setting (a number that is not
        finite is out of every range; a seed is an unsigned 64-bit integer, as torch's generators take)."""
        import math

        from textopia.bounds import MAX_SEED

        if self.mode not in ("expand", "continue"):
            raise TextopiaError(f"mode must be 'expand' or 'continue', got {self.mode!r}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise TextopiaError(f"temperature must be > 0 and finite, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise TextopiaError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise TextopiaError(f"top_k must be >= 0, got {self.top_k}")
        if not (self.repetition_penalty > 0 and math.isfinite(self.repetition_penalty)):
            raise TextopiaError(f"repetition_penalty must be > 0 and finite, got {self.repetition_penalty}")
        if self.max_new_tokens < 1:
            raise TextopiaError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise TextopiaError(f"seed must be an integer from 0 to 2**64 - 1 ({MAX_SEED:,}), got {self.seed}")
        if self.no_repeat_ngram_size < 0:
            raise TextopiaError(f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}")
        if not 0 <= self.min_p < 1:
            raise TextopiaError(f"min_p must be in [0, 1), got {self.min_p}")
        if not 0 <= self.idea_boost <= 20:
            raise TextopiaError(f"idea_boost must be in [0, 20] nats, got {self.idea_boost}")
        if not 1 <= self.candidates <= MAX_CANDIDATES:
            raise TextopiaError(f"candidates must be between 1 and {MAX_CANDIDATES}, got {self.candidates}")
        if not 0 <= self.idea_prefix <= 1:
            raise TextopiaError(f"idea_prefix must be in [0, 1], got {self.idea_prefix}")
        if self.min_new_tokens < 0:
            raise TextopiaError(f"min_new_tokens must be >= 0, got {self.min_new_tokens}")


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


class Generator(abc.ABC):
    """Writes prompts. Every model kind implements :meth:`generate`.

    Attributes:
        name: the model's name (an embedded model's name or the checkpoint directory).
        kind: the registry name of the model family ("gpt", "lstm", ...).
    """

    name: str
    kind: str
    #: the keywords :meth:`generate` takes beyond :class:`DecodingSettings`' (a family's own settings)
    extra_settings: tuple[str, ...] = ()
    #: the family's decoding defaults where they differ from :class:`DecodingSettings`' (the
    #: temperature and ``known_words_only``, which callers leave to the model with None)
    default_decoding: DecodingSettings = DecodingSettings()

    def generate(
        self,
        idea: str | None,
        n: int = 4,
        *,
        mode: Mode = "expand",
        temperature: float | None = None,
        top_p: float = DecodingSettings.top_p,
        top_k: int = DecodingSettings.top_k,
        repetition_penalty: float = DecodingSettings.repetition_penalty,
        max_new_tokens: int = DecodingSettings.max_new_tokens,
        min_new_tokens: int = DecodingSettings.min_new_tokens,
        seed: int | None = None,
        banned_words: list[str] | tuple[str, ...] = (),
        rerank: bool = True,
        min_p: float = DecodingSettings.min_p,
        idea_boost: float = DecodingSettings.idea_boost,
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
                (:attr:`default_decoding`: 1.2, or 0.9 for latent diffusion).
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

    def decoding(self, **settings: Any) -> DecodingSettings:
        """:class:`DecodingSettings` from :meth:`generate`'s keywords, the model's defaults in place
        of those left None (``temperature``, ``candidates``, ``idea_prefix``, ``known_words_only``)."""
        for name in ("temperature", "candidates", "idea_prefix"):
            if settings.get(name) is None:
                settings[name] = getattr(self.default_decoding, name)
        if settings.get("known_words_only") is None:
            settings["known_words_only"] = self.default_known_words_only()
        settings["banned_words"] = tuple(settings.get("banned_words", ()))
        return DecodingSettings(**settings)

    def default_known_words_only(self) -> bool:
        """``known_words_only`` when a caller leaves it to the model: :attr:`default_decoding`'s,
        where the model has a known-word list (off where it has none)."""
        return self.default_decoding.known_words_only and getattr(self, "known_words", None) is not None

    @abc.abstractmethod
    def generate_with(self, idea: str | None, n: int, settings: DecodingSettings, latent: Any = None) -> list[Generation]:
        """:meth:`generate` with its settings as one object (``latent``: a latent model's own
        settings object for drawing its latents; None: its defaults). Every family implements this.

        Raises:
            TextopiaError: as :meth:`generate`.
        """

    def info(self) -> dict[str, Any]:
        """What the model is: name, kind, parameter count, and anything else worth showing."""
        return {"name": self.name, "kind": self.kind}


def unsupported_settings(generator: Generator, names) -> list[str]:
    """The ``names`` that ``generator`` does not take beyond :class:`DecodingSettings` (e.g.
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
        self, prompt: str, n: int = 8, *, spread: float | None = None, seed: int | None = None,
        refine_steps: int | None = None,
    ) -> list[str]:
        """Decode ``n`` latents drawn around ``prompt``'s posterior (std scaled by ``spread``; None:
        the model's own default, measured to keep the subject while the variations differ)."""
