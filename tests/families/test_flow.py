"""The flow family: exact density (normalised, never better than the truth), exact sampling,
conditioning on labels and imputation, on small budgets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import genzoo as gz


def _blobs(n: int, seed: int = 0, dim: int = 2):
    """Two well-separated Gaussian blobs (std 0.3 at -+1.5 on every axis); label = blob."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = (2 * y[:, None] - 1) * 1.5 + 0.3 * rng.standard_normal((n, dim))
    return X, y


def _blobs_log_prob(X: np.ndarray) -> np.ndarray:
    dim = X.shape[1]
    lps = [-0.5 * (((X - c) / 0.3) ** 2).sum(1) - dim * np.log(0.3 * np.sqrt(2 * np.pi)) for c in (-1.5, 1.5)]
    return np.logaddexp(*lps) - np.log(2)


def _grid_mass(model, lo: float, hi: float, n: int = 200) -> float:
    g = np.linspace(lo, hi, n)
    P = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    return float(np.exp(model.score_samples(P)).sum() * (g[1] - g[0]) ** 2)


@pytest.fixture(scope="module")
def ring_model():
    X = gz.datasets.get("ring").sample(2000, random_state=0)
    return gz.make("flow", max_steps=400, hidden=32, n_layers=6, random_state=0, verbose=0).fit(X), X


@pytest.fixture(scope="module")
def blob_model():
    X, y = _blobs(2000)
    return gz.make("flow", max_steps=300, random_state=0, verbose=0, hidden=32).fit(X, y)


def test_density_integrates_to_one(ring_model):
    model, X = ring_model
    span = np.abs(X).max() * 1.6
    assert abs(_grid_mass(model, -span, span) - 1) < 0.02


def test_nll_not_below_true_entropy_and_learns(ring_model):
    model, _ = ring_model
    ds = gz.datasets.get("ring")
    Xte = ds.sample(5000, random_state=7)
    lp = model.score_samples(Xte)
    H = -ds.log_prob(ds.sample(100_000, random_state=11)).mean()
    nll, se = -lp.mean(), lp.std() / np.sqrt(len(lp))
    assert nll > H - 3 * se - 0.01  # cross-entropy >= entropy: an unnormalised model would beat the truth
    assert nll < H + 0.5  # and a short training already gets close


@pytest.mark.parametrize("coupling,base", [("mixture", "normal"), ("spline", "normal"), ("affine", "normal"),
                                           ("mixture", "mixture"), ("affine", "mixture")])
@pytest.mark.parametrize("dim", [3, 5])
def test_exact_log_prob_matches_change_of_variables(coupling, base, dim):
    """score_samples == log p_base(f(x)) + log|det J_f(x)| with J from autograd, in any dimension; the
    base is N(0, I) or a full-covariance Gaussian mixture (its density from SciPy, per class)."""
    from scipy.stats import multivariate_normal

    X, y = _blobs(600, dim=dim)
    model = gz.make("flow", coupling=coupling, base=base, base_components=3, max_steps=40, hidden=16, n_layers=4,
                    random_state=0, verbose=0, validation_fraction=0).fit(X, y)
    net = model.module_.double()
    Z = torch.as_tensor((X[:4] - model.loc_) / model.scale_)
    for i in range(4):
        lab = torch.tensor([int(y[i])])
        jac = torch.autograd.functional.jacobian(lambda v, lab=lab: net.transform(v[None], net.context(lab, 1))[0][0],
                                                 Z[i])
        u = net.transform(Z[i:i + 1], net.context(lab, 1))[0][0]
        if base == "normal":
            log_base = -0.5 * (u @ u).item() - 0.5 * dim * np.log(2 * np.pi)
        else:  # the mixture from its parameters: Sigma_k = (P_k P_k^T)^-1
            b = net.base
            P = b.precision_cholesky().detach().numpy()
            w = torch.softmax(b.logits[int(y[i])], -1).detach().numpy()
            log_base = np.log(sum(w[k] * multivariate_normal(b.means[k].detach().numpy(),
                                                             np.linalg.inv(P[k] @ P[k].T)).pdf(u.detach().numpy())
                                  for k in range(len(w))))
        want = log_base + torch.linalg.slogdet(jac)[1].item()
        assert net.log_prob(Z[i:i + 1], lab).item() == pytest.approx(want, abs=1e-8)
    net.float()
    # sampling inverts the same map: pushing samples forward and back is the identity
    S = model.sample(50, y=1, random_state=0)
    Zs = torch.as_tensor((S - model.loc_) / model.scale_, dtype=torch.float32)
    lab = torch.ones(50, dtype=torch.long)
    u, _ = net.transform(Zs, net.context(lab, 50))
    assert torch.allclose(net.invert(u, lab), Zs, atol=1e-4)


