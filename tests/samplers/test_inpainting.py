"""RePaint written once (``genzoo.samplers.inpainting``): the loop's bookkeeping, and the linear-path
instance fed the exact field of a Gaussian, whose conditional is known in closed form."""

from __future__ import annotations

import pytest
import torch

from genzoo.samplers.inpainting import inpaint_linear_path, linear_path_jump, linear_path_step, repaint

MU = torch.tensor([0.5, -1.0], dtype=torch.float64)
S = torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=torch.float64)


def gaussian_linear_field(mu: torch.Tensor, cov: torch.Tensor):
    """The exact marginal velocity of the linear path from N(0, I) to N(mu, cov): (E[x1 | x_t] - x_t) / (1 - t)."""
    eye = torch.eye(len(mu), dtype=cov.dtype)

    def f(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tt = float(t[0])
        gain = tt * cov @ torch.linalg.inv(tt**2 * cov + (1 - tt) ** 2 * eye)  # Cov(x1, x_t) Var(x_t)^-1
        x1 = mu + (x - tt * mu) @ gain.T
        return (x1 - x) / max(1 - tt, 1e-9)

    return f


def test_repaint_calls_and_keeps_the_observed_values():
    calls = []

    def step(x, t, s, last):
        calls.append((t, s, last))
        return x + 1.0

    known = torch.tensor([[5.0, 0.0]])
    mask = torch.tensor([[True, False]])
    levels = [0.0, 0.5, 1.0]
    out, nfe = repaint(step, lambda k, t: k * 0 - 7.0, lambda x, s, t: x - 1.0, torch.zeros(1, 2), levels, known,
                       mask, resample=3)
    assert nfe == 6 and len(calls) == 6 and calls[-1] == (0.5, 1.0, True) and calls[0] == (0.0, 0.5, False)
    assert float(out[0, 0]) == 5.0 and float(out[0, 1]) == 2.0  # +1 per level: the jumps undo the repeats
    _, nfe = repaint(step, lambda k, t: k, lambda x, s, t: x, torch.zeros(1, 2), levels, known, mask, resample=3,
                     resample_last=False)
    assert nfe == 4
    path, _ = repaint(step, lambda k, t: k, lambda x, s, t: x, torch.zeros(1, 2), levels, known, mask,
                      return_path=True)
    assert len(path) == 3 and float(path[-1][0, 0]) == 5.0
    with pytest.raises(ValueError, match="resample"):
        repaint(step, lambda k, t: k, lambda x, s, t: x, torch.zeros(1, 2), levels, known, mask, resample=0)


def test_linear_path_jump_preserves_the_path_marginal():
    """x_s = s x1 + (1 - s) eps jumped back to t has the law of t x1 + (1 - t) eps."""
    torch.manual_seed(0)
    x1 = torch.full((200_000, 1), 2.0, dtype=torch.float64)
    s, t = 0.8, 0.3
    xt = linear_path_jump(s * x1 + (1 - s) * torch.randn_like(x1), s, t)
    assert abs(float(xt.mean()) - t * 2.0) < 0.01
    assert abs(float(xt.std()) - (1 - t)) < 0.01


def test_linear_path_step_with_the_exact_field_converges_to_the_gaussian():
    """The covariance error of the stochastic sampler shrinks with the steps (0.18 at 25, 0.02 at 400)."""
    f = gaussian_linear_field(MU, S)
    errs = []
    for k in (25, 400):
        torch.manual_seed(1)
        x = torch.randn(20_000, 2, dtype=torch.float64)
        ts = torch.linspace(0, 1, k + 1, dtype=torch.float64).tolist()
        for t, s in zip(ts[:-1], ts[1:], strict=True):
            x = linear_path_step(f, x, t, s)
        assert (x.mean(0) - MU).abs().max() < 0.03
        errs.append(float((torch.cov(x.T) - S).abs().max()))
    assert errs[0] > 4 * errs[1] and errs[1] < 0.03, errs


def test_linear_path_inpainting_draws_the_gaussian_conditional():
    """Observe x_0 = 1.5: x_1 | x_0 ~ N(mu_1 + 0.9 (1.5 - mu_0), 0.19)."""
    torch.manual_seed(2)
    n = 10_000
    known = torch.zeros(n, 2, dtype=torch.float64)
    known[:, 0] = 1.5
    mask = torch.zeros(n, 2, dtype=torch.bool)
    mask[:, 0] = True
    out, nfe = inpaint_linear_path(gaussian_linear_field(MU, S), known, mask, steps=50, resample=5)
    assert nfe == 250 and torch.equal(out[:, 0], known[:, 0])
    m, v = float(out[:, 1].mean()), float(out[:, 1].var())
    assert abs(m - (-1.0 + 0.9 * 1.0)) < 0.07, m
    assert abs(v - 0.19) < 0.05, v
