"""Properties every built-in distribution must have: a normalised exact density that matches its
sampler, its entropy, its labels and its documented geometry."""

from __future__ import annotations

import re

import numpy as np
import pytest

from genzoo import datasets
from genzoo.datasets import Distribution
from genzoo.datasets.base import logsumexp

EXPECTED = ["ring", "gaussians8", "grid25", "moons", "circles", "swissroll", "spirals", "pinwheel", "checkerboard"]
NAMES = datasets.names()
LABELLED = [n for n in NAMES if datasets.get(n).n_classes is not None]
UNLABELLED = [n for n in NAMES if datasets.get(n).n_classes is None]
CELLS = 360  # grid cells per axis over bounds(0.1); aligns cell edges with the checkerboard squares


def _grid(ds: Distribution) -> tuple[np.ndarray, float]:
    (x0, x1), (y0, y1) = ds.bounds(0.1)
    hx, hy = (x1 - x0) / CELLS, (y1 - y0) / CELLS
    xs = x0 + hx * (np.arange(CELLS) + 0.5)
    ys = y0 + hy * (np.arange(CELLS) + 0.5)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    return np.column_stack([gx.ravel(), gy.ravel()]), hx * hy


_GRID_CACHE: dict[str, tuple[np.ndarray, float, np.ndarray]] = {}


def grid_log_prob(name: str) -> tuple[np.ndarray, float, np.ndarray]:
    """(points, cell area, log_prob) on the fine grid, computed once per data set."""
    if name not in _GRID_CACHE:
        ds = datasets.get(name)
        points, area = _grid(ds)
        _GRID_CACHE[name] = (points, area, ds.log_prob(points))
    return _GRID_CACHE[name]


def test_registry_contract() -> None:
    assert sorted(NAMES) == sorted(EXPECTED)
    for name in NAMES:
        ds = datasets.get(name)
        assert isinstance(ds, Distribution)
        assert ds.name == name and ds.dim == 2
        assert ds.description and "\n" not in ds.description
        assert type(ds).__name__ in repr(ds)
        assert datasets.get(name) is ds  # shared instance: entropy computed once


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'foo'; choose from: .*ring.*checkerboard"):
        datasets.get("foo")


@pytest.mark.parametrize("name", NAMES)
def test_density_integrates_to_one(name: str) -> None:
    _, area, lp = grid_log_prob(name)
    assert np.all(np.isfinite(lp) | (lp == -np.inf))
    assert abs(np.exp(lp).sum() * area - 1.0) < 0.005


@pytest.mark.parametrize("name", LABELLED)
def test_each_class_density_integrates_to_one(name: str) -> None:
    ds = datasets.get(name)
    points, area, lp = grid_log_prob(name)
    joint = ds.class_log_prob(points)
    assert joint.shape == (len(points), ds.n_classes)
    np.testing.assert_allclose(logsumexp(joint, axis=1), lp, atol=1e-9)
    conditional = joint - ds.class_log_prior  # log p(x | y)
    np.testing.assert_allclose(np.exp(conditional).sum(axis=0) * area, 1.0, atol=0.005)


@pytest.mark.parametrize("name", NAMES)
def test_entropy_matches_monte_carlo(name: str) -> None:
    ds = datasets.get(name)
    lp = ds.log_prob(ds.sample(100_000, random_state=1))
    assert np.isfinite(lp).all()  # samples are always inside the support
    h = ds.entropy()
    assert abs(h + lp.mean()) < 0.02
    assert 0.0 <= ds.entropy_se < 1e-3
    assert ds.entropy() == h  # cached, deterministic


