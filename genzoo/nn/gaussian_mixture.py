"""Full-covariance Gaussian mixtures for the families that start from one: the EM fit and its size
(scikit-learn, BIC), and the closed-form field of a noised mixture (:class:`GaussianMixtureField`) that
flow matching and diffusion add to their networks. The flow's mixture base is
:class:`genzoo.nn.coupling.GaussianMixtureBase`."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

#: the sizes the BIC choice considers
CANDIDATES = (1, 2, 4, 8, 16)


def fit_gaussian_mixture(u: np.ndarray, components: int, seed: int = 0, max_rows: int = 20_000):
    """A fitted ``sklearn.mixture.GaussianMixture`` (full covariances, ``reg_covar=1e-5``) on at most
    ``max_rows`` seeded rows of ``u``."""
    from sklearn.mixture import GaussianMixture

    a = np.asarray(u, dtype=np.float64)
    a = a[np.random.default_rng(seed).permutation(len(a))[:max_rows]]
    return GaussianMixture(components, covariance_type="full", reg_covar=1e-5, max_iter=300,
                           random_state=seed).fit(a)


def choose_mixture_components(u: np.ndarray, candidates=CANDIDATES, seed: int = 0,
                              max_rows: int = 10_000) -> int:
    """The number of full-covariance Gaussians that minimises BIC on (at most ``max_rows`` of) ``u``."""
    a = np.asarray(u, dtype=np.float64)
    a = a[np.random.default_rng(seed).permutation(len(a))[:max_rows]]
    best, best_k = math.inf, 1
    for k in candidates:
        if k * (a.shape[1] * (a.shape[1] + 3) / 2 + 1) >= len(a) / 2:  # too many parameters for the rows
            break
        b = fit_gaussian_mixture(a, k, seed=seed, max_rows=len(a)).bic(a)
        if b < best:
            best, best_k = b, k
    return best_k


class GaussianMixtureField(nn.Module):
    """Closed-form predictions for ``x = a x1 + s eps`` with ``x1 ~ sum_k w_k N(mu_k, Sigma_k)`` and
    ``eps ~ N(0, I)``: what a denoiser or velocity network would learn if the data were this mixture.

    Given component ``k``, ``x ~ N(a mu_k, C_k)``, ``C_k = a^2 Sigma_k + s^2 I``, and each prediction is
    ``mu`` times a constant plus ``(coefficient) C_k^-1 (x - a mu_k)``; the components are weighted by their
    posterior at ``x``. With ``Sigma_k = U diag(lam) U^T`` every ``C_k`` is diagonal in ``U``:

    - ``'x0'``: ``E[x1 | x] = mu_k + a Sigma_k C_k^-1 (x - a mu_k)``;
    - ``'eps'``: ``E[eps | x] = s C_k^-1 (x - a mu_k)``;
    - ``'v'`` (``a^2 + s^2 = 1``): ``E[a eps - s x1 | x] = a s (I - Sigma_k) C_k^-1 (x - a mu_k) - s mu_k``;
    - ``'velocity'`` (the linear path, ``a = t``, ``s = 1 - t``): ``E[x1 - eps | x] = mu_k
      + (a Sigma_k - s I) C_k^-1 (x - a mu_k)``.

    None of them divides by ``s`` or ``a``, so both ends of the path are safe. Buffers only (a fixed
    field, not trained), filled by ``set_mixture``.
    """

    def __init__(self, dim: int, components: int):
        super().__init__()
        self.dim = dim
        self.register_buffer("log_weights", torch.zeros(components))
        self.register_buffer("means", torch.zeros(components, dim))
        self.register_buffer("basis", torch.eye(dim).repeat(components, 1, 1))  # (K, D, D): eigenvectors in columns
        self.register_buffer("variances", torch.ones(components, dim))  # (K, D): eigenvalues

    @torch.no_grad()
    def set_mixture(self, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> None:
        lam, U = np.linalg.eigh(np.asarray(covariances, dtype=np.float64))
        for buf, val in ((self.log_weights, np.log(np.clip(weights, 1e-12, None))), (self.means, means),
                         (self.basis, U), (self.variances, np.clip(lam, 1e-8, None))):
            buf.copy_(torch.as_tensor(np.asarray(val), dtype=buf.dtype))

    def forward(self, x: torch.Tensor, a: torch.Tensor, s: torch.Tensor, target: str) -> torch.Tensor:
        a, s = a.to(x.dtype)[:, None, None], s.to(x.dtype)[:, None, None]  # (B, 1, 1)
        U, lam, mu = self.basis.to(x.dtype), self.variances.to(x.dtype), self.means.to(x.dtype)
        c = torch.einsum("kde,bkd->bke", U, x[:, None, :] - a * mu)  # (B, K, D): x - a mu in each eigenbasis
        var = a * a * lam + s * s  # (B, K, D): eigenvalues of C_k
        log_n = -0.5 * (c * c / var + var.log()).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)  # (B, K)
        post = torch.softmax(self.log_weights.to(x.dtype) + log_n, -1)  # (B, K)
        coef, const = {"x0": (a * lam, 1.0), "eps": (s, 0.0), "v": (a * s * (1 - lam), -s),
                       "velocity": (a * lam - s, 1.0)}[target]
        out = torch.einsum("kde,bke->bkd", U, coef / var * c)  # (B, K, D)
        if not (isinstance(const, float) and const == 0.0):
            out = out + const * mu
        return (post[..., None] * out).sum(1)


class GaussianMixtureChain(nn.Module):
    """A full-covariance Gaussian mixture written as a chain of 1-D conditionals, as an autoregressive
    model sees it: ``p(x_i | x_<i) = sum_k r_k(x_<i) N(x_i; m_ki(x_<i), L_k,ii^2)``.

    With ``Sigma_k = L_k L_k^T`` (Cholesky, lower) and ``e_k = L_k^-1 (x - mu_k)``, coordinate ``i`` of
    component ``k`` is ``x_i = mu_ki + sum_{j<i} L_k,ij e_kj + L_k,ii e_ki``: its conditional mean is the
    first two terms, its scale ``L_k,ii``, and ``r_k`` is the component's posterior given the prefix
    (weight times the prefix's density). The conditionals multiply to the mixture's density exactly.
    Buffers only, filled by ``set_mixture``.
    """

    def __init__(self, dim: int, components: int):
        super().__init__()
        self.dim = dim
        self.register_buffer("log_weights", torch.zeros(components))
        self.register_buffer("means", torch.zeros(components, dim))
        self.register_buffer("chol", torch.eye(dim).repeat(components, 1, 1))  # (K, D, D) lower

    @torch.no_grad()
    def set_mixture(self, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> None:
        L = np.linalg.cholesky(np.asarray(covariances, dtype=np.float64))
        for buf, val in ((self.log_weights, np.log(np.clip(weights, 1e-12, None))), (self.means, means),
                         (self.chol, L)):
            buf.copy_(torch.as_tensor(np.asarray(val), dtype=buf.dtype))

    def _parts(self, x: torch.Tensor):
        """Whitened offsets ``e`` (B, K, D), per-coordinate component log-densities (B, K, D) and the
        log prefix weights ``log w_k + sum_{j<i} (...)`` (B, K, D)."""
        L = self.chol.to(x.dtype)
        diff = (x[:, None, :] - self.means.to(x.dtype)).permute(1, 2, 0)  # (K, D, B)
        e = torch.linalg.solve_triangular(L, diff, upper=False).permute(2, 0, 1)  # (B, K, D)
        log_diag = torch.diagonal(L, dim1=-2, dim2=-1).log()  # (K, D)
        lc = -0.5 * e * e - log_diag - 0.5 * math.log(2 * math.pi)  # (B, K, D)
        prefix = self.log_weights.to(x.dtype)[None, :, None] + torch.cumsum(lc, -1) - lc  # exclusive
        return e, lc, prefix

    def log_prob_coords(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x_i | x_<i)`` for every coordinate, (B, D); their sum is the mixture's log-density."""
        _, lc, prefix = self._parts(x)
        return torch.logsumexp(prefix + lc, 1) - torch.logsumexp(prefix, 1)

    def sample_coord(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """One draw of coordinate ``i`` per row given ``x[:, :i]`` (later entries are ignored), (B,)."""
        e, _, prefix = self._parts(x)
        k = torch.multinomial(torch.softmax(prefix[:, :, i].double(), -1), 1)[:, 0]  # (B,)
        L = self.chol.to(x.dtype)[k]  # (B, D, D)
        rows = torch.arange(len(x), device=x.device)
        mean = self.means.to(x.dtype)[k, i] + (L[:, i, :i] * e[rows, k, :i]).sum(-1)
        return mean + L[:, i, i] * torch.randn_like(mean)


__all__ = ["fit_gaussian_mixture", "choose_mixture_components", "CANDIDATES", "GaussianMixtureField",
           "GaussianMixtureChain"]
