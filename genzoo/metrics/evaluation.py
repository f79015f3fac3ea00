"""``evaluate``: every metric that applies to a model, each sample metric beside its floor."""
from __future__ import annotations

import hashlib
import math
import time
from typing import Any

import numpy as np

from ._checks import as_points, check_positive_int
from .cost import nfe_of
from .labels import inception_score
from .likelihood import nll, nll_gap
from .manifold import manifold_metrics
from .modes import mode_metrics, on_support, support_threshold
from .sample import column_units, frechet_distance, mmd, wasserstein

# value / floor is reported for these: distances with a positive finite-n floor and
# scores whose floor is what a perfect model gets. Not for mmd/kid/reverse_kl, whose
# floors are ~0 (the ratio would be noise).
RATIO_METRICS = ("w2", "w1", "fd", "precision", "recall", "density", "coverage", "on_support",
                 "modes", "high_quality", "inception_score")

_FLOORS: dict[tuple, dict[str, float]] = {}  # (data fingerprint, n, random_state) -> floor values
_THRESHOLDS: dict[str, float] = {}  # data fingerprint -> on-support threshold


def _is_distribution(obj: Any) -> bool:
    return hasattr(obj, "sample") and hasattr(obj, "log_prob") and hasattr(obj, "dim")


def _fingerprint(dist: Any, X: np.ndarray | None) -> str:
    """Identity of the data for the floor cache: a hash of its content, not of the Python object."""
    h = hashlib.sha1()
    if dist is not None:
        h.update(f"{type(dist).__module__}.{type(dist).__qualname__}:{getattr(dist, 'name', '')}".encode())
        h.update(np.ascontiguousarray(dist.sample(64, random_state=12345), dtype=np.float64).tobytes())
    else:
        h.update(str(X.shape).encode())
        h.update(np.ascontiguousarray(X).tobytes())
    return h.hexdigest()


def _metric_names(dist: Any) -> list[str]:
    names = ["w2", "w1", "fd", "mmd", "kid", "precision", "recall", "density", "coverage"]
    if dist is not None:
        names.append("on_support")
        if hasattr(dist, "modes") and dist.modes() is not None:
            names += ["modes", "n_modes", "high_quality", "reverse_kl"]
        if getattr(dist, "n_classes", None):
            names.append("inception_score")
    return names


def sample_metrics(X: np.ndarray, Y: np.ndarray, dist: Any = None, threshold: float | None = None) -> dict[str, float]:
    """Every sample metric between real ``X`` and generated ``Y`` (plus the density-based ones for ``dist``).

    NaN for all of them when any row of ``Y`` is NaN/inf (a diverged model).
    """
    names = _metric_names(dist)
    if not np.isfinite(Y).all():
        return dict.fromkeys(names, float("nan"))
    out = {"w2": wasserstein(X, Y, p=2), "w1": wasserstein(X, Y, p=1), "fd": frechet_distance(X, Y),
           "mmd": mmd(X, Y), "kid": mmd(X, Y, kernel="poly")}
    out.update(manifold_metrics(X, Y))
    if "on_support" in names:
        out["on_support"] = on_support(Y, dist, threshold=threshold)
    if "modes" in names:
        modes = dist.modes()
        mm = mode_metrics(Y, modes["centers"], modes["std"], modes.get("weights"))
        out.update({k: mm[k] for k in ("modes", "n_modes", "high_quality", "reverse_kl")})
    if "inception_score" in names:
        out["inception_score"] = inception_score(Y, dist)
    return out


def _resolve(data: Any) -> tuple[Any, np.ndarray | None, str]:
    if isinstance(data, str):
        from genzoo import datasets

        data = datasets.get(data)
    if _is_distribution(data):
        return data, None, str(getattr(data, "name", type(data).__name__))
    return None, as_points(data, "data"), "array"


