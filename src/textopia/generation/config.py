"""Every setting a call that writes prompts takes, declared once with its default and its bound.

:class:`GenerationConfig` holds the decoding settings of one ``generate`` call (what
transformers' ``GenerationConfig`` holds for ``generate``); :data:`CALL_BOUNDS` the settings that
travel beside it (how many prompts, and the latent models' own). The Python API checks them here
(:meth:`GenerationConfig.validate`, :func:`check_setting`), the CLI's help and the HTTP API's
request bodies read their bounds from here (:func:`bound_of`, :func:`schema_bounds`), so the three
refuse the same values with the same words::

    temperature must be a number in [0.05, 2], got 5
    n must be an integer from 1 to 64, got 0
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from textopia.bounds import MAX_SEED, Bound, bounded, check_fields, field_bound, field_kind, value_holds
from textopia.errors import TextopiaError
from textopia.models.refinement import MAX_REFINE_STEPS

Mode = Literal["expand", "continue"]

#: The most prompts (or variations) one call may ask for.
MAX_PROMPTS = 64
#: The most samples the reranker may draw per prompt asked for (``GenerationConfig.candidates``).
MAX_CANDIDATES = 64
#: The most rows one sampling round of a call may draw: ``n`` times ``candidates`` with reranking
#: (64 prompts of 8 candidates; one prompt of 64). What bounds a call's memory and time.
MAX_ROWS = 512
#: The most tokens one prompt may run to (tokens of the model's tokenizer; a prompt of CLIP's 77
#: tokens is about 60 of ours).
MAX_NEW_TOKENS = 128


@dataclass(frozen=True)
class GenerationConfig:
    """How one call samples its prompts; bounds on the fields (:func:`textopia.bounds.bounded`).

    Attributes:
        mode: ``"expand"`` writes a prompt around an idea found anywhere in it; ``"continue"``
            treats the text as the prompt's beginning.
        temperature: softmax temperature, applied after min-p truncation; 1.0 leaves the
            distribution as is.
        top_p: nucleus sampling mass in (0, 1]; 1.0 disables it (Holtzman et al. 2020).
        top_k: keep the k most likely tokens; 0 disables it.
        repetition_penalty: CTRL penalty (Keskar et al. 2019) on tokens already present; 1.0 is none.
        max_new_tokens: cap on generated tokens per prompt (tokens of our tokenizer).
        min_new_tokens: EOS is suppressed before this many tokens.
        seed: RNG seed, an unsigned 64-bit integer as torch's generators take; the same seed and
            settings give the same prompts.
        banned_words: words that must not appear in the output (case-insensitive, whole words).
        rerank: oversample and keep the best samples (:mod:`textopia.generation.rerank`: the
            idea's words, written once, in the subject; known words, no stutter; the coherence
            critic's choice).
        no_repeat_ngram_size: forbid any n-gram of this many tokens from appearing twice (0: off);
            keeps greedy decoding out of loops.
        min_p: min-p sampling (Nguyen et al. 2024): drop tokens less likely than ``min_p`` times
            the most likely one; 0 disables it.
        idea_boost: in expand mode, nats added to the logits of the idea's words until each is
            written (:class:`textopia.generation.boost.IdeaBoostProcessor`); 0 disables it.
        known_words_only: spell only words of the model's corpus (its ``known_words.txt``) and of
            the idea (:class:`textopia.generation.lexicon.KnownWordsOnly`): no invented words.
        candidates: with ``rerank``, samples drawn per prompt asked for, in one batch, whatever
            ``n`` is, so that one prompt is chosen as carefully as eight (at least
            :data:`MIN_POOL` samples a call: :func:`rows_per_round`).
        idea_prefix: with ``rerank``, in expand mode, the share of the candidates that open with
            the idea's own words (the likeliest of "IDEA", "a IDEA", "an IDEA", "the IDEA" under
            the model) and go on from there, beside those that place the idea themselves.
    """

    mode: Mode = bounded("expand", choices=("expand", "continue"))
    # With min-p first (Nguyen et al. 2024). 1.0, not 1.2: three blind judges of one prompt for 50
    # new ideas scored the default GPT's coherence 5.64 / 5.68 / 5.78 at 1.2 against 6.32 / 6.62 /
    # 6.60 at 1.0 (0.8 about the same as 1.0), kept 30-38% against 56-60%; two scored the LSTM's
    # 5.32 / 5.58 against 5.74 / 6.08 (benchmarks/results/judged/ab_s20_temperature,
    # ab_s20_lstm_temperature). Distinct bigrams among 4 prompts: 0.850 -> 0.836 (quality benchmark).
    temperature: float = bounded(1.0, 0.05, 2.0)
    top_p: float = bounded(0.95, 0.0, 1.0, low_open=True)
    top_k: int = bounded(0, 0, 200)
    repetition_penalty: float = bounded(1.1, 1.0, 2.0)
    max_new_tokens: int = bounded(77, 1, MAX_NEW_TOKENS)
    min_new_tokens: int = bounded(16, 0, MAX_NEW_TOKENS)
    seed: int | None = bounded(None, 0, MAX_SEED)
    banned_words: tuple[str, ...] = ()
    rerank: bool = True
    no_repeat_ngram_size: int = bounded(0, 0, 16)
    min_p: float = bounded(0.05, 0.0, 0.5)
    idea_boost: float = bounded(2.0, 0.0, 10.0)
    known_words_only: bool = False
    # Measured in benchmarks/quality.py (results/quality/candidates.md).
    candidates: int = bounded(8, 1, MAX_CANDIDATES)
    idea_prefix: float = bounded(0.5, 0.0, 1.0)

    def validate(self) -> None:
        """Raise :class:`TextopiaError` naming the first setting of the wrong type or out of its
        bound (a number that is not finite is out of every bound)."""
        check_fields(self, "")


#: The settings a call takes beside :class:`GenerationConfig`, each ``(type, bound)``: how many
#: prompts, and the latent models' own (None in a call: the model's default).
CALL_BOUNDS: dict[str, tuple[type, Bound]] = {
    "n": (int, Bound(1, MAX_PROMPTS)),
    # The classifier-free guidance scale of latent diffusion (0 ignores the idea).
    "guidance": (float, Bound(0.0, 20.0)),
    # DDIM steps of latent diffusion.
    "steps": (int, Bound(1, 200)),
    # λ of shallow fusion with the language model (0: the latent's decoder alone).
    "lm_weight": (float, Bound(0.0, 4.0)),
    # A VAE's variations: the scale of the posterior's standard deviation.
    "spread": (float, Bound(0.0, 20.0)),
    # Latent diffusion's variations: SDEdit's strength, the share of the noise schedule the
    # source's latent is noised up (0: the reconstruction; 1: only its subject is kept).
    "strength": (float, Bound(0.0, 1.0)),
    # Gradient steps refining an encoded posterior mean (0: the encoder's own mean).
    "refine_steps": (int, Bound(0, MAX_REFINE_STEPS)),
    # Points on an interpolation's path, both ends included.
    "points": (int, Bound(2, 16)),
}

_CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(GenerationConfig)}


def bound_of(name: str) -> tuple[type, Bound]:
    """``(type, bound)`` of a setting of :class:`GenerationConfig` or :data:`CALL_BOUNDS`.

    Raises:
        KeyError: no such setting.
    """
    if name in CALL_BOUNDS:
        return CALL_BOUNDS[name]
    return field_kind(GenerationConfig, name), field_bound(_CONFIG_FIELDS[name])


def describe(name: str) -> str:
    """A setting's bound in words: "a number in [0.05, 2]", "an integer from 1 to 64"."""
    kind, bound = bound_of(name)
    return bound.describe(kind)


