"""The autoregressive family: masked network keeps the chain-rule order, every conditional is a
normalised 1-D density, samples follow the density, imputation and conditioning are exact
where the model factorises that way. Small budgets throughout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import genzoo as gz
from genzoo.families.autoregressive import COMPONENTS, MixtureHead, _log_normal_box, mixture_conditionals
from genzoo.nn.made import MADE

CENTERS8 = np.array([[math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)] for i in range(8)])
SMALL = dict(max_steps=500, verbose=0, device="cpu", random_state=0)


def _grid_mass(model, lo: float, hi: float, n: int = 200) -> float:
    g = np.linspace(lo, hi, n)
    P = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    return float(np.exp(model.score_samples(P)).sum() * (g[1] - g[0]) ** 2)


@pytest.fixture(scope="module")
def ring_model():
    X = gz.datasets.get("ring").sample(2000, random_state=0)
    return gz.make("autoregressive", **SMALL).fit(X), X


@pytest.fixture(scope="module")
def g8_labelled():
    X, y = gz.datasets.get("gaussians8").sample(2000, random_state=0, return_labels=True)
    return gz.make("autoregressive", **SMALL).fit(X, y), X, y


# ----------------------------------------------------------------------------- 1-D conditionals
@pytest.mark.parametrize("kind", COMPONENTS)
def test_mixture_head_is_normalised_and_finite(kind):
    """Each 1-D mixture integrates to 1, also with extreme widths and scales, and is finite far out."""
    torch.manual_seed(0)
    head = MixtureHead(5, kind, min_scale=1e-3)
    raw = 2.0 * torch.randn(3, head.n_params)
    raw[1, 2 * 5:] = -30.0  # smallest scales (and widths): sharp components at the floor
    raw[2, 2 * 5:3 * 5] = -30.0  # sharp edges, ordinary widths
    x = torch.linspace(-12.0, 12.0, 400_001, dtype=torch.float64)
    for r in raw:
        lp = head.log_prob(r.double().expand(len(x), -1), x)
        assert torch.isfinite(lp).all()
        mass = float(lp.exp().sum() * (x[1] - x[0]))
        assert abs(mass - 1) < 2e-3, (kind, mass)
    far = head.log_prob(raw, torch.full((3,), 1e4))
    assert torch.isfinite(far).all()


def test_gaussian_box_density_matches_the_normal_cdf_in_both_tails():
    """log((Phi(z + r/2) - Phi(z - r/2)) / r) against SciPy, from boxes narrower than the midpoint
    switch to wide ones, 30 standard deviations out on either side, in float64 and float32."""
    from scipy.stats import norm

    z = np.array([-30.0, -6.0, -1.0, 0.0, 0.4, 2.5, 7.0, 30.0])
    for r in [1e-5, 5e-3, 0.02, 1.0, 40.0]:
        mass = np.where(z > 0, norm.sf(z - r / 2) - norm.sf(z + r / 2), norm.cdf(z + r / 2) - norm.cdf(z - r / 2))
        keep = mass > 0  # SciPy's own underflow at 30 sd with the narrowest boxes
        want = np.log(mass[keep]) - np.log(r)
        for dtype, tol in [(torch.float64, 1e-6), (torch.float32, 2e-3)]:
            got = _log_normal_box(torch.tensor(z, dtype=dtype), torch.full((len(z),), r, dtype=dtype)).double().numpy()
            assert np.isfinite(got).all()
            np.testing.assert_allclose(got[keep], want, rtol=1e-5, atol=tol, err_msg=f"r={r}, {dtype}")


@pytest.mark.parametrize("kind", COMPONENTS)
def test_mixture_head_samples_follow_its_density(kind):
    """Kolmogorov-Smirnov distance between draws and the CDF integrated from exp(log_prob)."""
    torch.manual_seed(1)
    head = MixtureHead(4, kind, min_scale=1e-3)
    raw = torch.randn(head.n_params)
    n = 40_000
    draws = np.sort(head.sample(raw.expand(n, -1)).numpy())
    x = torch.linspace(-15.0, 15.0, 300_001, dtype=torch.float64)
    pdf = head.log_prob(raw.double().expand(len(x), -1), x).exp().numpy()
    cdf = np.cumsum(pdf) * float(x[1] - x[0])
    ks = np.abs(np.interp(draws, x.numpy(), cdf) - (np.arange(1, n + 1) - 0.5) / n).max()
    assert ks < 1.63 / math.sqrt(n) + 3e-3  # 99% KS quantile (plus grid error)


# ----------------------------------------------------------------------------- the chain-rule order
@pytest.mark.parametrize("dim", [3, 5])
def test_made_outputs_depend_only_on_earlier_coordinates(dim):
    """d out_i / d x_j == 0 for every j >= i (by autograd), and != 0 for some j < i."""
    torch.manual_seed(0)
    net = MADE(dim, 4, hidden=32, layers=3, context_dim=3)
    for p in net.parameters():  # the output layer starts at zero: give every weight a value
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(dim, requires_grad=True)
    c = torch.randn(1, 3)
    J = torch.autograd.functional.jacobian(lambda v: net(v[None], c)[0], x)  # (D, P, D)
    dep = J.abs().sum(1)  # (D_out, D_in)
    assert torch.all(dep[torch.triu(torch.ones(dim, dim, dtype=torch.bool))] == 0)
    assert torch.all(dep[torch.tril(torch.ones(dim, dim, dtype=torch.bool), -1)] > 0)


def test_fitted_model_conditionals_ignore_later_coordinates():
    """Perturbing x_j leaves log p(x_i | x_<i) unchanged for i <= j (dim 4, with labels)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 4)) @ rng.standard_normal((4, 4))
    y = (X[:, 0] > 0).astype(int)
    m = gz.make("autoregressive", **{**SMALL, "max_steps": 60}).fit(X, y)
    z = m._tensor((X[:50] - m.loc_) / m.scale_)
    yt = m._labels(y[:50])
    with torch.no_grad():
        base = m._coord_log_prob(z, yt)  # (B, D)
        for j in range(4):
            zp = z.clone()
            zp[:, j] += 0.7
            diff = (m._coord_log_prob(zp, yt) - base).abs().max(0).values  # (D,)
            assert torch.all(diff[:j] == 0)  # earlier conditionals do not see x_j
            assert diff[j] > 0  # its own density does (x_j is the variable)
            if j < 3:
                assert diff[j + 1:].max() > 0  # and later ones are allowed to


