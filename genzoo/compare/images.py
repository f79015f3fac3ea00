"""``genzoo compare --data digits``: every image family on the 8x8 digits, measured side by side.

Data: the digits' fixed split (``gz.datasets.get("digits")``): each family fits the train split
(1,000 images) with its labels where it takes them; the test split (447) is what it is measured
against; the train split is also the floor's "model" (real images scored like samples).

Rows: ``all`` (default) is every family that fits images; ``core`` the five seed families (vae,
gan, flow, diffusion, autoregressive) plus latent diffusion and the two VQ-token models. Training
budgets scale with the preset (``quick`` 8% of each declared budget, ``default`` 50%,
``thorough`` the families' defaults, which are tuned for the digits).

Measured per run (the report's tables and figures):

- likelihood of the test images (the first 100 on ``quick``): nats per image and bits per
  dimension (exact for the discrete families, a bound or estimate where the family says so);
- 1,000 unconditional samples (500 on ``quick``): samples per second, network evaluations per sample (NFE), and in
  the digits classifier's feature space FD-digits, precision / recall, density / coverage, the
  Inception-Score analogue, plus memorisation (distance to the nearest training image), each
  beside its floor (the train split in the samples' place, at the same n);
- class-conditional samples at guidance 0, 1 and 3 (genzoo's convention: 0 unconditional, 1 the
  plain conditional model): the share classified as the class asked for;
- inpainting the lower half of test images from the upper half: the share of completed images
  classified as the true digit (beside the classifier's accuracy on the full real images);
- fit time and steps.

Written: ``results.json`` and ``report.html`` in ``out``; each run is cached under ``out/runs``
(keyed by family, hyperparameters, preset and genzoo's code) and reused unless ``force``.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import time
from typing import Any

import numpy as np

import genzoo as gz
from genzoo.compare.runner import (
    PRESETS,
    _worker_init,
    check_out_dir,
    check_overrides,
    code_hash,
    default_workers,
    environment,
    family_params,
)
from genzoo.compare.tables import _atomic_write
from genzoo.compare.text import _mean_sd, _write_json
from genzoo.errors import did_you_mean

#: every family that fits the digits, in the report's order
IMAGE_ROWS = ["vae", "gan", "flow", "diffusion", "autoregressive", "flow_matching", "score", "consistency",
              "rectified_flow", "masked_diffusion", "latent_diffusion", "vq_autoregressive", "vq_masked"]
IMAGE_CORE = ["vae", "gan", "flow", "diffusion", "autoregressive", "latent_diffusion", "vq_autoregressive",
              "vq_masked"]
GUIDANCE = (0.0, 1.0, 3.0)
#: per preset: unconditional samples (the floor puts as many training images in their place), test
#: images scored (the first ones), conditional samples per class and guidance value, test
#: images inpainted; and the share of each family's declared training budgets (its defaults are tuned
#: for the digits: ``thorough`` is the acceptance run's setting, ``default`` half of it, to stay in 30 min;
#: the flow's inpainting, MALA on its density, takes about 1.9 s per image and sets the inpainting counts)
IMAGE_EVAL = {"quick": {"budget": 0.08, "samples": 500, "score": 100, "per_class": 10, "inpaint": 50},
              "default": {"budget": 0.5, "samples": 1000, "score": 447, "per_class": 50, "inpaint": 100},
              "thorough": {"budget": 1.0, "samples": 1000, "score": 447, "per_class": 100, "inpaint": 447}}
GRID = 8  # images per class in the report's class-conditional grids


def is_image_data(spec: str) -> bool:
    """Whether ``--data spec`` names a built-in image set (the digits)."""
    return spec in gz.datasets.names("image")


def resolve_image_rows(spec: str | list[str] | None) -> list[str]:
    """'all' or None: every image family; 'core': the eight of the module docstring; else the names
    given (each must be a family that fits images; others raise ValueError)."""
    have = set(gz.families())
    if spec is None or spec == "all":
        return [f for f in IMAGE_ROWS if f in have]
    if spec == "core":
        return [f for f in IMAGE_CORE if f in have]
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not names:
        raise ValueError("--families is empty; give names, 'core' or 'all'")
    for n in names:
        if n not in have:
            raise ValueError(f"unknown family {n!r}{did_you_mean(n, [*IMAGE_ROWS, 'core', 'all']) or ';'} "
                             f"for images choose from: {', '.join(IMAGE_ROWS)} (or 'core', 'all')")
        if n not in IMAGE_ROWS:
            raise ValueError(f"{n} does not model images; for images choose from: {', '.join(IMAGE_ROWS)}")
    return list(dict.fromkeys(names))


def _timed(f, *a, **k):
    t0 = time.perf_counter()
    out = f(*a, **k)
    return out, time.perf_counter() - t0


def run_image_family(family: str, params: dict, data: dict, preset: str, run_dir: str,
                     detail: bool = True) -> dict[str, Any]:
    """Fit one family on the digits and measure it (module docstring); arrays for the report's figures
    go to ``run_dir/figures.npz``. Errors become the record's ``error``."""
    from genzoo.metrics.digits_classifier import digit_probabilities
    from genzoo.metrics.images import class_alignment, image_scores, nearest_training

    ev = IMAGE_EVAL[preset]
    Xtr, ytr, Xte, yte = data["Xtr"], data["ytr"], data["Xte"], data["yte"]
    seed = int(params["random_state"])
    rec: dict[str, Any] = {"family": family, "seed": seed, "params": params, "run_dir": run_dir}
    figs: dict[str, np.ndarray] = {}
    try:
        model = gz.make(family, **params)
        caps = model.capabilities
        labelled = "conditional" in caps
        _, rec["fit_s"] = _timed(model.fit, Xtr, ytr if labelled else None)
        rec["steps"] = int(getattr(model, "n_steps_", 0) or 0)
        hist = getattr(model, "history_", {}) or {}
        rec["history"] = {k: [float(v) for v in hist[k]] for k in ("step", "train_loss") if k in hist}
        rec["likelihood_kind"] = kind = getattr(model, "likelihood_kind", "none")
        if kind != "none":
            lp, rec["score_s"] = _timed(model.score_samples, Xte[:ev["score"]])
            lp = np.asarray(lp, float)
            rec["nll"] = float(-lp.mean())
            rec["nll_se"] = float(lp.std(ddof=1) / math.sqrt(len(lp)))
            rec["bits_per_dim"], rec["n_scored"] = rec["nll"] / (Xte[0].size * math.log(2)), len(lp)
        S, dt = _timed(model.sample, ev["samples"], random_state=seed + 1)
        S = np.asarray(S)
        rec["samples_per_s"], rec["nfe"] = len(S) / dt, getattr(model, "last_nfe_", None)
        top_level = int(data.get("levels", 17)) - 1
        if not (S.shape[1:] == Xtr.shape[1:] and np.all(S == np.round(S)) and S.min() >= 0 and S.max() <= top_level):
            raise ValueError(f"samples are not images of shape {Xtr.shape[1:]} with integer levels 0..{top_level} "
                             f"(shape {S.shape[1:]}, values {S.min()}..{S.max()})")
        rec["scores"] = image_scores(S, Xte, Xtr)
        figs["samples"] = S[:64].astype(np.int16)
        d, i = nearest_training(S[:8], Xtr)
        figs["nn_samples"], figs["nn_train"], figs["nn_dist"] = S[:8].astype(np.int16), Xtr[i].astype(np.int16), d
        if labelled and detail:
            rec["alignment"] = {}
            k = ev["per_class"]
            yc = np.repeat(np.arange(10), k)
            grids, used = [], []
            for g in GUIDANCE:
                try:
                    Sc, dt = _timed(model.sample, len(yc), y=yc, guidance=g, random_state=seed + 2)
                except ValueError as e:  # no classifier-free guidance: only g = 1 (p(x | y)) exists
                    if g == 1 or "guidance" not in str(e):
                        raise
                    rec["alignment"][str(g)] = None
                    continue
                Sc = np.asarray(Sc)
                rec["alignment"][str(g)] = {"alignment": class_alignment(Sc, yc),
                                            "samples_per_s": len(yc) / dt, "nfe": getattr(model, "last_nfe_", None)}
                grids.append(Sc.reshape(10, k, *Sc.shape[1:])[:, :GRID])
                used.append(g)
            figs["conditional"], figs["guidance"] = np.stack(grids).astype(np.int16), np.asarray(used)
        if "impute" in caps and detail:
            m = ev["inpaint"]
            Q = Xte[:m].astype(float).copy()
            Q[:, Q.shape[1] // 2:, :] = np.nan
            F, dt = _timed(model.impute, Q, random_state=seed + 3)
            F = np.asarray(F, float)
            top = slice(0, Q.shape[1] // 2)
            rec["inpaint"] = {"accuracy": float(np.mean(digit_probabilities(F).argmax(1) == yte[:m])),
                              "kept": bool(np.array_equal(F[:, top], Xte[:m, top])), "n": m, "seconds": dt}
            figs["inpaint"] = np.stack([np.nan_to_num(Q[:10], nan=-1), F[:10], Xte[:10]]).astype(np.int16)
    except Exception as e:  # noqa: BLE001 -- one failed run is reported, the others still run
        rec["error"] = f"{type(e).__name__}: {e}".splitlines()[0]
    os.makedirs(run_dir, exist_ok=True)
    if figs:
        np.savez_compressed(os.path.join(run_dir, "figures.npz"), **figs)
    return rec


def _image_job(family: str, params: dict, data: dict, preset: str, out: str, rel: str, detail: bool) -> dict:
    """One run, measured and written to ``out/rel/record.json`` (a worker process's whole task)."""
    t0 = time.perf_counter()
    rec = run_image_family(family, params, data, preset, os.path.join(out, rel), detail=detail)
    rec["run_dir"], rec["wall_s"] = rel, time.perf_counter() - t0
    _write_json(os.path.join(out, rel, "record.json"), rec)
    return rec


#: seconds per run at the default preset (2 cores, 2026-12-06): the longest runs start first
IMAGE_COST = {"flow": 260, "masked_diffusion": 258, "consistency": 167, "rectified_flow": 138,
              "autoregressive": 120, "flow_matching": 88, "diffusion": 65, "gan": 60, "score": 60,
              "vq_autoregressive": 54, "vq_masked": 33, "latent_diffusion": 23, "vae": 18}


def run_image_compare(data: str = "digits", families: str | list[str] | None = "all", seeds: int = 1,
                      preset: str = "default", out: str = "genzoo-compare", verbose: bool = False,
                      params: dict[str, dict] | None = None, device: str | None = None,
                      force: bool = False, workers: int | None = None, start_method: str | None = None) -> list[dict]:
    """Run (or resume) the image comparison; writes ``out/results.json`` and ``out/report.html``.

    ``workers``: runs side by side in worker processes, each with its share of the CPU threads
    (default: 2 where there are 2+ cores); ``start_method`` as in :func:`genzoo.compare.run_compare`.
    """
    from genzoo.metrics.digits_classifier import digit_probabilities, load_classifier
    from genzoo.metrics.images import image_scores

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from: {', '.join(PRESETS)}")
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"--seeds must be a positive integer; got {seeds!r}")
    if not is_image_data(data):
        raise ValueError(f"{data!r} is not a built-in image set ({', '.join(gz.datasets.names('image'))})")
    rows = resolve_image_rows(families)
    overrides = check_overrides(params, rows)
    ds = gz.datasets.get(data)
    (Xtr, ytr), (Xte, yte) = ds.split("train"), ds.split("test")
    arrays = {"Xtr": Xtr, "ytr": ytr, "Xte": Xte, "yte": yte, "levels": ds.n_levels}
    check_out_dir(out)
    started = time.perf_counter()
    cfg = {**PRESETS[preset], "budget": IMAGE_EVAL[preset]["budget"]}
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    jobs, done = [], {}
    for fam in rows:
        for seed in range(int(seeds)):
            p = family_params(fam, cfg, seed, overrides.get(fam), device)
            key = hashlib.sha256(json.dumps([fam, p, data, preset, code_hash()], sort_keys=True,
                                            default=str).encode()).hexdigest()[:12]
            rel = os.path.join("runs", f"image-{fam}-seed{seed}-{key}")
            jobs.append((fam, seed, p, rel))
            path = os.path.join(out, rel, "record.json")
            if not force and os.path.exists(path):
                with open(path) as f:
                    done[rel] = json.load(f)
    todo = sorted((j for j in jobs if j[3] not in done), key=lambda j: (j[1] != 0, -IMAGE_COST.get(j[0], 60)))
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = mp.get_context(start_method or "spawn")
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx, initializer=_worker_init,
                                 initargs=(ctx.Value("i", 0), threads)) as pool:
            futures = {pool.submit(_image_job, fam, p, arrays, preset, out, rel, seed == 0): (fam, seed, rel)
                       for fam, seed, p, rel in todo}
            for fut in as_completed(futures):
                fam, seed, rel = futures[fut]
                done[rel] = fut.result()
                if verbose:
                    print(f"genzoo compare: {fam} seed {seed} on {data} done ({done[rel]['wall_s']:.0f} s)",
                          flush=True)
    else:
        for fam, seed, p, rel in todo:
            if verbose:
                print(f"genzoo compare: {fam} seed {seed} on {data}", flush=True)
            done[rel] = _image_job(fam, p, arrays, preset, out, rel, seed == 0)
    records = [done[rel] for *_, rel in jobs]
    _, info = load_classifier()
    floor = image_scores(Xtr[:IMAGE_EVAL[preset]["samples"]], Xte, Xtr)  # the floors, at the samples' n
    meta = {"data": data, "kind": "image", "preset": preset, "seeds": int(seeds), "families": rows,
            "n_train": len(Xtr), "n_test": len(Xte), "guidance": list(GUIDANCE),
            "eval": IMAGE_EVAL[preset], "budget": cfg["budget"], "classifier": info,
            "real_accuracy": float(np.mean(digit_probabilities(Xte).argmax(1) == yte)),
            "floors": {k: v for k, v in floor.items() if k.endswith("_floor")},
            "workers": workers, "wall_s": time.perf_counter() - started, "genzoo_version": gz.__version__,
            "code": code_hash(), "environment": environment(device)}
    _write_json(os.path.join(out, "results.json"), {"meta": meta, "records": records})
    write_image_report(out, records, meta)
    return records


