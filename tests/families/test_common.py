"""Every registered family through the same properties (DESIGN.md, 'Testing shape')."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import genzoo as gz
from tests.conftest import small_params

#: the image families (data_kind "image") take integer images only; tests/families/test_image_families.py covers them
FAMILIES = [f for f in gz.families() if getattr(gz.make(f), "data_kind", None) != "image"]
_CACHE: dict = {}


def fitted(family: str, which: str = "ring"):
    """One small fit per (family, data), shared by the tests below."""
    key = (family, which)
    if key not in _CACHE:
        if which == "ring":
            X = gz.datasets.get("ring").sample(1000, random_state=0)
            _CACHE[key] = gz.make(family, **small_params(family)).fit(X)
        elif which == "labels":
            X, y = gz.datasets.get("gaussians8").sample(1000, random_state=0, return_labels=True)
            _CACHE[key] = gz.make(family, **small_params(family)).fit(X, y)
        elif which == "mm":  # the ring in millimetres: same model, densities shifted by the Jacobian
            X = gz.datasets.get("ring").sample(1000, random_state=0) * 1000.0 + 250.0
            _CACHE[key] = gz.make(family, **small_params(family)).fit(X)
    return _CACHE[key]


class LabelledFits(dict):
    """``fits[family]``: the small labelled gaussians8 fit cached by :func:`fitted`, for other modules."""

    def __missing__(self, family):
        return fitted(family, "labels")


def test_core_families_and_baselines_registered():
    assert {"vae", "gan", "flow", "diffusion", "autoregressive", "gmm", "kde"} <= set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_interface_attributes(family):
    m = gz.make(family)
    assert m.likelihood_kind in {"exact", "bound", "estimate", "none"}
    assert "sample" in m.capabilities
    assert m.capabilities <= {"sample", "log_prob", "impute", "conditional"}
    assert ("log_prob" in m.capabilities) == (m.likelihood_kind != "none")
    assert clone(m).get_params() == m.get_params()
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        gz.make(family, not_a_parameter=1)


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_shape_and_determinism(family):
    m = fitted(family)
    a = m.sample(64, random_state=1)
    b = m.sample(64, random_state=1)
    c = m.sample(64, random_state=2)
    assert a.shape == (64, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert m.history_["train_loss"], "history_ records training"


@pytest.mark.parametrize("family", FAMILIES)
def test_fit_is_deterministic(family):
    X = gz.datasets.get("ring").sample(400, random_state=5)
    p = small_params(family, max_steps=30)
    a = gz.make(family, **p).fit(X).sample(32, random_state=0)
    b = gz.make(family, **p).fit(X).sample(32, random_state=0)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_roundtrip(family, tmp_path):
    m = fitted(family)
    path = tmp_path / "model.genzoo"
    m.save(path)
    m2 = gz.load(path)
    assert type(m2) is type(m) and m2.get_params() == m.get_params()
    np.testing.assert_allclose(m2.sample(32, random_state=3), m.sample(32, random_state=3), rtol=1e-5, atol=1e-6)
    if "log_prob" in m.capabilities:
        X = gz.datasets.get("ring").sample(50, random_state=9)
        np.testing.assert_allclose(m2.score_samples(X), m.score_samples(X), rtol=1e-5, atol=1e-5)


def _grid_mass(model, lim=2.0, n=120):
    xs = np.linspace(-lim, lim, n)
    gx, gy = np.meshgrid(xs, xs)
    P = np.stack([gx.ravel(), gy.ravel()], 1)
    return float(np.exp(model.score_samples(P)).sum() * (xs[1] - xs[0]) ** 2)


@pytest.mark.parametrize("family", FAMILIES)
def test_density_normalised_and_never_beats_the_truth(family):
    m = fitted(family)
    if "log_prob" not in m.capabilities:
        with pytest.raises(gz.UnsupportedError):
            m.score_samples(np.zeros((3, 2)))
        return
    # exact densities are cheap: a fine grid; ODE bounds cost a solve per point: a coarser one
    mass = _grid_mass(m, n=120 if m.likelihood_kind == "exact" else 80)
    if m.likelihood_kind == "exact":
        assert abs(mass - 1) < 0.03, f"exp(log p) integrates to {mass:.4f}"
    elif m.likelihood_kind == "bound":
        assert mass < 1.03, f"a lower bound cannot integrate above 1 (got {mass:.4f})"
    ds = gz.datasets.get("ring")
    Xte = ds.sample(4000, random_state=123)
    lp = m.score_samples(Xte)
    se = lp.std() / np.sqrt(len(lp))
    assert lp.mean() <= -ds.entropy() + 3 * se + 0.01, "cross-entropy below the entropy: not a density"


@pytest.mark.parametrize("family", FAMILIES)
def test_units_do_not_change_the_model(family):
    """Data in millimetres (and shifted) gives the same samples and densities, in the new units."""
    m, mm = fitted(family), fitted(family, "mm")
    S, Smm = m.sample(64, random_state=4), mm.sample(64, random_state=4)
    np.testing.assert_allclose((Smm - 250.0) / 1000.0, S, rtol=1e-3, atol=1e-3)
    if "log_prob" in m.capabilities:
        X = gz.datasets.get("ring").sample(50, random_state=8)
        np.testing.assert_allclose(mm.score_samples(X * 1000.0 + 250.0),
                                   m.score_samples(X) - 2 * np.log(1000.0), rtol=1e-4, atol=2e-3)


@pytest.mark.parametrize("family", FAMILIES)
def test_conditional_and_labels(family):
    m0 = gz.make(family, **small_params(family))
    if "conditional" not in m0.capabilities:
        with pytest.raises(gz.UnsupportedError):
            m0.fit(np.zeros((20, 2)), np.zeros(20))
        return
    m = fitted(family, "labels")
    S = m.sample(20, y=3, random_state=0)
    assert S.shape == (20, 2)
    S2 = m.sample(4, y=[0, 1, 2, 3], random_state=0)
    assert S2.shape == (4, 2)
    with pytest.raises(ValueError, match="never seen"):
        m.sample(5, y=99)
    with pytest.raises(ValueError, match="fitted without labels"):
        fitted(family).sample(5, y=0)
    with pytest.raises(ValueError, match="labels but X has"):
        gz.make(family, **small_params(family)).fit(np.zeros((20, 2)), np.zeros(19))


@pytest.mark.parametrize("family", FAMILIES)
def test_impute_keeps_observed_values(family):
    m = fitted(family)
    if "impute" not in m.capabilities:
        with pytest.raises(gz.UnsupportedError):
            m.impute(np.array([[0.5, np.nan]]))
        return
    Q = np.array([[0.5, np.nan], [np.nan, -0.3], [np.nan, np.nan], [0.1, 0.2]] * 5)
    F = m.impute(Q, random_state=0)
    assert F.shape == Q.shape and np.isfinite(F).all()
    obs = ~np.isnan(Q)
    np.testing.assert_array_equal(F[obs], Q[obs])
    np.testing.assert_array_equal(m.impute(Q, random_state=0), F)


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_input_raises_clear_errors(family, tmp_path):
    m = gz.make(family, **small_params(family))
    with pytest.raises(NotFittedError):
        m.sample(3)
    bad = {
        "must be 2-D": np.zeros(10),
        "contains NaN": np.array([[0.0, 1.0], [np.nan, 1.0], [0.0, 2.0]]),
        "infinite": np.array([[0.0, 1.0], [np.inf, 1.0], [0.0, 2.0]]),
        "empty": np.zeros((0, 2)),
        "numeric": np.array([["a", "b"], ["c", "d"]]),
    }
    for msg, X in bad.items():
        with pytest.raises(ValueError, match=msg):
            m.fit(X)
    f = fitted(family)
    for n in (0, -3, 2.5):
        with pytest.raises(ValueError, match="n_samples"):
            f.sample(n)
    if "log_prob" in f.capabilities:
        with pytest.raises(ValueError, match="feature"):
            f.score_samples(np.zeros((3, 3)))


def test_unknown_family_and_bad_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="unknown family"):
        gz.make("no_such_family")
    junk = tmp_path / "junk.genzoo"
    junk.write_bytes(b"definitely not a model")
    with pytest.raises(ValueError, match="not a genzoo model"):
        gz.load(junk)
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("meta.json", '{"format": "something-else"}')
        zf.writestr("arrays.safetensors", b"")
    with pytest.raises(ValueError, match="not a genzoo model"):
        gz.load(foreign)
    with pytest.raises(FileNotFoundError):
        gz.load(tmp_path / "missing.genzoo")


def test_truncated_checkpoint_is_rejected(tmp_path):
    m = fitted("gmm")
    path = tmp_path / "m.genzoo"
    m.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):
        gz.load(path)
