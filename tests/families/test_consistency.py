"""Consistency models: the student starts from the internal teacher; Fourier option (small budgets)."""

from __future__ import annotations

import numpy as np

import genzoo as gz
from tests.conftest import small_params


def _small(**kw):
    p = {"teacher_steps": 100, "pool_size": 500, **kw}
    return gz.make("consistency", **small_params("consistency", **p))


def test_student_starts_from_the_internal_teacher():
    X = gz.datasets.get("ring").sample(500, random_state=0)
    m = _small(max_steps=1, lr=1e-12).fit(X)  # one step with a negligible rate: the student is the teacher
    x = m._tensor(np.random.default_rng(0).standard_normal((20, 2)))
    t = m._tensor(np.full(20, 0.5))
    np.testing.assert_allclose(m.module_(x, t, None, ema=True).detach().numpy(),
                               m._teacher_net(x, t, None).detach().numpy(), atol=1e-4)
    assert m._student_init is None and m._teacher_module is None


def test_fourier_features_are_an_option():
    X = gz.datasets.get("ring").sample(300, random_state=0)
    for ff in (0, 16):
        m = _small(max_steps=5, teacher_steps=5, fourier_features=ff).fit(X)
        assert (m.module_.net.mlp.fourier is None) == (ff == 0)
        assert np.isfinite(m.sample(20, random_state=0, steps=2)).all()
