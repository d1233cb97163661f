"""The text VAE's figures, by the protocol of He et al. 2019 ("Lagging Inference Networks and
Posterior Collapse in Variational Autoencoders", §6 and appendix).

* **ELBO** = E_q[log p(x|z)] - KL(q(z|x) || p(z)), one posterior sample per prompt (nats per
  prompt); the reconstruction term also per counted token.
* **NLL by importance sampling** (Burda et al. 2016, "Importance Weighted Autoencoders", eq. 8):
  log p(x) ≈ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x), K = 500 by default. It is a
  lower bound of log p(x) that tightens as K grows, so the NLL and the **perplexity**
  exp(Σ NLL / Σ tokens) are upper bounds. Tokens counted as for the language models: the prompt's
  tokens and its EOS (:mod:`textopia.evaluation.likelihood`).
* **Mutual information** I_q(x; z) = E_x E_q(z|x)[log q(z|x)] - E_q(z)[log q(z)] (Hoffman &
  Johnson 2016; He et al. 2019, eq. 4), with q(z) the aggregate posterior estimated as the mixture
  of every evaluated prompt's posterior (He et al. average per-batch mixtures instead).
* **Active units** (Burda et al. 2016, §5.2): dimensions j with Cov_x(E_q[z_j]) >= 0.01.
* **Reconstruction**: each prompt's posterior mean decoded greedily, scored against the prompt
  with corpus BLEU (sacrebleu) and exact match (after ignoring case, spacing and punctuation).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from textopia.data.tokenizer import IGNORE_INDEX
from textopia.models.latent_objective import posterior, reparameterize
from textopia.models.vae_likelihood import (  # noqa: F401  (re-exported)
    DEFAULT_IW_SAMPLES,
    gaussian_log_density,
    iw_log_likelihood,
    iw_nll_sums,
    sequence_log_likelihood,
)

logger = logging.getLogger(__name__)

AU_THRESHOLD = 0.01


def mutual_information(mu: torch.Tensor, logvar: torch.Tensor, *, generator: torch.Generator | None = None,
                       chunk: int = 1024) -> float:
    """I_q(x; z) in nats from the posteriors of N examples (He et al. 2019, eq. 4).

    Args:
        mu, logvar: (N, nz) float, N >= 2.

    Returns:
        E_x[-H(q(z|x))] - E_x E_q(z|x)[log q(z)], one z per example, q(z) = (1/N) Σ_j q(z|x_j).
        At most log N.
    """
    mu, logvar = mu.double().cpu(), logvar.double().cpu()
    n, nz = mu.shape
    neg_entropy = float(-posterior(mu, logvar).entropy().sum(dim=1).mean())
    z = reparameterize(mu, logvar, generator)
    log_qz = []
    for start in range(0, n, chunk):
        zi = z[start : start + chunk, None, :]  # (c, 1, nz)
        dens = gaussian_log_density(zi, mu[None], logvar[None])  # (c, N)
        log_qz.append(torch.logsumexp(dens, dim=1) - math.log(n))
    return neg_entropy - float(torch.cat(log_qz).mean())


def active_units(mu: torch.Tensor, threshold: float = AU_THRESHOLD) -> int:
    """Dimensions whose posterior mean's variance across examples is >= ``threshold`` (mu: (N, nz))."""
    from textopia.models.latent_objective import active_units as _au

    return _au(mu, threshold)


def collapse_warnings(kl: float, mi: float, au: int, latent_dim: int) -> list[str]:
    """Plain-language warnings when the posterior has collapsed onto the prior, or nearly."""
    out = []
    if kl < 0.5:
        out.append(f"posterior collapse: KL is {kl:.3f} nats per prompt, the decoder ignores z")
    if au == 0:
        out.append("posterior collapse: no active units (no latent dimension varies with the input)")
    elif au < latent_dim / 4:
        out.append(f"partial collapse: only {au} of {latent_dim} latent dimensions are active")
    if mi < 0.1 and kl >= 0.5:
        out.append(f"mutual information is {mi:.3f} nats: z carries almost nothing about the prompt")
    return out