def evaluate(
    model: Any,
    data: Any,
    *,
    n: int = 2000,
    n_test: int = 10_000,
    random_state: int = 0,
    X_test: Any = None,
    floors: bool = True,
    timing: bool = True,
    infill: bool = False,
    conditioning: bool = False,
    as_frame: bool = False,
) -> Any:
    """Evaluate a fitted ``model`` against ``data``: one flat record of every metric that applies.

    ``data`` is a Distribution (or a built-in's name) or an array of held-out real points.
    The record holds:

    - sample metrics of n model samples against n real points: ``w2``, ``w1``, ``fd``,
      ``mmd`` (rbf, median bandwidth), ``kid``, ``precision``, ``recall``, ``density``,
      ``coverage``; for a distribution also ``on_support``, for mixtures with known
      modes ``modes``, ``n_modes``, ``high_quality``, ``reverse_kl``, for labelled data
      ``inception_score``. With ``floors``, each has ``<name>_floor`` (the same metric
      between two independent real draws of size n: what a perfect model scores; cached
      in-process per data, n and random_state) and, for ``RATIO_METRICS``,
      ``<name>_ratio`` = value / floor. If any sample is NaN/inf the sample metrics are
      NaN and ``nonfinite_share`` says how many. Against an array (a table without a known
      density) the sample metrics are computed on columns divided by the real points' standard
      deviations (``standardized`` = True), so that the largest column does not decide them;
      a distribution's metrics stay in its own units (its support threshold needs them);
    - likelihood, only where ``model.likelihood_kind != 'none'``: ``nll``, ``nll_se``,
      ``bits_per_dim`` on ``X_test`` (default: n_test fresh draws, or the whole array),
      and for a distribution ``nll_gap`` (= KL(data || model), see ``nll_gap``),
      ``nll_gap_se``, ``entropy``. ``likelihood_kind`` is always present; a model
      without a likelihood has no ``nll`` key (absent, not faked);
    - with ``timing``: ``sample_seconds`` and ``samples_per_s`` of the n-sample call
      (after a 16-sample warm-up), and ``nfe_per_sample`` when the model reports it;
    - ``infill=True`` (2-D distribution, 'impute' capability): ``infill_metrics`` scalars;
      ``conditioning=True`` (labelled distribution, 'conditional' capability):
      ``conditioning_metrics`` scalars. Off by default: they call the model many times;
    - ``dataset``, ``dim``, ``n``, ``random_state``.

    Deterministic given ``random_state`` (seeds of the real draws, the model's samples
    and the test set are derived from it and differ from each other). ``as_frame=True``
    returns a one-row pandas DataFrame.
    """
    dist, pool, name = _resolve(data)
    n = check_positive_int(n, "n")
    s_real, s_alt, s_model, s_test = (int(v) for v in np.random.SeedSequence(random_state).generate_state(4))
    if dist is not None:
        X = np.asarray(dist.sample(n, random_state=s_real), dtype=np.float64)
        X_alt = np.asarray(dist.sample(n, random_state=s_alt), dtype=np.float64) if floors else None
    else:
        n = min(n, len(pool) // 2 if floors else len(pool))
        if n < 6:
            raise ValueError(f"data has {len(pool)} rows; evaluate needs at least 6 per sample set"
                             + (" (two disjoint sets when floors=True)" if floors else ""))
        perm = np.random.default_rng(s_real).permutation(len(pool))
        X, X_alt = pool[perm[:n]], (pool[perm[n : 2 * n]] if floors else None)
    dim = X.shape[1]
    rec: dict[str, Any] = {"dataset": name, "dim": dim, "n": n, "random_state": random_state}

    if timing:
        model.sample(16, random_state=s_model)
    t0 = time.perf_counter()
    Y = np.asarray(model.sample(n, random_state=s_model), dtype=np.float64)
    seconds = time.perf_counter() - t0
    if Y.ndim != 2 or Y.shape[1] != dim:
        raise ValueError(f"model samples have shape {Y.shape}; expected ({n}, {dim})")
    if timing:
        rec.update(sample_seconds=seconds, samples_per_s=n / seconds if seconds > 0 else float("inf"))
        if nfe_of(model) is not None:
            rec["nfe_per_sample"] = nfe_of(model)

    key = _fingerprint(dist, pool)
    thr = None
    if dist is not None:
        if key not in _THRESHOLDS:
            _THRESHOLDS[key] = support_threshold(dist)
        thr = _THRESHOLDS[key]
    finite = np.isfinite(Y).all(1)
    if not finite.all():
        rec["nonfinite_share"] = float(1 - finite.mean())
    if dist is None:  # a table: every column on the same footing (the real points' spread)
        unit = column_units(X)
        X, Y = X / unit, Y / unit
        X_alt = X_alt / unit if X_alt is not None else None
        rec["standardized"] = True
    values = sample_metrics(X, Y, dist, thr)
    rec.update(values)
    if floors:
        fkey = (key, n, random_state)
        if fkey not in _FLOORS:
            _FLOORS[fkey] = sample_metrics(X, X_alt, dist, thr)
        for k, v in _FLOORS[fkey].items():
            if k == "n_modes":
                continue
            rec[f"{k}_floor"] = v
            if k in RATIO_METRICS:
                rec[f"{k}_ratio"] = values[k] / v if v else float("nan")

    kind = str(getattr(model, "likelihood_kind", "none"))
    rec["likelihood_kind"] = kind
    if kind != "none":
        if X_test is not None:
            Xt = as_points(X_test, "X_test")
        elif dist is not None:
            Xt = np.asarray(dist.sample(check_positive_int(n_test, "n_test"), random_state=s_test), dtype=np.float64)
        else:
            Xt = pool
        if dist is not None:  # one score_samples call serves NLL and gap
            g = nll_gap(model, dist, X=Xt)
            rec.update(nll=g["nll"], nll_se=g["nll_se"], bits_per_dim=g["nll"] / (dim * math.log(2)),
                       nll_gap=g["gap"], nll_gap_se=g["gap_se"], entropy=g["entropy"])
        else:
            r = nll(model, Xt)
            rec.update(nll=r["nll"], nll_se=r["se"], bits_per_dim=r["bits_per_dim"])

    caps = getattr(model, "capabilities", frozenset())
    if infill and dist is not None and dist.dim == 2 and "impute" in caps:
        from .infill import infill_metrics

        rec.update({k: v for k, v in infill_metrics(model, dist, random_state=random_state).items() if k != "slices"})
    if conditioning and dist is not None and getattr(dist, "n_classes", None) and "conditional" in caps:
        from .conditioning import conditioning_metrics

        res = conditioning_metrics(model, dist, random_state=random_state)
        rec.update({k: v for k, v in res.items() if k != "per_class"})
    if as_frame:
        import pandas as pd

        return pd.DataFrame([rec])
    return rec


def clear_cache() -> None:
    """Forget cached floors and on-support thresholds (e.g. after changing a distribution in place)."""
    _FLOORS.clear()
    _THRESHOLDS.clear()
