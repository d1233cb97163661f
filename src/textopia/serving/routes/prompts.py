"""The JSON API under ``/v1``: write prompts from an idea, list the models, and explore a VAE's
latent space (reconstruct, interpolate, variations).

Generation is blocking work: it runs on the limiter's worker threads (:func:`_infer`), never on
the event loop. On a front (``state.endpoint``) generation goes to the inference endpoint.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter
from pydantic import ValidationError

from textopia.generation.base import TextopiaError, unsupported_settings
from textopia.generation.config import GenerationConfig, check_rows, from_nothing
from textopia.serving.clip import ClipCounter
from textopia.serving.deps import ServiceState, StateDep
from textopia.serving.endpoint_client import ENDPOINT_MODEL, EndpointError
from textopia.serving.errors import ERRORS, InferenceFailed, SettingNotForModel, SettingsConflict, validation_details
from textopia.serving.limiter import InferenceTimeout, ServerBusy, Timed
from textopia.serving.models import LoadedModel
from textopia.serving.safety import NSFW_WORDS, banned_pattern, clean_words, contains_banned, mask_banned, nsfw_pattern
from textopia.serving.schemas import (
    MAX_SEED,
    GenerateRequest,
    GenerateResponse,
    InterpolateRequest,
    LatentResponse,
    ModelInfo,
    ModelsResponse,
    PromptOut,
    ReconstructRequest,
    Timing,
    VariationsRequest,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

router = APIRouter(prefix="/v1", tags=["prompts"])


async def _infer(state: ServiceState, fn: Callable[[], T]) -> Timed[T]:
    """Run ``fn`` through the limiter; map unexpected failures to :class:`InferenceFailed`."""
    try:
        return await state.limiter.run(fn)
    except (ServerBusy, InferenceTimeout, TextopiaError, SettingNotForModel):
        raise
    except Exception as exc:
        logger.error("generation failed", exc_info=exc)
        raise InferenceFailed("generation failed with an internal error (see the server log)") from exc


def _generate_work(
    model: LoadedModel, body: GenerateRequest, idea: str, seed: int, banned: list[str],
    drop_pattern: Any, clip: ClipCounter, deadline: float | None = None,
) -> tuple[list[PromptOut], int]:
    """Blocking: write the prompts, drop any holding a banned word, count CLIP tokens; ``deadline``
    (``time.monotonic()``): when the request's client stops waiting (the batcher drops it unsampled)."""
    extra = {k: v for k, v in (("guidance", body.guidance), ("steps", body.steps), ("lm_weight", body.lm_weight))
             if v is not None}
    if unsupported_settings(model.generator, extra):
        raise SettingNotForModel(f"guidance, steps and lm_weight apply to latent diffusion models, and "
                                 f"{model.name!r} is not one")
    decoding = dict(
        mode=body.mode,
        temperature=body.temperature,  # None: the model's own, as for known_words_only
        top_p=body.top_p,
        top_k=body.top_k,
        repetition_penalty=body.repetition_penalty,
        max_new_tokens=body.max_new_tokens,
        min_new_tokens=min(GenerationConfig().min_new_tokens, body.max_new_tokens),
        seed=seed,
        banned_words=tuple(banned),
        min_p=body.min_p,
        idea_boost=body.idea_boost,
        known_words_only=body.known_words_only,
        candidates=body.candidates,
        idea_prefix=body.idea_prefix,
    )
    if model.batcher is not None and not extra:  # decoded together with the requests that came with it
        generations = model.batcher.generate(idea or None, body.n, model.generator.decoding(**decoding), deadline)
    else:
        generations = model.generator.generate(idea or None, body.n, **decoding, **extra)
    kept: list[PromptOut] = []
    dropped = 0
    for generation in generations:
        if contains_banned(generation.prompt, drop_pattern):
            dropped += 1
            continue
        kept.append(
            PromptOut(
                prompt=generation.prompt,
                num_tokens=int(generation.num_tokens),
                clip_tokens=clip(generation.prompt),
                finished=bool(generation.finished),
            )
        )
    return kept, dropped


async def _forward(state: ServiceState, body: GenerateRequest, arrived: float) -> GenerateResponse:
    """The front: send the request to the inference endpoint, check its answer's shape."""
    assert state.endpoint is not None
    payload = body.model_dump(mode="json", exclude_unset=True)
    if payload.get("model") == ENDPOINT_MODEL:  # the name the front lists when the endpoint lists none
        payload.pop("model")
    answer = await state.endpoint.invoke(payload)
    try:
        response = GenerateResponse.model_validate(answer)
    except ValidationError as exc:
        raise EndpointError(502, f"inference endpoint answered with a body that is not a generate answer: "
                                 f"{validation_details(exc.errors())[0]}") from None
    response.timing.total_s = round(time.perf_counter() - arrived, 6)
    return response