# ----------------------------------------------------------------------------- density and samples
def test_density_integrates_to_one(ring_model):
    model, X = ring_model
    span = np.abs(X).max() * 1.6
    assert abs(_grid_mass(model, -span, span) - 1) < 0.02


def test_density_integrates_to_one_in_user_units():
    """The standardisation Jacobian: data in millimetres around an offset still integrate to 1."""
    X = gz.datasets.get("ring").sample(2000, random_state=1) * [30.0, 0.5] + [1000.0, -3.0]
    m = gz.make("autoregressive", **{**SMALL, "max_steps": 200}).fit(X)
    gx, gy = np.linspace(1000 - 60, 1000 + 60, 240), np.linspace(-4, -2, 240)
    P = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
    mass = np.exp(m.score_samples(P)).sum() * (gx[1] - gx[0]) * (gy[1] - gy[0])
    assert abs(mass - 1) < 0.02


def test_nll_not_below_true_entropy_and_learns(ring_model):
    model, _ = ring_model
    ds = gz.datasets.get("ring")
    lp = model.score_samples(ds.sample(5000, random_state=7))
    H = float(ds.entropy())
    nll, se = -lp.mean(), lp.std() / np.sqrt(len(lp))
    assert nll > H - 3 * se - 0.01  # cross-entropy >= entropy: beating the truth means an unnormalised density
    assert nll < H + 0.15  # and a short training already gets close


