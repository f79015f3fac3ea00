"""Likelihood metrics: test NLL with its standard error, and the gap to the true entropy (= KL)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._checks import as_points, check_positive_int, unsupported


def _kind(model: Any) -> str:
    return str(getattr(model, "likelihood_kind", "none"))


def _model_log_prob(model: Any, X: np.ndarray) -> np.ndarray:
    if _kind(model) == "none":
        raise unsupported(f"{type(model).__name__} has no likelihood (likelihood_kind='none')")
    lp = np.asarray(model.score_samples(X), dtype=np.float64).reshape(-1)
    if lp.shape != (len(X),):
        raise ValueError(f"score_samples returned {lp.size} values for {len(X)} rows")
    return lp


def _mean_se(v: np.ndarray) -> tuple[float, float]:
    m = float(np.mean(v))
    se = float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 and np.isfinite(m) else float("nan")
    return m, se


def nll(model: Any, X: Any) -> dict[str, Any]:
    """Mean negative log-likelihood of held-out ``X`` under ``model``, in nats per point.

    Returns ``nll``, ``se`` (standard error of the mean over rows), ``bits_per_dim``
    (= nll / (d ln 2), a display value only) and ``kind`` (the model's
    ``likelihood_kind``: 'exact', 'bound' (an upper bound on the NLL, e.g. an ELBO) or
    'estimate'). Raises ``UnsupportedError`` for models without a likelihood (a GAN):
    the number is absent, never faked. Rows scored -inf give nll = inf.
    """
    X = as_points(X, "X")
    lp = _model_log_prob(model, X)
    value, se = _mean_se(-lp)
    return {"nll": value, "se": se, "bits_per_dim": value / (X.shape[1] * math.log(2)), "kind": _kind(model)}


def nll_gap(
    model: Any, dist: Any, n: int = 10_000, random_state: int | None = 0, X: Any = None
) -> dict[str, Any]:
    """KL(data || model) estimated as test NLL minus the true entropy, with its standard error.

    Uses n points drawn from ``dist`` (or the given ``X``, assumed drawn from it) and the
    paired form gap = mean(log p(x) - log q(x)): the same quantity as NLL - H, but the
    Monte-Carlo noise of the data cancels between the two terms, so the standard error
    is that of the per-point difference (exactly 0 for the true density itself). It is
    >= 0 up to noise; for a 'bound' model it is an upper bound on the KL.

    Returns ``gap``, ``gap_se``, ``nll``, ``nll_se``, ``entropy`` (the distribution's
    ``entropy()``, for display), ``entropy_se`` and ``kind``.
    """
    if X is None:
        X = dist.sample(check_positive_int(n, "n"), random_state=random_state)
    X = as_points(X, "X")
    if X.shape[1] != dist.dim:
        raise ValueError(f"X has {X.shape[1]} columns but the distribution has dim {dist.dim}")
    lq = _model_log_prob(model, X)
    lp = np.asarray(dist.log_prob(X), dtype=np.float64)
    gap, gap_se = _mean_se(lp - lq)
    value, se = _mean_se(-lq)
    return {
        "gap": gap,
        "gap_se": gap_se,
        "nll": value,
        "nll_se": se,
        "entropy": float(dist.entropy()),
        "entropy_se": float(getattr(dist, "entropy_se", 0.0) or 0.0),
        "kind": _kind(model),
    }
