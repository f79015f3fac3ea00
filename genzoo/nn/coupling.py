"""Invertible building blocks for normalising flows: coupling layers and their pieces.

Every block maps data-side ``x`` to noise-side ``u`` with ``forward(x, context) -> (u, logdet)``
and back with ``inverse(u, context) -> (x, logdet)``; ``logdet`` is ``log|det du/dx|`` of the
forward direction, per row, in both calls (so ``inverse`` returns ``-log|det dx/du|``'s negative:
the same quantity evaluated at the recovered ``x``).

- :func:`rq_spline`: the monotonic rational-quadratic spline of Durkan et al., "Neural Spline
  Flows" (NeurIPS 2019), identity outside ``[-B, B]`` (linear tails), with its analytic inverse.
- :class:`AffineCoupling`: RealNVP's affine coupling (Dinh et al., "Density estimation using
  Real NVP", ICLR 2017) with a soft-clamped log-scale.
- :class:`SplineCoupling`: coupling whose elementwise transform is a rational-quadratic spline.
- :func:`coupling_partitions`: which coordinates each layer conditions on / transforms, so that
  every coordinate is transformed in every pair of layers and the split changes between pairs
  (mixes all coordinates in any dimension >= 2).
- :class:`ActNorm`: per-coordinate affine map initialised from data (Kingma & Dhariwal, Glow 2018).
- :class:`ResidualNet`: the conditioner network (residual MLP with an optional context input).
- :class:`InvertibleSequence`: a chain of the blocks above.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------- the spline


def rq_spline(x: torch.Tensor, widths: torch.Tensor, heights: torch.Tensor, derivs: torch.Tensor, *,
              inverse: bool = False, bound: float = 5.0, min_width: float = 1e-4, min_height: float = 1e-4,
              min_deriv: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Elementwise monotonic rational-quadratic spline on ``[-bound, bound]``, identity outside.

    ``x``: (..., ) values; ``widths``, ``heights``: (..., K) unnormalised bin sizes (softmax);
    ``derivs``: (..., K - 1) unconstrained derivatives at the interior knots (softplus). The
    boundary derivatives are 1, so the spline joins the identity tails smoothly (C1).
    ``min_*`` are fractions of the interval (widths, heights) and a floor on derivatives.
    Returns ``(y, log|dy/dx|)`` in the forward direction; with ``inverse=True`` it solves the
    quadratic of Durkan et al. (2019, eq. 6-8) and returns ``(x, log|dy/dx| at x)``.
    """
    K = widths.shape[-1]
    inside = x.abs() <= bound
    xc = x.clamp(-bound, bound)

    # bin widths (row 0) and heights (row 1), each at least min_* of the span: (..., 2, K)
    floor = torch.tensor([min_width, min_height], dtype=x.dtype, device=x.device)[:, None]
    wh = (floor + (1 - floor * K) * torch.softmax(torch.stack([widths, heights], -2), -1)) * (2 * bound)
    knots = F.pad(torch.cumsum(wh, -1), (1, 0)) - bound  # (..., 2, K + 1), from -bound to bound
    knots[..., -1] = bound  # exactly, whatever the rounding of the sum
    wh = knots[..., 1:] - knots[..., :-1]
    # derivatives at the K + 1 knots: 1 at both ends (identity tails, C1 join), positive inside
    one = torch.ones_like(derivs[..., :1])
    d = torch.cat([one, min_deriv + F.softplus(derivs + _SOFTPLUS_ONE), one], -1)  # (..., K + 1)

    # the bin of each point (by x forward, by y inverse), then that bin's six numbers in one gather
    k = torch.searchsorted(knots[..., int(inverse), 1:-1].contiguous(), xc[..., None].contiguous())
    k = k.clamp_(max=K - 1)  # (..., 1)
    table = torch.cat([knots[..., :-1], wh, torch.stack([d[..., :-1], d[..., 1:]], -2)], -2)  # (..., 6, K)
    xk, yk, wk, hk, dk, dk1 = table.gather(-1, k[..., None, :].expand(*k.shape[:-1], 6, 1))[..., 0].unbind(-1)

    s = hk / wk  # slope of the bin's chord
    c2 = dk1 + dk - 2 * s
    if not inverse:
        xi = ((xc - xk) / wk).clamp(0, 1)
        t = xi * (1 - xi)
        den = s + c2 * t
        y = yk + hk * (s * xi * xi + dk * t) / den
    else:  # the root in [0, 1] of a xi^2 + b xi + c = 0, in its numerically stable form
        dy = xc - yk
        a = hk * (s - dk) + dy * c2
        b = hk * dk - dy * c2
        c = -s * dy
        xi = ((2 * c) / (-b - (b * b - 4 * a * c).clamp_min(0).sqrt())).clamp(0, 1)
        t = xi * (1 - xi)
        den = s + c2 * t
        y = xk + xi * wk
    logdet = torch.log(s * s * (dk1 * xi * xi + 2 * s * t + dk * (1 - xi) ** 2) / (den * den))
    return torch.where(inside, y, x), torch.where(inside, logdet, 0.0)


