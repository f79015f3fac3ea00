"""Metrics that need a distribution or a model, on fakes: a Gaussian-mixture distribution with
the Distribution interface and tiny models wrapping it (no real family is trained here)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

from genzoo import metrics as M
from genzoo.errors import UnsupportedError
from genzoo.metrics.infill import true_conditional

GRID = np.array([[x, y] for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)], float)
RING8 = np.array([[math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)] for i in range(8)])


class Mixture:
    """Equal-std Gaussian mixture with the Distribution interface: exact log-density, labels, modes."""

    def __init__(self, centers, std, weights=None, name="mixture"):
        self.centers = np.asarray(centers, float)
        self.std, self.name, self.dim = float(std), name, self.centers.shape[1]
        K = len(self.centers)
        self.weights = np.full(K, 1 / K) if weights is None else np.asarray(weights, float) / np.sum(weights)
        self.n_classes = K
        self.entropy_se = 0.0

    def sample(self, n, random_state=None, return_labels=False):
        rng = np.random.default_rng(random_state)
        y = rng.choice(len(self.centers), size=n, p=self.weights)
        X = self.centers[y] + self.std * rng.standard_normal((n, self.dim))
        return (X, y) if return_labels else X

    def class_log_prob(self, X):
        d2 = ((np.asarray(X)[:, None, :] - self.centers[None]) ** 2).sum(-1)
        return np.log(self.weights) - d2 / (2 * self.std**2) - self.dim / 2 * math.log(2 * math.pi * self.std**2)

    def log_prob(self, X):
        return logsumexp(self.class_log_prob(X), axis=1)

    def class_log_posterior(self, X):
        L = self.class_log_prob(X)
        return L - logsumexp(L, axis=1, keepdims=True)

    def entropy(self):  # Monte Carlo, once per object (the real datasets also cache theirs)
        if not hasattr(self, "_h"):
            self._h = float(-self.log_prob(self.sample(50_000, random_state=99)).mean())
        return self._h

    def modes(self):
        return {"centers": self.centers, "std": self.std, "weights": self.weights}


class Unlabelled(Mixture):
    n_classes = None

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.n_classes = None

    def modes(self):
        return None


class Oracle:
    """A perfect model: samples the true distribution, scores with its true density, imputes exactly."""

    capabilities = frozenset({"sample", "log_prob", "impute", "conditional"})
    likelihood_kind = "exact"

    def __init__(self, dist, std_scale=1.0):
        self.dist, self.std_scale = dist, std_scale
        self.classes_ = np.arange(dist.n_classes) if dist.n_classes else None
        self.history_ = {"step": [0, 1, 2], "train_loss": [3.0, 2.0, 1.9], "val_loss": [3.1, 2.1, 2.0]}

    def sample(self, n, y=None, random_state=None, guidance=0.0):
        rng = np.random.default_rng(random_state)
        self.last_nfe_ = 1
        if y is None:
            return self.dist.sample(n, random_state=rng)
        std = self.dist.std * self.std_scale / (1 + guidance)  # "guidance" sharpens each class
        return self.dist.centers[np.asarray(y)] + std * rng.standard_normal((n, self.dist.dim))

    def score_samples(self, X):
        return self.dist.log_prob(X)

    def impute(self, Q, random_state=None):
        Q = np.array(Q, float)
        (c,) = np.flatnonzero(~np.isnan(Q[0]))  # the fakes see one observed coordinate, one value
        draws, _ = true_conditional(self.dist, int(c), Q[0, c], len(Q), random_state)
        Q[:, 1 - c] = draws
        return Q


class Collapsed(Oracle):
    """Puts every sample on mode 0."""

    def sample(self, n, y=None, random_state=None, guidance=0.0):
        return super().sample(n, y=np.zeros(n, int), random_state=random_state)


class NoLikelihood(Oracle):
    """A GAN-like model: samples, but has no density."""

    capabilities = frozenset({"sample"})
    likelihood_kind = "none"

    def score_samples(self, X):
        raise UnsupportedError("no likelihood")


class Broken(Oracle):
    def sample(self, n, y=None, random_state=None, guidance=0.0):
        return np.full((n, self.dist.dim), np.nan)


class MarginalImputer(Oracle):
    """Ignores the observed value: draws the missing coordinate from its marginal."""

    def impute(self, Q, random_state=None):
        Q = np.array(Q, float)
        R = self.dist.sample(len(Q), random_state=random_state)
        return np.where(np.isnan(Q), R, Q)


@pytest.fixture(scope="module")
def grid25():
    return Mixture(GRID, 0.05, name="grid25")


@pytest.fixture(scope="module")
def g8():
    return Mixture(RING8, 0.02, name="g8")


# ------------------------------------------------------------------ density-based and label metrics
def test_on_support_near_one_minus_q_for_true_samples(grid25):
    val = M.on_support(grid25.sample(5000, random_state=1), grid25)
    assert val == pytest.approx(0.99, abs=0.006)
    between = GRID[:5] + 1.0  # points between modes
    assert M.on_support(between, grid25) == 0.0
    with pytest.raises(ValueError, match="Y has 3 columns but the distribution has dim 2"):
        M.on_support(np.zeros((4, 3)), grid25)


def test_nll_and_gap_for_the_true_density(g8):
    m = Oracle(g8)
    X = g8.sample(4000, random_state=2)
    r = M.nll(m, X)
    assert r["kind"] == "exact" and r["bits_per_dim"] == pytest.approx(r["nll"] / (2 * math.log(2)))
    assert r["nll"] == pytest.approx(-g8.log_prob(X).mean()) and r["se"] > 0
    g = M.nll_gap(m, g8, n=4000, random_state=3)
    assert g["gap"] == pytest.approx(0.0, abs=1e-12) and g["gap_se"] == pytest.approx(0.0, abs=1e-12)
    assert g["nll"] - g["entropy"] == pytest.approx(0.0, abs=3 * g["nll_se"] + 0.01)


def test_nll_gap_is_the_kl_for_a_wrong_model(g8):
    wide = Mixture(RING8, 0.04)  # KL(N(0, s^2) || N(0, (2s)^2)) per dim = log 2 - 3/8, mixtures well separated
    m = Oracle(wide)
    g = M.nll_gap(m, g8, n=20_000, random_state=0)
    assert g["gap"] == pytest.approx(2 * (math.log(2) - 3 / 8), abs=3 * g["gap_se"] + 1e-3)


def test_no_likelihood_is_unsupported(g8):
    with pytest.raises(UnsupportedError, match="likelihood_kind='none'"):
        M.nll(NoLikelihood(g8), g8.sample(10, random_state=0))


def test_inception_score_and_alignment(g8):
    Y = g8.sample(4000, random_state=4)
    assert M.inception_score(Y, g8) == pytest.approx(8.0, abs=0.1)
    assert M.inception_score(Collapsed(g8).sample(1000, random_state=0), g8) == pytest.approx(1.0, abs=1e-6)
    S = Oracle(g8).sample(500, y=np.full(500, 3), random_state=0)
    assert M.conditional_alignment(S, 3, g8) == 1.0
    assert M.conditional_alignment(S, np.full(500, 4), g8) == 0.0
    with pytest.raises(ValueError, match="y_asked has 3 labels but Y has 500 rows"):
        M.conditional_alignment(S, [1, 2, 3], g8)
    with pytest.raises(ValueError, match="has no class labels"):
        M.inception_score(Y, Unlabelled(RING8, 0.02))


def test_sampling_speed(g8):
    m = Oracle(g8)
    r = M.sampling_speed(m, n=500, repeats=2)
    assert r["samples_per_s"] > 0 and r["nfe_per_sample"] == 1 and r["seconds"] > 0
    del m.last_nfe_
    m.sample = lambda n, random_state=None: np.zeros((n, 2))  # a model that does not report NFE
    assert M.sampling_speed(m, n=10)["nfe_per_sample"] is None


# ------------------------------------------------------------------ evaluate
def test_evaluate_perfect_model_scores_its_floor(grid25):
    M.clear_cache()
    rec = M.evaluate(Oracle(grid25), grid25, n=1000, n_test=2000, random_state=0)
    for key in ("w2", "w1", "fd", "mmd", "kid", "precision", "recall", "density", "coverage", "on_support",
                "modes", "high_quality", "reverse_kl", "inception_score"):
        assert np.isfinite(rec[key]) and f"{key}_floor" in rec, key
    for key in ("w2", "w1", "precision", "recall", "coverage", "on_support", "high_quality"):
        assert 0.7 < rec[f"{key}_ratio"] < 1.3, (key, rec[f"{key}_ratio"])
    assert "mmd_ratio" not in rec and "reverse_kl_ratio" not in rec
    assert rec["modes"] == 25 and rec["n_modes"] == 25 and rec["on_support"] > 0.97
    assert rec["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert rec["likelihood_kind"] == "exact" and rec["nll_gap"] == pytest.approx(0.0, abs=1e-12)
    assert rec["nll"] == pytest.approx(rec["entropy"], abs=3 * rec["nll_se"] + 0.01)
    assert rec["samples_per_s"] > 0 and rec["nfe_per_sample"] == 1
    assert rec["n"] == 1000 and rec["random_state"] == 0 and rec["dataset"] == "grid25"


def test_evaluate_is_deterministic_and_caches_floors(grid25):
    M.clear_cache()
    model = Collapsed(grid25)
    a = M.evaluate(model, grid25, n=600, random_state=5, timing=False)
    from genzoo.metrics.evaluation import _FLOORS

    assert len(_FLOORS) == 1
    b = M.evaluate(model, Mixture(GRID, 0.05, name="grid25"), n=600, random_state=5, timing=False)
    assert len(_FLOORS) == 1  # an equal distribution (another object) reuses the floors
    assert a == b
    c = M.evaluate(model, grid25, n=600, random_state=6, timing=False)
    assert c["w2"] != a["w2"] and len(_FLOORS) == 2
    assert a["modes"] == 1 and a["recall"] < 0.1 and a["precision"] > 0.9 and a["w2_ratio"] > 4


def test_evaluate_gan_like_has_no_likelihood(g8):
    rec = M.evaluate(NoLikelihood(g8), g8, n=500, timing=False)
    assert rec["likelihood_kind"] == "none"
    assert not any(k.startswith(("nll", "bits")) for k in rec)


def test_evaluate_on_an_array_and_as_frame(g8):
    X = g8.sample(3000, random_state=7)
    rec = M.evaluate(Oracle(g8), X, n=1000, timing=False)
    assert rec["dataset"] == "array" and rec["n"] == 1000
    assert "on_support" not in rec and "modes" not in rec and "nll_gap" not in rec
    assert rec["nll"] == pytest.approx(-g8.log_prob(X).mean())
    small = M.evaluate(Oracle(g8), X[:500], n=1000, timing=False)
    assert small["n"] == 250  # two disjoint halves: reference and floor partner
    df = M.evaluate(Oracle(g8), g8, n=300, timing=False, as_frame=True)
    assert isinstance(df, pd.DataFrame) and len(df) == 1 and "w2_floor" in df.columns


def test_evaluate_diverged_model_gives_nan_not_a_crash(g8):
    rec = M.evaluate(Broken(g8), g8, n=300, timing=False)
    assert rec["nonfinite_share"] == 1.0 and math.isnan(rec["w2"]) and math.isnan(rec["w2_ratio"])
    assert np.isfinite(rec["w2_floor"])


def test_evaluate_by_dataset_name():
    datasets = pytest.importorskip("genzoo.datasets")
    if "ring" not in datasets.names():
        pytest.skip("built-in ring not available")
    rec = M.evaluate(NoLikelihood(datasets.get("ring")), "ring", n=300, timing=False)
    assert rec["dataset"] == "ring" and rec["w2_ratio"] == pytest.approx(1.0, abs=0.5)


def test_evaluate_rejects_bad_data(g8):
    with pytest.raises(ValueError, match="data contains NaN"):
        M.evaluate(Oracle(g8), np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match=r"model samples have shape \(50, 2\); expected \(50, 3\)"):
        M.evaluate(Oracle(g8), np.zeros((200, 3)), n=50)


# ------------------------------------------------------------------ stability
def test_stability_counts_diverged_runs():
    ok = {"step": [0, 1, 2, 3], "train_loss": [1.0, 0.5, 0.4, 0.41]}
    neg = {"step": [0, 1, 2, 3], "train_loss": [1.0, -1.5, -2.0, -1.9]}  # a negative NLL loss is fine
    records = [
        {"w2": 0.10, "modes": 25, "n_modes": 25, "history": ok},
        {"w2": 0.14, "modes": 24, "n_modes": 25, "history": neg},
        {"w2": 0.12, "history": {"step": [0, 1], "train_loss": [1.0, float("nan")]}},
        {"w2": 0.50, "history": {"step": [0, 1, 2], "train_loss": [1.0, 0.2, 40.0]}},
        {"w2": 0.90, "modes": 3, "n_modes": 25, "history": ok},
        {"w2": float("inf"), "history": ok},
    ]
    s = M.stability(records, metric="w2")
    assert s["n_runs"] == 6 and s["n_diverged"] == 4
    assert [why for _, why in s["diverged"]] == ["nan", "blowup", "collapse", "nan"]
    assert s["mean"] == pytest.approx(0.12) and s["min"] == 0.10 and s["max"] == 0.14
    assert s["std"] == pytest.approx(np.std([0.10, 0.14], ddof=1))
    with pytest.raises(ValueError, match="records is empty"):
        M.stability([])


def test_trajectory_aligns_seeds():
    h1 = {"step": [0, 10, 20], "val_loss": [3.0, 2.0, 1.0]}
    h2 = {"step": [0, 10, 20, 30], "val_loss": [5.0, 4.0, float("nan"), 0.5]}
    t = M.trajectory([h1, h2])
    assert t["step"].tolist() == [0, 10, 20]
    assert t["mean"].tolist() == [4.0, 3.0, 1.0] and t["max"].tolist() == [5.0, 4.0, 1.0]


# ------------------------------------------------------------------ infill and conditioning
def test_true_conditional_matches_the_mixture():
    two = Mixture([[0.0, -1.0], [0.0, 1.0], [3.0, 0.0]], 0.1)
    draws, (lo, hi) = true_conditional(two, 0, 0.0, 20_000, random_state=0)
    assert np.mean(draws > 0) == pytest.approx(0.5, abs=0.015)
    assert np.std(np.abs(draws)) == pytest.approx(0.1, rel=0.03)
    assert np.mean(np.abs(draws)) == pytest.approx(1.0, abs=0.01)
    assert lo == pytest.approx(-1.0 - 0.1 * 1.2816, abs=0.005)  # 5% of the whole = 10% of the lower mode


def test_infill_exact_imputer_sits_at_its_floor(g8):
    res = M.infill_metrics(Oracle(g8), g8, n_slices=3, n_per_slice=400, random_state=0, coords=(0,))
    assert 0.5 < res["infill_w1_ratio"] < 2.0
    assert res["infill_cov90"] == pytest.approx(0.9, abs=0.04)
    kinds = [s["kind"] for s in res["slices"]]
    assert kinds.count("quantile") == 3 and res["slices"][0]["imputed"].shape == (400,)
    assert {"tail", "between"} <= set(kinds)  # the rare slices of a ring of modes
    # an exact imputer's worst slice is what exact draws score on the same slices: a few floors at most
    assert res["infill_w1_ratio_worst"] < 5 and res["infill_w1_ratio_worst_floor"] < 5
    bad = M.infill_metrics(MarginalImputer(g8), g8, n_slices=3, n_per_slice=400, random_state=0, coords=(0,))
    assert bad["infill_w1_ratio"] > 3 * res["infill_w1_ratio"]
    assert bad["infill_w1_floor"] == res["infill_w1_floor"]  # same exact draws for the same random_state
    plain = M.infill_metrics(Oracle(g8), g8, n_slices=3, n_per_slice=100, rare=False)
    assert len(plain["slices"]) == 6 and not plain["infill_w1_ratio_rare"] > 0  # NaN: no rare slices


class ModesOnlyImputer(Oracle):
    """Exact where the observed value is at a mode's coordinate, the marginal elsewhere."""

    def impute(self, Q, random_state=None):
        Q = np.array(Q, float)
        at_mode = np.abs(Q[:, :1] - self.dist.centers[None, :, 0]).min(1) < 3 * self.dist.std
        out = super().impute(Q, random_state)
        R = self.dist.sample(len(Q), random_state=random_state)
        return np.where(np.isnan(Q) & ~at_mode[:, None], R, out)


