"""Class-conditional generation measured against the data's true classes.

Per class: alignment (does the true posterior agree with the asked label?),
within-class diversity (recall / coverage against that class's real data) and FD,
each beside its floor from a second real draw of the class. ``guidance_sweep``
traces alignment against diversity as classifier-free guidance grows.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._checks import check_positive_int, unsupported
from .labels import conditional_alignment
from .manifold import manifold_metrics
from .sample import frechet_distance


def class_samples(dist: Any, n: int, random_state: int | None = 0, classes: Sequence[int] | None = None,
                  max_rounds: int = 50) -> dict[int, np.ndarray]:
    """``n`` real points of each class of ``dist``, drawn in batches and split by label."""
    n_classes = getattr(dist, "n_classes", None)
    if not n_classes:
        raise ValueError(f"distribution {getattr(dist, 'name', dist)!r} has no class labels")
    classes = list(range(n_classes)) if classes is None else [int(c) for c in classes]
    seeds = np.random.SeedSequence(random_state).generate_state(max_rounds)
    got: dict[int, list[np.ndarray]] = {c: [] for c in classes}
    for seed in seeds:
        X, y = dist.sample(2 * n * n_classes, random_state=int(seed), return_labels=True)
        for c in classes:
            got[c].append(np.asarray(X, dtype=np.float64)[y == c])
        if all(sum(len(a) for a in got[c]) >= n for c in classes):
            return {c: np.concatenate(got[c])[:n] for c in classes}
    rare = [c for c in classes if sum(len(a) for a in got[c]) < n]
    raise ValueError(f"classes {rare} are too rare to draw {n} points each")


def _asked_classes(model: Any, dist: Any) -> list[int]:
    if "conditional" not in getattr(model, "capabilities", ()):
        raise unsupported(f"{type(model).__name__} is not conditional (no 'conditional' capability)")
    classes = range(getattr(dist, "n_classes", None) or 0)
    seen = getattr(model, "classes_", None)
    out = [c for c in classes if seen is None or c in set(np.asarray(seen).tolist())]
    if not out:
        raise ValueError("the model and the distribution share no class label")
    return out


def _class_scores(Y: np.ndarray, X: np.ndarray, k: int, dist: Any) -> dict[str, float]:
    if not np.isfinite(Y).all():
        return dict.fromkeys(("alignment", "precision", "recall", "coverage", "fd"), float("nan"))
    m = manifold_metrics(X, Y)
    return {"alignment": conditional_alignment(Y, k, dist), "precision": m["precision"],
            "recall": m["recall"], "coverage": m["coverage"], "fd": frechet_distance(X, Y)}


def conditioning_metrics(model: Any, dist: Any, n_per_class: int = 500, random_state: int | None = 0,
                         **opts: Any) -> dict[str, Any]:
    """Class-conditional quality: per asked class k, ``model.sample(n, y=k)`` against class k's real data.

    Returns the means over classes of ``cond_alignment`` (share whose argmax true
    posterior is k), ``cond_precision``, ``cond_recall`` and ``cond_coverage``
    (within-class realism and diversity against that class's data) and ``cond_fd``,
    each with ``*_floor`` (the same for a second real draw of the class: the alignment
    floor is the Bayes accuracy, below 1 where classes overlap), and ``per_class``.
    Extra ``opts`` go to ``model.sample`` (e.g. ``guidance=``).
    """
    n = check_positive_int(n_per_class, "n_per_class")
    classes = _asked_classes(model, dist)
    s_real, s_model = (int(v) for v in np.random.SeedSequence(random_state).generate_state(2))
    real = class_samples(dist, 2 * n, s_real, classes)
    per_class = []
    for k in classes:
        X, X2 = real[k][:n], real[k][n:]
        Y = np.asarray(model.sample(n, y=np.full(n, k), random_state=s_model + k, **opts), dtype=np.float64)
        row = {"class": k, **_class_scores(Y, X, k, dist)}
        row.update({f"{key}_floor": v for key, v in _class_scores(X2, X, k, dist).items()})
        per_class.append(row)
    out: dict[str, Any] = {}
    for key in ("alignment", "precision", "recall", "coverage", "fd"):
        out[f"cond_{key}"] = float(np.mean([r[key] for r in per_class]))
        out[f"cond_{key}_floor"] = float(np.mean([r[f"{key}_floor"] for r in per_class]))
    out["per_class"] = per_class
    return out


def _accepts_guidance(model: Any) -> bool:
    params = inspect.signature(model.sample).parameters.values()
    return any(p.name == "guidance" or p.kind is p.VAR_KEYWORD for p in params)


def guidance_sweep(model: Any, dist: Any, ws: Sequence[float] = (0, 1, 2, 3, 4), n_per_class: int = 300,
                   random_state: int | None = 0) -> list[dict[str, float]]:
    """Alignment (quality) against recall (diversity) as classifier-free guidance ``g`` grows.

    genzoo's one convention (``genzoo.objectives.guidance``): ``uncond + g (cond - uncond)``,
    so g = 0 is the unconditional model, g = 1 plain conditional sampling and g > 1 guided.
    One row per g with its ``conditioning_metrics`` means; the expected trade-off is
    alignment up, recall down as g grows.
    """
    if not _accepts_guidance(model):
        raise unsupported(f"{type(model).__name__}.sample does not accept guidance=")
    rows = []
    for w in ws:
        try:
            m = conditioning_metrics(model, dist, n_per_class, random_state, guidance=w)
        except TypeError as e:
            raise unsupported(f"{type(model).__name__}.sample(guidance={w}) failed: {e}") from e
        rows.append({"guidance": float(w), **{k[5:]: v for k, v in m.items() if k.startswith("cond_")}})
    return rows

