"""``sample(n, nfe=K)``: every family keeps within a budget of network evaluations per sample."""

from __future__ import annotations

import numpy as np
import pytest

import genzoo as gz
from tests.families.test_common import FAMILIES, fitted

#: families whose sampler is iterative: ``nfe`` picks the steps
ITERATIVE = ["diffusion", "score", "flow_matching", "rectified_flow", "consistency"]


@pytest.mark.parametrize("family", ITERATIVE)
@pytest.mark.parametrize("nfe", [1, 2, 7])
def test_iterative_families_spend_what_the_budget_allows(family, nfe):
    m = fitted(family)
    S = m.sample(64, nfe=nfe, random_state=0)
    assert S.shape == (64, 2) and np.isfinite(S).all()
    assert m.last_nfe_ == nfe  # one call per step: the budget is spent, not exceeded
    assert np.array_equal(S, m.sample(64, nfe=nfe, random_state=0))


@pytest.mark.parametrize("family", ["diffusion", "flow_matching", "score"])
def test_guided_steps_cost_two_calls(family):
    m = fitted(family, "labels")
    m.sample(32, y=np.zeros(32, int) + m.classes_[0], nfe=9, guidance=2.0, random_state=0)
    assert m.last_nfe_ == 8  # four guided steps of two calls each fit in nine
    m.sample(32, y=m.classes_[0], nfe=9, guidance=1.0, random_state=0)
    assert m.last_nfe_ == 9


@pytest.mark.parametrize("family", ["diffusion", "flow_matching", "consistency"])
def test_budget_and_explicit_steps_are_exclusive(family):
    with pytest.raises(ValueError, match="not both"):
        fitted(family).sample(8, nfe=4, steps=3)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_checks_its_cost_against_the_budget(family):
    m = fitted(family)
    for bad in (0, -3, 2.5, True, "4"):
        with pytest.raises(ValueError, match="nfe must be a positive integer"):
            m.sample(4, nfe=bad)
    big = m.sample(16, nfe=10_000, random_state=0)
    assert big.shape == (16, 2)
    spent = m.last_nfe_
    assert spent is None or spent <= 10_000
    if spent is not None and spent > 1 and family not in ITERATIVE + ["gan"]:
        with pytest.raises(ValueError, match="below that"):  # a fixed-cost sampler cannot shrink
            m.sample(4, nfe=int(np.ceil(spent)) - 1)


def test_gan_drops_rejection_below_its_cost():
    m = fitted("gan")
    m.sample(16, nfe=1, random_state=0)
    assert m.last_nfe_ == 1


def test_one_step_samplers_agree_with_their_explicit_form():
    m = fitted("rectified_flow")
    a = m.sample(32, nfe=1, random_state=3)
    b = m.sample(32, steps=1, sampler="euler", random_state=3)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert gz.make("diffusion").get_params()["sampler"] == "ancestral"  # nfe= does not change defaults
