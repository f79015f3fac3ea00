"""Distributions whose density is exact by construction: `pinwheel` and `checkerboard`."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LOG_2PI, Box, Distribution, grid_points


class Pinwheel(Distribution):
    """The pinwheel of Johnson et al. (2016), with the twist made volume-preserving so the density is exact.

    Arm k: u ~ Normal((1, 0), diag(radial_std^2, tangential_std^2)), then
    x = scale * R(2 pi k / n_arms + rate * exp(|u|)) u, R a counter-clockwise rotation.

    The classic construction twists by rate * exp(u_1) (first coordinate); that map folds
    over itself for |u| > ~1.7 (about 0.8% of the mass), so it has no simple density. Twisting by a function of
    |u| instead is a rotation on each circle |u| = const, hence invertible with Jacobian
    determinant 1; since u_1 ~= |u| for this narrow arm the shapes are indistinguishable.
    So p(x | k) = N(u; mu, Sigma) / scale^2 with u = R(-theta_k(|x| / scale)) x / scale.
    """

    name = "pinwheel"

    def _describe(self) -> str:
        k = self.n_classes
        return (
            f"pinwheel: {k} arms, u ~ N((1,0), diag({self.radial_std:g}^2, {self.tangential_std:g}^2)) twisted by "
            f"angle 2*pi*k/{k} + {self.rate:g}*exp(|u|), scaled by {self.scale:g}; label = arm"
        )

    def __init__(
        self,
        n_arms: int = 5,
        radial_std: float = 0.3,
        tangential_std: float = 0.1,
        rate: float = 0.25,
        scale: float = 2.0,
    ) -> None:
        super().__init__()
        if n_arms < 1 or not (radial_std > 0 and tangential_std > 0 and scale > 0):
            raise ValueError("n_arms must be >= 1 and the stds and scale > 0")
        self.n_classes = int(n_arms)
        self.radial_std = float(radial_std)
        self.tangential_std = float(tangential_std)
        self.rate = float(rate)
        self.scale = float(scale)
        self._offsets = 2 * np.pi * np.arange(self.n_classes) / self.n_classes
        self._grid_step = self.scale * self.tangential_std / 4

    def _params(self) -> dict[str, Any]:
        return {
            "n_arms": self.n_classes,
            "radial_std": self.radial_std,
            "tangential_std": self.tangential_std,
            "rate": self.rate,
            "scale": self.scale,
        }

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, self.n_classes, n)
        z = rng.standard_normal((n, 2))
        u0 = 1.0 + self.radial_std * z[:, 0]
        u1 = self.tangential_std * z[:, 1]
        theta = self._offsets[y] + self.rate * np.exp(np.hypot(u0, u1))
        c, s = np.cos(theta), np.sin(theta)
        return self.scale * np.column_stack([c * u0 - s * u1, s * u0 + c * u1]), y

    def _class_log_prob(self, X: np.ndarray) -> np.ndarray:
        v = X / self.scale
        twist = self.rate * np.exp(np.hypot(v[:, 0], v[:, 1]))
        theta = self._offsets[None, :] + twist[:, None]  # (n, K)
        c, s = np.cos(theta), np.sin(theta)
        u0 = c * v[:, :1] + s * v[:, 1:]  # rotate back by -theta
        u1 = -s * v[:, :1] + c * v[:, 1:]
        log_n = (
            -0.5 * ((u0 - 1.0) / self.radial_std) ** 2
            - 0.5 * (u1 / self.tangential_std) ** 2
            - LOG_2PI
            - np.log(self.radial_std * self.tangential_std)
        )
        return log_n - 2 * np.log(self.scale) - np.log(self.n_classes)

    def _box(self) -> Box:
        b = self.scale * (1.0 + 6 * self.radial_std)
        return (-b, b), (-b, b)

    def _entropy(self) -> tuple[float, float]:
        """H(x) = H(y) + H(x | y) - H(y | x): the first two exact, the small overlap term by grid quadrature."""
        h_xy = np.log(2 * np.pi * np.e * self.radial_std * self.tangential_std) + 2 * np.log(self.scale)
        fine = self._overlap_entropy(self._grid_step)
        coarse = self._overlap_entropy(2 * self._grid_step)
        return float(np.log(self.n_classes) + h_xy - fine), abs(fine - coarse)

    def _overlap_entropy(self, step: float) -> float:
        """H(y | x) = E_x[-sum_k p(k | x) log p(k | x)], by the midpoint rule."""
        points, area = grid_points(self.bounds(0.0), step)
        post = self.class_log_posterior(points)
        log_p = self.log_prob(points)
        ok = np.isfinite(log_p)
        terms = -np.sum(np.where(np.isfinite(post), np.exp(post) * post, 0.0), axis=1)
        return float(np.sum(np.exp(log_p[ok]) * terms[ok]) * area)


class Checkerboard(Distribution):
    """Uniform on the 8 dark squares of a 4 x 4 board of unit squares on [-2, 2]^2; label = square.

    Square (i, j) is [-2 + i, -1 + i) x [-2 + j, -1 + j); it is dark when i + j is even (so the
    bottom-left one is dark). Labels 0..7 number the dark squares row by row from the bottom-left.
    The density is 1/8 on them and 0 (log -inf) elsewhere; outside the support the class
    posterior is undefined (NaN).
    """

    name = "checkerboard"

    def _describe(self) -> str:
        return (
            "checkerboard: uniform on the 8 dark unit squares of a 4x4 board on [-2,2]^2 (density 1/8); "
            "label = dark square 0..7, row by row from the bottom-left"
        )

    n_classes = 8

    def __init__(self) -> None:
        super().__init__()
        dark = [(i, j) for j in range(4) for i in range(4) if (i + j) % 2 == 0]
        self._corners = np.array(dark, dtype=np.float64) - 2.0  # (8, 2) lower-left corners
        self._label = np.full((4, 4), -1)  # label of square (i, j), -1 for light squares
        for k, (i, j) in enumerate(dark):
            self._label[i, j] = k

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 8, n)
        return self._corners[y] + rng.uniform(0.0, 1.0, (n, 2)), y

    def _class_log_prob(self, X: np.ndarray) -> np.ndarray:
        cell = np.floor(X + 2.0)
        inside = ((cell >= 0) & (cell <= 3)).all(axis=1)
        label = np.full(len(X), -1)
        ij = cell[inside].astype(np.int64)
        label[inside] = self._label[ij[:, 0], ij[:, 1]]
        out = np.full((len(X), 8), -np.inf)
        rows = np.flatnonzero(label >= 0)
        out[rows, label[rows]] = -np.log(8.0)
        return out

    def _box(self) -> Box:
        return (-2.0, 2.0), (-2.0, 2.0)

    def _entropy(self) -> tuple[float, float]:
        return float(np.log(8.0)), 0.0
