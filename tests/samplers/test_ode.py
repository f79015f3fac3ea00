"""ODE integrators and the change-of-variables likelihood, on problems with closed-form answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genzoo.samplers.ode import (
    DEFAULT_PROBES,
    EXACT_TRACE_MAX_DIM,
    ProbabilityFlow,
    TraceLikelihoodKind,
    divergence,
    integrate,
    log_likelihood,
    standard_normal_log_prob,
    trace_options,
    trace_probes,
)


def _decay(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -x  # dx/dt = -x: x(1) = x(0) e^-1


@pytest.mark.parametrize("method,order", [("euler", 1), ("heun", 2), ("rk4", 4)])
def test_convergence_order(method, order):
    x0 = torch.ones(1, 1, dtype=torch.float64)
    errs = [abs(float(integrate(_decay, x0, 0.0, 1.0, method=method, steps=s)[0]) - math.exp(-1))
            for s in (8, 16, 32)]
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(abs(r - order) < 0.25 for r in rates), rates


def test_nfe_counts_and_path():
    x0 = torch.randn(5, 3)
    for method, per in [("euler", 1), ("heun", 2), ("rk4", 4)]:
        _, nfe = integrate(_decay, x0, 0.0, 1.0, method=method, steps=7)
        assert nfe == 7 * per
    path, _ = integrate(_decay, x0, 0.0, 1.0, method="euler", steps=4, return_path=True)
    assert path.shape == (5, 5, 3) and torch.equal(path[0], x0)


def test_time_runs_backwards_and_forwards():
    x0 = torch.randn(6, 2, dtype=torch.float64)
    f = lambda x, t: torch.sin(3 * t)[:, None] * x + torch.cos(x)  # noqa: E731
    x1, _ = integrate(f, x0, 0.0, 1.0, method="rk4", steps=200)
    back, _ = integrate(f, x1, 1.0, 0.0, method="rk4", steps=200)
    torch.testing.assert_close(back, x0, atol=1e-8, rtol=0)


def test_adaptive_solver_meets_tolerance_and_reports_nfe():
    x0 = torch.ones(4, 2, dtype=torch.float64)
    loose, n_loose = integrate(_decay, x0, 0.0, 1.0, method="dopri5", rtol=1e-4, atol=1e-4)
    tight, n_tight = integrate(_decay, x0, 0.0, 1.0, method="dopri5", rtol=1e-9, atol=1e-9)
    assert abs(float(tight[0, 0]) - math.exp(-1)) < 1e-8
    assert abs(float(loose[0, 0]) - math.exp(-1)) < 1e-3
    assert 0 < n_loose < n_tight


def test_bad_arguments():
    x0 = torch.ones(2, 2)
    with pytest.raises(ValueError, match="unknown ODE method"):
        integrate(_decay, x0, 0.0, 1.0, method="leapfrog")
    with pytest.raises(ValueError, match="steps"):
        integrate(_decay, x0, 0.0, 1.0, method="euler", steps=0)
    with pytest.raises(ValueError, match="return_path"):
        integrate(_decay, x0, 0.0, 1.0, method="dopri5", return_path=True)
    with pytest.raises(ValueError, match="divergence_kind"):
        log_likelihood(_decay, x0, 1.0, 0.0, divergence_kind="bogus")


# ----------------------------------------------------------------------------- a linear flow between Gaussians
def _linear_ot_flow(d: int, seed: int = 0):
    """The straight-line (OT) flow from N(0, I) at t=0 to N(m, A A^T) at t=1, A symmetric positive definite.

    x_t = M_t x0 + t m with M_t = (1 - t) I + t A, so v(x, t) = m + (A - I) M_t^{-1} (x - t m).
    """
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(torch.linspace(0.3, 2.5, d, dtype=torch.float64)) @ Q.T
    m = torch.randn(d, generator=g, dtype=torch.float64)
    eye = torch.eye(d, dtype=torch.float64)

    def f(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        s = float(t[0])
        Minv = torch.linalg.inv((1 - s) * eye + s * A)
        return m + (x - s * m) @ (Minv.T @ (A - eye).T)

    def true_log_prob(x: torch.Tensor) -> torch.Tensor:
        dist = torch.distributions.MultivariateNormal(m, covariance_matrix=A @ A.T)
        return dist.log_prob(x)

    def push(n: int) -> torch.Tensor:
        return torch.randn(n, d, generator=g, dtype=torch.float64) @ A.T + m

    return f, true_log_prob, push


@pytest.mark.parametrize("method,kw", [("rk4", {"steps": 16}), ("dopri5", {"rtol": 1e-7, "atol": 1e-7})])
def test_log_likelihood_of_a_linear_flow_matches_the_gaussian(method, kw):
    f, true_lp, push = _linear_ot_flow(3)
    x = push(200)
    lp, nfe = log_likelihood(f, x, 1.0, 0.0, method=method, **kw)
    torch.testing.assert_close(lp, true_lp(x), atol=2e-5, rtol=0)
    assert nfe > 0


def test_sampling_the_linear_flow_gives_the_target_moments():
    f, _, _ = _linear_ot_flow(2, seed=1)
    x0 = torch.randn(4000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x1, _ = integrate(f, x0, 0.0, 1.0, method="heun", steps=50)
    rk, _ = integrate(f, x0, 0.0, 1.0, method="rk4", steps=10)
    A_est = torch.linalg.lstsq(torch.cat([x0, torch.ones(4000, 1, dtype=torch.float64)], 1), rk).solution
    # the flow's end point is the affine map x1 = A x0 + m: recovered exactly from RK4's end points
    torch.testing.assert_close(x1, rk, atol=2e-4, rtol=0)
    resid = torch.cat([x0, torch.ones(4000, 1, dtype=torch.float64)], 1) @ A_est - rk
    assert float(resid.abs().max()) < 1e-4


def test_hutchinson_is_unbiased_and_exact_divergence_is_exact():
    d = 12  # above the exact-divergence default
    f, true_lp, push = _linear_ot_flow(d, seed=3)
    x = push(64)
    reps = 12
    runs = [log_likelihood(f, x, 1.0, 0.0, method="rk4", steps=8, seed=s, return_se=True) for s in range(reps)]
    est = torch.stack([r[0] for r in runs])
    exact, _ = log_likelihood(f, x, 1.0, 0.0, method="rk4", steps=8, divergence_kind="exact")
    torch.testing.assert_close(exact, true_lp(x), atol=1e-3, rtol=0)
    err = (est.mean(0) - exact).abs().mean()
    assert err < 4 * est.std(0).mean() / math.sqrt(reps) + 1e-6
    assert est.std(0).mean() > 1e-3  # it really is a random estimate beyond exact_max_dim
    # the reported standard error (over a call's 4 probes) matches the spread across seeds
    se = torch.stack([r[1] for r in runs]).pow(2).mean(0).sqrt()
    ratio = float(se.mean() / est.std(0).mean())
    assert 0.7 < ratio < 1.4, ratio


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_hutchinson_is_seeded_and_per_row_at_d12(kind):
    """Same rows -> the same numbers: on every call, in any batch or order; a new seed -> new probes."""
    f, _, push = _linear_ot_flow(12, seed=4)
    x = push(40)
    kw = dict(method="rk4", steps=6, probe_kind=kind, seed=7)
    a, _ = log_likelihood(f, x, 1.0, 0.0, **kw)
    b, _ = log_likelihood(f, x, 1.0, 0.0, **kw)
    assert torch.equal(a, b)
    part, _ = log_likelihood(f, x[[30, 3, 17]], 1.0, 0.0, **kw)
    torch.testing.assert_close(part, a[[30, 3, 17]], atol=1e-9, rtol=0)
    c, _ = log_likelihood(f, x, 1.0, 0.0, **{**kw, "seed": 8})
    assert not torch.allclose(a, c)


def test_probes_and_standard_errors():
    f, _, push = _linear_ot_flow(12, seed=5)
    x = push(30)
    p = trace_probes(x, 3, seed=1)
    assert p.shape == (3, 30, 12) and set(p.unique().tolist()) == {-1.0, 1.0}
    g = trace_probes(x, 200, seed=1, kind="gaussian")
    assert abs(float(g.mean())) < 0.02 and abs(float(g.var()) - 1) < 0.03
    # more probes, smaller error: the standard error falls like 1 / sqrt(probes)
    _, se4, _ = log_likelihood(f, x, 1.0, 0.0, method="rk4", steps=6, probes=4, return_se=True)
    _, se16, _ = log_likelihood(f, x, 1.0, 0.0, method="rk4", steps=6, probes=16, return_se=True)
    assert 1.4 < float(se4.mean() / se16.mean()) < 2.8
    _, se1, _ = log_likelihood(f, x, 1.0, 0.0, method="rk4", steps=6, probes=1, return_se=True)
    assert torch.isnan(se1).all()
    _, se0, _ = log_likelihood(f, x, 1.0, 0.0, method="rk4", steps=6, divergence_kind="exact", return_se=True)
    assert torch.equal(se0, torch.zeros(30, dtype=se0.dtype))
    for bad in (dict(probes=0), dict(probe_kind="normal")):
        with pytest.raises(ValueError):
            log_likelihood(f, x, 1.0, 0.0, steps=2, **bad)


def test_likelihood_kind_and_trace_options():
    class Model:
        likelihood_kind = TraceLikelihoodKind()
        random_state = 3

    m = Model()
    assert Model.likelihood_kind == "exact" and m.likelihood_kind == "exact"  # unfitted
    m.n_features_in_ = EXACT_TRACE_MAX_DIM
    assert m.likelihood_kind == "exact"
    m.n_features_in_ = EXACT_TRACE_MAX_DIM + 2
    assert m.likelihood_kind == "estimate"
    assert trace_options(m) == {"probes": DEFAULT_PROBES, "seed": 3}
    assert trace_options(m, probes=8, random_state=5) == {"probes": 8, "seed": 5}
    m.random_state = None
    assert trace_options(m)["seed"] == 0  # still fixed: repeated scoring agrees


def test_divergence_matches_the_trace_of_the_jacobian():
    W = torch.randn(4, 4, dtype=torch.float64)
    f = lambda x, t: torch.tanh(x @ W.T) * (1 + t[:, None])  # noqa: E731
    x = torch.randn(10, 4, dtype=torch.float64)
    t = torch.full((10,), 0.3, dtype=torch.float64)
    _, div = divergence(f, x, t)
    J = torch.autograd.functional.jacobian(lambda z: f(z, t).sum(0), x)  # (4, 10, 4)
    tr = torch.einsum("ibi->b", J)
    torch.testing.assert_close(div, tr)


def test_probability_flow_with_a_wide_prior():
    # dx/dt = 0: the model is its prior, N(0, 3^2 I)
    flow = ProbabilityFlow(lambda x, t: torch.zeros_like(x), t_noise=1.0, t_data=0.0, noise_std=3.0)
    x = torch.randn(50, 2, dtype=torch.float64)
    lp, _ = flow.log_prob(x, method="euler", steps=2)
    torch.testing.assert_close(lp, standard_normal_log_prob(x / 3) - 2 * math.log(3))
    torch.manual_seed(0)
    s, _ = flow.sample(20000, 2, steps=1)
    assert abs(float(s.std()) - 3) < 0.1


def test_likelihood_integrates_to_one_on_a_grid():
    f, _, _ = _linear_ot_flow(2, seed=5)
    xs = np.linspace(-9, 9, 90)
    gx, gy = np.meshgrid(xs, xs)
    P = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1))
    lp, _ = log_likelihood(f, P, 1.0, 0.0, method="rk4", steps=20)
    mass = float(lp.exp().sum()) * (xs[1] - xs[0]) ** 2
    assert abs(mass - 1) < 1e-3
