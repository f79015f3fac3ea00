"""The command line: a round trip through train/sample/score/impute, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from genzoo.cli import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "genzoo.cli", *args], capture_output=True, text=True)


def test_train_sample_score_impute_roundtrip(tmp_path, capsys):
    model = str(tmp_path / "m.gz")
    assert main(["train", "gmm", "--data", "gaussians8", "-n", "2000", "--out", model]) == 0
    samples = str(tmp_path / "s.csv")
    assert main(["sample", model, "-n", "50", "--out", samples, "--seed", "1"]) == 0
    S = np.loadtxt(samples, delimiter=",", skiprows=1)
    assert S.shape == (50, 2)
    scores = str(tmp_path / "lp.csv")
    assert main(["score", model, samples, "--out", scores]) == 0
    assert np.isfinite(np.loadtxt(scores, skiprows=1)).all()
    holes = tmp_path / "holes.csv"
    holes.write_text("x0,x1\n0.7071,\n,0.0\n1.0,0.0\n")
    filled = str(tmp_path / "filled.csv")
    assert main(["impute", model, str(holes), "--out", filled]) == 0
    F = np.loadtxt(filled, delimiter=",", skiprows=1)
    assert np.isfinite(F).all() and F[0, 0] == pytest.approx(0.7071) and F[2].tolist() == [1.0, 0.0]
    assert abs(abs(F[0, 1]) - 0.7071) < 0.1


@pytest.mark.parametrize("args, needle", [
    (["train", "nope", "--out", "x.gz"], "unknown family"),
    (["train", "gmm", "--data", "nope", "--out", "x.gz"], "unknown dataset"),
    (["sample", "missing.gz", "--out", "s.csv"], "no such model file"),
    (["compare", "--seeds", "0"], "positive integer"),
    (["compare", "--families", "gmm,nope"], "unknown family"),
])
def test_cli_errors_are_one_line(tmp_path, args, needle):
    r = subprocess.run([sys.executable, "-m", "genzoo.cli", *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert needle in lines[0] and "Traceback" not in r.stderr


def test_cli_rejects_text_data_and_corrupt_model(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\nx,3\n")
    r = _run("train", "gmm", "--data", str(bad), "--out", str(tmp_path / "m.gz"))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    junk = tmp_path / "junk.gz"
    junk.write_text("nope")
    r = _run("sample", str(junk), "--out", str(tmp_path / "s.csv"))
    assert r.returncode != 0 and "not a genzoo model" in r.stderr


def test_list_runs():
    r = _run("list")
    assert r.returncode == 0 and "flow" in r.stdout and "ring" in r.stdout


def test_compare_from_the_command_line_with_two_workers(tmp_path):
    """The CLI's path: two forked workers, every run finished, the report and the table written."""
    out = tmp_path / "cmp"
    r = _run("compare", "--families", "gmm,kde", "--seeds", "2", "--preset", "quick", "--out", str(out),
             "--workers", "2")
    assert r.returncode == 0, r.stderr[-500:]
    assert (out / "report.html").exists() and "report:" in r.stderr
    rows = (out / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 4 and all(",ok," in row for row in rows[1:])