def gaussianising_spline(v: torch.Tensor, bins: int, bound: float, *, min_width: float = 1e-4,
                         min_height: float = 1e-4, min_deriv: float = 1e-3) -> torch.Tensor:
    """Unconstrained parameters ``(3 * bins - 1,)`` of the RQ spline that maps samples ``v`` to N(0, 1).

    Interior knots sit at the empirical quantiles ``j / bins`` of ``v`` (data side) and at the
    standard-normal quantiles ``Phi^-1(j / bins)`` (noise side), so every bin holds the same
    share of the data. The derivative at a knot is the one of the exact Gaussianising map,
    ``p(x) / phi(y)``, with ``p(x)`` counted in a window of half the neighbouring knot spacing.
    This inverts the parametrisation of :func:`rq_spline`.
    """
    v = torch.sort(v.detach().double().flatten()).values
    n = len(v)
    levels = torch.arange(1, bins, dtype=torch.float64) / bins  # (K - 1,)
    inner = 0.98 * bound  # keep the outer bins open even for data that fills [-bound, bound]
    xk = torch.quantile(v, levels).clamp(-inner, inner)
    yk = (math.sqrt(2) * torch.erfinv(2 * levels - 1)).clamp(-inner, inner)
    edge = torch.tensor([bound], dtype=torch.float64)

    def sizes(knots: torch.Tensor, floor: float) -> torch.Tensor:
        """Bin sizes as fractions of the span, each at least twice the floor (ties spread apart)."""
        frac = torch.diff(knots, prepend=-edge, append=edge).clamp_min(0) / (2 * bound)
        frac = frac.clamp_min(2 * floor)
        return frac / frac.sum()

    w, h = sizes(xk, min_width), sizes(yk, min_height)  # (K,)
    logits_w = torch.log((w - min_width) / (1 - min_width * bins))
    logits_h = torch.log((h - min_height) / (1 - min_height * bins))
    half = 0.5 * torch.minimum(w[:-1], w[1:]) * (2 * bound)  # (K - 1,) window half-widths
    count = torch.searchsorted(v, xk + half) - torch.searchsorted(v, xk - half)
    density = (count + 0.5) / (n * 2 * half)
    d = (density / torch.exp(-0.5 * yk * yk) * math.sqrt(2 * math.pi)).clamp(2 * min_deriv, 1e3)
    raw_d = torch.log(torch.expm1(d - min_deriv)) - _SOFTPLUS_ONE
    return torch.cat([logits_w, logits_h, raw_d]).float()


# softplus(0 + this) == 1 - min_deriv ~ 1: zero network outputs give the identity spline
_SOFTPLUS_ONE = math.log(math.expm1(1.0 - 1e-3))


# ----------------------------------------------------------------------------- the mixture CDF

_LOG_2PI = math.log(2 * math.pi)


def _ndtri_log(lp: torch.Tensor) -> torch.Tensor:
    """``Phi^-1(exp(lp))`` for ``lp <= log 0.5``, accurate far into the tail (float64).

    Where ``exp(lp)`` is representable it is ``ndtri``; below that (more than ~37 std out)
    Newton's method on ``log Phi(z) = lp`` from the asymptote ``-sqrt(-2 lp)``. Each branch
    sees only inputs valid for it, so no NaN leaks into the gradient of the other.
    """
    cut = -700.0
    near = torch.special.ndtri(torch.exp(lp.clamp_min(cut)))
    if not bool((lp < cut).any()):
        return near
    far_lp = lp.clamp_max(cut)
    z = -torch.sqrt(-2 * far_lp)
    for _ in range(6):  # d log Phi / dz = phi(z) / Phi(z)
        lz = torch.special.log_ndtr(z)
        z = z - (lz - far_lp) * torch.exp(lz + 0.5 * z * z + 0.5 * _LOG_2PI)
    return torch.where(lp >= cut, near, z)


