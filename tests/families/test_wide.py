"""Array families beyond 2-D: fit / sample / impute at D = 5 on tiny budgets, the width-scaled
defaults, the MCMC imputation route against an exact conditional, and the cost guards."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import genzoo as gz
from genzoo.errors import UnsupportedError
from genzoo.families._wide import GRID_MAX_EVALUATIONS, grid_cost, impute_route, scaled_width
from genzoo.nn.mlp import FourierFeatures, fourier_std
from genzoo.samplers.mcmc import check_cost, mala_impute, mcmc_cost, model_impute

D = 5
# tiny budgets: every family's fit here is a smoke run (shapes, plumbing), not a quality check
TINY = {
    "vae": {"max_steps": 30},
    "gan": {"max_steps": 30, "rejection_steps": 20, "impute_pool": 4096},
    "flow": {"max_steps": 20},
    "diffusion": {"max_steps": 30, "sample_steps": 20, "likelihood_steps": 8},
    "autoregressive": {"max_steps": 30},
    "gmm": {},
    "kde": {},
    "ebm": {"max_steps": 20, "ais_steps": 20, "sample_steps": 10},
    "score": {"max_steps": 30, "sample_steps": 20},
    "flow_matching": {"max_steps": 30, "sample_steps": 8, "likelihood_steps": 8},
    "rectified_flow": {"max_steps": 30, "reflow_steps": 10, "reflow_pairs": 500, "pair_steps": 4, "sample_steps": 4,
                       "likelihood_steps": 8},
    "consistency": {"max_steps": 30, "teacher_steps": 30, "pool_size": 500},
    "masked_diffusion": {"max_steps": 30},
}


def _data(n: int = 400, d: int = D, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d)) / math.sqrt(d)
    return (rng.standard_normal((n, d)) @ A + 3 * rng.integers(0, 2, (n, 1))).astype(np.float32)


def _make(family: str, **kw):
    params = gz.make(family).get_params()
    kw = {**TINY.get(family, {}), **kw, "random_state": 0}
    if "verbose" in params:
        kw["verbose"] = 0
    return gz.make(family, **{k: v for k, v in kw.items() if k in params})


def test_the_array_families_are_registered():
    # image-only families (registered by other modules) are not array families and are not listed here
    assert set(TINY) <= set(gz.families()), f"not registered: {set(TINY) - set(gz.families())}"


@pytest.mark.parametrize("family", sorted(TINY))
def test_fits_samples_and_imputes_at_five_columns(family):
    X = _data()
    m = _make(family).fit(X)
    S = np.asarray(m.sample(32, random_state=1))
    assert S.shape == (32, D) and np.isfinite(S).all()
    if m.likelihood_kind != "none" and family not in ("rectified_flow", "consistency"):
        lp = np.asarray(m.score_samples(X[:16]))
        assert lp.shape == (16,) and np.isfinite(lp).all()
    if "impute" in m.capabilities:
        Q = X[:6].copy()
        Q[:3, 1:4] = np.nan  # a middle block (not a suffix)
        Q[3:, 3:] = np.nan  # a suffix
        opts = {"steps": 5, "burn": 5, "method": "mcmc"} if family in ("flow", "ebm") else {}
        if family in ("score", "rectified_flow"):  # their approximate route here; flow_matching and
            opts = {"method": "repaint"}  # diffusion take the default (importance resampling) below
        F = np.asarray(m.impute(Q, random_state=0, **opts))
        if family in ("flow_matching", "diffusion"):  # few distinct rows beyond 3-D: importance resampling
            assert m.last_impute_ess_ > 1
        assert F.shape == Q.shape and np.isfinite(F).all()
        obs = ~np.isnan(Q)
        np.testing.assert_array_equal(F[obs], Q[obs])


def test_scaled_width_reduces_to_the_2d_default_and_grows_past_32_columns():
    assert scaled_width(None, 2) == 128 and scaled_width(None, 2, 64) == 64 and scaled_width(None, 32) == 128
    assert scaled_width(None, 100) == 416 and scaled_width(None, 100) % 32 == 0
    assert scaled_width(50, 100) == 50  # an explicit width is kept
    m = _make("flow_matching", max_steps=2).fit(_data(200, 40))
    first = next(mod for mod in m.module_.modules() if isinstance(mod, torch.nn.Linear))
    assert first.out_features == 160


def test_fourier_projection_keeps_its_spread_at_any_width():
    assert fourier_std(2, 5.0) == 5.0 and fourier_std(1, 5.0) == 5.0
    torch.manual_seed(0)
    for d in (2, 10, 100):
        ff = FourierFeatures(d, 4096, 5.0)
        x = torch.randn(256, d)
        spread = float((x @ ff.B).std())
        assert abs(spread - 5.0 * math.sqrt(2)) < 0.6, (d, spread)


def test_gan_latent_scales_with_the_width_and_stays_8_in_2d():
    m2 = _make("gan", max_steps=2, rejection_steps=2).fit(_data(200, 2))
    m20 = _make("gan", max_steps=2, rejection_steps=2).fit(_data(200, 20))
    assert m2.module_.latent_dim == 8 and m20.module_.latent_dim == 20
    assert m2.get_params()["latent_dim"] is None


def test_mala_imputation_matches_an_exact_gaussian_conditional():
    rng = np.random.default_rng(0)
    d = 6
    A = rng.standard_normal((d, d))
    C = A @ A.T / d + 0.05 * np.eye(d)
    P = torch.tensor(np.linalg.inv(C), dtype=torch.float32)
    xo = np.array([0.5, -0.3, 0.2])
    Z = np.full((1000, d), np.nan)
    Z[:, :3] = xo
    draw = lambda k, s: np.random.default_rng(s).multivariate_normal(np.zeros(d), C, k)  # noqa: E731
    F = model_impute(lambda z: -0.5 * ((z @ P) * z).sum(1), draw, Z, np.isnan(Z), 0, family="test",
                     steps=60, burn=100, pool=4096)
    K = C[3:, :3] @ np.linalg.inv(C[:3, :3])
    mu, S = K @ xo, C[3:, 3:] - K @ C[:3, 3:]
    assert np.all(F[:, :3] == xo)
    assert np.abs(F[:, 3:].mean(0) - mu).max() < 4 * np.sqrt(np.diag(S).max() / 1000) + 0.02
    assert np.abs(np.cov(F[:, 3:], rowvar=False) - S).max() < 0.15 * np.abs(S).max()


def test_mala_moves_a_bad_start_onto_the_conditional():
    Z = np.full((500, 2), np.nan)
    Z[:, 0] = 1.0
    F = mala_impute(lambda z: -0.5 * ((z - 3.0) ** 2).sum(1), Z, np.isnan(Z), np.full((500, 2), -5.0), 1,
                    steps=100, burn=150)
    assert np.all(F[:, 0] == 1.0)
    assert abs(F[:, 1].mean() - 3.0) < 0.15 and abs(F[:, 1].std() - 1.0) < 0.15


def test_cost_guards_name_the_cost():
    assert mcmc_cost(10, 150, 250) == 4010
    with pytest.raises(ValueError, match="cost guard"):
        check_cost(10**6, 150, 250, "flow")
    check_cost(100, 150, 250, "flow")
    miss = np.ones((1000, 10), bool)
    miss[:, :5] = False
    assert grid_cost(np.zeros((1000, 10)), miss) > GRID_MAX_EVALUATIONS
    assert impute_route(None, 2) == "grid" and impute_route(None, 3) == "mcmc"
    with pytest.raises(ValueError, match="impute method"):
        impute_route("fast", 5)
    m = _make("flow", max_steps=5).fit(_data())
    Q = _data(50)
    Q[:, 2:] = np.nan
    with pytest.raises(ValueError, match="evaluations"):
        m.impute(Q, max_cost=100)
    with pytest.raises(ValueError, match="cost guard"):
        m.impute(np.repeat(Q, 1000, 0)[:20000] + np.arange(20000)[:, None] * 1e-3, method="grid")


def test_ebm_above_2d_states_its_normalisation_and_refuses_the_grid_sampler():
    m = _make("ebm").fit(_data(300, 3))
    assert m.likelihood_kind == "estimate" and math.isfinite(m.log_z_)
    with pytest.raises(UnsupportedError, match="2 dimensions"):
        m.sample(5, sampler="grid")
