"""``genzoo train --label COLUMN``: a label column of the data file conditions the fit."""

from __future__ import annotations

import numpy as np
import pandas as pd

import genzoo as gz
from genzoo.cli import main


def _table(tmp_path):
    X, y = gz.datasets.get("gaussians8").sample(800, random_state=0, return_labels=True)
    path = tmp_path / "d.csv"
    pd.DataFrame({"a": X[:, 0], "kind": np.array(["n", "e", "s", "w", "ne", "nw", "se", "sw"])[y],
                  "b": X[:, 1]}).to_csv(path, index=False)
    return path


def test_train_with_a_label_column(tmp_path, capsys):
    data, model = _table(tmp_path), str(tmp_path / "m.genzoo")
    assert main(["train", "gmm", "--data", str(data), "--label", "kind", "--out", model]) == 0
    assert "conditioned on 'kind' (8 classes)" in capsys.readouterr().out
    m = gz.load(model)
    assert m.feature_names_in_.tolist() == ["a", "b"] and sorted(m.classes_) == sorted(
        ["n", "e", "s", "w", "ne", "nw", "se", "sw"])
    S = m.sample(200, y="n", random_state=0)
    assert S.shape == (200, 2)


def test_label_errors_are_one_line(tmp_path, capsys):
    data, model = _table(tmp_path), str(tmp_path / "m.genzoo")
    assert main(["train", "gmm", "--data", str(data), "--label", "knd", "--out", model]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no column 'knd'; did you mean 'kind'" in err
    assert main(["train", "gmm", "--data", "ring", "--label", "kind", "--out", model]) == 1
    assert "--label names a column of a data file" in capsys.readouterr().err
    assert main(["train", "ebm", "--data", str(data), "--label", "kind", "--out", model]) == 1
    assert "ebm does not take labels" in capsys.readouterr().err  # an unconditional family says so


def test_compare_with_a_label_column_reports_train_on_synthetic_accuracy(tmp_path, capsys):
    """``compare --data table.csv --label kind``: conditional families fit p(x | label), each run
    reports train-on-synthetic, test-on-real accuracy beside train-on-real; a family without labels
    (ebm) gets the baseline only."""
    data, out = _table(tmp_path), str(tmp_path / "cmp")
    assert main(["compare", "--data", str(data), "--label", "kind", "--families", "gmm,ebm", "--seeds", "1",
                 "--preset", "quick", "--quiet", "--out", out]) == 0
    table = capsys.readouterr().out
    assert "TSTR acc" in table and "TRTR acc" in table
    import json

    recs = {r["family"]: r for r in json.load(open(f"{out}/results.json"))["runs"]}
    g = recs["gmm"]["metrics"]
    # eight well separated modes: a good conditional model teaches the classifier as well as real rows do
    assert g["trtr_accuracy"] > 0.9 and g["tstr_accuracy"] > g["trtr_accuracy"] - 0.05
    assert recs["gmm"]["conditional"] is True
    assert recs["ebm"]["conditional"] is False  # the one family without labels
    assert "tstr_accuracy" not in recs["ebm"]["metrics"] and recs["ebm"]["metrics"]["trtr_accuracy"] > 0.9
    assert "train-on-synthetic" in open(f"{out}/report.html").read()
    assert main(["compare", "--data", "ring", "--label", "kind", "--out", out]) == 1
    assert "--label names a column of a data file" in capsys.readouterr().err


def test_compare_beyond_two_columns_reports_columns(tmp_path, capsys):
    """A 4-column table: per-column marginal distances, correlation error (each beside its floor)
    and the report's column heat map, pair plots and correlation-error maps."""
    import json

    rng = np.random.default_rng(0)
    z = rng.standard_normal((600, 1))
    X = np.hstack([z, 2 * z + 0.3 * rng.standard_normal((600, 1)), rng.standard_normal((600, 2)) * [1, 50]])
    path = tmp_path / "t.csv"
    pd.DataFrame(X, columns=["alpha", "beta", "gamma", "delta"]).to_csv(path, index=False)
    out = str(tmp_path / "cmp")
    assert main(["compare", "--data", str(path), "--families", "gmm", "--seeds", "1", "--preset", "quick",
                 "--quiet", "--out", out]) == 0
    capsys.readouterr()
    m = json.load(open(f"{out}/results.json"))["runs"][0]["metrics"]
    assert m["standardized"] is True
    assert 0 <= m["marginal_w1"] <= m["marginal_w1_worst"] < 0.5 and m["corr_error"] < 0.2
    assert m["marginal_w1_floor"] > 0 and "corr_error_floor" in m
    html = open(f"{out}/report.html").read()
    assert "<h2>Columns</h2>" in html and "gmm column pairs" in html and "gmm correlation error" in html