def check_setting(name: str, value: Any, key: str | None = None) -> None:
    """Raise :class:`TextopiaError` unless ``value`` is within ``name``'s bound; the message
    names ``key`` (an option such as "-n") or else ``name``. None is left to the caller."""
    kind, bound = bound_of(name)
    if not value_holds(kind, value, bound):
        raise TextopiaError(f"{key or name} must be {bound.describe(kind)}, got {value}")


#: With reranking, the fewest samples a call draws: one prompt is chosen among as many as four
#: prompts of the default's ``candidates`` get. Chosen by the keep head within the reranker's
#: tiers, three rounds of new ideas, each with three new blind judges, scored one prompt among 32
#: against one among 16 (134 ideas; benchmarks/results/judged/ab_s29_pool32, ab_s29_pool32b,
#: ab_s29_pool32c): keep +0.32 / +0.38 / +0.32, -0.02 / -0.02 / -0.02 and +0.15 / 0.00 / -0.05,
#: coherence +0.18 to +0.30, -0.07 to +0.02 and +0.05 to +0.29, kept over the human prompt 2 to 9
#: points more often in each of the nine; 32 higher in 53% of 402 judged pairs (the LSTM's, 30
#: more ideas: keep +0.17 to +0.30, coherence +0.40 to +0.43, ab_s29_pool32_lstm). A one-prompt call
#: takes 1.6x the time (p50 0.157 -> 0.251 s, 2 threads, interleaved); the service draws 8 while
#: requests wait (``TEXTOPIA_BROWNOUT_POOL``). In session 22, 16 was judged above 8 (keep 5.75 /
#: 5.73 / 5.79 -> 5.88 / 5.93 / 6.05 on 110 ideas: benchmarks/results/judged/ab_s22_pool16), and
#: in session 28 again, by a little (ab_s28_pool8).
MIN_POOL = 32
#: :data:`MIN_POOL` for latent diffusion (:attr:`Generator.min_pool`), whose calls take 4 candidates
#: a prompt: two blind judges scored its one prompt among 8 samples below its one among 16 (keep
#: 5.82 / 5.66 -> 5.62 / 5.50, 8's keep higher in 23.5 and 24.5 of 50:
#: benchmarks/results/judged/ab_s20_latent_pool8), so it keeps 16; 32 was judged no better (keep
#: -0.06 / -0.10 / 0.00 on 50 new ideas: benchmarks/results/judged/ab_s29_pool32).
LATENT_MIN_POOL = 16


