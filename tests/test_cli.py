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
    model = str(tmp_path / "m.genzoo")
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
    (["train", "nope", "--out", "x.genzoo"], "unknown family"),
    (["train", "gmm", "--data", "nope", "--out", "x.genzoo"], "unknown dataset"),
    (["sample", "missing.genzoo", "--out", "s.csv"], "no such model file"),
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
    ("hidden=[64]", "hidden must be an int in [1, inf) or None; got [64]"),
    ("max_steps=0", "max_steps must be an int in [1, inf); got 0"),
    ("nonsense=1", "unknown hyperparameter(s) ['nonsense']"),
    ("lr", "--set expects key=value"),
])
def test_train_bad_set_is_one_line(tmp_path, capsys, bad, needle):
    """A bad ``--set`` fails before the data are read or a step is trained: one line, exit 1."""
    rc = main(["train", "flow", "--data", "ring", "--out", str(tmp_path / "m.genzoo"), "--set", bad])
    out, err = capsys.readouterr()
    assert rc == 1 and not out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genzoo train: error: ") and needle in lines[0], err
    assert not (tmp_path / "m.genzoo").exists()


def test_train_bad_set_through_the_installed_entry_point(tmp_path):
    """The acceptance check's path: a real process, no traceback, at most two lines in all."""
    for bad in ("lr=fast", "hidden=[64]"):
        r = _run("train", "flow", "--data", "ring", "--out", str(tmp_path / "m"), "--set", bad)
        msg = (r.stdout + r.stderr).strip()
        assert r.returncode != 0 and "Traceback" not in msg and len(msg.splitlines()) == 1, msg


