"""Rectified flow: the Fourier option, reflow bookkeeping and the few-step sampler (small budgets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import genzoo as gz
from genzoo.base import torch_seed
from genzoo.samplers.ode import integrate, log_time
from tests.conftest import small_params


def _small(**kw):
    p = {"reflow_steps": 100, "reflow_pairs": 1000, **kw}
    return gz.make("rectified_flow", **small_params("rectified_flow", **p))


@pytest.fixture(scope="module")
def ring_rf():
    X = gz.datasets.get("ring").sample(1000, random_state=0)
    return _small(max_steps=200).fit(X)


def test_reflow_history_and_nfe(ring_rf):
    m = ring_rf
    assert len(m.reflow_history_) == 2 and m.n_steps_ == 300
    assert all(np.isfinite(list(h.values())).all() for h in m.reflow_history_)
    S = m.sample(50, random_state=0)
    assert S.shape == (50, 2) and m.last_nfe_ == m.sample_steps
    m.sample(50, random_state=0, steps=1)
    assert m.last_nfe_ == 1


def test_fourier_features_are_an_option():
    X = gz.datasets.get("ring").sample(300, random_state=0)
    on = _small(max_steps=5, reflow_steps=5).fit(X)
    off = _small(max_steps=5, reflow_steps=5, fourier_features=0).fit(X)
    assert on.module_.net.mlp.fourier is not None and off.module_.net.mlp.fourier is None
    assert np.isfinite(off.score_samples(X[:10])).all()


def test_reflow_straightens_the_paths(ring_rf):
    """After a reflow the paths are straighter (path energy) and one Euler step lands closer."""
    before, after = ring_rf.reflow_history_
    assert after["npe"] < 0.5 * before["npe"]
    assert after["w2_one_step"] < before["w2_one_step"]


def test_reflow_pairs_are_the_models_own_ode_map(ring_rf):
    X0, X1, _ = ring_rf._pairs(200, False, seed=3)
    again0, again1, _ = ring_rf._pairs(200, False, seed=3)
    np.testing.assert_allclose(X0, again0)
    np.testing.assert_allclose(X1, again1)  # deterministic: a map of the noise, not a fresh draw
    f = log_time(ring_rf._field(None, 1.0))
    fine, _ = integrate(f, torch.as_tensor(X0), 0.0, 1.0, method="rk4", steps=128)
    err = np.abs(X1 - fine.numpy()).max(1)  # the 32-step pairs follow the ODE
    assert np.median(err) < 2e-3 and np.quantile(err, 0.95) < 1e-2


def test_bad_options():
    X = gz.datasets.get("ring").sample(300, random_state=0)
    with pytest.raises(ValueError, match="reflow_batch_size"):
        _small(max_steps=5, reflow_steps=5, reflow_batch_size=0).fit(X)
    with pytest.raises(ValueError, match="stable_target=True needs coupling='independent'"):
        _small(max_steps=5, reflow_steps=5, stable_target=True, coupling="ot").fit(X)
    with pytest.raises(ValueError, match="reflow_lr"):
        _small(max_steps=5, reflow_steps=5, reflow_lr=0.0).fit(X)
    with pytest.raises(ValueError, match="n_reflow"):
        _small(max_steps=5, reflow_steps=5, n_reflow=-1).fit(X)
    with pytest.raises(ValueError, match="coupling"):
        _small(max_steps=5, reflow_steps=5, coupling="sinkhorn").fit(X)


def test_the_reflow_trains_at_its_own_learning_rate(monkeypatch):
    cls = type(gz.make("rectified_flow"))
    seen, make = [], cls._configure_optimizers

    def spy(self, lr):
        opts = make(self, lr)
        seen.append(opts[0].defaults["lr"])
        return opts

    monkeypatch.setattr(cls, "_configure_optimizers", spy)
    X = gz.datasets.get("ring").sample(300, random_state=0)
    _small(max_steps=5, reflow_steps=5, n_reflow=2, lr=1e-3, reflow_lr=3e-3).fit(X)
    assert seen == [1e-3, 3e-3, 3e-3]  # the 1-RF, then each reflow


def test_independent_coupling_uses_the_stable_target_for_the_first_flow():
    """The batch-averaged target has the pair target's mean and less variance: a lower loss."""
    X = gz.datasets.get("ring").sample(300, random_state=0)
    m = _small(max_steps=5, reflow_steps=5).fit(X)  # the default coupling
    assert m.coupling == "independent"
    z = torch.as_tensor((X - m.loc_) / m.scale_, dtype=torch.float32)
    losses = {}
    for stable in ("auto", False):
        m.stable_target = stable
        with torch_seed(0, torch.device("cpu")), torch.no_grad():
            losses[stable] = float(m._loss(z, None))
    assert losses["auto"] < 0.8 * losses[False]
