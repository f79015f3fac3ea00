"""The estimator template every family fills in.

A family is a network (``nn.Module``, no loss inside), an objective (``_loss``, a few
lines) and a sampler (``_sample_std``). Everything else -- input checks, hyperparameter
validation, standardisation and its Jacobian, labels and the label-free marginal,
determinism, imputation, save/load -- lives here once; the training loop (explicit phases)
and the weight average live in ``genzoo.training``.

Internally every family works on standardised data ``z = (x - loc_) / scale_``; densities
are mapped back with ``log p(x) = log p(z) - sum(log scale_)`` so users get nats in
their own units.

Typed columns (``genzoo.datasets.spec``) are handled here once, so every array family gets
them: constant columns are removed before the family sees the data (``dim_`` columns remain)
and put back on output; integer and categorical columns (categories as level codes
``0 .. L-1``) are dequantised, ``x + u`` with ``u ~ U[0, 1)`` (fresh noise every training
step for the gradient-trained families), and samples are floored and clipped back to valid
values. ``score_samples`` then returns the dequantisation bound on ``log P(X = x)``:
``E_u log p(x + u) <= log int_[0,1)^k p(x + u) du <= log P(X = x)`` (Jensen; Theis et al.
2016), the expectation taken over a fixed scrambled Sobol rule (16 points, fewer on wide rows),
so a family whose density is exact reports ``likelihood_kind='bound'`` -- unless it models those
columns exactly itself (``_exact_discrete``: the autoregressive family's categorical heads).

Images: an array of shape ``(n, H, W)`` or ``(n, C, H, W)`` is fitted as ``n`` rows of its
flattened pixels (integer images become integer columns, so the above applies: the score is the
bound on log P(image)); ``image_shape_`` records the shape, ``sample`` answers in it, and
``impute`` / ``score_samples`` take images of it (NaN at the missing pixels for ``impute``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import zipfile
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from genzoo.datasets.spec import DataSpec, frame_to_array, is_frame
from genzoo.errors import UnsupportedError, did_you_mean
from genzoo.training import EMA, Phase, PhaseRecord, Progress, descend, train

FORMAT = "genzoo-model"
#: terminal line of the training progress bar (set per worker when runs go side by side)
PROGRESS_POSITION: int | None = None
#: checkpoint format: 1 = zip of meta.json + arrays.safetensors; 2 adds the data spec (``spec_``) and
#: the training device (``fit_device_``) to the state. Every version up to this one loads.
FORMAT_VERSION = 2
#: points of the rule over the dequantisation cube that ``score_samples`` averages (a power of 2: Sobol),
#: for up to 16 discrete columns; wider rows get fewer (``dequant_draws``): an image of 64 pixels 4
DEQUANT_DRAWS = 16
#: the fixed dequantisation noise of fit keeps this far from the cell edges, so a training step can
#: recover the integer under a float32 row and draw fresh noise for it
_DEQUANT_EDGE = 1e-3
#: held-out rows a choice between fits is scored on (a mixture start or not, independent blocks or not)
HELD_OUT_SCORED = 1000


def dequant_draws(k: int) -> int:
    """Points of the dequantisation rule for ``k`` discrete columns: 16 up to k = 16, then the power
    of two nearest below 256 / k, at least 2 (the cost of a score grows with the points times the
    model's cost per row, which grows with k; the bound stays unbiased, its standard error is reported)."""
    if k <= 16:
        return DEQUANT_DRAWS
    return max(2, 2 ** int(np.floor(np.log2(256 / k))))


logger = logging.getLogger("genzoo")


# ----------------------------------------------------------------------------- input checks
def check_array(X: Any, name: str = "X", *, allow_nan: bool = False, dim: int | None = None,
                min_rows: int = 1, spec: DataSpec | None = None) -> np.ndarray:
    """Return ``X`` as a finite 2-D float64 array or raise a ValueError naming the problem.

    A pandas DataFrame is read column by column (a column that is not numeric is named); with
    ``spec`` (a fitted model's) its columns are first matched to the model's by name, and
    categorical columns are read as level codes (an unknown level as -1, see ``DataSpec.encode``).
    """
    if X is None:
        raise ValueError(f"{name} is None; expected a 2-D array of shape (n_samples, n_features)")
    columns = None
    coded = spec is not None and spec.needs_coding  # categorical columns: values -> level codes
    if is_frame(X):
        if spec is not None:
            X = spec.select(X, name)
        columns = [str(c) for c in X.columns]
        arr = spec.encode(X, name) if coded else frame_to_array(X, name)
    else:
        try:
            arr = np.asarray(X)
        except Exception as e:  # ragged nested lists
            raise ValueError(f"{name} could not be read as an array ({e})") from None
        if coded and arr.ndim == 2 and arr.shape[1] == spec.dim:
            arr = spec.encode(arr, name)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real-valued; got complex numbers")
    if arr.ndim != 2:
        hint = " (a single feature? use X.reshape(-1, 1); a single row? X.reshape(1, -1))" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {arr.shape}{hint}")
    if arr.shape[0] < min_rows or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); need at least {min_rows} row(s) and 1 column")
    arr = arr.astype(np.float64, copy=False)

    def where(mask: np.ndarray) -> str:
        i, j = np.argwhere(mask)[0]
        return f"first: row {i}, column {columns[j]!r}" if columns else f"first: row {i}, column {j}"

    inf = np.isinf(arr)
    if inf.any():
        raise ValueError(f"{name} contains {int(inf.sum())} infinite value(s) ({where(inf)})")
    if not allow_nan:
        nan = np.isnan(arr)
        if nan.any():
            raise ValueError(f"{name} contains NaN in {int(nan.any(1).sum())} row(s) ({where(nan)}); "
                             "use impute() to fill missing values")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has {arr.shape[1]} feature(s) but the model was fitted on {dim}")
    return arr


def check_nfe(nfe: Any) -> int:
    """A budget of network evaluations per sample: a positive integer."""
    if isinstance(nfe, (bool, np.bool_)) or not isinstance(nfe, (int, np.integer)) or nfe < 1:
        raise ValueError(f"nfe must be a positive integer (network evaluations per sample); got {nfe!r}")
    return int(nfe)


def check_n_samples(n: Any) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"n_samples must be a positive integer; got {n!r}")
    if n <= 0:
        raise ValueError(f"n_samples must be a positive integer; got {n}")
    return int(n)


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> CUDA when present, else CPU; anything else must name a usable torch device."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {device!r} is not a torch device ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for CUDA, but CUDA is not available here")
    return dev


def seed_from(random_state: Any) -> int:
    """A 63-bit integer seed from an int, a numpy Generator/RandomState, or None (fresh)."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state) & (2**63 - 1)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    return int(np.random.default_rng(random_state).integers(0, 2**63 - 1))


@contextlib.contextmanager
def torch_seed(seed: int, device: torch.device | None = None):
    """Seed torch's global RNG inside the block and restore it afterwards (so calls are reproducible)."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