def mixture_cdf(x: torch.Tensor, logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor, *,
                inverse: bool = False, background: float = 1e-3,
                min_log_scale: float = -8.0, max_log_scale: float = math.log(2.0), logdet: bool = True,
                tol: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Elementwise ``y = Phi^-1(F(x))``, ``F`` the CDF of a 1-D Gaussian mixture; with its inverse.

    The Gaussianisation layer of Meng et al., "Gaussianization Flows" (AISTATS 2020), used as
    a coupling transform in the way Flow++ (Ho et al., ICML 2019) uses a logistic-mixture CDF:
    if ``x`` follows the mixture, ``y`` is exactly N(0, 1), so a few components describe a
    coordinate with several thin modes in a handful of numbers per mode (a spline needs
    several bins per mode). ``x``: (...,); ``logits``, ``means``, ``log_scales``: (..., K).
    A fixed background component N(0, 2^2) of weight ``background`` keeps the map's tails
    tame (far from every learned component it is a shifted identity, not a cliff) at a cost
    of at most ``background`` nats. The forward map is computed in float64 in log space
    (``log_ndtr``). Returns ``(y, log|dy/dx|)`` forward; with ``inverse=True`` it solves for ``x`` (the map is
    strictly increasing) by :func:`_mixture_quantile`, to a last Newton step ``<= tol * (1 + |x|)``
    (default 1e-6 for float32 ``x``, whose 7 digits that step's square leaves untouched, 1e-12
    otherwise), and returns ``(x, log|dy/dx| at x)``; ``logdet=False`` skips that last
    evaluation (zeros instead), for sampling, which needs only ``x``.
    """
    dt = x.dtype
    x = x.double()
    bg = torch.ones_like(means[..., :1], dtype=torch.float64)  # the background component: (..., 1)
    mu = torch.cat([means.double(), bg * 0.0], -1)  # (..., K + 1)
    ls = torch.cat([log_scales.double().clamp(min_log_scale, max_log_scale), bg * math.log(2.0)], -1)

    def forward(v):
        lw = torch.log_softmax(logits.double(), -1) + math.log1p(-background)
        lw = torch.cat([lw, bg * math.log(background)], -1)  # (..., K + 1)
        z = (v[..., None] - mu) * torch.exp(-ls)  # standardised distances: (..., K + 1)
        lf = torch.logsumexp(lw + torch.special.log_ndtr(z), -1)  # log F
        lg = torch.logsumexp(lw + torch.special.log_ndtr(-z), -1)  # log(1 - F)
        q = _ndtri_log(torch.minimum(lf, lg))  # Phi^-1 of the smaller tail, then the sign
        y = torch.where(lf < lg, q, -q)
        log_pdf = torch.logsumexp(lw - 0.5 * z * z - ls, -1) - 0.5 * _LOG_2PI
        return y, log_pdf + 0.5 * y * y + 0.5 * _LOG_2PI  # log f(x) - log phi(y)

    if not inverse:
        y, ld = forward(x)
        return y.to(dt), ld.to(dt)
    if tol is None:
        tol = 1e-6 if dt == torch.float32 else 1e-12
    with torch.no_grad():  # the weights in linear space (a softmax by hand: faster over a short last axis)
        e = logits.double()
        e = torch.exp(e - e.amax(-1, keepdim=True))
        w = torch.cat([e * ((1 - background) / e.sum(-1, keepdim=True)), bg * background], -1)
        xs = _mixture_quantile(x, w, mu, ls, tol)
    if not logdet:
        return xs.to(dt), torch.zeros_like(xs, dtype=dt)
    _, ld = forward(xs)
    return xs.to(dt), ld.to(dt)


_SQRT_HALF = math.sqrt(0.5)
_FAR = 30.0  # |y| beyond which Phi(-|y|) (< 1e-197) is solved in log space


def _mixture_quantile(y: torch.Tensor, w: torch.Tensor, mu: torch.Tensor, ls: torch.Tensor,
                      tol: float) -> torch.Tensor:
    """The ``x`` with ``F(x) = Phi(y)``, ``F`` the mixture CDF of :func:`mixture_cdf` (float64, no grad).

    ``y``: (...,); ``w``, ``mu``, ``ls``: (..., K) weights, means, log-scales. Solves for
    the smaller tail, mirrored so that it is always a lower tail ``G(v) = Phi(t)``, ``t = -|y|``
    (``v = -x`` where ``y > 0``), in linear space with ``erfc`` (several times cheaper than
    ``log_ndtr``, and exact in the relative sense down to ~1e-300; rows with ``|y| > 30`` go
    to :func:`_mixture_quantile_log`).

    The root lies in ``[min_k, max_k](mu_k + s_k t)`` (``F`` is a weighted mean of the
    component CDFs); from the middle of that bracket, :func:`_safe_newton` in float32 (erfc
    and exp cost a quarter of float64's) to ~1e-5, then in float64 until a Newton step moves
    ``x`` by at most ``tol * (1 + |x|)``; as Newton converges quadratically, the error left is
    about that step squared over the scale of the narrowest component nearby. (float32
    alone is off by hundreds of float32 ulps on some rows, hence the float64 finish.)
    """
    shape = y.shape
    K = w.shape[-1]
    y, w, mu, ls = y.reshape(-1), w.reshape(-1, K), mu.reshape(-1, K), ls.reshape(-1, K)
    far = y.abs() > _FAR
    out = None
    if bool(far.any()):
        out = torch.empty_like(y)
        out[far] = _mixture_quantile_log(y[far], torch.log(w[far]), mu[far], ls[far])
        y, w, mu, ls = y[~far], w[~far], mu[~far], ls[~far]

    sign = torch.where(y < 0, 1.0, -1.0).to(y)  # mirror: solve the lower tail of the mirrored mixture
    t = -y.abs()
    m = mu * sign[:, None]  # (N, K)
    s = torch.exp(ls)
    q = torch.addcmul(m, s, t[:, None])  # the components' own Phi(t)-quantiles bracket the mixture's
    lo, hi = q.amin(-1), q.amax(-1)
    # u = (m - v) / (s sqrt 2) = a - v r: G(v) = sum_k w_k erfc(u_k) / 2, G'(v) = sum_k c_k exp(-u_k^2)
    r = s.reciprocal_().mul_(_SQRT_HALF)
    a = m.mul_(r)
    c = (w * r).mul_(1 / math.sqrt(math.pi))
    log_target = torch.log(0.5 * torch.erfc(-_SQRT_HALF * t))  # log Phi(t), Phi(t) in (1e-197, 0.5]
    coef = (a, r, w, c, log_target)
    v = 0.5 * (lo + hi)  # (a smarter start, from the components sorted by mean, was no faster)
    v = _safe_newton(v.float(), lo.float(), hi.float(), [z.float() for z in coef], 1e-5, 40)
    v = _safe_newton(v.double().clamp(lo, hi), lo, hi, coef, tol, 100)
    v = v * sign
    if out is None:
        return v.reshape(shape)
    out[~far] = v
    return out.reshape(shape)


def _safe_newton(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, coef, tol: float,
                 max_iter: int) -> torch.Tensor:
    """Solve ``log G(v) = log Phi(t)`` per row (see :func:`_mixture_quantile`) inside ``[lo, hi]``.

    Newton steps on ``log G`` (``d log G / dv = G' / G``) with the safeguard of Press et al.'s
    ``rtsafe`` (*Numerical Recipes*): bisect whenever Newton would leave the bracket or would
    not halve the step before last. A row stops when its step is ``<= tol * (1 + |v|)``; rows
    that stop are frozen, and dropped from the batch once a quarter have (so the few slow
    rows cost little). Works in the dtype of its inputs; ``coef`` = ``(a, r, w, c, log Phi(t))``.
    ``|u|`` is clipped where erfc and exp would turn subnormal or zero (about ten times slower
    on x86), i.e. where the terms are below 1e-36 (float32) or 1e-294 (float64) of one: nothing
    next to ``Phi(t) > 1e-197`` (float32 rows with ``|y| > 12`` are left to the float64 pass).
    """
    a, r, w, c, log_target = coef
    lim = 9.0 if v.dtype == torch.float32 else 26.0  # erfc(lim), exp(-lim^2) still normal numbers
    n = len(v)
    res = v.clone()
    rows = torch.arange(n, device=v.device)
    frozen = torch.zeros(n, dtype=torch.bool, device=v.device)
    step_before = hi - lo
    for _ in range(max_iter):
        u = torch.addcmul(a, v[:, None], r, value=-1).clamp_(-lim, lim)  # (n, K)
        G = 0.5 * torch.linalg.vecdot(torch.erfc(u), w)
        slope = torch.linalg.vecdot(u.mul_(u).neg_().exp_(), c)
        gap = torch.log(G) - log_target  # < 0: the root lies above v
        lo, hi = torch.where(gap < 0, v, lo), torch.where(gap > 0, v, hi)
        step = gap * G / slope
        new = v - step
        bisect = ~((new >= lo) & (new <= hi)) | (2 * step.abs() > step_before)  # NaN steps bisect too
        new = torch.where(bisect, 0.5 * (lo + hi), new)
        new = torch.where(frozen, v, new)
        step_before = torch.where(bisect, 0.5 * (hi - lo), step.abs())
        frozen |= ((new - v).abs() <= tol * (1 + new.abs())) | (gap == 0)
        v = new
        n_frozen = int(frozen.sum())
        if 4 * n_frozen >= len(v):
            if n_frozen == len(v):
                return res.index_copy_(0, rows, v)
            done, keep = frozen.nonzero()[:, 0], (~frozen).nonzero()[:, 0]
            res.index_copy_(0, rows[done], v[done])
            rows, v, lo, hi, step_before, a, r, w, c, log_target = (
                z.index_select(0, keep) for z in (rows, v, lo, hi, step_before, a, r, w, c, log_target))
            frozen = torch.zeros(len(v), dtype=torch.bool, device=v.device)
    return res.index_copy_(0, rows, v)  # not reached in practice: max_iter bisections pass any tolerance


def _mixture_quantile_log(y: torch.Tensor, lw: torch.Tensor, mu: torch.Tensor, ls: torch.Tensor) -> torch.Tensor:
    """:func:`_mixture_quantile` in log space (``log_ndtr``), for the far tails (``|y| > 30``).

    Bisection between the smallest and the largest component quantile ``mu_k + s_k y``, then
    Newton steps on the log of the smaller tail, kept inside the bracket.
    """
    inv_s = torch.exp(-ls)
    q = mu + torch.exp(ls) * y[..., None]  # (..., K)
    lo, hi = q.amin(-1), q.amax(-1)
    neg = y < 0
    sign = torch.where(neg, 1.0, -1.0).to(y)[..., None]  # compare the tail that is small
    target = torch.special.log_ndtr(-y.abs())  # log Phi(y) for y < 0, log(1 - Phi(y)) otherwise

    def gap(v, slope=False):  # log tail(v) - target (increasing in v for y < 0, else decreasing)
        z = (v[..., None] - mu) * inv_s
        tail = torch.logsumexp(lw + torch.special.log_ndtr(sign * z), -1)
        if not slope:
            return tail - target
        log_pdf = torch.logsumexp(lw - 0.5 * z * z - ls, -1) - 0.5 * _LOG_2PI
        return tail - target, sign[..., 0] * torch.exp(log_pdf - tail)

    for _ in range(40):  # bisection ...
        mid = 0.5 * (lo + hi)
        g = gap(mid)
        below = torch.where(neg, g < 0, g > 0)  # F(mid) < Phi(y)
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    xs = 0.5 * (lo + hi)
    for _ in range(5):  # ... then Newton on the log tail, kept inside the bracket
        g, slope = gap(xs, slope=True)
        step = xs - g / slope
        xs = torch.where(torch.isfinite(step), step, xs).clamp(lo, hi)
    return xs


def mixture_init(v: torch.Tensor, components: int, seed: int = 0, max_rows: int = 4000) -> torch.Tensor:
    """Unconstrained parameters ``(3 * components,)`` of the mixture CDF fitted to samples ``v``.

    A 1-D Gaussian mixture by EM (scikit-learn) on at most ``max_rows`` of them, so that the
    layer starts as the marginal Gaussianisation of ``v`` (cf. :func:`gaussianising_spline`).
    """
    from sklearn.mixture import GaussianMixture

    a = v.detach().double().cpu().numpy().reshape(-1, 1)
    if len(a) > max_rows:
        a = a[np.random.default_rng(seed).choice(len(a), max_rows, replace=False)]
    gm = GaussianMixture(components, covariance_type="diag", reg_covar=1e-6, max_iter=200,
                         random_state=seed).fit(a)
    w = torch.as_tensor(gm.weights_).clamp_min(1e-6)
    return torch.cat([w.log(), torch.as_tensor(gm.means_[:, 0]),
                      0.5 * torch.as_tensor(gm.covariances_[:, 0]).log()]).float()


def mixture_identity(components: int, spread: float = 1.0) -> torch.Tensor:
    """Parameters of a mixture that is close to N(0, 1) (so the layer starts near the identity),
    its components at distinct standard-normal quantiles (times ``spread``) so that they can
    specialise; the smaller ``spread``, the closer to the identity."""
    q = (torch.arange(components, dtype=torch.float64) + 0.5) / components
    mu = spread * math.sqrt(2) * torch.erfinv(2 * q - 1)
    s = math.sqrt(max(1 - float(mu.var(unbiased=False)), 0.05))
    return torch.cat([torch.zeros(components), mu, torch.full((components,), math.log(s))]).float()


# ----------------------------------------------------------------------------- conditioner


class ResidualNet(nn.Module):
    """Residual MLP ``in_dim (+ context) -> out_dim``: ``blocks`` pre-activation residual blocks.

    The context (e.g. a label embedding) enters at the input and is added to every block, so
    conditioning is strong at every depth. The output layer starts at zero, so a coupling built
    on it starts as the identity map. With ``fourier > 0`` the input ``x`` is also fed as
    ``sin / cos(2^k x)``, ``k < fourier`` (Tancik et al. 2020), so that the network can switch
    sharply with ``x`` (e.g. between the sharp modes of the data) early in training.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, blocks: int = 2, context_dim: int = 0,
                 fourier: int = 0):
        super().__init__()
        self.register_buffer("freqs", 2.0 ** torch.arange(fourier, dtype=torch.float32), persistent=False)
        self.inp = nn.Linear(in_dim * (1 + 2 * fourier) + context_dim, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(blocks))
        self.ctx = nn.ModuleList(nn.Linear(context_dim, hidden) for _ in range(blocks)) if context_dim else None
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, out_dim))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if len(self.freqs):
            a = (x[..., None] * self.freqs).flatten(-2)  # (B, in_dim * fourier)
            x = torch.cat([x, a.sin(), a.cos()], -1)
        h = self.inp(x if context is None else torch.cat([x, context], -1))  # (B, H)
        for i, block in enumerate(self.blocks):
            if self.ctx is not None and context is not None:
                h = h + self.ctx[i](context)
            h = h + block(h)
        return self.out(h)


