"""Masked discrete diffusion: the ELBO and the unmasking sampler checked against known discrete laws.

An "oracle" network returns the exact conditionals p(x_i | unmasked tokens) of a known joint
table P, so the ELBO and the sampler can be checked without training; a small fit then checks
the whole family on data whose discrete law is known.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

import genzoo as gz
from genzoo.families.masked_diffusion import OUTSIDE_LOG_DENSITY, MaskedDiffusion


class Oracle(nn.Module):
    """Exact conditionals of the joint table ``P`` (shape (B,) * D); ``Q`` (optional) for all-masked rows."""

    def __init__(self, P: torch.Tensor, Q: torch.Tensor | None = None):
        super().__init__()
        self.B, self.D = P.shape[0], P.dim()
        self.states = torch.tensor(list(itertools.product(range(self.B), repeat=self.D)))  # (S, D)
        self.P = P.reshape(-1)
        self.Q = None if Q is None else Q.reshape(-1)
        self.calls = 0

    def forward(self, tokens: torch.Tensor, y=None) -> torch.Tensor:
        self.calls += 1
        unmasked = tokens >= 0  # (N, D)
        match = (self.states[None] == tokens[:, None]) | ~unmasked[:, None]  # (N, S, D)
        w = match.all(2).double() * self.P[None]  # (N, S)
        if self.Q is not None:  # an inconsistent network: another law when nothing is visible
            none = ~unmasked.any(1)
            w[none] = self.Q[None].expand(int(none.sum()), -1)
        onehot = nn.functional.one_hot(self.states, self.B).double()  # (S, D, B)
        cond = torch.einsum("ns,sdb->ndb", w, onehot)  # (N, D, B)
        return (cond / cond.sum(2, keepdim=True)).clamp_min(1e-300).log().float()


def oracle_model(P: torch.Tensor, Q: torch.Tensor | None = None) -> MaskedDiffusion:
    m = MaskedDiffusion(n_bins=P.shape[0])
    m.module_, m.device_, m.n_features_in_ = Oracle(P, Q), "cpu", P.dim()
    return m


def random_table(B: int, D: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    P = torch.rand((B,) * D, generator=g, dtype=torch.float64) ** 3 + 0.01
    return P / P.sum()


def test_elbo_equals_log_p_with_exact_conditionals():
    """Exact, mutually consistent conditionals make every unmasking order exact: ELBO = log P."""
    P = random_table(3, 3, 0)
    m = oracle_model(P)
    tokens = m.module_.states
    elbo = m.token_elbo(tokens)
    assert torch.allclose(elbo, P.reshape(-1).log(), atol=1e-5)


def test_elbo_bounds_the_sampler_likelihood_and_sampler_matches_it():
    """Inconsistent conditionals: ELBO <= log of the sampler's own law, which the sampler reproduces."""
    P, Q = random_table(4, 2, 1), random_table(4, 2, 2)
    m = oracle_model(P, Q)
    tokens = m.module_.states  # all 16 states
    q1, q2 = Q.sum(1), Q.sum(0)  # what the network says when both tokens are masked
    p2_1, p1_2 = P / P.sum(1, keepdim=True), P / P.sum(0, keepdim=True)
    # two-step sampler: reveal coordinate 0 or 1 first, each with probability 1/2
    law = 0.5 * (q1[:, None] * p2_1 + q2[None, :] * p1_2)
    assert abs(float(law.sum()) - 1) < 1e-9
    elbo = m.token_elbo(tokens).reshape(4, 4)
    assert (elbo <= law.log() + 1e-6).all()
    assert (elbo < law.log() - 1e-3).any()  # the bound is not tight here
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        n = 40_000
        out = m._unmask(torch.full((n, 2), -1), None, steps=None, guidance=0.0)
    assert m.last_nfe_ == 2
    freq = torch.bincount(out[:, 0] * 4 + out[:, 1], minlength=16).double() / n
    assert 0.5 * float((freq - law.reshape(-1)).abs().sum()) < 0.015
    # one step reveals both tokens at once, independently: the product of the marginals
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(1)
        out1 = m._unmask(torch.full((n, 2), -1), None, steps=1, guidance=0.0)
    assert m.last_nfe_ == 1
    freq1 = torch.bincount(out1[:, 0] * 4 + out1[:, 1], minlength=16).double() / n
    assert 0.5 * float((freq1 - (q1[:, None] * q2[None]).reshape(-1)).abs().sum()) < 0.015