# ----------------------------------------------------------------------------- the template
class GenerativeModel(BaseEstimator):
    """Base class of every genzoo family (scikit-learn conventions: ``__init__`` only stores).

    Subclasses set ``likelihood_kind`` and ``_capabilities`` and implement the hooks
    ``_fit_std``, ``_sample_std`` and (where they have one) ``_log_prob_std``.
    """

    family: ClassVar[str] = "base"
    likelihood_kind: ClassVar[str] = "none"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("likelihood_kind")
        if kind is not None and not isinstance(kind, _DiscreteAwareKind):
            cls.likelihood_kind = _DiscreteAwareKind(kind)
    # a ``sample(sampler=...)`` value that draws exactly from the model's normalised density,
    # where the default sampler only approximates it (the report shows both)
    exact_sampler: ClassVar[str | None] = None
    _capabilities: ClassVar[frozenset[str]] = frozenset({"sample"})
    #: a short sentence the CLI and report show
    summary: ClassVar[str] = ""
    #: whether a model fitted with labels also has an unconditional density (``y=None``
    #: in ``_log_prob_std``): families trained with label dropout, and gmm/kde's global fit
    _has_null_label: ClassVar[bool] = False
    #: the hyperparameters that are training budgets (steps, teacher steps, trajectory pools,
    #: pairs), each with the floor a scaled-down budget keeps: presets (``genzoo compare``, the
    #: tests) shrink all of them from this one declaration; a closed-form fit has none
    budget_params: ClassVar[dict[str, int]] = {}

    @property
    def capabilities(self) -> frozenset[str]:
        """What the family can do: a subset of {'sample', 'log_prob', 'impute', 'conditional'}."""
        return self._capabilities

    # ------------------------------------------------------------------ public API
    def fit(self, X, y=None, *, progress: Callable[[Progress], None] | None = None):
        """Learn p(x) (or p(x | y) when labels are given) from the rows of ``X``; returns self.

        ``X``: an array, or a DataFrame of numeric columns (then ``feature_names_in_`` is set and
        ``sample`` / ``impute`` answer in DataFrames with the same columns). ``progress``: called
        with a :class:`genzoo.training.Progress` every 50 training steps and at the end of each
        phase (families trained by gradient descent).
        """
        from genzoo.params import validate_params

        validate_params(self)  # the declared hyperparameter constraints, before any other work
        image_shape = _image_shape(X)
        if image_shape is not None:  # images: one row of flattened pixels each (module docstring)
            X = np.asarray(X).reshape(len(X), -1)
        X, spec = _read_fit_input(X)
        if image_shape is not None:
            spec = _image_spec(X, spec)
        y_idx = self._encode_fit_labels(y, len(X))
        if not len(spec.modelled):
            raise ValueError(f"X: every column holds a single value ({', '.join(spec.names[:5])}"
                             f"{', ...' if spec.dim > 5 else ''}); there is nothing to model")
        self.spec_ = spec
        self.image_shape_ = image_shape
        if self.spec_.frame:
            self.feature_names_in_ = np.asarray(self.spec_.names, dtype=object)
        elif hasattr(self, "feature_names_in_"):  # refitted on an array: no names (scikit-learn's rule)
            del self.feature_names_in_
        self.n_features_in_ = X.shape[1]
        keep, disc = spec.modelled, self._dequantised(spec)
        self.dim_ = len(keep)  # the columns the family models (constant ones are carried through)
        seed = seed_from(getattr(self, "random_state", None))
        if len(disc):  # dequantised once here (fresh noise per training step: TorchGenerativeModel)
            u = np.random.default_rng([seed, 7919]).uniform(_DEQUANT_EDGE, 1 - _DEQUANT_EDGE, (len(X), len(disc)))
            X = X.copy()
            X[:, disc] += u
        self.loc_ = X.mean(0)
        const = np.setdiff1d(np.arange(X.shape[1]), keep)
        self.loc_[const] = X[0, const]  # exactly the value (a mean of equal floats may be off by an ulp)
        scale = X.std(0)
        self.scale_ = np.where(scale > 1e-12 * (1 + np.abs(self.loc_)), scale, 1.0)
        Z = (X[:, keep] - self.loc_[keep]) / self.scale_[keep]
        self.z_lo_, self.z_hi_ = Z.min(0), Z.max(0)
        self.device_ = self.fit_device_ = str(resolve_device(getattr(self, "device", "cpu")))
        self.history_ = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}
        self._progress = progress  # read by _default_phase; not a hyperparameter, gone after fit
        try:
            with self._family_view():
                self._fit_std(Z, y_idx, seed)
                self._fit_blocks(Z, y_idx, seed)
        finally:
            del self._progress
        self.last_nfe_ = None
        logger.info("fitted %s on %d rows x %d columns", self.family, X.shape[0], X.shape[1])
        return self

    def sample(self, n_samples: int, y=None, random_state=None, nfe: int | None = None, **opts):
        """Draw ``n_samples`` rows; ``y`` (scalar or one label per row) asks for those classes.

        A model fitted with labels but asked for none draws its marginal: labels from the
        training class frequencies, then rows from p(x | y). An (n, d) array, or a DataFrame
        with the training columns when the model was fitted on one.

        ``nfe=K`` asks for at most K network evaluations per sample: an iterative family picks
        its best sampler for that budget (a few-step ODE solver, fewer steps), a one-pass family
        checks that its pass fits; ``last_nfe_`` reports what was spent.
        """
        out = self._spec().output(self._sample_array(n_samples, y, random_state, nfe=nfe, **opts))
        return self._as_images(out)

    # ------------------------------------------------------------------ images
    def _image_rows(self, X: Any, name: str = "X") -> Any:
        """For a model fitted on images: images of ``image_shape_`` as rows of pixels (else ``X`` as is)."""
        shape = getattr(self, "image_shape_", None)
        if shape is None or X is None or is_frame(X):
            return X
        try:
            A = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a numeric array of images of shape "
                             f"(n, {', '.join(map(str, shape))})") from None
        if A.ndim != len(shape) + 1 or A.shape[1:] != tuple(shape):
            raise ValueError(f"{name} has shape {A.shape}; the model was fitted on images of shape "
                             f"(n, {', '.join(map(str, shape))})")
        return A.reshape(len(A), -1)

    def _as_images(self, out: Any) -> Any:
        """Rows of pixels back in ``image_shape_`` (arrays only; a model fitted on rows answers as is)."""
        shape = getattr(self, "image_shape_", None)
        if shape is None:
            return out
        return np.asarray(out).reshape((len(out), *shape))

    # ------------------------------------------------------------------ typed columns
    @contextlib.contextmanager
    def _family_view(self):
        """Inside the block ``n_features_in_`` is the width the family models (``dim_``: constant
        columns removed), which is what family code reads; the user's width is restored after."""
        d, full = getattr(self, "dim_", None), getattr(self, "n_features_in_", None)
        if d is None or full is None or d == full:
            yield
            return
        self.n_features_in_ = d
        try:
            yield
        finally:
            self.n_features_in_ = full

    def _to_model(self, X: np.ndarray, u: float | np.ndarray = 0.0) -> np.ndarray:
        """Coded rows ``X`` (n, d) in the family's standardised space (n, dim_): constant columns
        dropped, discrete columns at ``x + u`` (the corner of their cell for u = 0)."""
        spec = self._spec()
        keep, disc = spec.modelled, self._dequantised(spec)
        A = X[:, keep].astype(np.float64, copy=True)
        if len(disc) and not np.all(np.asarray(u) == 0):
            A[:, np.searchsorted(keep, disc)] += u
        return (A - self.loc_[keep]) / self.scale_[keep]

    def _from_model(self, Z: np.ndarray, discretise: bool = True) -> np.ndarray:
        """The family's rows ``Z`` (n, dim_) as coded rows (n, d): constant columns put back, and with
        ``discretise`` integer / categorical columns floored and clipped to their range."""
        spec = self._spec()
        keep = spec.modelled
        Z = _to_numpy(Z)
        if len(keep) == spec.dim:
            out = Z * self.scale_ + self.loc_
        else:
            out = np.empty((len(Z), spec.dim))
            out[:] = self.loc_  # constant columns: their value (a level's code for non-numbers)
            out[:, keep] = Z * self.scale_[keep] + self.loc_[keep]
        if discretise:  # a dequantised value floors to its cell; an exactly modelled one rounds to itself
            exact = set(self._exact_discrete(spec).tolist())
            for j in spec.discrete:
                c = spec.columns[j]
                lo, hi = (c.low, c.high) if c.kind == "integer" else (0, len(c.levels) - 1)
                out[:, j] = np.clip(np.round(out[:, j]) if j in exact else np.floor(out[:, j]), lo, hi)
        return out

    def _exact_discrete(self, spec: DataSpec) -> np.ndarray:
        """The discrete columns (indices into ``spec.columns``) this family gives an exact probability
        mass, so they are not dequantised (none here; the autoregressive family's categorical heads)."""
        return np.zeros(0, dtype=np.int64)

    def _dequantised(self, spec: DataSpec) -> np.ndarray:
        """The discrete columns modelled through dequantisation (all but ``_exact_discrete``)."""
        return np.setdiff1d(spec.discrete, self._exact_discrete(spec)).astype(np.int64)

    def _possible_rows(self, X: np.ndarray, name: str = "X") -> np.ndarray:
        """Rows whose discrete and constant values the model can produce (the others have
        probability 0); a fraction in an integer column is an error."""
        spec = self._spec()
        ok = np.ones(len(X), dtype=bool)
        for j, c in enumerate(spec.columns):
            a = X[:, j]
            if c.kind == "constant":
                ok &= a == self.loc_[j]
            elif c.kind == "integer":
                frac = np.isfinite(a) & (a != np.floor(a))
                if frac.any():
                    i = int(np.flatnonzero(frac)[0])
                    raise ValueError(f"{name}: column {c.name!r} holds integers, but row {i} has {float(a[i]):g}")
                ok &= (a >= c.low) & (a <= c.high)
            elif c.kind == "categorical":
                ok &= a >= 0
        return ok

    def _sample_array(self, n_samples: int, y=None, random_state=None, nfe: int | None = None,
                      **opts) -> np.ndarray:
        self._check_fitted()
        n = check_n_samples(n_samples)
        y_idx = self._encode_sample_labels(y, n)
        seed = seed_from(random_state)
        if y_idx is None and getattr(self, "classes_", None) is not None:
            # a model fitted with labels samples its marginal: y ~ class prior, then x ~ p(x | y)
            y_idx = np.random.default_rng(seed).choice(len(self.classes_), size=n, p=self.class_prior_)
        if self._block_pairs():
            return self._from_model(self._blocks_sample(n, seed, nfe, opts))
        if "guidance" in opts and "guidance" not in _hook_params(self._sample_std):
            # no classifier-free guidance here: its sampler draws p(x | y), which is guidance 1
            g = opts.pop("guidance")
            if g is not None and float(g) != 1.0:
                raise ValueError(f"{self.family} has no classifier-free guidance; it samples p(x | y) (guidance=1.0), "
                                 f"got guidance={g}")
        _check_options(self._sample_std, opts, "sample", ("n", "y", "seed"))
        if nfe is not None:
            nfe = check_nfe(nfe)
            with self._family_view():
                opts = self._nfe_options(nfe, y_idx is not None, opts)
        with torch.no_grad(), self._family_view():
            Z = self._sample_std(n, y_idx, seed, **opts)
        spent = getattr(self, "last_nfe_", None)
        if nfe is not None and spent is not None and spent > nfe:
            raise ValueError(f"{self.family} spends {spent:g} network evaluations per sample with these options; "
                             f"nfe={nfe} is below that")
        return self._from_model(Z)

    def _nfe_options(self, nfe: int, labelled: bool, opts: dict) -> dict:
        """Sampling options that spend at most ``nfe`` network evaluations per sample.

        Iterative families override this to choose a sampler and its steps for the budget
        (``labelled``: labels are in play, so guidance may double the cost of a step); the
        default keeps the family's one sampler, whose cost ``sample`` then checks.
        """
        return opts

    @staticmethod
    def _without_budget_options(opts: dict, *keys: str) -> dict:
        """``opts``, refusing the options that ``nfe`` sets itself (one way to ask for a budget)."""
        clash = sorted(k for k in keys if k in opts)
        if clash:
            raise ValueError(f"sample: nfe= chooses {', '.join(keys)} itself; give nfe or {', '.join(clash)}, not both")
        return dict(opts)

    def sample_path(self, n_samples: int, y=None, random_state=None, n_frames: int = 5, **opts) -> np.ndarray:
        """Intermediate states of an iterative sampler, ``(n_frames, n, d)``, noise first, samples last.

        Only families whose sampler is a process (diffusion, flows by ODE, Langevin, ...) have
        one; the others raise ``UnsupportedError``.
        """
        self._check_fitted()
        n = check_n_samples(n_samples)
        if int(n_frames) < 2:
            raise ValueError(f"n_frames must be >= 2; got {n_frames}")
        y_idx = self._encode_sample_labels(y, n)
        if self._block_pairs():
            rng = np.random.default_rng(seed_from(random_state))
            frames = np.empty((int(n_frames), n, self.dim_))
            for cols, sub in self._block_pairs():
                frames[:, :, cols] = sub.sample_path(n, random_state=int(rng.integers(2**62)),
                                                     n_frames=n_frames, **opts)
        else:
            with torch.no_grad(), self._family_view():
                frames = self._sample_path_std(n, y_idx, seed_from(random_state), int(n_frames), **opts)
        return np.stack([self._from_model(f, discretise=False) for f in frames])

    def _sample_path_std(self, n: int, y, seed: int, n_frames: int, **opts) -> list:
        raise UnsupportedError(f"{self.family} draws samples in one pass; it has no sampling path")

    def score_samples(self, X, y=None, *, null_label: bool = False, return_se: bool = False, **opts):
        """Log-density of each row in nats (a bound or estimate where ``likelihood_kind`` says so).

        On a model fitted with labels: without ``y`` the marginal that ``sample(n)`` draws,
        ``log sum_k prior_k p(x | k)`` (all classes in one batched pass); with ``y`` (a label, or
        one per row) the conditional ``log p(x | y)``; with ``null_label=True`` the density the
        family learned for the null label (families trained with label dropout; the global fit
        for gmm/kde), which is *not* the sampled marginal.

        ``return_se=True`` returns ``(log_density, standard_error)`` per row: zeros where the
        number is deterministic, the Monte Carlo standard error where it is an estimate
        (``likelihood_kind='estimate'``: Hutchinson probes, AIS). Same rows, same numbers.

        With integer or categorical columns the number is the dequantisation bound on
        ``log P(X = x)`` (module docstring): the mean of ``log p(x + u)`` over a fixed 16-point
        scrambled Sobol rule on the cell ``[0, 1)^k`` (fewer points beyond 16 discrete columns,
        ``dequant_draws``: 4 for an 8x8 image; its standard error from the spread over the rule);
        a value outside a column's range, an unknown category, or another value in a constant
        column has probability 0 (-inf). Columns the family models exactly (``_exact_discrete``)
        are scored as they are, no rule.
        """
        self._check_fitted()
        if "log_prob" not in self.capabilities:
            raise UnsupportedError(self._no_likelihood_reason())
        spec = self._spec()
        X = check_array(self._image_rows(X), "X", dim=self.n_features_in_, spec=spec)
        _check_options(self._log_prob_std, opts, "score_samples", ("Z", "y", "return_se"))
        y_idx = None
        if null_label:
            if y is not None:
                raise ValueError("score_samples: give either y or null_label=True, not both")
            if getattr(self, "classes_", None) is None:
                raise ValueError(f"null_label=True needs a model fitted with labels; this {self.family} had none")
            if not self._has_null_label:
                raise UnsupportedError(f"{self.family} has no null-label density (it was not trained with "
                                       "label dropout); score the marginal (no y) or a class (y=...)")
        else:
            y_idx = self._encode_sample_labels(y, len(X))
        ok = self._possible_rows(X)
        lp, se = np.full(len(X), -np.inf), np.zeros(len(X))
        if ok.any():
            Z = self._to_model(X[ok])
            y_ok = None if y_idx is None else y_idx[ok]
            disc = self._dequantised(spec)
            k = len(disc)
            U = _dequant_rule(k, dequant_draws(k)) if k else np.zeros((1, 0))
            if k:  # every row at every point of the rule, in one batch: (K n, dim_)
                cols = np.searchsorted(spec.modelled, disc)
                Zk = np.tile(Z, (len(U), 1))
                Zk[:, cols] += np.repeat(U, len(Z), 0) / self.scale_[disc]
                Z, y_ok = Zk, None if y_ok is None else np.tile(y_ok, len(U))
            with self._family_view():
                if null_label:
                    l, s = self._log_prob_se_std(Z, None, **opts)
                else:
                    l, s = self._labelled_log_prob_std(Z, y_ok, with_se=True, **opts)
            l, s = l.reshape(len(U), -1), s.reshape(len(U), -1)
            lp[ok] = l.mean(0)
            se[ok] = np.sqrt(s.mean(0) ** 2 + (l.var(0) / len(U) if k else 0.0))
        # the standardisation's Jacobian, for the columns with a density (an exact mass has none)
        dens = np.setdiff1d(np.arange(spec.dim), self._exact_discrete(spec))
        lp = lp.astype(np.float64) - float(np.log(self.scale_[dens]).sum())
        return (lp, se) if return_se else lp

    def _log_prob_se_std(self, Z: np.ndarray, *y, **opts) -> tuple[np.ndarray, np.ndarray]:
        """``_log_prob_std`` and its per-row standard error (zeros for a family whose number is exact)."""
        if self._block_pairs():  # a product of independent blocks: the blocks' log-densities add up
            lp, var = 0.0, 0.0
            for cols, sub in self._block_pairs():
                lb, sb = sub.score_samples(Z[:, cols], return_se=True, **opts)
                lp, var = lp + lb, var + sb ** 2
            return lp, np.sqrt(var)
        if "return_se" in _hook_params(self._log_prob_std):
            lp, se = self._log_prob_std(Z, *y, return_se=True, **opts)
            return _to_numpy(lp), _to_numpy(se)
        lp = _to_numpy(self._log_prob_std(Z, *y, **opts))
        return lp, np.zeros_like(lp)

    def _labelled_log_prob_std(self, Z: np.ndarray, y_idx: np.ndarray | None = None, *, with_se: bool = False,
                               **opts):
        """log p(z | y) for class indices ``y_idx``; without them, the sampled marginal.

        A model fitted without labels scores its one density; one fitted with labels and asked
        for none scores ``logsumexp_k [log prior_k + log p(z | k)]`` exactly, every class in one
        batch (one ODE solve, not K). Its standard error combines the classes' by their
        responsibilities (a bound: the class passes share their probes).
        """
        if getattr(self, "classes_", None) is None:
            lp, se = self._log_prob_se_std(Z, **opts)
        elif y_idx is not None:
            lp, se = self._log_prob_se_std(Z, y_idx, **opts)
        else:
            from scipy.special import logsumexp, softmax

            n, K = len(Z), len(self.classes_)
            rows = max(1, 65536 // K)
            lps, ses = [], []
            for a in range(0, n, rows):
                z = Z[a:a + rows]
                lk, sk = self._log_prob_se_std(np.tile(z, (K, 1)), np.repeat(np.arange(K), len(z)), **opts)
                lk = lk.reshape(K, len(z)) + np.log(np.maximum(self.class_prior_, 1e-300))[:, None]
                lps.append(logsumexp(lk, axis=0))
                ses.append((softmax(lk, axis=0) * sk.reshape(K, len(z))).sum(0))
            lp, se = np.concatenate(lps), np.concatenate(ses)
        return (lp, se) if with_se else lp

    def score(self, X, y=None, **opts) -> float:
        """Mean log-density per row (higher is better), so model selection by likelihood works."""
        return float(np.mean(self.score_samples(X, **opts)))

    def impute(self, X, random_state=None, **opts):
        """Replace NaNs with draws from the model's p(missing | observed); observed values stay.

        A row with nothing missing is returned as is; a row with everything missing gets an
        unconditional sample. A DataFrame comes back (same index) when ``X`` is one or the model
        was fitted on one; its columns are matched to the training columns by name.
        """
        self._check_fitted()
        if "impute" not in self.capabilities:
            raise UnsupportedError(f"{self.family} cannot impute missing values")
        like = X
        spec = self._spec()
        X = check_array(self._image_rows(X), "X", allow_nan=True, dim=self.n_features_in_, spec=spec)
        for j, c in enumerate(spec.columns):
            if c.kind in ("categorical", "constant") and (X[:, j] < 0).any() and spec.needs_coding:
                i = int(np.flatnonzero(X[:, j] < 0)[0])
                if c.kind == "categorical" or not isinstance(c.value, (int, float)):
                    raise ValueError(f"X: column {c.name!r}, row {i}: a value never seen in fit (known: "
                                     f"{', '.join(map(repr, c.levels or (c.value,)))})")
        if not _forwards_options(self._impute_std):  # the grid-Gibbs default checks its own
            _check_options(self._impute_std, opts, "impute", ("Z", "miss", "seed"))
        out = X.copy()
        miss = np.isnan(X)
        const = np.setdiff1d(np.arange(spec.dim), spec.modelled)
        out[:, const] = np.where(miss[:, const], self.loc_[const], X[:, const])  # carried through
        mm = miss[:, spec.modelled]
        rows_all = np.flatnonzero(mm.all(1))
        rows_some = np.flatnonzero(mm.any(1) & ~mm.all(1))
        seed = seed_from(random_state)
        rng = np.random.default_rng(seed)
        if len(rows_all):
            drawn = self._sample_array(len(rows_all), random_state=int(rng.integers(2**62)))
            out[rows_all] = np.where(miss[rows_all], drawn, out[rows_all])
        if len(rows_some):
            # an observed integer / category is conditioned on at the middle of its cell
            Z = self._to_model(X[rows_some], u=0.5)
            if self._block_pairs():  # each block from its own model: the blocks are independent
                Zf = Z.copy()
                for cols, sub in self._block_pairs():
                    Zf[:, cols] = sub.impute(Z[:, cols], random_state=int(rng.integers(2**62)), **opts)
            else:
                with torch.no_grad(), self._family_view():
                    Zf = _to_numpy(self._impute_std(Z, mm[rows_some], int(rng.integers(2**62)), **opts))
            filled = self._from_model(Zf)
            out[rows_some] = np.where(miss[rows_some], filled, out[rows_some])
        return self._as_images(spec.output(out, like))

    def save(self, path) -> None:
        """Write a checkpoint, by convention ``model.genzoo``: a zip of JSON metadata (format version,
        hyperparameters, data spec, fitted state) and safetensors weights; no pickle, nothing to run."""
        self._check_fitted()
        import os

        from safetensors.numpy import save as np_save

        arrays = {**self._get_arrays(), **self._blocks_arrays()}
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "family": self.family,
                "genzoo_version": _version(), "params": _jsonable(self.get_params()),
                "state": _jsonable(self._get_meta())}
        path = os.fspath(path)
        tmp = f"{path}.{os.getpid()}.part"  # written whole, then renamed: an old file survives a failure
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("meta.json", json.dumps(meta))
                zf.writestr("arrays.safetensors", np_save({k: np.ascontiguousarray(v) for k, v in arrays.items()}))
            os.replace(tmp, path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            # name the file the user asked for, not the temporary one
            raise OSError(e.errno, f"cannot write the model file {path}: {e.strerror or e}") from None

    def to(self, device: str | torch.device):
        """Move the fitted model (its network and every tensor its checkpoint holds) to ``device``; returns self.

        ``device_`` says where it now computes; ``fit_device_`` keeps where it was trained. The
        ``device`` hyperparameter (where the next ``fit`` trains) is unchanged.
        """
        self._check_fitted()
        dev = str(resolve_device(device))
        # the checkpoint's path in memory: what save/load round-trips, rebuilt on the new device
        state = json.loads(json.dumps(_jsonable(self._get_meta())))
        state["device_"] = dev
        arrays = self._get_arrays()
        blocks = self._blocks_arrays()
        self._set_meta(state)
        with self._family_view():
            self._set_arrays(arrays)
        self._set_blocks(state, blocks)
        self.device_ = dev
        return self

    def _spec(self) -> DataSpec:
        """The data spec (a model loaded from a format-1 checkpoint has none: plain columns)."""
        self._check_fitted()
        spec = getattr(self, "spec_", None)
        return spec if spec is not None else DataSpec.default(self.n_features_in_)

    # ------------------------------------------------------------------ choices made at fit
    #: choices a fit makes between candidate fits by their held-out likelihood: fitted attribute with each
    #: choice's held-out NLL -> (fitted attribute with the kept choice, a phrase per choice)
    _fit_choice_phrases: ClassVar[dict[str, tuple[str, dict[str, str]]]] = {}

    def fit_choices(self) -> list[str]:
        """What this fit chose between candidate fits, one line each, with the held-out NLL (nats per row,
        standardised columns) that decided: the Gaussian-mixture start of the exact-density families
        (prior or base) and a product of independent column blocks, then each block model's own choices.
        Empty when the fit had nothing to choose (one candidate, e.g. in 2-D)."""
        self._check_fitted()
        lines = []
        for scores_attr, (kept_attr, phrases) in self._fit_choice_phrases.items():
            scores = getattr(self, scores_attr, None)
            if not scores or len(scores) < 2:
                continue
            kept = getattr(self, kept_attr)
            rest = "; ".join(f"{phrases.get(k, k)} {v:.4f}" for k, v in scores.items() if k != kept)
            lines.append(f"kept the {phrases.get(kept, kept)}: held-out NLL per row, standardised columns, "
                         f"{scores[kept]:.4f} ({rest})")
        losses = getattr(self, "factorise_losses_", None)
        if losses:
            pairs = self._block_pairs()
            names = [self._column_names(cols) for cols, _ in pairs]
            kept = (f"a product of {len(names)} independent column blocks ({' | '.join(names)})" if names
                    else "the joint model (independent column blocks were tried)")
            lines.append(f"kept {kept}: held-out NLL per row, standardised columns, joint {losses['joint']:.4f}, "
                         f"blocks {losses['blocks']:.4f}")
            for name, (_, sub) in zip(names, pairs):
                lines += [f"block ({name}): {line}" for line in sub.fit_choices()]
        return lines

    def _column_names(self, cols) -> str:
        """The table's names of modelled columns ``cols`` (indices among the modelled ones), comma-joined."""
        spec = self._spec()
        return ", ".join(str(spec.names[spec.modelled[j]]) for j in cols)

    # ------------------------------------------------------------------ independent blocks
    def _fit_blocks(self, Z: np.ndarray, y: np.ndarray | None, seed: int) -> None:
        """After ``_fit_std``: families that can model independent blocks apart fit them here
        (:class:`genzoo.families._blocks.IndependentBlocks`); the rest keep their one model."""

    def _block_pairs(self) -> list:
        """``(columns, model)`` per block when the fit kept a product of independent blocks
        (:mod:`genzoo.families._blocks`), else an empty list; the columns index the modelled ones."""
        subs = getattr(self, "block_models_", None)
        return list(zip(self.blocks_, subs)) if subs else []

    def _blocks_sample(self, n: int, seed: int, nfe: int | None, opts: dict) -> np.ndarray:
        """Rows of a product of blocks in standardised space: each block drawn by its model, independently.
        ``last_nfe_`` is the most any block's sampler spent (the blocks' networks are separate)."""
        rng = np.random.default_rng(seed)
        Z, spent = np.empty((n, self.dim_)), []
        for cols, sub in self._block_pairs():
            Z[:, cols] = sub._sample_array(n, random_state=int(rng.integers(2**62)), nfe=nfe, **opts)
            spent.append(getattr(sub, "last_nfe_", None))
        self.last_nfe_ = None if None in spent else max(spent)
        return Z

    def _blocks_meta(self) -> dict:
        pairs = self._block_pairs()
        if not pairs:
            return {}
        return {"blocks_": [list(c) for c, _ in pairs],
                "block_models_": [{"params": _jsonable(m.get_params()), "state": _jsonable(m._get_meta())}
                                  for _, m in pairs]}

    def _blocks_arrays(self) -> dict[str, np.ndarray]:
        return {f"block{i}.{k}": v for i, (_, m) in enumerate(self._block_pairs()) for k, v in m._get_arrays().items()}

    def _set_blocks(self, meta: dict, arrays: dict[str, np.ndarray] | None) -> None:
        """Rebuild the blocks' models from a checkpoint's state (``meta``) and arrays."""
        if not meta.get("block_models_"):
            return
        subs = []
        for i, saved in enumerate(meta["block_models_"]):
            sub = type(self)(**_params_from_json(type(self), saved["params"]))
            state = dict(saved["state"], device_=self.device_)
            sub._set_meta(state)
            if arrays is not None:
                prefix = f"block{i}."
                with sub._family_view():
                    sub._set_arrays({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
            subs.append(sub)
        self.blocks_ = [[int(j) for j in c] for c in meta["blocks_"]]
        self.block_models_ = subs

    # ------------------------------------------------------------------ hooks for families
    def _fit_std(self, Z: np.ndarray, y: np.ndarray | None, seed: int) -> None:
        raise NotImplementedError

    def _sample_std(self, n: int, y: np.ndarray | None, seed: int, **opts):
        raise NotImplementedError

    def _log_prob_std(self, Z: np.ndarray, y: np.ndarray | None = None, **opts):
        """log p(z | y) in standardised space; ``y``: class indices (one per row), or None for the
        unconditional density (the null label of a model fitted with labels)."""
        raise UnsupportedError(self._no_likelihood_reason())

    def _no_likelihood_reason(self) -> str:
        return f"{self.family} has no likelihood"

    def _impute_std(self, Z: np.ndarray, miss: np.ndarray, seed: int, **opts) -> np.ndarray:
        """Default for families with a density: Gibbs sampling, each coordinate by grid inverse-CDF.

        With one coordinate missing a single sweep is an exact draw from the model's
        conditional, up to the grid (``genzoo.samplers.conditional.grid_gibbs_impute``: 1024
        nodes over the training range + 25%, a third uniform and the rest where the coarse pass
        found the mass, log-density linear between nodes); with more missing it is a Gibbs
        chain of ``sweeps`` (30) sweeps from an unconditional sample, exact in the limit. Rows
        that share observed values share one conditional and stratified uniforms (each row an
        exact draw; ``stratify=False`` for independent ones). Options: ``grid``, ``sweeps``,
        ``refine``, ``stratify``.
        """
        if "log_prob" not in self.capabilities:
            raise UnsupportedError(f"{self.family} has no imputation method")
        return grid_gibbs_impute(lambda z: self._labelled_log_prob_std(z), Z, miss, seed,
                                 lo=self.z_lo_, hi=self.z_hi_,
                                 init=lambda k, s: _to_numpy(self._sample_std(k, None, s)), **opts)

    def _sir_impute_std(self, Z: np.ndarray, miss: np.ndarray, seed: int, pool: int = 20_000) -> np.ndarray:
        """Exact-for-the-model imputation beyond a few dimensions for a family whose density is
        expensive (an ODE likelihood): sampling-importance-resampling with proposals from a Gaussian
        mixture fitted to ``pool`` of the model's own samples, conditioned on each distinct row
        (:func:`genzoo.samplers.conditional.mixture_proposal_impute`); ``SIR_PROPOSALS`` density
        evaluations per distinct row (at least 4 per row to fill). The
        smallest effective sample size over the rows is kept in ``last_impute_ess_``."""
        from genzoo.samplers.conditional import mixture_proposal_impute

        rng = np.random.default_rng(seed)
        P = _to_numpy(self._sample_std(int(pool), None, int(rng.integers(2**62))))
        out, ess = mixture_proposal_impute(lambda z: _to_numpy(self._labelled_log_prob_std(z)), P, Z, miss, rng)
        self.last_impute_ess_ = ess
        if ess < 50:
            import warnings

            warnings.warn(f"{self.family} impute: importance resampling kept an effective sample of only {ess:.0f} "
                          f"draws for some row; its conditional may be poorly covered", stacklevel=3)
        return out

    # state to save beside the weights; families with more fitted state extend these
    def _get_meta(self) -> dict:
        keys = ["n_features_in_", "loc_", "scale_", "z_lo_", "z_hi_", "classes_", "class_prior_", "phases_",
                "history_", "device_", "fit_device_", "n_classes_"]
        meta = {k: getattr(self, k) for k in keys if hasattr(self, k)}
        if getattr(self, "spec_", None) is not None:
            meta["spec_"] = self.spec_.to_dict()
        if getattr(self, "image_shape_", None) is not None:
            meta["image_shape_"] = [int(s) for s in self.image_shape_]
        return {**meta, **self._blocks_meta()}

    def _set_meta(self, meta: dict) -> None:
        for k, v in meta.items():
            if k in ("blocks_", "block_models_"):  # rebuilt with their arrays (_set_blocks)
                continue
            if k in ("loc_", "scale_", "z_lo_", "z_hi_", "class_prior_"):
                v = np.asarray(v, dtype=np.float64)
            elif k == "classes_" and v is not None:
                v = np.asarray(v)
            elif k == "image_shape_":
                v = tuple(int(s) for s in v)
            elif k == "spec_":
                v = DataSpec.from_dict(v)
                if v.frame:
                    self.feature_names_in_ = np.asarray(v.names, dtype=object)
            setattr(self, k, v)
        if "n_features_in_" in meta:  # the width the family models (constant columns removed)
            spec = getattr(self, "spec_", None)
            self.dim_ = len(spec.modelled) if spec is not None else int(self.n_features_in_)

    def _get_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        pass

    # ------------------------------------------------------------------ labels
    def _encode_fit_labels(self, y, n: int) -> np.ndarray | None:
        if y is None:
            self.classes_ = None
            self.n_classes_ = 0
            return None
        if "conditional" not in self.capabilities:
            raise UnsupportedError(f"{self.family} does not take labels (it is unconditional)")
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (one label per row); got shape {y.shape}")
        if len(y) != n:
            raise ValueError(f"y has {len(y)} labels but X has {n} rows")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("y contains NaN or inf")
        self.classes_, idx = np.unique(y, return_inverse=True)
        self.n_classes_ = len(self.classes_)
        self.class_prior_ = np.bincount(idx, minlength=self.n_classes_) / n
        return idx.astype(np.int64)

    def _encode_sample_labels(self, y, n: int) -> np.ndarray | None:
        if y is None:
            return None
        if getattr(self, "classes_", None) is None:
            raise ValueError(f"labels were given, but this {self.family} model was fitted without labels")
        y = np.asarray(y)
        if y.ndim == 0:
            y = np.full(n, y.item())
        if y.ndim != 1 or len(y) != n:
            raise ValueError(f"y must be a single label or one label per sample ({n}); got shape {y.shape}")
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        bad = self.classes_[idx] != y
        if bad.any():
            raise ValueError(f"label {y[bad][0]!r} was never seen in training; known labels: "
                             f"{list(self.classes_.tolist())}")
        return idx.astype(np.int64)

    # ------------------------------------------------------------------ misc
    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(f"this {self.family} model is not fitted yet; call fit(X) first")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "n_features_in_")


# ----------------------------------------------------------------------------- torch families
class TorchGenerativeModel(GenerativeModel):
    """A family trained by minibatch gradient descent on a loss, by the one loop of ``genzoo.training``.

    Subclasses implement ``_build(dim, n_classes) -> nn.Module`` and ``_loss(z, y)``; they may
    override ``_train_step`` (e.g. a GAN's two players), ``_val_loss`` (e.g. the held-out
    NLL) and ``_training_ema`` (the weight average the loop updates). ``_fit_std`` runs the
    default phase (``_default_phase``) once; a family with two trainings runs
    ``genzoo.training.train`` twice with explicit phases. Expected hyperparameters: ``max_steps``,
    ``batch_size``, ``lr``, ``validation_fraction``, ``early_stopping``, ``patience``, ``random_state``, ``device``,
    ``verbose``.
    """

    eval_every: ClassVar[int] = 250
    grad_clip: ClassVar[float] = 10.0
    budget_params: ClassVar[dict[str, int]] = {"max_steps": 50}

    def _build(self, dim: int, n_classes: int) -> torch.nn.Module:
        raise NotImplementedError

    def _loss(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def _configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.module_.parameters(), lr=lr)]

    def _train_step(self, z: torch.Tensor, y: torch.Tensor | None, step: int) -> float:
        (opt,) = self.optimizers_
        return descend(self._loss(z, y), opt, self.module_.parameters(), self.grad_clip)

    def _val_loss(self, z: torch.Tensor, y: torch.Tensor | None) -> float:
        """Validation objective (lower is better); by default the training loss, noise fixed."""
        with torch_seed(12345, z.device):
            return float(self._loss(z, y))

    def _prepare(self, Z: np.ndarray) -> None:
        """Hook run once before training (e.g. to fit data-dependent constants)."""

    def _setup(self, Z_train: np.ndarray) -> None:
        """Build a fresh ``module_`` and run ``_prepare`` on the training rows (the default phase's setup)."""
        self.module_ = self._build(Z_train.shape[1], self.n_classes_).to(torch.device(self.device_))
        self._prepare(Z_train)

    def _training_ema(self) -> EMA | None:
        """The weight average the loop updates after every step: the network's own ``ema`` where
        it keeps one (its averaged weights are buffers, not parameters), else None."""
        return getattr(self.module_, "ema", None)

    def _default_phase(self, name: str = "fit", **changes) -> Phase:
        """The family's default training phase from its hyperparameters; ``changes`` replace fields."""
        step = self._train_step if "step" in changes else self._fresh_dequantisation(self._train_step)
        batch = changes.pop("batch_size", self.batch_size)
        phase = Phase(name=name, max_steps=int(self.max_steps), batch_size=int(batch), lr=float(self.lr),
                      optimizers=self._configure_optimizers, step=step, val_loss=self._val_loss,
                      setup=self._setup, ema=self._training_ema,
                      validation_fraction=float(self.validation_fraction or 0.0), eval_every=int(self.eval_every),
                      early_stopping=bool(self.early_stopping), patience=int(self.patience),
                      verbose=bool(self.verbose), progress=getattr(self, "_progress", None))
        return dataclasses.replace(phase, **changes) if changes else phase

    def _held_out_fraction(self) -> float:
        """The share of rows the training phase holds out (the family's default phase decides)."""
        return float(self._default_phase().validation_fraction or 0.0)

    def _held_out_split(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(training rows, up to ``HELD_OUT_SCORED`` held-out rows) of the training phase under ``seed``:
        the rows a choice between fits (a mixture start, independent blocks) is scored on."""
        from genzoo.training import split_rows

        train_rows, held = split_rows(n, self._held_out_fraction(), seed)
        return train_rows, held[:HELD_OUT_SCORED]

    def _fresh_dequantisation(self, step: Callable) -> Callable:
        """``step`` given batches whose integer / categorical columns carry fresh ``U[0, 1)`` noise each
        time (the integer under a row is recovered by flooring: fit's own noise keeps off the cell
        edges). Batches of another width (e.g. reflow pairs) pass unchanged."""
        spec = getattr(self, "spec_", None)
        if spec is None or not len(self._dequantised(spec)):
            return step
        disc, d = self._dequantised(spec), len(spec.modelled)
        cols = torch.as_tensor(np.searchsorted(spec.modelled, disc))
        loc = torch.as_tensor(self.loc_[disc], dtype=torch.float64)
        scale = torch.as_tensor(self.scale_[disc], dtype=torch.float64)

        def fresh(z: torch.Tensor, y: torch.Tensor | None, i: int) -> float:
            if z.ndim == 2 and z.shape[1] == d:
                c = cols.to(z.device)
                x = z[:, c].double() * scale.to(z.device) + loc.to(z.device)  # (B, k): integer + fit's noise
                u = torch.rand(x.shape, dtype=torch.float64, device=z.device)
                z = z.clone()
                z[:, c] = ((torch.floor(x) + u - loc.to(z.device)) / scale.to(z.device)).to(z.dtype)
            return step(z, y, i)

        return fresh

    def _record_phase(self, record: PhaseRecord, *, accumulate_steps: bool = False) -> PhaseRecord:
        """Fold one phase's record into the fitted attributes (``history_`` grows phase by phase)."""
        for k, v in record.history.items():
            self.history_[k].extend(v)
        self.n_steps_ = record.n_steps + (self.n_steps_ if accumulate_steps else 0)
        self.best_val_loss_ = record.best_val_loss
        self.diverged_ = record.diverged
        self.phases_ = [*getattr(self, "phases_", []), record.as_dict()]
        return record

    def _fit_std(self, Z: np.ndarray, y: np.ndarray | None, seed: int) -> None:
        self.phases_ = []
        self._record_phase(train(self, Z, y, self._default_phase(), seed))

    def _fit_keeping_best(self, choices: tuple[str, ...], attr: str, fit_once: Callable[[str], PhaseRecord],
                          score: Callable[[PhaseRecord], float], keep: tuple[str, ...] = (),
                          labels: dict[str, str] | None = None) -> dict[str, float]:
        """Fit once per choice (``self.<attr>`` set to it first; ``fit_once(phase_name)`` trains and returns
        the record; the phase is 'fit', or 'fit (<label>)' when there are several choices) and keep the fit
        with the lowest ``score`` (a held-out loss), its module, history and the fitted attributes named
        in ``keep``. Every fit's phases stay in ``phases_``, the kept one's last. Returns each choice's
        score."""
        fits = []
        for choice in choices:
            setattr(self, attr, choice)
            self.history_ = {k: [] for k in self.history_}
            self.phases_ = []
            rec = fit_once("fit" if len(choices) == 1 else f"fit ({(labels or {}).get(choice, choice)})")
            value = float(score(rec))
            fits.append((value if math.isfinite(value) else math.inf, choice, self.module_, self.history_,
                         self.phases_, rec, {k: getattr(self, k) for k in keep}))
        best = min(fits, key=lambda f: f[0])
        _, choice, self.module_, self.history_, phases, rec, kept = best
        setattr(self, attr, choice)
        for k, v in kept.items():
            setattr(self, k, v)
        self.n_steps_, self.best_val_loss_, self.diverged_ = rec.n_steps, rec.best_val_loss, rec.diverged
        self.phases_ = [p for f in fits if f is not best for p in f[4]] + phases
        return {f[1]: f[0] for f in fits}

    # torch families keep their weights in the checkpoint
    def _get_arrays(self) -> dict[str, np.ndarray]:
        return {f"module.{k}": v.detach().cpu().numpy() for k, v in self.module_.state_dict().items()}

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        dev = torch.device(self.device_)
        self.module_ = self._build(int(self.n_features_in_), int(self.n_classes_)).to(dev)
        sd = {k[len("module."):]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith("module.")}
        self.module_.load_state_dict(sd, strict=True)
        self.module_.eval()

    def _get_meta(self) -> dict:
        meta = super()._get_meta()
        meta["diverged_"] = bool(getattr(self, "diverged_", False))
        return meta

    def _set_meta(self, meta: dict) -> None:
        super()._set_meta(meta)
        dev = meta.get("device_", "cpu")
        # a checkpoint written on a GPU machine loads on a CPU-only one
        self.device_ = dev if (dev == "cpu" or torch.cuda.is_available()) else "cpu"

    def _tensor(self, Z: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(Z), dtype=torch.float32, device=torch.device(self.device_))

    def _labels(self, y: np.ndarray | None) -> torch.Tensor | None:
        return None if y is None else torch.as_tensor(y, dtype=torch.long, device=torch.device(self.device_))


# ----------------------------------------------------------------------------- imputation by density
# the shared sampler lives in genzoo.samplers.conditional; re-exported here for the families
from genzoo.samplers.conditional import grid_gibbs_impute  # noqa: E402


# ----------------------------------------------------------------------------- load
def load(path, device: str | torch.device | None = None) -> GenerativeModel:
    """Load a model written by ``save`` (any file name; format 1 and 2). Reads JSON and raw arrays
    only: no code runs from the file.

    ``device``: where the loaded model computes ('cpu', 'cuda', 'cuda:1', 'auto'); by default the
    device it was saved on where that exists here, else the CPU.
    """
    from safetensors.numpy import load as np_load

    from genzoo.registry import family_class

    dev = None if device is None else str(resolve_device(device))
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("meta.json"))
            raw = zf.read("arrays.safetensors")
    except FileNotFoundError:
        raise FileNotFoundError(f"no such model file: {path}") from None
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{path} is not a genzoo model file (corrupted or foreign)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a genzoo model file (missing format tag)")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer genzoo (format {meta['format_version']})")
    cls = family_class(meta.get("family"))
    try:
        model = cls(**_params_from_json(cls, meta["params"]))
        state = dict(meta["state"])
        state.setdefault("fit_device_", state.get("device_", "cpu"))  # format 1 did not keep it apart
        if dev is not None:
            state["device_"] = dev
        model._set_meta(state)
        arrays = np_load(raw) if raw else {}
        with model._family_view():
            model._set_arrays(arrays)
        model._set_blocks(state, arrays)
    except (TypeError, KeyError, RuntimeError, ValueError) as e:
        raise ValueError(f"{path} is a damaged {meta.get('family')} checkpoint ({str(e)[:120]})") from None
    return model


