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

Everything random in a step is a function of (seed, step), so ``resume`` (weights, optimizer,
step) continues the same run; only dropout inside the denoiser (off by default) draws from the
global RNG, which is not restored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textopia._version import __version__
from textopia.data.batching import TokenizedPrompts
from textopia.data.corpus import read_split
from textopia.data.ideas import derive_idea
from textopia.errors import TextopiaError
from textopia.models.checkpoint import load_checkpoint, save_checkpoint
from textopia.models.latent_diffusion import (
    DiffusionConfig,
    LatentDiffusion,
    build_diffusion,
    idea_token_ids,
)
from textopia.models.registry import get_spec, make_config
from textopia.models.text_vae import TextVAE
from textopia.training.config import ExperimentConfig
from textopia.training.schedules import warmup_cosine_lr
from textopia.training.trainer import (
    METRICS_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    _load_optimizer,
    _Metrics,
    _optimizer_tensors,
    _param_groups,
    resolve_precision,
    weights_digest,
)

logger = logging.getLogger(__name__)

LATENTS_FILE = "latents.safetensors"
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


def train_diffusion(config: ExperimentConfig, *, resume: bool = False, progress: bool = True) -> Path:
    """Train a latent diffusion model over a trained VAE and return the checkpoint directory.

    ``config.model`` holds ``kind = "latent-diffusion"``, :class:`DiffusionConfig` settings and
    ``vae_checkpoint`` (a VAE checkpoint directory). ``config.data``: ``dir``, ``train_limit``,
    ``valid_limit``, ``max_length`` (``p_unconditional`` is unused: the model's ``p_uncond``
    sets the idea dropout). ``config.train``: ``out_dir``, ``batch_size``, ``lr``,
    ``min_lr_ratio``, ``warmup_steps``, ``max_steps``, ``weight_decay``, ``beta1``, ``beta2``,
    ``grad_clip``, ``precision``, ``eval_every``, ``save_every``, ``log_every``, ``seed``,
    ``max_minutes`` (``grad_accum`` is unused). One device (a GPU if there is one).

    With ``resume``, continue from the checkpoint in ``out_dir`` (weights, optimizer, step);
    without one there it starts afresh.

    Raises:
        TextopiaError: the config, the VAE checkpoint or the data is unusable.
    """
    tc = config.train
    out_dir = Path(tc.out_dir)
    data_dir = Path(config.data.dir)
    values = dict(config.model)
    if values.get("kind") != KIND:
        raise TextopiaError(f"train_diffusion needs model.kind = {KIND!r}, got {values.get('kind')!r}")
    torch.manual_seed(tc.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    state: dict[str, Any] | None = None
    model: LatentDiffusion | None = None
    if resume and (out_dir / STATE_FILE).is_file():
        model, tokenizer, meta = load_checkpoint(out_dir)
        if meta["kind"] != KIND:
            raise TextopiaError(f"{out_dir} holds a {meta['kind']!r} checkpoint, not {KIND!r}")
        state = json.loads((out_dir / STATE_FILE).read_text())
        dcfg, vae = model.config, model.vae
        logger.info("resuming from %s at step %d", out_dir, state["step"])
    elif values.get("init_from"):
        model, tokenizer, dcfg = _continued_model(values)
        vae = model.vae
    else:
        vae_dir = values.get("vae_checkpoint")
        if not vae_dir:
            raise TextopiaError("model.vae_checkpoint is not set: latent diffusion needs a trained VAE checkpoint")
        vae, tokenizer, vae_meta = load_checkpoint(vae_dir)
        if get_spec(vae_meta["kind"]).generator != "vae":
            raise TextopiaError(f"{vae_dir} holds a {vae_meta['kind']!r} checkpoint, not a 'vae' or 'prompt-ae' "
                                "(a latent autoencoder)")
        dcfg = make_config(KIND, {**values, "vae": dict(vae_meta["model"]), "vae_checkpoint": str(vae_dir)})
    vae.to(device)

    train_prompts = read_split(data_dir, "train")[: config.data.train_limit]
    valid_prompts = read_split(data_dir, "valid")[: config.data.valid_limit]
    if len(train_prompts) < 2:
        raise TextopiaError(f"the train split in {data_dir} has fewer than 2 prompts")
    max_length = min(config.data.max_length, int(dcfg.vae.get("n_positions", config.data.max_length)))
    train_post, valid_post = cached_latents(out_dir / LATENTS_FILE, vae, tokenizer, train_prompts, valid_prompts,
                                            max_length=max_length, device=device, progress=progress)
    train_z = Latents(*train_post, dcfg.latents)
    # validation: one fixed draw per valid prompt, so the figure is comparable across steps
    valid_z = Latents(*valid_post, dcfg.latents).draw(torch.arange(len(valid_post[0])),
                                                      torch.Generator().manual_seed(tc.seed + 1))
    if model is None:
        std = train_z.spread()
        if not std > 0:
            raise TextopiaError("the training latents have zero spread: is the VAE trained?")
        dcfg.scale_factor = 1.0 / std
        logger.info("scale_factor %.4f (latent std %.4f over %d prompts)", dcfg.scale_factor, std, len(train_prompts))
        model = build_diffusion(dcfg, tokenizer)
        model.init_from_vae(vae)
        del vae
    model.to(device).train()

    valid_ideas = [derive_idea(p, random.Random(f"{tc.seed}/valid/{i}")) for i, p in enumerate(valid_prompts)]
    valid_ids, valid_has = idea_token_ids(tokenizer, valid_ideas, dcfg.max_idea_tokens)

    optimizer = torch.optim.AdamW(_param_groups(model, tc.weight_decay), lr=tc.lr, betas=(tc.beta1, tc.beta2))
    if state is not None:
        from safetensors.torch import load_file

        _load_optimizer(optimizer, load_file(str(out_dir / OPTIMIZER_FILE)), state["optimizer"])
    precision = resolve_precision(tc.precision)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16" and device.type == "cuda")

    meta = {
        "kind": KIND,
        "model": vars(dcfg).copy(),
        "data": vars(config.data).copy(),
        "train": vars(tc).copy(),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "num_trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "version": __version__,
    }
    step = state["step"] if state else 0
    metrics = _Metrics(out_dir, True, upto_step=step if state else None)
    if not state and (out_dir / METRICS_FILE).is_file():
        (out_dir / METRICS_FILE).unlink()  # a fresh run in an old directory starts a fresh log
    elapsed_before = state.get("elapsed_s", 0.0) if state else 0.0
    start = time.monotonic()

    def save() -> None:
        tensors, opt_meta = _optimizer_tensors(optimizer)
        trainer_state = {"step": step, "elapsed_s": elapsed_before + time.monotonic() - start, "optimizer": opt_meta}

        def write_extra(tmp: Path) -> None:
            from safetensors.torch import save_file

            save_file(tensors, str(tmp / OPTIMIZER_FILE))
            (tmp / STATE_FILE).write_text(json.dumps(trainer_state) + "\n")
            metrics.write(tmp)
            if (out_dir / LATENTS_FILE).is_file():  # keep the cache across the atomic swap
                _link_or_copy(out_dir / LATENTS_FILE, tmp / LATENTS_FILE)

        save_checkpoint(out_dir, model, tokenizer, meta, write_extra=write_extra)

    def validate() -> None:
        if not valid_prompts:
            return
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = validation_loss(model, valid_z, valid_ids, valid_has, batch_size=max(tc.batch_size, 256),
                                   seed=tc.seed, device=device)
        metrics.log({"step": step, "split": "valid", "loss": loss})
        logger.info("step %d valid loss %.4f", step, loss)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=tc.max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    window_loss, window_n, window_start = 0.0, 0, time.monotonic()
    n_train = len(train_z)
    done = step >= tc.max_steps
    while not done:
        gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + step)
        idx = torch.randint(0, n_train, (tc.batch_size,), generator=gen)  # (B,)
        ideas = [derive_idea(train_prompts[j], random.Random(f"{tc.seed}/{step}/{i}"))
                 for i, j in enumerate(idx.tolist())]
        idea_ids, has_idea = idea_token_ids(tokenizer, ideas, dcfg.max_idea_tokens)
        lr = warmup_cosine_lr(step, lr=tc.lr, warmup_steps=tc.warmup_steps, max_steps=tc.max_steps,
                              min_lr_ratio=tc.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = model.loss(train_z.draw(idx, gen).to(device), idea_ids, has_idea, gen)
        scaler.scale(loss).backward()
        if tc.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(trainable, tc.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        window_loss += float(loss.detach())
        window_n += 1
        if bar is not None:
            bar.update(1)
        if step % tc.log_every == 0 or step == tc.max_steps:
            seconds = time.monotonic() - window_start
            record = {"step": step, "split": "train", "loss": window_loss / window_n, "lr": lr,
                      "examples_per_s": window_n * tc.batch_size / max(seconds, 1e-9),
                      "elapsed_s": elapsed_before + time.monotonic() - start}
            metrics.log(record)
            if bar is not None:
                bar.set_postfix(loss=f"{record['loss']:.4f}")
            window_loss, window_n, window_start = 0.0, 0, time.monotonic()
        out_of_time = tc.max_minutes is not None and (elapsed_before + time.monotonic() - start) > 60 * tc.max_minutes
        done = step >= tc.max_steps or out_of_time
        if tc.eval_every and (step % tc.eval_every == 0 or done):
            validate()
        if tc.save_every and step % tc.save_every == 0 and not done:
            save()
    if bar is not None:
        bar.close()
    save()
    return out_dir


def swap_decoder(diffusion_dir: str | Path, autoencoder_dir: str | Path, out_dir: str | Path) -> Path:
    """Write a copy of a latent diffusion checkpoint whose autoencoder is ``autoencoder_dir``'s.

    For a decoder fine-tuned with the encoder frozen (``train_encoder = false``): every latent,
    and so the denoiser, stays valid. The trainer state is not copied.

    Raises:
        TextopiaError: a checkpoint is unusable, or the two encoders differ (the denoiser would
            then sample latents the new decoder was never shown).
    """
    import torch

    model, tokenizer, meta = load_checkpoint(diffusion_dir)
    ae, _, ae_meta = load_checkpoint(autoencoder_dir)
    if meta["kind"] != KIND or ae_meta["kind"] != model.config.vae.get("kind", "vae"):
        raise TextopiaError(f"{diffusion_dir} and {autoencoder_dir} are not a latent diffusion model and its autoencoder")
    old, new = model.vae.state_dict(), ae.state_dict()
    # what makes a latent: everything but the decoder and its prefix projection (the token
    # embedding is the decoder's, but the encoder reads it too)
    decoding = ("decoder.", "from_latent.", "latent_positions")
    encoding = [n for n in old if not n.startswith(decoding) or n.endswith(("wte.weight", "lm_head.weight"))]
    if set(old) != set(new) or any(not torch.equal(old[n], new[n]) for n in encoding):
        raise TextopiaError(f"the encoder of {autoencoder_dir} differs from the one {diffusion_dir} was trained on")
    model.vae.load_state_dict(new)
    meta = {**meta, "model": {**meta["model"], "vae_checkpoint": str(autoencoder_dir)}}
    save_checkpoint(out_dir, model, tokenizer, meta)
    return Path(out_dir)
