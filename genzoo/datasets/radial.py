"""Radially symmetric distributions with closed-form densities: `ring` and `circles`.

Both densities depend on x only through r = |x|, so their entropies are 1-D
integrals over r, done by Gauss-Legendre quadrature to ~1e-12.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import i0e, log_ndtr

from .base import LOG_2PI, Box, Distribution, gauss_legendre, logsumexp


def radial_entropy(log_f: Callable[[np.ndarray], np.ndarray], r_max: float, step: float) -> float:
    """-integral of p log p over the plane for a density p(x) = f(|x|): -int_0^r_max 2 pi r f log f dr.

    Composite 16-node Gauss-Legendre with panels `step` wide; exact to ~1e-12 for smooth f
    whose features are a few `step` wide.
    """
    edges = np.linspace(0.0, r_max, max(2, int(np.ceil(r_max / step))) + 1)
    r, w = gauss_legendre(edges, 16)
    lf = log_f(r)
    f = np.exp(lf)
    return float(-np.sum(w * 2 * np.pi * r * np.where(f > 0, f * lf, 0.0)))


class Ring(Distribution):
    """Uniform angle, radius ~ Normal(radius, std) truncated to r > 0 (no labels).

    Density p(x) = N(r; radius, std^2) / (Phi(radius / std) * 2 pi r) with r = |x|: the radial
    law divided by the circumference; Phi(radius / std) is the truncation normaliser
    (1 - 7.6e-24 for the defaults). At the single point x = 0 the density is taken as 0.
    """

    name = "ring"

    def _describe(self) -> str:
        return f"ring: uniform angle, radius ~ Normal({self.radius:g}, {self.std:g}) truncated to r > 0; no labels"

    def __init__(self, radius: float = 1.0, std: float = 0.1) -> None:
        super().__init__()
        if not (radius > 0 and std > 0):
            raise ValueError(f"radius and std must be > 0, got {radius!r}, {std!r}")
        self.radius = float(radius)
        self.std = float(std)
        self._log_norm = float(log_ndtr(self.radius / self.std))  # log P(r > 0) before truncation

    def _params(self) -> dict[str, Any]:
        return {"radius": self.radius, "std": self.std}

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, None]:
        theta = rng.uniform(0.0, 2 * np.pi, n)
        r = self.radius + self.std * rng.standard_normal(n)
        bad = r <= 0
        while bad.any():  # truncation by rejection; practically never loops for the defaults
            r[bad] = self.radius + self.std * rng.standard_normal(int(bad.sum()))
            bad = r <= 0
        return np.column_stack([r * np.cos(theta), r * np.sin(theta)]), None

    def _log_f(self, r: np.ndarray) -> np.ndarray:
        """log p(x) as a function of r = |x|."""
        z = (r - self.radius) / self.std
        with np.errstate(divide="ignore"):
            return -0.5 * z**2 - 0.5 * LOG_2PI - np.log(self.std) - self._log_norm - LOG_2PI - np.log(r)

    def _log_prob(self, X: np.ndarray) -> np.ndarray:
        r = np.hypot(X[:, 0], X[:, 1])
        return np.where(r > 0, self._log_f(np.maximum(r, 1e-300)), -np.inf)

    def _box(self) -> Box:
        b = self.radius + 6 * self.std
        return (-b, b), (-b, b)

    def _entropy(self) -> tuple[float, float]:
        return radial_entropy(self._log_f, self.radius + 12 * self.std, self.std / 4), 0.0


class Circles(Distribution):
    """Two concentric circles (radius 1 and 0.5, equal weight) plus isotropic Gaussian noise; label = circle.

    p(x | circle k) = (1/2pi) int N(x; r_k (cos t, sin t), s^2 I) dt
                    = exp(-(|x| - r_k)^2 / 2 s^2) * i0e(|x| r_k / s^2) / (2 pi s^2),
    with i0e the exponentially scaled Bessel function I0 (exact, and stable for large arguments).
    """

    name = "circles"

    def _describe(self) -> str:
        radii = ", ".join(f"{r:g}" for r in self.radii)
        return (
            f"concentric circles of radius {radii} (label = circle, in that order), equal weight, "
            f"uniform angle, Gaussian noise std {self.noise:g}"
        )

    n_classes = 2

    def __init__(self, radii: tuple[float, float] = (1.0, 0.5), noise: float = 0.05) -> None:
        super().__init__()
        self.radii = np.asarray(radii, dtype=np.float64)
        if self.radii.ndim != 1 or (self.radii <= 0).any() or not noise > 0:
            raise ValueError("radii must be positive and noise > 0")
        self.noise = float(noise)
        self.n_classes = len(self.radii)

    def _params(self) -> dict[str, Any]:
        return {"radii": tuple(float(r) for r in self.radii), "noise": self.noise}

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, self.n_classes, n)
        theta = rng.uniform(0.0, 2 * np.pi, n)
        r = self.radii[y]
        X = np.column_stack([r * np.cos(theta), r * np.sin(theta)])
        return X + self.noise * rng.standard_normal((n, 2)), y

    def _class_log_f(self, rho: np.ndarray) -> np.ndarray:
        """log p(x, y=k) as a function of rho = |x|, shape (n, K)."""
        var = self.noise**2
        rk = self.radii[None, :]
        rho = rho[:, None]
        return (
            -np.log(self.n_classes) - (rho - rk) ** 2 / (2 * var) + np.log(i0e(rho * rk / var)) - LOG_2PI - np.log(var)
        )

    def _class_log_prob(self, X: np.ndarray) -> np.ndarray:
        return self._class_log_f(np.hypot(X[:, 0], X[:, 1]))

    def _box(self) -> Box:
        b = float(self.radii.max()) + 6 * self.noise
        return (-b, b), (-b, b)

    def _entropy(self) -> tuple[float, float]:
        r_max = float(self.radii.max()) + 12 * self.noise
        return radial_entropy(lambda r: logsumexp(self._class_log_f(r), axis=1), r_max, self.noise / 4), 0.0
