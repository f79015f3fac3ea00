"""The family contract on a GPU, run whenever one is available (skipped on CPU-only machines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import genzoo as gz
from tests.conftest import small_params

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.mark.parametrize("family", [f for f in gz.families() if getattr(gz.make(f), "data_kind", None) != "image"])
def test_contract_on_gpu(family, tmp_path):
    X, y = gz.datasets.get("gaussians8").sample(800, random_state=0, return_labels=True)
    m = gz.make(family, **{**small_params(family), **({"device": "cuda"} if "device" in gz.make(family).get_params()
                                                       else {})})
    caps = m.capabilities
    m.fit(X, y if "conditional" in caps else None)
    S = m.sample(64, random_state=1)
    assert S.shape == (64, 2) and np.isfinite(S).all()
    np.testing.assert_array_equal(S, m.sample(64, random_state=1))
    if "conditional" in caps:
        assert m.sample(16, y=m.classes_[1], random_state=2).shape == (16, 2)
    if "log_prob" in caps:
        lp = m.score_samples(X[:100])
        assert np.isfinite(lp).all()
        np.testing.assert_allclose(m.score_samples(X[:100]), lp, atol=1e-6)
        m.save(tmp_path / "m.genzoo")
        np.testing.assert_allclose(gz.load(tmp_path / "m.genzoo").score_samples(X[:100]), lp, rtol=1e-4, atol=1e-4)
    if "impute" in caps:
        Q = X[:20].copy()
        Q[:, 1] = np.nan
        assert np.isfinite(m.impute(Q, random_state=0)).all()
