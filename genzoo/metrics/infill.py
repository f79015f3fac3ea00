"""Infill quality against the TRUE conditionals of a 2-D built-in distribution, slice by slice.

For a 2-D distribution with an exact density, p(x_missing | x_obs) is proportional
to p(x_obs, x_missing) along a line, so exact conditional draws come from
inverse-CDF sampling on a fine 1-D grid of the density. The model's ``impute`` draws
are compared with them slice by slice, beside the floor of a second exact draw.

A model can be right on the modes and wrong everywhere else, so the slices go where
imputation is hard as well as where the data are: the marginal quantiles of the observed
coordinate (the modes), its tails (1% and 99%), the deepest dip of its marginal density
between modes, and the smallest mode (the lowest local peak of the marginal). Each slice's
W1 is divided by its floor (the W1 between two exact draws of the same size, averaged over
pairs), and the worst ratio is reported beside the mean: one bad slice is a bad imputer.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import wasserstein_distance

from ._checks import check_positive_int

N_GRID = 8001  # grid nodes along the missing coordinate
#: pairs of exact draws whose mean W1 is a slice's floor
N_FLOOR_PAIRS = 8
#: marginal quantiles of the tail slices
TAILS = (0.01, 0.99)


def support_extent(dist: Any, n: int = 20_000, pad: float = 0.25, random_state: int = 777) -> np.ndarray:
    """(d, 2) box holding the support: range of ``n`` real draws, padded by ``pad`` of its span."""
    R = np.asarray(dist.sample(n, random_state=random_state), dtype=np.float64)
    lo, hi = R.min(0), R.max(0)
    span = np.maximum(hi - lo, 1e-9)
    return np.stack([lo - pad * span, hi + pad * span], 1)


def _conditional_cdf(dist: Any, coord: int, value: float, box: np.ndarray,
                     n_grid: int) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, CDF) of the other coordinate given ``x[coord] = value``: trapezoid rule on the exact density."""
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
    return t, cdf / cdf[-1]


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
    t, cdf = _conditional_cdf(dist, coord, value, box, n_grid)
    draws = np.interp(np.random.default_rng(random_state).random(n), cdf, t)
    lo, hi = np.interp([0.05, 0.95], cdf, t)
    return draws, (float(lo), float(hi))


def marginal_density(dist: Any, coord: int, extent: np.ndarray | None = None, n_grid: int = 601,
                     n_other: int = 1201) -> tuple[np.ndarray, np.ndarray]:
    """The exact marginal density of ``x[coord]`` of a 2-D ``dist`` on a grid: (nodes, density).

    The joint density integrated over the other coordinate by the trapezoid rule on ``n_other``
    nodes across ``extent``; used to find the rare slices (dips between modes, small modes).
    """
    box = support_extent(dist) if extent is None else extent
    other = 1 - coord
    x = np.linspace(box[coord, 0], box[coord, 1], n_grid)
    t = np.linspace(box[other, 0], box[other, 1], n_other)
    pts = np.empty((n_grid * n_other, 2))
    pts[:, coord], pts[:, other] = np.repeat(x, n_other), np.tile(t, n_grid)
    p = np.exp(np.asarray(dist.log_prob(pts), dtype=np.float64)).reshape(n_grid, n_other)
    return x, np.trapezoid(np.nan_to_num(p), t, axis=1)


