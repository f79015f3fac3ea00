"""Loading user data: .csv, .npy and .parquet files.

By default a file is read as an (n, d) float64 array of numeric columns. ``as_frame=True``
reads typed columns into a pandas DataFrame instead -- whole numbers as integers, other
numbers as floats, ``true``/``false`` as bools, anything else as text (a category for the
models) -- and ``label=COLUMN`` takes one column out as the labels ``y``.

Every problem with a file is one `ValueError` (or `FileNotFoundError`) whose message
names the file and the exact problem -- the column, the line, the count -- so the
command line can print it as is.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

SUPPORTED = (".csv", ".npy", ".parquet")

Locator = Callable[[int], str]  # data row index -> where it is in the file ("line 7", "row 6")


@overload
def load_file(
    path: str | os.PathLike[str], return_columns: Literal[False] = ..., *, allow_nan: bool = ...,
    as_frame: bool = ..., label: None = ...
) -> np.ndarray: ...
@overload
def load_file(
    path: str | os.PathLike[str], return_columns: Literal[True], *, allow_nan: bool = ...,
    as_frame: bool = ..., label: None = ...
) -> tuple[np.ndarray, list[str]]: ...
@overload
def load_file(
    path: str | os.PathLike[str], return_columns: bool = ..., *, allow_nan: bool = ..., as_frame: bool = ...,
    label: str = ...
) -> tuple: ...
def load_file(
    path: str | os.PathLike[str], return_columns: bool = False, *, allow_nan: bool = False,
    as_frame: bool = False, label: str | None = None
):
    """Read a data file into an (n, d) float64 array (or a typed DataFrame), one row per sample.

    Parameters
    ----------
    path : str or path-like
        A ``.csv`` (comma-, tab- or semicolon-separated; an optional header row of
        non-numeric names is detected; ``#`` lines are comments), ``.npy`` (a 2-D
        numeric array) or ``.parquet`` file (numeric columns).
    return_columns : bool
        Also return the column names (header names, parquet names, or ``x0, x1, ...``).
    allow_nan : bool
        Accept missing values (empty CSV cells, NaN) and return them as NaN, e.g. for
        imputation. Infinite values are always an error.
    as_frame : bool
        Return a DataFrame with typed columns: integers (``int64``, or ``Int64`` with missing
        cells), floats, bools and text (``object``; a categorical column for the models).
        Parquet columns keep their stored dtypes; a ``.npy`` array keeps its dtype.
    label : str, optional
        A column to take out as labels: the result is then ``(X, y)`` (``(X, columns, y)``
        with ``return_columns``); ``y`` holds the column's values (numbers or text) and may
        not have missing cells. Headerless files name their columns ``x0, x1, ...``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Unknown extension, empty file, non-numeric column, ragged CSV row, 1-D .npy
        array, NaN / inf values; the message says which and where.
    """
    p = Path(os.fspath(path))
    if not p.exists():
        raise FileNotFoundError(f"data file not found: {p}")
    if p.is_dir():
        raise ValueError(f"{p} is a directory, not a data file")
    ext = p.suffix.lower()
    if ext == ".txt":  # text for the string models: a list of str, one per non-blank line
        from .text import read_text_file

        return read_text_file(p)
    if ext in SUPPORTED and p.stat().st_size == 0:
        raise ValueError(f"{p} is empty (0 bytes)")
    if as_frame or label is not None:
        return _load_typed(p, ext, return_columns, allow_nan, as_frame, label)
    if ext == ".csv":
        X, columns, where = _read_csv(p)
    elif ext == ".npy":
        X, columns, where = _read_npy(p)
    elif ext == ".parquet":
        X, columns, where = _read_parquet(p)
    else:
        raise ValueError(f"unsupported file type {ext or '(none)'!r} for {p}; "
                         f"use one of {', '.join(SUPPORTED)} (or .txt, strings)")
    _check_values(p, X, columns, where, allow_nan)
    X = np.ascontiguousarray(X, dtype=np.float64)
    return (X, columns) if return_columns else X


def _default_names(d: int) -> list[str]:
    return [f"x{j}" for j in range(d)]


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _parse_csv(p: Path) -> tuple[list[list[str]], list[int], list[str], bool, bool]:
    """A CSV's data rows (stripped cells), their file lines, the column names, whether it had a header,
    and whether the header's first name was empty (a pandas index written out)."""
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{p} is not a UTF-8 text CSV file") from None
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
    delimiter = next((d for d in (",", "\t", ";") if d in first), ",")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows: list[list[str]] = []
    lines: list[int] = []
    for row in reader:
        if not any(f.strip() for f in row) or row[0].lstrip().startswith("#"):
            continue  # blank line or comment
        rows.append([f.strip() for f in row])
        lines.append(reader.line_num)
    if not rows:
        raise ValueError(f"{p} is empty: no data rows")
    header = all(not _is_number(f) for f in rows[0] if f)
    unnamed_first = header and not rows[0][0]
    if header:
        columns = [name or f"x{j}" for j, name in enumerate(rows[0])]
        rows, lines = rows[1:], lines[1:]
        if not rows:
            raise ValueError(f"{p} is empty: it has a header row ({', '.join(columns)}) but no data rows")
    else:
        columns = _default_names(len(rows[0]))
    width = len(columns)
    for row, line in zip(rows, lines):
        if len(row) != width:
            raise ValueError(
                f"{p}: line {line} has {len(row)} fields, expected {width} "
                f"(like {'the header' if header else f'line {lines[0]}'})"
            )
    return rows, lines, columns, header, unnamed_first


