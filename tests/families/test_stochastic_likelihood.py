"""Stochastic likelihoods are labelled and reproducible (issue 13, item 5).

Beyond ``EXACT_TRACE_MAX_DIM`` (10) features the ODE families score with a Hutchinson trace:
``likelihood_kind`` must say ``'estimate'`` there (``'exact'`` below), and the estimate must
be seeded and keyed on the rows, so scoring the same rows twice, or in another batch,
returns the same numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

import genzoo as gz
from genzoo.samplers.ode import EXACT_TRACE_MAX_DIM
from tests.conftest import small_params

ODE_FAMILIES = ["diffusion", "score", "flow_matching", "rectified_flow"]


@pytest.fixture(scope="module")
def wide_data() -> np.ndarray:
    rng = np.random.default_rng(0)
    d = EXACT_TRACE_MAX_DIM + 2  # 12
    return rng.standard_normal((400, d)) @ (np.eye(d) + 0.3 * rng.standard_normal((d, d)))


def _tiny(family: str, X: np.ndarray):
    return gz.make(family, **small_params(family, max_steps=30, hidden=32, fourier_features=0)).fit(X)


@pytest.mark.parametrize("family", ODE_FAMILIES)
def test_wide_data_gives_a_seeded_estimate(family, wide_data):
    m = _tiny(family, wide_data)
    assert type(m).likelihood_kind == "exact" and m.likelihood_kind == "estimate"
    X = wide_data[:24]
    a = m.score_samples(X, steps=8)
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(m.score_samples(X, steps=8), a)  # the same rows: the same numbers
    np.testing.assert_allclose(m.score_samples(X[[20, 2, 9]], steps=8), a[[20, 2, 9]], rtol=0, atol=1e-4)
    if family in ("diffusion", "score", "flow_matching"):  # the standard error of the estimate, where asked
        lp, se = m.score_samples(X, steps=8, return_se=True)
        np.testing.assert_array_equal(lp, a)
        assert se.shape == a.shape and np.isfinite(se).all() and (se > 0).all()


@pytest.mark.parametrize("family", ODE_FAMILIES)
def test_low_dimension_stays_exact(family, ring_small):
    m = _tiny(family, ring_small[:200])
    assert m.likelihood_kind == "exact"
    lp, se = m.score_samples(ring_small[:10], return_se=True)
    assert np.isfinite(lp).all() and (se == 0).all()  # an exact number has no standard error
