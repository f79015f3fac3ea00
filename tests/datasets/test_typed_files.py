"""load_file with typed columns (as_frame=True) and a label column taken out (label=...)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import genzoo as gz
from genzoo.datasets import load_file

CSV = "height,visits,colour,member,species\n1.5,3,red,true,a\n2.25,0,blue,false,b\n0.5,7,red,TRUE,a\n"


def _write(path, text):
    path.write_text(text)
    return path


def test_csv_columns_are_typed(tmp_path):
    df = load_file(_write(tmp_path / "t.csv", CSV), as_frame=True)
    assert list(df.columns) == ["height", "visits", "colour", "member", "species"]
    assert [str(t) for t in df.dtypes[:2]] == ["float64", "int64"] and df["member"].dtype == bool
    assert pd.api.types.is_string_dtype(df["colour"]) and pd.api.types.is_string_dtype(df["species"])
    assert df["colour"].tolist() == ["red", "blue", "red"] and df["member"].tolist() == [True, False, True]
    spec = gz.make("gmm").fit(pd.concat([df] * 4, ignore_index=True)).spec_
    assert spec.kinds == ["continuous", "integer", "categorical", "categorical", "categorical"]


def test_missing_cells_in_typed_columns(tmp_path):
    p = _write(tmp_path / "m.csv", "a,b,c\n1,2.5,x\n,3.5,\n4,,y\n")
    with pytest.raises(ValueError, match=r"2 missing.*|1 missing/NaN value\(s\) in column 'a' \(first at line 3\)"):
        load_file(p, as_frame=True)
    df = load_file(p, as_frame=True, allow_nan=True)
    assert str(df["a"].dtype) == "Int64" and df["a"].isna().tolist() == [False, True, False]
    assert np.isnan(df["b"][2]) and pd.isna(df["c"][1])


def test_label_column_is_taken_out(tmp_path):
    p = _write(tmp_path / "t.csv", CSV)
    X, y = load_file(p, as_frame=True, label="species")
    assert "species" not in X.columns and y.tolist() == ["a", "b", "a"]
    X, cols, y = load_file(_write(tmp_path / "n.csv", "u,v,k\n1,2,0\n3,4,1\n"), return_columns=True, label="k")
    assert X.dtype == np.float64 and X.shape == (2, 2) and cols == ["u", "v"] and y.tolist() == [0, 1]
    with pytest.raises(ValueError, match="no column 'specis'; did you mean 'species'"):
        load_file(p, label="specis")
    with pytest.raises(ValueError, match="column 'colour' is not numeric.*as_frame=True"):
        load_file(p, label="species")  # text columns need the typed frame
    with pytest.raises(ValueError, match="label column 'k' has 1 missing value"):
        load_file(_write(tmp_path / "l.csv", "u,k\n1,0\n2,\n"), label="k")


def test_npy_and_parquet_keep_their_dtypes(tmp_path):
    np.save(tmp_path / "i.npy", np.arange(6).reshape(3, 2))
    df = load_file(tmp_path / "i.npy", as_frame=True)
    assert list(df.columns) == ["x0", "x1"] and (df.dtypes == np.int64).all()
    X, y = load_file(tmp_path / "i.npy", label="x1")
    assert X.shape == (3, 1) and y.tolist() == [1, 3, 5]
    src = pd.DataFrame({"f": [0.5, 1.0], "c": pd.Categorical(["u", "v"]), "i": [1, 2]})
    src.to_parquet(tmp_path / "t.parquet")
    back = load_file(tmp_path / "t.parquet", as_frame=True)
    assert isinstance(back["c"].dtype, pd.CategoricalDtype) and str(back["i"].dtype) == "int64"
