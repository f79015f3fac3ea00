"""Input validation shared by every metric: one place, one wording."""
from __future__ import annotations

from typing import Any

import numpy as np


def as_points(X: Any, name: str = "X", min_n: int = 1) -> np.ndarray:
    """Return ``X`` as a finite float64 array of shape (n, d) with n >= ``min_n``.

    Raises a one-line ``ValueError`` naming the problem (1-D input, empty array,
    non-numeric values, NaN or inf, too few points).
    """
    try:
        A = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric array ({e})") from None
    if A.ndim == 1:
        raise ValueError(
            f"{name} is 1-D with shape {A.shape}; pass a 2-D array (n_samples, n_features), "
            f"e.g. {name}.reshape(-1, 1)"
        )
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {A.shape}")
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {A.shape})")
    if not np.all(np.isfinite(A)):
        bad = int(np.sum(~np.isfinite(A).all(1)))
        raise ValueError(f"{name} contains NaN or inf in {bad} row(s)")
    if A.shape[0] < min_n:
        raise ValueError(f"{name} has {A.shape[0]} points; this metric needs at least {min_n}")
    return A


def check_pair(X: Any, Y: Any, min_n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Validate real ``X`` and generated ``Y`` together: both valid, same number of columns."""
    A = as_points(X, "X", min_n)
    B = as_points(Y, "Y", min_n)
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"X has {A.shape[1]} columns but Y has {B.shape[1]}")
    return A, B


def check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an int >= 1 or raise a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def unsupported(message: str) -> Exception:
    """Build genzoo's ``UnsupportedError`` (imported lazily: metrics load without the rest)."""
    from genzoo.errors import UnsupportedError

    return UnsupportedError(message)