def test_sampler_with_many_steps_reproduces_a_known_law():
    P = random_table(3, 3, 3)
    m = oracle_model(P)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        out = m._unmask(torch.full((30_000, 3), -1), None, steps=50, guidance=0.0)
    assert m.last_nfe_ == 3  # steps that reveal nothing cost nothing
    idx = out[:, 0] * 9 + out[:, 1] * 3 + out[:, 2]
    freq = torch.bincount(idx, minlength=27).double() / len(idx)
    assert 0.5 * float((freq - P.reshape(-1)).abs().sum()) < 0.02


CENTERS = np.array([[x, y] for x in (-1.0, 0.0, 1.0) for y in (-1.0, 0.0, 1.0)])
WEIGHTS = np.array([4, 1, 1, 1, 6, 1, 1, 1, 4], float) / 20


def lattice(n: int, seed: int, std: float = 0.04):
    rng = np.random.default_rng(seed)
    k = rng.choice(9, size=n, p=WEIGHTS)
    return CENTERS[k] + std * rng.standard_normal((n, 2)), k


def lattice_log_prob(X: np.ndarray, std: float = 0.04) -> np.ndarray:
    d2 = ((X[:, None] - CENTERS[None]) ** 2).sum(-1)
    comp = np.log(WEIGHTS)[None] - d2 / (2 * std**2) - np.log(2 * np.pi * std**2)
    return np.logaddexp.reduce(comp, axis=1)


@pytest.fixture(scope="module")
def fitted():
    X, _ = lattice(3000, 0)
    return gz.make("masked_diffusion", n_bins=64, hidden=128, max_steps=600, batch_size=256,
                   random_state=0, verbose=0).fit(X)


def test_trained_model_matches_cluster_weights_and_bound_is_below_truth(fitted):
    S = fitted.sample(4000, random_state=1)
    assert fitted.last_nfe_ == 2
    k = np.argmin(((S[:, None] - CENTERS[None]) ** 2).sum(-1), 1)
    freq = np.bincount(k, minlength=9) / len(k)
    assert 0.5 * np.abs(freq - WEIGHTS).sum() < 0.05
    assert np.mean(np.min(((S[:, None] - CENTERS[None]) ** 2).sum(-1), 1) < 0.2**2) > 0.97
    Xt, _ = lattice(4000, 5)
    lp = fitted.score_samples(Xt)
    true = lattice_log_prob(Xt)
    # a bound on a density can beat the truth only by Monte-Carlo luck on the test set
    assert lp.mean() <= true.mean() + 3 * (lp - true).std() / np.sqrt(len(lp))
    assert lp.mean() > true.mean() - 1.0  # and it is a useful bound, not a vacuous one
    assert fitted.likelihood_kind == "bound"


def test_bin_edges_tokens_and_outside_rows(fitted):
    m = fitted
    Z = np.array([[0.0, 0.0], [0.3, -0.2], [100.0, 0.0]])
    tok, inside = m.tokenize(Z)
    assert inside.tolist() == [True, True, False]
    with torch.random.fork_rng():
        back = m.detokenize(tok).numpy()
    _, w = m._bin_edges()
    assert np.all(np.abs(back[:2] - Z[:2]) <= w + 1e-6)
    lp = m.score_samples(np.array([[0.0, 0.0], [1e3, 1e3]]))
    assert np.isfinite(lp).all() and lp[1] < OUTSIDE_LOG_DENSITY + 10 and lp[0] > -20


def test_impute_keeps_observed_and_fills_from_the_conditional(fitted):
    # x observed at 1.0: y is one of -1, 0, 1 with weights 1 : 1 : 4 (the lattice column x = 1)
    X = np.column_stack([np.full(3000, 1.0), np.full(3000, np.nan)])
    out = fitted.impute(X, random_state=0)
    assert np.all(out[:, 0] == 1.0)
    y = out[:, 1]
    near = np.abs(y[:, None] - np.array([-1.0, 0.0, 1.0])[None]).min(1) < 0.2
    assert near.mean() > 0.95
    assert abs(np.mean(np.abs(y - 1.0) < 0.2) - 4 / 6) < 0.06


def test_guidance_and_labels():
    X, k = lattice(2000, 1)
    m = gz.make("masked_diffusion", n_bins=48, hidden=64, max_steps=300, random_state=0, verbose=0).fit(X, k)
    S = m.sample(500, y=4, random_state=0, guidance=2.0)
    assert m.last_nfe_ == 4  # two reveals, each with a conditional and an unconditional pass
    m.sample(10, y=4, random_state=0, guidance=1.0)
    assert m.last_nfe_ == 2  # g = 1 is the plain conditional model: one pass per reveal
    assert np.mean(np.linalg.norm(S - CENTERS[4], axis=1) < 0.2) > 0.9
