"""Results tables of a comparison: per run, per family (mean and spread), and rankings."""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Any

import numpy as np

#: (metric key, label, higher is better?) in the order the tables show them
METRICS: list[tuple[str, str, bool]] = [
    ("on_support", "on support", True),
    ("high_quality", "high quality", True),
    ("modes", "modes", True),
    ("reverse_kl", "reverse KL", False),
    ("precision", "precision", True),
    ("recall", "recall", True),
    ("density", "density", True),
    ("coverage", "coverage", True),
    ("w2", "W2", False),
    ("fd", "Frechet", False),
    ("mmd", "MMD", False),
    ("nll", "NLL (nats)", False),
    ("nll_gap", "NLL - H", False),
    ("infill_w1", "infill W1", False),
    ("infill_w1_ratio_worst", "infill worst W1/floor", False),
    ("infill_approx_w1_ratio_worst", "infill worst W1/floor, approx. method", False),
    ("infill_cov90_dev", "infill |cover90 - 0.9|", False),
    ("cond_alignment", "cond. alignment", True),
    ("cond_recall", "cond. recall", True),
    ("marginal_w1", "column W1 (sd), mean", False),
    ("marginal_w1_worst", "column W1 (sd), worst", False),
    ("corr_error", "correlation error", False),
    ("tstr_accuracy", "train-on-synthetic acc.", True),
    ("trtr_accuracy", "train-on-real acc.", True),
    ("samples_per_s", "samples/s", True),
    ("nfe_per_sample", "NFE/sample", False),
    ("fit_s", "fit s", False),
]

#: the folklore orderings the seed states (">" strictly better, "~" about equal)
FOLKLORE = {
    "quality": "diffusion > gan ~ autoregressive > flow > vae",
    "speed": "gan ~ vae ~ flow > autoregressive > diffusion",
    "likelihood": "flow ~ autoregressive > vae > gan",
    "coverage": "autoregressive ~ diffusion > flow > vae > gan",
    "stability": "autoregressive > diffusion > flow ~ vae > gan",
}


def as_number(v) -> float:
    return float(v) if isinstance(v, (int, float)) and v is not None and math.isfinite(v) else float("nan")


def run_value(rec: dict, key: str) -> float:
    if key == "fit_s":
        return as_number(rec.get("fit_s"))
    return as_number((rec.get("metrics") or {}).get(key))


def summarise(records: list[dict]) -> list[dict]:
    """One row per family: mean and std over seeds of every metric, runs ok/diverged/failed."""
    fams = list(dict.fromkeys(r["family"] for r in records))
    rows = []
    for fam in fams:
        rs = [r for r in records if r["family"] == fam]
        ok = [r for r in rs if r.get("status") == "ok"]
        row: dict[str, Any] = {"family": fam, "runs": len(rs), "ok": len(ok),
                               "diverged": sum(r.get("status") == "diverged" for r in rs),
                               "failed": sum(r.get("status") == "failed" for r in rs),
                               "likelihood_kind": rs[0].get("likelihood_kind", "none"),
                               "capabilities": rs[0].get("capabilities", []),
                               "errors": sorted({r.get("error", "") for r in rs if r.get("error")})}
        keys = sorted({k for r in ok for k, v in (r.get("metrics") or {}).items() if isinstance(v, (int, float))}
                      | {"fit_s"})
        for k in keys:
            vals = np.array([run_value(r, k) for r in ok], float)
            vals = vals[np.isfinite(vals)]
            row[k] = float(vals.mean()) if len(vals) else float("nan")
            row[k + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0 if len(vals) else float("nan")
        rows.append(row)
    return rows


def format_value(v: float, key: str = "") -> str:
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return "-"
    if key in ("modes",):
        return f"{v:.1f}"
    if key in ("on_support", "high_quality", "precision", "recall", "coverage"):
        return f"{100 * v:.1f}%"
    if key == "samples_per_s":
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3f}"


def terminal_table(summary: list[dict]) -> str:
    cols = [("on_support", "on-support"), ("modes", "modes"), ("recall", "recall"), ("nll_gap", "NLL-H"),
            ("nll", "NLL"), ("w2", "W2"), ("tstr_accuracy", "TSTR acc"), ("trtr_accuracy", "TRTR acc"),
            ("samples_per_s", "samples/s"), ("fit_s", "fit s")]
    cols = [(k, label) for k, label in cols if any(math.isfinite(as_number(r.get(k))) for r in summary)]
    head = f"{'family':<17}{'runs':>7}" + "".join(f"{label:>12}" for _, label in cols)
    lines = [head, "-" * len(head)]
    for r in summary:
        runs = f"{r['ok']}/{r['runs']}"
        cells = "".join(f"{format_value(as_number(r.get(k)), k):>12}" for k, _ in cols)
        lines.append(f"{r['family']:<17}{runs:>7}" + cells)
        if r["diverged"] or r["failed"]:
            lines.append(f"  ! {r['diverged']} diverged, {r['failed']} failed: {'; '.join(r['errors'])[:150]}")
    return "\n".join(lines)


