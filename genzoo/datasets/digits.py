"""Image data: scikit-learn's 8x8 handwritten digits (1,797 images, 17 grey levels, 10 classes).

>>> import genzoo as gz
>>> ds = gz.datasets.get("digits")
>>> X, y = ds.split("train")
>>> X.shape, X.dtype, int(X.max()), len(ds.split("val")[0]), len(ds.split("test")[0])
((1000, 8, 8), dtype('int64'), 16, 350, 447)

It ships with scikit-learn (no download). The split is the common teaching one, in file order:
train = the first 1,000 images, validation = the next 350, test = the last 447.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np


class ImageDataset:
    """A built-in labelled image set with a fixed train / validation / test split (by file order).

    ``images`` (n, H, W) int64 levels ``0 .. n_levels - 1``; ``labels`` (n,) int64;
    ``split(part) -> (X, y)``; ``sample(n)`` draws images (and labels) uniformly from all of them.
    """

    kind = "image"

    def __init__(self, name: str, loader, *, n_train: int, n_val: int, n_levels: int, description: str = ""):
        self.name, self._loader = name, loader
        self.n_train, self.n_val, self.n_levels, self.description = n_train, n_val, n_levels, description

    @cached_property
    def _data(self) -> tuple[np.ndarray, np.ndarray]:
        X, y = self._loader()
        return np.asarray(X, dtype=np.int64), np.asarray(y, dtype=np.int64)

    @property
    def images(self) -> np.ndarray:
        return self._data[0].copy()

    @property
    def labels(self) -> np.ndarray:
        return self._data[1].copy()

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self._data[0].shape[1:]

    def __len__(self) -> int:
        return len(self._data[0])

    def split(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)`` of the ``'train'``, ``'val'`` or ``'test'`` part (see the class for the split)."""
        a, b = self.n_train, self.n_train + self.n_val
        parts = {"train": slice(0, a), "val": slice(a, b), "test": slice(b, None)}
        if part not in parts:
            raise ValueError(f"unknown split {part!r}; choose from 'train', 'val', 'test'")
        X, y = self._data
        return X[parts[part]].copy(), y[parts[part]].copy()

    def sample(self, n: int, random_state=None, return_labels: bool = False):
        """``n`` images drawn uniformly with replacement (and their labels with ``return_labels``)."""
        from .base import check_n

        idx = np.random.default_rng(random_state).integers(0, len(self), size=check_n(n))
        X, y = self._data
        return (X[idx].copy(), y[idx].copy()) if return_labels else X[idx].copy()

    def __repr__(self) -> str:
        return f"ImageDataset({self.name!r}, {len(self)} images of {self.image_shape})"


def _load_digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target


DIGITS = ImageDataset("digits", _load_digits, n_train=1000, n_val=350, n_levels=17,
                      description="scikit-learn's 8x8 handwritten digits (UCI), 17 grey levels, 10 classes")

#: the built-in image sets by name (the registry adds these to ``get`` / ``names``)
IMAGES: dict[str, ImageDataset] = {DIGITS.name: DIGITS}

__all__ = ["ImageDataset", "DIGITS", "IMAGES"]
