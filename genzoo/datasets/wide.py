"""Built-in data beyond 2-D with exact densities, so NLL gaps stay measured against the truth.

- ``mixture10``: a 10-D mixture of 8 anisotropic Gaussians with unequal weights (label =
  component); exact conditionals ``p(x_missing | x_observed)`` in closed form (a Gaussian
  mixture), for imputation checks.
- ``rings6``: three independent 2-D rings (radius 2, radial std 0.1): columns (0, 1), (2, 3), (4, 5).
- ``funnel``: Neal's funnel in d = 10, ``v ~ N(0, 3^2)``, ``x_i | v ~ N(0, e^v)`` (Neal 2003).

Entropies: closed form for ``funnel``; three times the ring's quadrature entropy for
``rings6``; Monte Carlo for ``mixture10`` (200,000 fixed-seed draws, standard error in
``entropy_se``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import LOG_2PI, Distribution, logsumexp
from .radial import Ring


class WideDistribution(Distribution):
    """A known distribution in ``dim`` > 2 dimensions: the 2-D box and grid quadrature of
    ``Distribution`` are replaced by a per-column box and a closed-form / Monte Carlo entropy."""

    dim = 10
    #: draws of the Monte Carlo entropy (fixed seed); closed forms override ``_entropy``
    entropy_draws = 200_000

    def bounds(self, pad: float = 0.1) -> tuple[tuple[float, float], ...]:
        """Per column ``(low, high)`` holding essentially all the mass, widened by ``pad`` times its width."""
        lo, hi = self._column_box()
        w = hi - lo
        return tuple((float(a - pad * s), float(b + pad * s)) for a, b, s in zip(lo, hi, w))

    @property
    def description(self) -> str:
        return f"{self._describe()}; {self.dim} columns"

    def _column_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-column 1e-6 and 1 - 1e-6 quantiles, estimated from a fixed-seed sample."""
        X = self.sample(100_000, random_state=12345)
        return np.quantile(X, 1e-5, axis=0), np.quantile(X, 1 - 1e-5, axis=0)

    def _entropy(self) -> tuple[float, float]:
        """Monte Carlo: -mean log p over ``entropy_draws`` fixed-seed draws, with its standard error."""
        lp = self.log_prob(self.sample(self.entropy_draws, random_state=2024))
        return float(-lp.mean()), float(lp.std() / np.sqrt(len(lp)))


