"""Every array family fits integer images (n, H, W) / (n, C, H, W) through the shared base
(genzoo.base: flattened to integer columns, answers in the image shape). Properties only, tiny budgets."""

from __future__ import annotations

import numpy as np
import pytest

import genzoo as gz
from tests.conftest import small_params

FAMILIES = ["vae", "gan", "flow", "diffusion", "autoregressive", "flow_matching", "score", "consistency",
            "rectified_flow", "masked_diffusion"]
_CACHE: dict = {}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _tiny(family: str) -> dict:
    p = small_params(family)
    for key, cap in (("max_steps", 60), ("teacher_steps", 60), ("reflow_steps", 60),  # properties, not quality
                     ("pool_size", 256), ("reflow_pairs", 256)):
        if key in p:
            p[key] = min(p[key], cap)
    return p


def _digits(n: int = 200, channels: bool = False):
    X, y = gz.datasets.get("digits").split("train")
    X, y = X[:n], y[:n]
    return (X[:, None] if channels else X), y


def fitted(family: str):
    if family not in _CACHE:
        X, y = _digits()
        m = gz.make(family, **_tiny(family))
        _CACHE[family] = m.fit(X, y if "conditional" in m.capabilities else None)
    return _CACHE[family]


@pytest.mark.parametrize("family", FAMILIES)
def test_samples_are_integer_images_in_range(family):
    m = fitted(family)
    assert m.image_shape_ == (8, 8) and m.n_features_in_ == 64
    S = m.sample(40, random_state=1)
    assert S.shape == (40, 8, 8) and np.issubdtype(S.dtype, np.integer)
    assert S.min() >= 0 and S.max() <= 16
    np.testing.assert_array_equal(S, m.sample(40, random_state=1))
    if "conditional" in m.capabilities:
        Sc = m.sample(20, y=np.repeat(np.arange(10), 2), guidance=1.0, random_state=2)
        assert Sc.shape == (20, 8, 8) and Sc.min() >= 0 and Sc.max() <= 16


@pytest.mark.parametrize("family", FAMILIES)
def test_impute_keeps_observed_pixels(family):
    m = fitted(family)
    X, _ = gz.datasets.get("digits").split("test")
    Q = X[:4].astype(float)
    Q[:2, 4:] = np.nan  # lower half missing
    Q[2, :, ::2] = np.nan  # every other column
    F = m.impute(Q, random_state=0)
    assert F.shape == (4, 8, 8) and not np.isnan(F).any()
    obs = ~np.isnan(Q)
    np.testing.assert_array_equal(F[obs], Q[obs])
    assert np.all(F == np.round(F)) and F.min() >= 0 and F.max() <= 16
    np.testing.assert_array_equal(F[3], X[3])  # nothing missing: unchanged


@pytest.mark.parametrize("family", ["flow", "autoregressive"])  # masked_diffusion: its ELBO at 64-D is slow
def test_image_score_is_a_log_probability_of_the_discrete_image(family):
    m = fitted(family)
    X, _ = _digits(12)
    lp = m.score_samples(X)
    assert lp.shape == (12,) and np.isfinite(lp).all()
    assert (lp <= 1e-6).all()  # log P of a discrete image (a bound): at most 0
    np.testing.assert_allclose(lp, m.score_samples(X.astype(float)))
    lit = X[:2].copy()
    lit[:, 0, 0] = 16  # a corner pixel never lit in training: unlikely, still possible (one level range)
    lit_lp = m.score_samples(lit)
    assert np.isfinite(lit_lp).all() and (lit_lp < lp[:2]).all()
    over = X[:2].copy()
    over[:, 3, 3] = 17  # above every level seen in training: probability 0
    assert np.isneginf(m.score_samples(over)).all()


def test_image_spec_round_trips_through_save_and_load(tmp_path):
    m = fitted("vae")
    m.save(tmp_path / "m.genzoo")
    m2 = gz.load(tmp_path / "m.genzoo")
    assert m2.image_shape_ == (8, 8)
    S, S2 = m.sample(15, y=3, random_state=4), m2.sample(15, y=3, random_state=4)
    assert S2.shape == (15, 8, 8)
    np.testing.assert_array_equal(S, S2)


def test_channel_images_keep_their_shape():
    X, _ = _digits(120, channels=True)
    m = gz.make("masked_diffusion", **_tiny("masked_diffusion")).fit(X)
    assert m.image_shape_ == (1, 8, 8)
    assert m.sample(5, random_state=0).shape == (5, 1, 8, 8)
    Q = X[:3].astype(float)
    Q[:, :, 6:] = np.nan
    F = m.impute(Q, random_state=0)
    assert F.shape == (3, 1, 8, 8)
    np.testing.assert_array_equal(F[:, :, :6], X[:3, :, :6])


def test_wrong_image_shape_and_refit_on_rows():
    m = fitted("vae")
    with pytest.raises(ValueError, match="fitted on images of shape"):
        m.impute(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="fitted on images of shape"):
        m.score_samples(np.zeros((2, 64)))
    with pytest.raises(ValueError, match="no classifier-free guidance"):
        m.sample(2, y=1, guidance=2.0)
    X = gz.datasets.get("ring").sample(200, random_state=0)
    r = gz.make("vae", **_tiny("vae")).fit(_digits(50)[0]).fit(X)  # refitted on rows: answers in rows
    assert r.image_shape_ is None and r.sample(3, random_state=0).shape == (3, 2)
