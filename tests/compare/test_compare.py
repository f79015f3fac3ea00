"""The compare pipeline: results, resume, bad input, diverged runs (on fast baseline families)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch

import genzoo as gz
from genzoo.base import TorchGenerativeModel
from genzoo.compare import run_compare
from genzoo.registry import _FAMILIES, register


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_compare_writes_results_and_resumes(tmp_path):
    out = str(tmp_path / "cmp")
    recs = run_compare(data="gaussians8", families="gmm,kde", seeds=2, preset="quick", out=out, verbose=False,
                       workers=1)
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs)
    rows = _rows(os.path.join(out, "results.csv"))
    assert [r["family"] for r in rows] == ["gmm", "gmm", "kde", "kde"]
    assert float(rows[0]["modes"]) == 8 and 0.9 < float(rows[0]["on_support"]) <= 1.0
    summary = _rows(os.path.join(out, "summary.csv"))
    assert {r["family"] for r in summary} == {"gmm", "kde"}
    html = open(os.path.join(out, "report.html")).read()
    assert "gmm" in html and "<img" in html and "http://" not in html.replace("http://www.w3.org", "")
    stamps = {p: os.path.getmtime(os.path.join(out, "runs", p, "record.json")) for p in os.listdir(
        os.path.join(out, "runs"))}
    run_compare(data="gaussians8", families="gmm,kde", seeds=2, preset="quick", out=out, verbose=False, workers=1)
    again = {p: os.path.getmtime(os.path.join(out, "runs", p, "record.json")) for p in stamps}
    assert again == stamps, "a rerun with the same settings retrains nothing"
    meta = json.load(open(os.path.join(out, "results.json")))["meta"]
    assert meta["reused_runs"] == 4


def test_compare_on_a_user_file(tmp_path):
    X = gz.datasets.get("moons").sample(300, random_state=0) * 100
    path = tmp_path / "my data.csv"
    np.savetxt(path, X, delimiter=",", header="len <mm>,width", comments="")
    out = str(tmp_path / "out")
    recs = run_compare(data=str(path), families="gmm", seeds=1, preset="quick", out=out, verbose=False, workers=1)
    assert recs[0]["status"] == "ok"
    html = open(os.path.join(out, "report.html")).read()
    assert "len &lt;mm&gt;" in html and "len <mm>" not in html, "user strings are escaped"


@pytest.mark.parametrize("kwargs, msg", [
    ({"families": "gmm,nope"}, "unknown family 'nope'"),
    ({"data": "nope"}, "unknown dataset 'nope'"),
    ({"seeds": 0}, "seeds"),
    ({"preset": "huge"}, "unknown preset"),
])
def test_compare_bad_input(tmp_path, kwargs, msg):
    args = {"data": "ring", "families": "gmm", "seeds": 1, "preset": "quick", "out": str(tmp_path / "o"),
            "verbose": False, "workers": 1} | kwargs
    with pytest.raises(ValueError, match=msg):
        run_compare(**args)


def test_unwritable_out_and_failed_run_keeps_earlier_results(tmp_path):
    out = tmp_path / "o"
    run_compare(data="ring", families="gmm", seeds=1, preset="quick", out=str(out), verbose=False, workers=1)
    before = (out / "results.csv").read_text()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot write"):
        run_compare(data="ring", families="gmm", seeds=1, preset="quick", out=str(blocker / "sub"),
                    verbose=False, workers=1)
    with pytest.raises(ValueError):
        run_compare(data="ring", families="gmm,bogus", seeds=1, preset="quick", out=str(out),
                    verbose=False, workers=1)
    assert (out / "results.csv").read_text() == before


class _Exploding(TorchGenerativeModel):
    """A family whose loss turns NaN: compare must report it as diverged and go on."""

    likelihood_kind = "none"
    _capabilities = frozenset({"sample"})

    def __init__(self, *, max_steps=60, batch_size=64, lr=1e-3, validation_fraction=0.0, early_stopping=False,
                 patience=3, random_state=None, device="cpu", verbose=0):
        self.max_steps, self.batch_size, self.lr = max_steps, batch_size, lr
        self.validation_fraction, self.early_stopping, self.patience = validation_fraction, early_stopping, patience
        self.random_state, self.device, self.verbose = random_state, device, verbose

    def _build(self, dim, n_classes):
        return torch.nn.Linear(dim, dim)

    def _loss(self, z, y):
        return self.module_(z).sum() * float("nan")

    def _sample_std(self, n, y, seed, **opts):
        return torch.full((n, self.n_features_in_), float("nan"))


def test_diverged_family_is_reported_and_run_goes_on(tmp_path):
    register("exploding_test_family")(_Exploding)
    try:
        recs = run_compare(data="ring", families="exploding_test_family,gmm", seeds=1, preset="quick",
                           out=str(tmp_path / "o"), verbose=False, workers=1)
    finally:
        _FAMILIES.pop("exploding_test_family", None)
    status = {r["family"]: r["status"] for r in recs}
    assert status == {"exploding_test_family": "diverged", "gmm": "ok"}
    html = (tmp_path / "o" / "report.html").read_text()
    assert "diverged" in html



def _exact_beside_family():
    """A test family with an approximate default sampler and an exact one (``exact_sampler``)."""
    base = type(gz.make("gmm"))

    class ExactBeside(base):
        exact_sampler = "exact"

        def _sample_std(self, n, y, seed, sampler=None, **opts):
            S = super()._sample_std(n, y, seed, **opts)
            return S if sampler == "exact" else S * 1.5  # the default sampler is visibly off

    return ExactBeside


def test_report_shows_exact_draws_beside_the_default_sampler(tmp_path):
    register("exact_beside_test_family")(_exact_beside_family())
    try:
        recs = run_compare(data="ring", families="exact_beside_test_family", seeds=1, preset="quick",
                           out=str(tmp_path / "o"), verbose=False, workers=1)
    finally:
        _FAMILIES.pop("exact_beside_test_family", None)
    (run,) = os.listdir(tmp_path / "o" / "runs")
    exact = np.load(tmp_path / "o" / "runs" / run / "exact_samples.npy")
    default = np.load(tmp_path / "o" / "runs" / run / "samples.npy")
    radius = lambda S: float(np.median(np.linalg.norm(S, axis=1)))  # noqa: E731
    assert recs[0]["status"] == "ok" and radius(default) > 1.3 * radius(exact)
    assert "exact draws" in (tmp_path / "o" / "report.html").read_text()


def test_a_preset_scales_every_training_phase():
    """Rectified flow trains twice (1-RF, then the reflow on its own pairs): a preset shrinks all of it."""
    from genzoo.compare.runner import PRESETS, budget_note, family_params

    d = gz.make("rectified_flow").get_params()
    p = family_params("rectified_flow", PRESETS["quick"], seed=0)
    for budget in ("max_steps", "reflow_steps", "reflow_pairs"):
        assert p[budget] == round(d[budget] * 0.08), budget
    assert "reflow_steps" not in family_params("flow_matching", PRESETS["quick"], seed=0)
    note = budget_note(["rectified_flow"], PRESETS["quick"])
    assert f"reflow steps {p['reflow_steps']}" in note and f"reflow pairs {p['reflow_pairs']}" in note


@pytest.mark.parametrize("family", gz.families())
def test_every_family_declares_budgets_it_has(family):
    """``budget_params`` names hyperparameters the family has, each with a positive integer floor;
    every family trained in steps declares ``max_steps``."""
    model = gz.make(family)
    params = model.get_params()
    for name, floor in type(model).budget_params.items():
        assert name in params, f"{family} declares a budget {name!r} it does not have"
        assert isinstance(params[name], int) and isinstance(floor, int) and floor > 0, name
    assert ("max_steps" in params) == ("max_steps" in type(model).budget_params)


@pytest.mark.parametrize("preset", ["quick", "default", "thorough"])
def test_a_preset_scales_every_declared_budget(preset):
    from genzoo.compare.runner import PRESETS, budget_note, family_params

    cfg = PRESETS[preset]
    fams = gz.families()
    note = budget_note(fams, cfg)
    for family in fams:
        model = gz.make(family)
        d, p = model.get_params(), family_params(family, cfg, seed=0)
        for name, floor in type(model).budget_params.items():
            assert p[name] == max(min(floor, d[name]), round(d[name] * cfg["budget"])), (family, name)
            shown = f"{p[name]} steps" if name == "max_steps" else f"{name.replace('_', ' ')} {p[name]}"
            assert shown in note, (family, name, note)
        scaled = set(p) - {"random_state", "verbose"}
        assert scaled == set(type(model).budget_params), f"{family}: only declared budgets are scaled"


def test_quick_preset_shrinks_the_consistency_teacher():
    """The quick preset used to train consistency's full 3,000-step teacher while reporting 240 steps."""
    from genzoo.compare.runner import PRESETS, budget_note, family_params

    p = family_params("consistency", PRESETS["quick"], seed=0)  # 8% of 10,000 student and 6,000 teacher steps
    assert p["max_steps"] == 800 and p["teacher_steps"] == 480 and p["pool_size"] == 1600
    assert "consistency: 800 steps x batch 256, teacher steps 480, pool size 1600" in budget_note(
        ["consistency"], PRESETS["quick"])


