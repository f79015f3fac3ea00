"""Shared fixtures: small data and the small training budgets that keep the suite fast."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

# two cores on the reference machine: do not oversubscribe them
torch.set_num_threads(min(2, os.cpu_count() or 1))

import genzoo as gz  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks: one thread is faster than two fighting over a busy machine (restored after)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


#: the test preset: ``max_steps`` this small, and every other declared training budget
#: (teacher steps, reflow steps and pairs, trajectory pools) scaled by the same fraction
SMALL_STEPS = 150


def small_params(family: str, **extra) -> dict:
    """Hyperparameters that make any family train in a few seconds (tests judge properties, not quality).

    The budgets come from the family's ``budget_params`` declaration, scaled as the compare
    presets scale them (``genzoo.compare.runner.scaled_budgets``); ``extra`` overrides.
    """
    from genzoo.compare.runner import scaled_budgets

    names = gz.make(family).get_params()
    p = {"random_state": 0}
    if "verbose" in names:
        p["verbose"] = 0
    if "max_steps" in names:
        p.update(scaled_budgets(family, SMALL_STEPS / int(names["max_steps"])))
    if "batch_size" in names:
        p["batch_size"] = 128
    if "reflow_batch_size" in names:  # rectified flow's second training
        p["reflow_batch_size"] = 128
    if "device" in names:
        p["device"] = "cpu"
    p.update({k: v for k, v in extra.items() if k in names})
    return p


@pytest.fixture(scope="session")
def ring_small() -> np.ndarray:
    return gz.datasets.get("ring").sample(1000, random_state=0)


@pytest.fixture(scope="session")
def g8_small():
    return gz.datasets.get("gaussians8").sample(1000, random_state=0, return_labels=True)