# ----------------------------------------------------------------------------- helpers
def _params_from_json(cls, params: dict) -> dict:
    """Hyperparameters read back from a checkpoint's JSON: JSON has no tuples, so tuple-valued ones
    get their type back."""
    defaults = cls().get_params()
    return {k: tuple(v) if isinstance(v, list) and isinstance(defaults.get(k), tuple) else v
            for k, v in params.items()}


class _DiscreteAwareKind:
    """A family's ``likelihood_kind``, read through the fitted data spec: on a model fitted with
    integer or categorical columns an ``'exact'`` density scores the dequantisation bound, so it
    reads ``'bound'`` (``'estimate'``, ``'bound'`` and ``'none'`` stay as they are). Installed on
    every subclass that sets ``likelihood_kind`` (a string or a descriptor)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __get__(self, obj, owner=None) -> str:
        inner = self.inner
        kind = inner.__get__(obj, owner) if hasattr(type(inner), "__get__") else inner
        if obj is not None and kind == "exact":
            spec = obj.__dict__.get("spec_")
            if spec is not None and len(obj._dequantised(spec)):
                return "bound"
        return kind


def _image_shape(X: Any) -> tuple[int, ...] | None:
    """The image shape (without ``n``) of fit's ``X`` when it is an array of 3 or 4 dimensions, else None."""
    if X is None or is_frame(X) or isinstance(X, str):
        return None
    try:
        nd = np.ndim(X)
    except Exception:  # ragged input: check_array names the problem
        return None
    return tuple(int(s) for s in np.shape(X)[1:]) if nd in (3, 4) else None


