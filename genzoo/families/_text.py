"""What the string models of ``autoregressive`` and ``masked_diffusion`` share (not a family).

A family that can model text mixes :class:`TextFamily` in before its array base class. Its
public methods then look at what they are given: a list of strings goes the text way, anything
else the array way, unchanged. The family supplies five hooks:

- ``_text_build(spec, n_classes) -> nn.Module`` and ``_text_loss(rows) -> loss`` (rows: packed
  training rows, see :func:`pack`), or ``_text_fit_closed_form`` for a model fitted by counting;
- ``_text_log_prob(words, labels) -> (n,)`` log P(word) in nats (labels: class indices, or None
  for the null label);
- ``_text_sample(n, labels, seed, **opts) -> list[str]`` and
  ``_text_impute(words, mask, labels, seed, **opts) -> list[str]``.

Training packs whole strings into rows of ``4 * (max_len + 1)`` tokens (the transformer keeps
strings apart inside a row), so no step is spent on padding, and runs the one training loop of
``genzoo.training`` on those rows with AdamW, a warm-up + cosine learning rate and a weight
average (EMA), validated every 250 steps; the best-validated average is kept. Labels enter as
the first token of each string; label dropout replaces that token by the null start token, so
one network also learns the unconditional model for classifier-free guidance.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from genzoo.base import resolve_device, seed_from, torch_seed
from genzoo.datasets.text import END, TextSpec, check_words, is_text
from genzoo.errors import UnsupportedError
from genzoo.training import EMA, descend, train

#: strings held out for validation at most (the rest of ``validation_fraction`` stays in training)
MAX_VAL_STRINGS = 500
#: rows of one row-pack hold this many strings of the maximum length
PACK_FACTOR = 4
TEXT_GRAD_CLIP = 1.0
TEXT_EMA_DECAY = 0.999
#: hidden width of the transformer's MLP over its channels: 2, not GPT's 4 (names overfit a
#: 4x MLP by 3,000 steps; at 2x a step costs 29% less, so 4,000 steps fit in the same time and
#: reach a lower test NLL: autoregressive 1.918 vs 1.921, masked diffusion 2.083 vs 2.110 n/tok)
TEXT_MLP_RATIO = 2

# state of an array fit that a text fit replaces (and the other way round)
_ARRAY_STATE = ("n_features_in_", "loc_", "scale_", "z_lo_", "z_hi_", "spec_", "feature_names_in_")


def pack(ids: list[list[int]], starts: list[int], row_len: int, *, targets: bool) -> np.ndarray:
    """Whole strings packed greedily into rows: ``(rows, 3 * row_len)`` = tokens | targets | segments.

    A string ``c_1..c_n`` with start token ``s`` takes ``n + 1`` positions: tokens ``s c_1..c_n``,
    targets ``c_1..c_n END`` (``targets=True``; else the targets repeat the tokens) and one
    segment number. Unused positions have token END, target -1 and segment -1.
    """
    rows: list[tuple[list[int], list[int], list[int]]] = []
    tok: list[int] = []
    tgt: list[int] = []
    seg: list[int] = []
    for w, s in zip(ids, starts):
        if len(tok) + len(w) + 1 > row_len:
            rows.append((tok, tgt, seg))
            tok, tgt, seg = [], [], []
        k = seg[-1] + 1 if seg else 0
        tok += [s, *w]
        tgt += [*w, END] if targets else [-1, *w]
        seg += [k] * (len(w) + 1)
    rows.append((tok, tgt, seg))
    out = np.empty((len(rows), 3 * row_len), dtype=np.float32)
    for i, (a, b, c) in enumerate(rows):
        pad = row_len - len(a)
        out[i] = [*a, *[END] * pad, *b, *[-1] * pad, *c, *[-1] * pad]
    return out


def unpack(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, 3 R)`` float rows -> tokens, targets, segments, each ``(B, R)`` long."""
    r = rows.shape[1] // 3
    t = rows.long()
    return t[:, :r], t[:, r:2 * r], t[:, 2 * r:]


