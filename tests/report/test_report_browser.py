"""The report in a real browser: loads without console errors, every figure decodes, tables are whole."""

from __future__ import annotations

import os
import shutil

import pytest

from genzoo.compare import run_compare

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    run_compare(data="gaussians8", families="gmm,kde", seeds=2, preset="quick", out=str(out), verbose=False)
    return out / "report.html"


def test_report_is_self_contained(report):
    html = report.read_text()
    assert "https://" not in html and "http://" not in html
    assert html.count("<img") >= 5
    for name in ("metrics", "capabilities", "rankings"):
        assert f'id="{name}"' in html


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium and chromedriver are not installed "
                    "(apt-get install chromium chromium-driver); .ci/run installs them")
def test_report_in_headless_chromium(report):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.get("file://" + os.path.abspath(report))
        assert driver.execute_script("return document.readyState") == "complete"
        n_imgs = driver.execute_script("return document.images.length")
        broken = driver.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length")
        assert n_imgs >= 5 and broken == 0, f"{broken} of {n_imgs} figures did not decode"
        for table in ("metrics", "capabilities"):
            fams = driver.execute_script(
                f"return Array.from(document.querySelectorAll('#{table} tr[data-family]')).map(r => r.dataset.family)")
            assert fams == ["gmm", "kde"], f"{table} rows: {fams}"
        rows = driver.execute_script("return document.querySelectorAll('#rankings tr').length")
        assert rows == 6
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
