"""``genzoo compare`` on strings: the text rows side by side, a report, cached runs, clear errors."""

from __future__ import annotations

import json

import pytest

import genzoo as gz
from genzoo.cli import main
from genzoo.compare.text import is_text_data, load_text, run_text_compare

TINY = {"autoregressive": {"text_steps": 40, "text_width": 32, "text_layers": 1},
        "masked_diffusion": {"text_steps": 40, "text_width": 32, "text_layers": 1}}


@pytest.fixture
def words_file(tmp_path):
    words = gz.datasets.get("names").split("train")[:300]
    path = tmp_path / "words.txt"
    path.write_text("\n".join(words) + "\n")
    return str(path)


def test_text_data_is_recognised_and_split(words_file):
    assert is_text_data("names") and is_text_data(words_file) and not is_text_data("ring")
    name, train, test, _ = load_text(words_file)
    assert name == "words.txt" and len(test) == 30 and len(train) == 270
    _, train, test, _ = load_text("names")
    assert len(test) == 1000 and len(train) == 31_033


def test_compare_writes_a_text_report_and_reuses_runs(words_file, tmp_path, one_thread, monkeypatch):
    import genzoo.compare.text as text_compare

    monkeypatch.setattr(text_compare, "N_SAMPLES", 200)  # the measurements' shape, not their precision
    monkeypatch.setattr(text_compare, "INFILL_WORDS", {"quick": 20})
    out = str(tmp_path / "cmp")
    recs = run_text_compare(words_file, families="autoregressive,bigram,masked_diffusion,gmm", preset="quick",
                            out=out, params=TINY)
    by = {r["row"]: r for r in recs}
    assert set(by) == {"autoregressive", "bigram", "masked_diffusion", "gmm"}
    assert "cannot model text" in by["gmm"]["error"]
    for row in ("autoregressive", "bigram", "masked_diffusion"):
        r = by[row]
        assert "error" not in r, r.get("error")
        assert 0 < r["nats_per_token"] < 3.30  # below the uniform 27-way guess, log 27 = 3.30
        s = r["samplers"][0]
        assert s["nfe"] >= 1 and 0 <= s["novelty"] <= 1 and len(s["examples"]) == 12
        assert set(r["infill"]) == {"1", "2", "3"}
    assert by["bigram"]["steps"] == 0 and by["autoregressive"]["steps"] == 40
    assert by["bigram"]["nats_per_token"] < 2.8  # counted bigrams of names: far below uniform
    assert len(by["masked_diffusion"]["samplers"]) > 1  # several unmasking step counts on the first seed
    html = open(f"{out}/report.html", encoding="utf-8").read()
    assert "nats/token" in html and "Infill" in html and "cannot model text" in html
    assert json.load(open(f"{out}/results.json"))["meta"]["kind"] == "text"
    monkeypatch.setattr(text_compare, "_run", lambda *a, **k: pytest.fail("a cached run was run again"))
    again = run_text_compare(words_file, families="bigram", preset="quick", out=out, params={})
    assert again[0]["nats_per_token"] == by["bigram"]["nats_per_token"]  # the cached run, not a new one


def test_cli_compare_on_a_text_file(words_file, tmp_path, capsys, one_thread, monkeypatch):
    import genzoo.compare.text as text_compare

    monkeypatch.setattr(text_compare, "N_SAMPLES", 200)
    monkeypatch.setattr(text_compare, "INFILL_WORDS", {"quick": 20})
    out = str(tmp_path / "c")
    assert main(["compare", "--data", words_file, "--families", "bigram", "--seeds", "1", "--preset", "quick",
                 "--out", out, "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "bigram" in printed and "report.html" in printed


def test_unknown_text_row_is_one_line(words_file, tmp_path, capsys):
    assert main(["compare", "--data", words_file, "--families", "bigramm", "--out", str(tmp_path / "c")]) != 0
    err = capsys.readouterr().err.strip()
    assert "bigramm" in err and len(err.splitlines()) == 1
