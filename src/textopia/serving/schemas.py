"""Request and response bodies of the HTTP API, with the bounds that keep the service up.

The bounds are part of the OpenAPI document at ``/openapi.json``; a request outside them is
answered 422 before any model runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StringConstraints

from textopia.bounds import DRAWN_SEEDS
from textopia.generation.config import MAX_NEW_TOKENS, MAX_PROMPTS, GenerationConfig, describe, schema_bounds  # noqa: F401

_D = GenerationConfig()  # the decoding defaults, defined once

MAX_IDEA_CHARS = 500  # characters; a prompt of 77 CLIP tokens is about 400 characters
MAX_N = MAX_PROMPTS  # prompts per request: the Python API's and the CLI's bound
MAX_BANNED_WORDS = 64  # entries in banned_words
MAX_WORD_CHARS = 64  # characters per banned word
MAX_MODEL_NAME_CHARS = 256  # characters in a model name
#: A seed the service takes: below :data:`~textopia.bounds.DRAWN_SEEDS`, a JSON number every reader
#: holds exactly (a double reads 2**64 - 1 as 2**64), the seeds it draws itself.
MAX_SEED = DRAWN_SEEDS - 1

BannedWord = Annotated[str, StringConstraints(min_length=1, max_length=MAX_WORD_CHARS)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_MODEL_NAME_CHARS)]
PromptText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_IDEA_CHARS)]


def _json_number(value: Any) -> Any:
    """Refuse what pydantic would coerce to a number but JSON Schema does not call one."""
    if isinstance(value, (bool, str)):
        raise ValueError("must be a JSON number")
    return value


# Numbers as JSON Schema reads them: 10.0 is an integer, but true and "10" are not numbers.
JsonInt = Annotated[int, BeforeValidator(_json_number)]
JsonFloat = Annotated[float, BeforeValidator(_json_number)]
# Bounds before the validator, so that they reach the JSON schema inside ``Seed | None``; every
# bound but the seed's is the Python API's own (:mod:`textopia.generation.config`).
Seed = Annotated[int, Field(ge=0, le=MAX_SEED), BeforeValidator(_json_number)]
Guidance = Annotated[float, Field(**schema_bounds("guidance")), BeforeValidator(_json_number)]
Temperature = Annotated[float, Field(**schema_bounds("temperature")), BeforeValidator(_json_number)]
RepetitionPenalty = Annotated[float, Field(**schema_bounds("repetition_penalty")), BeforeValidator(_json_number)]
Spread = Annotated[float, Field(**schema_bounds("spread")), BeforeValidator(_json_number)]
Strength = Annotated[float, Field(**schema_bounds("strength")), BeforeValidator(_json_number)]
DDIMSteps = Annotated[int, Field(**schema_bounds("steps")), BeforeValidator(_json_number)]
LMWeight = Annotated[float, Field(**schema_bounds("lm_weight")), BeforeValidator(_json_number)]
Candidates = Annotated[int, Field(**schema_bounds("candidates")), BeforeValidator(_json_number)]
Share = Annotated[float, Field(**schema_bounds("idea_prefix")), BeforeValidator(_json_number)]
RefineSteps = Annotated[int, Field(**schema_bounds("refine_steps")), BeforeValidator(_json_number)]
REFINE_STEPS_HELP = ("Gradient steps that refine each prompt's encoded posterior mean on the decoder's likelihood "
                     "of it (0: the encoder's own mean); the model's default when unset.")


class _Strict(BaseModel):
    """Unknown fields are an error, so a typo in a field's name is not silently ignored;
    numbers and booleans are not coerced from strings (see :data:`JsonInt`, ``StrictBool``)."""

    model_config = ConfigDict(extra="forbid")


class GenerateRequest(_Strict):
    """What to write: the body of ``POST /v1/generate`` and of ``POST /invocations``."""

    idea: str = Field(
        "",
        max_length=MAX_IDEA_CHARS,
        description="A short idea (expand mode) or the prompt's beginning (continue mode); "
        "empty writes prompts from nothing.",
        examples=["a lighthouse in a storm"],
    )
    mode: Literal["expand", "continue"] = Field(
        "expand", description="expand: write a prompt around the idea; continue: go on from it "
        "(an empty idea is written from nothing in either mode)."
    )
    n: JsonInt = Field(4, **schema_bounds("n"), description="How many distinct prompts to write.")
    temperature: Temperature | None = Field(None, description="Softmax temperature; null or left "
                                          f"out: the model's own ({_D.temperature}, lower for latent diffusion).")
    top_p: JsonFloat = Field(_D.top_p, **schema_bounds("top_p"), description="Nucleus mass; 1 disables it.")
    top_k: JsonInt = Field(_D.top_k, **schema_bounds("top_k"), description="Keep the k likeliest tokens; 0 disables it.")
    repetition_penalty: RepetitionPenalty | None = Field(None, description="CTRL penalty; 1 is none; null or left out: "
                                                 f"the model's own ({_D.repetition_penalty}, 1.0 for the LSTM).")
    min_p: JsonFloat = Field(_D.min_p, **schema_bounds("min_p"), description="Min-p sampling: drop tokens below this "
                             "share of the likeliest token's probability; 0 disables it.")
    idea_boost: JsonFloat = Field(_D.idea_boost, **schema_bounds("idea_boost"), description="Expand mode: nats added to the "
                                  "idea's words until each is written; 0 disables it.")
    candidates: Candidates | None = Field(None, description="Samples drawn per "
                                       f"prompt asked for, among which the reranker chooses; null or left out: "
                                       f"the model's own ({_D.candidates}, 4 for latent diffusion).")
    idea_prefix: Share | None = Field(None, description="Expand mode: share of the "
                                          "candidates that open with the idea's own words; null or left out: "
                                          f"the model's own ({_D.idea_prefix}, 1 for latent diffusion).")
    known_words_only: StrictBool | None = Field(None, description="Spell only words of the model's corpus and "
                                                "of the idea; null or left out: the model's own (on for latent "
                                                "diffusion, off for the others).")
    max_new_tokens: JsonInt = Field(
        _D.max_new_tokens, **schema_bounds("max_new_tokens"), description="Cap on generated tokens per prompt."
    )
    seed: Seed | None = Field(
        None, description="Same seed and settings give the same prompts; "
        "a random one is drawn (and returned) when unset."
    )
    model: ModelName | None = Field(
        None, description="A name from GET /v1/models; the default model when unset."
    )
    banned_words: list[BannedWord] = Field(
        default_factory=list,
        max_length=MAX_BANNED_WORDS,
        description="Words that must not appear (whole words, any case), e.g. artist names.",
        examples=[["greg rutkowski", "artstation"]],
    )
    safe_mode: StrictBool = Field(
        True, description="Ban a list of NSFW words and drop prompts that still contain one."
    )
    guidance: Guidance | None = Field(
        None, description="Latent diffusion models only: the classifier-free guidance "
        f"scale, {describe('guidance')} (0 ignores the idea; the model's own default when unset: see GET /v1/models)."
    )
    steps: DDIMSteps | None = Field(
        None, description=f"Latent diffusion models only: DDIM steps, {describe('steps')} (the model's own default when unset: "
        "see GET /v1/models)."
    )
    lm_weight: LMWeight | None = Field(
        None, description="Latent diffusion models only: the language model's weight in shallow fusion, "
        f"{describe('lm_weight')} "
        "(0: the latent's decoder alone; the model's own default when unset: see GET /v1/models)."
    )


class PromptOut(BaseModel):
    """One written prompt."""

    prompt: str
    num_tokens: int = Field(description="Tokens the model generated (our tokenizer).")
    clip_tokens: int | None = Field(
        None, description="CLIP tokens in the prompt, start and end tokens excluded (Stable "
        "Diffusion 1.x reads at most 75); null when the CLIP tokenizer is not available."
    )
    finished: bool = Field(description="True if the model ended it, False if it hit the cap.")


class Timing(BaseModel):
    """Where a request's time went, in seconds."""

    queue_s: float = Field(description="Waiting for a free worker, in seconds.")
    generate_s: float = Field(description="Running the model, in seconds.")
    total_s: float = Field(description="From the request's arrival to its answer, in seconds.")


