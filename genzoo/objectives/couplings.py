"""Couplings between the noise and the data of a minibatch.

- :func:`ot_pairing`: exact optimal transport between the noise and the data of a minibatch
  (Tong et al. 2023 "OT-CFM"; Pooladian et al. 2023): a permutation of the noise rows that
  minimises the summed squared distance, so conditional paths cross less and the learned
  field is straighter.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def ot_pairing(x0: torch.Tensor, x1: torch.Tensor, y: torch.Tensor | None = None, *,
               chunk: int | None = None) -> torch.Tensor:
    """Reorder the rows of ``x0`` so that pairing row i with ``x1[i]`` is the exact minibatch OT plan.

    With equal batch sizes and uniform weights the optimal plan for the squared-Euclidean
    cost is a permutation (Birkhoff), found by the Hungarian algorithm. ``chunk``: solve
    within consecutive blocks of that many rows (the rows are a random minibatch, so each
    block is one too): the assignment's cost grows roughly cubically, and blocks of 64-128
    keep it far below the cost of a training step. With labels ``y`` the noise is matched
    within each class, so that given ``y`` it is still an i.i.d. Gaussian draw (otherwise
    conditional sampling from N(0, I) would start from the wrong distribution).
    """
    a1 = x1.detach().cpu().double().numpy()
    a0 = x0.detach().cpu().double().numpy()
    n = len(a1)
    perm = np.arange(n)
    step = n if not chunk else int(chunk)
    yn = None if y is None else y.cpu().numpy()
    for a in range(0, n, step):
        block = np.arange(a, min(a + step, n))
        groups = [block] if yn is None else [block[yn[block] == k] for k in np.unique(yn[block])]
        for rows in groups:  # squared distances within the block only: linear in the batch size
            cost = ((a1[rows, None, :] - a0[None, rows, :]) ** 2).sum(-1)
            _, cols = linear_sum_assignment(cost)  # data rows[i] <- noise rows[cols[i]]
            perm[rows] = rows[cols]
    return x0[torch.as_tensor(perm, device=x0.device)]


__all__ = ["ot_pairing"]
