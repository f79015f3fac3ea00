"""scikit-learn's bundled tables as real data without a known density: ``wine``, ``breast_cancer``,
``diabetes`` (read from the copies shipped inside scikit-learn; nothing is downloaded).

A :class:`TableDataset` hands out its rows (all, or a random subset), with scikit-learn's column
names and, for the classification tables, class labels. It has no ``log_prob``: metrics that need
the true density do not apply; sample metrics against held-out rows do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genzoo.errors import UnsupportedError


class TableDataset:
    """One bundled table: ``dim`` numeric columns named ``columns``; ``n_classes`` labels or None."""

    kind = "table"

    def __init__(self, name: str, loader: str, n_classes: int | None, description: str, **options) -> None:
        self.name, self._loader, self.n_classes, self._description = name, loader, n_classes, description
        self._options = options
        self._cache: tuple[np.ndarray, np.ndarray, list[str]] | None = None

    def _load(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        if self._cache is None:
            import sklearn.datasets

            b = getattr(sklearn.datasets, self._loader)(**self._options)
            names = [str(c) for c in b.feature_names]
            self._cache = (np.asarray(b.data, dtype=np.float64), np.asarray(b.target), names)
        return self._cache

    @property
    def columns(self) -> list[str]:
        return list(self._load()[2])

    @property
    def dim(self) -> int:
        return len(self.columns)

    @property
    def n_rows(self) -> int:
        return len(self._load()[0])

    @property
    def description(self) -> str:
        return f"{self._description}; {self.n_rows} rows x {self.dim} columns (scikit-learn's bundled copy)"

    def load(self, as_frame: bool = False, return_labels: bool = False) -> Any:
        """Every row: an (n, dim) float array, or a DataFrame with scikit-learn's column names;
        with ``return_labels`` also the class labels (classification tables only)."""
        X, y, cols = self._load()
        if return_labels and self.n_classes is None:
            raise ValueError(f"dataset {self.name!r} has no class labels (it is a regression table)")
        X = X.copy()
        if as_frame:
            import pandas as pd

            X = pd.DataFrame(X, columns=cols)
        return (X, y.astype(np.int64)) if return_labels else X

    def sample(self, n: int, random_state=None, return_labels: bool = False, as_frame: bool = False) -> Any:
        """``n`` distinct rows in random order (a table cannot make new rows: at most ``n_rows``)."""
        from .base import check_n

        n = check_n(n)
        if n > self.n_rows:
            raise ValueError(f"dataset {self.name!r} has {self.n_rows} rows; cannot draw {n} distinct rows")
        if return_labels and self.n_classes is None:
            raise ValueError(f"dataset {self.name!r} has no class labels (it is a regression table)")
        idx = np.random.default_rng(random_state).permutation(self.n_rows)[:n]
        X, y, _ = self._load()
        X = self.load(as_frame=True).iloc[idx].reset_index(drop=True) if as_frame else X[idx].copy()
        return (X, y[idx].astype(np.int64)) if return_labels else X

    def log_prob(self, X: Any) -> np.ndarray:
        raise UnsupportedError(f"dataset {self.name!r} is real data: its density is not known")

    def entropy(self) -> float:
        raise UnsupportedError(f"dataset {self.name!r} is real data: its entropy is not known")

    def __repr__(self) -> str:
        return f"TableDataset({self.name!r})"


WINE = TableDataset("wine", "load_wine", 3, "wine: 13 chemical measurements of Italian wines; label = cultivar (3)")
BREAST_CANCER = TableDataset("breast_cancer", "load_breast_cancer", 2,
                             "breast_cancer: 30 features of cell nuclei; label = malignant (0) / benign (1)")
DIABETES = TableDataset("diabetes", "load_diabetes", None,
                        "diabetes: age, sex, BMI, blood pressure and 6 serum measurements (unscaled); no labels",
                        scaled=False)
TABLES = {t.name: t for t in (WINE, BREAST_CANCER, DIABETES)}

__all__ = ["TableDataset", "TABLES", "WINE", "BREAST_CANCER", "DIABETES"]