class GenerateResponse(BaseModel):
    """The prompts written for one request."""

    model: str
    kind: str
    seed: int = Field(description="The seed used; send it back to get the same prompts.")
    idea: str
    mode: Literal["expand", "continue"] = Field(description="The mode used.")
    prompts: list[PromptOut]
    dropped: int = Field(
        0, description="Prompts removed because they held a banned or NSFW word."
    )
    timing: Timing


class ModelInfo(BaseModel):
    """One loaded model."""

    name: str
    kind: str = Field(description="Model family: gpt, lstm, vae, ...")
    parameters: int | None = Field(None, description="Parameter count, when the model says it.")
    latent: bool = Field(description="True for models with a latent space (interpolate, variations).")
    default: bool = Field(description="True for the model used when a request names none.")
    default_temperature: float | None = Field(
        None, description="The temperature a generate request that leaves it out gets from this model.")
    default_known_words_only: bool | None = Field(
        None, description="known_words_only for a generate request that leaves it out.")
    default_spread: float | None = Field(
        None, description="Latent models only: the spread a variations request that leaves it out gets "
                          "(latent diffusion: its default_strength).")
    default_strength: float | None = Field(
        None, description="Latent diffusion models only: the SDEdit strength a variations request that leaves "
                          "it out gets.")
    info: dict[str, Any] = Field(default_factory=dict, description="What the model says of itself.")


