"""The GAN family: no density (and says why), a short stabilised fit covers both blobs of a toy,
rejection sampling and the plain switch behave, conditioning and latent-search imputation land
where they should, on small budgets."""

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


def _params(**kw) -> dict:
    p = dict(max_steps=600, batch_size=128, hidden=64, d_hidden=64, rejection_steps=200, impute_steps=100,
             random_state=0, verbose=0, device="cpu")
    p.update(kw)
    return p


def _blob_shares(S: np.ndarray) -> tuple[float, float]:
    """(share near the +blob, share near either blob); 'near' = every coordinate within 0.9."""
    near_pos = np.abs(S - 1.5).max(1) < 0.9
    near_neg = np.abs(S + 1.5).max(1) < 0.9
    return float(near_pos.mean()), float((near_pos | near_neg).mean())


@pytest.fixture(scope="module")
def blob_model():
    X, _ = _blobs(2000)
    return gz.make("gan", **_params()).fit(X)


@pytest.fixture(scope="module")
def cond_model():
    X, y = _blobs(2000, dim=3)
    return gz.make("gan", **_params()).fit(X, y)


def test_no_density_and_says_why(blob_model):
    assert blob_model.likelihood_kind == "none"
    assert blob_model.capabilities == {"sample", "impute", "conditional"}
    with pytest.raises(gz.UnsupportedError, match="implicit"):
        blob_model.score_samples(np.zeros((3, 2)))
    with pytest.raises(gz.UnsupportedError):
        blob_model.score(np.zeros((3, 2)))


def test_stabilised_gan_covers_both_blobs(blob_model):
    S = blob_model.sample(2000, random_state=1)
    pos, near = _blob_shares(S)
    assert near > 0.9, f"only {near:.2f} of the samples near a blob"
    assert 0.3 < pos < 0.7, f"blob shares {pos:.2f} / {near - pos:.2f}: a mode was dropped"
    raw = blob_model.sample(2000, random_state=1, rejection=False)
    assert _blob_shares(raw)[1] <= near + 0.02  # rejection only removes off-support draws
    assert blob_model.rejection_ceiling_ is not None and 0 < blob_model.rejection_accept_ <= 1
    blob_model.sample(10, random_state=0)
    assert blob_model.last_nfe_ >= 2  # generator + critic per proposal


def test_validation_proxy_tracks_sample_quality(blob_model):
    """The early-stopping score is lower for the trained generator than for a shifted copy of it."""
    X, _ = _blobs(600, seed=3)
    z = torch.as_tensor((X - blob_model.loc_) / blob_model.scale_, dtype=torch.float32)
    good = blob_model._val_loss(z, None)
    last = blob_model.module_.generator_ema.net.net[-1]
    with torch.no_grad():
        last.bias += 1.0
        bad = blob_model._val_loss(z, None)
        last.bias -= 1.0
    assert good < bad
    h = blob_model.history_["val_loss"]
    assert min(h) < h[0]


def test_plain_switch_turns_the_recipe_off():
    X, _ = _blobs(500)
    m = gz.make("gan", **_params(max_steps=50, stabilize=False, pack=4)).fit(X)
    assert m.module_.discriminator.pack == 1 and m.module_.critic is None
    assert m.rejection_ceiling_ is None
    with pytest.raises(ValueError, match="rejection"):
        m.sample(5, rejection=True)
    # the plain GAN samples from the raw generator: the EMA copy is an exact copy
    for pe, p in zip(m.module_.generator_ema.parameters(), m.module_.generator.parameters()):
        torch.testing.assert_close(pe, p)


def test_packing_feeds_m_samples_to_the_discriminator():
    X, _ = _blobs(500)
    m = gz.make("gan", **_params(max_steps=30, pack=4)).fit(X)
    D = m.module_.discriminator
    assert D.pack == 4 and D(torch.zeros(16, 2)).shape == (4,)