def rows_per_round(n: int, config: GenerationConfig, min_pool: int = MIN_POOL) -> int:
    """Rows one sampling round of a call for ``n`` prompts draws: with reranking ``n`` times
    ``config.candidates`` and at least ``min_pool`` (the generator's
    :attr:`~textopia.generation.base.Generator.min_pool`), else ``n`` (the service's batcher sizes
    its batches by it)."""
    return max(n * config.candidates, min_pool) if config.rerank else n


def check_rows(n: int, config: GenerationConfig, key: str = "candidates", min_pool: int = MIN_POOL) -> None:
    """Raise :class:`TextopiaError` when one sampling round of a call for ``n`` prompts would draw
    more than :data:`MAX_ROWS` rows (:func:`rows_per_round`); ``key`` names the setting in the
    message ("--candidates" on the command line)."""
    rows = rows_per_round(n, config, min_pool)
    if rows > MAX_ROWS:
        raise TextopiaError(f"n x {key} must be at most {MAX_ROWS} (samples drawn at once), got {n} x "
                            f"{config.candidates} = {rows}")


def from_nothing(idea: str | None, config: GenerationConfig) -> tuple[str | None, GenerationConfig]:
    """A call's idea with its spacing made single, and its config: an idea that is None, empty or
    only spaces is none, and the prompts are written from nothing (in either mode: continuing
    nothing is writing from nothing). The CLI, the Python API and the HTTP API treat it alike."""
    idea = " ".join(idea.split()) if idea else ""
    if idea:
        return idea, config
    return None, config if config.mode == "expand" else dataclasses.replace(config, mode="expand")


def schema_bounds(name: str) -> dict[str, float]:
    """A setting's bound as pydantic's ``Field`` keywords (``ge``, ``gt``, ``le``, ``lt``), so that
    the HTTP API's request bodies and their OpenAPI document hold the bound declared here."""
    _, bound = bound_of(name)
    out: dict[str, float] = {}
    if bound.low is not None:
        out["gt" if bound.low_open else "ge"] = bound.low
    if bound.high is not None:
        out["lt" if bound.high_open else "le"] = bound.high
    return out


__all__ = ["CALL_BOUNDS", "MAX_CANDIDATES", "MAX_NEW_TOKENS", "MAX_PROMPTS", "MAX_ROWS", "MIN_POOL", "LATENT_MIN_POOL", "GenerationConfig", "Mode",
           "bound_of", "check_rows", "check_setting", "describe", "from_nothing", "rows_per_round", "schema_bounds"]
