"""Training the latent diffusion model over a trained text VAE's latents.

::

    VAE checkpoint ─▶ encoder (frozen, eval) ─▶ μ, log σ² of every train / valid prompt  (N, nz) each
                      cached in <out_dir>/latents.safetensors, keyed by the VAE's weights and the prompts
    latents = "mean":   z = μ                  (the posterior means: tighter than the data's spread)
    latents = "sample": z = μ + σ·ε, ε fresh each step  (draws from the aggregate posterior q(z))
    scale_factor = 1 / std(z over the train prompts)               (Rombach et al. 2022)
    step s:  B prompt indices drawn with a generator seeded by (seed, s)
             idea_i = derive_idea(prompt_i, Random(f"{seed}/{s}/{i}"))
             loss = LatentDiffusion.loss(z, idea ids, has_idea, generator)  (idea dropout inside)
             AdamW on the idea encoder and the denoiser (the VAE is frozen)

Why samples: the decoder was trained on z ~ q(z|x), and the VAE prior's samples spread like the
aggregate posterior q(z) = E_x q(z|x). A denoiser that learns only the means μ learns a narrower
distribution (Var μ = Var z − E σ²), so its prompts are less varied than the VAE's own.

Everything random in a step is a function of (seed, step), and dropout inside the denoiser (off
by default) draws from torch's RNG, which the checkpoint saves (:mod:`textopia.training.state`):
``resume`` continues the same run.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import random
import shutil
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from textopia.data.batching import TokenizedPrompts
from textopia.data.corpus import read_split
from textopia.data.ideas import derive_idea
from textopia.errors import TextopiaError
from textopia.models.checkpoint import (
    LATENTS_FILE,
    carry_files,
    check_checkpoint_dir,
    load_checkpoint,
    save_checkpoint,
    weights_digest,
)
from textopia.models.latent_diffusion import (
    DiffusionConfig,
    LatentDiffusion,
    build_diffusion,
    idea_token_ids,
)
from textopia.models.registry import LatentAutoencoder, get_spec, make_config
from textopia.models.text_vae import TextVAE
from textopia.text import KNOWN_FILES
from textopia.training.config import ExperimentConfig
from textopia.training.tasks import Task

logger = logging.getLogger(__name__)

KIND = "latent-diffusion"


@torch.no_grad()
def posterior_params(vae: TextVAE, tokenizer, prompts: list[str], *, max_length: int = 256, batch_size: int = 256,
                     device=None, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior q(z | prompt) = N(μ, diag σ²) of each prompt, in the prompts' order.

    Encodes what :func:`textopia.models.text_vae.posterior_batches` does with ``ideas="none"``
    (the prompt's tokens and EOS, cut to ``max_length - 1``), in batches of similar length,
    and puts each row back at its prompt's index.

    Args:
        vae: the text VAE (put in eval mode here, and back afterwards).
        prompts: N prompt texts.
        max_length: the example length the VAE was trained with, tokens.
        batch_size: prompts per encoder batch.

    Returns:
        (mu, logvar): (N, nz) float32 each, on the CPU.
    """
    device = device or next(vae.parameters()).device
    was_training = vae.training
    vae.eval()
    tokens = TokenizedPrompts.encode(prompts, tokenizer)
    room = max_length - 1  # the example starts with <|prompt|>
    lengths = np.minimum(tokens.lengths() + 1, room)
    order = np.argsort(lengths, kind="stable")
    out_mu = torch.empty(len(prompts), vae.config.latent_dim)
    out_logvar = torch.empty(len(prompts), vae.config.latent_dim)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(prompts), desc="encode", unit="prompt", dynamic_ncols=True)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        rows = [(tokens[int(i)] + [tokenizer.eos_id])[:room] for i in idx]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_id, dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
        lens = torch.tensor([len(r) for r in rows], dtype=torch.long)
        mu, logvar = vae.encode(ids.to(device), lens.to(device))  # (b, nz) each
        out_mu[torch.from_numpy(idx)] = mu.float().cpu()
        out_logvar[torch.from_numpy(idx)] = logvar.float().cpu()
        if bar is not None:
            bar.update(len(idx))
        elif (start // batch_size) % 200 == 0:
            logger.info("encoded %d / %d prompts", start + len(idx), len(prompts))
    if bar is not None:
        bar.close()
    vae.train(was_training)
    return out_mu, out_logvar


class Latents:
    """The posteriors N(μ, diag σ²) of N prompts, and the training latents drawn from them.

    Args:
        mu, logvar: (N, nz) float32.
        mode: "mean" (z = μ) or "sample" (z = μ + σ·ε).
    """

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor, mode: str) -> None:
        if mode not in ("mean", "sample"):
            raise TextopiaError(f"latents must be 'mean' or 'sample', got {mode!r}")
        self.mu, self.std, self.mode = mu, torch.exp(0.5 * logvar), mode

    def __len__(self) -> int:
        return self.mu.size(0)

    def draw(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The latents of the prompts ``idx`` (B,) int64: (B, nz) float32; ε is drawn from ``generator``."""
        if self.mode == "mean":
            return self.mu[idx]
        return self.mu[idx] + self.std[idx] * torch.randn(len(idx), self.mu.size(1), generator=generator)

    def spread(self) -> float:
        """The standard deviation of all latent values z over the N prompts (ε included for "sample").

        For "sample" it is exact, with no draw: Var z = Var μ + E σ² (the law of total variance).
        """
        var = float(self.mu.double().var())
        if self.mode == "sample":
            var += float((self.std.double() ** 2).mean())
        return var**0.5


def _latents_key(vae: TextVAE, train_prompts: list[str], valid_prompts: list[str], max_length: int) -> torch.Tensor:
    """SHA-256 of the VAE's weights, the prompts and ``max_length``, as a (32,) uint8 tensor."""
    h = hashlib.sha256()
    h.update(weights_digest(vae).encode())
    h.update(f"{len(train_prompts)}/{len(valid_prompts)}/{max_length}".encode())
    for p in (*train_prompts, "\0", *valid_prompts):
        h.update(p.encode())
        h.update(b"\n")
    return torch.frombuffer(bytearray(h.digest()), dtype=torch.uint8)


def cached_latents(path: Path, vae: TextVAE, tokenizer, train_prompts: list[str], valid_prompts: list[str], *,
                   max_length: int, device=None,
                   progress: bool = False) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """The posteriors (μ, log σ²) of the train and valid prompts, read from ``path`` or computed and written there.

    The file (safetensors: ``train_mu``, ``train_logvar`` (N, nz), ``valid_mu``, ``valid_logvar``
    (M, nz) float32, ``key`` (32,) uint8) is used only if its key matches the VAE's weights
    digest, the prompts and ``max_length``; a file in an older layout is recomputed.

    Returns:
        ((train_mu, train_logvar), (valid_mu, valid_logvar)).
    """
    from safetensors.torch import load_file, save_file

    names = ("train_mu", "train_logvar", "valid_mu", "valid_logvar")
    key = _latents_key(vae, train_prompts, valid_prompts, max_length)
    if path.is_file():
        try:
            saved = load_file(str(path))
            if torch.equal(saved["key"], key) and all(n in saved for n in names):
                logger.info("latents read from %s", path)
                return (saved["train_mu"], saved["train_logvar"]), (saved["valid_mu"], saved["valid_logvar"])
            logger.info("latents in %s were made by another VAE, for other prompts or in an older layout: "
                        "recomputing", path)
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, whatever safetensors raises
            logger.info("unreadable latents cache %s: recomputing", path)
    logger.info("encoding %d train and %d valid prompts with the VAE", len(train_prompts), len(valid_prompts))
    train = posterior_params(vae, tokenizer, train_prompts, max_length=max_length, device=device, progress=progress)
    valid = posterior_params(vae, tokenizer, valid_prompts, max_length=max_length, device=device, progress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    save_file({**{n: t.contiguous() for n, t in zip(names, (*train, *valid), strict=True)}, "key": key}, str(tmp))
    os.replace(tmp, path)
    return train, valid


@torch.no_grad()
def validation_loss(model: LatentDiffusion, latents: torch.Tensor, idea_ids: torch.Tensor, has_idea: torch.Tensor,
                    *, batch_size: int, seed: int, device) -> float:
    """The diffusion loss on fixed (latent, idea) pairs with a fixed generator (comparable across steps).

    Args:
        latents: (M, nz) unscaled; idea_ids: (M, L) int64; has_idea: (M,) bool.

    Returns:
        the mean squared error per latent coordinate over the M examples.
    """
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    total, n = 0.0, 0
    for i in range(0, latents.size(0), batch_size):
        z0 = latents[i : i + batch_size].to(device)
        loss = model.loss(z0, idea_ids[i : i + batch_size], has_idea[i : i + batch_size], gen)
        total += float(loss) * z0.size(0)
        n += z0.size(0)
    model.train(was_training)
    return total / max(1, n)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


#: What ``init_from`` keeps from the checkpoint it continues: the denoiser's shape, the noise
#: schedule and the latents' scale. A config may change the rest (``p_uncond``, ``latents``, ...).
_CONTINUED = ("n_hidden", "n_blocks", "n_head", "time_dim", "idea_hidden", "max_idea_tokens", "denoiser",
              "num_train_timesteps", "beta_schedule", "prediction_type", "scale_factor", "vae", "vae_checkpoint")


def _continued_model(values: dict[str, Any]) -> tuple[LatentDiffusion, Any, DiffusionConfig]:
    """The latent diffusion model of ``values["init_from"]`` with the settings of ``values`` that
    may change between runs (everything but :data:`_CONTINUED`, which the checkpoint fixes).

    Raises:
        TextopiaError: the checkpoint is not a latent diffusion model, or ``values`` asks for a
            shape or schedule other than the checkpoint's.
    """
    source = str(values["init_from"])
    model, tokenizer, meta = load_checkpoint(source)
    if meta["kind"] != KIND:
        raise TextopiaError(f"init_from {source} holds a {meta['kind']!r} checkpoint, not {KIND!r}")
    dcfg = model.config
    clash = sorted(k for k in _CONTINUED if k in values and k not in ("vae_checkpoint",)
                   and values[k] != getattr(dcfg, k))
    if clash:
        raise TextopiaError(f"init_from {source} fixes {', '.join(clash)}: drop them from the config or match "
                            f"the checkpoint ({', '.join(f'{k}={getattr(dcfg, k)!r}' for k in clash)})")
    changed = make_config(KIND, {k: v for k, v in values.items() if k not in _CONTINUED})
    for k, v in vars(changed).items():
        if k not in _CONTINUED:
            setattr(dcfg, k, v)
    dcfg.init_from, dcfg.initialized_from = None, source
    logger.info("continuing from the latent diffusion model in %s", source)
    return model, tokenizer, dcfg


class LatentTask(Task):
    """Latent diffusion's part of the training loop (:func:`textopia.training.trainer.train`).

    ``config.model`` holds ``kind = "latent-diffusion"``, :class:`DiffusionConfig` settings and
    ``vae_checkpoint`` (a latent autoencoder's checkpoint directory), or ``init_from`` (a latent
    diffusion checkpoint to continue). ``config.data``: ``dir``, ``train_limit``, ``valid_limit``,
    ``max_length`` (``p_unconditional`` is unused: the model's ``p_uncond`` sets the idea
    dropout). One pass of :meth:`batches` never ends: step s draws its batch from (seed, s).

    Raises:
        TextopiaError: the config, the autoencoder checkpoint or the data is unusable.
    """

    unit = "examples"
    endless = True

    def __init__(self, config: ExperimentConfig, *, resume_from: Path | None = None, progress: bool = False) -> None:
        tc = self.train_config = config.train
        data_dir = Path(config.data.dir)
        values = dict(config.model)
        if values.get("kind") != KIND:
            raise TextopiaError(f"the latent diffusion task needs model.kind = {KIND!r}, got {values.get('kind')!r}")
        model: LatentDiffusion | None = None
        if resume_from is not None:
            model, tokenizer, meta = load_checkpoint(resume_from)
            if meta["kind"] != KIND:
                raise TextopiaError(f"{resume_from} holds a {meta['kind']!r} checkpoint, not {KIND!r}")
            dcfg, vae = model.config, model.vae
        elif values.get("init_from"):
            model, tokenizer, dcfg = _continued_model(values)
            vae = model.vae
        else:
            vae_dir = values.get("vae_checkpoint")
            if not vae_dir:
                raise TextopiaError("model.vae_checkpoint is not set: latent diffusion needs a trained VAE checkpoint")
            vae, tokenizer, vae_meta = load_checkpoint(vae_dir)
            if not issubclass(get_spec(vae_meta["kind"]).role, LatentAutoencoder):
                raise TextopiaError(f"{vae_dir} holds a {vae_meta['kind']!r} checkpoint, not a 'vae' or 'prompt-ae' "
                                    "(a latent autoencoder)")
            dcfg = make_config(KIND, {**values, "vae": dict(vae_meta["model"]), "vae_checkpoint": str(vae_dir)})
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        vae.to(device)
        self.train_prompts = read_split(data_dir, "train")[: config.data.train_limit]
        valid_prompts = read_split(data_dir, "valid")[: config.data.valid_limit]
        if len(self.train_prompts) < 2:
            raise TextopiaError(f"the train split in {data_dir} has fewer than 2 prompts")
        max_length = min(config.data.max_length, int(dcfg.vae.get("n_positions", config.data.max_length)))
        self.cache = Path(tc.out_dir) / LATENTS_FILE
        train_post, valid_post = cached_latents(self.cache, vae, tokenizer, self.train_prompts, valid_prompts,
                                                max_length=max_length, device=device, progress=progress)
        self.train_z = Latents(*train_post, dcfg.latents)
        # validation: one fixed draw per valid prompt, so the figure is comparable across steps
        self.valid_z = Latents(*valid_post, dcfg.latents).draw(torch.arange(len(valid_post[0])),
                                                               torch.Generator().manual_seed(tc.seed + 1))
        if model is None:
            std = self.train_z.spread()
            if not std > 0:
                raise TextopiaError("the training latents have zero spread: is the VAE trained?")
            dcfg.scale_factor = 1.0 / std
            logger.info("scale_factor %.4f (latent std %.4f over %d prompts)", dcfg.scale_factor, std,
                        len(self.train_prompts))
            model = build_diffusion(dcfg, tokenizer)
            model.init_from_vae(vae)
        self.model, self.tokenizer, self.model_config = model, tokenizer, dcfg
        valid_ideas = [derive_idea(p, random.Random(f"{tc.seed}/valid/{i}")) for i, p in enumerate(valid_prompts)]
        self.valid_ids, self.valid_has = idea_token_ids(tokenizer, valid_ideas, dcfg.max_idea_tokens)

    def batches(self, epoch: int, skip: int, accelerator) -> Iterable[int]:
        """The steps themselves, from ``skip`` on: :meth:`loss` draws step s's batch from (seed, s)."""
        return itertools.count(skip)

    def loss(self, model, batch: int, step: int):
        tc = self.train_config
        gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + batch)
        idx = torch.randint(0, len(self.train_z), (tc.batch_size,), generator=gen)  # (B,)
        ideas = [derive_idea(self.train_prompts[j], random.Random(f"{tc.seed}/{batch}/{i}"))
                 for i, j in enumerate(idx.tolist())]
        idea_ids, has_idea = idea_token_ids(self.tokenizer, ideas, self.model_config.max_idea_tokens)
        device = next(model.parameters()).device
        return model.loss(self.train_z.draw(idx, gen).to(device), idea_ids, has_idea, gen), tc.batch_size, {}

    def validate(self, model, accelerator) -> dict[str, float] | None:
        if not len(self.valid_z):
            return None
        with accelerator.autocast():
            loss = validation_loss(model, self.valid_z, self.valid_ids, self.valid_has,
                                   batch_size=max(self.train_config.batch_size, 256), seed=self.train_config.seed,
                                   device=accelerator.device)
        return {"loss": loss}

    def write_extra(self, directory: Path) -> None:
        if self.cache.is_file():  # keep the cache across the atomic swap
            _link_or_copy(self.cache, directory / LATENTS_FILE)


def swap_decoder(diffusion_dir: str | Path, autoencoder_dir: str | Path, out_dir: str | Path, *,
                 new_encoder: bool = False) -> Path:
    """Write a copy of a latent diffusion checkpoint whose autoencoder is ``autoencoder_dir``'s.

    For a decoder fine-tuned with the encoder frozen (``train_encoder = false``): every latent,
    and so the denoiser, stays valid. The trainer state is not copied, the known words are. With
    ``new_encoder`` the autoencoder may also have a new encoder (one trained on): the copy is then
    a starting point whose denoiser must be trained on the new latents (``model.init_from`` = the
    copy).

    Raises:
        TextopiaError: a checkpoint is unusable; ``out_dir`` holds other files than a checkpoint,
            or one of the two; or the two encoders differ without ``new_encoder`` (the denoiser
            would then sample latents the new decoder was never shown).
    """
    import torch

    check_checkpoint_dir(out_dir, inputs=(diffusion_dir, autoencoder_dir))
    model, tokenizer, meta = load_checkpoint(diffusion_dir)
    ae, _, ae_meta = load_checkpoint(autoencoder_dir)
    if meta["kind"] != KIND or ae_meta["kind"] != model.config.vae.get("kind", "vae"):
        raise TextopiaError(f"{diffusion_dir} and {autoencoder_dir} are not a latent diffusion model and its autoencoder")
    old, new = model.vae.state_dict(), ae.state_dict()
    # what makes a latent: everything but the decoder and its prefix projection (the token
    # embedding is the decoder's, but the encoder reads it too)
    decoding = ("decoder.", "from_latent.", "latent_positions")
    encoding = [n for n in old if not n.startswith(decoding) or n.endswith(("wte.weight", "lm_head.weight"))]
    if set(old) != set(new):
        raise TextopiaError(f"the autoencoder of {autoencoder_dir} has another shape than {diffusion_dir}'s")
    if not new_encoder and any(not torch.equal(old[n], new[n]) for n in encoding):
        raise TextopiaError(f"the encoder of {autoencoder_dir} differs from the one {diffusion_dir} was trained on")
    model.vae.load_state_dict(new)
    meta = {**meta, "model": {**meta["model"], "vae_checkpoint": str(autoencoder_dir)}}
    # the corpus's known words travel with the model, as the trainer's do
    save_checkpoint(out_dir, model, tokenizer, meta, write_extra=carry_files(diffusion_dir, KNOWN_FILES))
    return Path(out_dir)
