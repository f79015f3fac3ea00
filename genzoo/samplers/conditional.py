"""Draws from a conditional ``p(x_missing | x_observed)``: plain functions over callables and arrays.

Which route is right depends on what the model offers:

- an exact log-density and one missing coordinate (or few dimensions): :func:`line_conditional`,
  the inverse CDF of the density along the line through the observed values, on an
  adaptive 1-D grid (a coarse pass finds the mass, a fine pass puts nodes where it is,
  the CDF interpolates the log-density linearly between nodes); :func:`grid_gibbs_impute`
  runs it coordinate by coordinate (Gibbs sweeps) when more than one is missing;
- a Gaussian mixture: :func:`gaussian_mixture_conditional`, in closed form;
- a latent-variable model with a tractable likelihood of the observed part (a VAE's
  decoder): :func:`importance_resample` of latent draws by that likelihood;
- an expensive exact density beyond a few dimensions (the ODE likelihood of diffusion and flow
  matching): :func:`mixture_proposal_impute`, importance resampling of draws from a Gaussian
  mixture fitted to the model's own samples and conditioned in closed form, weighted by the
  model's density (exact for the model as the proposals grow);
- only a sampler (a GAN, a consistency model): :func:`nearest_conditional`, the missing
  values of the model's own draws whose observed values are nearest to the row's
  (a kernel estimate of the model's conditional, exact as the pool grows and the window
  shrinks).

Rows that agree on their observed values share one conditional: the density routes
compute it once per distinct row, which makes "the same row imputed many times" cheap.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: log_prob(P) -> (m,) log-densities of the rows of P (m, d), NumPy in and out
LogProbFn = Callable[[np.ndarray], np.ndarray]


#: ``impute(method='auto')`` of a family with an expensive density (an ODE likelihood) takes the
#: exact density route only for data of at most this many dimensions ...
DENSITY_ROUTE_MAX_DIM = 3
#: ... and at most this many distinct rows to fill (each costs about a thousand density evaluations,
#: a few seconds on a CPU for an ODE likelihood); beyond, its approximate sampler-based route
DENSITY_ROUTE_MAX_ROWS = 16
#: ``impute(method='sir')``: proposals per distinct row (at least 4 per row to fill), each one density evaluation
SIR_PROPOSALS = 4096
#: ``impute(method='auto')`` takes 'sir' only up to this many columns: beyond, the proposal mixture is
#: a poor fit to the conditional and an ODE likelihood costs a pass per column per step (images: 64)
SIR_MAX_DIM = 16


def distinct_rows(Z: np.ndarray, miss: np.ndarray) -> int:
    """How many different conditionals the rows of ``Z`` ask for (same missing pattern and observed values)."""
    return int(len(np.unique(np.nan_to_num(np.where(miss, np.nan, Z), nan=np.inf), axis=0))) if len(Z) else 0


def density_route(method: str | None, Z: np.ndarray, miss: np.ndarray, approximate: str,
                  wide: str | None = None) -> str:
    """Resolve an imputation ``method`` to 'grid' (the exact density route), ``wide`` or ``approximate``.

    'auto' (or None) picks 'grid' when the data have at most ``DENSITY_ROUTE_MAX_DIM`` columns and
    the rows ask for at most ``DENSITY_ROUTE_MAX_ROWS`` distinct conditionals (the cost guard);
    ``wide`` (e.g. 'sir', an exact-for-the-model route whose cost does not grow with the number of
    missing coordinates) for wider data, up to ``SIR_MAX_DIM`` columns, with as few distinct rows;
    else ``approximate``. Raises ValueError for any other name.
    """
    method = "auto" if method is None else method
    names = ("auto", "grid", approximate) + ((wide,) if wide else ())
    if method not in names:
        raise ValueError(f"impute method must be one of {', '.join(repr(n) for n in names)}; got {method!r}")
    if method != "auto":
        return method
    few = distinct_rows(Z, miss) <= DENSITY_ROUTE_MAX_ROWS
    if few and Z.shape[1] <= DENSITY_ROUTE_MAX_DIM:
        return "grid"
    return wide if (few and wide and Z.shape[1] <= SIR_MAX_DIM) else approximate


# ----------------------------------------------------------------------------- shared draws
def stratified_uniforms(which: np.ndarray, rng: np.random.Generator, stratify: bool = True) -> np.ndarray:
    """One uniform per row; rows with the same ``which`` (the same conditional) share its strata.

    A group of r rows gets ``(pi(i) + U_i) / r`` for a random permutation ``pi`` and independent
    ``U_i``: every row's uniform is still exactly Uniform(0, 1), so each row is an exact draw,
    but together the group covers the conditional evenly (the error of its empirical
    distribution falls as 1 / r instead of 1 / sqrt(r)). ``stratify=False``: independent uniforms.
    """
    which = np.asarray(which).ravel()
    n = len(which)
    u = rng.random(n)
    if not stratify or n == 0:
        return u
    _, inv, count = np.unique(which, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    order = np.lexsort((rng.random(n), inv))  # grouped, in random order within each group
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - start[inv[order]]
    return (rank + u) / count[inv]


# ----------------------------------------------------------------------------- 1-D inverse CDF
def _log_linear_segments(g: np.ndarray, lp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masses of the segments between consecutive nodes of exp(lp), log-density linear in between.

    ``g``: (m, k) sorted nodes per row, ``lp``: (m, k). Returns (mass (m, k - 1), left log-density
    shifted so each row's peak is 0, slope of the log-density (m, k - 1)).
    """
    lp = np.where(np.isfinite(lp), lp, -np.inf)
    top = lp.max(1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    lp = np.maximum(lp - top, -700.0)  # a zero density becomes a negligible one (keeps slopes finite)
    h = np.diff(g, axis=1)
    a, b = lp[:, :-1], lp[:, 1:]
    slope = (b - a) / np.where(h > 0, h, 1.0)
    sh = slope * h
    # integral of exp(a + s (x - x_left)) over the segment; the series near s h = 0
    small = np.abs(sh) < 1e-6
    frac = np.where(small, 1 + sh / 2, np.expm1(np.where(small, 0.0, sh)) / np.where(small, 1.0, sh))
    mass = np.exp(a) * h * frac
    return np.where(h > 0, mass, 0.0), a, slope


def inverse_cdf_draws(g: np.ndarray, lp: np.ndarray, u: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
    """Draws from densities exp(lp) known at nodes ``g``, log-linear in between, by inverse CDF.

    ``g``: (k,) nodes shared by every line or (m, k), sorted; ``lp``: (m, k) unnormalised
    log-densities of ``m`` lines (-inf allowed); ``u``: (r,) uniforms; ``which``: (r,) the line
    each draw comes from (default: draw i from line i). A line without any positive density is
    drawn uniformly over its nodes' range. Exact for a density whose log is piecewise linear on
    the nodes (for a smooth density the error falls as the square of the spacing).
    """
    lp = np.asarray(lp, dtype=np.float64)
    g = np.broadcast_to(np.asarray(g, dtype=np.float64), lp.shape)
    u = np.asarray(u, dtype=np.float64)
    which = np.arange(len(u)) if which is None else np.asarray(which, dtype=np.int64)
    mass, a, slope = _log_linear_segments(g, lp)
    tot = mass.sum(1)
    dead = ~np.isfinite(lp).any(1) | ~(tot > 0) | ~np.isfinite(tot)
    if dead.any():  # no density anywhere on the line: uniform over the nodes' range
        mass[dead] = np.diff(g[dead], axis=1)
        a[dead], slope[dead] = 0.0, 0.0
        tot = mass.sum(1)
    m, n_seg = mass.shape
    # one sorted array for every line (line index + its CDF in [0, 1]): one searchsorted for all draws
    cdf = np.cumsum(mass, 1) / tot[:, None]
    flat = (np.arange(m)[:, None] + np.minimum(cdf, 1.0)).ravel()
    pos = np.searchsorted(flat, which + np.clip(u, 0.0, 1.0 - 1e-12), side="left")
    k = np.clip(pos - which * n_seg, 0, n_seg - 1)  # the segment holding each draw
    left = (u - (cdf[which, k] - mass[which, k] / tot[which])) * tot[which]  # mass to cover inside it
    x0, h = g[which, k], g[which, k + 1] - g[which, k]
    s, ea = slope[which, k], np.exp(a[which, k])
    # solve ea (exp(s t) - 1) / s = left for t in [0, h] (ea >= exp(-700) > 0): log form for a
    # rising segment, log1p for a falling one (where s left / ea > -1)
    lin = np.abs(s * h) < 1e-6
    s_safe = np.where(lin, 1.0, s)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rising = (np.log(s_safe * left + ea) - a[which, k]) / s_safe
        falling = np.log1p(np.maximum(s_safe * left / ea, -1 + 1e-16)) / s_safe
        t = np.where(lin, left / ea, np.where(s > 0, rising, falling))
    return x0 + np.clip(np.nan_to_num(t, nan=0.0), 0.0, h)


def _refined_nodes(g: np.ndarray, lp: np.ndarray, n_fine: int) -> np.ndarray:
    """``n_fine`` new nodes per row, spread over the coarse cells in proportion to their mass.

    Each cell's share is the largest mass among it and its two neighbours (so the flanks of a
    mode narrower than a coarse cell get nodes too), and its nodes are evenly spaced inside it.
    The coarse nodes stay, so the tails keep the coarse resolution.
    """
    mass, _, _ = _log_linear_segments(np.broadcast_to(g, lp.shape), lp)
    wide = mass.copy()
    wide[:, 1:] = np.maximum(wide[:, 1:], mass[:, :-1])
    wide[:, :-1] = np.maximum(wide[:, :-1], mass[:, 1:])
    tot = wide.sum(1, keepdims=True)
    w = np.where(tot > 0, wide / np.where(tot > 0, tot, 1.0), 1.0 / wide.shape[1])
    cdf = np.concatenate([np.zeros((len(w), 1)), np.cumsum(w, 1)], 1)
    q = (np.arange(n_fine) + 0.5) / n_fine
    return np.stack([np.interp(q, c, g) for c in cdf])  # (m, n_fine): uniform within each cell


def line_conditional(log_prob: LogProbFn, rows: np.ndarray, j: int, lo: float, hi: float, *,
                     nodes: int = 1024, refine: bool = True, chunk: int = 400_000
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and log-densities of ``p(x_j | the other coordinates of each row)`` on [lo, hi].

    ``rows``: (m, d); coordinate ``j`` is ignored (it is what varies). With ``refine`` (the
    default) a third of ``nodes`` is a uniform coarse grid and the rest are placed at the
    quantiles of the coarse conditional, so a mode much narrower than the range (gaussians8:
    std 1/300 of it) still gets hundreds of nodes; without, ``nodes`` uniform nodes.
    Returns (nodes (m, k) sorted per row, log-densities (m, k)). Costs ``nodes`` evaluations
    of ``log_prob`` per row, in batches of about ``chunk`` points.
    """
    m, _ = rows.shape
    n_coarse = max(16, nodes // 3) if refine else int(nodes)
    g = np.linspace(lo, hi, n_coarse)

    def evaluate(G: np.ndarray) -> np.ndarray:  # G: (m, k) positions of coordinate j per row
        k = G.shape[1]
        out = np.empty((m, k))
        per = max(1, chunk // k)
        for a in range(0, m, per):
            P = np.repeat(rows[a:a + per], k, axis=0)
            P[:, j] = G[a:a + per].ravel()
            out[a:a + per] = np.asarray(log_prob(P), dtype=np.float64).reshape(-1, k)
        return out

    G = np.broadcast_to(g, (m, n_coarse))
    lp = evaluate(G)
    if not refine or nodes - n_coarse < 2:
        return np.array(G), lp
    fine = _refined_nodes(g, lp, int(nodes) - n_coarse)
    lp_fine = evaluate(fine)
    G, lp = np.concatenate([G, fine], 1), np.concatenate([lp, lp_fine], 1)
    order = np.argsort(G, axis=1, kind="stable")
    return np.take_along_axis(G, order, 1), np.take_along_axis(lp, order, 1)


def grid_gibbs_impute(log_prob: LogProbFn, Z: np.ndarray, miss: np.ndarray, seed: int, *, lo, hi, init=None,
                      grid: int = 1024, sweeps: int = 30, refine: bool = True, pad: float = 0.25,
                      stratify: bool = True, chunk: int = 400_000) -> np.ndarray:
    """Fill the ``miss`` entries of ``Z`` by Gibbs sweeps, each coordinate drawn by :func:`line_conditional`.

    ``log_prob`` maps an (m, d) array to (m,) log-densities; ``lo`` / ``hi`` (d,) bound each
    coordinate's range (the training range), padded by ``pad`` of its span on each side.
    A row missing one coordinate takes one exact draw from the density's conditional (up to
    the grid: ``grid`` nodes, adaptive when ``refine``); a row missing several runs a Gibbs chain
    of ``sweeps`` sweeps from ``init(n, seed)`` (default zeros): exact in the limit of many sweeps.
    Rows that agree on every other coordinate share one conditional (computed once) and, with
    ``stratify``, stratified uniforms (:func:`stratified_uniforms`: each row still an exact draw).
    """
    rng = np.random.default_rng(seed)
    Z = np.array(Z, dtype=np.float64)
    n, d = Z.shape
    if init is not None:
        start = np.asarray(init(n, int(rng.integers(2**62))), dtype=np.float64)
        Z[miss] = start[miss]
    else:
        Z[miss] = 0.0
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    n_sweeps = np.where(miss.sum(1) > 1, int(sweeps), 1)
    for s in range(int(n_sweeps.max()) if n else 0):
        for j in range(d):
            rows = np.flatnonzero(miss[:, j] & (n_sweeps > s))
            if not len(rows):
                continue
            width = pad * (hi[j] - lo[j]) + 1e-3
            others = Z[rows].copy()
            others[:, j] = 0.0
            uniq, inverse = np.unique(others, axis=0, return_inverse=True)
            G, lp = line_conditional(log_prob, uniq, j, lo[j] - width, hi[j] + width, nodes=grid, refine=refine,
                                     chunk=chunk)
            inv = inverse.ravel()
            Z[rows, j] = inverse_cdf_draws(G, lp, stratified_uniforms(inv, rng, stratify), inv)
    return Z


# ----------------------------------------------------------------------------- closed forms
def _normal_draws(which: np.ndarray, dim: int, rng: np.random.Generator, stratify: bool) -> np.ndarray:
    """(r, dim) standard normal draws; with ``stratify``, the first column stratified within each group."""
    from scipy.special import ndtri

    eps = rng.standard_normal((len(which), dim))
    if stratify and dim:
        eps[:, 0] = ndtri(np.clip(stratified_uniforms(which, rng), 1e-300, 1 - 1e-16))
    return eps


def _group_rows(X: np.ndarray, miss: np.ndarray) -> np.ndarray:
    """An id per row: rows with the same missing pattern and the same observed values share one."""
    key = np.nan_to_num(np.where(miss, np.nan, X), nan=np.inf)
    return np.unique(key, axis=0, return_inverse=True)[1].ravel()


def gaussian_mixture_conditional(weights: np.ndarray, means: np.ndarray, covs: np.ndarray, X: np.ndarray,
                                 miss: np.ndarray, rng: np.random.Generator, stratify: bool = True) -> np.ndarray:
    """Exact draws of the missing entries of each row of ``X`` under a full-covariance Gaussian mixture.

    ``weights`` (K,), ``means`` (K, d), ``covs`` (K, d, d). Per missing pattern: the component
    posterior ``w_k N(x_o; mu_k,o, S_k,oo)`` given the observed part, then
    ``x_m ~ N(mu_m + S_mo S_oo^-1 (x_o - mu_o), S_mm - S_mo S_oo^-1 S_om)`` of the drawn
    component. Rows with nothing observed take an unconditional draw. With ``stratify``, rows
    sharing observed values take stratified uniforms for the component and the first missing
    coordinate's noise (:func:`stratified_uniforms`). Returns the filled copy.
    """
    X = np.array(X, dtype=np.float64)
    K = len(means)
    group = _group_rows(X, miss)
    patterns, which = np.unique(miss, axis=0, return_inverse=True)
    for p, m_ in enumerate(patterns):
        rows = np.flatnonzero(which.ravel() == p)
        o = ~m_
        if not m_.any():
            continue
        post, cond_mean, cond_cov = conditional_mixture(weights, means, covs, X[np.ix_(rows, np.flatnonzero(o))], m_)
        cond_chol = np.linalg.cholesky(cond_cov + 1e-12 * np.eye(cond_cov.shape[1]))
        u = stratified_uniforms(group[rows], rng, stratify)
        comp = (post.cumsum(1) < u[:, None]).sum(1).clip(0, K - 1)
        eps = _normal_draws(group[rows], int(m_.sum()), rng, stratify)
        draw = np.empty_like(eps)
        for k in np.unique(comp):
            r = comp == k
            draw[r] = cond_mean[k][r] + eps[r] @ cond_chol[k].T
        X[np.ix_(rows, np.flatnonzero(m_))] = draw
    return X


def isotropic_mixture_conditional(centres: np.ndarray, h: float, X: np.ndarray, miss: np.ndarray,
                                  rng: np.random.Generator, log_weights: np.ndarray | None = None,
                                  stratify: bool = True, chunk: int = 2_000_000) -> np.ndarray:
    """Exact draws of the missing entries under ``sum_j w_j N(c_j, h^2 I)`` (a Gaussian KDE).

    The observed part picks centre j with probability ``w_j N(x_o; c_j,o, h^2 I)``, then
    ``x_m = c_j,m + h eps``: the kernel factorises over coordinates, so this is the exact
    conditional. ``log_weights`` (M,) default equal. Rows sharing observed values share one
    weight vector (computed once) and, with ``stratify``, stratified uniforms for the centre and
    the first missing coordinate's noise. Returns the filled copy.
    """
    X = np.array(X, dtype=np.float64)
    C = np.asarray(centres, dtype=np.float64)
    lw = np.zeros(len(C)) if log_weights is None else np.asarray(log_weights, dtype=np.float64)
    which = _group_rows(X, miss)
    firsts = np.unique(which, return_index=True)[1]  # one row per group, in group order
    u = stratified_uniforms(which, rng, stratify)
    eps = np.zeros_like(X)
    for p in np.unique(miss, axis=0):  # the first missing coordinate's noise, stratified per group
        rows = np.flatnonzero((miss == p).all(1))
        if p.any():
            eps[np.ix_(rows, np.flatnonzero(p))] = _normal_draws(which[rows], int(p.sum()), rng, stratify)
    per = max(1, chunk // len(C))
    for a in range(0, len(firsts), per):
        block = firsts[a:a + per]
        o = ~miss[block]  # (b, d) observed mask per distinct row
        logp = np.broadcast_to(lw, (len(block), len(C))).copy()  # (b, M)
        for k in np.flatnonzero(o.any(0)):  # one observed coordinate at a time: (b, M) arrays only
            xk = np.where(o[:, k], X[block, k], 0.0)
            logp -= np.where(o[:, k:k + 1], (xk[:, None] - C[None, :, k]) ** 2, 0.0) * (0.5 / (h * h))
        p = np.exp(logp - logp.max(1, keepdims=True))
        cdf = np.cumsum(p, 1)
        cdf /= cdf[:, -1:]
        # every row of these groups at once: one searchsorted over the groups' CDFs laid end to end
        rows = np.flatnonzero((which >= a) & (which < a + len(block)))
        g = which[rows] - a
        flat = (np.arange(len(block))[:, None] + np.minimum(cdf, 1.0)).ravel()
        j = np.clip(np.searchsorted(flat, g + np.clip(u[rows], 0.0, 1 - 1e-12)) - g * len(C), 0, len(C) - 1)
        X[rows] = np.where(miss[rows], C[j] + h * eps[rows], X[rows])
    return X


# ----------------------------------------------------------------------------- resampling
def importance_resample(log_w: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices drawn with probabilities proportional to exp(log_w) (self-normalised weights).

    Systematic resampling (one uniform, ``n`` evenly spaced points on the CDF): unbiased like
    multinomial resampling, with less spread in how often each particle is kept.
    """
    log_w = np.asarray(log_w, dtype=np.float64)
    if not np.isfinite(log_w).any():
        raise ValueError("importance_resample: every weight is zero")
    w = np.exp(log_w - log_w[np.isfinite(log_w)].max())
    w[~np.isfinite(w)] = 0.0
    cdf = np.cumsum(w / w.sum())
    pos = (rng.random() + np.arange(n)) / n
    idx = np.minimum(np.searchsorted(cdf, pos, side="right"), len(w) - 1)
    return rng.permutation(idx)


def effective_sample_size(log_w: np.ndarray) -> float:
    """Kish's effective sample size of self-normalised weights exp(log_w): (sum w)^2 / sum w^2."""
    log_w = np.asarray(log_w, dtype=np.float64)
    w = np.exp(log_w - np.max(log_w))
    return float(w.sum() ** 2 / np.maximum((w**2).sum(), 1e-300))


def conditional_mixture(weights: np.ndarray, means: np.ndarray, covs: np.ndarray, xo: np.ndarray,
                        miss: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Gaussian mixture ``p(x_m | x_o)`` of a full-covariance mixture, for rows ``xo`` (r, |o|)
    observed where ``miss`` (d,) is False: the component posterior ``w_k N(x_o; mu_k,o, S_k,oo)``
    (r, K), the conditional means ``mu_m + S_mo S_oo^-1 (x_o - mu_o)`` (K, r, |m|) and covariances
    ``S_mm - S_mo S_oo^-1 S_om`` (K, |m|, |m|). Nothing observed: the mixture itself."""
    o = ~miss
    xo = np.asarray(xo, dtype=np.float64).reshape(-1, int(o.sum()))
    K, r, nm = len(weights), len(xo), int(miss.sum())
    logpost = np.tile(np.log(np.maximum(np.asarray(weights, dtype=np.float64), 1e-300)), (r, 1))
    cm, cc = np.empty((K, r, nm)), np.empty((K, nm, nm))
    for k in range(K):
        S = covs[k]
        Soo, Smo, Smm = S[np.ix_(o, o)], S[np.ix_(miss, o)], S[np.ix_(miss, miss)]
        if o.any():
            L = np.linalg.cholesky(Soo)
            diff = xo - means[k, o]
            sol = np.linalg.solve(L, diff.T)  # (|o|, r): L^-1 (x_o - mu_o)
            logpost[:, k] += -0.5 * (sol**2).sum(0) - np.log(np.diag(L)).sum() - 0.5 * o.sum() * np.log(2 * np.pi)
            A = np.linalg.solve(L.T, np.linalg.solve(L, Smo.T)).T  # S_mo S_oo^-1, (|m|, |o|)
            cm[k] = means[k, miss] + diff @ A.T
            C = Smm - A @ Smo.T
        else:
            cm[k] = means[k, miss]
            C = Smm
        cc[k] = 0.5 * (C + C.T)
    post = np.exp(logpost - logpost.max(1, keepdims=True))
    return post / post.sum(1, keepdims=True), cm, cc


def mixture_proposal_impute(log_prob: LogProbFn, pool: np.ndarray, X: np.ndarray, miss: np.ndarray,
                            rng: np.random.Generator, *, proposals: int = SIR_PROPOSALS, components: int = 32,
                            widen: float = 1.5) -> tuple[np.ndarray, float]:
    """Importance-resampled draws of the missing entries under a model's exact density ``log_prob``.

    A full-covariance Gaussian mixture (``components``) is fitted to ``pool``, the model's own
    samples; for each distinct observed row its conditional given the observed part (closed form,
    :func:`conditional_mixture`), covariances widened by ``widen**2`` so its tails cover the
    model's, proposes ``max(proposals, 4 r)`` values for the r rows; each is weighted by the model's
    density over the proposal's, ``log_prob(row) - log q``, and the r rows are resampled
    (:func:`importance_resample`). Exact for the model as the proposals grow (sampling-importance-
    resampling); its cost is one density evaluation per proposal, whatever the width. Rows with
    every entry observed are left alone. Returns the filled copy and the smallest effective sample
    size over the distinct rows (how well the proposal fitted the model's conditional).
    """
    from scipy.special import logsumexp
    from sklearn.mixture import GaussianMixture

    X = np.array(X, dtype=np.float64)
    pool = np.asarray(pool, dtype=np.float64)
    gm = GaussianMixture(min(int(components), max(1, len(pool) // 50)), covariance_type="full", reg_covar=1e-6,
                         random_state=int(rng.integers(2**31))).fit(pool)
    which = _group_rows(X, miss)
    worst = float("inf")
    for g, i in enumerate(np.unique(which, return_index=True)[1]):
        rows = np.flatnonzero(which == g)
        m_ = miss[i]
        if not m_.any():
            continue
        post, cm, cc = conditional_mixture(gm.weights_, gm.means_, gm.covariances_, X[i, ~m_], m_)
        post, cm, cc = post[0], cm[:, 0], cc * float(widen) ** 2
        P = max(int(proposals), 4 * len(rows))
        comp = rng.choice(len(post), size=P, p=post)
        chol = np.linalg.cholesky(cc + 1e-12 * np.eye(cc.shape[1]))
        eps = rng.standard_normal((P, int(m_.sum())))
        draw = cm[comp] + np.einsum("pij,pj->pi", chol[comp], eps)
        # log q(draw): the widened conditional mixture's density
        lq = []
        for k in range(len(post)):
            sol = np.linalg.solve(chol[k], (draw - cm[k]).T)
            lq.append(np.log(max(post[k], 1e-300)) - 0.5 * (sol**2).sum(0) - np.log(np.diag(chol[k])).sum()
                      - 0.5 * draw.shape[1] * np.log(2 * np.pi))
        full = np.repeat(X[i:i + 1], P, 0)
        full[:, m_] = draw
        log_w = np.asarray(log_prob(full), dtype=np.float64) - logsumexp(np.stack(lq), 0)
        log_w[~np.isfinite(log_w)] = -np.inf
        worst = min(worst, effective_sample_size(log_w[np.isfinite(log_w)]) if np.isfinite(log_w).any() else 0.0)
        X[rows] = np.where(miss[rows], full[importance_resample(log_w, len(rows), rng)], X[rows])
    return X, worst


def nearest_conditional(pool: np.ndarray, X: np.ndarray, miss: np.ndarray, rng: np.random.Generator, *,
                        k: int = 256, per_row: int = 1, scale: np.ndarray | None = None,
                        log_weight: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Fill each row's missing entries with those of a draw in ``pool`` near it in the observed coordinates.

    ``pool`` (M, d): draws of the model; distances use the row's observed coordinates only
    (divided by ``scale``). For each distinct observed row shared by r rows, its
    ``max(k, per_row * r)`` nearest draws are the neighbourhood, optionally weighted by
    ``exp(log_weight(indices))`` (e.g. a rejection sampler's acceptance probability, so that only
    the neighbours need it); the r rows are resampled from it (systematic resampling: each
    neighbour kept in proportion to its weight). This is importance resampling with a box kernel
    whose width adapts to the pool's density: exact for the model as M grows with k / M -> 0.
    """
    X = np.array(X, dtype=np.float64)
    pool = np.asarray(pool, dtype=np.float64)
    scale = np.ones(X.shape[1]) if scale is None else np.asarray(scale, dtype=np.float64)
    which = _group_rows(X, miss)
    firsts = np.unique(which, return_index=True)[1]
    for g, i in enumerate(firsts):
        rows = np.flatnonzero(which == g)
        o = ~miss[i]
        kk = int(min(len(pool), max(1, k, per_row * len(rows))))
        if not o.any():
            near = rng.choice(len(pool), size=kk, replace=False)
        else:
            dist = (((pool[:, o] - X[i, o]) / scale[o]) ** 2).sum(1)
            near = np.argpartition(dist, kk - 1)[:kk] if kk < len(pool) else np.arange(len(pool))
        lw = np.zeros(len(near)) if log_weight is None else np.asarray(log_weight(near), dtype=np.float64)
        pick = near[importance_resample(lw, len(rows), rng)]
        X[rows] = np.where(miss[rows], pool[pick], X[rows])
    return X


__all__ = ["LogProbFn", "DENSITY_ROUTE_MAX_DIM", "DENSITY_ROUTE_MAX_ROWS", "SIR_PROPOSALS", "SIR_MAX_DIM",
           "distinct_rows", "density_route", "stratified_uniforms", "line_conditional", "inverse_cdf_draws",
           "grid_gibbs_impute", "gaussian_mixture_conditional", "isotropic_mixture_conditional", "conditional_mixture",
           "mixture_proposal_impute", "importance_resample", "effective_sample_size", "nearest_conditional"]
