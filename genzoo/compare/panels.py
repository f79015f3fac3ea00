"""Extra measurements of one run for the report's panels: infill, conditioning, steps vs quality.

Each function returns (scalars for the results table, arrays for the figure) and never
raises for a capability the family lacks: the panel then simply has no entry for it.
"""

from __future__ import annotations

import inspect
import json
import os
from typing import Any

import numpy as np

from genzoo.errors import UnsupportedError

STEP_GRID = (1, 2, 4, 8, 16, 32, 64, 128)


def infill_panel(model, dist, n: int, seed: int, run_dir: str) -> dict[str, float]:
    """Impute x1 given x0 on the quantile slices and the rare ones (tails, between modes, smallest
    mode); compare with the true conditional. A family with a second, approximate imputation
    method (``approximate_impute``: RePaint beside the exact density route, ...) is measured with
    it too, on the same slices, so the report shows that method's bias."""
    from genzoo.metrics import infill_metrics

    if dist is None or dist.dim != 2 or "impute" not in model.capabilities:
        return {}
    kw = dict(n_slices=3, n_per_slice=max(100, n // 10), random_state=seed, coords=(0,))
    res = infill_metrics(model, dist, **kw)
    out = {k: v for k, v in res.items() if isinstance(v, float)}
    arrays = {}
    for i, s in enumerate(res["slices"]):
        arrays[f"s{i}_imputed"] = np.asarray(s["imputed"], np.float32)
        arrays[f"s{i}_true"] = np.asarray(s["true"], np.float32)
        arrays[f"s{i}_meta"] = np.array([s["coord"], s["value"], s["w1"], s["w1_floor"]], np.float64)
        arrays[f"s{i}_kind"] = np.array(s["kind"])
    alt = getattr(model, "approximate_impute", None)
    if alt:
        try:
            res_alt = infill_metrics(model, dist, impute_options={"method": alt}, **kw)
        except (UnsupportedError, ValueError):
            res_alt = None
        if res_alt is not None:
            out["infill_approx_w1_ratio"] = res_alt["infill_w1_ratio"]
            out["infill_approx_w1_ratio_worst"] = res_alt["infill_w1_ratio_worst"]
            arrays["approx_method"] = np.array(alt)
            for i, s in enumerate(res_alt["slices"]):
                arrays[f"s{i}_approx"] = np.asarray(s["imputed"], np.float32)
                arrays[f"s{i}_approx_w1"] = np.array(s["w1"], np.float64)
    np.savez_compressed(os.path.join(run_dir, "infill.npz"), **arrays)
    return out


def conditioning_panel(model, dist, n: int, seed: int, run_dir: str) -> dict[str, float]:
    """Class-conditional samples and, where the family has guidance, the guidance sweep."""
    from genzoo.metrics import conditioning_metrics, guidance_sweep

    if dist is None or getattr(model, "classes_", None) is None:
        return {}
    k = len(model.classes_)
    per = max(50, n // k)
    res = conditioning_metrics(model, dist, n_per_class=per, random_state=seed)
    labels = np.repeat(np.arange(k), max(20, 600 // k))
    S = model.sample(len(labels), y=model.classes_[labels], random_state=seed + 5)
    arrays = {"samples": S.astype(np.float32), "labels": labels}
    if _accepts(model, "guidance"):
        try:
            sweep = guidance_sweep(model, dist, ws=(0.0, 1.0, 2.0, 3.0, 4.0), n_per_class=max(40, per // 2),
                                   random_state=seed)
            arrays["guidance"] = np.array([[r["guidance"], r["alignment"], r["recall"]] for r in sweep])
        except (UnsupportedError, TypeError, ValueError):
            pass
    np.savez_compressed(os.path.join(run_dir, "conditioning.npz"), **arrays)
    return {k: v for k, v in res.items() if isinstance(v, float)}


def steps_panel(model, dist, X_test, n: int, seed: int, run_dir: str) -> dict[str, float]:
    """Sample quality against network evaluations per sample, for samplers with a ``steps`` option."""
    from genzoo.metrics import mode_metrics, on_support, wasserstein

    if not _accepts(model, "steps"):
        return {}
    rows = []
    ref = np.asarray(X_test[:n], float)
    for k in STEP_GRID:
        try:
            S = model.sample(n, random_state=seed + 11, steps=k)
        except (TypeError, ValueError, UnsupportedError):
            continue
        nfe = getattr(model, "last_nfe_", None) or k
        row: dict[str, Any] = {"steps": k, "nfe": float(nfe)}
        if not np.isfinite(S).all():
            row["finite"] = False
            rows.append(row)
            continue
        row["w2"] = wasserstein(ref, S[: len(ref)], p=2)
        if dist is not None:
            row["on_support"] = on_support(S, dist)
            md = dist.modes() if hasattr(dist, "modes") else None
            if md is not None:
                row["modes"] = mode_metrics(S, md["centers"], md["std"])["modes"]
        rows.append(row)
    if not rows:
        return {}
    with open(os.path.join(run_dir, "steps.json"), "w") as f:
        json.dump(rows, f)
    return {}


def _accepts(model, option: str) -> bool:
    """Whether the family's sampler takes ``option`` (declared in its ``sample_options``)."""
    opts = getattr(model, "sample_options", None)
    if opts is not None:
        return option in opts
    try:
        return option in inspect.signature(model._sample_std).parameters
    except (TypeError, ValueError):
        return False
