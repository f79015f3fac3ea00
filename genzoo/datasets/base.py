"""The `Distribution` base class shared by every built-in 2-D data set.

A built-in is a known density, not just a sampler: it samples, evaluates its exact
log-density (nats), knows its entropy and, where it has natural classes (mixture
component, moon, arm, square), the true joint p(x, y) and posterior p(y | x).
Metrics hold generative models against these exact quantities.

Subclasses override a few small hooks (`_sample`, `_log_prob` or `_class_log_prob`,
`_box`, and `_entropy` when they know better than the default grid quadrature);
the public methods here validate input and handle the edge cases once.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

Box = tuple[tuple[float, float], tuple[float, float]]
RandomState = int | np.random.Generator | np.random.SeedSequence | None

LOG_2PI = float(np.log(2.0 * np.pi))


def check_n(n: Any) -> int:
    """Return `n` as an int, or raise a ValueError unless it is a positive integer."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ValueError(f"n must be a positive integer, got {n!r} ({type(n).__name__})")
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    return int(n)


def logsumexp(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(sum(exp(a))) along `axis`, stable, and -inf (not NaN) where every entry is -inf."""
    m = np.max(a, axis=axis, keepdims=True)
    empty = ~np.isfinite(m)
    d = a - np.where(empty, 0.0, m)
    # exp below e^-700 would give subnormals, which are slow, and is nothing next to the max term (1)
    np.maximum(d, -700.0, out=d)
    out = np.log(np.sum(np.exp(d), axis=axis, keepdims=True)) + m
    out[empty] = -np.inf
    return np.squeeze(out, axis=axis)


def grid_points(box: Box, step: float) -> tuple[np.ndarray, float]:
    """Midpoints of a regular grid of cells about `step` wide covering `box`; returns (points, cell area)."""
    (x0, x1), (y0, y1) = box
    nx = max(1, int(np.ceil((x1 - x0) / step)))
    ny = max(1, int(np.ceil((y1 - y0) / step)))
    hx, hy = (x1 - x0) / nx, (y1 - y0) / ny
    xs = x0 + hx * (np.arange(nx) + 0.5)
    ys = y0 + hy * (np.arange(ny) + 0.5)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    return np.column_stack([gx.ravel(), gy.ravel()]), hx * hy


def gauss_legendre(edges: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre rule: `n_nodes` per panel between consecutive `edges`.

    Returns (nodes, weights), ordered panel by panel.
    """
    xg, wg = np.polynomial.legendre.leggauss(n_nodes)
    mid = 0.5 * (edges[1:] + edges[:-1])
    half = 0.5 * (edges[1:] - edges[:-1])
    return (mid[:, None] + half[:, None] * xg).ravel(), (half[:, None] * wg).ravel()


class Distribution:
    """A known 2-D probability distribution: sampling, exact log-density, labels and entropy.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"ring"``.
    dim : int
        Dimension of a sample (2 for every built-in).
    n_classes : int or None
        Number of natural classes, or None when the distribution has no labels.
    description : str
        One line saying what the distribution is, its parameters and its scale.
    """

    name: str = "distribution"
    dim: int = 2
    n_classes: int | None = None

    def __init__(self) -> None:
        self._entropy_cache: tuple[float, float] | None = None

    # ------------------------------------------------------------------ public

    def sample(
        self, n: int, random_state: RandomState = None, return_labels: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Draw `n` points, shape (n, dim) float64; with `return_labels` also y, int64 (n,).

        The same `random_state` gives identical output, with or without labels.
        """
        n = check_n(n)
        if return_labels and self.n_classes is None:
            raise ValueError(f"dataset {self.name!r} has no labels (n_classes is None); use return_labels=False")
        rng = np.random.default_rng(random_state)
        X, y = self._sample(n, rng)
        X = np.ascontiguousarray(X, dtype=np.float64)
        if return_labels:
            return X, np.asarray(y, dtype=np.int64)
        return X

    def log_prob(self, X: Any) -> np.ndarray:
        """Exact log-density (nats) of each row of X, shape (n,); -inf outside the support or at inf."""
        X, finite = self._check_X(X)
        out = np.full(len(X), -np.inf)
        if finite.any():
            out[finite] = self._log_prob(X[finite])
        return out

    def class_log_prob(self, X: Any) -> np.ndarray:
        """Joint log p(x, y) for every class, shape (n, n_classes); p(x | y) = this minus log p(y)."""
        self._require_labels("class_log_prob")
        X, finite = self._check_X(X)
        out = np.full((len(X), self.n_classes), -np.inf)
        if finite.any():
            out[finite] = self._class_log_prob(X[finite])
        return out

    def class_log_posterior(self, X: Any) -> np.ndarray:
        """True log p(y | x), shape (n, n_classes); rows sum (in prob) to 1.

        Rows where p(x) = 0 (outside the support, or x infinite) are NaN: the posterior is undefined there.
        """
        joint = self.class_log_prob(X)
        with np.errstate(invalid="ignore"):
            return joint - logsumexp(joint, axis=1)[:, None]

    @property
    def class_log_prior(self) -> np.ndarray:
        """log p(y), shape (n_classes,)."""
        self._require_labels("class_log_prior")
        return np.full(self.n_classes, -np.log(self.n_classes))

    def entropy(self) -> float:
        """Differential entropy in nats: closed form, or deterministic 1-D / 2-D quadrature of -p log p
        (far more accurate than Monte-Carlo; see `entropy_se`). Computed once, then cached."""
        if self._entropy_cache is None:
            h, se = self._entropy()
            self._entropy_cache = (float(h), float(se))
        return self._entropy_cache[0]

    @property
    def entropy_se(self) -> float:
        """Uncertainty of `entropy()`: 0.0 when exact, else its numerical error estimate."""
        self.entropy()
        assert self._entropy_cache is not None
        return self._entropy_cache[1]

    def modes(self) -> dict[str, Any] | None:
        """Mixture description ``{"centers", "std", "weights"}`` for Gaussian mixtures, else None."""
        return None

    def bounds(self, pad: float = 0.1) -> Box:
        """A box ((xmin, xmax), (ymin, ymax)) holding essentially all the mass (lost mass < 1e-8),
        widened on each side by `pad` times its width, for plots and grids."""
        if isinstance(pad, bool) or not isinstance(pad, numbers.Real) or not np.isfinite(pad) or pad < 0:
            raise ValueError(f"pad must be a finite number >= 0, got {pad!r}")
        (x0, x1), (y0, y1) = self._box()
        px, py = pad * (x1 - x0), pad * (y1 - y0)
        return (float(x0 - px), float(x1 + px)), (float(y0 - py), float(y1 + py))

    @property
    def description(self) -> str:
        """One line: what the distribution is, its parameters, its label meaning and its scale."""
        (x0, x1), (y0, y1) = self.bounds(0.0)
        return f"{self._describe()}; within [{x0:.1f}, {x1:.1f}] x [{y0:.1f}, {y1:.1f}]"

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({params})"

    # ------------------------------------------------------------------ hooks

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def _log_prob(self, X: np.ndarray) -> np.ndarray:
        """Log-density of finite rows; by default the log-sum of the class joints."""
        return logsumexp(self._class_log_prob(X), axis=1)

    def _class_log_prob(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _box(self) -> Box:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        return {}

    def _describe(self) -> str:
        return type(self).__name__

    #: Grid step for the default entropy quadrature: a fraction of the finest feature of the density.
    _grid_step: float = 0.05

    def _entropy(self) -> tuple[float, float]:
        """Entropy by the midpoint rule on a grid over `bounds(0)`, error estimated from a grid twice as coarse.

        The densities here are Gaussian-smoothed, so the midpoint rule converges spectrally
        (aliasing error ~ exp(-2 pi^2 std^2 / step^2)): at step = std / 2 it is far below 1e-6.
        """
        h_fine = self._grid_entropy(self._grid_step)
        h_coarse = self._grid_entropy(2 * self._grid_step)
        return h_fine, abs(h_fine - h_coarse)

    # ------------------------------------------------------------------ helpers

    def _grid_entropy(self, step: float) -> float:
        points, area = grid_points(self.bounds(0.0), step)
        lp = self._log_prob(points)
        p = np.exp(lp)
        return float(-np.sum(np.where(p > 0, p * lp, 0.0)) * area)

    def _check_X(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validate X as an (n, dim) float array; return it with the mask of all-finite rows."""
        try:
            arr = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"X must be a numeric array of shape (n, {self.dim}): {exc}") from None
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(f"X must have shape (n, {self.dim}) for dataset {self.name!r}, got shape {arr.shape}")
        nan = np.isnan(arr)
        if nan.any():
            rows = np.flatnonzero(nan.any(axis=1))
            raise ValueError(
                f"X contains {int(nan.sum())} NaN value(s) in {rows.size} row(s) (first: row {rows[0]}); "
                "the density is undefined there"
            )
        return arr, np.isfinite(arr).all(axis=1)

    def _require_labels(self, what: str) -> None:
        if self.n_classes is None:
            raise ValueError(f"dataset {self.name!r} has no labels (n_classes is None), so {what} is undefined")