def image_summary(records: list[dict]) -> list[dict]:
    """One row per family: means (± sd over seeds) of the tables' figures."""
    out = []
    for fam in dict.fromkeys(r["family"] for r in records):
        rs = [r for r in records if r["family"] == fam]
        ok = [r for r in rs if "error" not in r]
        sc = [r["scores"] for r in ok]
        first = next((r for r in ok if "alignment" in r), None)
        inp = next((r["inpaint"] for r in ok if "inpaint" in r), None)
        out.append({"family": fam, "runs": len(rs), "errors": sorted({r["error"] for r in rs if "error" in r}),
                    "nll": _mean_sd([r.get("nll") for r in ok], ".2f"),
                    "bits_per_dim": _mean_sd([r.get("bits_per_dim") for r in ok], ".3f"),
                    "likelihood": ok[0]["likelihood_kind"] if ok else "-",
                    "fd_ratio": _mean_sd([s["fd_ratio"] for s in sc], ".2f"),
                    "precision": _mean_sd([s["precision"] for s in sc], ".2f"),
                    "recall": _mean_sd([s["recall"] for s in sc], ".2f"),
                    "density": _mean_sd([s["density"] for s in sc], ".2f"),
                    "coverage": _mean_sd([s["coverage"] for s in sc], ".2f"),
                    "inception": _mean_sd([s["inception"] for s in sc], ".2f"),
                    "nn_median": _mean_sd([s["nn_median"] for s in sc], ".2f"),
                    "copies": _mean_sd([s["copies"] for s in sc], ".3f"),
                    "alignment": " / ".join(f"{a['alignment']:.2f}" if a else "-"
                                            for a in (first["alignment"][str(g)] for g in GUIDANCE))
                    if first else "-",
                    "inpaint": f"{inp['accuracy']:.2f}" if inp else "-",
                    "samples_per_s": _mean_sd([r["samples_per_s"] for r in ok], ".0f"),
                    "nfe": _mean_sd([r["nfe"] for r in ok], ".0f"),
                    "fit_s": _mean_sd([r["fit_s"] for r in ok], ".0f")})
    return out