async def generate_prompts(state: ServiceState, body: GenerateRequest) -> GenerateResponse:
    """The answer to one generate request (``POST /v1/generate`` and ``POST /invocations``).

    Raises:
        ModelNotFound, SettingNotForModel, TextopiaError, ServerBusy, InferenceTimeout,
        InferenceFailed, ModelsNotReady; EndpointError on a front.
    """
    arrived = time.perf_counter()
    if state.endpoint is not None:
        return await _forward(state, body, arrived)
    model = state.require_store().get(body.model)
    if body.candidates is not None:  # the model's own candidates are within the rows for any n
        try:
            check_rows(body.n, GenerationConfig(candidates=body.candidates), "candidates")
        except TextopiaError as exc:
            raise SettingsConflict(str(exc)) from None
    idea, mode = from_nothing(body.idea, GenerationConfig(mode=body.mode))
    idea = idea or ""
    if mode.mode != body.mode:
        body = body.model_copy(update={"mode": mode.mode})
    seed = body.seed if body.seed is not None else secrets.randbelow(MAX_SEED + 1)
    user_banned = clean_words(body.banned_words)
    banned = clean_words([*user_banned, *(NSFW_WORDS if body.safe_mode else ())])
    pattern = banned_pattern(banned)
    deadline = time.monotonic() + state.limiter.timeout_s
    result = await _infer(
        state, lambda: _generate_work(model, body, idea, seed, banned, pattern, state.clip, deadline)
    )
    prompts, dropped = result.value
    return GenerateResponse(
        model=model.name,
        kind=model.kind,
        seed=seed,
        idea=idea,
        mode=body.mode,
        prompts=prompts,
        dropped=dropped,
        timing=Timing(
            queue_s=round(result.queue_s, 6),
            generate_s=round(result.run_s, 6),
            total_s=round(time.perf_counter() - arrived, 6),
        ),
    )


@router.post("/generate", response_model=GenerateResponse, responses=ERRORS)
async def generate(state: StateDep, body: GenerateRequest) -> GenerateResponse:
    """Write ``n`` text-to-image prompts from a short idea."""
    return await generate_prompts(state, body)


@router.get("/models", response_model=ModelsResponse)
async def list_models(state: StateDep) -> ModelsResponse:
    """The loaded models, with each one's kind and size."""
    if state.endpoint is not None:
        listed = await state.endpoint.models()
        if listed is not None:
            return ModelsResponse.model_validate(listed)
        return ModelsResponse(default=ENDPOINT_MODEL, models=[
            ModelInfo(name=ENDPOINT_MODEL, kind="endpoint", latent=False, default=True,
                      info={"endpoint": state.endpoint.invocations_url})])
    store = state.store
    if store is None:
        return ModelsResponse(default=None, models=[])
    return ModelsResponse(
        default=store.default,
        models=[
            ModelInfo(
                name=m.name, kind=m.kind, parameters=m.parameters, latent=m.latent,
                default=m.name == store.default, info=m.info,
                default_temperature=m.generator.default_decoding.temperature,
                default_known_words_only=m.generator.default_known_words_only(),
                default_spread=getattr(m.generator, "default_spread", None) if m.latent else None,
                default_strength=getattr(m.generator, "default_strength", None) if m.latent else None,
            )
            for m in store.models.values()
        ],
    )


async def _latent_view(state: ServiceState, name: str | None, safe_mode: bool,
                       work: Callable[[Any], Any]) -> tuple[str, list[str], Any, Timing]:
    """Run a latent view (``work(generator)`` on the latent model ``name``) through the limiter:
    ``(model name, prompts, the safe-mode pattern or None, timing)``."""
    arrived = time.perf_counter()
    model = state.require_store().get_latent(name)
    generator: Any = model.generator
    result = await _infer(state, lambda: [str(p) for p in work(generator)])
    timing = Timing(queue_s=round(result.queue_s, 6), generate_s=round(result.run_s, 6),
                    total_s=round(time.perf_counter() - arrived, 6))
    return model.name, result.value, nsfw_pattern() if safe_mode else None, timing


@router.post("/reconstruct", response_model=LatentResponse, responses=ERRORS)
async def reconstruct(state: StateDep, body: ReconstructRequest) -> LatentResponse:
    """The prompt encoded to its posterior mean and decoded greedily: one prompt (VAE models only)."""
    prompt = " ".join(body.prompt.split())
    name, texts, pattern, timing = await _latent_view(
        state, body.model, body.safe_mode,
        lambda generator: [generator.reconstruct(prompt, refine_steps=body.refine_steps)])
    return LatentResponse(model=name, prompts=[mask_banned(t, pattern) for t in texts], timing=timing)


@router.post("/interpolate", response_model=LatentResponse, responses=ERRORS)
async def interpolate(state: StateDep, body: InterpolateRequest) -> LatentResponse:
    """Decode ``steps`` prompts on the path between two prompts' latents (VAE models only)."""
    a, b = " ".join(body.prompt_a.split()), " ".join(body.prompt_b.split())
    name, prompts, pattern, timing = await _latent_view(
        state, body.model, body.safe_mode,
        lambda generator: generator.interpolate(a, b, body.steps, refine_steps=body.refine_steps))
    return LatentResponse(model=name, prompts=[mask_banned(p, pattern) for p in prompts], timing=timing)


@router.post("/variations", response_model=LatentResponse, responses=ERRORS)
async def variations(state: StateDep, body: VariationsRequest) -> LatentResponse:
    """Decode ``n`` prompts from latents drawn around one prompt's posterior (VAE models only)."""
    prompt = " ".join(body.prompt.split())
    name, prompts, pattern, timing = await _latent_view(
        state, body.model, body.safe_mode,
        lambda generator: generator.variations(prompt, body.n, spread=body.spread, strength=body.strength,
                                               seed=body.seed, refine_steps=body.refine_steps))
    kept = [p for p in prompts if not contains_banned(p, pattern)]
    return LatentResponse(model=name, prompts=kept, dropped=len(prompts) - len(kept), timing=timing)
