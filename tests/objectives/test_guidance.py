"""Classifier-free guidance: one mixing rule, one wrapper, the same convention in every family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import genzoo as gz
from genzoo.objectives.guidance import drop_labels, guided, mix_guidance
from tests.families.test_common import LabelledFits

# autoregressive guides its string model only: a guided product of 1-D mixture densities has no
# direct sampler, so its array sampler refuses ``guidance`` (see test_text_models for strings)
GUIDED = [f for f in gz.families() if "guidance" in gz.make(f).get_params() and f != "autoregressive"
          and getattr(gz.make(f), "data_kind", None) != "image"]  # image families: test_image_families.py


def test_mixing_convention():
    c, u = torch.tensor([2.0]), torch.tensor([1.0])
    assert float(mix_guidance(c, u, 0.0)) == 1.0  # unconditional
    assert float(mix_guidance(c, u, 1.0)) == 2.0  # plain conditional
    assert float(mix_guidance(c, u, 3.0)) == 4.0  # past the conditional, away from the unconditional


def test_guided_wrapper_calls_and_costs():
    calls = []

    def fn(x, t, labels):  # output: the label each row saw, plus t
        calls.append(len(x))
        return labels[:, None].float() + t[:, None] if labels is not None else torch.full((len(x), 1), -1.0)

    x, t, y = torch.zeros(3, 2), torch.tensor([0.5, 0.5, 0.5]), torch.tensor([1, 2, 0])
    f, per = guided(fn, y, 1.0, null=7)
    assert per == 1 and torch.equal(f(x, t)[:, 0], torch.tensor([1.5, 2.5, 0.5]))
    f, per = guided(fn, y, 0.0, null=7)
    assert per == 1 and torch.equal(f(x, t)[:, 0], torch.full((3,), 7.5))
    calls.clear()
    f, per = guided(fn, y, 2.0, null=7)
    out = f(x, t)[:, 0]
    assert per == 2 and calls == [6]  # one batched call for both predictions
    torch.testing.assert_close(out, 7.5 + 2.0 * (torch.tensor([1.5, 2.5, 0.5]) - 7.5))
    f, per = guided(fn, None, 2.0, null=7)  # no labels: the unconditional prediction only
    assert per == 1 and torch.equal(f(x, t)[:, 0], torch.full((3,), -1.0))


def test_drop_labels_share():
    torch.manual_seed(0)
    y = torch.zeros(20_000, dtype=torch.long)
    out = drop_labels(y, 0.25, null=9)
    assert set(out.unique().tolist()) == {0, 9}
    assert abs(float((out == 9).float().mean()) - 0.25) < 0.02
    assert drop_labels(y, 0.0, null=9) is y and drop_labels(None, 0.5, null=9) is None


@pytest.fixture(scope="module")
def guided_models():
    return LabelledFits()


@pytest.mark.parametrize("family", GUIDED)
def test_guidance_zero_is_the_unconditional_sampler(family, guided_models):
    """g = 0 ignores the label: any two labels give the same draws from the same random state."""
    m = guided_models[family]
    a = m.sample(200, y=m.classes_[0], guidance=0.0, random_state=5)
    b = m.sample(200, y=m.classes_[3], guidance=0.0, random_state=5)
    np.testing.assert_array_equal(a, b)
    assert m.last_nfe_ is not None


@pytest.mark.parametrize("family", GUIDED)
def test_guidance_one_is_the_plain_conditional_sampler(family, guided_models):
    """g = 1 (one network call per step) equals the two-call guided path at g -> 1."""
    m = guided_models[family]
    k = m.classes_[2]
    one = m.sample(200, y=k, guidance=1.0, random_state=5)
    nfe_one = m.last_nfe_
    near = m.sample(200, y=k, guidance=1.0 + 1e-6, random_state=5)
    assert m.last_nfe_ > nfe_one  # the mixed path pays for the unconditional prediction too
    same = np.isclose(one, near, atol=1e-3).all(1).mean()
    assert same > 0.98, f"{family}: g=1 differs from the mixed path at g=1+1e-6 on {1 - same:.1%} of rows"
    # and it is the conditional model: draws sit nearer the asked class than unconditional ones do
    X = gz.datasets.get("gaussians8").sample(4000, random_state=1, return_labels=True)
    centre = X[0][X[1] == k].mean(0)
    d1 = np.linalg.norm(one - centre, axis=1).mean()
    d0 = np.linalg.norm(m.sample(200, y=k, guidance=0.0, random_state=5) - centre, axis=1).mean()
    assert d1 < d0