def test_test_presets_scale_every_declared_budget():
    """tests.conftest.small_params shrinks every declared budget by the fraction that brings
    ``max_steps`` to its test size, as the compare presets do."""
    from tests.conftest import SMALL_STEPS, small_params

    for family in gz.families():
        model = gz.make(family)
        d, p = model.get_params(), small_params(family)
        for name, floor in type(model).budget_params.items():
            want = max(min(floor, d[name]), round(d[name] * SMALL_STEPS / d["max_steps"]))
            assert p[name] == want < d[name] or d[name] <= floor, (family, name)
    assert small_params("consistency")["teacher_steps"] == round(6000 * SMALL_STEPS / 10000)  # student : teacher


def test_compare_reads_the_wider_built_ins_and_scikit_learns_tables():
    from genzoo.compare.runner import load_data

    w = load_data("wine", 1000)  # a table: every row, split 80 / 20 with its labels
    assert w.dist is None and w.X_train.shape[1] == 13 and len(w.X_train) + len(w.X_test) == 178
    assert len(w.y_train) == len(w.X_train) and set(np.unique(w.y_test)) <= {0, 1, 2}
    assert "alcohol" in w.columns
    d = load_data("diabetes", 1000)  # a regression table: no labels
    assert d.y_train is None and d.y_test is None
    m = load_data("mixture10", 500)  # a wider exact density: drawn like the 2-D built-ins
    assert m.dist is not None and m.X_train.shape == (500, 10)
    with pytest.raises(ValueError, match="--label names a column of a data file"):
        load_data("wine", 100, label="alcohol")
    with pytest.raises(ValueError, match="did you mean 'wine'"):
        load_data("wien", 100)


def test_the_report_says_what_each_fit_chose(tmp_path):
    """Beyond 2-D the autoregressive family fits with and without its mixture prior and keeps the better
    held-out likelihood: the run's record and the report say which it kept, with the numbers."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.05, (150, 3)) for c in (-1.0, 1.0)])
    path = tmp_path / "blobs.csv"
    np.savetxt(path, X, delimiter=",", header="a,b,c", comments="")
    out = str(tmp_path / "o")
    recs = run_compare(data=str(path), families="autoregressive", seeds=1, preset="quick", out=out, verbose=False,
                       workers=1, params={"autoregressive": {"max_steps": 60}})
    choices = recs[0]["choices"]
    assert len(choices) == 1 and choices[0].startswith("kept the ") and "held-out NLL per row" in choices[0]
    html = open(os.path.join(out, "report.html")).read()
    assert "Chosen at fit." in html and "id='choices-autoregressive'" in html
    assert f"seed 0: {choices[0]}" in html
