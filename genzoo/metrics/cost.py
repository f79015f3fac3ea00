"""Sampling cost: wall-clock samples per second and network evaluations per sample."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from ._checks import check_positive_int


def nfe_of(model: Any) -> int | None:
    """Network evaluations per sample of the model's last ``sample`` call, None when unknown."""
    nfe = getattr(model, "last_nfe_", None)
    return int(nfe) if nfe is not None else None


def sampling_speed(
    model: Any, n: int = 2000, repeats: int = 3, random_state: int | None = 0, **opts: Any
) -> dict[str, Any]:
    """Samples per second of ``model.sample(n, **opts)`` and network evaluations per sample.

    One small warm-up call (lazy initialisation, allocator) is not timed; then ``repeats``
    calls of n samples, and the median time is reported (``seconds``). ``nfe_per_sample``
    comes from the model's ``last_nfe_`` and is None when the model does not report it.
    Wall-clock numbers depend on the machine and thread count: compare them as ratios
    within one run.
    """
    n, repeats = check_positive_int(n, "n"), check_positive_int(repeats, "repeats")
    model.sample(min(n, 16), random_state=random_state, **opts)
    times = []
    for r in range(repeats):
        seed = None if random_state is None else random_state + r
        t0 = time.perf_counter()
        model.sample(n, random_state=seed, **opts)
        times.append(time.perf_counter() - t0)
    sec = float(np.median(times))
    return {"samples_per_s": n / sec if sec > 0 else float("inf"), "nfe_per_sample": nfe_of(model), "seconds": sec}
