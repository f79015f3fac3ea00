"""What the image families share (not a family): integer images in, integer images out.

``latent_diffusion``, ``vq_autoregressive`` and ``vq_masked`` derive from :class:`ImageFamily`.
Its public methods take integer image arrays, ``(n, H, W)`` (one channel) or ``(n, C, H, W)``,
with levels ``0 .. L - 1`` (``L`` = the largest training value + 1, at least 2; 17 for the 8x8
digits); ``fit`` records ``image_shape_`` (what the user passed, without ``n``) and
``n_levels_``. ``sample`` returns int64 images of that shape; ``impute`` takes float images with
NaN at missing pixels and returns them completed (observed pixels unchanged, integers). The
family supplies four hooks, all on ``(n, C, H, W)`` int64 tensors:

- ``_img_fit(X, labels, seed)``; labels: class indices or None;
- ``_img_sample(n, labels, seed, guidance, **opts) -> (n, C, H, W)``; labels None = the null label;
- ``_img_impute(X, miss, seed, **opts) -> (n, C, H, W)`` (X holds 0 at missing pixels);
- ``_img_build() -> nn.Module`` (the network, for loading a checkpoint).

Labels and guidance follow genzoo's one convention (``genzoo.objectives.guidance``): a model
fitted with labels and asked for none samples its marginal (a class from the training
frequencies, then the image); ``guidance=0`` is the unconditional (null-label) model, ``1`` the
plain conditional one, ``> 1`` sharper.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from genzoo.base import GenerativeModel, check_n_samples, resolve_device, seed_from
from genzoo.errors import UnsupportedError


def check_images(X, name: str = "X", *, allow_nan: bool = False, shape: tuple | None = None,
                 levels: int | None = None) -> np.ndarray:
    """``X`` as a float64 array (n, C, H, W) of integer levels (NaN where allowed), or a ValueError."""
    if X is None:
        raise ValueError(f"{name} is None; expected integer images of shape (n, H, W) or (n, C, H, W)")
    try:
        A = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array of images; got {type(X).__name__}") from None
    if A.ndim not in (3, 4):
        raise ValueError(f"{name} must be images of shape (n, H, W) or (n, C, H, W); got shape {A.shape}")
    if shape is not None and A.shape[1:] != tuple(shape):
        raise ValueError(f"{name} has images of shape {A.shape[1:]}; the model was fitted on {tuple(shape)}")
    if len(A) == 0:
        raise ValueError(f"{name} holds no images")
    bad = np.isinf(A) if allow_nan else ~np.isfinite(A)
    if bad.any():
        raise ValueError(f"{name} contains {'inf' if allow_nan else 'NaN or inf'} at index "
                         f"{tuple(int(i) for i in np.argwhere(bad)[0])}")
    fin = A[np.isfinite(A)]
    if (fin != np.round(fin)).any() or (fin < 0).any():
        bad_value = fin[(fin != np.round(fin)) | (fin < 0)][0]
        raise ValueError(f"{name} must hold integer levels >= 0 (pixel values); found {bad_value:g}")
    if levels is not None and len(fin) and fin.max() >= levels:
        raise ValueError(f"{name} has level {fin.max():g}; the model knows levels 0..{levels - 1}")
    return A if A.ndim == 4 else A[:, None]


class ImageFamily(GenerativeModel):
    """Base of the image families: integer images of one shape (see the module docstring)."""

    _capabilities: ClassVar[frozenset[str]] = frozenset({"sample", "impute", "conditional"})
    _has_null_label: ClassVar[bool] = True
    #: the data this family models: integer images only (generic table tests skip it)
    data_kind: ClassVar[str] = "image"

    # ------------------------------------------------------------------ public API
    def fit(self, X, y=None, *, progress=None):
        """Learn p(image) (or p(image | y)) from integer images ``X`` (n, H, W) or (n, C, H, W); returns self."""
        from genzoo.params import validate_params

        validate_params(self)
        A = check_images(X)
        if len(A) < 2:
            raise ValueError(f"X holds {len(A)} image; need at least 2")
        labels = self._encode_fit_labels(y, len(A))
        self.image_shape_ = tuple(int(s) for s in np.shape(X)[1:])
        self.n_levels_ = max(2, int(A.max()) + 1)
        self.n_features_in_ = self.dim_ = int(np.prod(self.image_shape_))
        self.device_ = self.fit_device_ = str(resolve_device(getattr(self, "device", "cpu")))
        self.history_ = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}
        self.phases_ = []
        self.last_nfe_ = None
        self._progress = progress
        try:
            self._img_fit(self._to_tensor(A), labels, seed_from(getattr(self, "random_state", None)))
        finally:
            del self._progress
        self.module_.eval()
        return self

    def sample(self, n_samples: int, y=None, random_state=None, nfe: int | None = None, guidance: float | None = None,
               **opts) -> np.ndarray:
        """``n_samples`` integer images (n, *image_shape_); ``y``: a label or one per image; ``guidance``
        (default: the ``guidance`` hyperparameter) as in ``genzoo.objectives.guidance``."""
        self._check_fitted()
        n = check_n_samples(n_samples)
        labels = self._encode_sample_labels(y, n)
        seed = seed_from(random_state)
        if labels is None and self.n_classes_:
            labels = np.random.default_rng(seed).choice(self.n_classes_, size=n, p=self.class_prior_)
        g = float(self.guidance if guidance is None else guidance)
        if g < 0:
            raise ValueError(f"guidance must be >= 0; got {g}")
        if nfe is not None:
            opts = self._img_nfe_options(int(nfe), opts)
        with torch.no_grad():
            out = self._img_sample(n, labels, seed, g, **opts)
        if nfe is not None and self.last_nfe_ > nfe:
            raise ValueError(f"{self.family} spends {self.last_nfe_} network evaluations per image here; nfe={nfe} "
                             "is below that")
        return self._to_user(out)

    def _img_nfe_options(self, nfe: int, opts: dict) -> dict:
        return opts

    def impute(self, X, random_state=None, **opts) -> np.ndarray:
        """Images with NaN at missing pixels -> completed integer images (float64; observed pixels
        unchanged). Drawn from the unconditional model given the observed pixels (see the family)."""
        self._check_fitted()
        A = check_images(X, allow_nan=True, shape=self.image_shape_, levels=self.n_levels_)
        miss = np.isnan(A)
        out = A.copy()
        rows = np.flatnonzero(miss.reshape(len(A), -1).any(1))
        if len(rows):
            seed = seed_from(random_state)
            with torch.no_grad():
                filled = self._img_impute(self._to_tensor(np.where(miss[rows], 0.0, A[rows])),
                                          torch.as_tensor(miss[rows], device=self._device()), seed, **opts)
            out[rows] = np.where(miss[rows], filled.cpu().numpy().astype(np.float64), A[rows])
        return out.reshape((len(A), *self.image_shape_))

    def score_samples(self, X, y=None, **opts):
        if "log_prob" not in self.capabilities:
            raise UnsupportedError(f"{self.family} has no likelihood (likelihood_kind='none')")
        return super().score_samples(X, y=y, **opts)

    def sample_path(self, *args, **kwargs):
        raise UnsupportedError(f"{self.family} has no sample_path")

    # ------------------------------------------------------------------ helpers
    def _device(self) -> torch.device:
        return torch.device(getattr(self, "device_", "cpu"))

    def _to_tensor(self, A: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(A, dtype=torch.long, device=self._device())

    def _to_user(self, out: torch.Tensor) -> np.ndarray:
        a = out.detach().cpu().numpy().astype(np.int64).clip(0, self.n_levels_ - 1)
        return a.reshape((len(a), *self.image_shape_))

    @property
    def _shape4(self) -> tuple[int, int, int]:
        s = self.image_shape_
        return (1, *s) if len(s) == 2 else tuple(s)

    def _label_tensor(self, labels, n: int) -> torch.Tensor:
        """Class indices (n,) as a tensor; None -> the null label ``n_classes_``."""
        if labels is None:
            return torch.full((n,), int(self.n_classes_), dtype=torch.long, device=self._device())
        return torch.as_tensor(np.asarray(labels), dtype=torch.long, device=self._device())

    def _log(self, step: int, loss: float, phase: str) -> None:
        self.history_["step"].append(len(self.history_["step"]) + 1)
        self.history_["train_loss"].append(float(loss))
        if getattr(self, "verbose", 0) and step % 500 == 0:
            print(f"{self.family} {phase}: step {step} loss {loss:.3f}", flush=True)

    # ------------------------------------------------------------------ checkpoint
    def _get_meta(self) -> dict:
        meta = super()._get_meta()
        meta["image_shape_"] = list(self.image_shape_)
        meta["n_levels_"] = int(self.n_levels_)
        meta["last_nfe_"] = self.last_nfe_
        meta.update({k: getattr(self, k) for k in self._extra_meta if hasattr(self, k)})
        return meta

    _extra_meta: ClassVar[tuple[str, ...]] = ()

    def _set_meta(self, meta: dict) -> None:
        meta = dict(meta)
        self.image_shape_ = tuple(meta.pop("image_shape_"))
        super()._set_meta(meta)
        dev = meta.get("device_", "cpu")
        self.device_ = dev if (dev == "cpu" or torch.cuda.is_available()) else "cpu"

    def _get_arrays(self) -> dict[str, np.ndarray]:
        return {f"module.{k}": v.detach().cpu().numpy() for k, v in self.module_.state_dict().items()}

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.module_ = self._img_build().to(self._device())
        sd = {k[len("module."):]: torch.as_tensor(v, device="cpu")
              for k, v in arrays.items() if k.startswith("module.")}
        self.module_.load_state_dict(sd, strict=True)
        self.module_.eval()

    # ------------------------------------------------------------------ hooks
    def _img_fit(self, X: torch.Tensor, labels: np.ndarray | None, seed: int) -> None:
        raise NotImplementedError

    def _img_sample(self, n: int, labels: np.ndarray | None, seed: int, guidance: float, **opts) -> torch.Tensor:
        raise NotImplementedError

    def _img_impute(self, X: torch.Tensor, miss: torch.Tensor, seed: int, **opts) -> torch.Tensor:
        raise NotImplementedError

    def _img_build(self) -> torch.nn.Module:
        raise NotImplementedError


def cosine_lr(opt: torch.optim.Optimizer, steps: int, warmup: int = 100):
    """Linear warm-up then cosine decay to 2% of the learning rate."""
    import math

    def f(i: int) -> float:
        if i < warmup:
            return (i + 1) / warmup
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, (i - warmup) / max(1, steps - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


__all__ = ["ImageFamily", "check_images", "cosine_lr"]
