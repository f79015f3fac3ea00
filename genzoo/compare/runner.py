"""Train every requested family on the same split, evaluate each run, cache it, tabulate."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import genzoo as gz
from genzoo.compare.panels import conditioning_panel, infill_panel, steps_panel
from genzoo.errors import UnsupportedError, did_you_mean

logger = logging.getLogger("genzoo")

CORE = ["vae", "gan", "flow", "diffusion", "autoregressive"]
BASELINES = ["gmm", "kde"]

#: training budget per preset: a fraction of each family's declared training budgets
#: (``budget_params``: steps, teacher steps, reflow pairs, trajectory pools), the
#: number of training points, of evaluation samples and of held-out points scored for the
#: likelihood (the same points for every family, so their differences are sharper than each
#: NLL's standard error), and the resolution of the log-density heat maps. ``default`` keeps
#: the whole default run (7 families x 3 seeds on ``ring``) within 5 minutes on 2 cores.
PRESETS: dict[str, dict[str, float]] = {
    "quick": {"budget": 0.08, "n_train": 3000, "n_eval": 1000, "n_test": 2000, "grid": 60},
    "default": {"budget": 0.35, "n_train": 10_000, "n_eval": 2000, "n_test": 5000, "grid": 90},
    "thorough": {"budget": 1.0, "n_train": 10_000, "n_eval": 5000, "n_test": 10_000, "grid": 120},
}

#: rough relative cost of one run per family (quick preset, ring): the longest runs start first
COST = {"diffusion": 6, "flow": 5, "gan": 4, "vae": 3, "kde": 2, "autoregressive": 2, "gmm": 1}


def resolve_families(spec: str | list[str] | None) -> list[str]:
    """'core' (default), 'all' (every family for rows; the image-only families are left out), or a
    comma-separated list; unknown names raise ValueError."""
    known = gz.families()
    if spec is None or spec == "core":
        return [f for f in CORE + BASELINES if f in known]
    if spec == "all":
        return [f for f in known if getattr(gz.registry.family_class(f), "data_kind", None) != "image"]
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not names:
        raise ValueError("--families is empty; give names, 'core' or 'all'")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown family {unknown[0]!r}{did_you_mean(unknown[0], [*known, 'core', 'all']) or ';'} "
                         f"choose from: {', '.join(known)} (or 'core', 'all')")
    return list(dict.fromkeys(names))


# ----------------------------------------------------------------------------- data
@dataclass
class Data:
    name: str
    X_train: np.ndarray
    X_test: np.ndarray
    dist: Any  # the Distribution for built-ins (exact density, labels, modes), else None
    columns: list[str]
    fingerprint: str
    y_train: np.ndarray | None = None  # labels, for built-ins that have them and files read with ``label``
    y_test: np.ndarray | None = None  # a file's held-out labels (train-on-synthetic, test-on-real)


def load_data(spec: str, n_train: int, label: str | None = None) -> Data:
    """A built-in distribution, 2-D or wider (``n_train`` rows drawn, 10,000 test rows), one of
    scikit-learn's bundled tables (with its class labels where it has them) or a file (a seeded
    80 / 20 split for both); ``label``: a column of the file taken out as class labels (``--label``)."""
    builtin = gz.datasets.names() + gz.datasets.names("wide")
    if label is not None and (spec in builtin or spec in gz.datasets.names("table")):
        raise ValueError(f"--label names a column of a data file; {spec!r} is a built-in dataset")
    if spec in gz.datasets.names("table"):
        t = gz.datasets.get(spec)
        if t.n_classes:
            X, y = t.load(return_labels=True)
        else:
            X, y = t.load(), None
        return _split(spec, np.asarray(X, float), y, list(t.columns), f"table:{spec}")
    if spec in builtin:
        ds = gz.datasets.get(spec)
        y = None
        if ds.n_classes:
            X, y = ds.sample(n_train, random_state=0, return_labels=True)
        else:
            X = ds.sample(n_train, random_state=0)
        Xte = ds.sample(10_000, random_state=1)
        return Data(spec, X, Xte, ds, [f"x{i}" for i in range(ds.dim)], f"builtin:{spec}:{n_train}", y)
    every = builtin + gz.datasets.names("table")
    if not (os.path.splitext(spec)[1] or os.path.sep in spec):
        raise ValueError(f"unknown dataset {spec!r}{did_you_mean(spec, every) or ':'} not a built-in "
                         f"({', '.join(every)}) nor a path to a .csv/.npy/.parquet file")
    y = None
    if label is None:
        X, cols = gz.datasets.load_file(spec, return_columns=True)
    else:
        X, cols, y = gz.datasets.load_file(spec, return_columns=True, label=label)
        y = np.asarray(y)
    h = hashlib.sha256(np.ascontiguousarray(X).tobytes())
    if y is not None:
        h.update(("label:" + label + ":" + ",".join(map(str, y))).encode())
    return _split(os.path.basename(spec), X, y, list(cols), f"file:{h.hexdigest()[:16]}")


def _split(name: str, X: np.ndarray, y: np.ndarray | None, cols: list[str], fingerprint: str) -> Data:
    """Rows without a known density: a seeded 80 / 20 train / test split (labels split alike)."""
    if len(X) < 20:
        raise ValueError(f"{name} has only {len(X)} rows; compare needs at least 20")
    perm = np.random.default_rng(0).permutation(len(X))
    n_test = max(10, len(X) // 5)
    tr, te = perm[n_test:], perm[:n_test]
    return Data(name, X[tr], X[te], None, cols, fingerprint, None if y is None else y[tr],
                None if y is None else y[te])


def label_accuracy(X_fit: np.ndarray, y_fit: np.ndarray, X_test: np.ndarray, y_test: np.ndarray) -> float:
    """Test accuracy of a logistic regression (standardised inputs) fitted on ``(X_fit, y_fit)``:
    with synthetic rows it is train-on-synthetic, test-on-real (TSTR); with real ones, its baseline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y_fit)) < 2:  # one class only: the classifier predicts it everywhere
        return float(np.mean(y_test == y_fit[0]))
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(clf.fit(X_fit, y_fit).score(X_test, y_test))


