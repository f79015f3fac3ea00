"""Curve-plus-noise distributions: `moons`, `spirals`, `swissroll`.

Each class k is a curve c_k(t) with a parameter density q_k(t), blurred by isotropic
Gaussian noise of standard deviation s:

    p(x | k) = int q_k(t) N(x; c_k(t), s^2 I) dt.

The integral has no closed form, so it is done by quadrature along the curve:
composite Gauss-Legendre (8 nodes per panel, panels 3 s of arc long, the end panels
halved 4 times, because a point beyond an end sees a steep one-sided integrand).
Against brute-force quadrature the error is ~1e-6 nats where the density is not
negligible and < 1e-4 nats anywhere in and well beyond the `bounds()` box (tested).

Evaluation is vectorised and culled: query points are grouped into square tiles,
and for each tile only the panels that can contribute more than e^-25 of the
largest term are summed (a rigorous bound from panel discs and the tile's box), so
the cost per point is the nodes near it, not the whole curve. Large inputs are
split over threads (numpy releases the GIL in the heavy loops).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import LOG_2PI, Box, Distribution, gauss_legendre

_N_GAUSS = 8  # Gauss-Legendre nodes per panel
_PANEL_STDS = 3.0  # panel arc length, in noise standard deviations
_END_LEVELS = 4  # geometric refinement of the end panels (halving each time)
_CULL = 25.0  # drop panels whose best term is e^-25 below a sure lower bound of the largest
_PARALLEL_MIN = 20_000  # evaluate tiles in threads (numpy releases the GIL) from this many points
_TILE_STDS = 4.0  # tile side, in noise standard deviations (grown when points are sparse)
_MAX_BLOCK = 1 << 18  # points x nodes per evaluated block (2 MiB of float64)


@dataclass(frozen=True)
class Curve:
    """A parametrised curve with a density on its parameter.

    point(t) -> (m, 2) positions; log_density(t) -> log q(t) on [t_min, t_max];
    inverse_cdf(u) -> the parameter t whose CDF under q is u (for sampling).
    """

    point: Callable[[np.ndarray], np.ndarray]
    t_min: float
    t_max: float
    log_density: Callable[[np.ndarray], np.ndarray]
    inverse_cdf: Callable[[np.ndarray], np.ndarray]


def uniform_parameter(t_min: float, t_max: float) -> dict[str, Any]:
    """Curve keywords for t ~ Uniform(t_min, t_max)."""
    width = t_max - t_min
    return {
        "t_min": t_min,
        "t_max": t_max,
        "log_density": lambda t: np.full(np.shape(t), -np.log(width)),
        "inverse_cdf": lambda u: t_min + width * u,
    }


def linear_parameter(t_max: float) -> dict[str, Any]:
    """Curve keywords for q(t) = 2 t / t_max^2 on [0, t_max] (t = t_max sqrt(U)): uniform along a spiral."""
    return {
        "t_min": 0.0,
        "t_max": t_max,
        "log_density": lambda t: np.log(2 * t / t_max**2),
        "inverse_cdf": lambda u: t_max * np.sqrt(u),
    }


class CurveKernel:
    """Quadrature rule for log int q(t) N(x; c(t), s^2 I) dt along one curve, with culled evaluation."""

    def __init__(self, curve: Curve, std: float) -> None:
        self.std = float(std)
        # panel edges: equal arc length, then the first and last panels split geometrically
        tt = np.linspace(curve.t_min, curve.t_max, 20001)
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve.point(tt), axis=0), axis=1))])
        n_panels = max(1, int(np.ceil(arc[-1] / (_PANEL_STDS * self.std))))
        edges = np.interp(np.linspace(0.0, arc[-1], n_panels + 1), arc, tt)
        fractions = 2.0 ** -np.arange(_END_LEVELS, 0, -1)
        edges = np.unique(
            np.concatenate(
                [edges, edges[0] + (edges[1] - edges[0]) * fractions, edges[-1] - (edges[-1] - edges[-2]) * fractions]
            )
        )
        t, w = gauss_legendre(edges, _N_GAUSS)
        nodes = curve.point(t)  # (M, 2)
        with np.errstate(divide="ignore"):
            log_w = np.log(w) + curve.log_density(t)
        var = self.std**2
        # exponent of node j at x: log_w_j - |x - c_j|^2 / 2 var = x.c_j / var + bias_j - |x|^2 / 2 var
        self._slope = nodes / var  # (M, 2)
        self._bias = log_w - (nodes**2).sum(axis=1) / (2 * var)  # (M,)
        self._log_norm = LOG_2PI + np.log(var)
        # per-panel bounding discs and weight range, for culling
        panels = nodes.reshape(-1, _N_GAUSS, 2)
        self._centre = 0.5 * (panels.min(axis=1) + panels.max(axis=1))  # (P, 2)
        self._radius = np.sqrt(((panels - self._centre[:, None, :]) ** 2).sum(-1)).max(axis=1)
        panel_log_w = log_w.reshape(-1, _N_GAUSS)
        self._log_w_max = panel_log_w.max(axis=1)
        self._log_w_min = panel_log_w.min(axis=1)
        self.n_nodes = len(t)

    def log_prob(self, X: np.ndarray) -> np.ndarray:
        """log p(x | curve) for finite rows X (n, 2)."""
        out = np.empty(len(X))

        def run(idx: np.ndarray) -> None:
            pts = X[idx]
            out[idx] = self._sum(pts, self._nodes_near(pts.min(axis=0), pts.max(axis=0)))

        tiles = _tiles(X, _TILE_STDS * self.std)
        workers = min(4, _cpu_count())
        if len(X) < _PARALLEL_MIN or workers == 1 or len(tiles) == 1:
            for idx in tiles:
                run(idx)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(run, tiles))  # tiles are disjoint, so the writes into `out` never overlap
        return out

    def _nodes_near(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Indices of the nodes in panels that can matter for some point in the box [lo, hi]."""
        c, r = self._centre, self._radius
        gap = np.maximum(np.maximum(lo - c, c - hi), 0.0)
        near = np.maximum(np.hypot(gap[:, 0], gap[:, 1]) - r, 0.0)  # <= distance of any node to any point
        span = np.maximum(np.abs(c - lo), np.abs(c - hi))
        far = np.hypot(span[:, 0], span[:, 1]) + r  # >= distance of any node to any point
        two_var = 2 * self.std**2
        surely = np.max(self._log_w_min - far**2 / two_var)  # every point has a term at least this big
        keep = np.flatnonzero(self._log_w_max - near**2 / two_var >= surely - _CULL)
        return (keep[:, None] * _N_GAUSS + np.arange(_N_GAUSS)).ravel()

    def _sum(self, pts: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """log sum_j exp(log_w_j) N(x; c_j, s^2 I) over the given nodes, in blocks of points."""
        slope, bias = self._slope[nodes], self._bias[nodes, None]  # (m, 2), (m, 1)
        out = np.empty(len(pts))
        step = max(1, _MAX_BLOCK // max(1, len(nodes)))
        for start in range(0, len(pts), step):
            x_t = np.ascontiguousarray(pts[start : start + step].T)  # (2, b)
            e = slope @ x_t  # (m, b); reductions run over axis 0, which numpy vectorises well
            e += bias
            m = e.max(axis=0)
            e -= m
            np.maximum(e, -700.0, out=e)  # no subnormals from exp (slow); e^-700 is nothing next to 1
            np.exp(e, out=e)
            out[start : start + step] = np.log(e.sum(axis=0)) + m - (x_t**2).sum(axis=0) / (2 * self.std**2)
        return out - self._log_norm


def _cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _tiles(X: np.ndarray, size: float, min_points: int = 32) -> list[np.ndarray]:
    """Group row indices of X by square tiles of side `size`, doubled until tiles average >= `min_points` rows."""
    n = len(X)
    if n == 0:
        return []
    scaled = np.clip(X / size, -1e9, 1e9)
    while True:
        cell = np.floor(scaled).astype(np.int64)
        cell -= cell.min(axis=0)
        key = cell[:, 0] * (int(cell[:, 1].max()) + 1) + cell[:, 1]
        order = np.argsort(key, kind="stable")
        starts = np.flatnonzero(np.diff(key[order])) + 1
        if len(starts) + 1 <= max(1, n // min_points):
            return np.split(order, starts)
        scaled = scaled / 2


class CurveMixture(Distribution):
    """Equal-weight mixture of curve-plus-noise classes, density by quadrature (see module docstring)."""

    labelled: bool = True

    def __init__(self, curves: list[Curve], noise: float) -> None:
        super().__init__()
        if not noise > 0:
            raise ValueError(f"noise must be > 0, got {noise!r}")
        self.noise = float(noise)
        self._curves = curves
        self._kernels = [CurveKernel(c, self.noise) for c in curves]
        self.n_classes = len(curves) if self.labelled else None
        self._grid_step = self.noise / 2
        fine = np.concatenate([c.point(np.linspace(c.t_min, c.t_max, 4001)) for c in curves])
        self._core = (fine.min(axis=0), fine.max(axis=0))

    def _params(self) -> dict[str, Any]:
        return {"noise": self.noise}

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        k = len(self._curves)
        y = rng.integers(0, k, n)
        u = rng.uniform(0.0, 1.0, n)  # drawn for every point so the stream does not depend on y's counts
        X = np.empty((n, 2))
        for j, curve in enumerate(self._curves):
            sel = y == j
            if sel.any():
                X[sel] = curve.point(curve.inverse_cdf(u[sel]))
        return X + self.noise * rng.standard_normal((n, 2)), y

    def _class_log_prob(self, X: np.ndarray) -> np.ndarray:
        k = len(self._kernels)
        return np.stack([kern.log_prob(X) for kern in self._kernels]).T - np.log(k)  # (n, K), F-ordered

    def _log_prob(self, X: np.ndarray) -> np.ndarray:
        if len(self._kernels) == 1:
            return self._kernels[0].log_prob(X)
        return super()._log_prob(X)

    def _box(self) -> Box:
        lo, hi = self._core
        m = 6 * self.noise
        return (lo[0] - m, hi[0] + m), (lo[1] - m, hi[1] + m)


class Moons(CurveMixture):
    """Two interleaved half-circles (scikit-learn `make_moons` geometry) plus Gaussian noise; label = moon.

    Moon 0: centre (0, 0), radius 1, angle in [0, pi]. Moon 1: centre (1, 0.5), radius 1,
    angle in [pi, 2 pi]. Angle uniform (make_moons spaces it evenly instead), noise std 0.1.
    """

    name = "moons"

    def __init__(self, noise: float = 0.1) -> None:
        upper = Curve(point=lambda t: np.column_stack([np.cos(t), np.sin(t)]), **uniform_parameter(0.0, np.pi))
        lower = Curve(
            point=lambda t: np.column_stack([1.0 + np.cos(t), 0.5 + np.sin(t)]), **uniform_parameter(np.pi, 2 * np.pi)
        )
        super().__init__([upper, lower], noise)

    def _describe(self) -> str:
        return (
            "two moons (make_moons geometry: radius-1 arcs centred (0,0), angle [0,pi] = label 0, and "
            f"(1,0.5), angle [pi,2pi] = label 1; uniform angle) + Gaussian noise std {self.noise:g}"
        )


class Spirals(CurveMixture):
    """Two interleaved Archimedean spiral arms plus Gaussian noise; label = arm.

    Arm k: c(t) = (t / 3) (cos(t + k pi), sin(t + k pi)), t in [0, 3 pi] with q(t) = 2 t / (3 pi)^2
    (t = 3 pi sqrt(U), as in FFJORD's '2spirals', which spreads points about evenly along the
    arm); noise std 0.1. Turns of the two arms are pi/3 ~ 1.05 apart.
    """

    name = "spirals"

    def __init__(self, noise: float = 0.1, turns: float = 1.5, scale: float = 1 / 3) -> None:
        self.turns, self.scale = float(turns), float(scale)
        t_max = 2 * np.pi * self.turns
        arms = []
        for k in range(2):
            offset = k * np.pi
            arms.append(
                Curve(
                    point=lambda t, o=offset: self.scale * t[:, None] * np.column_stack([np.cos(t + o), np.sin(t + o)]),
                    **linear_parameter(t_max),
                )
            )
        super().__init__(arms, noise)

    def _describe(self) -> str:
        return (
            f"two interleaved spirals: arm k at {self.scale:.3g}*t*(cos(t+k*pi), sin(t+k*pi)), "
            f"t = {2 * self.turns:g}*pi*sqrt(U); label = arm; Gaussian noise std {self.noise:g}"
        )

    def _params(self) -> dict[str, Any]:
        return {"noise": self.noise, "turns": self.turns, "scale": self.scale}


class Swissroll(CurveMixture):
    """2-D swiss roll: c(t) = t (cos t, sin t) / 5, t ~ Uniform(1.5 pi, 4.5 pi), Gaussian noise std 0.2; no labels.

    This is scikit-learn's `make_swiss_roll(noise=1.0)` projected on (x, z) and divided by 5
    (the FFJORD toy convention).
    """

    name = "swissroll"
    labelled = False

    def __init__(self, noise: float = 0.2, scale: float = 0.2) -> None:
        self.scale = float(scale)
        roll = Curve(
            point=lambda t: self.scale * t[:, None] * np.column_stack([np.cos(t), np.sin(t)]),
            **uniform_parameter(1.5 * np.pi, 4.5 * np.pi),
        )
        super().__init__([roll], noise)

    def _describe(self) -> str:
        return (
            f"swiss roll: {self.scale:g}*t*(cos t, sin t), t ~ Uniform(1.5*pi, 4.5*pi), "
            f"Gaussian noise std {self.noise:g}; no labels"
        )

    def _params(self) -> dict[str, Any]:
        return {"noise": self.noise, "scale": self.scale}