def test_samples_are_the_inverse_map_of_the_drawn_noise(ring_model):
    """sample() is exactly f^-1(u) for its N(0, I) draw u, across the sampler's row chunks: pushing
    the samples back through f recovers u (to float32 rounding through a steep map)."""
    from genzoo.base import seed_from, torch_seed

    model, _ = ring_model
    n = 10_000  # more than one sampling chunk
    S = model.sample(n, random_state=0)
    with torch_seed(seed_from(0)):
        u0 = torch.randn(n, 2)
    Z = torch.as_tensor((S - model.loc_) / model.scale_, dtype=torch.float32)
    with torch.no_grad():
        u, _ = model.module_.transform(Z)
        Z_back = model.module_.invert(u)
    assert (u - u0).abs().max() < 1e-3 and (u - u0).abs().mean() < 1e-5
    assert (Z_back - Z).abs().max() < 1e-5


def test_affine_coupling_trains():
    X, _ = _blobs(1500)
    model = gz.make("flow", coupling="affine", max_steps=300, hidden=32, n_layers=6, random_state=0,
                     verbose=0).fit(X)
    Xte, _ = _blobs(2000, seed=1)
    gap = -model.score(Xte) + _blobs_log_prob(Xte).mean()
    assert -0.05 < gap < 0.3


def test_conditional_samples_land_on_the_asked_class(blob_model):
    for k, sign in ((0, -1), (1, 1)):
        S = blob_model.sample(400, y=k, random_state=1)
        assert np.mean(np.sign(S).sum(1) == 2 * sign) > 0.97
    S = blob_model.sample(2000, random_state=2)  # marginal: both classes at their frequencies
    assert 0.4 < np.mean(S[:, 0] > 0) < 0.6


def test_conditional_score_is_the_marginal_density(blob_model):
    assert abs(_grid_mass(blob_model, -3.5, 3.5) - 1) < 0.02
    X, _ = _blobs(3000, seed=5)
    gap = -blob_model.score(X) + _blobs_log_prob(X).mean()
    assert -0.05 < gap < 0.3


def test_impute_draws_from_the_conditional(blob_model):
    Q = np.full((300, 2), np.nan)
    Q[:150, 0] = 1.5  # x observed in the right blob -> y there too
    Q[150:, 1] = -1.5  # y observed in the left blob -> x there too
    F = blob_model.impute(Q, random_state=0)
    assert np.array_equal(F[:150, 0], Q[:150, 0]) and np.array_equal(F[150:, 1], Q[150:, 1])
    assert abs(np.mean(F[:150, 1]) - 1.5) < 0.15 and 0.2 < np.std(F[:150, 1]) < 0.4  # a draw, not a mean
    assert abs(np.mean(F[150:, 0]) + 1.5) < 0.15


def test_bad_hyperparameters_raise():
    X, _ = _blobs(100)
    with pytest.raises(ValueError, match="coupling"):
        gz.make("flow", coupling="planar", verbose=0).fit(X)
    with pytest.raises(ValueError, match="bins"):
        gz.make("flow", bins=0, verbose=0).fit(X)
    with pytest.raises(ValueError, match="options"):
        gz.make("flow", max_steps=2, verbose=0).fit(X).sample(3, steps=10)


@pytest.mark.slow
@pytest.mark.parametrize("dname, gap_max", [("ring", 0.03), ("gaussians8", 0.05), ("grid25", 0.03)])
def test_default_quality(dname, gap_max):
    """The defaults on 10,000 points: NLL within the issue's target of the entropy, every mode found."""
    ds = gz.datasets.get(dname)
    X = ds.sample(10_000, random_state=0)
    model = gz.make("flow", random_state=0, verbose=0).fit(X)
    H = -ds.log_prob(ds.sample(100_000, random_state=11)).mean()
    assert -model.score(ds.sample(10_000, random_state=7)) - H < gap_max
    if dname == "ring":
        return
    S = model.sample(2500, random_state=1)
    modes = ds.modes()
    d = np.sqrt(((S[:, None] - np.asarray(modes["centers"])[None]) ** 2).sum(-1))
    near = d.min(1) <= 3 * modes["std"]
    assert near.mean() >= 0.97 and len(np.unique(d.argmin(1)[near])) == len(modes["centers"])