class Mixture10(WideDistribution):
    """10-D mixture of 8 Gaussians with random rotations, per-axis stds in [0.1, 0.7] and unequal weights.

    Means ~ N(0, 3^2 I) and the covariances ``R diag(s^2) R^T`` come from a fixed seed, so the
    distribution is the same everywhere. Label = component.
    """

    name = "mixture10"
    dim = 10
    n_classes = 8
    WEIGHTS = (0.25, 0.2, 0.15, 0.12, 0.1, 0.08, 0.06, 0.04)

    def __init__(self, seed: int = 10) -> None:
        super().__init__()
        from scipy.stats import special_ortho_group

        rng = np.random.default_rng(seed)
        d, k = self.dim, self.n_classes
        self.seed = int(seed)
        self.weights = np.array(self.WEIGHTS)
        self.means = rng.normal(0.0, 3.0, (k, d))
        stds = rng.uniform(0.1, 0.7, (k, d))
        rots = [special_ortho_group.rvs(d, random_state=seed + 1 + i) for i in range(k)]
        self.covs = np.stack([R @ np.diag(s ** 2) @ R.T for R, s in zip(rots, stds)])
        self._chol = np.linalg.cholesky(self.covs)
        self._prec_chol = np.linalg.inv(self._chol)  # L^-1: Mahalanobis by a triangular product
        self._log_det = 2 * np.log(np.diagonal(self._chol, axis1=1, axis2=2)).sum(1)

    def _describe(self) -> str:
        return "10-D mixture of 8 rotated anisotropic Gaussians (stds 0.1-0.7), weights 0.25 .. 0.04; label = component"

    def _params(self) -> dict[str, Any]:
        return {"seed": self.seed}

    @property
    def class_log_prior(self) -> np.ndarray:
        return np.log(self.weights)

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = rng.choice(self.n_classes, size=n, p=self.weights)
        e = rng.standard_normal((n, self.dim))
        return self.means[y] + np.einsum("nij,nj->ni", self._chol[y], e), y

    def _class_log_prob(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((len(X), self.n_classes))
        for k in range(self.n_classes):
            r = (X - self.means[k]) @ self._prec_chol[k].T  # (n, d) whitened
            out[:, k] = np.log(self.weights[k]) - 0.5 * (self.dim * LOG_2PI + self._log_det[k] + (r * r).sum(1))
        return out

    def conditional(self, x: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The exact ``p(x_missing | x_observed)`` for one row: a Gaussian mixture, returned as
        (weights (K,), means (K, m), covariances (K, m, m)) over the ``m`` unobserved columns."""
        x = np.asarray(x, dtype=np.float64)
        o = np.asarray(observed, dtype=bool)
        if x.shape != (self.dim,) or o.shape != (self.dim,):
            raise ValueError(f"x and observed must have shape ({self.dim},); got {x.shape} and {o.shape}")
        if not np.isfinite(x[o]).all():
            raise ValueError("the observed values must be finite")
        m = ~o
        lw, mus, covs = [], [], []
        for k in range(self.n_classes):
            A = self.covs[k][np.ix_(o, o)]
            B = self.covs[k][np.ix_(m, o)]
            C = self.covs[k][np.ix_(m, m)]
            K = np.linalg.solve(A, B.T).T if o.any() else np.zeros((m.sum(), 0))
            dx = x[o] - self.means[k][o]
            _, logdet = np.linalg.slogdet(A) if o.any() else (1.0, 0.0)
            quad = float(dx @ np.linalg.solve(A, dx)) if o.any() else 0.0
            lw.append(np.log(self.weights[k]) - 0.5 * (o.sum() * LOG_2PI + logdet + quad))
            mus.append(self.means[k][m] + K @ dx)
            covs.append(C - K @ B.T)
        lw = np.array(lw)
        return np.exp(lw - logsumexp(lw)), np.array(mus), np.array(covs)

    def sample_conditional(self, x: np.ndarray, observed: np.ndarray, n: int, random_state=None) -> np.ndarray:
        """``n`` exact draws of the unobserved columns given the observed ones of row ``x``, shape (n, m)."""
        w, mus, covs = self.conditional(x, observed)
        rng = np.random.default_rng(random_state)
        c = rng.choice(len(w), size=int(n), p=w)
        chol = np.linalg.cholesky(covs + 1e-12 * np.eye(covs.shape[1]))
        e = rng.standard_normal((int(n), mus.shape[1]))
        return mus[c] + np.einsum("nij,nj->ni", chol[c], e)


class Rings6(WideDistribution):
    """Three independent rings (uniform angle, radius ~ N(2, 0.1^2) truncated to r > 0) in
    columns (0, 1), (2, 3), (4, 5); no labels. Entropy: three times the ring's (quadrature, ~1e-12)."""

    name = "rings6"
    dim = 6

    def __init__(self, radius: float = 2.0, std: float = 0.1) -> None:
        super().__init__()
        self.ring = Ring(radius=radius, std=std)

    def _describe(self) -> str:
        return f"three independent 2-D rings, radius {self.ring.radius:g}, radial std {self.ring.std:g}; no labels"

    def _params(self) -> dict[str, Any]:
        return {"radius": self.ring.radius, "std": self.ring.std}

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, None]:
        return np.concatenate([self.ring._sample(n, rng)[0] for _ in range(3)], 1), None

    def _log_prob(self, X: np.ndarray) -> np.ndarray:
        return sum(self.ring._log_prob(X[:, 2 * j:2 * j + 2]) for j in range(3))

    def _entropy(self) -> tuple[float, float]:
        return 3 * self.ring.entropy(), 3 * self.ring.entropy_se


class Funnel(WideDistribution):
    """Neal's funnel: ``v ~ N(0, scale^2)`` in column 0, ``x_i | v ~ N(0, e^v)`` in columns 1 .. d-1.

    Entropy in closed form: ``H = 0.5 log(2 pi e scale^2) + (d - 1) 0.5 log(2 pi e) + (d - 1) E[v] / 2``
    with ``E[v] = 0``. Exact conditionals of the x's given v (independent normals).
    """

    name = "funnel"

    def __init__(self, dim: int = 10, scale: float = 3.0) -> None:
        super().__init__()
        if int(dim) < 2:
            raise ValueError(f"dim must be >= 2, got {dim!r}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        self.dim = int(dim)
        self.scale = float(scale)

    def _describe(self) -> str:
        return f"Neal's funnel in {self.dim}-D: v ~ N(0, {self.scale:g}^2), x_i | v ~ N(0, exp(v)); no labels"

    def _params(self) -> dict[str, Any]:
        return {"dim": self.dim, "scale": self.scale}

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, None]:
        v = self.scale * rng.standard_normal(n)
        x = np.exp(v / 2)[:, None] * rng.standard_normal((n, self.dim - 1))
        return np.column_stack([v, x]), None

    def _log_prob(self, X: np.ndarray) -> np.ndarray:
        v, x = X[:, 0], X[:, 1:]
        lv = -0.5 * (LOG_2PI + 2 * np.log(self.scale) + (v / self.scale) ** 2)
        lx = -0.5 * ((self.dim - 1) * (LOG_2PI + v) + (x * x).sum(1) * np.exp(-v))
        return lv + lx

    def _entropy(self) -> tuple[float, float]:
        return 0.5 * (LOG_2PI + 1 + 2 * np.log(self.scale)) + 0.5 * (self.dim - 1) * (LOG_2PI + 1), 0.0

    def sample_conditional_on_v(self, v: float, n: int, random_state=None) -> np.ndarray:
        """``n`` exact draws of columns 1 .. d-1 given column 0 = ``v``, shape (n, d - 1)."""
        rng = np.random.default_rng(random_state)
        return np.exp(float(v) / 2) * rng.standard_normal((int(n), self.dim - 1))


__all__ = ["WideDistribution", "Mixture10", "Rings6", "Funnel"]
