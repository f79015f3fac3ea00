"""The image families (latent_diffusion, vq_autoregressive, vq_masked) and the digits data, on tiny budgets.

Properties only (shapes, integer range, observed pixels kept, the guidance convention, checkpoints);
sample quality is measured in benchmarks, not here.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

import genzoo as gz
from genzoo.datasets.digits import DIGITS

for _m in ("vq_autoregressive", "vq_masked", "latent_diffusion"):  # registers them even before the package lists them
    importlib.import_module(f"genzoo.families.{_m}")

FAMILIES = ["vq_autoregressive", "vq_masked", "latent_diffusion"]
TINY = {"vq_autoregressive": {"tokenizer_steps": 40, "max_steps": 40, "codebook_size": 32},
        "vq_masked": {"tokenizer_steps": 40, "max_steps": 40, "codebook_size": 32},
        "latent_diffusion": {"ae_steps": 40, "max_steps": 40, "impute_pool": 200}}
_CACHE: dict = {}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def fitted(family: str):
    if family not in _CACHE:
        X, y = DIGITS.split("train")
        _CACHE[family] = gz.make(family, random_state=0, device="cpu", **TINY[family]).fit(X[:200], y[:200])
    return _CACHE[family]


def test_digits_split():
    Xtr, ytr = DIGITS.split("train")
    Xva, _ = DIGITS.split("val")
    Xte, yte = DIGITS.split("test")
    assert (len(Xtr), len(Xva), len(Xte)) == (1000, 350, 447)
    assert Xtr.shape[1:] == (8, 8) and Xtr.dtype == np.int64 and Xtr.min() == 0 and Xtr.max() == 16
    assert set(np.unique(ytr)) == set(range(10))
    from sklearn.datasets import load_digits

    np.testing.assert_array_equal(Xte, load_digits().images[1350:].astype(np.int64))
    with pytest.raises(ValueError, match="unknown split"):
        DIGITS.split("training")


@pytest.mark.parametrize("family", FAMILIES)
def test_samples_are_integer_images(family):
    m = fitted(family)
    assert m.image_shape_ == (8, 8) and m.n_levels_ == 17
    S = m.sample(30, random_state=1)
    assert S.shape == (30, 8, 8) and S.dtype == np.int64
    assert S.min() >= 0 and S.max() <= 16
    np.testing.assert_array_equal(S, m.sample(30, random_state=1))
    assert m.last_nfe_ >= 1
    Sc = m.sample(10, y=np.arange(10), guidance=2.0, random_state=1)
    assert Sc.shape == (10, 8, 8)


@pytest.mark.parametrize("family", FAMILIES)
def test_guidance_zero_ignores_labels(family):
    m = fitted(family)
    a = m.sample(16, y=0, guidance=0.0, random_state=4)
    b = m.sample(16, y=7, guidance=0.0, random_state=4)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("family", FAMILIES)
def test_impute_keeps_observed_pixels(family):
    m = fitted(family)
    X, _ = DIGITS.split("test")
    Q = X[:12].astype(float)
    Q[:6, 4:] = np.nan  # lower half
    Q[6:11, :, ::3] = np.nan  # scattered columns; the last row is complete
    F = m.impute(Q, random_state=0)
    assert F.shape == Q.shape and not np.isnan(F).any()
    obs = ~np.isnan(Q)
    np.testing.assert_array_equal(F[obs], Q[obs])
    assert np.all(F == np.round(F)) and F.min() >= 0 and F.max() <= 16
    np.testing.assert_array_equal(F[11], X[11])


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip(family, tmp_path):
    m = fitted(family)
    path = tmp_path / "m.genzoo"
    m.save(path)
    m2 = gz.load(path)
    assert m2.image_shape_ == m.image_shape_ and m2.n_levels_ == m.n_levels_
    np.testing.assert_array_equal(m2.sample(20, y=3, random_state=5), m.sample(20, y=3, random_state=5))


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_input_is_one_clear_error(family):
    m = gz.make(family, random_state=0, device="cpu", **TINY[family])
    with pytest.raises(ValueError, match="integer levels"):
        m.fit(np.full((4, 8, 8), 0.5))
    with pytest.raises(ValueError, match="images of shape"):
        m.fit(np.zeros((4, 64)))
    f = fitted(family)
    with pytest.raises(ValueError, match="fitted on"):
        f.impute(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="never seen"):
        f.sample(2, y=11)


def test_channel_images_keep_their_shape():
    X, y = DIGITS.split("train")
    m = gz.make("latent_diffusion", random_state=0, device="cpu", ae_steps=20, max_steps=20).fit(X[:100, None], y[:100])
    assert m.sample(5, random_state=0).shape == (5, 1, 8, 8)
    Q = X[:3, None].astype(float)
    Q[:, :, 6:] = np.nan
    assert m.impute(Q, random_state=0).shape == (3, 1, 8, 8)


def test_codebook_usage_reported():
    m = fitted("vq_masked")
    assert 0 < m.codebook_usage_ <= 1 and 1 <= m.codebook_perplexity_ <= m.codebook_size
    assert 0 <= m.reconstruction_accuracy_ <= 1


@pytest.mark.parametrize("family", ["vq_autoregressive", "vq_masked"])
def test_token_draws_keep_known_tokens_and_fill_the_rest(family):
    m = fitted(family)
    torch.manual_seed(0)
    n, T = 8, 16
    tokens = torch.randint(0, m.codebook_size, (n, T))
    known = torch.rand(n, T) < 0.5
    with torch.no_grad():
        out = m._draw_tokens(tokens, known, None, 0.0)
    assert torch.equal(out[known], tokens[known])
    assert int(out.max()) < m.codebook_size and int(out.min()) >= 0  # no MASK left


def test_vq_masked_unmasks_on_the_cosine_schedule(monkeypatch):
    """Round s of S leaves floor(T cos(pi s / 2S)) tokens masked, chosen by (finite) confidence."""
    m = fitted("vq_masked")
    seen = []
    real = m._all_logp

    def spy(seq, lab):
        seen.append(int((seq == m._mask_id).sum(1)[0]))
        return real(seq, lab)

    monkeypatch.setattr(m, "_all_logp", spy)
    m.sample(3, y=2, guidance=1.0, random_state=0, decode_steps=4)
    assert seen == [16, 14, 11, 6]  # masked before rounds 1..4: 16, then floor(16 cos(pi s / 8))


def test_vq_masked_decode_steps_set_the_cost():
    m = fitted("vq_masked")
    m.sample(4, y=1, guidance=1.0, random_state=0, decode_steps=3)
    assert m.last_nfe_ == 3
    m.sample(4, y=1, guidance=2.0, random_state=0, decode_steps=3)
    assert m.last_nfe_ == 6  # guided: conditional and unconditional in one batch, two evaluations
