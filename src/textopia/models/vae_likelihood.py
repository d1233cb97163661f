"""The text VAE's likelihood: log-densities and the importance-weighted bound of log p(x).

Below the generation and evaluation layers, so that the VAE generator's ``likelihood`` and the
evaluation's figures use the same code.
"""

from __future__ import annotations

import math

import torch

from textopia.data.tokenizer import IGNORE_INDEX
from textopia.errors import TextopiaError
from textopia.models.latent_objective import log_density
from textopia.models.likelihood import LikelihoodResult, token_nll

DEFAULT_IW_SAMPLES = 500


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag e^logvar), summed over the last dimension (nats); broadcasting shapes
    (:func:`textopia.models.latent_objective.log_density`)."""
    return log_density(z, mu, logvar)


def sequence_log_likelihood(model, input_ids: torch.Tensor, labels: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(x | z) of each row, summed over its counted tokens (nats).

    Args:
        model: a :class:`~textopia.models.text_vae.TextVAE`.
        input_ids, labels: (N, T) int64, as collate makes them; z: (N, nz) float.

    Returns:
        (N,) float64.
    """
    logits, _ = model.decode(input_ids, z)
    return -token_nll(logits, labels).double()


@torch.no_grad()
def iw_log_likelihood(
    model, input_ids: torch.Tensor, labels: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
    *, num_samples: int = DEFAULT_IW_SAMPLES, chunk: int = 500, generator: torch.Generator | None = None,
    log_p_x_given_z=None,
) -> torch.Tensor:
    """The importance-weighted estimate of log p(x) for each row (Burda et al. 2016, eq. 8).

    Args:
        input_ids, labels: (B, T) int64; mu, logvar: (B, nz) the posterior q(z|x) (the proposal).
        num_samples: K, samples from q(z|x) per row.
        chunk: rows (examples × samples) decoded per forward pass.
        generator: CPU RNG of the samples.
        log_p_x_given_z: ``f(input_ids (N, T), labels (N, T), z (N, nz)) -> (N,)`` log p(x|z);
            default: the VAE decoder (:func:`sequence_log_likelihood`).

    Returns:
        (B,) float64, log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x), in nats.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    score = log_p_x_given_z or (lambda ids, lab, z: sequence_log_likelihood(model, ids, lab, z))
    b = mu.size(0)
    per_chunk = max(1, chunk // b)
    log_w = []
    done = 0
    while done < num_samples:
        k = min(per_chunk, num_samples - done)
        eps = torch.randn((b, k, mu.size(1)), generator=generator).to(mu.device, mu.dtype)
        z = mu[:, None] + (0.5 * logvar).exp()[:, None] * eps  # (B, k, nz)
        log_q = gaussian_log_density(z, mu[:, None], logvar[:, None]).double()  # (B, k)
        log_prior = log_density(z, torch.zeros_like(z), torch.zeros_like(z)).double()
        ll = score(input_ids.repeat_interleave(k, dim=0), labels.repeat_interleave(k, dim=0), z.reshape(b * k, -1))
        log_w.append(ll.view(b, k) + log_prior - log_q)
        done += k
    all_w = torch.cat(log_w, dim=1)  # (B, K)
    return torch.logsumexp(all_w, dim=1) - math.log(num_samples)


def iw_nll_sums(model, batches, *, num_samples: int = DEFAULT_IW_SAMPLES, generator: torch.Generator | None = None,
                eos_id: int | None = None) -> tuple[float, int, int]:
    """The importance-weighted NLL (:func:`iw_log_likelihood`) summed over ``batches``.

    Args:
        model: a :class:`~textopia.models.text_vae.TextVAE`.
        batches: ``(batch, mu, logvar)`` triples, as
            :func:`~textopia.models.text_vae.posterior_batches` yields them.
        num_samples: K per prompt; generator: the samples' CPU RNG, drawn batch after batch.
        eos_id: where given, rows whose last counted token is not EOS count as truncated.

    Returns:
        ``(nats, tokens, truncated)``: the summed NLL (nats), the counted tokens (the prompt and
        EOS, as for the language models), and the truncated rows (0 without ``eos_id``).
    """
    nats, tokens, truncated = 0.0, 0, 0
    for batch, mu, logvar in batches:
        labels = batch["labels"]
        nats -= float(iw_log_likelihood(model, batch["input_ids"], labels, mu, logvar, num_samples=num_samples,
                                        generator=generator).sum())
        tokens += int((labels[:, 1:] != IGNORE_INDEX).sum())
        if eos_id is not None:
            last = (labels != IGNORE_INDEX).cumsum(1).argmax(1)  # the last counted position of each row
            truncated += int((labels.gather(1, last[:, None]) != eos_id).sum())
    return nats, tokens, truncated


class ImportanceWeightedNLL:
    """A text VAE's likelihood of prompts, the VAE generator's ``likelihood``: the
    importance-weighted NLL with ``iw_samples`` (K) samples of the posterior per prompt (Burda et
    al. 2016).

    Args:
        vae: the :class:`~textopia.models.text_vae.TextVAE`; tokenizer: its tokenizer;
        max_positions: the decoder's context length, tokens (None: 256).
    """

    def __init__(self, vae, tokenizer, max_positions: int | None, iw_samples: int = DEFAULT_IW_SAMPLES) -> None:
        self.vae, self.tokenizer, self.max_positions = vae, tokenizer, max_positions
        self.iw_samples = iw_samples

    @torch.no_grad()
    def __call__(self, prompts: list[str], *, ideas: str = "none", batch_size: int = 8,
                 seed: int = 0) -> LikelihoodResult:
        """The importance-weighted NLL of ``prompts`` (K = :attr:`iw_samples`): an upper bound of
        the exact NLL that tightens as K grows (Burda et al. 2016), counted on the same tokens as
        the LMs'.

        Raises:
            TextopiaError: ``ideas`` is not "none" (the encoder reads only the prompt, so the
                bound is of p(prompt)).
        """
        from textopia.models.text_vae import posterior_batches

        if ideas != "none":
            raise TextopiaError(f"a VAE's likelihood is of p(prompt) only (ideas='none'), got ideas={ideas!r}")
        was_training = self.vae.training
        self.vae.eval()
        batches = posterior_batches(self.vae, self.tokenizer, prompts, batch_size=min(batch_size, 8),
                                    max_length=self.max_positions or 256)
        nats, tokens, truncated = iw_nll_sums(self.vae, batches, num_samples=self.iw_samples,
                                              generator=torch.Generator().manual_seed(seed),
                                              eos_id=self.tokenizer.eos_id)
        self.vae.train(was_training)
        return LikelihoodResult(nats=nats, tokens=tokens, words=sum(len(p.split()) for p in prompts),
                                prompts=len(prompts), truncated=truncated)