# ----------------------------------------------------------------------------- couplings


def coupling_partitions(dim: int, n_layers: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """(conditioning coordinates, transformed coordinates) for each of ``n_layers`` couplings.

    Layers come in pairs that swap the two halves of a permutation, so every coordinate is
    transformed once per pair; the first pair uses the natural order, later pairs a seeded
    random permutation, so which coordinates condition which changes (for ``dim > 2``).
    """
    if dim < 2:
        raise ValueError(f"a coupling flow needs dim >= 2; got {dim}")
    rng = np.random.default_rng(seed)
    half = dim // 2
    parts = []
    for i in range(n_layers):
        if i % 2 == 0:
            perm = np.arange(dim) if i == 0 else rng.permutation(dim)
            a, b = sorted(perm[:half].tolist()), sorted(perm[half:].tolist())
        parts.append((a, b) if i % 2 == 0 else (b, a))
    return parts


class _Coupling(nn.Module):
    """Shared part of a coupling: split by index, condition on one part, transform the other."""

    def __init__(self, dim: int, cond_idx: list[int], trans_idx: list[int], params_per_coord: int,
                 hidden: int, blocks: int, context_dim: int, fourier: int = 0):
        super().__init__()
        self.register_buffer("cond_idx", torch.as_tensor(cond_idx, dtype=torch.long))
        self.register_buffer("trans_idx", torch.as_tensor(trans_idx, dtype=torch.long))
        self.n_params = params_per_coord
        self.net = ResidualNet(len(cond_idx), len(trans_idx) * params_per_coord, hidden, blocks, context_dim,
                               fourier)

    def _params(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        p = self.net(x[:, self.cond_idx], context)  # (B, T * P)
        return p.reshape(len(x), len(self.trans_idx), self.n_params)  # (B, T, P)

    def _transform(self, v: torch.Tensor, p: torch.Tensor, inverse: bool,
                   logdet: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _run(self, x: torch.Tensor, context: torch.Tensor | None, inverse: bool, logdet: bool = True):
        p = self._params(x, context)
        v, logdet = self._transform(x[:, self.trans_idx], p, inverse, logdet)  # (B, T), (B, T)
        out = x.clone()
        out[:, self.trans_idx] = v
        return out, logdet.sum(-1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        return self._run(x, context, inverse=False)

    def inverse(self, u: torch.Tensor, context: torch.Tensor | None = None, *, logdet: bool = True):
        """``(x, logdet)``; ``logdet=False`` lets a block skip work that only the log-determinant needs."""
        return self._run(u, context, inverse=True, logdet=logdet)


class AffineCoupling(_Coupling):
    """RealNVP coupling ``u_b = x_b * exp(s(x_a)) + t(x_a)``; ``s`` soft-clamped to ``(-clamp, clamp)``."""

    def __init__(self, dim: int, cond_idx: list[int], trans_idx: list[int], hidden: int = 128,
                 blocks: int = 2, context_dim: int = 0, clamp: float = 3.0, fourier: int = 0):
        super().__init__(dim, cond_idx, trans_idx, 2, hidden, blocks, context_dim, fourier)
        self.clamp = clamp

    def _transform(self, v, p, inverse, logdet=True):
        s = self.clamp * torch.tanh(p[..., 0] / self.clamp)  # (B, T) log-scale
        t = p[..., 1]
        if inverse:
            return (v - t) * torch.exp(-s), s
        return v * torch.exp(s) + t, s


class SplineCoupling(_Coupling):
    """Neural-spline coupling: each transformed coordinate goes through its own RQ spline.

    The spline has ``bins`` bins on ``[-bound, bound]`` and is the identity outside (Durkan et
    al. 2019, "coupling RQ-NSF"); its 3K - 1 parameters per coordinate come from the conditioner.
    """

    def __init__(self, dim: int, cond_idx: list[int], trans_idx: list[int], hidden: int = 128,
                 blocks: int = 2, context_dim: int = 0, bins: int = 16, bound: float = 5.0, fourier: int = 0):
        super().__init__(dim, cond_idx, trans_idx, 3 * bins - 1, hidden, blocks, context_dim, fourier)
        self.bins = bins
        self.bound = bound

    def _transform(self, v, p, inverse, logdet=True):
        K = self.bins
        return rq_spline(v, p[..., :K], p[..., K:2 * K], p[..., 2 * K:], inverse=inverse, bound=self.bound)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor, context: torch.Tensor | None = None) -> None:
        """Start as each transformed coordinate's marginal Gaussianisation (whatever the condition).

        Sets the conditioner's output bias (its weights stay zero) to the spline that maps the
        empirical marginal of ``x[:, trans_idx]`` to N(0, 1); training then only has to learn
        how the condition changes it. (Marginal Gaussianisation: Chen & Gopinath 2000; used as
        a flow initialisation by Meng et al., "Gaussianization Flows", AISTATS 2020.)
        """
        params = [gaussianising_spline(x[:, j], self.bins, self.bound) for j in self.trans_idx.tolist()]
        last = self.net.out[1]
        last.bias.copy_(torch.stack(params).reshape(-1).to(last.bias))


class MixtureCDFCoupling(_Coupling):
    """Coupling whose elementwise transform is a Gaussian-mixture CDF followed by ``Phi^-1``.

    ``components`` Gaussians per transformed coordinate, their weights, means and scales from
    the conditioner (see :func:`mixture_cdf`). Starts near the identity; ``initialize`` makes
    it the marginal Gaussianisation of the data that reaches it.
    """

    def __init__(self, dim: int, cond_idx: list[int], trans_idx: list[int], hidden: int = 64,
                 blocks: int = 1, context_dim: int = 0, components: int = 16, fourier: int = 0,
                 spread: float = 1.0):
        super().__init__(dim, cond_idx, trans_idx, 3 * components, hidden, blocks, context_dim, fourier)
        self.components = components
        with torch.no_grad():
            self.net.out[1].bias.copy_(mixture_identity(components, spread).repeat(len(trans_idx)))

    def _transform(self, v, p, inverse, logdet=True):
        K = self.components
        return mixture_cdf(v, p[..., :K], p[..., K:2 * K], p[..., 2 * K:], inverse=inverse, logdet=logdet)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor, context: torch.Tensor | None = None) -> None:
        """Start as each transformed coordinate's marginal Gaussianisation (a 1-D mixture fit)."""
        params = [mixture_init(x[:, j], self.components) for j in self.trans_idx.tolist()]
        last = self.net.out[1]
        last.bias.copy_(torch.stack(params).reshape(-1).to(last.bias))


# ----------------------------------------------------------------------------- elementwise and chains


class ActNorm(nn.Module):
    """``u = (x - shift) * exp(-log_scale)`` per coordinate; ``initialize`` sets it so u is standardised."""

    def __init__(self, dim: int):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor, context: torch.Tensor | None = None) -> None:
        self.shift.copy_(x.mean(0))
        self.log_scale.copy_(torch.log(x.std(0).clamp_min(1e-6)))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        return (x - self.shift) * torch.exp(-self.log_scale), (-self.log_scale).sum().expand(len(x))

    def inverse(self, u: torch.Tensor, context: torch.Tensor | None = None, *, logdet: bool = True):
        return u * torch.exp(self.log_scale) + self.shift, (-self.log_scale).sum().expand(len(u))


class InvertibleLinear(nn.Module):
    """``u = W x`` with ``W = P L (U + diag(sign * exp(log_s)))`` (Glow's LU form, Kingma & Dhariwal 2018).

    ``P`` is a fixed permutation, ``L`` unit lower- and ``U`` strictly upper-triangular, so
    ``log|det W| = sum(log_s)`` and the inverse is two triangular solves. Starts as a random
    rotation (seeded), so each coupling after it mixes every coordinate with every other: a
    coupling alone only transforms one half given the other, in fixed axes, which fits thin
    Gaussians tilted against the axes poorly.
    """

    def __init__(self, dim: int, seed: int = 0):
        super().__init__()
        import scipy.linalg

        g = np.random.default_rng(seed)
        Q = np.linalg.qr(g.standard_normal((dim, dim)))[0]
        P, L, U = scipy.linalg.lu(Q)
        d = np.diag(U)
        self.register_buffer("perm", torch.as_tensor(P, dtype=torch.float32))
        self.register_buffer("sign", torch.as_tensor(np.sign(d), dtype=torch.float32))
        self.register_buffer("lower_mask", torch.tril(torch.ones(dim, dim), -1))
        self.lower = nn.Parameter(torch.as_tensor(L, dtype=torch.float32))
        self.upper = nn.Parameter(torch.as_tensor(np.triu(U, 1), dtype=torch.float32))
        self.log_s = nn.Parameter(torch.as_tensor(np.log(np.abs(d)), dtype=torch.float32))

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        eye = torch.eye(len(self.log_s), device=self.log_s.device, dtype=self.log_s.dtype)
        L = self.lower * self.lower_mask + eye
        U = self.upper * self.lower_mask.T + torch.diag(self.sign * torch.exp(self.log_s))
        return L, U

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        L, U = self._factors()
        W = self.perm @ L @ U
        return x @ W.T, self.log_s.sum().expand(len(x))

    def inverse(self, u: torch.Tensor, context: torch.Tensor | None = None, *, logdet: bool = True):
        L, U = self._factors()
        # x = U^-1 L^-1 P^T u, on columns: solve with the rows of u as right-hand sides
        v = (u @ self.perm).T  # P^T u, as columns (P is a permutation: P^-1 = P^T)
        v = torch.linalg.solve_triangular(L, v, upper=False, unitriangular=True)
        x = torch.linalg.solve_triangular(U, v, upper=True).T
        return x, self.log_s.sum().expand(len(u))


class InvertibleSequence(nn.Module):
    """A chain of invertible blocks; ``forward`` runs them in order, ``inverse`` in reverse."""

    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        total = torch.zeros(len(x), device=x.device, dtype=x.dtype)
        for b in self.blocks:
            x, ld = b(x, context)
            total = total + ld
        return x, total

    def inverse(self, u: torch.Tensor, context: torch.Tensor | None = None, *, logdet: bool = True):
        """``(x, logdet)``; with ``logdet=False`` (sampling) the blocks may skip it and it is not summed."""
        total = torch.zeros(len(u), device=u.device, dtype=u.dtype)
        for b in reversed(self.blocks):
            u, ld = b.inverse(u, context, logdet=logdet)
            if logdet:
                total = total + ld
        return u, total

    @torch.no_grad()
    def initialize(self, x: torch.Tensor, context: torch.Tensor | None = None, n_blocks: int | None = None) -> None:
        """Data-dependent initialisation of the first ``n_blocks`` blocks (all by default) that have
        one, in order, each on what reaches it."""
        for b in list(self.blocks)[:n_blocks]:
            if hasattr(b, "initialize"):
                b.initialize(x, context)
            x, _ = b(x, context)


# ----------------------------------------------------------------------------- base distributions


class GaussianMixtureBase(nn.Module):
    """A learned full-covariance Gaussian mixture as a flow's base distribution.

    ``log p(u) = logsumexp_k [log pi_k + log N(u; mu_k, Sigma_k)]``, each ``Sigma_k^-1 = P_k P_k^T``
    with ``P_k`` upper triangular (positive diagonal), as scikit-learn's ``precisions_cholesky_``.
    With ``n_classes`` the weights are per class (the components are shared), so that
    ``p(u | y)`` is a mixture too. A flow from one Gaussian must stretch it over every mode and
    leaves thin bridges of mass between separated ones; with a mixture base the modes are the
    base's and the couplings only bend them (cf. Izmailov et al., "Semi-supervised learning with
    normalizing flows", ICML 2020).
    """

    def __init__(self, dim: int, components: int, n_classes: int = 0):
        super().__init__()
        self.dim, self.components = dim, components
        self.logits = nn.Parameter(torch.zeros(max(n_classes, 1), components))
        self.means = nn.Parameter(torch.zeros(components, dim))
        self.raw_prec = nn.Parameter(torch.zeros(components, dim, dim))  # upper part; log of the diagonal
        self.register_buffer("mask", torch.triu(torch.ones(dim, dim), 1), persistent=False)

    def precision_cholesky(self) -> torch.Tensor:
        """``(K, D, D)`` upper-triangular factors ``P_k`` with ``Sigma_k^-1 = P_k P_k^T``."""
        diag = torch.diagonal(self.raw_prec, dim1=-2, dim2=-1).exp()
        return self.raw_prec * self.mask + torch.diag_embed(diag)

    def log_weights(self, y: torch.Tensor | None, batch: int) -> torch.Tensor:
        lw = torch.log_softmax(self.logits, -1)  # (C, K)
        return lw[0].expand(batch, -1) if y is None or len(lw) == 1 else lw[y]  # (B, K)

    def log_prob(self, u: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        P = self.precision_cholesky()  # (K, D, D)
        w = torch.einsum("bkd,kde->bke", u[:, None, :] - self.means, P)  # (B, K, D): whitened offsets
        logdet = torch.diagonal(self.raw_prec, dim1=-2, dim2=-1).sum(-1)  # (K,) log|P_k|
        comp = -0.5 * (w * w).sum(-1) + logdet - 0.5 * self.dim * math.log(2 * math.pi)  # (B, K)
        return torch.logsumexp(comp + self.log_weights(y, len(u)), -1)

    def sample(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` draws (of class ``y`` when given), from torch's global generator."""
        probs = self.log_weights(y, n).exp()  # (n, K)
        k = torch.multinomial(probs, 1).squeeze(-1)  # (n,)
        eps = torch.randn(n, self.dim, 1, device=self.means.device)
        P = self.precision_cholesky()[k]  # (n, D, D)
        # u - mu = P^-T eps has covariance P^-T P^-1 = Sigma
        offset = torch.linalg.solve_triangular(P.transpose(-2, -1), eps, upper=False).squeeze(-1)
        return self.means[k] + offset

    @torch.no_grad()
    def initialize(self, u: torch.Tensor, seed: int = 0, max_rows: int = 20_000) -> None:
        """Fit the mixture by EM (scikit-learn, full covariances) to ``u``; every class starts with the
        mixture's weights (training makes them per class)."""
        from genzoo.nn.gaussian_mixture import fit_gaussian_mixture

        gm = fit_gaussian_mixture(u.detach().double().cpu().numpy(), self.components, seed=seed, max_rows=max_rows)
        P = torch.as_tensor(gm.precisions_cholesky_)  # (K, D, D) upper
        raw = P * self.mask.cpu().double() + torch.diag_embed(torch.diagonal(P, dim1=-2, dim2=-1).log())
        self.raw_prec.copy_(raw.to(self.raw_prec))
        self.means.copy_(torch.as_tensor(gm.means_).to(self.means))
        self.logits.copy_(torch.as_tensor(np.log(gm.weights_.clip(1e-6)))[None].to(self.logits))


__all__ = ["rq_spline", "gaussianising_spline", "ResidualNet", "coupling_partitions", "AffineCoupling",
           "SplineCoupling", "MixtureCDFCoupling", "mixture_cdf", "ActNorm", "InvertibleLinear",
           "InvertibleSequence", "GaussianMixtureBase"]
