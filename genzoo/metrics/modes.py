"""Mode-collapse metrics on labelled mixtures and the on-support share under a known density."""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ._checks import as_points

PROTOCOL_N = 2500  # samples per evaluation in PacGAN / VEEGAN


def mode_metrics(
    Y: Any, centers: Any, std: float, weights: Any = None, n_std: float = 3.0
) -> dict[str, Any]:
    """Mode counts, high-quality share and reverse KL, the protocol of PacGAN and VEEGAN.

    Protocol (Lin et al. 2018; Srivastava et al. 2017), with 2,500 generated samples:
    a sample is *high quality* if its Euclidean distance to its nearest mode centre is
    at most ``n_std`` (= 3) standard deviations; a mode is *captured* if it is the
    nearest mode of at least one high-quality sample; the *reverse KL* is KL(q || p)
    between the histogram q of the high-quality samples over their nearest modes and
    the true mode weights p (uniform when ``weights`` is None), with 0 log 0 = 0, so
    empty bins of q contribute nothing (a missed mode shows in ``modes``, not as inf).
    With no high-quality sample q is undefined and ``reverse_kl`` is NaN.

    Returns ``modes`` (int), ``n_modes``, ``high_quality`` (share in [0, 1]),
    ``reverse_kl`` (nats) and ``counts`` (high-quality samples per mode).
    """
    C = as_points(centers, "centers")
    Y = as_points(Y, "Y")
    if Y.shape[1] != C.shape[1]:
        raise ValueError(f"Y has {Y.shape[1]} columns but centers have {C.shape[1]}")
    if not (np.isfinite(std) and std > 0):
        raise ValueError(f"std must be a positive number, got {std!r}")
    K = len(C)
    if weights is None:
        p = np.full(K, 1.0 / K)
    else:
        p = np.asarray(weights, dtype=np.float64)
        if p.shape != (K,) or np.any(p < 0) or not np.isfinite(p).all() or p.sum() <= 0:
            raise ValueError(f"weights must be {K} non-negative numbers (one per centre), got shape {p.shape}")
        p = p / p.sum()
    dist, nearest = cKDTree(C).query(Y, k=1)
    hq = dist <= n_std * std
    counts = np.bincount(nearest[hq], minlength=K)
    n_hq = int(counts.sum())
    if n_hq:
        q = counts / n_hq
        nz = q > 0
        with np.errstate(divide="ignore"):
            rkl = float(np.sum(q[nz] * (np.log(q[nz]) - np.log(p[nz]))))
    else:
        rkl = float("nan")
    return {
        "modes": int((counts > 0).sum()),
        "n_modes": K,
        "high_quality": float(hq.mean()),
        "reverse_kl": rkl,
        "counts": counts,
    }


def support_threshold(dist: Any, q: float = 0.01, n_ref: int = 20_000, random_state: int | None = 4242) -> float:
    """The q-quantile of the true log-density over ``n_ref`` real points of ``dist``."""
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q!r}")
    R = np.asarray(dist.sample(n_ref, random_state=random_state), dtype=np.float64)
    return float(np.quantile(dist.log_prob(R), q))


def on_support(
    Y: Any, dist: Any, q: float = 0.01, n_ref: int = 20_000, random_state: int | None = 4242,
    threshold: float | None = None,
) -> float:
    """Share of generated points whose TRUE log-density is at least the q-quantile of log p over real points.

    A perfect model scores about 1 - q (0.99). It separates models that sit between
    modes or off a thin support even when their Wasserstein distance looks fine.
    Points where the density is zero (log p = -inf) or undefined count as off-support.
    ``threshold`` skips recomputing the quantile (see ``support_threshold``).
    """
    Y = as_points(Y, "Y")
    if Y.shape[1] != dist.dim:
        raise ValueError(f"Y has {Y.shape[1]} columns but the distribution has dim {dist.dim}")
    thr = support_threshold(dist, q, n_ref, random_state) if threshold is None else threshold
    lp = np.nan_to_num(np.asarray(dist.log_prob(Y), dtype=np.float64), nan=-np.inf)
    return float(np.mean(lp >= thr))