def _atomic_write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def write_results(out: str, records: list[dict], summary: list[dict], meta: dict) -> None:
    """results.csv / results.json (one row per run), summary.csv (per family)."""
    import io

    metric_keys = sorted({k for r in records for k in (r.get("metrics") or {})})
    head = ["family", "seed", "status", "error", "fit_s"] + metric_keys
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(head)
    for r in records:
        m = r.get("metrics") or {}
        w.writerow([r["family"], r["seed"], r.get("status"), r.get("error", ""), r.get("fit_s", "")]
                   + [m.get(k, "") for k in metric_keys])
    _atomic_write(os.path.join(out, "results.csv"), buf.getvalue())
    slim = [{k: v for k, v in r.items() if k not in ("traceback",)} for r in records]
    _atomic_write(os.path.join(out, "results.json"),
                  json.dumps(_json_safe({"meta": meta, "runs": slim, "summary": summary}), indent=1))
    keys = ["family", "runs", "ok", "diverged", "failed", "likelihood_kind"]
    stats = sorted({k for r in summary for k in r if k not in keys + ["capabilities", "errors"]})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(keys + stats)
    for r in summary:
        w.writerow([r.get(k, "") for k in keys] + [r.get(k, "") for k in stats])
    _atomic_write(os.path.join(out, "summary.csv"), buf.getvalue())


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    return obj


# ----------------------------------------------------------------------------- rankings
def ranking(summary: list[dict], aspect: str) -> dict:
    """Measured ordering of the families for one aspect, with the measure used and ties by noise.

    Families whose means differ by less than the larger of their seed-to-seed standard
    deviations are marked as tied ("~"): that difference is within noise.
    """
    ok = [r for r in summary if r["ok"] > 0]
    if aspect == "quality":
        key, better, label = _first_available(ok, [("on_support", True, "on-support share"),
                                                   ("precision", True, "precision (k-NN manifold)")])
    elif aspect == "speed":
        key, better, label = "samples_per_s", True, "samples per second"
    elif aspect == "likelihood":
        key, better, label = _first_available(ok, [("nll_gap", False, "NLL minus true entropy (nats)"),
                                                   ("nll", False, "test NLL (nats)")])
        ok = [r for r in ok if r.get("likelihood_kind") != "none"]
    elif aspect == "coverage":
        key, better, label = _first_available(ok, [("modes", True, "modes captured"),
                                                   ("coverage", True, "coverage (k-NN)"),
                                                   ("recall", True, "recall (k-NN manifold)")])
    elif aspect == "stability":
        key, better, label = "_instability", False, "seed-to-seed spread of the quality measure + divergences"
        qkey, _, _ = _first_available(ok, [("on_support", True, ""), ("precision", True, "")])
        for r in ok:
            spread = as_number(r.get(qkey + "_std"))
            r["_instability"] = (0.0 if not math.isfinite(spread) else spread) + (r["diverged"] + r["failed"])
    else:
        raise ValueError(f"unknown aspect {aspect!r}")
    vals = [(r["family"], as_number(r.get(key)), as_number(r.get(key + "_std"))) for r in ok]
    vals = [v for v in vals if math.isfinite(v[1])]
    vals.sort(key=lambda v: -v[1] if better else v[1])
    parts = []
    for i, (fam, v, s) in enumerate(vals):
        if i:
            prev = vals[i - 1]
            noise = max(s if math.isfinite(s) else 0, prev[2] if math.isfinite(prev[2]) else 0)
            parts.append("~" if abs(prev[1] - v) <= noise else ">")
        parts.append(fam)
    return {"aspect": aspect, "measure": label, "key": key, "order": " ".join(parts),
            "values": {f: v for f, v, _ in vals}, "folklore": FOLKLORE[aspect],
            "agreement": agreement(" ".join(parts), FOLKLORE[aspect])}


def _first_available(rows, options):
    for key, better, label in options:
        if any(math.isfinite(as_number(r.get(key))) for r in rows):
            return key, better, label
    return options[-1]


def _levels(order: str) -> dict[str, int]:
    """'a > b ~ c > d' -> {a: 0, b: 1, c: 1, d: 2}."""
    lev, out = 0, {}
    for t in order.split():
        if t == ">":
            lev += 1
        elif t != "~":
            out[t] = lev
    return out


def agreement(measured: str, folklore: str) -> dict:
    """Pairs of families both orderings rank strictly: which agree and which this run reverses."""
    m, f = _levels(measured), _levels(folklore)
    common = [x for x in f if x in m]
    agree, disagree = [], []
    for i, a in enumerate(common):
        for b in common[i + 1:]:
            if f[a] == f[b] or m[a] == m[b]:
                continue
            (agree if (f[a] < f[b]) == (m[a] < m[b]) else disagree).append(
                (a, b) if f[a] < f[b] else (b, a))
    return {"agree": agree, "disagree": disagree}
