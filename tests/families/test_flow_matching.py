"""Flow matching: the objective in closed form, the OT coupling, guidance, and a small fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import genzoo as gz
from genzoo.objectives.couplings import ot_pairing
from genzoo.objectives.guidance import guided_velocity
from genzoo.objectives.paths import cfm_loss, linear_path, stable_velocity_target
from genzoo.samplers.ode import path_energy
from tests.conftest import small_params


def test_linear_path_and_target_velocity_in_closed_form():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g) * 2 + 1
    t = torch.rand(64, generator=g)
    xt, ut = linear_path(x0, x1, t)
    torch.testing.assert_close(xt, (1 - t[:, None]) * x0 + t[:, None] * x1)
    torch.testing.assert_close(ut, x1 - x0)
    # the target is the time derivative of the path (finite difference)
    h = 1e-3
    xh, _ = linear_path(x0, x1, t + h)
    torch.testing.assert_close((xh - xt) / h, ut, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(linear_path(x0, x1, torch.zeros(64))[0], x0)
    torch.testing.assert_close(linear_path(x0, x1, torch.ones(64))[0], x1)


def _gaussian_marginal_velocity(m: torch.Tensor, s: float):
    """Exact marginal field of independent CFM from N(0, I) to N(m, s^2 I):
    v(x, t) = m + (t s^2 - (1 - t)) / (t^2 s^2 + (1 - t)^2) (x - t m)."""

    def v(x, t, y=None):
        tt = t[:, None]
        return m + (tt * s * s - (1 - tt)) / (tt * tt * s * s + (1 - tt) ** 2) * (x - tt * m)

    return v


def test_the_exact_marginal_velocity_minimises_the_cfm_loss():
    torch.manual_seed(0)
    m, s = torch.tensor([1.5, -0.5]), 0.3
    x1 = m + s * torch.randn(200_000, 2)
    v = _gaussian_marginal_velocity(m, s)
    t = torch.rand(len(x1)) * 0.98 + 0.01
    x0 = torch.randn_like(x1)
    best = float(cfm_loss(v, x1, x0=x0, t=t, coupling="independent"))
    for bad in (lambda x, t, y=None: v(x, t) * 1.05, lambda x, t, y=None: v(x, t) + 0.05,
                _gaussian_marginal_velocity(m, 0.33)):
        assert float(cfm_loss(bad, x1, x0=x0, t=t, coupling="independent")) > best + 1e-4


def test_stable_target_approaches_the_exact_marginal_velocity():
    """The batch-averaged target estimates E[x1 - x0 | x_t]: close to the closed-form marginal
    field of a Gaussian, far closer than the single pair's velocity, and equal to it at t -> 1."""
    g = torch.Generator().manual_seed(3)
    m, s = torch.tensor([1.5, -0.5]), 0.3
    x1 = m + s * torch.randn(4000, 2, generator=g)
    x0 = torch.randn(4000, 2, generator=g)
    t = torch.rand(4000, generator=g) * 0.9 + 0.05
    exact = _gaussian_marginal_velocity(m, s)(linear_path(x0, x1, t)[0], t)
    stable = stable_velocity_target(x0, x1, t)
    pair = x1 - x0
    err_stable = float((stable - exact).norm(dim=1).mean())
    err_pair = float((pair - exact).norm(dim=1).mean())
    assert err_stable < 0.05 and err_pair > 10 * err_stable
    near_one = torch.full((4000,), 1 - 1e-5)
    torch.testing.assert_close(stable_velocity_target(x0, x1, near_one), pair, atol=1e-3, rtol=1e-3)


def test_stable_target_with_labels_averages_within_the_class_unless_dropped():
    x1 = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    x0 = torch.tensor([[0.3, -0.2], [0.0, 0.4], [-1.0, 0.2], [0.5, 0.5]])
    y = torch.tensor([0, 0, 1, 1])
    t = torch.full((4,), 0.3)
    xt = linear_path(x0, x1, t)[0]

    def expected(i, ref):  # (E[x1 | x_t] over the reference rows - x_t) / (1 - t), by hand
        w = torch.softmax(-((xt[i] - 0.3 * x1[ref]) ** 2).sum(1) / (2 * 0.7 ** 2), 0)
        return (w @ x1[ref] - xt[i]) / 0.7

    u = stable_velocity_target(x0, x1, t, y)
    for i in range(4):
        torch.testing.assert_close(u[i], expected(i, y == y[i]))
    free = torch.tensor([True, False, False, False])  # row 0's label was dropped: all rows
    u_free = stable_velocity_target(x0, x1, t, y, free)
    torch.testing.assert_close(u_free[0], expected(0, torch.ones(4, dtype=torch.bool)))
    torch.testing.assert_close(u_free[1:], u[1:])


