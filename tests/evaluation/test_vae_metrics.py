"""The VAE figures against exact values: IW-NLL on a linear-Gaussian model, MI, active units."""

from __future__ import annotations

import math

import pytest
import torch

from textopia.evaluation.vae_metrics import (
    active_units,
    collapse_warnings,
    gaussian_log_density,
    iw_log_likelihood,
    mutual_information,
)

S2 = 0.5  # p(x|z) = N(x; z, S2 I), p(z) = N(0, I)  =>  p(x) = N(0, (1 + S2) I), p(z|x) = N(x/(1+S2), S2/(1+S2))


def _toy(x_rows, labels, z):
    # x travels in the input_ids slot; the toy decoder's log p(x|z).
    return gaussian_log_density(x_rows, z, torch.full_like(z, math.log(S2))).double()


def _exact(x):
    return gaussian_log_density(x, torch.zeros_like(x), torch.full_like(x, math.log(1 + S2))).double()


def test_iw_nll_is_exact_with_the_true_posterior():
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    mu, logvar = x / (1 + S2), torch.full_like(x, math.log(S2 / (1 + S2)))
    est = iw_log_likelihood(None, x, x, mu, logvar, num_samples=1, log_p_x_given_z=_toy,
                            generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(est, _exact(x), rtol=0, atol=1e-5)


def test_iw_bound_tightens_towards_the_exact_likelihood_as_samples_grow():
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    # A poor proposal: shifted means and too wide variances.
    mu, logvar = x / (1 + S2) + 0.5, torch.full_like(x, math.log(1.5 * S2 / (1 + S2)))
    exact = float(_exact(x).mean())
    gaps = {}
    for k in (1, 10, 500):
        est = iw_log_likelihood(None, x, x, mu, logvar, num_samples=k, log_p_x_given_z=_toy, chunk=4096,
                                generator=torch.Generator().manual_seed(k))
        gaps[k] = exact - float(est.mean())
    assert gaps[1] > gaps[10] > gaps[500] > -0.02  # a lower bound of log p(x) (up to noise), tighter with K
    assert gaps[1] > 0.3 and gaps[500] < 0.05
    with pytest.raises(ValueError, match="num_samples"):
        iw_log_likelihood(None, x, x, mu, logvar, num_samples=0, log_p_x_given_z=_toy)


def test_mutual_information_on_constructed_posteriors():
    g = torch.Generator().manual_seed(0)
    n = 4000
    # Posteriors identical for every x: z says nothing about x.
    same = mutual_information(torch.zeros(n, 2), torch.zeros(n, 2), generator=g)
    assert abs(same) < 0.05
    # 1-d Gaussian channel: mu ~ N(0, 1), q(z|x) = N(mu, 0.25): I = 0.5 log(1 + 1 / 0.25).
    mu = torch.randn(n, 1, generator=g)
    gauss = mutual_information(mu, torch.full((n, 1), math.log(0.25)), generator=g)
    assert gauss == pytest.approx(0.5 * math.log(5.0), abs=0.05)
    # Far-apart, sharp posteriors: z identifies x, I = log N (the estimator's ceiling).
    far = mutual_information(torch.arange(2000.0)[:, None] * 10, torch.full((2000, 1), -4.0), generator=g)
    assert far == pytest.approx(math.log(2000), abs=0.05)  # the Monte Carlo error of E log q is ~0.016


def test_active_units_count_dimensions_whose_means_vary():
    g = torch.Generator().manual_seed(0)
    mu = torch.cat([torch.randn(500, 3, generator=g), 0.01 * torch.randn(500, 2, generator=g)], dim=1)
    assert active_units(mu) == 3
    assert active_units(mu, threshold=1e-6) == 5
    assert active_units(torch.zeros(10, 4)) == 0


def test_collapse_is_warned():
    assert any("collapse" in w for w in collapse_warnings(kl=0.01, mi=0.0, au=0, latent_dim=32))
    assert any("partial" in w for w in collapse_warnings(kl=3.0, mi=1.0, au=2, latent_dim=32))
    assert collapse_warnings(kl=10.0, mi=4.0, au=32, latent_dim=32) == []