# ----------------------------------------------------------------------------- one run
def scaled_budgets(family: str, fraction: float) -> dict[str, int]:
    """Every training budget ``family`` declares (its ``budget_params``), times ``fraction``.

    A scaled budget stays at or above the family's floor for it (or the default, if smaller),
    so that the quick preset still trains each phase; ``fraction=1`` gives the defaults.
    """
    model = gz.make(family)
    defaults = model.get_params()
    out: dict[str, int] = {}
    for name, floor in type(model).budget_params.items():
        if name not in defaults:
            raise ValueError(f"{family} declares the budget {name!r}, which is not one of its hyperparameters")
        default = int(defaults[name])
        out[name] = max(min(int(floor), default), int(round(default * float(fraction))))
    return out


def family_params(family: str, preset: dict, seed: int, overrides: dict | None = None,
                  device: str | None = None) -> dict:
    """The hyperparameters a family gets under a preset: its defaults with every declared
    training budget (student and teacher steps, reflow steps and pairs, trajectory pools) scaled,
    then the user's ``overrides`` (``--set family.key=value``) and ``device`` (where it takes one)."""
    defaults = gz.make(family).get_params()
    p: dict[str, Any] = {"random_state": seed, **scaled_budgets(family, preset["budget"]), **(overrides or {})}
    if device is not None and "device" in defaults:
        p["device"] = device
    if "verbose" in defaults:
        p["verbose"] = 0
    return p