def test_the_rare_slices_catch_an_imputer_that_is_right_only_on_the_modes(g8):
    """On the quantile slices (the modes) it is exact; between the modes its worst slice gives it away."""
    good = M.infill_metrics(Oracle(g8), g8, n_slices=3, n_per_slice=1000, random_state=1, coords=(0,))
    res = M.infill_metrics(ModesOnlyImputer(g8), g8, n_slices=3, n_per_slice=1000, random_state=1, coords=(0,))
    assert res["infill_w1_ratio"] < 2.0  # the mean over the mode slices looks fine
    assert res["infill_w1_ratio_worst"] > max(4.0, 2 * good["infill_w1_ratio_worst"])
    assert res["infill_worst_slice"].startswith("between")
    assert "between" in M.infill.slice_table(res["slices"])


def test_conditioning_metrics_and_guidance_sweep(g8):
    res = M.conditioning_metrics(Oracle(g8), g8, n_per_class=200, random_state=0)
    assert res["cond_alignment"] == 1.0 and res["cond_alignment_floor"] == 1.0
    assert res["cond_recall"] == pytest.approx(res["cond_recall_floor"], abs=0.1)
    assert len(res["per_class"]) == 8
    sweep = M.guidance_sweep(Oracle(g8, std_scale=6.0), g8, ws=(0, 1, 4), n_per_class=150)
    assert [r["guidance"] for r in sweep] == [0.0, 1.0, 4.0]
    align = [r["alignment"] for r in sweep]
    recall = [r["recall"] for r in sweep]
    assert align[0] < align[-1] and recall[0] > recall[-1]
    with pytest.raises(UnsupportedError, match="not conditional"):
        M.conditioning_metrics(NoLikelihood(g8), g8)


