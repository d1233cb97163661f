"""Textopia's ComfyUI nodes: write text-to-image prompts inside a ComfyUI graph.

ComfyUI finds a node pack by its ``NODE_CLASS_MAPPINGS`` (node type -> class) and
``NODE_DISPLAY_NAME_MAPPINGS`` (node type -> title); each class says its inputs
(:meth:`INPUT_TYPES`), its outputs (``RETURN_TYPES``, ``RETURN_NAMES``, ``OUTPUT_IS_LIST``) and
the method ComfyUI calls with the inputs as keywords (``FUNCTION``). The folder
``comfyui_textopia/`` at the repository's root re-exports the mappings below: link it into
``ComfyUI/custom_nodes/`` with Textopia installed in ComfyUI's Python. Nothing here imports ComfyUI.

Nodes (category "Textopia"):

* **Textopia: idea to prompts**: a short idea in, ``n`` prompts out (:meth:`Generator.generate`).
* **Textopia: prompt variations**: a prompt in, ``n`` variations out, decoded from latents drawn
  around the prompt's (a latent model's :meth:`LatentGenerator.variations`, as ``textopia variations``).

Both output a list of strings (``OUTPUT_IS_LIST``): ComfyUI runs the nodes after them once per
prompt, e.g. a CLIP Text Encode node per prompt. A bad input raises a one-line ``ValueError``,
which ComfyUI shows on the node. Models are loaded once per process
(:func:`textopia.integrations.cache.cached_model`).
"""

from __future__ import annotations

from typing import Any

from textopia.bounds import MAX_SEED
from textopia.errors import TextopiaError
from textopia.generation.base import LatentGenerator
from textopia.generation.config import MAX_PROMPTS, GenerationConfig, bound_of, check_setting
from textopia.generation.loader import DEFAULT_MODEL, LATENT_MODEL, embedded_models, generator_class, resolve_model
from textopia.integrations.cache import cached_model
from textopia.safety import NSFW_WORDS, banned_pattern, clean_words, contains_banned

CATEGORY = "Textopia"
#: The temperature widget's value that leaves the temperature to the model (1.0, or 0.9 for latent
#: diffusion: :attr:`Generator.default_decoding`); ComfyUI's number widgets cannot be empty.
MODEL_TEMPERATURE = 0.0

_SEED = ("INT", {"default": 0, "min": 0, "max": MAX_SEED,
                 "tooltip": "the same seed and inputs, the same prompts"})
_SAFE_MODE = ("BOOLEAN", {"default": True, "tooltip": "ban a list of NSFW words while writing and drop "
                                                      "prompts that still hold one"})


def latent_models() -> list[str]:
    """The embedded models with a latent space (those that write variations), by their
    checkpoints' own kind, without loading them."""
    from textopia.models.checkpoint import read_meta
    from textopia.models.registry import get_spec

    return [name for name in embedded_models()
            if issubclass(generator_class(get_spec(read_meta(resolve_model(name))["kind"]).role), LatentGenerator)]