def _read_csv(p: Path) -> tuple[np.ndarray, list[str], Locator]:
    """Parse a CSV into floats, locating ragged rows and non-numeric cells by file line."""
    rows, lines, columns, header, unnamed_first = _parse_csv(p)
    width = len(columns)
    X = np.empty((len(rows), width))
    for j, name in enumerate(columns):
        cells = [row[j] for row in rows]
        try:
            X[:, j] = [float(c) if c else np.nan for c in cells]
        except ValueError:
            i = next(i for i, c in enumerate(cells) if c and not _is_number(c))
            hint = " (a header row must contain only non-numeric names)" if i == 0 and not header else ""
            raise ValueError(f"{p}: column {name!r} is not numeric: line {lines[i]} has {cells[i]!r}{hint}") from None
    if unnamed_first and width > 1 and np.array_equal(X[:, 0], np.arange(len(X))):
        raise ValueError(
            f"{p}: the first column has no name and holds 0, 1, 2, ..., which looks like a pandas index; "
            "write the file with DataFrame.to_csv(..., index=False)"
        )
    return X, columns, lambda i: f"line {lines[i]}"


def _read_npy(p: Path, keep_dtype: bool = False) -> tuple[np.ndarray, list[str], Locator]:
    with open(p, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise ValueError(f"{p} is not a .npy file (no NumPy header); save it with numpy.save")
    try:
        A = np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ValueError(f"{p} holds Python objects (dtype object); save a numeric array instead") from None
        raise ValueError(f"{p} is not a readable .npy file: {exc}") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{p} is not a readable .npy file: {exc}") from None
    if not isinstance(A, np.ndarray):
        raise ValueError(f"{p} does not hold a single array")
    if A.dtype.kind not in "biuf":
        raise ValueError(f"{p} has non-numeric dtype {A.dtype}; only integer, float or bool arrays are supported")
    if A.ndim == 1:
        raise ValueError(
            f"{p} holds a 1-D array of shape {A.shape}; data must be 2-D (n_samples, n_features): "
            "reshape it, e.g. X.reshape(-1, 1) for one feature"
        )
    if A.ndim != 2:
        raise ValueError(f"{p} holds an array of shape {A.shape}; data must be 2-D (n_samples, n_features)")
    if A.size == 0:
        raise ValueError(f"{p} is empty: array of shape {A.shape}")
    return (A if keep_dtype else A.astype(np.float64)), _default_names(A.shape[1]), lambda i: f"row {i}"


def _parquet_frame(p: Path):
    import pandas as pd  # lazy: only parquet needs pandas / pyarrow

    try:
        df = pd.read_parquet(p)
    except ImportError as exc:
        raise ValueError(f"reading {p} needs pyarrow: {exc}") from None
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        raise ValueError(f"{p} is not a readable parquet file: {exc}") from None
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise ValueError(f"{p} is empty: {df.shape[0]} rows, {df.shape[1]} columns")
    return df


def _read_parquet(p: Path) -> tuple[np.ndarray, list[str], Locator]:
    import pandas as pd

    df = _parquet_frame(p)
    columns = [str(c) for c in df.columns]
    for name, dtype in zip(columns, df.dtypes):
        if not pd.api.types.is_numeric_dtype(dtype):
            raise ValueError(f"{p}: column {name!r} is not numeric (dtype {dtype})")
    X = df.to_numpy(dtype=np.float64, na_value=np.nan)
    return X, columns, lambda i: f"row {i}"


def _check_values(p: Path, X: np.ndarray, columns: list[str], where: Locator, allow_nan: bool) -> None:
    """Raise a ValueError saying how many NaN / inf values there are and where the first is."""
    nan = np.isnan(X)
    inf = np.isinf(X)
    bad = inf | (nan & (not allow_nan))
    if not bad.any():
        return
    i, j = np.argwhere(bad)[0]
    counts = []
    if nan.any() and not allow_nan:
        counts.append(f"{int(nan.sum())} missing/NaN value(s)")
    if inf.any():
        counts.append(f"{int(inf.sum())} infinite value(s)")
    raise ValueError(
        f"{p} contains {' and '.join(counts)} (first at {where(i)}, column {columns[j]!r}); "
        "remove or fill them" + ("" if allow_nan else ", or pass allow_nan=True to keep NaN for imputation")
    )


# ----------------------------------------------------------------------------- typed columns
_INT = re.compile(r"^[+-]?\d+$")


def _typed_csv_column(cells: list[str]) -> Any:
    """One CSV column's cells as typed values: int64 (Int64 with missing cells), float64, bool or text."""
    import pandas as pd

    present = [c for c in cells if c]
    if present and all(_is_number(c) for c in present):
        if all(_INT.match(c) for c in present):
            if len(present) == len(cells):
                return np.array([int(c) for c in cells], dtype=np.int64)
            return pd.array([int(c) if c else None for c in cells], dtype="Int64")
        return np.array([float(c) if c else np.nan for c in cells])
    if present and all(c.lower() in ("true", "false") for c in present) and len(present) == len(cells):
        return np.array([c.lower() == "true" for c in cells])
    return np.array([c if c else None for c in cells], dtype=object)


def _load_typed(p: Path, ext: str, return_columns: bool, allow_nan: bool, as_frame: bool, label: str | None):
    """``load_file`` with typed columns (a DataFrame) and / or a label column taken out."""
    import pandas as pd

    if ext == ".csv":
        rows, lines, columns, _, _ = _parse_csv(p)
        df = pd.DataFrame({c: _typed_csv_column([r[j] for r in rows]) for j, c in enumerate(columns)})
        where: Locator = lambda i: f"line {lines[i]}"  # noqa: E731
    elif ext == ".npy":
        A, columns, where = _read_npy(p, keep_dtype=True)
        df = pd.DataFrame(A, columns=columns)
    elif ext == ".parquet":
        df = _parquet_frame(p)
        df.columns = [str(c) for c in df.columns]
        where = lambda i: f"row {i}"  # noqa: E731
    else:
        raise ValueError(f"unsupported file type {ext or '(none)'!r} for {p}; use one of {', '.join(SUPPORTED)}")
    columns = [str(c) for c in df.columns]
    y = None
    if label is not None:
        if label not in columns:
            from genzoo.errors import did_you_mean

            raise ValueError(f"{p} has no column {label!r}{did_you_mean(label, columns) or ';'} its columns are "
                             f"{', '.join(columns[:12])}{', ...' if len(columns) > 12 else ''}")
        if df.shape[1] == 1:
            raise ValueError(f"{p}: the label column {label!r} is its only column; nothing is left to model")
        lab = df[label]
        if lab.isna().any():
            i = int(np.flatnonzero(lab.isna().to_numpy())[0])
            raise ValueError(f"{p}: the label column {label!r} has {int(lab.isna().sum())} missing value(s) "
                             f"(first at {where(i)})")
        y = lab.to_numpy()
        df = df.drop(columns=[label])
        columns = [c for c in columns if c != label]
    for c in columns:
        col = df[c]
        num = pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)
        if num and np.isinf(col.to_numpy(dtype=np.float64, na_value=np.nan)).any():
            i = int(np.flatnonzero(np.isinf(col.to_numpy(dtype=np.float64, na_value=np.nan)))[0])
            raise ValueError(f"{p} contains infinite value(s) (first at {where(i)}, column {c!r}); remove or fill them")
        if not allow_nan and col.isna().any():
            i = int(np.flatnonzero(col.isna().to_numpy())[0])
            raise ValueError(f"{p} contains {int(col.isna().sum())} missing/NaN value(s) in column {c!r} (first at "
                             f"{where(i)}); remove or fill them, or pass allow_nan=True to keep them for imputation")
    if as_frame:
        X = df
    else:
        from .spec import frame_to_array

        try:
            X = frame_to_array(df, str(p))
        except ValueError as e:
            raise ValueError(f"{e}; read it with as_frame=True for typed columns") from None
    out = (X, columns) if return_columns else (X,)
    return (*out, y) if y is not None else (out if return_columns else X)
