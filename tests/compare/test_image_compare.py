"""``genzoo compare --data digits``: the image families side by side, a report, cached runs, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genzoo.cli import main
from genzoo.compare.images import IMAGE_ROWS, is_image_data, resolve_image_rows, run_image_compare

TINY = {"vae": {"max_steps": 60}, "autoregressive": {"image_steps": 30, "members": 1}}


@pytest.fixture
def small_eval(monkeypatch):
    """The measurements' shape, not their precision: fewer samples, conditional draws and inpaintings."""
    import genzoo.compare.images as images_compare

    monkeypatch.setattr(images_compare, "IMAGE_EVAL",
                        {"quick": {"budget": 0.08, "samples": 200, "score": 60, "per_class": 8, "inpaint": 20}})
    return images_compare


def test_image_data_and_rows_resolve():
    assert is_image_data("digits") and not is_image_data("ring") and not is_image_data("names")
    assert resolve_image_rows(None) == IMAGE_ROWS == resolve_image_rows("all")
    assert set(resolve_image_rows("core")) >= {"vae", "gan", "flow", "diffusion", "autoregressive",
                                               "latent_diffusion", "vq_autoregressive", "vq_masked"}
    with pytest.raises(ValueError, match="does not model images"):
        resolve_image_rows("gmm")
    with pytest.raises(ValueError, match="unknown family 'vea'.*vae"):
        resolve_image_rows("vea")


def test_compare_writes_an_image_report_and_reuses_runs(tmp_path, one_thread, small_eval, monkeypatch):
    out = str(tmp_path / "cmp")
    recs = run_image_compare("digits", families="vae,autoregressive", preset="quick", out=out, params=TINY,
                             workers=1)
    by = {r["family"]: r for r in recs}
    for fam in ("vae", "autoregressive"):
        r = by[fam]
        assert "error" not in r, r.get("error")
        assert r["samples_per_s"] > 0 and r["fit_s"] > 0
        assert 0 < r["nll"] < 64 * np.log(17)  # below the uniform 17-level guess per pixel
        assert r["bits_per_dim"] == pytest.approx(r["nll"] / (64 * np.log(2)))
        s = r["scores"]
        assert s["fd"] > 0 and s["fd_floor"] > 0 and 0 <= s["precision"] <= 1 and 1 <= s["inception"] <= 10
        assert set(r["alignment"]) == {"0.0", "1.0", "3.0"}
        assert r["inpaint"]["kept"] and 0 <= r["inpaint"]["accuracy"] <= 1
    assert by["autoregressive"]["likelihood_kind"] == "exact" and by["autoregressive"]["steps"] == 30
    z = np.load(f"{out}/{by['vae']['run_dir']}/figures.npz")
    assert by["vae"]["alignment"]["0.0"] is None and by["vae"]["alignment"]["1.0"]["alignment"] >= 0  # no CFG
    assert z["conditional"].shape[:2] == (1, 10) and list(z["guidance"]) == [1.0]
    assert z["inpaint"].shape[0] == 3 and len(z["nn_train"]) == 8
    page = open(f"{out}/report.html", encoding="utf-8").read()
    assert "nats/image" in page and "FD / floor" in page and "alignment" in page
    assert page.count("fit s</th>") == 2  # likelihood and samples tables: families without a likelihood too
    assert page.count("<img") >= 8
    meta = json.load(open(f"{out}/results.json"))["meta"]
    assert meta["kind"] == "image" and meta["real_accuracy"] > 0.95 and meta["floors"]["fd_floor"] > 0
    monkeypatch.setattr(small_eval, "run_image_family", lambda *a, **k: pytest.fail("a cached run was run again"))
    again = run_image_compare("digits", families="vae", preset="quick", out=out, params={"vae": TINY["vae"]},
                              workers=1)
    assert again[0]["nll"] == by["vae"]["nll"]


def test_cli_compare_on_digits(tmp_path, capsys, one_thread, small_eval):
    out = str(tmp_path / "c")
    assert main(["compare", "--data", "digits", "--families", "vae", "--set", "vae.max_steps=40", "--preset",
                 "quick", "--out", out, "--quiet", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "vae" in printed and "nats/image" in printed and "report.html" in printed
    assert len(json.load(open(f"{out}/results.json"))["records"]) == 1  # one seed on images by default


def test_bad_image_compare_requests_are_one_line(tmp_path, capsys):
    assert main(["compare", "--data", "digits", "--families", "gmm", "--out", str(tmp_path / "c")]) != 0
    err = capsys.readouterr().err
    assert "does not model images" in err and len(err.strip().splitlines()) == 1
    assert main(["compare", "--data", "digits", "--label", "y", "--out", str(tmp_path / "c")]) != 0
    assert "labels built in" in capsys.readouterr().err


def test_two_worker_processes_give_every_run(tmp_path):
    out = str(tmp_path / "w")
    recs = run_image_compare("digits", families="vae", seeds=2, preset="quick", out=out,
                             params={"vae": {"max_steps": 40}}, workers=2, start_method="spawn")
    assert [r["seed"] for r in recs] == [0, 1] and all("error" not in r for r in recs)
    assert "alignment" in recs[0] and "alignment" not in recs[1]  # the figures' extras on the first seed only
    assert json.load(open(f"{out}/results.json"))["meta"]["workers"] == 2


def test_samples_that_are_not_images_make_the_run_an_error(tmp_path, monkeypatch, small_eval):
    class Halves:  # a "model" whose samples fall between the grey levels
        capabilities, likelihood_kind = frozenset({"sample"}), "none"

        def fit(self, X, y=None):
            return self

        def sample(self, n, random_state=None):
            return np.full((n, 8, 8), 0.5)

    monkeypatch.setattr(small_eval.gz, "make", lambda family, **params: Halves())
    X = np.zeros((20, 8, 8), np.int64)
    data = {"Xtr": X, "ytr": np.arange(20) % 10, "Xte": X, "yte": np.arange(20) % 10, "levels": 17}
    rec = small_eval.run_image_family("vae", {"random_state": 0}, data, "quick", str(tmp_path / "r"))
    assert "integer levels 0..16" in rec["error"] and "scores" not in rec