def test_ot_pairing_is_a_permutation_that_lowers_the_transport_cost():
    g = torch.Generator().manual_seed(1)
    x1 = torch.randn(256, 2, generator=g) * 3 + 2
    x0 = torch.randn(256, 2, generator=g)
    indep = float(((x1 - x0) ** 2).sum(1).mean())
    for chunk in (None, 64):
        p = ot_pairing(x0, x1, chunk=chunk)
        # same rows, reordered
        assert torch.equal(p[torch.argsort(p[:, 0])], x0[torch.argsort(x0[:, 0])])
        assert float(((x1 - p) ** 2).sum(1).mean()) < 0.6 * indep
    full = float(((x1 - ot_pairing(x0, x1)) ** 2).sum(1).mean())
    # exact OT: no pair swap lowers the cost (cyclical monotonicity for 2-cycles)
    p = ot_pairing(x0, x1)
    c = ((x1[:, None] - p[None]) ** 2).sum(-1)  # c[i, j]: data i with noise j
    d = torch.diagonal(c)
    assert bool((d[:, None] + d[None] <= c + c.T + 1e-5).all())
    assert full <= float(((x1 - ot_pairing(x0, x1, chunk=64)) ** 2).sum(1).mean()) + 1e-6


def test_ot_pairing_with_labels_stays_within_each_class():
    g = torch.Generator().manual_seed(2)
    x1, x0 = torch.randn(120, 2, generator=g), torch.randn(120, 2, generator=g)
    y = torch.randint(0, 3, (120,), generator=g)
    p = ot_pairing(x0, x1, y)
    for k in range(3):
        got = p[y == k]
        want = x0[y == k]
        assert torch.equal(got[torch.argsort(got[:, 0])], want[torch.argsort(want[:, 0])])


def test_guidance_mixes_conditional_and_unconditional_fields():
    null = 3

    def net(x, t, y):
        return x * 0 + y[:, None].float()  # the field is the label itself: 3 = null

    y = torch.tensor([0, 1, 2])
    x, t = torch.zeros(3, 2), torch.zeros(3)
    torch.testing.assert_close(guided_velocity(net, y, 1.0, null)(x, t), y[:, None].float().expand(3, 2))
    torch.testing.assert_close(guided_velocity(net, y, 0.0, null)(x, t), torch.full((3, 2), 3.0))
    want = 3 + 2.5 * (y[:, None].float() - 3)
    torch.testing.assert_close(guided_velocity(net, y, 2.5, null)(x, t), want.expand(3, 2))


def test_path_energy_is_zero_for_straight_paths_and_positive_for_curved():
    x0 = torch.randn(500, 2)
    assert abs(path_energy(lambda x, t: torch.ones_like(x), x0)["npe"]) < 1e-5
    rot = path_energy(lambda x, t: torch.stack([-x[:, 1], x[:, 0]], 1), x0)  # quarter-turn-ish arcs
    assert rot["npe"] > 0.05


# ----------------------------------------------------------------------------- the estimator
@pytest.fixture(scope="module")
def ring_model():
    X = gz.datasets.get("ring").sample(2000, random_state=0)
    return gz.make("flow_matching", **small_params("flow_matching", max_steps=600, batch_size=256)).fit(X)


def test_samples_land_on_the_ring_and_nfe_is_reported(ring_model):
    m = ring_model
    for sampler, steps, nfe in [("euler", 8, 8), ("heun", 8, 16), ("rk4", 4, 16)]:
        S = m.sample(1000, random_state=0, sampler=sampler, steps=steps)
        assert m.last_nfe_ == nfe
        r = np.linalg.norm(S, axis=1)
        assert np.mean(np.abs(r - 1) < 0.35) > 0.9, (sampler, np.mean(np.abs(r - 1) < 0.35))
    S = m.sample(200, random_state=0, sampler="dopri5")
    assert m.last_nfe_ > 0 and np.isfinite(S).all()