@torch.no_grad()
def reconstruction_scores(model, tokenizer, prompts: list[str], *, batch_size: int = 64,
                          max_length: int = 256, max_new_tokens: int = 77, refine_steps: int = 0) -> dict[str, Any]:
    """Greedy decodes of each prompt's posterior mean: corpus BLEU and exact-match rate.

    ``refine_steps``: gradient steps that refine each encoder's mean first
    (:func:`~textopia.models.refinement.refine_posterior_mean`, as a latent generator's
    ``reconstruct`` does); 0 decodes the encoder's own.

    Returns:
        ``{"bleu", "exact_match", "prompts", "examples": [(prompt, reconstruction), ...] (first 5),
        "pairs": every (prompt, reconstruction)}``.
    """
    import sacrebleu

    from textopia.generation.decoding import clean_prompt, dedup_key, sample
    from textopia.generation.vae import greedy_settings
    from textopia.models.refinement import refine_posterior_mean
    from textopia.models.text_vae import ConditionedDecoder, posterior_batches

    greedy = greedy_settings(model)
    settings = greedy if max_new_tokens == greedy.max_new_tokens else \
        type(greedy)(**{**greedy.__dict__, "max_new_tokens": max_new_tokens})
    hyps: list[str] = []
    refs: list[str] = []
    context = tokenizer.context_ids(None)
    gen = torch.Generator().manual_seed(0)
    for batch, mu, _ in posterior_batches(model, tokenizer, prompts, max_length=max_length, batch_size=batch_size):
        mu = refine_posterior_mean(model, batch["input_ids"], batch["labels"], mu, steps=refine_steps)
        for row, (ids, finished, _) in enumerate(sample(ConditionedDecoder(model, mu), tokenizer, context, mu.size(0),
                                                     settings, gen, max_length)):
            hyps.append(clean_prompt(tokenizer.decode(ids), finished))
            labels = batch["labels"][row]
            refs.append(tokenizer.decode(labels[labels != IGNORE_INDEX].tolist()))
    bleu = sacrebleu.corpus_bleu(hyps, [refs]).score if hyps else float("nan")
    exact = sum(dedup_key(h) == dedup_key(r) for h, r in zip(hyps, refs)) / max(1, len(hyps))
    pairs = list(zip(refs, hyps))
    return {"bleu": bleu, "exact_match": exact, "prompts": len(hyps), "examples": pairs[:5], "pairs": pairs}


@torch.no_grad()
def evaluate_vae(
    model, tokenizer, prompts: list[str], *, iw_samples: int = DEFAULT_IW_SAMPLES, iw_limit: int | None = 500,
    bleu_limit: int | None = 500, batch_size: int = 64, max_length: int = 256, seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Every figure of the He et al. 2019 protocol for a VAE on ``prompts``.

    Args:
        iw_samples: K for the importance-weighted NLL.
        iw_limit: estimate the NLL on the first N prompts only (it costs K decoder passes a prompt);
            None: all. ELBO, KL, MI and active units always use every prompt.
        bleu_limit: reconstruct the first N prompts only; None: all; 0 skips.

    Returns:
        a flat dict: ``elbo``, ``recon``, ``kl`` (nats per prompt), ``recon_ce_per_token``,
        ``nll`` (IW, nats per prompt), ``nll_per_token``, ``perplexity`` (from the IW-NLL),
        ``elbo_perplexity``, ``mutual_information`` (nats), ``active_units``, ``latent_dim``,
        ``bleu``, ``exact_match``, counts, and ``warnings`` (posterior collapse).
    """
    from textopia.models.latent_objective import gaussian_kl
    from textopia.models.text_vae import posterior_batches

    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    recon = kl = 0.0
    tokens = 0
    means, logvars = [], []
    for batch, mu, logvar in posterior_batches(model, tokenizer, prompts, max_length=max_length, batch_size=batch_size):
        z = reparameterize(mu, logvar, gen)
        recon -= float(sequence_log_likelihood(model, batch["input_ids"], batch["labels"], z).sum())
        kl += float(gaussian_kl(mu, logvar).sum())
        tokens += int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        means.append(mu.cpu())
        logvars.append(logvar.cpu())
    n = len(prompts)
    mu_all, logvar_all = torch.cat(means), torch.cat(logvars)
    mi = mutual_information(mu_all, logvar_all, generator=gen) if n >= 2 else float("nan")
    au = active_units(mu_all) if n >= 2 else 0

    iw_prompts = prompts[:iw_limit] if iw_limit is not None else prompts
    iw_batch = max(1, min(8, batch_size))
    batches = list(posterior_batches(model, tokenizer, iw_prompts, max_length=max_length, batch_size=iw_batch))
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"IW-NLL (K={iw_samples})", unit="batch")
    nll, iw_tokens, _ = iw_nll_sums(model, batches, num_samples=iw_samples, generator=gen)

    out: dict[str, Any] = {
        "prompts": n, "tokens": tokens,
        "elbo": -(recon + kl) / max(1, n), "recon": recon / max(1, n), "kl": kl / max(1, n),
        "recon_ce_per_token": recon / max(1, tokens),
        "elbo_perplexity": math.exp(min((recon + kl) / max(1, tokens), 700)),
        "iw_samples": iw_samples, "iw_prompts": len(iw_prompts), "iw_tokens": iw_tokens,
        "nll": nll / max(1, len(iw_prompts)), "nll_per_token": nll / max(1, iw_tokens),
        "perplexity": math.exp(min(nll / max(1, iw_tokens), 700)),
        "mutual_information": mi, "active_units": au, "latent_dim": int(mu_all.size(1)),
        "counted_tokens": "prompt tokens and EOS (as for the language models)",
    }
    if bleu_limit != 0:
        rec = reconstruction_scores(model, tokenizer, prompts[:bleu_limit] if bleu_limit else prompts,
                                    batch_size=batch_size, max_length=max_length)
        out.update(bleu=rec["bleu"], exact_match=rec["exact_match"], bleu_prompts=rec["prompts"],
                   reconstructions=rec["examples"])
    out["warnings"] = collapse_warnings(out["kl"], mi, au, out["latent_dim"])
    for w in out["warnings"]:
        logger.warning(w)
    model.train(was_training)
    return out