def test_conditional_samples_land_on_the_asked_class(cond_model):
    for k, centre in ((0, -1.5), (1, 1.5)):
        S = cond_model.sample(400, y=k, random_state=1)
        assert S.shape == (400, 3)
        assert np.mean(np.abs(S - centre).max(1) < 0.9) > 0.9


def test_pooled_rejection_gives_each_row_a_draw_of_its_own_label(cond_model):
    # accepted proposals are pooled within a label: a mixed batch must still match row by row
    y = np.tile([0, 1, 1, 0, 1], 80)
    S = cond_model.sample(len(y), y=y, random_state=2)
    centre = np.where(y == 0, -1.5, 1.5)[:, None]
    assert np.mean(np.abs(S - centre).max(1) < 0.9) > 0.9
    assert cond_model.last_nfe_ <= 2 * 1.5 / cond_model.rejection_accept_ * 2  # about one round


def test_impute_keeps_observed_and_finds_the_blob(cond_model):
    Q = np.full((120, 3), np.nan)
    Q[:60, 0] = 1.5                      # one observed coordinate: the rest must follow the blob
    Q[60:, 0], Q[60:, 2] = -1.5, -1.5    # two observed
    F = cond_model.impute(Q, random_state=0)
    obs = ~np.isnan(Q)
    np.testing.assert_array_equal(F[obs], Q[obs])
    assert np.mean(np.abs(F[:60, 1:] - 1.5).max(1) < 0.9) > 0.9
    assert np.mean(np.abs(F[60:, 1] + 1.5) < 0.9) > 0.9
    assert F[:60, 1].std() > 0.02        # draws of the model's conditional, not one point
    np.testing.assert_array_equal(F, cond_model.impute(Q, random_state=0))
    S = cond_model.impute(Q, random_state=0, method="search")  # the latent search, kept for comparison
    np.testing.assert_array_equal(S[obs], Q[obs])
    assert np.mean(np.abs(S[:60, 1:] - 1.5).max(1) < 0.9) > 0.9
    with pytest.raises(ValueError, match="'nearest' or 'search'"):
        cond_model.impute(Q, method="repaint")


def test_nearest_impute_follows_the_model_samples(blob_model):
    """The default impute is the model's own conditional: for x0 observed in the + blob, the draws of x1
    match the model's samples whose x0 is near it (the same pool statistic, estimated two ways)."""
    S = blob_model.sample(20_000, random_state=3)
    near = S[np.abs(S[:, 0] - 1.5) < 0.05, 1]
    Q = np.full((500, 2), np.nan)
    Q[:, 0] = 1.5
    F = blob_model.impute(Q, random_state=0)
    assert abs(np.median(F[:, 1]) - np.median(near)) < 0.1
    assert 0.5 < F[:, 1].std() / near.std() < 2.0


def test_impute_reaches_both_modes_when_both_fit():
    """Observed x1 = 0 is consistent with both blobs of (x0, x1) = (-+1.5, 0): both must be drawn."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    X = np.stack([(2 * y - 1) * 1.5, np.zeros(2000)], 1) + 0.2 * rng.standard_normal((2000, 2))
    m = gz.make("gan", **_params()).fit(X)
    Q = np.full((200, 2), np.nan)
    Q[:, 1] = 0.0
    F = m.impute(Q, random_state=1)
    assert np.mean(np.abs(np.abs(F[:, 0]) - 1.5) < 0.7) > 0.85
    assert 0.2 < np.mean(F[:, 0] > 0) < 0.8


def test_bad_hyperparameters_raise():
    X, _ = _blobs(100)
    for bad in ({"ema_decay": 1.0}, {"r1_gamma": -1.0}, {"pack": 0}, {"pack": 1000},
                {"rejection_quantile": 0.0}, {"fourier_scale": 0.0}):
        with pytest.raises(ValueError):
            gz.make("gan", **_params(max_steps=5, **bad)).fit(X)
    m = gz.make("gan", **_params(max_steps=5)).fit(X)
    with pytest.raises(ValueError, match="unknown"):
        m.sample(3, steps=4)
