"""Training stability across seeds: spread of the final metric, diverged runs, loss trajectories."""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _final(values: np.ndarray) -> float:
    """Median of the last 5% of a curve (at least one point): robust to one noisy step."""
    tail = values[-max(1, len(values) // 20) :]
    return float(np.median(tail))


def divergence(
    record: Mapping[str, Any], metric: str | None = None, blowup: float = 10.0, margin: float = 1.0
) -> str | None:
    """Why a run diverged, or None. Checked in this order:

    - ``"nan"``: a non-finite value in ``history["train_loss"]`` or in ``record[metric]``;
    - ``"blowup"``: final train loss - its minimum > ``blowup`` * |minimum| + ``margin``
      (the final loss being the median of the last 5% of the curve; written as a
      difference so that negative losses such as an NLL work too);
    - ``"collapse"``: ``record["modes"] < record["n_modes"] / 2`` (mixtures only).
    """
    hist = record.get("history") or {}
    loss = np.asarray(hist.get("train_loss", []), dtype=np.float64)
    if loss.size and not np.isfinite(loss).all():
        return "nan"
    if metric is not None and metric in record and not np.isfinite(float(record[metric])):
        return "nan"
    if loss.size:
        lo = float(loss.min())
        if _final(loss) - lo > blowup * abs(lo) + margin:
            return "blowup"
    if "modes" in record and "n_modes" in record and record["modes"] < record["n_modes"] / 2:
        return "collapse"
    return None


def stability(
    records: Sequence[Mapping[str, Any]], metric: str = "w2", blowup: float = 10.0, margin: float = 1.0
) -> dict[str, Any]:
    """Spread of ``metric`` across per-seed runs and the count of runs that diverged.

    ``records`` holds one mapping per seed: the final metric values (e.g. what
    ``genzoo.evaluate`` returns) plus, optionally, ``"history"`` (the model's
    ``history_``). Divergence rules are those of ``divergence``. The spread (mean, std
    with ddof=1, min, max) is over the runs that did not diverge with a finite value.
    """
    if not records:
        raise ValueError("records is empty; pass one mapping per seed")
    reasons = [divergence(r, metric, blowup, margin) for r in records]
    ok = [float(r[metric]) for r, why in zip(records, reasons) if why is None and metric in r]
    ok = [v for v in ok if math.isfinite(v)]
    v = np.asarray(ok)
    return {
        "metric": metric,
        "n_runs": len(records),
        "n_diverged": sum(why is not None for why in reasons),
        "diverged": [(i, why) for i, why in enumerate(reasons) if why is not None],
        "mean": float(v.mean()) if v.size else float("nan"),
        "std": float(v.std(ddof=1)) if v.size > 1 else float("nan"),
        "min": float(v.min()) if v.size else float("nan"),
        "max": float(v.max()) if v.size else float("nan"),
    }


def trajectory(histories: Sequence[Mapping[str, Sequence[float]]], key: str = "val_loss") -> dict[str, np.ndarray]:
    """A training curve across seeds: per step the mean, std, min and max of ``history[key]``.

    Each history is a model's ``history_`` (lists ``step`` and ``key``). Curves are
    aligned on the steps every seed logged; non-finite points are ignored per step.
    """
    curves = []
    for h in histories:
        steps, vals = list(h.get("step", [])), list(h.get(key, []))
        if len(steps) != len(vals):
            raise ValueError(f"history has {len(steps)} steps but {len(vals)} values of {key!r}")
        curves.append(dict(zip(steps, vals)))
    if not curves:
        raise ValueError("histories is empty")
    common = sorted(set.intersection(*(set(c) for c in curves)))
    M = np.array([[c[s] for c in curves] for s in common], dtype=np.float64).reshape(len(common), len(curves))
    M = np.where(np.isfinite(M), M, np.nan)
    with warnings.catch_warnings():  # an all-NaN step gives NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "step": np.asarray(common),
            "mean": np.nanmean(M, 1),
            "std": np.nanstd(M, 1),
            "min": np.nanmin(M, 1),
            "max": np.nanmax(M, 1),
        }
