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


@pytest.mark.parametrize("bad, needle", [
    ("lr=fast", "lr must be a float in (0, inf); got 'fast'"),
    ("random_state=abc", "random_state must be None, an int >= 0"),
    ("hidden=[64]", "hidden must be an int in [1, inf); got [64]"),
    ("max_steps=0", "max_steps must be an int in [1, inf); got 0"),
    ("nonsense=1", "unknown hyperparameter(s) ['nonsense']"),
    ("lr", "--set expects key=value"),
])
def test_train_bad_set_is_one_line(tmp_path, capsys, bad, needle):
    """A bad ``--set`` fails before the data are read or a step is trained: one line, exit 1."""
    rc = main(["train", "flow", "--data", "ring", "--out", str(tmp_path / "m.gz"), "--set", bad])
    out, err = capsys.readouterr()
    assert rc == 1 and not out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genzoo train: error: ") and needle in lines[0], err
    assert not (tmp_path / "m.gz").exists()


def test_train_bad_set_through_the_installed_entry_point(tmp_path):
    """The acceptance check's path: a real process, no traceback, at most two lines in all."""
    for bad in ("lr=fast", "hidden=[64]"):
        r = _run("train", "flow", "--data", "ring", "--out", str(tmp_path / "m"), "--set", bad)
        msg = (r.stdout + r.stderr).strip()
        assert r.returncode != 0 and "Traceback" not in msg and len(msg.splitlines()) == 1, msg


def test_unexpected_errors_are_one_line_too(tmp_path, capsys, monkeypatch):
    """A failure that is no user error (a bug, a torch error) is still one line, unless debugging."""
    import genzoo as gz

    model = str(tmp_path / "m.gz")
    assert main(["train", "gmm", "--data", "gaussians8", "-n", "300", "--out", model]) == 0
    capsys.readouterr()
    assert main(["sample", model, "-n", "5", "--out", str(tmp_path / "s.csv"), "--set", "steps=abc"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown sampling option" in err[0]

    def broken(self, *a, **k):
        raise RuntimeError("CUDA error: device-side assert triggered\nmore detail")

    monkeypatch.setattr(type(gz.load(model)), "sample", broken)
    assert main(["sample", model, "-n", "5", "--out", str(tmp_path / "s.csv")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["genzoo sample: error: RuntimeError: CUDA error: device-side assert triggered "
                   "(GENZOO_DEBUG=1 shows the traceback)"]
    monkeypatch.setenv("GENZOO_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["sample", model, "-n", "5", "--out", str(tmp_path / "s.csv")])


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
