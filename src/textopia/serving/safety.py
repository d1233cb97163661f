"""Safe mode's words and patterns, for the service's modules: :mod:`textopia.safety`, where every
front end shares them."""

from textopia.safety import NSFW_WORDS, banned_pattern, clean_words, contains_banned, mask_banned, nsfw_pattern

__all__ = ["NSFW_WORDS", "banned_pattern", "clean_words", "contains_banned", "mask_banned", "nsfw_pattern"]
