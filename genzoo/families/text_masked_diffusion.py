"""The masked_diffusion family on strings: a length model and absorbing-state diffusion of the characters.

A string of n characters is ``P(n) * P(c_1..c_n | n)``. The length distribution is a categorical
over 0..max_len fitted by counting (add-one smoothing; one per label, plus the null label's over
every string): exact. The characters given the length are an absorbing-state diffusion (MDLM,
Sahoo et al. 2024; MD4, Shi et al. 2024): each character is replaced by MASK with probability t,
and a bidirectional transformer (told the length by a second position embedding counted from the
end) predicts every masked character from the rest. No position is spent on padding.

One breath: the continuous-time ELBO with the linear schedule ``alpha_t = 1 - t``,
``log P(c | n) >= -int_0^1 (1/t) E[sum_{masked i} -log p(c_i | c_t)] dt``, integrates over t in
closed form into a sum over the number m of masked characters: with m uniform on 1..n and a
uniformly random m-subset M, the per-string loss ``(n / m) sum_{i in M} -log p(c_i | c_-M)`` is an
unbiased estimate of the negative bound. Training pays it per character, with m drawn from
stratified uniforms across the batch (lower variance, the same expectation).

The score (``likelihood_kind='bound'``) is ``log P(n) + ELBO``. The ELBO is exact (every masked
subset, weighted) when a string has at most ``n_mc`` non-empty subsets (up to 6 characters at
the default 64); beyond that it is a Monte Carlo estimate from ``ceil(n_mc / n)`` random orders
per string, each contributing its n nested subsets (first m positions, m = 1..n), so every mask
count is covered equally. The orders are keyed on the string and its label: a string gets the
same number in any batch and in every call.

Sampling draws n, then unmasks the n characters over ``steps`` steps (after step k,
``round(n k / steps)`` are revealed, in a random order; several revealed in one step are drawn
independently given the rest). ``steps`` >= n reveals one at a time: an exact draw from the
model's any-order factorisation. Infill fixes the given characters and the length and unmasks
the rest the same way (by default one at a time: exact for the model's conditional).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genzoo.base import _check_options, torch_seed
from genzoo.datasets.text import TextSpec
from genzoo.families._text import TextFamily, categorical, word_keys
from genzoo.nn.transformer import Transformer
from genzoo.objectives.guidance import guided

#: rows of one network pass when scoring (orders x strings)
SCORE_BATCH = 8192


class TextMaskedDiffusion(TextFamily):
    """The string model of the ``masked_diffusion`` family (mixed into its estimator class)."""

    _text_targets: ClassVar[bool] = False

    # ------------------------------------------------------------------ network, length model
    def _text_build(self, spec: TextSpec, n_classes: int) -> nn.Module:
        # inputs: start (label) token, characters and MASK; outputs: the characters
        return Transformer(spec.n_tokens(n_classes), spec.n_chars, spec.max_len + 1, d_model=int(self.text_width),
                           n_layers=int(self.text_layers), n_heads=int(self.text_heads),
                           dropout=float(self.text_dropout),
                           mlp_ratio=self._text_mlp_ratio, causal=False, end_positions=True)

    def _text_prepare(self, words: list[str], labels: np.ndarray | None) -> None:
        """The length model: log P(n | label) from counts with add-one smoothing, (n_classes + 1, max_len + 1);
        the last row (the null label) counts every string."""
        L, K = self.text_spec_.max_len, int(self.n_classes_)
        counts = np.ones((K + 1, L + 1))
        lengths = np.array([len(w) for w in words])
        np.add.at(counts, (np.full(len(words), K), lengths), 1.0)
        if labels is not None:
            np.add.at(counts, (labels, lengths), 1.0)
        self.length_log_prob_ = np.log(counts / counts.sum(1, keepdims=True))

    # ------------------------------------------------------------------ objective
    def _text_loss(self, tok: torch.Tensor, tgt: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """MDLM negative ELBO per character on packed rows: per string m ~ U{1..n}, a random m-subset
        masked, loss (n / m) * cross-entropy on the masked characters."""
        B, R = tok.shape
        dev = tok.device
        char = tgt >= 0  # (B, R) character positions (the start tokens and padding are not)
        ar = torch.arange(R, device=dev).expand(B, R)
        first = torch.ones_like(char)
        first[:, 1:] = seg[:, 1:] != seg[:, :-1]  # a string (or the padding) starts here
        start = torch.cummax(torch.where(first, ar, torch.zeros_like(ar)), 1).values  # its first position
        flat = (seg.clamp(min=0) + R * torch.arange(B, device=dev)[:, None]).flatten()  # string id per position
        n = torch.zeros(B * R, device=dev).index_add_(0, flat, char.flatten().float())[flat].view(B, R)
        # m per string from stratified uniforms (a random stratum each, one shared offset): the batch
        # covers the mask counts evenly, which lowers the variance of the gradient
        slots = flat[(first & (seg >= 0)).flatten()]  # (S,) one per string
        u = torch.zeros(B * R, device=dev)
        u[slots] = (torch.randperm(len(slots), device=dev) + torch.rand(1, device=dev)) / len(slots)
        m = torch.floor(u[flat].view(B, R) * n) + 1  # (B, R) masked characters of each position's string
        # a uniform m-subset: rank the string's characters by a random key; the start token ranks last
        key = torch.where(char, torch.rand(B, R, device=dev), torch.full((B, R), 1.5, device=dev))
        key = torch.where(seg >= 0, key + 2.0 * seg, torch.full_like(key, 4.0 * R))  # strings in row order
        rank = key.argsort(1).argsort(1)  # (B, R) position in the sorted row
        masked = char & (rank - start < m)
        logits = self.module_(torch.where(masked, self.text_spec_.mask_id, tok), seg)  # (B, R, K)
        ce = F.cross_entropy(logits[masked], tgt[masked] - 1, reduction="none")
        return (ce * (n / m)[masked]).sum() / char.sum().clamp(min=1)

    # ------------------------------------------------------------------ likelihood bound
    _text_has_se: ClassVar[bool] = True

    def _text_log_prob(self, words: list[str], labels: np.ndarray | None, with_se: bool = False):
        """log P(n | label) + ELBO of the characters given n, per string (see the module docstring);
        ``with_se``: also the Monte Carlo standard error (zero for strings whose ELBO is exact)."""
        spec, dev = self.text_spec_, torch.device(self.device_)
        n_mc = int(self.n_mc)
        lab = np.full(len(words), int(self.n_classes_)) if labels is None else np.asarray(labels)
        out = self.length_log_prob_[lab, [len(w) for w in words]].astype(np.float64)
        se = np.zeros(len(words))
        keys = word_keys(words, labels, seed=0)
        by_len: dict[int, list[int]] = {}
        for i, w in enumerate(words):
            if w:
                by_len.setdefault(len(w), []).append(i)
        for n, idx in by_len.items():
            masked, weight, exact = _elbo_masks(n, n_mc, [keys[i] for i in idx])  # (S, E, n) each
            ids = np.array([spec.encode(words[i]) for i in idx])  # (S, n)
            E = masked.shape[1]
            x = np.where(masked, spec.mask_id, ids[:, None, :]).reshape(-1, n)  # rows: (string, evaluation)
            starts = self._starts(lab[idx], len(idx), "cpu").numpy()
            x = np.concatenate([np.repeat(starts, E)[:, None], x], 1)
            w = np.broadcast_to(weight, masked.shape).reshape(-1, n).copy()
            tgt = torch.as_tensor(np.repeat(ids, E, axis=0) - 1, device=dev)
            ll = np.empty(len(x))
            with torch.no_grad():
                for a in range(0, len(x), SCORE_BATCH):
                    b = slice(a, a + SCORE_BATCH)
                    lp = F.log_softmax(self.module_(torch.as_tensor(x[b], device=dev)).float(), -1)
                    lp = lp[:, 1:].gather(2, tgt[b, :, None])[..., 0]  # (b, n) log p(true char) per position
                    ll[b] = (lp.double() * torch.as_tensor(w[b], device=dev)).sum(1).cpu().numpy()
            ll = ll.reshape(len(idx), E)
            out[idx] += ll.sum(1)
            if not exact:  # Monte Carlo: R orders of n evaluations each, every order an estimate
                R = E // n
                per_order = ll.reshape(len(idx), R, n).sum(2) * R  # (S, R)
                se[idx] = per_order.std(1, ddof=1) / np.sqrt(R) if R > 1 else np.nan
        return (out, se) if with_se else out

    # ------------------------------------------------------------------ sampling and infill
    def _text_unmask(self, x: torch.Tensor, labels: torch.Tensor | None, steps: int | None, guidance: float) -> int:
        """Reveal the MASK entries of ``x`` (B, 1 + n; equal lengths, start token first) in place over
        ``steps`` steps (None: one per step); returns the network evaluations spent."""
        mask_id = self.text_spec_.mask_id
        body = x[:, 1:]
        masked = body == mask_id
        todo = masked.sum(1)  # (B,)
        big = int(todo.max()) if len(x) else 0
        steps = big if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"steps must be a positive integer; got {steps}")
        null = int(self.n_classes_) or None

        def fn(b: torch.Tensor, lab: torch.Tensor | None) -> torch.Tensor:
            start = self._starts(lab, len(b), b.device)
            return F.log_softmax(self.module_(torch.cat([start[:, None], b], 1))[:, 1:].float(), -1)

        f, cost = guided(fn, labels, guidance, null)
        key = torch.rand(masked.shape, device=x.device).masked_fill(~masked, 2.0)
        order = key.argsort(1).argsort(1)  # reveal order: the masked positions first, randomly
        nfe, before = 0, torch.zeros_like(todo)
        for k in range(1, steps + 1):
            after = torch.round(todo.double() * k / steps).long()
            new = masked & (order >= before[:, None]) & (order < after[:, None])
            before = after
            if not bool(new.any()):
                continue
            draw = categorical(F.log_softmax(f(body), -1)) + 1  # (B, n) character ids
            body[new] = draw[new]
            nfe += cost
        return nfe

    def _text_fill(self, x: np.ndarray, labels: np.ndarray | None, seed: int, steps: int | None,
              guidance: float) -> np.ndarray:
        """Unmask rows of token ids (start token first, MASK where unknown), grouped by length."""
        dev = torch.device(self.device_)
        lengths = (x[:, 1:] != -1).sum(1)  # -1 marks positions past a row's end
        nfe = 0
        with torch_seed(seed, dev):
            for n in np.unique(lengths):
                rows = np.flatnonzero(lengths == n)
                if n == 0 or not (x[rows, 1:n + 1] == self.text_spec_.mask_id).any():
                    continue
                xt = torch.as_tensor(x[rows, :n + 1], dtype=torch.long, device=dev)
                lab = None if labels is None else torch.as_tensor(labels[rows], dtype=torch.long, device=dev)
                nfe = max(nfe, self._text_unmask(xt, lab, steps, guidance))
                x[rows, :n + 1] = xt.cpu().numpy()
        self.last_nfe_ = nfe
        return x

    def _text_sample(self, n: int, labels: np.ndarray | None, seed: int, steps: int | None = None,
                     guidance: float | None = None) -> list[str]:
        """n ~ P(n | label), then ``steps`` parallel unmasking steps (default ``self.steps``; None = max_len)."""
        spec = self.text_spec_
        rng = np.random.default_rng(seed)
        K = int(self.n_classes_)
        lab = np.full(n, K) if labels is None else np.asarray(labels)
        g = float(self.guidance if guidance is None else guidance)
        # the length follows the same guidance rule: log p_g(n) = log p_u + g (log p_c - log p_u)
        lp = self.length_log_prob_
        lp = lp[K][None, :] + g * (lp - lp[K][None, :]) if K and g != 1.0 else lp
        p = np.exp(lp - lp.max(1, keepdims=True))
        lengths = np.array([rng.choice(spec.max_len + 1, p=p[k] / p[k].sum()) for k in lab])
        x = np.full((n, spec.max_len + 1), -1, dtype=np.int64)
        for i, L in enumerate(lengths):
            x[i, 1:L + 1] = spec.mask_id
        x[:, 0] = self._starts(labels, n, "cpu").numpy()
        steps = self.steps if steps is None else steps
        steps = spec.max_len if steps is None else steps
        x = self._text_fill(x, labels, int(rng.integers(2**62)), steps, g)
        return [spec.decode(r[1:L + 1]) for r, L in zip(x, lengths)]

    def _text_nfe_options(self, nfe: int, labelled: bool, opts: dict) -> dict:
        """``nfe`` evaluations buy ``nfe`` unmasking steps (half that with guidance, two passes a step)."""
        if "steps" in opts:
            raise ValueError("sample: nfe= chooses steps itself; give nfe or steps, not both")
        guided_ = labelled and float(opts.get("guidance", self.guidance)) not in (0.0, 1.0)
        return {**opts, "steps": max(1, nfe // 2) if guided_ else nfe}

    def _text_impute(self, words: list[str], mask: str, labels: np.ndarray | None, seed: int, **opts) -> list[str]:
        """The given characters and the length fixed; the masked ones unmasked by the model (default one
        per step). Without ``y`` a labelled model fills with its null-label (unconditional) network."""
        _check_options(self._text_infill_options, opts, "impute", ())
        steps = opts.get("steps")
        spec = self.text_spec_
        x = np.full((len(words), spec.max_len + 1), -1, dtype=np.int64)
        for i, w in enumerate(words):
            x[i, 1:len(w) + 1] = [spec.mask_id if c == mask else spec.encode(c)[0] for c in w]
        x[:, 0] = self._starts(labels, len(words), "cpu").numpy()
        x = self._text_fill(x, labels, seed, steps, 1.0)
        return [spec.decode(r[1:len(w) + 1]) for r, w in zip(x, words)]

    def _text_infill_options(self, steps: int | None = None) -> None:
        """Options of string infill: ``steps`` unmasking steps (None: one masked character per step)."""

    # ------------------------------------------------------------------ checkpoint
    def _get_meta(self) -> dict:
        meta = super()._get_meta()
        if self.text_spec_ is not None:
            meta["length_log_prob_"] = self.length_log_prob_
        return meta

    def _set_meta(self, meta: dict) -> None:
        meta = dict(meta)
        lp = meta.pop("length_log_prob_", None)
        super()._set_meta(meta)
        if lp is not None:
            self.length_log_prob_ = np.asarray(lp, dtype=np.float64)


def _elbo_masks(n: int, n_mc: int, keys: list[np.random.Generator]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Masks ``(S, E, n)`` and per-position weights of the ELBO
    ``sum_m (1/m) E_{|M|=m} sum_{i in M} log p(c_i | c_-M)`` for S strings of length n.

    Every non-empty subset, weight ``1 / (m C(n, m))``, when there are at most ``n_mc`` of them (the
    exact ELBO); else ``ceil(n_mc / n)`` random orders per string (from its key), each giving its n
    nested subsets (first m positions), weight ``1 / (m R)``. The flag says which (True: exact).
    """
    S = len(keys)
    if 2**n - 1 <= n_mc:
        bits = (np.arange(1, 2**n)[:, None] >> np.arange(n)[None, :]) & 1  # (E, n) every subset
        masked = bits.astype(bool)
        m = masked.sum(1, keepdims=True)
        comb = np.array([math.comb(n, int(k)) for k in m[:, 0]])[:, None]
        weight = masked / (m * comb)
        return np.broadcast_to(masked, (S, *masked.shape)), weight[None], True
    R = math.ceil(n_mc / n)
    rank = np.stack([np.stack([k.permutation(n) for _ in range(R)]) for k in keys])  # (S, R, n)
    m = np.arange(1, n + 1)
    masked = (rank[:, :, None, :] < m[None, None, :, None]).reshape(S, R * n, n)  # order r, count m
    weight = masked / np.tile(m, R)[None, :, None] / R
    return masked, weight, False


__all__ = ["TextMaskedDiffusion"]