def test_samples_follow_the_model_density(ring_model):
    """Cell masses of exp(score_samples) on a grid match the share of the model's own draws."""
    model, X = ring_model
    S = model.sample(20_000, random_state=3)
    assert model.last_nfe_ == 2  # one network pass per coordinate
    edges = np.linspace(-1.6, 1.6, 9)
    hist = np.histogram2d(S[:, 0], S[:, 1], [edges, edges])[0] / len(S)
    g = np.linspace(-1.6, 1.6, 8 * 40 + 1)
    c = 0.5 * (g[1:] + g[:-1])
    P = np.stack(np.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)
    dens = np.exp(model.score_samples(P)).reshape(320, 320) * (g[1] - g[0]) ** 2
    mass = dens.reshape(8, 40, 8, 40).sum((1, 3))
    se = np.sqrt(mass * (1 - mass) / len(S))
    assert np.all(np.abs(hist - mass) < 5 * se + 2e-3)


def test_dim5_fit_sample_score():
    rng = np.random.default_rng(0)
    X = np.tanh(rng.standard_normal((1500, 5)) @ rng.standard_normal((5, 5)))
    m = gz.make("autoregressive", **{**SMALL, "max_steps": 200}).fit(X)
    S = m.sample(300, random_state=0)
    assert S.shape == (300, 5) and m.last_nfe_ == 5
    assert np.isfinite(m.score_samples(S)).all()
    assert m.score(X) > -5 * 1.42  # better than independent unit Gaussians per coordinate on this data


# ----------------------------------------------------------------------------- labels
def test_conditional_samples_land_on_the_asked_class(g8_labelled):
    model, X, y = g8_labelled
    for k in (0, 3, 6):
        centre = X[y == k].mean(0)
        S = model.sample(400, y=k, random_state=1)
        nearest = np.argmin(((S[:, None] - CENTERS8[None]) ** 2).sum(-1), 1)
        assert np.mean(nearest == np.argmin(((CENTERS8 - centre) ** 2).sum(1))) > 0.95


def test_labelled_score_is_the_marginal_over_the_class_prior(g8_labelled):
    model, X, y = g8_labelled
    Q = X[:300]
    per_class = np.stack([model.score_samples(Q, y=np.full(len(Q), k)) for k in model.classes_], 1)
    marginal = np.logaddexp.reduce(per_class + np.log(model.class_prior_), axis=1)
    np.testing.assert_allclose(model.score_samples(Q), marginal, atol=1e-4)
    assert np.mean(per_class.argmax(1) == y[:300]) > 0.98  # p(x | y) is highest for the true class
    with pytest.raises(ValueError, match="never seen"):
        model.score_samples(Q, y=np.full(len(Q), 99))


# ----------------------------------------------------------------------------- imputation
def test_exact_impute_keeps_observed_and_hits_true_modes(g8_labelled):
    """x observed at cos(pi/4), y missing (a suffix: the exact path): y = +-sin(pi/4), both signs."""
    model, _, _ = g8_labelled
    Q = np.full((400, 2), np.nan)
    Q[:, 0] = CENTERS8[1, 0]
    F = model.impute(Q, random_state=2)
    assert np.array_equal(F[:, 0], Q[:, 0])
    err = np.minimum(np.abs(F[:, 1] - 0.7071), np.abs(F[:, 1] + 0.7071))
    assert np.mean(err < 0.05) > 0.8
    assert 0.35 < np.mean(F[:, 1] > 0) < 0.65
    assert model.last_nfe_ == 1  # only the missing coordinate was drawn


