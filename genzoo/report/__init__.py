"""The self-contained HTML report of a comparison (figures inlined as PNG, no network)."""

from __future__ import annotations

import base64
import html
import io
import math
import os
from typing import Any

import numpy as np

from genzoo.compare.tables import METRICS, as_number, format_value, ranking

ASPECTS = [("quality", "Sample quality"), ("speed", "Sampling speed"), ("likelihood", "Likelihood"),
           ("coverage", "Mode coverage"), ("stability", "Training stability")]
CAPS = [("sample", "sample"), ("exact", "exact likelihood"), ("bound", "likelihood bound"),
        ("none", "no likelihood"), ("impute", "infill"), ("conditional", "conditioning")]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(src: str, alt: str) -> str:
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def _load(out: str, rec: dict, name: str) -> np.ndarray | None:
    p = os.path.join(out, rec.get("run_dir", ""), name)
    return np.load(p) if rec.get("run_dir") and os.path.exists(p) else None


def _first_ok(records: list[dict], fam: str) -> dict | None:
    """The run whose figures the report shows: the first finished one that measured the panels."""
    ok = [r for r in records if r["family"] == fam and r.get("status") == "ok"]
    return next((r for r in ok if r.get("panels", True)), ok[0] if ok else None)


def _scatter(ax, data, S, box, title):
    ax.scatter(data.X_test[:2000, 0], data.X_test[:2000, 1], s=2, c="#bbbbbb", lw=0, label="data")
    if S is not None:
        ax.scatter(S[:, 0], S[:, 1], s=2, c="#d62728", lw=0, alpha=0.7, label="samples")
    ax.set_xlim(*box[0])
    ax.set_ylim(*box[1])
    ax.set_aspect("equal", adjustable="box")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def family_figures(out: str, records: list[dict], fam: str, data, box) -> list[tuple[str, str]]:
    """[(caption, data-uri)] for one family: samples, log-density, sampling path, training curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: list[tuple[str, str]] = []
    rec = _first_ok(records, fam)
    two_d = data.X_train.shape[1] == 2
    if rec is not None and two_d:
        S = _load(out, rec, "samples.npy")
        fig, ax = plt.subplots(figsize=(3.2, 3.2))
        _scatter(ax, data, S, box, f"{fam}: samples (red) over data (grey)")
        figs.append(("samples", _png(fig)))
        exact = _load(out, rec, "exact_samples.npy")
        if exact is not None:
            fig, ax = plt.subplots(figsize=(3.2, 3.2))
            _scatter(ax, data, exact, box, f"{fam}: exact draws from its normalised density")
            figs.append(("exact draws (the default sampler only approximates them)", _png(fig)))
        lp = _load(out, rec, "logdensity.npy")
        if lp is not None:
            fig, ax = plt.subplots(figsize=(3.2, 3.2))
            lpc = np.clip(lp, np.nanmax(lp) - 12, None)
            ax.imshow(lpc, origin="lower", extent=[*box[0], *box[1]], cmap="viridis", aspect="equal")
            ax.set_title(f"{fam}: learned log-density ({rec.get('likelihood_kind')})", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            figs.append(("log-density", _png(fig)))
        path = _load(out, rec, "path.npy")
        if path is not None and path.ndim == 3:
            k = len(path)
            fig, axes = plt.subplots(1, k, figsize=(1.7 * k, 1.9))
            for i, ax in enumerate(np.atleast_1d(axes)):
                _scatter(ax, data, path[i], box, f"{i + 1}/{k}")
            fig.suptitle(f"{fam}: sampling process", fontsize=9)
            figs.append(("sampling process", _png(fig)))
    elif rec is not None:
        S = _load(out, rec, "samples.npy")
        if S is not None:
            figs += wide_figures(fam, np.asarray(data.X_test, float)[:2000], np.asarray(S, float), data.columns)
    runs = [r for r in records if r["family"] == fam and len((r.get("history") or {}).get("train_loss", [])) > 1]
    if runs:
        fig, ax = plt.subplots(figsize=(3.4, 2.6))
        for r in runs:
            h = r["history"]
            ax.plot(h.get("step", range(len(h["train_loss"]))), h["train_loss"], lw=1,
                    label=f"train s{r['seed']}")
            if h.get("val_loss"):
                ax.plot(h.get("val_step", range(len(h["val_loss"]))), h["val_loss"], lw=1, ls="--",
                        label=f"val s{r['seed']}")
        ax.set_xlabel("step")
        ax.set_title(f"{fam}: training curves", fontsize=9)
        ax.legend(fontsize=6)
        figs.append(("training curves", _png(fig)))
    return figs


def infill_figure(out: str, records: list[dict], fams: list[str]) -> str | None:
    """Per family, imputed draws (red) against true conditional draws (grey) on each slice; the
    family's approximate method (blue, dashed), where it has one, on the same slices."""
    rows = [(f, _load_npz(out, _first_ok(records, f), "infill.npz")) for f in fams]
    rows = [(f, z) for f, z in rows if z is not None]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_sl = max(int(k[1:].split("_")[0]) for k in rows[0][1].files if k[0] == "s" and k[1].isdigit()) + 1
    fig, axes = plt.subplots(len(rows), n_sl, figsize=(2.3 * n_sl, 1.5 * len(rows)), squeeze=False)
    for i, (fam, z) in enumerate(rows):
        for j in range(n_sl):
            ax = axes[i, j]
            if f"s{j}_meta" not in z.files:
                ax.axis("off")
                continue
            coord, value, w1, w1f = z[f"s{j}_meta"]
            tr, im = z[f"s{j}_true"], z[f"s{j}_imputed"]
            lo, hi = float(min(tr.min(), np.nanmin(im))), float(max(tr.max(), np.nanmax(im)))
            bins = np.linspace(lo, hi, 50)
            ax.hist(tr, bins=bins, histtype="stepfilled", color="#aaaaaa", density=True, label="true")
            ax.hist(im[np.isfinite(im)], bins=bins, histtype="step", color="#d62728", density=True, label="imputed")
            approx = ""
            if f"s{j}_approx" in z.files:
                ap = z[f"s{j}_approx"]
                ax.hist(np.clip(ap[np.isfinite(ap)], lo, hi), bins=bins, histtype="step", color="#1f77b4", ls="--",
                        density=True)
                approx = f", {z['approx_method']} {float(z[f's{j}_approx_w1']) / max(w1f, 1e-12):.1f}x"
            ax.set_yticks([])
            ax.tick_params(labelsize=6)
            miss = "x1" if int(coord) == 0 else "x0"
            kind = str(z[f"s{j}_kind"]) + ": " if f"s{j}_kind" in z.files else ""
            ax.set_title(f"{fam} {kind}{miss} | x{int(coord)}={value:.2f}\nW1 {w1 / max(w1f, 1e-12):.1f}x floor"
                         f"{approx}", fontsize=6)
    fig.tight_layout()
    return _png(fig)