def test_width_defaults_and_linear_mixing_layers(tmp_path):
    """Beyond 2-D the mixture couplings default to 4 Gaussians per coordinate (16 overfit); with
    ``linear=True`` learned rotations sit between couplings, the flow still inverts exactly and
    survives a save / load."""
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((600, 4)) @ rng.standard_normal((4, 4))).astype(np.float32)
    m = gz.make("flow", max_steps=30, verbose=0, random_state=0).fit(X)
    assert m.module_.transform.blocks[0].components == 4
    lin = gz.make("flow", max_steps=30, linear=True, verbose=0, random_state=0).fit(X)
    kinds = [type(b).__name__ for b in lin.module_.transform.blocks]
    assert kinds.count("InvertibleLinear") == lin.n_layers - 1
    u = torch.randn(16, 4)
    x = lin.module_.invert(u)
    back, _ = lin.module_.transform(x)
    assert torch.allclose(back, u, atol=1e-4)
    lin.save(tmp_path / "m.genzoo")
    again = gz.load(tmp_path / "m.genzoo")
    np.testing.assert_allclose(again.score_samples(X[:8]), lin.score_samples(X[:8]), rtol=1e-5, atol=1e-5)
    Q = np.repeat(X[:1], 20, 0)
    Q[:, 2:] = np.nan
    F = m.impute(Q, random_state=0)  # one distinct row beyond 2-D: importance resampling by the density
    assert m.last_impute_ess_ > 1 and np.isfinite(F).all() and np.all(F[:, :2] == X[0, :2])


def test_on_images_the_held_out_split_is_checked_often_enough_to_stop_early(one_thread):
    """On images the validation checks come every IMAGE_EVAL_EVERY steps (so early stopping can catch
    the held-out optimum of 1,000 digits near step 75); on rows the usual 250."""
    from genzoo.families.flow import IMAGE_EVAL_EVERY

    X = gz.datasets.get("digits").split("train")[0][:200]
    m = gz.make("flow", max_steps=100, n_layers=2, random_state=0, verbose=0).fit(X)
    steps = np.diff(m.history_["val_step"])
    assert len(steps) >= 3 and np.all(steps == IMAGE_EVAL_EVERY)
    rows = gz.make("flow", max_steps=100, n_layers=2, random_state=0, verbose=0).fit(X.reshape(200, 64))
    assert len(rows.history_["val_step"]) <= 1


def test_beyond_two_columns_the_better_base_is_kept_by_held_out_likelihood(tmp_path):
    """base=None beyond 2-D fits the flow with a Gaussian-mixture base and with a normal one and keeps
    the better held-out NLL: on thin well-separated 4-D blobs the mixture base wins, its density stays
    exact after a save / load, and both fits stay on record."""
    X, _ = _blobs(3000, dim=4)
    X[:, 1] *= 0.2  # thin in one direction
    model = gz.make("flow", max_steps=150, hidden=16, n_layers=4, random_state=0, verbose=0).fit(X)
    assert model.base_ == "mixture" and model.base_components_ >= 2
    assert model.base_losses_["mixture"] < model.base_losses_["normal"]
    assert [p["name"] for p in model.phases_] == ["fit (normal base)", "fit (mixture base)"]
    Xte = _blobs(2000, seed=5, dim=4)[0]
    Xte[:, 1] *= 0.2
    truth = _blobs_log_prob(Xte / np.array([1, 0.2, 1, 1])) - np.log(0.2)
    nll_gap = -model.score_samples(Xte).mean() + truth.mean()
    assert -0.02 < nll_gap < 0.15
    S = model.sample(2000, random_state=0)
    assert np.all(np.abs(np.abs(S[:, 0]) - 1.5) < 1.5)  # on one of the two blobs
    model.save(tmp_path / "m.genzoo")
    again = gz.load(tmp_path / "m.genzoo")
    assert again.base_ == "mixture" and again.base_losses_ == pytest.approx(model.base_losses_)
    np.testing.assert_allclose(again.score_samples(Xte[:50]), model.score_samples(Xte[:50]), rtol=1e-6, atol=1e-6)
    normal = gz.make("flow", base="normal", max_steps=150, hidden=16, n_layers=4, random_state=0, verbose=0).fit(X)
    assert normal.base_ == "normal" and normal.base_components_ == 0 and len(normal.phases_) == 1
