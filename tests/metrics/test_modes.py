"""Mode metrics on hand-built sets, with the PacGAN/VEEGAN protocol."""
from __future__ import annotations

import math

import numpy as np
import pytest

from genzoo import metrics as M

GRID = np.array([[x, y] for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)], float)


def test_twenty_of_twentyfive_modes_with_junk():
    rng = np.random.default_rng(0)
    good = GRID[rng.integers(0, 20, 2250)] + 0.05 * rng.standard_normal((2250, 2))
    junk = GRID[rng.integers(0, 25, 250)] + 1.0
    res = M.mode_metrics(np.vstack([good, junk]), GRID, 0.05)
    assert res["modes"] == 20 and res["n_modes"] == 25
    assert res["high_quality"] == pytest.approx(0.9 * (1 - math.exp(-4.5)), abs=0.01)
    # q is ~uniform over 20 of 25 modes: KL = log(25 / 20)
    assert res["reverse_kl"] == pytest.approx(math.log(25 / 20), abs=0.02)
    assert res["counts"].sum() == round(res["high_quality"] * 2500)


def test_reverse_kl_exact_on_a_built_histogram():
    C = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    Y = np.repeat(C, [6, 2, 0], axis=0)  # q = (3/4, 1/4, 0); third bin empty: 0 log 0 = 0
    res = M.mode_metrics(Y, C, 1.0, weights=[1, 1, 2])  # p = (1/4, 1/4, 1/2)
    assert res["modes"] == 2 and res["high_quality"] == 1.0
    assert res["reverse_kl"] == pytest.approx(0.75 * math.log(3) + 0.25 * math.log(1), abs=1e-12)


def test_no_high_quality_sample():
    res = M.mode_metrics(np.full((10, 2), 1.0), GRID, 0.05)
    assert res["modes"] == 0 and res["high_quality"] == 0.0 and math.isnan(res["reverse_kl"])


def test_boundary_is_inclusive_at_three_std():
    res = M.mode_metrics(np.array([[0.15, 0.0], [0.1501, 0.0]]), GRID, 0.05)
    assert res["high_quality"] == 0.5
