"""Infill quality against the TRUE conditionals of a 2-D built-in distribution.

For a 2-D distribution with an exact density, p(x_missing | x_obs) is proportional
to p(x_obs, x_missing) along a line, so exact conditional draws come from
inverse-CDF sampling on a fine 1-D grid of the density. The model's ``impute`` draws
are compared with them slice by slice, beside the floor of a second exact draw.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import wasserstein_distance

from ._checks import check_positive_int

N_GRID = 8001  # grid nodes along the missing coordinate


def support_extent(dist: Any, n: int = 20_000, pad: float = 0.25, random_state: int = 777) -> np.ndarray:
    """(d, 2) box holding the support: range of ``n`` real draws, padded by ``pad`` of its span."""
    R = np.asarray(dist.sample(n, random_state=random_state), dtype=np.float64)
    lo, hi = R.min(0), R.max(0)
    span = np.maximum(hi - lo, 1e-9)
    return np.stack([lo - pad * span, hi + pad * span], 1)


def true_conditional(
    dist: Any, coord: int, value: float, n: int, random_state: int | None = 0,
    extent: np.ndarray | None = None, n_grid: int = N_GRID,
) -> tuple[np.ndarray, tuple[float, float]]:
    """Exact draws of the other coordinate given ``x[coord] = value`` for a 2-D ``dist``.

    Returns (``n`` draws, (5%, 95%) quantiles of the conditional). Inverse CDF of the
    trapezoid-integrated density on ``n_grid`` nodes across ``extent`` (default:
    ``support_extent``): a spacing of width / 8000, e.g. 0.0004 on gaussians8 whose
    components have std 0.01, so the grid error is far below the sampling noise.
    """
    if dist.dim != 2:
        raise ValueError(f"true conditionals need a 2-D distribution, got dim {dist.dim}")
    box = support_extent(dist) if extent is None else extent
    other = 1 - coord
    t = np.linspace(box[other, 0], box[other, 1], n_grid)
    pts = np.empty((n_grid, 2))
    pts[:, coord], pts[:, other] = value, t
    lp = np.asarray(dist.log_prob(pts), dtype=np.float64)
    if not np.isfinite(lp).any():
        raise ValueError(f"x[{coord}] = {value:.4g} has zero density: no conditional to compare with")
    w = np.exp(lp - lp[np.isfinite(lp)].max())
    w[~np.isfinite(w)] = 0.0
    cdf = np.concatenate([[0.0], np.cumsum((w[1:] + w[:-1]) / 2)])
    cdf /= cdf[-1]
    rng = np.random.default_rng(random_state)
    draws = np.interp(rng.random(n), cdf, t)
    lo, hi = np.interp([0.05, 0.95], cdf, t)
    return draws, (float(lo), float(hi))


def infill_metrics(
    model: Any, dist: Any, n_slices: int = 5, n_per_slice: int = 500, random_state: int | None = 0,
    coords: tuple[int, ...] = (0, 1),
) -> dict[str, Any]:
    """How well ``model.impute`` draws p(x_missing | x_observed) on a 2-D distribution.

    For each observed coordinate in ``coords`` and ``n_slices`` observed values (the
    marginal quantiles (i + 0.5) / n_slices of that coordinate), ``n_per_slice`` rows
    with only that coordinate observed are imputed and compared with exact conditional
    draws of the same size:

    - ``infill_w1``: mean 1-D Wasserstein-1 distance, imputed vs exact draws;
    - ``infill_cov90``: mean share of imputed values inside the exact conditional's
      central 90% interval (ideal 0.90; note a bimodal conditional's interval spans its gap);
    - ``infill_cov90_dev``: mean |share - 0.90| per slice (over- and under-coverage do not cancel);
    - ``*_floor``: the same for a second exact draw (what a perfect imputer scores),
      and ``infill_w1_ratio`` = infill_w1 / its floor.

    ``slices`` lists per slice: coord, value, interval, w1, w1_floor, cov90,
    cov90_floor and the ``imputed`` / ``true`` draws (for the report's infill panel).
    Non-finite imputations make that slice's numbers NaN.
    """
    n_slices, n_per_slice = check_positive_int(n_slices, "n_slices"), check_positive_int(n_per_slice, "n_per_slice")
    if dist.dim != 2:
        raise ValueError(f"infill_metrics needs a 2-D distribution, got dim {dist.dim}")
    seeds = np.random.SeedSequence(random_state).generate_state(4 * len(coords) * n_slices + 1)
    R = np.asarray(dist.sample(20_000, random_state=int(seeds[-1])), dtype=np.float64)
    box = support_extent(dist)
    levels = (np.arange(n_slices) + 0.5) / n_slices
    slices = []
    for ci, c in enumerate(coords):
        for si, value in enumerate(np.quantile(R[:, c], levels)):
            s0, s1, s2 = (int(v) for v in seeds[4 * (ci * n_slices + si) : 4 * (ci * n_slices + si) + 3])
            true, (lo, hi) = true_conditional(dist, c, value, n_per_slice, s0, box)
            again, _ = true_conditional(dist, c, value, n_per_slice, s1, box)
            Q = np.full((n_per_slice, 2), np.nan)
            Q[:, c] = value
            imp = np.asarray(model.impute(Q, random_state=s2), dtype=np.float64)[:, 1 - c]
            ok = bool(np.isfinite(imp).all())
            slices.append({
                "coord": c, "value": float(value), "interval": (lo, hi),
                "w1": float(wasserstein_distance(imp, true)) if ok else float("nan"),
                "w1_floor": float(wasserstein_distance(again, true)),
                "cov90": float(np.mean((imp >= lo) & (imp <= hi))) if ok else float("nan"),
                "cov90_floor": float(np.mean((again >= lo) & (again <= hi))),
                "imputed": imp, "true": true,
            })
    out: dict[str, Any] = {}
    for key in ("w1", "cov90"):
        out[f"infill_{key}"] = float(np.mean([s[key] for s in slices]))
        out[f"infill_{key}_floor"] = float(np.mean([s[f"{key}_floor"] for s in slices]))
    out["infill_cov90_dev"] = float(np.mean([abs(s["cov90"] - 0.9) for s in slices]))
    out["infill_cov90_dev_floor"] = float(np.mean([abs(s["cov90_floor"] - 0.9) for s in slices]))
    out["infill_w1_ratio"] = out["infill_w1"] / out["infill_w1_floor"]
    out["slices"] = slices
    return out
