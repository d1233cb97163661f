"""Textopia: write detailed, relevant, varied text-to-image prompts from a short idea.

>>> import textopia
>>> gen = textopia.load()                      # the embedded default model
>>> [g.prompt for g in gen.generate("woman portrait", n=4, seed=0)]
"""

from textopia._version import __version__  # noqa: E402

from textopia.generation.base import Generation, Generator, TextopiaError  # noqa: E402
from textopia.generation.loader import DEFAULT_MODEL, LATENT_MODEL, embedded_models, load  # noqa: E402

__all__ = ["DEFAULT_MODEL", "LATENT_MODEL", "Generation", "Generator", "TextopiaError", "__version__", "embedded_models", "load"]