def test_grid_impute_for_other_patterns(g8_labelled):
    """y observed, x missing (not a suffix): the density grid path, still at the true modes."""
    model, _, _ = g8_labelled
    Q = np.full((300, 2), np.nan)
    Q[:, 1] = CENTERS8[1, 1]
    F = model.impute(Q, random_state=2)
    assert np.array_equal(F[:, 1], Q[:, 1])
    err = np.minimum(np.abs(F[:, 0] - 0.7071), np.abs(F[:, 0] + 0.7071))
    assert np.mean(err < 0.05) > 0.8
    assert 0.3 < np.mean(F[:, 0] > 0) < 0.7


def test_exact_impute_in_dim3_matches_the_true_conditional():
    """Gaussian data: x_2 | x_0, x_1 is Gaussian with known mean and variance."""
    rng = np.random.default_rng(0)
    L = np.array([[1.0, 0, 0], [0.8, 0.6, 0], [0.5, -0.5, 0.3]])
    X = rng.standard_normal((3000, 3)) @ L.T
    m = gz.make("autoregressive", **SMALL).fit(X)
    obs = np.array([0.5, -0.4])
    Q = np.tile(np.r_[obs, np.nan], (2000, 1))
    Q[:5] = [np.nan, np.nan, np.nan]  # all missing: unconditional draws
    Q[5:10] = [0.1, np.nan, 0.3]  # not a suffix: grid-Gibbs
    F = m.impute(Q, random_state=0)
    assert np.array_equal(F[10:, :2], Q[10:, :2]) and np.isfinite(F).all()
    C = L @ L.T  # true conditional of x_2 given (x_0, x_1)
    w = np.linalg.solve(C[:2, :2], C[:2, 2])
    mu, sd = obs @ w, math.sqrt(C[2, 2] - C[:2, 2] @ w)
    assert abs(F[10:, 2].mean() - mu) < 0.05 and abs(F[10:, 2].std() / sd - 1) < 0.15


def test_rejects_bad_settings():
    X = gz.datasets.get("ring").sample(200, random_state=0)
    with pytest.raises(ValueError, match="component"):
        gz.make("autoregressive", component="box", **SMALL).fit(X)
    with pytest.raises(ValueError, match="min_scale"):
        gz.make("autoregressive", min_scale=0.0, **SMALL).fit(X)
    m = gz.make("autoregressive", **{**SMALL, "max_steps": 5}).fit(X)
    with pytest.raises(ValueError, match="without labels"):
        m.score_samples(X, y=np.zeros(len(X)))