TERMINAL_COLUMNS = [("family", "family"), ("nll", "nats/image"), ("bits_per_dim", "bits/dim"),
                    ("fd_ratio", "FD/floor"), ("precision", "P"), ("recall", "R"), ("alignment", "align g=0/1/3"),
                    ("inpaint", "inpaint"), ("samples_per_s", "samples/s"), ("nfe", "NFE"), ("fit_s", "fit s")]


def image_terminal_table(records: list[dict]) -> str:
    summ = image_summary(records)
    rows = [[str(s[k]) if not s["errors"] or k == "family" else ("error" if k == "nll" else "")
             for k, _ in TERMINAL_COLUMNS] for s in summ]
    heads = [h for _, h in TERMINAL_COLUMNS]
    w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w[i]) for i, h in enumerate(heads))]
    lines += ["  ".join(v.ljust(w[i]) for i, v in enumerate(r)) for r in rows]
    return "\n".join(lines + [f"{s['family']}: {e}" for s in summ for e in s["errors"]])


# ----------------------------------------------------------------------------- report
def _table(head: list[str], body: list[list[Any]], floor: list[Any] | None = None) -> str:
    esc = html.escape
    rows = "".join("<tr>" + "".join(f"<td{' class=l' if j == 0 else ''}>{esc(str(v))}</td>" for j, v in enumerate(r))
                   + "</tr>" for r in body)
    if floor is not None:
        rows += "<tr class=floor>" + "".join(f"<td{' class=l' if j == 0 else ''}>{esc(str(v))}</td>"
                                             for j, v in enumerate(floor)) + "</tr>"
    return ("<table><tr>" + "".join(f"<th{' class=l' if j == 0 else ''}>{esc(h)}</th>" for j, h in enumerate(head))
            + f"</tr>{rows}</table>")


