"""Checkpoints: ``model.genzoo`` (zip of JSON + safetensors), format 2 with the data spec, format 1
still read, devices chosen at load time, and clean errors when the file cannot be written."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

import genzoo as gz
from genzoo.base import FORMAT_VERSION


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return gz.datasets.get("ring").sample(600, random_state=0)


@pytest.fixture(scope="module")
def net(X):
    df = pd.DataFrame(X, columns=["u", "v"])
    return gz.make("autoregressive", random_state=0, max_steps=30, device="cpu").fit(df)


def _meta(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["arrays.safetensors", "meta.json"]
        return json.loads(zf.read("meta.json"))


def test_format_2_records_spec_and_devices(net, tmp_path):
    path = tmp_path / "model.genzoo"
    net.save(path)
    meta = _meta(path)
    assert meta["format_version"] == FORMAT_VERSION == 2 and meta["genzoo_version"] == gz.__version__
    assert meta["state"]["spec_"]["columns"] == [{"name": "u", "kind": "continuous"},
                                                 {"name": "v", "kind": "continuous"}]
    assert meta["state"]["fit_device_"] == meta["state"]["device_"] == "cpu"
    back = gz.load(path)
    assert back.feature_names_in_.tolist() == ["u", "v"] and back.fit_device_ == "cpu"
    assert back.sample(4, random_state=1).columns.tolist() == ["u", "v"]


def _as_format_1(src, dst) -> None:
    """Rewrite a checkpoint the way format 1 wrote it: no data spec, no training device, version 1."""
    with zipfile.ZipFile(src) as zf:
        meta, raw = json.loads(zf.read("meta.json")), zf.read("arrays.safetensors")
    meta["format_version"] = 1
    for k in ("spec_", "fit_device_"):
        meta["state"].pop(k)
    with zipfile.ZipFile(dst, "w") as zf:
        zf.writestr("meta.json", json.dumps(meta))
        zf.writestr("arrays.safetensors", raw)


def test_format_1_files_still_load_whatever_their_name(net, X, tmp_path):
    net.save(tmp_path / "new.genzoo")
    old = tmp_path / "old-model.gz"
    _as_format_1(tmp_path / "new.genzoo", old)
    m = gz.load(old)
    assert not hasattr(m, "feature_names_in_") and m._spec().names == ["x0", "x1"]
    assert m.fit_device_ == "cpu"
    np.testing.assert_allclose(m.score_samples(X[:20]), net.score_samples(X[:20]), rtol=1e-6)
    assert isinstance(m.sample(3, random_state=0), np.ndarray)


def test_a_newer_format_is_refused(net, tmp_path):
    path = tmp_path / "m.genzoo"
    net.save(path)
    with zipfile.ZipFile(path) as zf:
        meta, raw = json.loads(zf.read("meta.json")), zf.read("arrays.safetensors")
    meta["format_version"] = FORMAT_VERSION + 1
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("meta.json", json.dumps(meta))
        zf.writestr("arrays.safetensors", raw)
    with pytest.raises(ValueError, match="newer genzoo"):
        gz.load(path)


def test_load_and_to_choose_the_device(net, X, tmp_path):
    path = tmp_path / "m.genzoo"
    net.save(path)
    m = gz.load(path, device="cpu")
    assert m.device_ == "cpu" and next(m.module_.parameters()).device.type == "cpu"
    lp = m.score_samples(X[:20])
    assert m.to("cpu") is m and m.device_ == "cpu"
    np.testing.assert_allclose(m.score_samples(X[:20]), lp, rtol=1e-6)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            gz.load(path, device="cuda")
        with pytest.raises(ValueError, match="CUDA is not available"):
            m.to("cuda")
    with pytest.raises(ValueError, match="not a torch device"):
        m.to("gpu please")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_to_cuda_and_back(net, X, tmp_path):
    lp = net.score_samples(X[:50])
    m = gz.load(_saved(net, tmp_path), device="cuda")
    assert next(m.module_.parameters()).device.type == "cuda" and m.fit_device_ == "cpu"
    np.testing.assert_allclose(m.score_samples(X[:50]), lp, rtol=1e-3, atol=1e-3)
    m.to("cpu")
    assert next(m.module_.parameters()).device.type == "cpu" and m.device_ == "cpu"


def _saved(model, tmp_path):
    path = tmp_path / "m.genzoo"
    model.save(path)
    return path


def test_unwritable_path_names_the_file_not_a_temporary(net, tmp_path):
    target = tmp_path / "no-such-dir" / "m.genzoo"
    with pytest.raises(OSError) as e:
        net.save(target)
    assert str(target) in str(e.value) and ".part" not in str(e.value)
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())


def test_a_failed_save_keeps_the_old_file(net, tmp_path, monkeypatch):
    path = tmp_path / "m.genzoo"
    net.save(path)
    before = path.read_bytes()

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="No space left"):
        net.save(path)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["m.genzoo"]