@pytest.mark.parametrize("name", NAMES)
def test_samples_follow_the_density(name: str) -> None:
    """Chi-square of sample counts in coarse cells against the density's cell masses."""
    ds = datasets.get(name)
    points, area, lp = grid_log_prob(name)
    coarse = 12  # fine cells per coarse cell, per axis
    mass = (np.exp(lp) * area).reshape(CELLS // coarse, coarse, CELLS // coarse, coarse).sum(axis=(1, 3)).ravel()
    n = 100_000
    X = ds.sample(n, random_state=2)
    (x0, x1), (y0, y1) = ds.bounds(0.1)
    ix = np.floor((X[:, 0] - x0) / (x1 - x0) * (CELLS // coarse)).astype(int)
    iy = np.floor((X[:, 1] - y0) / (y1 - y0) * (CELLS // coarse)).astype(int)
    inside = (ix >= 0) & (ix < CELLS // coarse) & (iy >= 0) & (iy < CELLS // coarse)
    counts = np.bincount(ix[inside] * (CELLS // coarse) + iy[inside], minlength=mass.size)
    expected = n * mass
    big = expected >= 20  # pool the sparse cells (and the outside of the box) into one bin
    obs = np.append(counts[big], n - counts[big].sum())
    exp = np.append(expected[big], n - expected[big].sum())
    chi2 = float(np.sum((obs - exp) ** 2 / exp))
    dof = len(obs) - 1
    assert dof >= 20
    assert chi2 < dof + 6 * np.sqrt(2 * dof), (chi2, dof)


@pytest.mark.parametrize("name", NAMES)
def test_sampling_shapes_and_determinism(name: str) -> None:
    ds = datasets.get(name)
    X = ds.sample(500, random_state=0)
    assert X.shape == (500, 2) and X.dtype == np.float64
    np.testing.assert_array_equal(X, ds.sample(500, random_state=0))
    np.testing.assert_array_equal(X, ds.sample(500, random_state=np.random.default_rng(0)))
    assert not np.array_equal(X, ds.sample(500, random_state=1))
    if ds.n_classes is not None:
        X2, y = ds.sample(500, random_state=0, return_labels=True)
        np.testing.assert_array_equal(X, X2)  # labels do not change the draw
        assert y.shape == (500,) and y.dtype == np.int64
        assert y.min() >= 0 and y.max() < ds.n_classes


@pytest.mark.parametrize("name", LABELLED)
def test_labels_are_balanced(name: str) -> None:
    ds = datasets.get(name)
    _, y = ds.sample(40_000, random_state=3, return_labels=True)
    freq = np.bincount(y, minlength=ds.n_classes) / len(y)
    prior = np.exp(ds.class_log_prior)
    assert np.all(np.abs(freq - prior) < 5 * np.sqrt(prior * (1 - prior) / len(y)))


# Bayes accuracy of the true posterior; these classes barely overlap except near the spiral centre.
MIN_ACCURACY = {"gaussians8": 0.999, "grid25": 0.999, "circles": 0.999, "checkerboard": 1.0}


@pytest.mark.parametrize("name", LABELLED)
def test_class_posterior(name: str) -> None:
    ds = datasets.get(name)
    X, y = ds.sample(5000, random_state=4, return_labels=True)
    post = ds.class_log_posterior(X)
    assert post.shape == (5000, ds.n_classes)
    np.testing.assert_allclose(logsumexp(post, axis=1), 0.0, atol=1e-9)
    np.testing.assert_allclose(logsumexp(ds.class_log_prob(X), axis=1), ds.log_prob(X), atol=1e-9)
    assert np.mean(post.argmax(axis=1) == y) >= MIN_ACCURACY.get(name, 0.98)
    assert np.mean(np.exp(post[np.arange(len(y)), y])) >= MIN_ACCURACY.get(name, 0.98) - 0.01


@pytest.mark.parametrize("name", UNLABELLED)
def test_unlabelled_refuse_labels(name: str) -> None:
    ds = datasets.get(name)
    X = ds.sample(10, random_state=0)
    with pytest.raises(ValueError, match="no labels"):
        ds.sample(10, return_labels=True)
    with pytest.raises(ValueError, match="no labels"):
        ds.class_log_posterior(X)
    with pytest.raises(ValueError, match="no labels"):
        ds.class_log_prob(X)


def test_modes_of_the_mixtures() -> None:
    g8 = datasets.get("gaussians8").modes()
    angles = np.sort(np.mod(np.arctan2(g8["centers"][:, 1], g8["centers"][:, 0]), 2 * np.pi))
    np.testing.assert_allclose(np.linalg.norm(g8["centers"], axis=1), 1.0)
    np.testing.assert_allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-12)
    assert g8["std"] == 0.01
    np.testing.assert_allclose(g8["weights"], 1 / 8)

    g25 = datasets.get("grid25").modes()
    assert g25["centers"].shape == (25, 2) and g25["std"] == 0.05
    for axis in range(2):
        np.testing.assert_array_equal(np.unique(g25["centers"][:, axis]), [-4.0, -2.0, 0.0, 2.0, 4.0])
    np.testing.assert_allclose(g25["weights"], 1 / 25)

    for name in NAMES:
        if name not in ("gaussians8", "grid25"):
            assert datasets.get(name).modes() is None


@pytest.mark.parametrize("name", ["gaussians8", "grid25"])
def test_mixture_samples_sit_on_their_modes(name: str) -> None:
    ds = datasets.get(name)
    modes = ds.modes()
    X, y = ds.sample(20_000, random_state=5, return_labels=True)
    offset = X - modes["centers"][y]
    np.testing.assert_allclose(offset.std(axis=0), modes["std"], rtol=0.03)
    np.testing.assert_allclose(offset.mean(axis=0), 0.0, atol=4 * modes["std"] / np.sqrt(len(y)))
    # entropy: closed form log K + log(2 pi e std^2), exact for modes this far apart
    k = len(modes["weights"])
    assert ds.entropy() == pytest.approx(np.log(k) + np.log(2 * np.pi * np.e * modes["std"] ** 2), abs=1e-12)


def test_ring_radius() -> None:
    ds = datasets.get("ring")
    r = np.linalg.norm(ds.sample(50_000, random_state=6), axis=1)
    assert r.mean() == pytest.approx(1.0, abs=0.003) and r.std() == pytest.approx(0.1, rel=0.02)
    x = np.array([[0.9, 0.0], [0.0, -1.2]])  # p(x) = N(r; 1, 0.1^2) / (2 pi r)
    r = np.linalg.norm(x, axis=1)
    expected = -0.5 * ((r - 1) / 0.1) ** 2 - np.log(0.1 * np.sqrt(2 * np.pi)) - np.log(2 * np.pi * r)
    np.testing.assert_allclose(ds.log_prob(x), expected, atol=1e-12)


def test_circles_density_matches_angular_quadrature() -> None:
    ds = datasets.get("circles")
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.3, 0.4], [0.7, -0.2], [-1.1, 0.1], [2.0, 2.0]])
    theta = 2 * np.pi * np.arange(4096) / 4096  # periodic trapezoid: spectrally accurate
    joint = []
    for r in (1.0, 0.5):
        c = r * np.column_stack([np.cos(theta), np.sin(theta)])
        d2 = ((X[:, None, :] - c[None]) ** 2).sum(-1)
        joint.append(logsumexp(-d2 / (2 * 0.05**2), axis=1) - np.log(4096) - np.log(2 * np.pi * 0.05**2) - np.log(2))
    np.testing.assert_allclose(ds.class_log_prob(X), np.column_stack(joint), atol=1e-9)


def _curve_reference(name: str, X: np.ndarray) -> np.ndarray:
    """log p(x) by brute force from the documented geometry: trapezoid along t, Richardson-extrapolated."""
    if name == "moons":
        noise = 0.1
        arms = [
            (lambda t: np.column_stack([np.cos(t), np.sin(t)]), 0.0, np.pi, lambda t: np.full_like(t, 1 / np.pi)),
            (
                lambda t: np.column_stack([1 + np.cos(t), 0.5 + np.sin(t)]),
                np.pi,
                2 * np.pi,
                lambda t: np.full_like(t, 1 / np.pi),
            ),
        ]
    elif name == "spirals":
        noise, tm = 0.1, 3 * np.pi
        arms = [
            (
                lambda t, k=k: (t / 3)[:, None] * np.column_stack([np.cos(t + k * np.pi), np.sin(t + k * np.pi)]),
                0.0,
                tm,
                lambda t: 2 * t / tm**2,
            )
            for k in range(2)
        ]
    else:
        noise = 0.2
        arms = [
            (
                lambda t: (t / 5)[:, None] * np.column_stack([np.cos(t), np.sin(t)]),
                1.5 * np.pi,
                4.5 * np.pi,
                lambda t: np.full_like(t, 1 / (3 * np.pi)),
            )
        ]

    def trapezoid(n: int) -> np.ndarray:
        out = []
        for point, a, b, q in arms:
            t = np.linspace(a, b, n + 1)
            w = np.full(n + 1, (b - a) / n)
            w[[0, -1]] /= 2
            with np.errstate(divide="ignore"):
                log_w = np.log(w * q(t))
            c = point(t)
            d2 = (X**2).sum(1)[:, None] - 2 * X @ c.T + (c**2).sum(1)[None, :]
            out.append(logsumexp(log_w - d2 / (2 * noise**2), axis=1))
        return logsumexp(np.column_stack(out), axis=1) - np.log(len(arms)) - np.log(2 * np.pi * noise**2)

    coarse, fine = trapezoid(40_000), trapezoid(80_000)
    return fine + (fine - coarse) / 3  # the trapezoid's h^2 error term cancels


@pytest.mark.parametrize("name", ["moons", "spirals", "swissroll"])
def test_curve_quadrature_is_accurate(name: str) -> None:
    """The density claim: quadrature within 1e-3 nats (in practice ~1e-5) of the true integral."""
    ds = datasets.get(name)
    rng = np.random.default_rng(7)
    (x0, x1), (y0, y1) = ds.bounds(0.2)
    X = np.vstack(
        [
            np.column_stack([rng.uniform(x0, x1, 30), rng.uniform(y0, y1, 30)]),  # anywhere, incl. far from the data
            ds.sample(20, random_state=8),  # where the mass is
        ]
    )
    np.testing.assert_allclose(ds.log_prob(X), _curve_reference(name, X), atol=1e-4, rtol=0)


def test_pinwheel_entropy_against_closed_form_parts() -> None:
    """H = log 5 + H(x | arm) - H(arm | x), with H(x | arm) exact (volume-preserving twist) and a tiny overlap."""
    ds = datasets.get("pinwheel")
    upper = np.log(5) + np.log(2 * np.pi * np.e * 0.3 * 0.1) + 2 * np.log(2.0)
    assert 0.0 <= upper - ds.entropy() < 0.01


def test_checkerboard_support_and_labels() -> None:
    ds = datasets.get("checkerboard")
    X = np.array([[-1.5, -1.5], [-0.5, -1.5], [-0.5, 1.5], [1.5, 1.5], [2.5, 0.0]])
    np.testing.assert_allclose(ds.log_prob(X), [-np.log(8), -np.inf, -np.log(8), -np.log(8), -np.inf])
    post = ds.class_log_posterior(X)
    np.testing.assert_array_equal(np.exp(post[0]), np.eye(8)[0])  # bottom-left square is label 0
    np.testing.assert_array_equal(np.exp(post[2]), np.eye(8)[6])  # top row: dark squares 2nd and 4th
    np.testing.assert_array_equal(np.exp(post[3]), np.eye(8)[7])
    assert np.isnan(post[[1, 4]]).all()  # outside the support the posterior is undefined
    Xs, y = ds.sample(2000, random_state=9, return_labels=True)
    np.testing.assert_array_equal(ds.class_log_posterior(Xs).argmax(axis=1), y)
    cells = np.floor(Xs + 2)
    assert ((cells.sum(axis=1) % 2) == 0).all()  # only dark squares


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10", True, None])
def test_sample_rejects_bad_n(bad: object) -> None:
    with pytest.raises(ValueError, match="n must be a positive integer"):
        datasets.get("ring").sample(bad)  # type: ignore[arg-type]


def test_log_prob_validates_input() -> None:
    ds = datasets.get("moons")
    for bad in (np.zeros(4), np.zeros((4, 3)), np.zeros((2, 2, 2))):
        with pytest.raises(ValueError, match=re.escape(f"shape (n, 2) for dataset 'moons', got shape {bad.shape}")):
            ds.log_prob(bad)
    with pytest.raises(ValueError, match="numeric"):
        ds.log_prob([["a", "b"]])
    with pytest.raises(ValueError, match="1 NaN value"):
        ds.log_prob([[0.0, 0.0], [np.nan, 1.0]])
    lp = ds.log_prob([[0.0, 1.0], [np.inf, 0.0]])  # lists and inf are fine: density 0 at infinity
    assert np.isfinite(lp[0]) and lp[1] == -np.inf
    assert ds.log_prob(np.zeros((0, 2))).shape == (0,)
    np.testing.assert_allclose(ds.log_prob(np.array([[1, 0]])), ds.log_prob(np.array([[1.0, 0.0]], np.float32)))


def test_bounds() -> None:
    for name in NAMES:
        ds = datasets.get(name)
        (x0, x1), (y0, y1) = ds.bounds(0.0)
        (a0, a1), (b0, b1) = ds.bounds()
        assert a0 == pytest.approx(x0 - 0.1 * (x1 - x0)) and b1 == pytest.approx(y1 + 0.1 * (y1 - y0))
        assert max(abs(v) for v in (x0, x1, y0, y1)) < 6  # the field's usual [-5, 5]-ish scale
        X = ds.sample(20_000, random_state=10)
        outside = (X[:, 0] < x0) | (X[:, 0] > x1) | (X[:, 1] < y0) | (X[:, 1] > y1)
        assert not outside.any()
    with pytest.raises(ValueError, match="pad"):
        datasets.get("ring").bounds(-1)