def rare_slices(dist: Any, coord: int, R: np.ndarray, extent: np.ndarray | None = None) -> list[tuple[str, float]]:
    """(kind, value) of the slices through rare regions of ``x[coord]``: tails, between modes, smallest mode.

    ``R``: real draws (their quantiles give the tails). 'between': the deepest local minimum of
    the marginal density between its 5% and 95% quantiles whose density is below half of both
    neighbouring peaks (none if the marginal is unimodal); 'small mode': the lowest local peak of
    the marginal if it has more than one. Slices whose conditional has no density are skipped.
    """
    out = [("tail", float(np.quantile(R[:, coord], q))) for q in TAILS]
    x, p = marginal_density(dist, coord, extent)
    lo, hi = np.quantile(R[:, coord], [0.05, 0.95])
    inner = (x > lo) & (x < hi)
    # local extrema of a lightly smoothed marginal (a flat top has no extremum of interest)
    ps = np.convolve(p, np.ones(5) / 5, mode="same")
    peaks = np.flatnonzero((ps[1:-1] > ps[:-2]) & (ps[1:-1] >= ps[2:])) + 1
    dips = np.flatnonzero((ps[1:-1] < ps[:-2]) & (ps[1:-1] <= ps[2:]) & inner[1:-1]) + 1
    deep = []
    for i in dips:
        left, right = peaks[peaks < i], peaks[peaks > i]
        if len(left) and len(right) and ps[i] < 0.5 * min(ps[left[-1]], ps[right[0]]):
            deep.append(i)
    if deep:
        i = min(deep, key=lambda k: ps[k])
        out.append(("between", float(x[i])))
    # real peaks: at least 5% of the highest, and standing 20% above the lowest point towards
    # the neighbouring peaks on both sides (not ripples of a flat or tail region)
    real = []
    for a, i in enumerate(peaks):
        left = ps[(peaks[a - 1] if a else 0):i + 1].min()
        right = ps[i:(peaks[a + 1] if a + 1 < len(peaks) else len(ps) - 1) + 1].min()
        if ps[i] > 0.05 * ps.max() and ps[i] - max(left, right) > 0.2 * ps[i]:
            real.append(i)
    if len(real) > 1:
        out.append(("small mode", float(x[min(real, key=lambda k: ps[k])])))
    keep = []
    for kind, v in out:
        try:
            true_conditional(dist, coord, v, 2, 0, extent, n_grid=2001)
        except ValueError:  # no density on this line (e.g. a checkerboard gap)
            continue
        keep.append((kind, v))
    return keep