def _text(value: Any, name: str) -> str:
    """``value`` with its runs of white space collapsed.

    Raises:
        ValueError: not a text, or only white space.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty text, got {value!r}")
    return " ".join(value.split())


def _count(n: Any) -> int:
    """``n`` checked against Textopia's bound on how many prompts one call writes
    (:data:`textopia.generation.config.CALL_BOUNDS`).

    Raises:
        ValueError: out of that bound (one line).
    """
    try:
        check_setting("n", n)
    except TextopiaError as e:
        raise ValueError(str(e)) from None
    return n


def _kept(prompts: list[str], safe_mode: bool, banned: list[str]) -> list[str]:
    """``prompts`` without those holding a banned word (safe mode's words too, when on).

    Raises:
        ValueError: none is left (an empty list would run nothing downstream, silently).
    """
    pattern = banned_pattern([*banned, *(NSFW_WORDS if safe_mode else ())])
    kept = [p for p in prompts if not contains_banned(p, pattern)]
    if not kept:
        raise ValueError(f"every prompt written ({len(prompts)}) held a banned word; change the seed or the input")
    return kept


class IdeaToPrompts:
    """ComfyUI node "Textopia: idea to prompts": ``n`` distinct prompts written from a short idea.

    Inputs (keywords of :meth:`write`): ``idea`` (str), ``model`` (an embedded model's name),
    ``n`` (int, 1 to 64), ``seed`` (int, 0 to 2**64 - 1), ``temperature`` (float, > 0; 0: the
    model's own), ``safe_mode`` (bool); optional ``banned_words`` (str, comma-separated).
    Output ``prompts``: a list of up to ``n`` strings (fewer where safe mode or ``banned_words``
    dropped some, or the model found fewer distinct prompts).
    """

    CATEGORY = CATEGORY
    DESCRIPTION = "Write detailed text-to-image prompts from a short idea with a Textopia model."
    FUNCTION = "write"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("prompts",)
    OUTPUT_IS_LIST = (True,)
    OUTPUT_TOOLTIPS = ("one prompt per item: nodes after this one run once per prompt",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, tuple]]:  # noqa: N802 - ComfyUI's name
        """The inputs as ComfyUI reads them: ``{"required": {...}, "optional": {...}}``, each a
        ``(type, options)`` pair, or ``(choices,)`` for a list of choices."""
        return {
            "required": {
                "idea": ("STRING", {"multiline": False, "default": "a castle on a hill",
                                    "tooltip": "a few words: the subject the prompts are written around"}),
                "model": (embedded_models(), {"default": DEFAULT_MODEL}),
                "n": ("INT", {"default": 4, "min": 1, "max": MAX_PROMPTS, "tooltip": "how many distinct prompts"}),
                "seed": _SEED,
                "temperature": ("FLOAT", {"default": MODEL_TEMPERATURE, "min": 0.0,
                                          "max": bound_of("temperature")[1].high, "step": 0.05,
                                          "tooltip": "softmax temperature; 0: the model's own"}),
                "safe_mode": _SAFE_MODE,
            },
            "optional": {
                "banned_words": ("STRING", {"multiline": False, "default": "",
                                            "tooltip": "comma-separated words the prompts must not contain"}),
            },
        }

    def write(self, idea: str, model: str, n: int, seed: int, temperature: float, safe_mode: bool,
              banned_words: str = "") -> tuple[list[str]]:
        """``(prompts,)``: up to ``n`` prompts written from ``idea`` by ``model``.

        Raises:
            ValueError: an empty idea, an unknown model, or a number out of its range (one line).
        """
        idea, n = _text(idea, "idea"), _count(n)
        banned = clean_words(banned_words.split(","))
        settings = {"seed": seed, "temperature": None if temperature == MODEL_TEMPERATURE else temperature,
                    "banned_words": tuple(clean_words([*banned, *(NSFW_WORDS if safe_mode else ())]))}
        try:
            GenerationConfig(**{**settings, "temperature": settings["temperature"] or GenerationConfig.temperature}
                             ).validate()  # before the model loads
            generations = cached_model(model).generate(idea, n, **settings)
        except TextopiaError as e:
            raise ValueError(str(e)) from None
        return (_kept([g.prompt for g in generations], safe_mode, banned),)


class PromptVariations:
    """ComfyUI node "Textopia: prompt variations": ``n`` variations of a prompt, decoded from
    latents drawn around the prompt's posterior by a latent model (as ``textopia variations``).

    Inputs (keywords of :meth:`vary`): ``prompt`` (str), ``model`` (an embedded latent model),
    ``n`` (int, 1 to 64), ``seed`` (int, 0 to 2**64 - 1), ``safe_mode`` (bool).
    Output ``prompts``: a list of up to ``n`` strings (fewer where safe mode dropped some).
    """

    CATEGORY = CATEGORY
    DESCRIPTION = "Write variations of a prompt with a Textopia latent model."
    FUNCTION = "vary"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("prompts",)
    OUTPUT_IS_LIST = (True,)
    OUTPUT_TOOLTIPS = ("one variation per item: nodes after this one run once per variation",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, tuple]]:  # noqa: N802 - ComfyUI's name
        """The inputs as ComfyUI reads them (see :meth:`IdeaToPrompts.INPUT_TYPES`)."""
        choices = latent_models()
        return {
            "required": {
                "prompt": ("STRING", {"multiline": True, "default": "a castle on a hill, oil painting, golden hour",
                                      "tooltip": "the prompt to vary"}),
                "model": (choices, {"default": LATENT_MODEL if LATENT_MODEL in choices else choices[0]}),
                "n": ("INT", {"default": 8, "min": 1, "max": MAX_PROMPTS, "tooltip": "how many variations"}),
                "seed": _SEED,
                "safe_mode": _SAFE_MODE,
            },
            "optional": {},
        }

    def vary(self, prompt: str, model: str, n: int, seed: int, safe_mode: bool) -> tuple[list[str]]:
        """``(prompts,)``: up to ``n`` variations of ``prompt`` by ``model``.

        Raises:
            ValueError: an empty prompt, a model without a latent space, or a number out of its
                range (one line).
        """
        prompt, n = _text(prompt, "prompt"), _count(n)
        try:
            GenerationConfig(seed=seed).validate()  # the seed's bound, before the model loads
            generator = cached_model(model)
            if not isinstance(generator, LatentGenerator):
                raise TextopiaError(f"model {model!r} ({generator.kind}) has no latent space; choose one of "
                                    f"{', '.join(latent_models())}")
            variations = generator.variations(prompt, n, seed=seed)
        except TextopiaError as e:
            raise ValueError(str(e)) from None
        return (_kept(variations, safe_mode, []),)


NODE_CLASS_MAPPINGS = {"TextopiaIdeaToPrompts": IdeaToPrompts, "TextopiaPromptVariations": PromptVariations}
NODE_DISPLAY_NAME_MAPPINGS = {"TextopiaIdeaToPrompts": "Textopia: idea to prompts",
                              "TextopiaPromptVariations": "Textopia: prompt variations"}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "IdeaToPrompts", "PromptVariations", "latent_models"]
