"""load_file: round trips for every format, and one clear error per kind of bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genzoo.datasets import load_file

DATA = np.array([[0.5, -1.25, 3.0], [1e-3, 2.0, -7.5], [4.0, 0.0, 1.5]])


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _csv_rows(X: np.ndarray, sep: str = ",") -> str:
    return "".join(sep.join(repr(float(v)) for v in row) + "\n" for row in X)


def test_csv_with_header(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", "x,y,z\n" + _csv_rows(DATA))
    X, cols = load_file(p, return_columns=True)
    np.testing.assert_array_equal(X, DATA)
    assert X.dtype == np.float64 and cols == ["x", "y", "z"]


def test_csv_without_header(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", _csv_rows(DATA))
    X, cols = load_file(str(p), return_columns=True)
    np.testing.assert_array_equal(X, DATA)
    assert cols == ["x0", "x1", "x2"]
    np.testing.assert_array_equal(load_file(p), DATA)


def test_csv_tabs_comments_blank_lines(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.CSV", "# exported\n\na\tb\tc\n" + _csv_rows(DATA, "\t") + "\n\n")
    X, cols = load_file(p, return_columns=True)
    np.testing.assert_array_equal(X, DATA)
    assert cols == ["a", "b", "c"]


def test_npy_round_trip(tmp_path: Path) -> None:
    for arr in (DATA, DATA.astype(np.float32), np.arange(6).reshape(3, 2)):
        np.save(tmp_path / "d.npy", arr)
        X, cols = load_file(tmp_path / "d.npy", return_columns=True)
        assert X.dtype == np.float64 and X.shape == arr.shape
        np.testing.assert_array_equal(X, arr.astype(np.float64))
        assert cols == [f"x{j}" for j in range(arr.shape[1])]


def test_parquet_round_trip(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({"a": DATA[:, 0], "b": DATA[:, 1], "n": [1, 2, 3]})
    df.to_parquet(tmp_path / "d.parquet")
    X, cols = load_file(tmp_path / "d.parquet", return_columns=True)
    assert cols == ["a", "b", "n"]
    np.testing.assert_array_equal(X, np.column_stack([DATA[:, :2], [1, 2, 3]]))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_file(tmp_path / "nope.csv")


def test_unknown_extension(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.dat", _csv_rows(DATA))
    with pytest.raises(ValueError, match=r"unsupported file type '\.dat'.*\.csv, \.npy, \.parquet"):
        load_file(p)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("\n\n# only a comment\n", "empty: no data rows"),
        ("x,y\n", "header row .* but no data rows"),
        ("x,y\n1,2\n3,4,5\n", "line 3 has 3 fields, expected 2"),
        ("x,y\n1,2\n3\n", "line 3 has 1 fields, expected 2"),
        ("x,colour\n1,red\n2,blue\n", "column 'colour' is not numeric: line 2 has 'red'"),
        ("1,2\n3,oops\n", "column 'x1' is not numeric: line 2 has 'oops'"),
        ("x,y\n1,2\nnan,4\n5,nan\n", r"2 missing/NaN value\(s\) \(first at line 3, column 'x'\)"),
        ("x,y\n1,\n3,4\n", r"1 missing/NaN value\(s\) \(first at line 2, column 'y'\)"),
        ("x,y\n1,2\n3,inf\n", r"1 infinite value\(s\) \(first at line 3, column 'y'\)"),
        (",x,y\n0,1.5,2\n1,3.5,4\n", "looks like a pandas index.*index=False"),
    ],
)
def test_bad_csv(tmp_path: Path, text: str, match: str) -> None:
    p = _write(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError, match=match) as info:
        load_file(p)
    assert "bad.csv" in str(info.value) and "\n" not in str(info.value)


def test_allow_nan_keeps_missing_values(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.csv", "x,y\n1,\nnan,4\n")
    X = load_file(p, allow_nan=True)
    assert np.isnan(X[0, 1]) and np.isnan(X[1, 0]) and X[1, 1] == 4
    with pytest.raises(ValueError, match="infinite"):
        load_file(_write(tmp_path / "e.csv", "x,y\n1,\n-inf,4\n"), allow_nan=True)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.arange(5.0), r"1-D array of shape \(5,\).*reshape"),
        (np.zeros((2, 2, 2)), r"shape \(2, 2, 2\).*2-D"),
        (np.zeros((0, 3)), "empty"),
        (np.array([[1.0, np.inf]]), r"1 infinite value\(s\) \(first at row 0, column 'x1'\)"),
        (np.array([["a", "b"]]), "non-numeric dtype"),
        (np.array([[1, None]], dtype=object), "Python objects"),
    ],
)
def test_bad_npy(tmp_path: Path, array: np.ndarray, match: str) -> None:
    np.save(tmp_path / "bad.npy", array, allow_pickle=True)
    with pytest.raises(ValueError, match=match):
        load_file(tmp_path / "bad.npy")


def test_not_really_npy(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a .npy file"):
        load_file(_write(tmp_path / "bad.npy", "1,2\n"))
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_file(tmp_path / "empty.npy")


def test_bad_parquet(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.DataFrame({"a": [1.0, 2.0], "name": ["p", "q"]}).to_parquet(tmp_path / "s.parquet")
    with pytest.raises(ValueError, match="column 'name' is not numeric"):
        load_file(tmp_path / "s.parquet")
    pd.DataFrame({"a": [1.0, np.nan]}).to_parquet(tmp_path / "n.parquet")
    with pytest.raises(ValueError, match=r"1 missing/NaN value\(s\) \(first at row 1, column 'a'\)"):
        load_file(tmp_path / "n.parquet")
    pd.DataFrame({"a": []}, dtype=float).to_parquet(tmp_path / "e.parquet")
    with pytest.raises(ValueError, match="empty"):
        load_file(tmp_path / "e.parquet")
    _write(tmp_path / "junk.parquet", "not parquet")
    with pytest.raises(ValueError, match="not a readable parquet file"):
        load_file(tmp_path / "junk.parquet")