# ----------------------------------------------------------------------------- discrete data, images
def _tiny_images(n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """2x2 images with levels 0..2: the label sets the top-left level, the rest copy it noisily."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    X = np.clip(y[:, None, None] + rng.integers(-1, 2, (n, 2, 2)) * (rng.random((n, 2, 2)) < 0.3), 0, 2)
    X[:, 0, 0] = y
    return X.astype(np.int64), y


def test_images_get_an_exact_probability_mass_from_the_pixelcnn(tmp_path):
    X, y = _tiny_images()
    m = gz.make("autoregressive", image_steps=150, random_state=0).fit(X, y)
    assert m.likelihood_kind == "exact" and [type(n).__name__ for n in m.module_.nets] == ["PixelCNN"] * 2
    every = np.array(np.meshgrid(*[range(3)] * 4, indexing="ij")).reshape(4, -1).T.reshape(-1, 2, 2)
    for lab in (None, 0, 2):  # the mixture's marginal and each conditional sum to one over all 81 images
        assert abs(np.exp(m.score_samples(every, y=lab if lab is None else np.full(81, lab))).sum() - 1) < 1e-4
    S = m.sample(300, y=2, random_state=1)
    assert S.shape == (300, 2, 2) and S.min() >= 0 and S.max() <= 2
    assert np.mean(S[:, 0, 0] == 2) > 0.8  # it learned the label's pixel
    Q = X[:20].astype(float)
    Q[:, 0, 0] = np.nan  # the first pixel missing: not a suffix, so Gibbs on the exact joint
    F = m.impute(Q, random_state=0)
    np.testing.assert_array_equal(F[:, 0, 1:], X[:20, 0, 1:])
    assert set(np.unique(F)) <= {0.0, 1.0, 2.0}
    m.save(tmp_path / "ar.genzoo")
    back = gz.load(tmp_path / "ar.genzoo")
    np.testing.assert_allclose(back.score_samples(every), m.score_samples(every), rtol=1e-6)


def test_images_train_for_image_steps_with_a_deeper_pixelcnn():
    X, y = _tiny_images(200)
    m = gz.make("autoregressive", image_steps=7, max_steps=500, random_state=0).fit(X, y)
    assert m.phases_[0]["max_steps"] == 7 and m.phases_[0]["n_steps"] == 7  # not max_steps
    assert [len(n.v_blocks) for n in m.module_.nets] == [6, 6]  # None: a mixture of two 6-block PixelCNNs
    phase = m._default_phase()
    assert phase.batch_size == 256 and phase.validation_fraction == 0  # 128 rows per member, no held-out split
    rows = gz.make("autoregressive", max_steps=7, image_steps=500, random_state=0).fit(X.reshape(200, 4) + 0.5)
    assert rows.phases_[0]["max_steps"] == 7 and len(rows.module_.made.blocks) == 2  # rows: MADE, 3 layers
    assert rows.module_.members is None  # and one network


def test_mixture_conditionals_telescope_to_the_mixture_likelihood():
    lp = -torch.rand(3, 5, 7) * 4  # (members, rows, coordinates)
    np.testing.assert_allclose(mixture_conditionals(lp).sum(-1),
                               torch.logsumexp(lp.sum(-1), 0) - np.log(3), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mixture_conditionals(lp[:1]), lp[0], atol=1e-6)  # one member: its own


def test_a_mixture_of_members_imputes_a_suffix_from_its_exact_conditional():
    """The members are weighted by their posterior given the observed prefix, not by their prior:
    draws of the last pixel match the conditional enumerated from the mixture's own density. (One
    member's weights are scrambled, so that the members disagree and the weighting matters.)"""
    X, y = _tiny_images()
    m = gz.make("autoregressive", image_steps=100, members=2, random_state=0).fit(X, y)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in m.module_.members[1].parameters():
            p.add_(torch.randn_like(p))
    row = X[y == 1][0].astype(float)
    every = np.repeat(row[None], 3, 0)
    every[:, 1, 1] = [0, 1, 2]
    exact = np.exp(m.score_samples(every))
    exact /= exact.sum()
    Q = np.repeat(row[None], 2000, 0)
    Q[:, 1, 1] = np.nan
    drawn = np.bincount(m.impute(Q, random_state=0)[:, 1, 1].astype(int), minlength=3) / 2000
    np.testing.assert_allclose(drawn, exact, atol=0.04)  # 3.5 standard errors


def test_nominal_categories_get_a_softmax_and_made_stays_for_rows():
    rng = np.random.default_rng(1)
    colour = rng.choice(["red", "green", "blue"], 2000, p=[0.6, 0.3, 0.1])
    import pandas as pd

    df = pd.DataFrame({"colour": pd.Categorical(colour), "size": rng.normal(size=2000)})
    m = gz.make("autoregressive", max_steps=1000, random_state=0).fit(df)
    assert m.likelihood_kind == "exact" and type(m.module_.made).__name__ == "MADE"
    assert not bool(m._cat.ordinal[0])
    # the colour's marginal: P(colour) = integral over size, estimated on a fine grid of size
    grid = np.linspace(-6, 6, 601)
    mass = []
    for c in ["blue", "green", "red"]:
        rows = pd.DataFrame({"colour": pd.Categorical([c] * len(grid), categories=["blue", "green", "red"]),
                             "size": grid})
        mass.append(np.exp(m.score_samples(rows)).sum() * (grid[1] - grid[0]))
    np.testing.assert_allclose(mass, [0.1, 0.3, 0.6], atol=0.04)
