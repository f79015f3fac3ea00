"""Rectified flow: the Fourier option, reflow bookkeeping and the few-step sampler (small budgets)."""

from __future__ import annotations

import numpy as np
import pytest

import genzoo as gz
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
