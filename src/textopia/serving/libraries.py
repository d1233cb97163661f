"""transformers and diffusers imported once, on one thread, before the service's threads use them.

Both packages are lazy modules: ``from transformers import X`` imports X's submodule on first
use. Two threads doing a first resolution at once can each meet the other's half-initialised
module and fail (``ImportError: cannot import name 'PreTrainedTokenizerFast' from
'transformers'``): the CLIP counter's thread and the model store's loader did, at startup. After
:func:`import_libraries` every name below is a plain attribute lookup, safe from any thread.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time

logger = logging.getLogger(__name__)

#: What Textopia's loaders, models and CLIP counter take from each module (by name, lazily).
NAMES: dict[str, tuple[str, ...]] = {
    "transformers": ("PreTrainedTokenizerFast", "PreTrainedTokenizerBase", "AutoTokenizer", "AutoConfig",
                     "AutoModelForCausalLM", "GPT2Config", "GPT2LMHeadModel", "CLIPTokenizer",
                     "CLIPTokenizerFast"),
    "transformers.modeling_outputs": ("CausalLMOutputWithPast",),
    "diffusers": ("DDPMScheduler", "DDIMScheduler"),
}

_LOCK = threading.Lock()
_imported = False


def import_libraries() -> None:
    """Import every module and name of :data:`NAMES` (once per process; about 4 s cold).

    Callers wait while another thread does it. A module or name that cannot be imported is
    skipped: the code that needs it reports that itself, on one line.
    """
    global _imported
    with _LOCK:
        if _imported:
            return
        started = time.perf_counter()
        for module_name, names in NAMES.items():
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                logger.warning("cannot import %s: %s", module_name, exc)
                continue
            for name in names:
                try:
                    getattr(module, name)  # imports the name's submodule
                except (ImportError, AttributeError, RuntimeError):  # a name this version lacks
                    logger.debug("%s has no %s", module_name, name)
        _imported = True
        logger.info("transformers and diffusers imported in %.1f s", time.perf_counter() - started)