def test_likelihood_is_solver_independent_and_not_below_the_entropy(ring_model):
    ds = gz.datasets.get("ring")
    X = ds.sample(500, random_state=3)
    a = ring_model.score_samples(X)
    b = ring_model.score_samples(X, method="rk4", steps=256)
    assert np.abs(a - b).mean() < 0.02
    assert -a.mean() > ds.entropy() - 3 * a.std() / math.sqrt(len(a)) - 0.01


def test_impute_keeps_observed_values_and_follows_the_ring(ring_model):
    Q = np.full((300, 2), np.nan)
    Q[:, 0] = 0.0  # x = 0: y should be near +-1
    F = ring_model.impute(Q, random_state=0)
    assert np.array_equal(F[:, 0], Q[:, 0])
    assert np.mean(np.abs(np.abs(F[:, 1]) - 1) < 0.3) > 0.8
    assert 0.25 < np.mean(F[:, 1] > 0) < 0.75


def test_repaint_with_the_exact_field_draws_the_true_conditional():
    """RePaint on the linear path, given the exact marginal field of an empirical ring (independent
    coupling), fills y at x = 0 with draws near +-1; the grid and RePaint methods are both reachable."""
    from genzoo.samplers.inpainting import inpaint_linear_path as inpaint

    R = torch.tensor(gz.datasets.get("ring").sample(3000, random_state=0), dtype=torch.float32)

    def field(x, t):  # E[x1 - x0 | x_t] for x1 uniform on the rows of R: (E[x1 | x_t] - x) / (1 - t)
        t = t[:, None].clamp_max(1 - 1e-4)
        w = torch.softmax(-((x[:, None, :] - t[:, None] * R[None]) ** 2).sum(-1) / (2 * (1 - t) ** 2), 1)
        return (w @ R - x) / (1 - t)

    known, mask = torch.zeros(300, 2), torch.zeros(300, 2, dtype=torch.bool)
    mask[:, 0] = True
    torch.manual_seed(0)
    out, nfe = inpaint(field, known, mask, steps=50, resample=10)
    y = out[:, 1].numpy()
    assert nfe == 500 and torch.equal(out[:, 0], known[:, 0])
    assert abs(np.median(np.abs(y)) - 1) < 0.06 and np.mean(np.abs(np.abs(y) - 1) < 0.3) > 0.95
    assert 0.35 < np.mean(y > 0) < 0.65


def test_conditional_sampling_and_guidance():
    X, y = gz.datasets.get("gaussians8").sample(2000, random_state=0, return_labels=True)
    m = gz.make("flow_matching", **small_params("flow_matching", max_steps=600, batch_size=256)).fit(X, y)
    centers = np.stack([X[y == k].mean(0) for k in range(8)])
    for g in (1.0, 2.0):
        S = m.sample(400, y=3, random_state=1, guidance=g)
        near = np.argmin(((S[:, None] - centers[None]) ** 2).sum(-1), 1)
        assert np.mean(near == 3) > 0.9
    assert m.last_nfe_ == 2 * m.sample_steps * 2  # heun, two fields per step with guidance != 1


def test_works_in_five_dimensions():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((800, 5)) * [1, 2, 0.5, 1, 3] + 1
    m = gz.make("flow_matching", **small_params("flow_matching", max_steps=100)).fit(X)
    assert m.sample(50, random_state=0).shape == (50, 5)
    assert np.isfinite(m.score_samples(X[:20])).all()


def test_bad_options():
    X = gz.datasets.get("ring").sample(300, random_state=0)
    with pytest.raises(ValueError, match="coupling"):
        gz.make("flow_matching", coupling="sinkhorn", **small_params("flow_matching", max_steps=5)).fit(X)
    with pytest.raises(ValueError, match="stable_target=True needs coupling='independent'"):
        gz.make("flow_matching", coupling="ot", stable_target=True, **small_params("flow_matching", max_steps=5)).fit(X)
    with pytest.raises(ValueError, match="stable_target must be"):
        gz.make("flow_matching", stable_target="maybe", **small_params("flow_matching", max_steps=5)).fit(X)
    with pytest.raises(ValueError, match="fresh independent noise"):
        cfm_loss(lambda x, t, y=None: x, torch.zeros(4, 2), x0=torch.zeros(4, 2), coupling="independent",
                 stable_target=True)
    m = gz.make("flow_matching", **small_params("flow_matching", max_steps=5)).fit(X)
    with pytest.raises(ValueError, match="unknown sampling option"):
        m.sample(5, temperature=2)
    with pytest.raises(ValueError, match="unknown ODE method"):
        m.sample(5, sampler="leapfrog")