def conditioning_figure(out: str, records: list[dict], fams: list[str]) -> str | None:
    """Per family, samples coloured by the asked label; and alignment vs diversity under guidance."""
    rows = [(f, _load_npz(out, _first_ok(records, f), "conditioning.npz")) for f in fams]
    rows = [(f, z) for f, z in rows if z is not None]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    guided = any("guidance" in z.files for _, z in rows)
    k = len(rows) + int(guided)
    fig, axes = plt.subplots(1, k, figsize=(2.4 * k, 2.5), squeeze=False)
    for ax, (fam, z) in zip(axes[0], rows):
        S = z["samples"]
        ax.scatter(S[:, 0], S[:, 1], c=z["labels"], cmap="tab10", s=2, lw=0)
        ax.set_title(f"{fam}: x | asked label", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal", adjustable="datalim")
    if not guided:
        fig.tight_layout()
        return _png(fig)
    ax = axes[0, -1]
    drew = False
    for fam, z in rows:
        if "guidance" in z.files:
            g = z["guidance"]
            ax.plot(g[:, 2], g[:, 1], marker="o", ms=3, label=fam)
            for w, a, r in g:
                ax.annotate(f"{w:g}", (r, a), fontsize=5)
            drew = True
    ax.set_xlabel("within-class recall (diversity)", fontsize=7)
    ax.set_ylabel("alignment", fontsize=7)
    ax.set_title("guidance g: quality vs diversity" if drew else "no family with guidance", fontsize=8)
    ax.tick_params(labelsize=6)
    if drew:
        ax.legend(fontsize=6)
    fig.tight_layout()
    return _png(fig)


def steps_figure(out: str, records: list[dict], fams: list[str]) -> str | None:
    """Quality (on-support share, or W2) against network evaluations per sample."""
    import json

    series = []
    for f in fams:
        rec = _first_ok(records, f)
        p = os.path.join(out, rec.get("run_dir", ""), "steps.json") if rec else ""
        if rec and os.path.exists(p):
            with open(p) as fh:
                series.append((f, json.load(fh), rec))
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "on_support" if all("on_support" in r for _, rows, _ in series for r in rows if r.get("finite", True)) \
        else "w2"
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    for f, rows, _ in series:
        pts = [(r["nfe"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, label=f)
    for f in fams:
        rec = _first_ok(records, f)
        m = (rec or {}).get("metrics") or {}
        if f not in [s[0] for s in series] and key in m and m.get("nfe_per_sample"):
            ax.scatter([m["nfe_per_sample"]], [m[key]], marker="s", s=14, label=f"{f} (one setting)")
    floor = next(((r.get("metrics") or {}).get(key + "_floor") for r in records if (r.get("metrics") or {}).get(
        key + "_floor") is not None), None)
    if floor is not None:
        ax.axhline(floor, color="#888", ls=":", lw=1, label="floor (real data)")
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations per sample", fontsize=8)
    ax.set_ylabel("on-support share" if key == "on_support" else "W2", fontsize=8)
    ax.legend(fontsize=6)
    ax.set_title("quality vs sampling cost", fontsize=9)
    return _png(fig)


def _load_npz(out: str, rec: dict | None, name: str):
    if not rec or not rec.get("run_dir"):
        return None
    p = os.path.join(out, rec["run_dir"], name)
    return np.load(p) if os.path.exists(p) else None


def informative_pairs(X: np.ndarray, k: int = 3) -> list[tuple[int, int]]:
    """The ``k`` column pairs of the data with the largest absolute correlation (ties: first pairs)."""
    from genzoo.metrics import correlation_matrix

    C = np.abs(correlation_matrix(X))
    d = C.shape[0]
    pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
    pairs.sort(key=lambda p: -C[p])
    return pairs[:k]


def wide_figures(fam: str, X: np.ndarray, S: np.ndarray, columns: list[str]) -> list[tuple[str, str]]:
    """Beyond 2-D, for one family: its samples over the data on the most correlated column pairs,
    and the error of its correlation matrix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genzoo.metrics import correlation_error

    names = list(columns) if len(columns) == X.shape[1] else [f"x{i}" for i in range(X.shape[1])]
    pairs = informative_pairs(X)
    Sp = S[:len(X)]  # as many samples as data rows, so that neither hides the other by numbers alone
    fig, axes = plt.subplots(1, len(pairs), figsize=(2.6 * len(pairs), 2.6))
    for ax, (i, j) in zip(np.atleast_1d(axes), pairs):
        ax.scatter(Sp[:, i], Sp[:, j], s=3, c="#d62728", lw=0, alpha=0.6)
        ax.scatter(X[:, i], X[:, j], s=3, c="#222222", lw=0, alpha=0.6)
        lo = np.percentile(np.concatenate([X[:, [i, j]], S[:, [i, j]]]), [0.5, 99.5], axis=0)
        ax.set_xlim(lo[0, 0], lo[1, 0])
        ax.set_ylim(lo[0, 1], lo[1, 1])
        ax.set_xlabel(names[i][:24], fontsize=7)
        ax.set_ylabel(names[j][:24], fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(f"{fam}: samples (red) and held-out data (black), most correlated column pairs", fontsize=9)
    fig.tight_layout()
    out = [("column pairs", _png(fig))]
    E = correlation_error(X, S)
    fig, ax = plt.subplots(figsize=(3.4, 3.0))
    im = ax.imshow(E, vmin=0, vmax=max(0.5, float(E.max())), cmap="magma")
    ax.set_title(f"{fam}: |corr(samples) - corr(data)|", fontsize=9)
    if len(names) <= 12:
        ax.set_xticks(range(len(names)), [n[:10] for n in names], rotation=90, fontsize=6)
        ax.set_yticks(range(len(names)), [n[:10] for n in names], fontsize=6)
    fig.colorbar(im, ax=ax, fraction=0.046)
    out.append(("correlation error", _png(fig)))
    return out


def columns_figure(out: str, records: list[dict], fams: list[str], data) -> str | None:
    """Beyond 2-D: per family and column, the W1 distance of the marginal in column standard deviations."""
    if data.X_train.shape[1] <= 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genzoo.metrics import column_distances

    X = np.asarray(data.X_test, float)[:2000]
    rows, labels = [], []
    for fam in fams:
        rec = _first_ok(records, fam)
        S = _load(out, rec, "samples.npy") if rec else None
        if S is not None and np.isfinite(S).all():
            rows.append(column_distances(X, S))
            labels.append(fam)
    if not rows:
        return None
    W = np.array(rows)
    d = W.shape[1]
    names = list(data.columns) if len(data.columns) == d else [f"x{i}" for i in range(d)]
    fig, ax = plt.subplots(figsize=(min(14, 1.2 + 0.32 * d), 0.9 + 0.3 * len(labels)))
    im = ax.imshow(W, aspect="auto", cmap="viridis", vmin=0)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xticks(range(d), [n[:14] for n in names], rotation=90, fontsize=6)
    fig.colorbar(im, ax=ax, fraction=0.03, label="W1 / column sd")
    fig.tight_layout()
    return _png(fig)


def overview_figure(out: str, records: list[dict], fams: list[str], data, box) -> str | None:
    """All families' samples side by side, data in grey (also the README picture)."""
    if data.X_train.shape[1] != 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(fams) + 1
    cols = min(k, 4)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows))
    axes = np.atleast_1d(axes).ravel()
    _scatter(axes[0], data, None, box, f"data: {data.name}")
    for ax, fam in zip(axes[1:], fams):
        rec = _first_ok(records, fam)
        S = _load(out, rec, "samples.npy") if rec else None
        _scatter(ax, data, S, box, fam if rec else f"{fam} ({_status(records, fam)})")
    for ax in axes[k:]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    with open(os.path.join(out, "samples.png"), "wb") as f:
        f.write(buf.getvalue())
    return _png(fig)


def _choices_note(records: list[dict], fam: str) -> str:
    """What each seed's fit chose between candidate fits (mixture start, independent blocks), and the
    held-out numbers that decided; nothing when no fit had a choice to make."""
    runs = [r for r in records if r["family"] == fam and r.get("choices")]
    if not runs:
        return ""
    items = "".join(f"<li>seed {r['seed']}: {html.escape(line)}</li>" for r in runs for line in r["choices"])
    return f"<p class=note><b>Chosen at fit.</b></p><ul class=note id='choices-{html.escape(fam)}'>{items}</ul>"


def _status(records, fam) -> str:
    st = sorted({r.get("status", "?") for r in records if r["family"] == fam})
    return "/".join(st)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222}