def infill_metrics(
    model: Any, dist: Any, n_slices: int = 5, n_per_slice: int = 500, random_state: int | None = 0,
    coords: tuple[int, ...] = (0, 1), rare: bool = True, impute_options: dict | None = None,
) -> dict[str, Any]:
    """How well ``model.impute`` draws p(x_missing | x_observed) on a 2-D distribution, slice by slice.

    For each observed coordinate in ``coords``: ``n_slices`` observed values at the marginal
    quantiles (i + 0.5) / n_slices of that coordinate ('quantile' slices, the modes) and, with
    ``rare``, the slices of :func:`rare_slices` ('tail', 'between', 'small mode'). Each slice
    imputes ``n_per_slice`` rows with only that coordinate observed (``impute_options`` are
    passed to ``impute``, e.g. ``{"method": "repaint"}``) and compares them with exact
    conditional draws of the same size:

    - ``w1``: mean 1-D Wasserstein-1 distance to two exact draws; ``w1_floor``: the mean W1
      between ``N_FLOOR_PAIRS`` pairs of exact draws (what a perfect imputer scores on average);
      ``ratio`` = w1 / floor;
    - ``cov90``: share of imputed values inside the exact conditional's central 90% interval
      (ideal 0.90; a bimodal conditional's interval spans its gap).

    Returned scalars: ``infill_w1`` / ``infill_w1_floor`` / ``infill_w1_ratio`` (means over the
    quantile slices, as before), ``infill_w1_ratio_worst`` (the largest ratio over every slice)
    with ``infill_worst_slice`` (its description) and ``infill_w1_ratio_worst_floor`` (the worst
    ratio an exact imputer scores on the same slices: a third exact draw in place of the
    imputation), ``infill_w1_ratio_rare`` (mean over the rare
    slices), ``infill_cov90`` and ``infill_cov90_dev`` (mean |share - 0.90| per slice) and their
    floors. ``slices`` lists per slice: kind, coord, value, interval, w1, w1_floor, ratio,
    ratio_exact, cov90,
    cov90_floor and the ``imputed`` / ``true`` draws (for the report's infill panel).
    Non-finite imputations make that slice's numbers NaN.
    """
    n_slices, n_per_slice = check_positive_int(n_slices, "n_slices"), check_positive_int(n_per_slice, "n_per_slice")
    if dist.dim != 2:
        raise ValueError(f"infill_metrics needs a 2-D distribution, got dim {dist.dim}")
    opts = dict(impute_options or {})
    ss = np.random.SeedSequence(random_state)
    R = np.asarray(dist.sample(20_000, random_state=int(ss.generate_state(1)[0])), dtype=np.float64)
    box = support_extent(dist)
    levels = (np.arange(n_slices) + 0.5) / n_slices
    plan = []
    for c in coords:
        plan += [("quantile", c, float(v)) for v in np.quantile(R[:, c], levels)]
        if rare:
            plan += [(kind, c, v) for kind, v in rare_slices(dist, c, R, box)]
    seeds = ss.spawn(len(plan))
    slices = []
    for (kind, c, value), sq in zip(plan, seeds):
        rng = np.random.default_rng(sq)
        t, cdf = _conditional_cdf(dist, c, value, box, N_GRID)
        lo, hi = np.interp([0.05, 0.95], cdf, t)
        exact = [np.interp(rng.random(n_per_slice), cdf, t) for _ in range(2 * N_FLOOR_PAIRS + 3)]
        true = exact[0]
        Q = np.full((n_per_slice, 2), np.nan)
        Q[:, c] = value
        imp = np.asarray(model.impute(Q, random_state=int(rng.integers(2**62)), **opts), dtype=np.float64)[:, 1 - c]
        ok = bool(np.isfinite(imp).all())
        # the floor: mean W1 between independent pairs of exact draws (several pairs: a steadier denominator)
        floor = float(np.mean([wasserstein_distance(exact[3 + 2 * i], exact[4 + 2 * i]) for i in range(N_FLOOR_PAIRS)]))
        w1 = float(np.mean([wasserstein_distance(imp, exact[0]), wasserstein_distance(imp, exact[1])])) if ok \
            else float("nan")
        # what an exact imputer scores on this slice (a third exact draw in place of the imputation)
        ex = float(np.mean([wasserstein_distance(exact[2], exact[0]), wasserstein_distance(exact[2], exact[1])]))
        slices.append({
            "kind": kind, "coord": c, "value": value, "interval": (float(lo), float(hi)),
            "w1": w1, "w1_floor": floor, "ratio": w1 / max(floor, 1e-12), "ratio_exact": ex / max(floor, 1e-12),
            "cov90": float(np.mean((imp >= lo) & (imp <= hi))) if ok else float("nan"),
            "cov90_floor": float(np.mean((exact[2] >= lo) & (exact[2] <= hi))),
            "imputed": imp, "true": true,
        })
    modes = [s for s in slices if s["kind"] == "quantile"]
    rares = [s for s in slices if s["kind"] != "quantile"]
    out: dict[str, Any] = {}
    for key in ("w1", "cov90"):
        out[f"infill_{key}"] = float(np.mean([s[key] for s in modes]))
        out[f"infill_{key}_floor"] = float(np.mean([s[f"{key}_floor"] for s in modes]))
    out["infill_cov90_dev"] = float(np.mean([abs(s["cov90"] - 0.9) for s in slices]))
    out["infill_cov90_dev_floor"] = float(np.mean([abs(s["cov90_floor"] - 0.9) for s in slices]))
    out["infill_w1_ratio"] = out["infill_w1"] / out["infill_w1_floor"]
    ratios = np.array([s["ratio"] for s in slices])
    worst = int(np.nanargmax(ratios)) if np.isfinite(ratios).any() else 0
    out["infill_w1_ratio_worst"] = float(ratios[worst]) if np.isfinite(ratios).all() else float("nan")
    w = slices[worst]
    out["infill_w1_ratio_worst_floor"] = float(max(s["ratio_exact"] for s in slices))
    out["infill_worst_slice"] = f"{w['kind']}: x{1 - w['coord']} | x{w['coord']}={w['value']:.3g}"
    out["infill_w1_ratio_rare"] = float(np.mean([s["ratio"] for s in rares])) if rares else float("nan")
    out["slices"] = slices
    return out


def slice_table(slices: list[dict[str, Any]]) -> str:
    """The per-slice numbers of :func:`infill_metrics` as aligned text (kind, value, W1, floor, ratio)."""
    lines = [f"{'slice':<12}{'observed':>14}{'W1':>10}{'floor':>10}{'W1/floor':>10}"]
    for s in slices:
        obs = f"x{s['coord']}={s['value']:.3f}"
        lines.append(f"{s['kind']:<12}{obs:>14}{s['w1']:>10.4f}"
                     f"{s['w1_floor']:>10.4f}{s['ratio']:>10.2f}")
    return "\n".join(lines)