class TextFamily:
    """Mixin: a family's public methods accept lists of strings (see the module docstring)."""

    text_spec_: TextSpec | None = None
    #: MLP ratio of the network being built (checkpoints written before it was 2 are read by shape)
    _text_mlp_ratio: int = TEXT_MLP_RATIO
    #: whether the text model is trained by gradient descent (False: ``_text_fit_closed_form``)
    _text_trained: ClassVar[bool] = True

    # ------------------------------------------------------------------ dispatch
    def fit(self, X, y=None, **kwargs):
        """Learn p(x) from the rows of an array, or P(string) from a list of strings; returns self."""
        if isinstance(X, (list, tuple)) and not X:
            raise ValueError("X is empty; need at least 2 rows (or strings)")
        if not is_text(X):
            self.text_spec_ = None
            return super().fit(X, y, **kwargs)
        return self._fit_text(X, y, **kwargs)

    def sample(self, n_samples: int, y=None, random_state=None, nfe: int | None = None, **opts):
        """Rows (array fit) or a list of ``n_samples`` strings (text fit); ``nfe=K``: at most K network
        evaluations per sample."""
        if self.text_spec_ is None:
            kw = {} if nfe is None else {"nfe": nfe}
            return super().sample(n_samples, y=y, random_state=random_state, **kw, **opts)
        from genzoo.base import _check_options, check_n_samples

        n = check_n_samples(n_samples)
        _check_options(self._text_sample, opts, "sample", ("n", "labels", "seed"))
        seed = seed_from(random_state)
        labels = self._encode_sample_labels(y, n)
        if labels is None and self.n_classes_:  # the marginal: a class from the prior, then the string
            labels = np.random.default_rng(seed).choice(self.n_classes_, size=n, p=self.class_prior_)
        if nfe is not None:
            if isinstance(nfe, bool) or not isinstance(nfe, (int, np.integer)) or nfe < 1:
                raise ValueError(f"nfe must be a positive integer (network evaluations per sample); got {nfe!r}")
            opts = self._text_nfe_options(int(nfe), labels is not None, opts)
        with torch.no_grad():
            out = self._text_sample(n, labels, seed, **opts)
        if nfe is not None and self.last_nfe_ > nfe:
            raise ValueError(f"{self.family} spends {self.last_nfe_} network evaluations per string here; "
                             f"nfe={nfe} is below that")
        return out

    def _text_nfe_options(self, nfe: int, labelled: bool, opts: dict) -> dict:
        """Sampling options for a budget of ``nfe`` evaluations (default: none to choose; checked after)."""
        return opts

    def score_samples(self, X, y=None, *, null_label: bool = False, return_se: bool = False, **opts):
        """Log-density per row (array fit) or log P(string) per string in nats (text fit).

        For strings: the probability of the characters and the end of the string (exact for the
        autoregressive model, the ELBO for masked diffusion). Without ``y`` a labelled model scores
        the marginal it samples, ``log sum_k prior_k P(string | k)``.
        """
        if self.text_spec_ is None:
            if is_text(X):
                raise ValueError(f"this {self.family} model was fitted on arrays; it cannot score strings")
            return super().score_samples(X, y=y, null_label=null_label, return_se=return_se, **opts)
        if opts:
            raise ValueError(f"score_samples: unknown scoring option(s) {sorted(opts)} for a string model")
        words = self._text_input(X, "X")
        if null_label:
            if y is not None:
                raise ValueError("score_samples: give either y or null_label=True, not both")
            if not self.n_classes_:
                raise ValueError(f"null_label=True needs a model fitted with labels; this {self.family} had none")
            lp, se = self._text_log_prob_se(words, None)
        else:
            lp, se = self._text_marginal(words, self._encode_sample_labels(y, len(words)), with_se=True)
        return (lp, se) if return_se else lp

    def impute(self, X, random_state=None, *, mask: str | None = None, y=None, **opts):
        """Fill missing entries: NaNs of an array, or the ``mask`` characters of strings (text fit).

        For strings, the masked characters are drawn from the model's conditional given the rest
        (the length is kept); ``y`` conditions on labels (default: the model's marginal).
        """
        if self.text_spec_ is None:
            self._check_fitted()
            if mask is not None or y is not None:
                raise ValueError("impute: mask= and y= are for string models; this model was fitted on arrays")
            return super().impute(X, random_state=random_state, **opts)
        if not isinstance(mask, str) or len(mask) != 1:
            raise ValueError(f"impute: a string model needs mask= set to one character (e.g. mask='_'); got {mask!r}")
        if mask in self.text_spec_.chars:
            raise ValueError(f"impute: the mask character {mask!r} is in the model's vocabulary; choose another")
        words = self._text_input(X, "X", mask=mask)
        labels = self._encode_sample_labels(y, len(words))
        with torch.no_grad():
            return self._text_impute(words, mask, labels, seed_from(random_state), **opts)

    def sample_path(self, n_samples: int, y=None, random_state=None, n_frames: int = 5, **opts):
        if self.text_spec_ is not None:
            raise UnsupportedError(f"sample_path is for array data; this {self.family} model draws strings")
        return super().sample_path(n_samples, y=y, random_state=random_state, n_frames=n_frames, **opts)

    def _check_fitted(self) -> None:
        if self.text_spec_ is None:
            super()._check_fitted()

    def __sklearn_is_fitted__(self) -> bool:
        return self.text_spec_ is not None or super().__sklearn_is_fitted__()

    # ------------------------------------------------------------------ fitting
    def _fit_text(self, X, y=None, progress=None):
        from genzoo.params import validate_params

        validate_params(self)
        words = check_words(X, "X", min_items=2)
        labels = self._encode_fit_labels(y, len(words))
        spec = TextSpec.from_words(words)
        for k in _ARRAY_STATE:
            if k in self.__dict__:
                delattr(self, k)
        self.text_spec_ = spec
        self._text_mlp_ratio = TEXT_MLP_RATIO
        self.device_ = self.fit_device_ = str(resolve_device(getattr(self, "device", "cpu")))
        self.history_ = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}
        self.phases_ = []
        self.last_nfe_ = None
        seed = seed_from(getattr(self, "random_state", None))
        self._text_prepare(words, labels)
        if not self._text_trained:
            self.module_ = self._text_fit_closed_form(words, labels).to(torch.device(self.device_))
            return self
        # pack the strings (shuffled by the seed) into rows of whole strings
        order = np.random.default_rng(seed).permutation(len(words))
        ids = [spec.encode(words[i]) for i in order]
        starts = [spec.start_id(None if labels is None else int(labels[i])) for i in order]
        row_len = PACK_FACTOR * (spec.max_len + 1)
        rows = pack(ids, starts, row_len, targets=self._text_targets)
        if len(rows) < 8:  # a handful of strings: about one per row, so that some can be held out
            row_len = spec.max_len + 1
            rows = pack(ids, starts, row_len, targets=self._text_targets)
        vf = 0.1 if self.validation_fraction is None else float(self.validation_fraction)  # None: the default
        vf = min(vf, MAX_VAL_STRINGS / len(words))
        per_step = max(1, int(self.text_batch) // row_len)
        self._progress = progress  # read by _default_phase
        try:
            phase = self._default_phase(
                max_steps=int(self.text_steps), batch_size=per_step, lr=float(self.text_lr),
                optimizers=self._text_optimizers, step=self._text_step, val_loss=self._text_val_loss,
                setup=self._text_setup, ema=lambda: self._text_ema, validation_fraction=vf)
            self._record_phase(train(self, rows, None, phase, seed))
        finally:
            del self._progress
        # keep the weight average that validation judged best (the last one without validation)
        best = self.__dict__.pop("_text_best", None)
        if best is not None:
            self._text_ema.load_state_dict(best[1])
        self._text_ema.copy_to_source()
        _drop_ema_buffers(self.module_)
        del self._text_ema
        self.module_.eval()
        return self

    def _text_prepare(self, words: list[str], labels: np.ndarray | None) -> None:
        """Hook: fit what the model computes from the strings before training (e.g. a length model)."""

    def _text_setup(self, rows: np.ndarray) -> None:
        self.module_ = self._text_build(self.text_spec_, int(self.n_classes_)).to(torch.device(self.device_))
        self._text_ema = EMA(self.module_, TEXT_EMA_DECAY, host=self.module_)
        self._text_best: tuple[float, dict[str, torch.Tensor]] | None = None

    def _text_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """AdamW; weight decay on the matrices of the linear layers only (not embeddings, norms, biases)."""
        decay, rest = [], []
        for name, p in self.module_.named_parameters():
            (decay if p.dim() >= 2 and isinstance(_owner(self.module_, name), nn.Linear) else rest).append(p)
        groups = [{"params": decay, "weight_decay": float(self.text_weight_decay)},
                  {"params": rest, "weight_decay": 0.0}]
        return [torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99))]

    def _text_step(self, rows: torch.Tensor, y, step: int) -> float:
        (opt,) = self.optimizers_
        tok, tgt, seg = unpack(rows)
        tok = self._drop_start_labels(tok)
        return descend(self._text_loss(tok, tgt, seg), opt, self.module_.parameters(), TEXT_GRAD_CLIP)

    def _text_val_loss(self, rows: torch.Tensor, y) -> float:
        """The training objective on held-out strings (noise fixed), with the averaged weights; the
        best average so far is kept (late in training a small corpus is overfitted: the validation
        loss of names bottoms out at ~2,750-3,250 of 4,000 steps and rises by 0.004-0.007 after)."""
        tok, tgt, seg = unpack(rows)
        with torch_seed(12345, rows.device), self._text_ema.swapped():
            vl = float(self._text_loss(tok, tgt, seg))
        if self._text_best is None or vl < self._text_best[0]:
            self._text_best = (vl, self._text_ema.state_dict())
        return vl

    def _drop_start_labels(self, tok: torch.Tensor) -> torch.Tensor:
        """Label dropout on the start tokens (one per string): labelled start -> the null start token."""
        p = float(getattr(self, "label_dropout", 0.0))
        null = self.text_spec_.start_id(None)
        if not self.n_classes_ or p <= 0:
            return tok
        drop = (tok > null) & (torch.rand(tok.shape, device=tok.device) < p)
        return torch.where(drop, torch.full_like(tok, null), tok)

    # ------------------------------------------------------------------ scoring helpers
    def _text_input(self, X, name: str, mask: str | None = None) -> list[str]:
        self._check_fitted()
        if not is_text(X) and X is not None and not (isinstance(X, (list, tuple)) and len(X) == 0):
            raise ValueError(f"{name} must be a list of strings: this {self.family} model was fitted on text")
        words = check_words(X, name)
        self.text_spec_.check(words, name, mask=mask)
        return words

    def _text_log_prob_se(self, words: list[str], labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``_text_log_prob`` and its per-string Monte Carlo standard error (zeros where it is exact)."""
        out = self._text_log_prob(words, labels, with_se=True) if self._text_has_se else \
            self._text_log_prob(words, labels)
        return out if isinstance(out, tuple) else (out, np.zeros(len(words)))

    _text_has_se: ClassVar[bool] = False

    def _text_marginal(self, words: list[str], labels: np.ndarray | None, with_se: bool = False):
        """log P(word | label), or for a labelled model without labels ``log sum_k prior_k P(word | k)``
        (its standard error: the classes' combined by their responsibilities)."""
        if labels is not None or not self.n_classes_:
            lp, se = self._text_log_prob_se(words, labels) if with_se else (self._text_log_prob(words, labels), None)
            return (lp, se) if with_se else lp
        from scipy.special import logsumexp, softmax

        K, n = int(self.n_classes_), len(words)
        lk, sk = self._text_log_prob_se(words * K, np.repeat(np.arange(K), n))
        lk = lk.reshape(K, n) + np.log(np.maximum(self.class_prior_, 1e-300))[:, None]
        lp = logsumexp(lk, axis=0)
        return (lp, (softmax(lk, axis=0) * sk.reshape(K, n)).sum(0)) if with_se else lp

    def _starts(self, labels, n: int, device) -> torch.Tensor:
        """Start tokens (n,) for class indices ``labels`` (array or tensor; None, or the null index
        ``n_classes_``, gives the null / unlabelled start token)."""
        spec = self.text_spec_
        null = torch.full((n,), spec.start_id(None), dtype=torch.long, device=device)
        if labels is None:
            return null
        lab = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels,
                              dtype=torch.long, device=device)
        return torch.where(lab >= int(self.n_classes_), null, lab + spec.start_id(0))

    # ------------------------------------------------------------------ checkpoint
    def _get_meta(self) -> dict:
        meta = super()._get_meta()
        if self.text_spec_ is not None:
            meta["text_spec_"] = self.text_spec_.to_meta()
        return meta

    def _set_meta(self, meta: dict) -> None:
        meta = dict(meta)
        spec = meta.pop("text_spec_", None)
        super()._set_meta(meta)
        self.text_spec_ = None if spec is None else TextSpec.from_meta(spec)

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        if self.text_spec_ is None:
            return super()._set_arrays(arrays)
        dev = torch.device(self.device_)
        sd = {k[len("module."):]: torch.as_tensor(v, device="cpu")
              for k, v in arrays.items() if k.startswith("module.")}
        w = sd.get("blocks.0.mlp.0.weight")
        self._text_mlp_ratio = TEXT_MLP_RATIO if w is None else int(w.shape[0] // w.shape[1])
        self.module_ = self._text_build(self.text_spec_, int(self.n_classes_)).to(dev)
        self.module_.load_state_dict(sd, strict=True)
        self.module_.eval()


def _owner(module: nn.Module, param_name: str) -> nn.Module:
    return module.get_submodule(param_name.rsplit(".", 1)[0]) if "." in param_name else module


def _drop_ema_buffers(module: nn.Module, prefix: str = "ema_") -> None:
    """Remove the EMA's shadow buffers once their values have been copied into the weights."""
    for name in [k for k in module._buffers if k.startswith(prefix)]:
        del module._buffers[name]


def word_keys(words: list[str], labels, seed: int) -> list[np.random.Generator]:
    """One generator per (string, label): a string's Monte Carlo draws do not depend on its batch."""
    import hashlib

    out = []
    for i, w in enumerate(words):
        lab = -1 if labels is None else int(labels[i])
        h = hashlib.blake2b(f"{lab}\x00{w}".encode(), digest_size=8).digest()
        out.append(np.random.default_rng([int(seed) & (2**63 - 1), int.from_bytes(h, "little")]))
    return out


def chunks(n: int, size: int):
    for a in range(0, n, size):
        yield a, min(n, a + size)


def categorical(logp: torch.Tensor) -> torch.Tensor:
    """One draw per row from log-probabilities ``(..., K)`` (uses torch's RNG)."""
    return torch.distributions.Categorical(logits=logp).sample()


__all__ = ["TextFamily", "pack", "unpack", "word_keys", "chunks", "categorical", "MAX_VAL_STRINGS"]
