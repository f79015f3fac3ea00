"""Coupling layers and the rational-quadratic spline: invertibility, exact log-determinants, shape."""

from __future__ import annotations

import pytest
import torch

from genzoo.nn.coupling import (
    ActNorm,
    AffineCoupling,
    InvertibleLinear,
    InvertibleSequence,
    MixtureCDFCoupling,
    ResidualNet,
    SplineCoupling,
    coupling_partitions,
    gaussianising_spline,
    mixture_cdf,
    mixture_init,
    rq_spline,
)


def _spline_params(n: int, bins: int, scale: float = 2.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(n, bins, generator=g, dtype=torch.float64),
            scale * torch.randn(n, bins, generator=g, dtype=torch.float64),
            scale * torch.randn(n, bins - 1, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("bins", [2, 8, 32])
def test_spline_inverse_and_derivative(bins):
    x = torch.linspace(-4.5, 4.5, 3001, dtype=torch.float64).requires_grad_(True)
    w, h, d = _spline_params(len(x), bins, seed=bins)
    y, logdet = rq_spline(x, w, h, d, bound=3.0)
    (dydx,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(dydx.log(), logdet, atol=1e-8)
    x_back, logdet_back = rq_spline(y.detach(), w, h, d, bound=3.0, inverse=True)
    assert torch.allclose(x_back, x.detach(), atol=1e-7)
    assert torch.allclose(logdet_back, logdet.detach(), atol=1e-6)


def test_spline_monotone_and_identity_outside_bound():
    x = torch.linspace(-6, 6, 5001, dtype=torch.float64)
    w, h, d = _spline_params(1, 16, scale=3.0)
    y, logdet = rq_spline(x, w.expand(len(x), -1), h.expand(len(x), -1), d.expand(len(x), -1), bound=2.0)
    assert (y[1:] > y[:-1]).all()  # strictly increasing
    out = x.abs() > 2.0
    assert torch.equal(y[out], x[out]) and torch.equal(logdet[out], torch.zeros_like(logdet[out]))
    inside = x.abs() <= 2.0
    assert y[inside].abs().max() <= 2.0 + 1e-12  # maps the interval onto itself
    assert (y[inside] - x[inside]).abs().max() > 0.1  # and is not the identity inside


def test_spline_zero_parameters_is_identity():
    x = torch.linspace(-3, 3, 101)
    zeros = torch.zeros(len(x), 8)
    y, logdet = rq_spline(x, zeros, zeros, zeros[:, :7], bound=3.0)
    assert torch.allclose(y, x, atol=1e-5) and logdet.abs().max() < 1e-2


def _random_flow(cls, dim: int, n_layers: int = 4, context_dim: int = 0, linear: bool = False) -> InvertibleSequence:
    torch.manual_seed(dim)
    layers = []
    for i, (cond, trans) in enumerate(coupling_partitions(dim, n_layers)):
        layers += [InvertibleLinear(dim, seed=i)] if linear else []
        layers += [ActNorm(dim), cls(dim, cond, trans, hidden=16, blocks=1, context_dim=context_dim)]
    flow = InvertibleSequence(layers).double()
    with torch.no_grad():  # move away from the identity initialisation
        for p in flow.parameters():
            p.add_(0.15 * torch.randn_like(p))
    return flow


@pytest.mark.parametrize("cls", [AffineCoupling, SplineCoupling, MixtureCDFCoupling])
@pytest.mark.parametrize("dim,linear", [(2, False), (3, False), (5, False), (5, True)])
def test_coupling_inverse_and_logdet_match_autograd_jacobian(cls, dim, linear):
    flow = _random_flow(cls, dim, context_dim=3, linear=linear)
    x = 1.5 * torch.randn(6, dim, dtype=torch.float64)
    ctx = torch.randn(6, 3, dtype=torch.float64)
    u, logdet = flow(x, ctx)
    assert (u - x).abs().max() > 1e-2  # not the identity
    x_back, _ = flow.inverse(u, ctx)
    assert torch.allclose(x_back, x, atol=1e-8)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v, i=i: flow(v[None], ctx[i:i + 1])[0][0], x[i])
        assert torch.allclose(torch.linalg.slogdet(jac)[1], logdet[i], atol=1e-8)


def test_context_changes_the_map():
    flow = _random_flow(SplineCoupling, 3, context_dim=2)
    x = torch.randn(4, 3, dtype=torch.float64)
    u1, _ = flow(x, torch.zeros(4, 2, dtype=torch.float64))
    u2, _ = flow(x, torch.ones(4, 2, dtype=torch.float64))
    assert (u1 - u2).abs().max() > 1e-3


@pytest.mark.parametrize("dim", [2, 3, 4, 5, 7])
def test_partitions_cover_every_coordinate_each_pair(dim):
    parts = coupling_partitions(dim, 8)
    assert len(parts) == 8
    for i in range(0, 8, 2):
        transformed = set(parts[i][1]) | set(parts[i + 1][1])
        assert transformed == set(range(dim))
        for cond, trans in parts[i:i + 2]:
            assert cond and trans and not set(cond) & set(trans) and set(cond) | set(trans) == set(range(dim))
    if dim > 3:  # the split changes between pairs, so every coordinate eventually informs the others
        assert len({tuple(p[0]) for p in parts}) > 2
    with pytest.raises(ValueError):
        coupling_partitions(1, 2)


def test_actnorm_initialise_standardises_and_inverts():
    x = 3 + 2 * torch.randn(500, 3)
    a = ActNorm(3)
    a.initialize(x)
    u, logdet = a(x)
    assert torch.allclose(u.mean(0), torch.zeros(3), atol=1e-4) and torch.allclose(u.std(0), torch.ones(3), atol=1e-4)
    assert torch.allclose(logdet, -torch.log(x.std(0)).sum().expand(500), atol=1e-4)
    assert torch.allclose(a.inverse(u)[0], x, atol=1e-4)


def test_residual_net_starts_at_zero_and_uses_context():
    net = ResidualNet(2, 5, hidden=8, blocks=2, context_dim=3)
    x = torch.randn(4, 2)
    assert torch.equal(net(x, torch.randn(4, 3)), torch.zeros(4, 5))
    with torch.no_grad():
        net.out[1].weight.normal_()
    assert (net(x, torch.zeros(4, 3)) - net(x, torch.ones(4, 3))).abs().max() > 1e-4


def test_gaussianising_spline_maps_a_sharp_mixture_to_a_standard_normal():
    """The data-dependent start: two sharp peaks (std 0.05) come out as N(0, 1) in distribution."""
    g = torch.Generator().manual_seed(0)
    v = torch.where(torch.rand(20_000, generator=g) < 0.3, -1.0, 0.8) + 0.05 * torch.randn(20_000, generator=g)
    p = gaussianising_spline(v[:10_000], bins=32, bound=3.0)
    assert p.shape == (3 * 32 - 1,)
    u, logdet = rq_spline(v[10_000:], *(q.expand(10_000, -1) for q in (p[:32], p[32:64], p[64:])), bound=3.0)
    probs = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
    normal = torch.distributions.Normal(0.0, 1.0).icdf(probs)
    assert torch.allclose(torch.quantile(u, probs), normal, atol=0.1)
    # and the implied density is close to the truth: mean log-density within 0.1 nats of it
    comps = [torch.log(torch.tensor(w)) - 0.5 * ((v[10_000:] - c) / 0.05) ** 2 for w, c in ((0.3, -1.0), (0.7, 0.8))]
    true = torch.logsumexp(torch.stack(comps), 0) - torch.log(torch.tensor(0.05 * 2.5066283))
    model = -0.5 * u * u - 0.9189385 + logdet
    assert 0 < (true - model).mean() < 0.1


def test_spline_coupling_initialise_starts_from_the_marginal_gaussianisation():
    torch.manual_seed(0)
    x = torch.stack([torch.randn(4000), torch.where(torch.rand(4000) < 0.5, -1.0, 1.0) + 0.1 * torch.randn(4000)], 1)
    layer = SplineCoupling(2, [0], [1], hidden=8, blocks=1, bins=16, bound=3.0)
    layer.initialize(x)
    u, _ = layer(x)
    assert torch.equal(u[:, 0], x[:, 0])  # the conditioning coordinate passes through
    assert abs(u[:, 1].mean()) < 0.05 and abs(u[:, 1].std() - 1) < 0.05 and (u[:, 1].abs() < 0.3).float().mean() > 0.2


def test_mixture_cdf_inverts_and_its_logdet_is_the_derivative_even_far_out():
    g = torch.Generator().manual_seed(1)
    lg, mu, ls = torch.randn(3, 50, 6, generator=g, dtype=torch.float64)
    ls = ls - 2
    x = torch.cat([3 * torch.randn(47, generator=g, dtype=torch.float64),
                   torch.tensor([-60.0, 45.0, 300.0], dtype=torch.float64)]).requires_grad_()
    y, logdet = mixture_cdf(x, lg, mu, ls)
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()
    (dy,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(dy.log(), logdet, atol=1e-6)
    x_back, logdet_back = mixture_cdf(y.detach(), lg, mu, ls, inverse=True)
    assert torch.allclose(x_back, x.detach(), atol=1e-8) and torch.allclose(logdet_back, logdet.detach(), atol=1e-6)


def test_mixture_init_maps_a_sharp_mixture_to_a_standard_normal():
    """The mixture-CDF layer's data start: two thin peaks come out as N(0, 1), density near the truth."""
    g = torch.Generator().manual_seed(0)
    v = torch.where(torch.rand(20_000, generator=g) < 0.3, -1.0, 0.8) + 0.05 * torch.randn(20_000, generator=g)
    p = mixture_init(v[:10_000], components=4)
    u, logdet = mixture_cdf(v[10_000:], *(q.expand(10_000, -1) for q in (p[:4], p[4:8], p[8:])))
    probs = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
    assert torch.allclose(torch.quantile(u, probs), torch.distributions.Normal(0.0, 1.0).icdf(probs), atol=0.08)
    comps = [torch.log(torch.tensor(w)) - 0.5 * ((v[10_000:] - c) / 0.05) ** 2 for w, c in ((0.3, -1.0), (0.7, 0.8))]
    true = torch.logsumexp(torch.stack(comps), 0) - torch.log(torch.tensor(0.05 * 2.5066283))
    model = -0.5 * u * u - 0.9189385 + logdet
    assert -0.01 < (true - model).mean() < 0.01  # a mixture describes a mixture almost exactly


def _thin_mixture(n: int, seed: int = 0):
    """Mixture parameters per row with thin, well-separated components (as on grid-like data),
    their scales down to the floor of ``mixture_cdf`` (log-scale -8), plus broad ones."""
    g = torch.Generator().manual_seed(seed)
    K = 8
    means = torch.linspace(-2, 2, K, dtype=torch.float64).expand(n, K) + 0.05 * torch.randn(n, K, generator=g,
                                                                                           dtype=torch.float64)
    log_scales = torch.cat([-8 + 4 * torch.rand(n, K - 2, generator=g, dtype=torch.float64),
                            torch.zeros(n, 2, dtype=torch.float64)], -1)
    logits = torch.cat([torch.randn(n, K - 2, generator=g, dtype=torch.float64),
                        torch.full((n, 2), -6.0, dtype=torch.float64)], -1)
    return logits, means, log_scales


def test_mixture_cdf_inverse_of_thin_modes_and_far_tails_undoes_the_forward():
    """The float32-then-float64 Newton solve: forward(inverse(y)) == y to 1e-10 for every row, from
    the bulk through the tails where only the float64 pass (|y| > 12) or log space (|y| > 30) works."""
    n = 4000
    lg, mu, ls = _thin_mixture(n)
    g = torch.Generator().manual_seed(1)
    tails = [-45.0, -30.5, -29.5, -20.0, -12.5, -9.0, 9.0, 12.5, 20.0, 29.5, 30.5, 45.0]
    y = torch.cat([1.5 * torch.randn(n - len(tails), generator=g, dtype=torch.float64),
                   torch.tensor(tails, dtype=torch.float64)])
    x, _ = mixture_cdf(y, lg, mu, ls, inverse=True)
    y_back, _ = mixture_cdf(x, lg, mu, ls)
    assert torch.isfinite(x).all()
    assert (y_back - y).abs().max() < 1e-10
    # where the map is not flat (density not negligible), x itself is pinned down to float64 level
    x_again, _ = mixture_cdf(y_back, lg, mu, ls, inverse=True)
    assert (x_again - x).abs().max() < 1e-9


def test_mixture_cdf_float32_inverse_is_the_float64_root_rounded():
    """float32 inputs (the flow's own dtype) get the default tolerance 1e-6 and its one float64
    finishing step: the answer is the float64 root rounded to float32, within 2 float32 ulps."""
    n = 4000
    lg, mu, ls = (p.float() for p in _thin_mixture(n, seed=2))
    y = (1.5 * torch.randn(n, generator=torch.Generator().manual_seed(3))).float()
    x32, _ = mixture_cdf(y, lg, mu, ls, inverse=True)
    x64, _ = mixture_cdf(y.double(), lg.double(), mu.double(), ls.double(), inverse=True)
    assert x32.dtype == torch.float32
    ref = x64.float()
    ulp = torch.nextafter(ref.abs(), torch.tensor(float("inf"))) - ref.abs()
    assert ((x32 - ref).abs() <= 2 * ulp).all()


def test_mixture_cdf_inverse_without_logdet_gives_the_same_x():
    lg, mu, ls = _thin_mixture(500, seed=4)
    y = torch.randn(500, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x1, ld1 = mixture_cdf(y, lg, mu, ls, inverse=True)
    x2, ld2 = mixture_cdf(y, lg, mu, ls, inverse=True, logdet=False)
    assert torch.equal(x1, x2) and torch.equal(ld2, torch.zeros_like(ld2)) and (ld1 != 0).all()
    flow = _random_flow(MixtureCDFCoupling, 3)
    u = torch.randn(50, 3, dtype=torch.float64)
    xa, lda = flow.inverse(u)
    xb, ldb = flow.inverse(u, logdet=False)
    assert torch.equal(xa, xb) and torch.equal(ldb, torch.zeros_like(ldb)) and (lda != 0).any()


def test_gaussian_mixture_base_draws_have_the_mixture_moments():
    """``GaussianMixtureBase.sample`` draws from the density ``log_prob`` gives: after an EM fit to two
    tilted 3-D Gaussians, its draws' mean and covariance match the mixture's own (from its parameters)."""
    import numpy as np

    from genzoo.nn.coupling import GaussianMixtureBase

    rng = np.random.default_rng(0)
    A = rng.normal(size=(3, 3))
    X = np.concatenate([rng.normal(size=(4000, 3)) @ A + 3, 0.3 * rng.normal(size=(2000, 3)) - 2])
    base = GaussianMixtureBase(3, 2)
    base.initialize(torch.as_tensor(X, dtype=torch.float32))
    P = base.precision_cholesky().detach().double()
    cov = torch.linalg.inv(P @ P.transpose(-2, -1))  # (K, 3, 3)
    w = torch.softmax(base.logits[0].detach().double(), -1)
    mu = base.means.detach().double()
    mean = (w[:, None] * mu).sum(0)
    second = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0)
    want_cov = second - mean[:, None] * mean[None, :]
    torch.manual_seed(1)
    S = base.sample(200_000).detach().double()
    assert torch.allclose(S.mean(0), mean, atol=0.03)
    assert torch.allclose(torch.cov(S.T), want_cov, atol=0.08)
    assert abs(mean[0].item() - X[:, 0].mean()) < 0.05  # and the fit is the data's mixture
