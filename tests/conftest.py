"""Shared fixtures: small data and the small training budgets that keep the suite fast."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

# two cores on the reference machine: do not oversubscribe them
torch.set_num_threads(min(2, os.cpu_count() or 1))

import genzoo as gz  # noqa: E402


def small_params(family: str, **extra) -> dict:
    """Hyperparameters that make any family train in a few seconds (tests judge properties, not quality)."""
    names = gz.make(family).get_params()
    p = {"random_state": 0}
    if "verbose" in names:
        p["verbose"] = 0
    if "max_steps" in names:
        p["max_steps"] = 150
    if "batch_size" in names:
        p["batch_size"] = 128
    if "reflow_steps" in names:  # rectified flow's second training
        p.update(reflow_steps=100, reflow_batch_size=128, reflow_pairs=1000)
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
