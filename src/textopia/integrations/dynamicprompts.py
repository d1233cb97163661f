"""A Dynamic Prompts generator that writes every prompt of a template out with Textopia.

`dynamicprompts <https://github.com/adieyal/dynamicprompts>`_ is the library behind the "Dynamic
Prompts" extension of A1111 and Forge and the Dynamic Prompts nodes of ComfyUI. Its generators
take a template (``"a {red|blue} castle, __artists__"``) and return prompts; one generator may wrap
another, as its ``MagicPromptGenerator`` wraps one and continues each prompt with a language model.
:class:`TextopiaPromptGenerator` wraps one the same way and reads each prompt as an idea that a
Textopia model writes a whole prompt from (``textopia.load(model).generate(idea, n=1)``)::

    from textopia.integrations.dynamicprompts import TextopiaPromptGenerator

    generator = TextopiaPromptGenerator(seed=0)       # the embedded default model
    generator.generate("a {red|blue} castle on a hill", 4)

Needs ``pip install dynamicprompts`` (Textopia's ``dynamicprompts`` extra).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from typing import Any

from dynamicprompts.generators.promptgenerator import PromptGenerator
from dynamicprompts.generators.randomprompt import RandomPromptGenerator

from textopia.bounds import MAX_SEED
from textopia.errors import TextopiaError
from textopia.generation.base import Generator
from textopia.generation.loader import DEFAULT_MODEL
from textopia.integrations.cache import cached_model

logger = logging.getLogger(__name__)


class TextopiaPromptGenerator(PromptGenerator):
    """Dynamic Prompts' ``PromptGenerator`` interface, backed by a Textopia model.

    ``generate(template, num_images)`` asks the wrapped generator for its prompts and returns, in
    the same order, one prompt that the Textopia model wrote from each (expand mode: the idea's
    words kept, details, style and lighting written around them).

    Args:
        prompt_generator: the generator whose prompts are the ideas; None: a
            ``RandomPromptGenerator`` seeded with ``seed`` (Dynamic Prompts' own default for
            random prompts).
        model: an embedded model's name (:func:`textopia.embedded_models`), a checkpoint
            directory (either loaded once per process), or a loaded :class:`~textopia.Generator`.
        seed: seeds both the wrapped default generator and the stream of per-prompt seeds that
            Textopia writes with: the same seed, the same prompts, call after call. None: random.
        banned_words: words the prompts must not contain (e.g. :data:`textopia.safety.NSFW_WORDS`).
        **settings: any other keyword of :meth:`textopia.Generator.generate` (``temperature``,
            ``mode``, ``max_new_tokens``, ``candidates``, ...); the model's defaults otherwise.

    Raises:
        TextopiaError: the model cannot be loaded, ``seed`` is out of range (0 to 2**64 - 1),
            or a setting is out of its range.
        TypeError: a keyword that :meth:`textopia.Generator.generate` does not take.
    """

    def __init__(
        self,
        prompt_generator: PromptGenerator | None = None,
        model: str | Generator = DEFAULT_MODEL,
        *,
        seed: int | None = None,
        banned_words: Iterable[str] = (),
        **settings: Any,
    ) -> None:
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise TextopiaError(f"seed must be an integer from 0 to 2**64 - 1 ({MAX_SEED:,}), got {seed}")
        self._prompt_generator = prompt_generator or RandomPromptGenerator(seed=seed)
        self._model = cached_model(model) if isinstance(model, str) else model
        self._settings = {**settings, "banned_words": tuple(banned_words)}
        # A bad setting fails now, not at the first template (a family's own settings, such as latent
        # diffusion's guidance, are checked by the model when it writes).
        self._model.decoding(**{k: v for k, v in self._settings.items()
                                if k not in self._model.extra_settings}).validate()
        self._seeds = random.Random(seed)

    @property
    def model(self) -> Generator:
        """The Textopia model that writes the prompts."""
        return self._model

    def generate(self, *args: Any, **kwargs: Any) -> list[str]:
        """The wrapped generator's prompts for a template, each written out by the Textopia model.

        Args:
            *args, **kwargs: the wrapped generator's (``template``, ``num_images`` for the random
                one). Its ``seeds`` (an int, or one per prompt, as A1111's extension passes the
                images' seeds) also seed Textopia, so that an image's seed fixes its prompt;
                without them the prompts take the next seeds of this generator's own stream.

        Returns:
            one prompt per prompt of the wrapped generator, in its order; an idea for which the
            model wrote nothing allowed (every candidate held a banned word) is returned as it is.

        Raises:
            TextopiaError: a seed is out of range (0 to 2**64 - 1).
        """
        ideas = self._prompt_generator.generate(*args, **kwargs)
        seeds = self._prompt_seeds(kwargs.get("seeds"), len(ideas))
        prompts = []
        for idea, seed in zip(ideas, seeds):
            written = self._model.generate(idea, n=1, seed=seed, **self._settings)
            if not written:
                logger.warning("Textopia wrote no prompt for %r without a banned word; kept it as it is", idea)
            prompts.append(written[0].prompt if written else idea)
        return prompts

    def _prompt_seeds(self, seeds: int | list[int] | None, count: int) -> list[int]:
        """One Textopia seed per idea: the caller's ``seeds`` where they give one per idea (an int
        stands for every idea), else the next ``count`` seeds of this generator's stream."""
        if isinstance(seeds, int):
            return [seeds] * count
        if seeds and len(seeds) == 1:
            return list(seeds) * count
        if seeds and len(seeds) == count:
            return list(seeds)
        return [self._seeds.getrandbits(63) for _ in range(count)]


__all__ = ["TextopiaPromptGenerator"]