def check_overrides(overrides: dict[str, dict] | None, fams: list[str]) -> dict[str, dict]:
    """Per-family hyperparameters (``{"flow": {"max_steps": 500}}``): each family among ``fams``,
    each key one of its hyperparameters (not the seed, which ``seeds`` sets)."""
    from genzoo.params import validate_params

    overrides = dict(overrides or {})
    for fam, hp in overrides.items():
        if fam not in fams:
            known = gz.families()
            if fam not in known:
                raise ValueError(f"--set: unknown family {fam!r}{did_you_mean(fam, known) or ';'} "
                                 f"choose from: {', '.join(known)}")
            raise ValueError(f"--set names {fam}, which is not among the families compared ({', '.join(fams)})")
        valid = gz.make(fam).get_params()
        for key in hp:
            if key == "random_state":
                raise ValueError(f"--set {fam}.random_state: each run's seed is set by --seeds")
            if key not in valid:
                raise ValueError(f"--set: {fam} has no hyperparameter {key!r}{did_you_mean(key, valid) or ';'} "
                                 f"valid: {', '.join(valid)}")
        try:  # a bad value fails now, not after the other runs
            validate_params(gz.make(fam, **hp))
        except ValueError as e:
            raise ValueError(f"--set {fam}: {e}") from None
    return overrides


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """sha256 over the installed genzoo package's .py files (sorted by path): a cached run is reused only
    by the code that made it. Computed once per process."""
    root = Path(gz.__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def environment(device: str | None = None) -> dict:
    """Where a run was measured (recorded beside every timing and samples/s figure)."""
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
           "genzoo": gz.__version__, "code": code_hash(), "platform": platform.platform(terse=True),
           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device or "cpu"}
    if device and device.startswith("cuda"):
        with contextlib.suppress(Exception):  # a name only; never worth failing a run over
            env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def run_key(data: Data, family: str, params: dict, seed: int, preset_name: str) -> str:
    """The cache key of one run: data, family, hyperparameters, seed, preset and the code (version and
    a hash of the package sources, so edited code never reuses an old run)."""
    blob = json.dumps({"data": data.fingerprint, "family": family, "params": params, "seed": seed,
                       "preset": PRESETS[preset_name], "version": gz.__version__, "code": code_hash()},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def execute_run(data: Data, family: str, params: dict, seed: int, cfg: dict, run_dir: str,
                progress: bool, panels: bool = True) -> dict:
    """Fit, evaluate and store one run; returns its record (status ok / diverged / failed).

    ``panels``: also draw the figures' arrays (heat map, sampling path) and measure the
    infill, conditioning and steps panels; the report shows them for one seed per family.
    """
    rec: dict[str, Any] = {"family": family, "seed": seed, "params": params, "status": "ok", "error": "",
                           "panels": bool(panels)}
    n_eval = int(cfg["n_eval"])
    model = gz.make(family, **params)
    if progress and "verbose" in params:
        model.set_params(verbose=1)
    tmp_dir = run_dir + ".partial"
    os.makedirs(tmp_dir, exist_ok=True)
    try:
        # labelled data trains conditional models where the family can take labels; their
        # unconditional samples are the marginal (label from the class prior, then x | label)
        y = data.y_train if (data.y_train is not None and "conditional" in model.capabilities) else None
        t0 = time.perf_counter()
        model.fit(data.X_train, y)
        rec["fit_s"] = time.perf_counter() - t0
        rec["conditional"] = y is not None
        rec["choices"] = model.fit_choices()
        hist = getattr(model, "history_", {}) or {}
        rec["history"] = {k: [float(x) if x is not None else float("nan") for x in v] for k, v in hist.items()}
        timings = rec["timings"] = {"fit": rec["fit_s"]}
        t0 = time.perf_counter()
        S = model.sample(n_eval, random_state=seed + 1)
        timings["sample"] = time.perf_counter() - t0
        if getattr(model, "diverged_", False) or not np.isfinite(S).all():
            rec["status"] = "diverged"
            rec["error"] = "training loss became NaN/inf" if getattr(model, "diverged_", False) \
                else "samples contain NaN/inf"
        else:
            target = data.dist if data.dist is not None else data.X_test
            t0 = time.perf_counter()
            metrics = gz.evaluate(model, target, n=n_eval, n_test=int(cfg["n_test"]), random_state=seed)
            timings["evaluate"] = time.perf_counter() - t0
            rec["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
            if data.X_train.shape[1] > 2:  # beyond 2-D: per-column marginals and the correlation matrix
                from genzoo.metrics import column_metrics

                real = np.asarray(data.X_test, float)[:n_eval]
                rec["metrics"].update(column_metrics(real, np.asarray(S, float)))
                other = np.asarray(data.X_train, float)[:len(real)]  # two real sets of the same size: the floor
                rec["metrics"].update({f"{k}_floor": v for k, v in column_metrics(real, other).items()})
            if data.y_test is not None:  # a labelled file: how well do synthetic rows teach a classifier?
                t0 = time.perf_counter()
                rec["metrics"].update(labelled_metrics(model, data, n_eval, seed, y is not None))
                timings["labels"] = time.perf_counter() - t0
            np.save(os.path.join(tmp_dir, "samples.npy"), S.astype(np.float32))
            t0 = time.perf_counter()
            if panels:
                _save_figure_arrays(model, data, tmp_dir, seed, int(cfg["grid"]))
            timings["figures"] = time.perf_counter() - t0
            for name, panel in (("infill", lambda: infill_panel(model, data.dist, n_eval, seed, tmp_dir)),
                                ("conditioning", lambda: conditioning_panel(model, data.dist, n_eval, seed, tmp_dir)),
                                ("steps", lambda: steps_panel(model, data.dist, data.X_test, n_eval, seed, tmp_dir))):
                if not panels:
                    break
                t0 = time.perf_counter()
                try:
                    rec["metrics"].update(panel())
                except (UnsupportedError, ValueError, TypeError, RuntimeError) as e:
                    rec.setdefault("panel_errors", []).append(f"{type(e).__name__}: {str(e)[:160]}")
                timings[name] = time.perf_counter() - t0
            model.save(os.path.join(tmp_dir, "model.genzoo"))
    except Exception as e:  # a family failing must not stop the comparison
        rec["status"] = "failed"
        rec["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        rec["traceback"] = traceback.format_exc(limit=4)
    rec["environment"] = environment(getattr(model, "device_", None))
    rec["capabilities"] = sorted(model.capabilities)
    rec["likelihood_kind"] = model.likelihood_kind
    rec["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    with open(os.path.join(tmp_dir, "record.json"), "w") as f:
        json.dump(_clean(rec), f)
    if os.path.exists(run_dir):  # an older copy of the same key (e.g. after a crash mid-rename)
        import shutil

        shutil.rmtree(run_dir)
    os.replace(tmp_dir, run_dir)  # the run appears whole or not at all
    return rec


def labelled_metrics(model, data: Data, n: int, seed: int, conditional: bool) -> dict:
    """Train-on-synthetic, test-on-real accuracy beside train-on-real (``trtr_accuracy``). A
    conditional model draws ``n`` rows with labels from the training label frequencies; a family
    without labels gets no TSTR (it cannot say which class its rows belong to)."""
    Xtr, Xte = np.asarray(data.X_train, float), np.asarray(data.X_test, float)
    out = {"trtr_accuracy": label_accuracy(Xtr, data.y_train, Xte, data.y_test)}
    if conditional:
        ys = np.random.default_rng(seed + 5).choice(data.y_train, size=n)
        S = np.asarray(model.sample(n, y=ys, random_state=seed + 5), float)
        if np.isfinite(S).all():
            out["tstr_accuracy"] = label_accuracy(S, ys, Xte, data.y_test)
    return out


def _save_figure_arrays(model, data: Data, run_dir: str, seed: int, grid_n: int) -> None:
    """Arrays the report draws: the log-density on a grid, exact draws from it where the family
    has such a sampler beside its default one, and, for iterative samplers, a path."""
    if data.X_train.shape[1] != 2:
        return
    if "log_prob" in model.capabilities:
        (x0, x1), (y0, y1) = plot_box(data)
        xs, ys = np.linspace(x0, x1, grid_n), np.linspace(y0, y1, grid_n)
        gx, gy = np.meshgrid(xs, ys)
        try:
            lp = model.score_samples(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(grid_n, grid_n)
            np.save(os.path.join(run_dir, "logdensity.npy"), lp.astype(np.float32))
        except Exception:  # a heat map is a nicety; its absence is shown in the report
            pass
    exact = getattr(model, "exact_sampler", None)
    if exact:  # e.g. the EBM: Langevin chains flatter it (they rarely cross between wells)
        try:
            S = np.asarray(model.sample(2000, random_state=seed + 3, sampler=exact), dtype=np.float32)
            np.save(os.path.join(run_dir, "exact_samples.npy"), S)
        except Exception:
            pass
    path_fn = getattr(model, "sample_path", None)
    if callable(path_fn):
        try:
            frames = np.asarray(path_fn(600, random_state=seed + 2, n_frames=5), dtype=np.float32)
            np.save(os.path.join(run_dir, "path.npy"), frames)
        except Exception:
            pass


def plot_box(data: Data) -> tuple[tuple[float, float], tuple[float, float]]:
    lo, hi = data.X_train.min(0), data.X_train.max(0)
    pad = 0.15 * (hi - lo)
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0])), (float(lo[1] - pad[1]), float(hi[1] + pad[1]))


def _clean(obj):
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# ----------------------------------------------------------------------------- the grid
def check_out_dir(out: str) -> None:
    """Create ``out`` if needed and prove it is writable before any training starts."""
    try:
        os.makedirs(os.path.join(out, "runs"), exist_ok=True)
        probe = os.path.join(out, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ValueError(f"cannot write to --out {out!r} ({e.strerror or e})") from None


def _worker_init(counter, threads: int) -> None:
    """Each worker process: its share of the CPU threads and a line of its own for progress bars."""
    import torch

    import genzoo.base

    torch.set_num_threads(threads)
    try:  # numpy's BLAS too (scikit-learn's baselines): two workers must not each run two threads
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass
    with counter.get_lock():
        genzoo.base.PROGRESS_POSITION = 1 + counter.value
        counter.value += 1


def default_workers() -> int:
    """Two runs side by side on a machine with at least 2 cores: small networks use a core each
    better than they share two (measured in benchmarks/bench_compare.py)."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def run_compare(data: str = "ring", families: str | list[str] | None = "core", seeds: int = 3,
                preset: str = "default", out: str = "genzoo-compare", verbose: bool = False,
                workers: int | None = None, start_method: str | None = None,
                params: dict[str, dict] | None = None, device: str | None = None,
                force: bool = False, label: str | None = None) -> list[dict]:
    """Run (or resume) the comparison and write results.csv/json, summary.csv and report.html.

    ``label``: a column of a data file holding class labels: families that take labels fit
    ``p(x | label)``, and every run reports train-on-synthetic, test-on-real accuracy
    (``tstr_accuracy``, conditional families) beside train-on-real (``trtr_accuracy``).

    ``verbose``: progress bars on stderr (the library is quiet by default; the report's path is
    logged to the ``"genzoo"`` logger). ``params``: per-family hyperparameters, e.g.
    ``{"flow": {"max_steps": 500}}``. ``device``: the torch device of every family that takes one
    (default: each family's own). ``force``: retrain every run even when a finished one is cached.
    ``start_method`` of the worker processes: 'spawn' (default) or 'fork' (faster; only safe
    in a process that has not run torch yet, as in the command line).
    """
    from tqdm.auto import tqdm

    from genzoo.compare.tables import summarise, write_results
    from genzoo.report import write_report

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from: {', '.join(PRESETS)}")
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"--seeds must be a positive integer; got {seeds!r}")
    if start_method not in (None, "spawn", "fork", "forkserver"):
        raise ValueError(f"start_method must be 'spawn', 'fork' or 'forkserver'; got {start_method!r}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    fams = resolve_families(families)
    overrides = check_overrides(params, fams)
    if device is not None:
        from genzoo.base import resolve_device

        resolve_device(device)  # a device this machine lacks fails before any run starts
    cfg = PRESETS[preset]
    d = load_data(data, int(cfg["n_train"]), label)
    check_out_dir(out)
    started = time.perf_counter()
    jobs = []
    for fam in fams:
        for seed in range(int(seeds)):
            p = family_params(fam, cfg, seed, overrides.get(fam), device)
            key = run_key(d, fam, p, seed, preset)
            jobs.append((fam, seed, p, os.path.join(out, "runs", f"{fam}-seed{seed}-{key}")))
    done: dict[str, dict] = {}
    for *_, run_dir in jobs:
        rec_path = os.path.join(run_dir, "record.json")
        if not force and os.path.exists(rec_path):
            with open(rec_path) as f:
                done[run_dir] = json.load(f)
    reused = len(done)
    first_seed = 0
    # longest first, so that two workers finish together: the panel runs (seed 0), then by cost
    todo = sorted((j for j in jobs if j[3] not in done), key=lambda j: (j[1] != first_seed, -COST.get(j[0], 3)))
    tqdm.monitor_interval = 0  # no monitor thread: the workers may be forked
    bar = tqdm(total=len(jobs), initial=reused, desc="genzoo compare", disable=not verbose, file=sys.stderr,
               dynamic_ncols=True, position=0)
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # 'fork' skips importing torch and genzoo again in each worker (seconds), but is only safe
        # before torch's thread pool has started: the CLI asks for it, a library call spawns
        ctx = mp.get_context(start_method or "spawn")
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx, initializer=_worker_init,
                                 initargs=(ctx.Value("i", 0), threads)) as pool:
            futures = {pool.submit(execute_run, d, fam, params, seed, cfg, run_dir, verbose, seed == first_seed):
                       (fam, seed, run_dir) for fam, seed, params, run_dir in todo}
            for fut in as_completed(futures):
                fam, seed, run_dir = futures[fut]
                done[run_dir] = fut.result()
                bar.set_postfix_str(f"finished {fam} seed {seed}")
                bar.update(1)
    else:
        for fam, seed, params, run_dir in todo:
            bar.set_postfix_str(f"{fam} seed {seed}")
            done[run_dir] = execute_run(d, fam, params, seed, cfg, run_dir, progress=verbose,
                                        panels=seed == first_seed)
            bar.update(1)
    bar.close()
    records = []
    for *_, run_dir in jobs:
        rec = done[run_dir]
        rec["run_dir"] = os.path.relpath(run_dir, out)
        records.append(rec)
    summary = summarise(records)
    meta = {"data": d.name, "preset": preset, "budget": cfg, "seeds": int(seeds), "families": fams,
            "n_train": int(len(d.X_train)), "n_test": int(len(d.X_test)), "dim": int(d.X_train.shape[1]),
            "columns": d.columns, "reused_runs": reused, "wall_s": time.perf_counter() - started,
            "workers": workers, "genzoo_version": gz.__version__, "code": code_hash(),
            "params": overrides, "device": device, "environment": environment(device),
            "budget_note": budget_note(fams, cfg)}
    write_results(out, records, summary, meta)
    report = write_report(out, records, summary, meta, d, box=plot_box(d))
    logger.info("compare: %d runs (%d reused); report: %s", len(records), reused, os.path.abspath(report))
    return records


def budget_note(fams: list[str], cfg: dict) -> str:
    """One sentence per family listing every training budget its runs get (see ``family_params``)."""
    parts = []
    for f in fams:
        p = gz.make(f).get_params()
        budgets = scaled_budgets(f, cfg["budget"])  # the same numbers family_params hands the runs
        if not budgets:
            parts.append(f"{f}: closed-form fit")
            continue
        words = []
        if "max_steps" in budgets:
            words.append(f"{budgets.pop('max_steps')} steps x batch {p.get('batch_size', '?')}")
        words += [f"{name.replace('_', ' ')} {value}" for name, value in budgets.items()]
        parts.append(f"{f}: " + ", ".join(words))
    return (f"{int(cfg['n_train'])} training points, {int(cfg['n_eval'])} evaluation samples; "
            f"{int(cfg['budget'] * 100)}% of each family's default training budgets: " + "; ".join(parts))


__all__ = ["run_compare", "PRESETS", "resolve_families", "family_params", "scaled_budgets", "budget_note",
           "check_overrides", "code_hash", "environment"]