def _image_spec(X: np.ndarray, spec: DataSpec) -> DataSpec:
    """Flattened images' spec: integer levels ``>= 0`` (the digits) make integer pixels on one range
    ``0 .. max`` (``DataSpec.image``); other values (float images) keep the inferred spec."""
    if (X < 0).any() or (X != np.floor(X)).any():
        return spec
    return DataSpec.image(X.shape[1], max(1, int(X.max())), spec.array_dtype)


def _read_fit_input(X: Any) -> tuple[np.ndarray, DataSpec]:
    """fit's ``X`` as coded float rows and its data spec (kinds, ranges, levels, constant columns)."""
    if is_frame(X):
        spec = DataSpec.infer(X)
        arr = check_array(X, "X", min_rows=2, spec=spec)
    else:
        arr = check_array(X, "X", min_rows=2)
        spec = DataSpec.infer(X, arr.shape[1])
    return arr, spec.fitted(arr)


def _dequant_rule(k: int, n: int) -> np.ndarray:
    """``n`` points of a fixed scrambled Sobol rule on ``[0, 1)^k`` (the same for every call)."""
    from scipy.stats import qmc

    return qmc.Sobol(d=k, scramble=True, seed=20240611).random(n)


def _hook_params(hook) -> set[str]:
    import inspect

    return set(inspect.signature(hook).parameters)


