"""Isotropic Gaussian mixtures: the mode-collapse benchmarks of PacGAN / VEEGAN.

`gaussians8`: 8 modes on the unit circle, std 0.01; `grid25`: 25 modes on
{-4, -2, 0, 2, 4}^2, std 0.05 (see shared/REFERENCES.md). Label = component.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LOG_2PI, Box, Distribution


class GaussianMixture2D(Distribution):
    """Mixture of isotropic Gaussians with a common standard deviation; label = component index."""

    name = "gaussian_mixture"

    def _describe(self) -> str:
        return f"mixture of {self.n_classes} isotropic Gaussians, std {self.std:g}; label = component"

    def __init__(self, centers: np.ndarray, std: float, weights: np.ndarray | None = None) -> None:
        super().__init__()
        self.centers = np.asarray(centers, dtype=np.float64)
        k = len(self.centers)
        self.weights = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=np.float64)
        if self.centers.shape != (k, 2) or self.weights.shape != (k,) or not np.isclose(self.weights.sum(), 1):
            raise ValueError("centers must be (K, 2) and weights (K,) summing to 1")
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std!r}")
        self.std = float(std)
        self.n_classes = k
        self._grid_step = self.std / 2

    def _params(self) -> dict[str, Any]:
        return {"n_components": self.n_classes, "std": self.std}

    @property
    def class_log_prior(self) -> np.ndarray:
        return np.log(self.weights)

    def modes(self) -> dict[str, Any]:
        return {"centers": self.centers.copy(), "std": self.std, "weights": self.weights.copy()}

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = rng.choice(self.n_classes, size=n, p=self.weights)
        return self.centers[y] + self.std * rng.standard_normal((n, 2)), y

    def _class_log_prob(self, X: np.ndarray) -> np.ndarray:
        # -|x - c|^2 / 2 var expanded, so the work is one (K, 2) x (2, n) product; (K, n) layout
        # keeps the per-point reductions over components contiguous
        var = self.std**2
        e = (self.centers / var) @ np.ascontiguousarray(X.T)  # (K, n)
        e += (np.log(self.weights) - (self.centers**2).sum(axis=1) / (2 * var))[:, None]
        e -= (X**2).sum(axis=1) / (2 * var) + LOG_2PI + np.log(var)
        return e.T

    def _box(self) -> Box:
        lo = self.centers.min(axis=0) - 6 * self.std
        hi = self.centers.max(axis=0) + 6 * self.std
        return (lo[0], hi[0]), (lo[1], hi[1])

    def _entropy(self) -> tuple[float, float]:
        """Closed form H(y) + log(2 pi e std^2) when the components are far apart, else grid quadrature.

        With every pair of centres at least 20 std apart, H(y | x) < 1e-20 and the closed form is exact.
        """
        diff = self.centers[:, None, :] - self.centers[None, :, :]
        sep = np.sqrt((diff**2).sum(-1))[~np.eye(self.n_classes, dtype=bool)]
        if sep.size == 0 or sep.min() >= 20 * self.std:
            h_y = -float(np.sum(self.weights * np.log(self.weights)))
            return h_y + float(np.log(2 * np.pi * np.e * self.std**2)), 0.0
        return super()._entropy()


class Gaussians8(GaussianMixture2D):
    """8 equal-weight Gaussians at (cos 2 pi i/8, sin 2 pi i/8), std 0.01 (PacGAN 'ring' of modes)."""

    name = "gaussians8"

    def _describe(self) -> str:
        return (
            f"8 equal-weight Gaussians at {self.radius:g}*(cos 2*pi*i/8, sin 2*pi*i/8), std {self.std:g} "
            "(PacGAN/VEEGAN protocol); label = mode i"
        )

    def __init__(self, radius: float = 1.0, std: float = 0.01) -> None:
        angles = 2 * np.pi * np.arange(8) / 8
        super().__init__(radius * np.column_stack([np.cos(angles), np.sin(angles)]), std)
        self.radius = float(radius)

    def _params(self) -> dict[str, Any]:
        return {"radius": self.radius, "std": self.std}


class Grid25(GaussianMixture2D):
    """25 equal-weight Gaussians on {-4, -2, 0, 2, 4}^2, std 0.05 (PacGAN / VEEGAN grid)."""

    name = "grid25"

    def _describe(self) -> str:
        ticks = ",".join(f"{t:g}" for t in self.spacing * np.arange(-2, 3))
        return (
            f"25 equal-weight Gaussians on the grid {{{ticks}}}^2 (spacing {self.spacing:g}), std {self.std:g} "
            "(PacGAN/VEEGAN protocol); label = mode, row by row from the bottom-left"
        )

    def __init__(self, spacing: float = 2.0, std: float = 0.05) -> None:
        ticks = spacing * np.arange(-2, 3)
        gy, gx = np.meshgrid(ticks, ticks, indexing="ij")
        super().__init__(np.column_stack([gx.ravel(), gy.ravel()]), std)
        self.spacing = float(spacing)

    def _params(self) -> dict[str, Any]:
        return {"spacing": self.spacing, "std": self.std}