def _tile(images: np.ndarray, cols: int) -> np.ndarray:
    """(n, H, W) images as one (rows * (H + 1), cols * (W + 1)) mosaic, separated by NaN lines."""
    n, H, W = images.shape
    rows = -(-n // cols)
    M = np.full((rows * (H + 1) - 1, cols * (W + 1) - 1), np.nan)
    for k in range(n):
        r, c = divmod(k, cols)
        M[r * (H + 1):r * (H + 1) + H, c * (W + 1):c * (W + 1) + W] = images[k]
    return M


def _mosaic_png(ax, M: np.ndarray, title: str) -> None:
    import matplotlib

    cmap = matplotlib.colormaps["gray_r"].with_extremes(bad="#ffffff")
    ax.imshow(M, cmap=cmap, vmin=0, vmax=16, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def image_figures(out: str, rec: dict) -> list[tuple[str, str]]:
    """[(caption, data-uri)] for one run: samples, conditional grids, inpainting, nearest neighbours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genzoo.report import _png

    path = os.path.join(out, rec["run_dir"], "figures.npz")
    if not os.path.exists(path):
        return []
    z = np.load(path)
    fam, figs = rec["family"], []
    sq = lambda A: A.reshape(len(A), *A.shape[-2:])  # noqa: E731 -- (n, 1, H, W) or (n, H, W) -> (n, H, W)
    fig, ax = plt.subplots(figsize=(3.0, 3.0))
    _mosaic_png(ax, _tile(sq(z["samples"]), 8), f"{fam}: 64 samples")
    figs.append(("samples", _png(fig)))
    if "conditional" in z.files:
        C = z["conditional"]  # (guidance, class, k, ...)
        fig, axes = plt.subplots(1, len(C), figsize=(2.2 * len(C), 2.6))
        for ax, g, Cg in zip(np.atleast_1d(axes), z["guidance"], C):
            _mosaic_png(ax, _tile(sq(Cg.reshape(-1, *Cg.shape[2:])), Cg.shape[1]), f"guidance {g:g}")
        fig.suptitle(f"{fam}: one row per class 0-9", fontsize=8)
        figs.append(("class-conditional samples", _png(fig)))
    if "inpaint" in z.files:
        Q, F, T = (sq(a) for a in z["inpaint"])
        Qv = np.where(Q < 0, np.nan, Q)
        fig, axes = plt.subplots(3, 1, figsize=(5.2, 2.8))
        for ax, A, t in zip(axes, (Qv, F, T), ("upper half given", "completed", "truth")):
            _mosaic_png(ax, _tile(A, len(A)), t)
        figs.append(("inpainting the lower half", _png(fig)))
    fig, axes = plt.subplots(2, 1, figsize=(4.6, 2.0))
    _mosaic_png(axes[0], _tile(sq(z["nn_samples"]), 8), "samples")
    _mosaic_png(axes[1], _tile(sq(z["nn_train"]), 8),
                "nearest training image (" + ", ".join(f"{d:.1f}" for d in z["nn_dist"]) + ")")
    figs.append(("nearest training images", _png(fig)))
    return figs


def write_image_report(out: str, records: list[dict], meta: dict) -> str:
    """``out/report.html``: the tables (each beside its floor) and each family's figures."""
    from genzoo.report import CSS, _img

    esc = html.escape
    summ = [s for s in image_summary(records) if not s["errors"]]
    fl, clf = meta["floors"], meta["classifier"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>genzoo compare: {esc(meta['data'])}</title>"
             f"<style>{CSS}</style></head><body><h1>genzoo compare: {esc(meta['data'])} (images)</h1>",
             f"<p class=sub>{meta['n_train']} training images (with labels), {meta['n_test']} test images; preset "
             f"<code>{esc(meta['preset'])}</code> ({meta['budget']:.0%} of each family's training budget), "
             f"{meta['seeds']} seed(s); genzoo {esc(meta['genzoo_version'])}, {meta['wall_s']:.0f} s"
             + (f" with {meta['workers']} runs side by side (times and samples/s are each run's own, sharing "
                "the machine)" if meta.get("workers", 1) > 1 else "") + ".</p>",
             "<section><h2>Likelihood</h2><p class=note>Mean negative log-likelihood of the "
             + ("" if meta["eval"]["score"] >= meta["n_test"] else f"first {meta['eval']['score']} ")
             + "test images in nats per image and bits per dimension (mean ± sd over seeds). Exact for the "
             "discrete families; a dequantisation bound or an ODE estimate where the family says so. "
             "Measured baselines on the whole test split: independent per-pixel categorical 106.4, a linear "
             "logistic autoregressive model 95.5.</p>",
             _table(["family", "nats/image", "bits/dim", "kind", "fit s"],
                    [[s["family"], s["nll"], s["bits_per_dim"], s["likelihood"], s["fit_s"]]
                     for s in summ if s["nll"] != "-"]), "</section>"]
    parts += [f"<section><h2>Samples</h2><p class=note>{meta['eval']['samples']} samples per run against the test "
              "images, in the feature space of genzoo's digits classifier (test accuracy "
              f"{clf.get('test_accuracy', float('nan')):.3f}): FD-digits over its floor, precision / recall (k = 3), "
              "density / coverage (k = 5), the Inception-Score analogue (at most 10), and memorisation: the median "
              "distance to the nearest training image (pixels / 16) and the share of samples closer to a "
              "training image than 99% of real test images are. The last row is the floor: as many training "
              "images in the samples' place.</p>",
              _table(["family", "FD / floor", "precision", "recall", "density", "coverage", "IS", "NN distance",
                      "copies", "samples/s", "NFE", "fit s"],
                     [[s["family"], s["fd_ratio"], s["precision"], s["recall"], s["density"], s["coverage"],
                       s["inception"], s["nn_median"], s["copies"], s["samples_per_s"], s["nfe"], s["fit_s"]]
                      for s in summ],
                     ["real (train vs test)", f"1 (FD {fl['fd_floor']:.1f})", f"{fl['precision_floor']:.2f}",
                      f"{fl['recall_floor']:.2f}", f"{fl['density_floor']:.2f}", f"{fl['coverage_floor']:.2f}",
                      f"{fl['inception_floor']:.2f}", f"{fl['nn_median_floor']:.2f}", "0.010", "", "", ""]),
              "</section>"]
    parts += ["<section><h2>Conditioning and inpainting</h2><p class=note>Class alignment: the share of "
              f"class-conditional samples ({meta['eval']['per_class']} per class) that the classifier assigns to "
              "the class asked for, at guidance 0 (the unconditional model: chance is 0.10), 1 (the plain "
              "conditional model) and 3; '-' where the family has no classifier-free guidance (it samples "
              "p(x | y), guidance 1, only). Inpainting: the lower half of "
              f"{meta['eval']['inpaint']} test images drawn from the model given the upper half, the share of "
              f"completed images classified as the true digit (the classifier on the whole real images: "
              f"{meta['real_accuracy']:.2f}).</p>",
              _table(["family", "alignment g=0 / 1 / 3", "inpainting"],
                     [[s["family"], s["alignment"], s["inpaint"]] for s in summ]), "</section>"]
    for fam in dict.fromkeys(r["family"] for r in records):
        rec = next((r for r in records if r["family"] == fam and "error" not in r and r["seed"] == 0), None)
        if rec is None:
            continue
        figs = image_figures(out, rec)
        parts.append(f"<section><h2 id='fam-{esc(fam)}'>{esc(fam)}</h2><div class=fam>"
                     + "".join(_img(src, f"{fam} {cap}") for cap, src in figs) + "</div></section>")
    errs = [f"<p class=bad>{esc(s['family'])}: {esc(e)}</p>" for s in image_summary(records) for e in s["errors"]]
    parts += errs + ["</body></html>"]
    path = os.path.join(out, "report.html")
    _atomic_write(path, "\n".join(parts))
    return path


__all__ = ["run_image_compare", "is_image_data", "resolve_image_rows", "image_summary", "image_terminal_table",
           "IMAGE_ROWS", "IMAGE_CORE"]