class ModelsResponse(BaseModel):
    """Every loaded model."""

    default: str | None
    models: list[ModelInfo]


class ReconstructRequest(_Strict):
    """Encode a prompt to its posterior mean and decode it greedily (VAE models only)."""

    prompt: PromptText = Field(examples=["portrait of an old sailor, oil painting"])
    refine_steps: RefineSteps | None = Field(None, description=REFINE_STEPS_HELP)
    model: ModelName | None = Field(None, description="A latent model; the first one when unset.")
    safe_mode: StrictBool = Field(True, description="Mask NSFW words in the reconstruction.")


class InterpolateRequest(_Strict):
    """Decode the path between two prompts' latents (VAE models only)."""

    prompt_a: PromptText = Field(examples=["a castle on a hill, oil painting"])
    prompt_b: PromptText = Field(examples=["a spaceship over a city, digital art"])
    steps: JsonInt = Field(8, **schema_bounds("points"), description="Points on the path, ends included.")
    refine_steps: RefineSteps | None = Field(None, description=REFINE_STEPS_HELP)
    model: ModelName | None = Field(None, description="A latent model; the first one when unset.")
    safe_mode: StrictBool = Field(True, description="Mask NSFW words in the decoded prompts.")


class VariationsRequest(_Strict):
    """Decode latents drawn around one prompt's posterior (VAE models only)."""

    prompt: PromptText = Field(examples=["a castle on a hill, oil painting"])
    n: JsonInt = Field(8, **schema_bounds("n"), description="How many variations.")
    spread: Spread | None = Field(None, description="A VAE's scale of the posterior's std (latent diffusion takes "
                                                    "it as strength); the model's default when unset.")
    strength: Strength | None = Field(None, description="Latent diffusion's SDEdit strength: the share of the noise "
                                                        "schedule the prompt's latent is noised up; the model's "
                                                        "default when unset.")
    seed: Seed | None = Field(None, description="Same seed, same variations; random when unset.")
    refine_steps: RefineSteps | None = Field(None, description=REFINE_STEPS_HELP)
    model: ModelName | None = Field(None, description="A latent model; the first one when unset.")
    safe_mode: StrictBool = Field(True, description="Drop variations that hold an NSFW word.")


class LatentResponse(BaseModel):
    """Prompts decoded from a latent space."""

    model: str
    prompts: list[str]
    dropped: int = 0
    timing: Timing


class Status(BaseModel):
    """Liveness or readiness."""

    status: str
    models: list[str] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Every error: a message for people, and the invalid fields when there are any."""

    error: str
    details: list[dict[str, Any]] | None = None