def test_unexpected_errors_are_one_line_too(tmp_path, capsys, monkeypatch):
    """A failure that is no user error (a bug, a torch error) is still one line, unless debugging."""
    import genzoo as gz

    model = str(tmp_path / "m.genzoo")
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
                   "(run with --debug for the traceback)"]
    assert main(["sample", model, "-n", "5", "--out", str(tmp_path / "s.csv"), "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "broken" in err and err.strip().splitlines()[-1].startswith("genzoo sample: error:")


def test_cli_rejects_text_data_and_corrupt_model(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\nx,3\n")
    r = _run("train", "gmm", "--data", str(bad), "--out", str(tmp_path / "m.genzoo"))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    junk = tmp_path / "junk.genzoo"
    junk.write_text("nope")
    r = _run("sample", str(junk), "--out", str(tmp_path / "s.csv"))
    assert r.returncode != 0 and "not a genzoo model" in r.stderr


def test_list_runs():
    r = _run("list")
    assert r.returncode == 0 and "flow" in r.stdout and "ring" in r.stdout
    assert "mixture10" in r.stdout and "breast_cancer" in r.stdout  # what compare --data also reads


def test_compare_from_the_command_line_with_two_workers(tmp_path):
    """The CLI's path: two forked workers, every run finished, the report and the table written."""
    out = tmp_path / "cmp"
    r = _run("compare", "--families", "gmm,kde", "--seeds", "2", "--preset", "quick", "--out", str(out),
             "--workers", "2")
    assert r.returncode == 0, r.stderr[-500:]
    assert (out / "report.html").exists() and "report:" in r.stdout and "report:" not in r.stderr
    assert "gmm" in r.stdout and "kde" in r.stdout  # the results table: stdout (progress: stderr)
    rows = (out / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 4 and all(",ok," in row for row in rows[1:])


# ----------------------------------------------------------------------------- habits people expect
def test_version_and_python_m():
    import genzoo as gz

    r = subprocess.run([sys.executable, "-m", "genzoo", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"genzoo {gz.__version__}"


def test_every_argument_has_help_that_shows_its_default():
    import argparse

    from genzoo.cli import _HelpFormatter, build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    fmt = _HelpFormatter("genzoo")
    for name, sub in subs.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            text = fmt._get_help_string(action)
            assert text, f"{name} {action.dest}: no help text"
            if action.option_strings and action.dest != "debug":
                assert "default" in text or "required" in text, f"{name} {action.option_strings}: {text!r}"


@pytest.mark.parametrize("args, needle", [
    (["trian", "gmm"], "did you mean 'train'?"),
    (["compare", "--famlies", "gmm"], "did you mean '--families'?"),
    (["compare", "--preset", "quik"], "did you mean 'quick'?"),
    (["train", "flwo", "--out", "m.genzoo"], "did you mean 'flow'?"),
    (["train", "gmm", "--data", "rign", "--out", "m.genzoo"], "did you mean 'ring'?"),
    (["train", "flow", "--set", "max_step=3", "--out", "m.genzoo"], "did you mean 'max_steps'?"),
    (["compare", "--families", "gmm,kdee"], "did you mean 'kde'?"),
    (["compare", "--families", "flow", "--set", "flow.max_stes=3"], "did you mean 'max_steps'?"),
    (["compare", "--families", "flow", "--set", "flw.max_steps=3"], "did you mean 'flow'?"),
    (["compare", "--families", "gmm", "--set", "flow.max_steps=3"], "not among the families compared"),
    (["compare", "--families", "flow", "--set", "flow.lr=fast"], "--set flow: lr must be a float"),
    (["compare", "--families", "flow", "--set", "max_steps=3"], "--set expects family.key=value"),
])
def test_misspellings_get_one_line_with_a_suggestion(tmp_path, capsys, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(args)
    except SystemExit as e:  # argparse's usage errors
        rc = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc in (1, 2) and len(err) == 1 and needle in err[0], err
    assert not list(tmp_path.iterdir()), "nothing is written before the arguments are checked"


def test_train_reports_its_run_and_keeps_the_column_names(tmp_path, capsys):
    data = tmp_path / "t.csv"
    rows = gz_ring(150)
    data.write_text("height,width\n" + "".join(f"{h},{w}\n" for h, w in rows))
    model = tmp_path / "model.genzoo"
    assert main(["train", "autoregressive", "--data", str(data), "--out", str(model), "--quiet",
                 "--set", "max_steps=40", "--set", "device=cpu"]) == 0
    out, err = capsys.readouterr()
    assert "150 rows x 2 columns (height, width)" in out and "fit: 40 of 40 steps" in out
    assert "early stopping" in out and "validation loss" in out and not err  # --quiet: no bar
    assert main(["sample", str(model), "-n", "5", "--out", str(tmp_path / "s.csv"), "--seed", "0"]) == 0
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "height,width"
    assert main(["sample", str(model), "-n", "5", "--out", str(tmp_path / "s.parquet"), "--seed", "0"]) == 0
    import pandas as pd

    S = pd.read_parquet(tmp_path / "s.parquet")
    assert S.columns.tolist() == ["height", "width"] and S.shape == (5, 2)
    np.testing.assert_allclose(S.to_numpy(), np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1))
    # columns are matched by name: a file with the columns swapped scores the same rows the same
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("width,height\n" + "\n".join(f"{w},{h}" for h, w in S.to_numpy()) + "\n")
    capsys.readouterr()
    assert main(["score", str(model), str(tmp_path / "s.csv")]) == 0
    a = capsys.readouterr().out
    assert main(["score", str(model), str(swapped)]) == 0
    assert capsys.readouterr().out == a


def test_train_says_which_column_blocks_it_kept(tmp_path, capsys):
    """Two independent rings in four named columns: the product of two blocks is kept and named."""
    rng = np.random.default_rng(0)
    a, r = rng.uniform(0, 2 * np.pi, (1500, 2)), 2 + 0.1 * rng.standard_normal((1500, 2))
    rows = np.column_stack([r[:, 0] * np.cos(a[:, 0]), r[:, 0] * np.sin(a[:, 0]),
                            r[:, 1] * np.cos(a[:, 1]), r[:, 1] * np.sin(a[:, 1])])
    data = tmp_path / "t.csv"
    data.write_text("a1,a2,b1,b2\n" + "".join(",".join(map(str, row)) + "\n" for row in rows))
    assert main(["train", "diffusion", "--data", str(data), "--out", str(tmp_path / "m.genzoo"), "--quiet",
                 "--set", "max_steps=50", "--set", "prior=none", "--set", "factorise=true"]) == 0
    out = capsys.readouterr().out
    assert "kept a product of 2 independent column blocks (a1, a2 | b1, b2)" in out
    assert "fit (block 2: b1, b2): 50 of 50 steps" in out


def gz_ring(n: int) -> np.ndarray:
    import genzoo as gz

    return gz.datasets.get("ring").sample(n, random_state=0)


def test_train_progress_goes_to_stderr(tmp_path, capsys):
    assert main(["train", "autoregressive", "-n", "300", "--out", str(tmp_path / "m.genzoo"),
                 "--set", "max_steps=20", "--set", "device=cpu"]) == 0
    out, err = capsys.readouterr()
    assert "fit autoregressive" in err and "fit autoregressive" not in out and "saved to" in out


def test_output_problems_are_caught_before_the_work(tmp_path, capsys):
    model = str(tmp_path / "m.genzoo")
    assert main(["train", "gmm", "--data", "ring", "-n", "300", "--out", model]) == 0
    capsys.readouterr()
    assert main(["sample", model, "--out", str(tmp_path / "s.xlsx")]) == 1
    assert "use a .csv, .npy, .parquet file name" in capsys.readouterr().err
    for args in (["train", "gmm", "--out", "/nonexistent/dir/m"], ["sample", model, "--out", "/nonexistent/s.csv"]):
        assert main(args) == 1
        err = capsys.readouterr().err
        assert "does not exist" in err and len(err.strip().splitlines()) == 1, err
        assert ".tmp" not in err and ".part" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.genzoo"]


def test_missing_values_hint_speaks_to_the_command_line(tmp_path, capsys):
    holes = tmp_path / "holes.csv"
    holes.write_text("a,b\n1.0,2.0\n3.0,\n5.0,6.0\n")
    assert main(["train", "gmm", "--data", str(holes), "--out", str(tmp_path / "m.genzoo")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "genzoo impute" in err[0] and "allow_nan" not in err[0]
    assert "data row 2, column 'b'" in err[0]


def test_compare_set_force_and_environment(tmp_path, capsys):
    import json

    out = tmp_path / "cmp"
    base = ["compare", "--families", "gmm", "--seeds", "1", "--preset", "quick", "--out", str(out), "--quiet",
            "--workers", "1", "--set", "gmm.max_components=3"]
    assert main(base) == 0
    stdout, err = capsys.readouterr()
    assert "report:" in stdout and "gmm" in stdout and not err
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert runs[0]["params"]["max_components"] == 3
    env = runs[0]["environment"]
    assert {"python", "torch", "cpu_count", "torch_threads", "device", "code"} <= set(env)
    record = next((out / "runs").iterdir()) / "record.json"
    stamp = record.stat().st_mtime_ns
    assert main(base) == 0 and record.stat().st_mtime_ns == stamp  # reused
    assert main([*base, "--force"]) == 0 and record.stat().st_mtime_ns != stamp  # retrained


def test_the_cache_key_follows_the_code(monkeypatch):
    from genzoo.compare import runner

    d = runner.Data("x", np.zeros((2, 2)), np.zeros((2, 2)), None, ["a", "b"], "fp")
    key = runner.run_key(d, "gmm", {"random_state": 0}, 0, "quick")
    assert len(runner.code_hash()) == 16 and runner.code_hash() == runner.code_hash()
    monkeypatch.setattr(runner, "code_hash", lambda: "edited")
    assert runner.run_key(d, "gmm", {"random_state": 0}, 0, "quick") != key