def test_evaluate_with_infill_and_conditioning(g8):
    rec = M.evaluate(Oracle(g8), g8, n=300, timing=False, infill=True, conditioning=True)
    assert "infill_w1_ratio" in rec and "cond_alignment" in rec and "slices" not in rec


class _TableModel:
    """Draws rows of a 3-column table (one column in thousands), optionally shifted in a small column."""

    likelihood_kind = "none"
    capabilities = frozenset({"sample"})

    def __init__(self, shift: float = 0.0):
        self.shift = shift

    def sample(self, n, random_state=None):
        r = np.random.default_rng(random_state)
        X = r.standard_normal((n, 3)) * np.array([1000.0, 1.0, 1.0])
        X[:, 1] += self.shift
        return X


def test_table_sample_metrics_are_on_standardised_columns():
    """A model three standard deviations off in a unit-scale column is far from its floor, even
    beside a column a thousand times wider (on raw columns the wide one's noise hides it)."""
    real = _TableModel().sample(4000, random_state=7)
    good = M.evaluate(_TableModel(), real, n=1500, timing=False)
    bad = M.evaluate(_TableModel(shift=3.0), real, n=1500, timing=False)
    assert good["standardized"] is True
    assert good["w2"] < 1.5 * good["w2_floor"] + 0.05
    assert bad["w2"] > 5 * bad["w2_floor"] and bad["w2"] > 2.5
