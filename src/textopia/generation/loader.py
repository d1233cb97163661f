"""``load``: an embedded model's name or a checkpoint directory -> a ready :class:`Generator`."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from textopia.generation.base import Generator, TextopiaError
from textopia.models.critic import CRITIC_DIR
from textopia.text import KNOWN_WORDS_FILE, KnownWords

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
#: The embedded latent model (latent diffusion over the prompt autoencoder): the latent views' default.
LATENT_MODEL = "latent"


def assets_dir() -> Path:
    """The folder holding the embedded models (one checkpoint directory each)."""
    return Path(str(resources.files("textopia") / "assets"))


def embedded_models() -> list[str]:
    """Names of the models shipped inside the package."""
    root = assets_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())


def resolve_model(name_or_dir: str | Path | None) -> Path:
    """The checkpoint directory of an embedded model's name or a path.

    Raises:
        TextopiaError: neither an embedded model nor an existing directory.
    """
    name = str(name_or_dir or DEFAULT_MODEL)
    if name in embedded_models():
        return assets_dir() / name
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    known = ", ".join(embedded_models()) or "none installed"
    raise TextopiaError(f"unknown model {name!r}: not an embedded model ({known}) nor a checkpoint directory")


def critic_dir(path: Path) -> Path | None:
    """The coherence critic that reranks ``path``'s prompts: the checkpoint's own ``critic/``
    folder, else for an embedded model the one shipped with the default (it tells human prompts
    from machine ones whatever wrote them), else None."""
    own = path / CRITIC_DIR
    if (own / "config.json").is_file():
        return own
    shipped = assets_dir() / DEFAULT_MODEL / CRITIC_DIR
    if path.resolve().parent == assets_dir().resolve() and (shipped / "config.json").is_file():
        return shipped
    return None


def generator_class(role: type) -> type:
    """The Generator class that serves models of ``role`` (a :class:`textopia.models.registry.Role`).

    Raises:
        TextopiaError: no Generator serves that role.
    """
    from textopia.generation.decoder import DecoderGenerator
    from textopia.generation.diffusion import DiffusionGenerator
    from textopia.generation.vae import VAEGenerator
    from textopia.models.registry import CausalLM, LatentAutoencoder, LatentDiffusionModel

    for served, cls in ((LatentDiffusionModel, DiffusionGenerator), (LatentAutoencoder, VAEGenerator),
                        (CausalLM, DecoderGenerator)):
        if issubclass(role, served):
            return cls
    raise TextopiaError(f"no generator for models of role {role.__name__}")


ENGINES = ("auto", "textopia", "transformers")


#: The lean engine's weights for decoding, by ``load(weight_dtype=...)``: "auto" is "mixed" (float16
#: blocks, an int8 output layer: perplexity within 1% of float32; see
#: ``GPT2Engine.set_weight_dtype``).
WEIGHT_DTYPES = ("auto", "float32", "float16", "mixed", "bfloat16")


def _load_with_engine(path: Path, engine: str, weight_dtype: str):
    """``(model, tokenizer, meta)`` with Textopia's lean GPT-2 engine and the lite tokenizer, or
    None where the engine does not run the checkpoint exactly (``engine="auto"`` then falls back)."""
    from textopia.data.tokenizer import PromptTokenizer
    from textopia.models.checkpoint import read_meta, short_error
    from textopia.models.gpt_engine import load_engine

    meta = read_meta(path)
    if meta.get("kind") != "gpt" or engine == "transformers":
        return None
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise TextopiaError(f"missing file in checkpoint: {weights}")
    try:
        model = load_engine(path)
    except Exception as e:  # noqa: BLE001 - whatever a damaged file makes safetensors or the engine raise
        raise TextopiaError(f"corrupt or incompatible weights {weights}: {short_error(e)}") from None
    if model is None:
        if engine == "textopia":
            raise TextopiaError(f"Textopia's engine does not run the model in {path}; use engine='transformers'")
        return None
    model.set_weight_dtype("mixed" if weight_dtype == "auto" else weight_dtype)
    return model, PromptTokenizer.from_dir(path, lite=True), meta


def load(name_or_dir: str | Path | None = None, *, device: str | None = None, engine: str = "auto",
         weight_dtype: str = "auto", critic: bool | None = None) -> Generator:
    """Load a model for writing prompts.

    Args:
        name_or_dir: an embedded model's name (``"default"``) or a checkpoint directory;
            None loads the default.
        device: a torch device ("cpu", "cuda"); None picks CUDA when available.
        engine: ``"auto"`` runs GPT-2 checkpoints on Textopia's lean engine
            (:mod:`textopia.models.gpt_engine`, same logits, no transformers import) and
            everything else through transformers or our own modules; ``"transformers"`` always
            uses transformers' model; ``"textopia"`` requires the lean engine.
        weight_dtype: the lean engine's matrix weights for decoding on the CPU: ``"auto"`` and
            ``"mixed"`` (float16 blocks, an int8 output layer), ``"float16"``, ``"bfloat16"``
            (oneDNN's kernels: fast on a CPU with AMX, slow on one without AVX-512 BF16),
            ``"float32"`` (transformers' logits exactly). Likelihoods are always scored in float32.
        critic: load the model's coherence critic (:func:`critic_dir`), where it has one: True
            always (its logits are the quality benchmark's two-sample measure), False never,
            None (the default) only where the reranker weighs it
            (``textopia.generation.rerank.CRITIC_WEIGHT`` is not 0; it is 0, and loading the
            critic imports transformers: seconds of a cold start).

    Returns:
        a :class:`Generator`.

    Raises:
        TextopiaError: unknown name, or a checkpoint file is missing or corrupt.
    """
    import torch

    from textopia.models.checkpoint import load_checkpoint
    from textopia.models.registry import get_spec

    if engine not in ENGINES:
        raise TextopiaError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if weight_dtype not in WEIGHT_DTYPES:
        raise TextopiaError(f"weight_dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {weight_dtype!r}")
    path = resolve_model(name_or_dir)
    loaded = _load_with_engine(path, engine, weight_dtype)
    model, tokenizer, meta = loaded if loaded is not None else load_checkpoint(path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    cls = generator_class(get_spec(meta["kind"]).role)
    generator = cls(model, tokenizer, meta, name=str(name_or_dir or DEFAULT_MODEL))
    known = path / KNOWN_WORDS_FILE
    if known.is_file() and hasattr(generator, "known_words"):
        generator.known_words = KnownWords.load(known)
    if hasattr(generator, "load_lm"):  # latent diffusion's shallow fusion loads its language model by name
        generator.load_lm = load_fusion_lm
    from textopia.models.keep_head import KEEP_DIR

    if (path / KEEP_DIR / "config.json").is_file() and hasattr(generator, "keep_head"):
        generator.keep_head = load_keep_head(path / KEEP_DIR, generator.model)
    if critic is None:
        from textopia.generation import rerank

        critic = rerank.CRITIC_WEIGHT != 0
    found = critic_dir(path) if critic and hasattr(generator, "critic") else None
    if found is not None:
        from textopia.models.checkpoint import load_coherence_critic

        generator.critic = load_coherence_critic(found)
    return generator


def load_keep_head(directory: Path, model):
    """The keep head in ``directory`` for the writer ``model`` (:mod:`textopia.models.keep_head`);
    None where the writer is not one whose hidden states it reads (the lean GPT-2 engine's:
    ``engine="transformers"`` reranks without the head).

    Raises:
        TextopiaError: it is not a keep head, or it was fitted on another hidden size than the writer's.
    """
    from textopia.models.keep_head import KeepHead

    head = KeepHead.load(directory)
    if not hasattr(model, "output_logits"):
        return None
    if head.config.hidden_size != model.config.n_embd:
        raise TextopiaError(f"{directory} is a keep head for a hidden size of {head.config.hidden_size}, "
                            f"and the model's is {model.config.n_embd}")
    return head


def load_fusion_lm(name_or_dir: str, device: str) -> Generator:
    """The language model another model fuses with (:class:`~textopia.generation.diffusion.DiffusionGenerator`'s
    ``load_lm``): :func:`load` without the coherence critic, which only reranks whole prompts."""
    return load(name_or_dir, device=device, critic=False)