h1{margin-bottom:0}.sub{color:#666;margin-top:4px}
table{border-collapse:collapse;margin:12px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}.best{background:#dff0d8;font-weight:bold}.floor td{color:#777;font-style:italic}
.bad{color:#b00}.fam{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}
.fam img{border:1px solid #eee}section{margin-top:28px}.note{color:#555;font-size:13px;max-width:900px}
code{background:#f4f4f4;padding:1px 4px}
"""


SAMPLE_KEYS = {"on_support", "high_quality", "modes", "reverse_kl", "precision", "recall", "density", "coverage",
               "w2", "fd", "mmd", "marginal_w1", "marginal_w1_worst", "corr_error"}


def _metrics_table(summary: list[dict], records: list[dict], sample_side: bool, table_id: str) -> str:
    """Sample metrics (``sample_side``) or the rest (likelihood, infill, conditioning, cost)."""
    ok_rows = [r for r in summary if r["ok"]]
    cols = [(k, lab, hb) for k, lab, hb in METRICS if (k in SAMPLE_KEYS) == sample_side
            and any(math.isfinite(as_number(r.get(k))) for r in ok_rows)]
    floors = {}
    for rec in records:
        m = rec.get("metrics") or {}
        for k, _, _ in cols:
            v = as_number(m.get(k + "_floor"))
            if k == "nll":  # a perfect model's NLL is the true entropy; its gap is zero
                v = as_number(m.get("entropy"))
            elif k == "nll_gap" and math.isfinite(as_number(m.get("entropy"))):
                v = 0.0
            if math.isfinite(v) and k not in floors:
                floors[k] = v
    best = {}
    for k, _, hb in cols:
        vals = [(as_number(r.get(k)), r["family"]) for r in ok_rows if math.isfinite(as_number(r.get(k)))]
        if k == "nll_gap":
            vals = [(abs(v), f) for v, f in vals]
        if vals and k not in ("nfe_per_sample",):
            best[k] = (max if hb and k != "nll_gap" else min)(vals)[1]
    head = "<tr><th class=l>family</th><th>runs ok</th><th>likelihood</th>" + "".join(
        f"<th>{html.escape(lab)}</th>" for _, lab, _ in cols) + "</tr>"
    body = []
    for r in summary:
        cells = []
        for k, _, _ in cols:
            v, s = as_number(r.get(k)), as_number(r.get(k + "_std"))
            spread = math.isfinite(s) and s > 0 and math.isfinite(v)
            txt = format_value(v, k) + (f" ± {format_value(s, k)}" if spread else "")
            cls = ' class="best"' if best.get(k) == r["family"] else ""
            cells.append(f"<td{cls}>{txt}</td>")
        status = f"{r['ok']}/{r['runs']}"
        if r["diverged"]:
            status += f' <span class="bad">({r["diverged"]} diverged)</span>'
        if r["failed"]:
            status += f' <span class="bad">({r["failed"]} failed)</span>'
        body.append(f"<tr data-family=\"{html.escape(r['family'])}\"><td class=l>{html.escape(r['family'])}</td>"
                    f"<td>{status}</td><td>{html.escape(r['likelihood_kind'])}</td>{''.join(cells)}</tr>")
    floor_row = "<tr class=floor><td class=l>floor (real vs real)</td><td></td><td></td>" + "".join(
        f"<td>{format_value(floors[k], k) if k in floors else ''}</td>" for k, _, _ in cols) + "</tr>"
    return f'<table id="{table_id}">{head}{"".join(body)}{floor_row}</table>'


def _capability_table(summary: list[dict]) -> str:
    head = "<tr><th class=l>family</th>" + "".join(f"<th>{lab}</th>" for _, lab in CAPS) + \
        "<th>NFE / sample</th></tr>"
    rows = []
    for r in summary:
        caps = set(r.get("capabilities", []))
        kind = r.get("likelihood_kind", "none")
        have = {"sample": "sample" in caps, "exact": kind == "exact", "bound": kind == "bound",
                "none": kind == "none", "impute": "impute" in caps, "conditional": "conditional" in caps}
        nfe = as_number(r.get("nfe_per_sample"))
        rows.append(f"<tr data-family=\"{html.escape(r['family'])}\"><td class=l>{html.escape(r['family'])}</td>"
                    + "".join(f"<td>{'✓' if have[c] else ''}</td>" for c, _ in CAPS)
                    + f"<td>{format_value(nfe) if math.isfinite(nfe) else '-'}</td></tr>")
    return f'<table id="capabilities">{head}{"".join(rows)}</table>'


def _ranking_table(summary: list[dict]) -> str:
    rows = []
    for aspect, label in ASPECTS:
        rk = ranking([dict(r) for r in summary], aspect)
        ag = rk["agreement"]
        agree = ", ".join(f"{a} > {b}" for a, b in ag["agree"]) or "-"
        dis = ", ".join(f"{b} > {a} here" for a, b in ag["disagree"]) or "none"
        rows.append(f"<tr><td class=l>{label}</td><td class=l>{html.escape(rk['measure'])}</td>"
                    f"<td class=l><b>{html.escape(rk['order'] or '-')}</b></td>"
                    f"<td class=l>{html.escape(rk['folklore'])}</td><td class=l>{html.escape(agree)}</td>"
                    f"<td class=l>{html.escape(dis)}</td></tr>")
    head = ("<tr><th class=l>what you need</th><th class=l>measured by</th><th class=l>this run</th>"
            "<th class=l>folklore</th><th class=l>agrees</th><th class=l>disagrees</th></tr>")
    return f'<table id="rankings">{head}{"".join(rows)}</table>'


def write_report(out: str, records: list[dict], summary: list[dict], meta: dict[str, Any], data,
                 box: tuple[tuple[float, float], tuple[float, float]]) -> str:
    """Write ``out/report.html`` (atomically) and return its path; ``box`` is the plotting window."""
    fams = [r["family"] for r in summary]
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>genzoo compare: {esc(data.name)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>genzoo compare: {esc(data.name)}</h1>",
             f"<p class=sub>{meta['n_train']} training points, {meta['dim']} dimension(s) "
             f"({esc(', '.join(meta.get('columns', [])))}); preset <code>{esc(meta['preset'])}</code>, "
             f"{meta['seeds']} seed(s) per family; genzoo {esc(meta['genzoo_version'])}.</p>",
             f"<p class=note><b>Budget.</b> {esc(meta['budget_note'])}</p>"]
    ov = overview_figure(out, records, fams, data, box)
    if ov:
        parts.append(f"<section><h2>Samples</h2>{_img(ov, 'samples of every family over the data')}</section>")
    parts += ["<section><h2>Metrics</h2><p class=note>Mean ± standard deviation over seeds; the best value "
              "of each column is highlighted. The last row is each metric's floor: its value between two "
              "independent real draws of the same size, which is what a perfect model scores. Sample "
              "distances such as W2 barely separate models at this sample size; on-support share, modes "
              "and the NLL gap (NLL minus the true entropy, i.e. KL(data || model)) separate them.</p>",
              "<h3>Samples</h3>", _metrics_table(summary, records, True, "metrics"),
              "<h3>Likelihood, infill, conditioning, cost</h3>",
              _metrics_table(summary, records, False, "metrics-more"), "</section>",
              "<section><h2>Pick by what you need (measured)</h2><p class=note>Orderings measured in this "
              "run beside the folklore. '~' means the difference is within the seed-to-seed standard "
              "deviation.</p>", _ranking_table(summary), "</section>",
              "<section><h2>Capabilities</h2>", _capability_table(summary), "</section>"]
    parts.append("<p class=note>The figures below, and the infill and conditioning metrics, come from one "
                 "run per family (its first seed); the metrics above are over all seeds.</p>")
    panels = [("Infill", infill_figure(out, records, fams),
               "Observe one coordinate, impute the other: the family's draws (red) against exact draws of the "
               "true conditional p(missing | observed) (grey), on the quantile slices of the observed coordinate "
               "and on rare ones (its tails, the dip between modes, the smallest mode); W1 in units of its floor "
               "(two exact draws of the same size). Blue, dashed: the family's approximate method (RePaint "
               "beside the exact density route, ...) on the same slices, with its W1 in floor units."),
              ("Conditioning", conditioning_figure(out, records, fams),
               "Samples asked for each label (colour) and, for families with classifier-free guidance, "
               "alignment (share whose true class posterior agrees with the label) against within-class recall "
               "as the guidance g grows, mixing uncond + g (cond - uncond): g = 0 is the unconditional model, "
               "g = 1 plain conditional sampling, g > 1 guided (one convention for every family)."),
              ("Columns", columns_figure(out, records, fams, data),
               "Per family and column: the distance between the model's marginal and the data's (1-D W1 in "
               "units of the column's standard deviation); each family's section below shows its samples on "
               "the most correlated column pairs and the error of its correlation matrix."),
              ("Quality against sampling cost", steps_figure(out, records, fams),
               "Each iterative sampler at several step counts: quality against network evaluations per "
               "sample, beside the floor of real data.")]
    for title, src, note in panels:
        if src:
            parts.append(f"<section><h2>{title}</h2><p class=note>{note}</p>{_img(src, title)}</section>")
    parts += [
              "<section><h2>Families</h2>"]
    for fam in fams:
        figs = family_figures(out, records, fam, data, box)
        row = next(r for r in summary if r["family"] == fam)
        err = f"<p class=bad>{esc('; '.join(row['errors']))}</p>" if row["errors"] else ""
        parts.append(f"<h3 id='fam-{esc(fam)}'>{esc(fam)}</h3>{err}{_choices_note(records, fam)}<div class=fam>"
                     + "".join(_img(src, f"{fam} {cap}") for cap, src in figs) + "</div>")
    parts.append("</section></body></html>")
    path = os.path.join(out, "report.html")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))
    os.replace(tmp, path)
    return path