def _forwards_options(hook) -> bool:
    import inspect

    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(hook).parameters.values())


def _check_options(hook, opts: dict, what: str, positional: tuple[str, ...]) -> None:
    """Reject keyword options that the family's hook does not name (no silent typos)."""
    if not opts:
        return
    import inspect

    params = inspect.signature(hook).parameters
    named = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    valid = [k for k, p in params.items() if k not in positional and p.kind in named]
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        kind = "sampling" if what == "sample" else "scoring" if what == "score_samples" else what
        raise ValueError(f"{what}: unknown {kind} option(s) {unknown}{did_you_mean(unknown[0], valid) or ';'} "
                         f"valid options: {', '.join(valid) or 'none'}")


def row_keyed_normal(Z: np.ndarray, per_row: int, seed: int = 0) -> np.ndarray:
    """Standard normal draws ``(n, per_row)`` that depend only on each row's values and ``seed``.

    A stochastic score (an ELBO's noise, a trace probe) drawn this way gives a row the same
    number whichever batch it is scored in, and two calls the same numbers. Counter-based:
    splitmix64 of (row hash, draw index), then Box-Muller.
    """
    # keyed on the row rounded to 6 decimals (standardised units), so float noise in how the row
    # was computed (units, shifts) does not change its draws
    Z = np.ascontiguousarray(np.round(np.asarray(Z, dtype=np.float64), 6) + 0.0)
    words = Z.view(np.uint64).reshape(len(Z), -1)
    with np.errstate(over="ignore"):
        key = np.full(len(Z), np.uint64(seed & (2**64 - 1)) ^ np.uint64(0x9E3779B97F4A7C15), dtype=np.uint64)
        for j in range(words.shape[1]):
            key = _splitmix64(key ^ words[:, j])
        half = (per_row + 1) // 2
        ctr = key[:, None] + np.arange(1, 2 * half + 1, dtype=np.uint64)[None, :] * np.uint64(0xD1B54A32D192ED03)
        bits = _splitmix64(ctr) >> np.uint64(11)
    u = (bits.astype(np.float64) + 0.5) / float(2**53)  # (n, 2 half) in (0, 1)
    r = np.sqrt(-2.0 * np.log(u[:, :half]))
    theta = 2.0 * np.pi * u[:, half:]
    return np.concatenate([r * np.cos(theta), r * np.sin(theta)], 1)[:, :per_row]


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _to_numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else (1e308 if obj > 0 else -1e308)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.device):
        return str(obj)
    raise ValueError(f"cannot store {type(obj).__name__} in a checkpoint's metadata")


def _version() -> str:
    from genzoo import __version__

    return __version__


__all__ = ["GenerativeModel", "TorchGenerativeModel", "check_array", "load", "grid_gibbs_impute", "row_keyed_normal",
           "torch_seed", "seed_from", "resolve_device"]
