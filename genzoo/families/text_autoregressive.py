"""The autoregressive family on strings: P(word) = prod_t P(c_t | c_<t), ending with END.

One breath: a causal transformer reads ``start c_1 .. c_{t-1}`` and predicts ``c_t`` (a
character or END); the loss is the cross-entropy of every next character and of the end token,
in nats per token (characters plus END, makemore's convention). The likelihood is exact and
normalised over strings of at most ``max_len`` characters (the longest training string): after
``max_len`` characters the model puts all its mass on END.

- ``text_model='bigram'``: the classical baseline, P(c_t | c_{t-1}) from counts with add-alpha
  smoothing (``text_alpha``), exact, fitted by counting; same sampling, scoring and infill.
- Sampling: ancestral, one network pass per character (batched over strings), temperature 1.
- Labels: the start token carries the class; ``guidance=g`` mixes the next-token log-probabilities
  as ``uncond + g (cond - uncond)`` and renormalises (genzoo's one convention).
- Infill (``impute(words, mask='_')``): exact for the model by enumeration when the masked
  characters have at most ``ENUMERATE_MAX`` joint values (3 characters of 26 letters): every
  completion is scored exactly and one is drawn from the normalised scores. Beyond that, Gibbs
  sampling on the exact likelihood: each masked character in turn is redrawn from its exact
  conditional given all the others (enumerating its values), ``sweeps`` sweeps from a random start
  -- a Markov chain whose stationary law is the model's conditional.
"""

from __future__ import annotations

import itertools
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genzoo.base import _check_options, torch_seed
from genzoo.datasets.text import END, TextSpec
from genzoo.families._text import TextFamily, categorical, chunks
from genzoo.nn.transformer import Transformer
from genzoo.objectives.guidance import guided

#: enumerate every completion of an infill query up to this many joint values
ENUMERATE_MAX = 20_000
TEXT_MODELS = ("transformer", "bigram")


class BigramTable(nn.Module):
    """Next-token log-probabilities that depend on the current token only: ``(B, T) -> (B, T, K + 1)``."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.register_buffer("logp", torch.full((n_in, n_out), -float(np.log(n_out))))

    def forward(self, tok: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        return self.logp[tok]


class TextAutoregressive(TextFamily):
    """The string model of the ``autoregressive`` family (mixed into its estimator class)."""

    _text_targets: ClassVar[bool] = True

    @property
    def _text_trained(self) -> bool:  # the bigram baseline is fitted by counting
        return self.text_model != "bigram"

    # ------------------------------------------------------------------ network and objective
    def _text_build(self, spec: TextSpec, n_classes: int) -> nn.Module:
        n_in, n_out = spec.n_tokens(n_classes), spec.n_chars + 1  # outputs: END and the characters
        if self.text_model == "bigram":
            return BigramTable(n_in, n_out)
        return Transformer(n_in, n_out, spec.max_len + 1, d_model=int(self.text_width), n_layers=int(self.text_layers),
                           n_heads=int(self.text_heads), dropout=float(self.text_dropout),
                           mlp_ratio=self._text_mlp_ratio, causal=True)

    def _text_loss(self, tok: torch.Tensor, tgt: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        # maximum likelihood: cross-entropy of every next character and end token (nats per token)
        logits = self.module_(tok, seg)  # (B, R, K + 1)
        return F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=-1)

    def _text_fit_closed_form(self, words: list[str], labels: np.ndarray | None) -> nn.Module:
        """Bigram counts with add-``text_alpha`` smoothing; each string also counts from the null start."""
        if labels is not None:
            raise ValueError("the bigram baseline does not take labels; fit it without y")
        spec = self.text_spec_
        table = BigramTable(spec.n_tokens(0), spec.n_chars + 1)
        counts = np.zeros(tuple(table.logp.shape))
        for w in words:
            ids = [spec.start_id(None), *spec.encode(w), END]
            np.add.at(counts, (ids[:-1], ids[1:]), 1.0)
        a = float(self.text_alpha)
        p = (counts + a) / (counts + a).sum(1, keepdims=True)
        table.logp.copy_(torch.as_tensor(np.log(p), dtype=torch.float32))
        return table

    def _text_next_log_probs(self, tok: torch.Tensor) -> torch.Tensor:
        """log P(next | prefix) at every position of ``tok`` (B, T): (B, T, K + 1); after ``max_len``
        characters only END is possible, so the model is normalised over the strings it can hold."""
        lp = F.log_softmax(self.module_(tok).float(), -1)
        L = self.text_spec_.max_len
        if tok.shape[1] > L:
            last = torch.full_like(lp[:, L], -float("inf"))
            last[:, END] = 0.0
            lp = torch.cat([lp[:, :L], last[:, None], lp[:, L + 1:]], 1)
        return lp

    # ------------------------------------------------------------------ likelihood
    def _text_log_prob(self, words: list[str], labels: np.ndarray | None) -> np.ndarray:
        """Exact log P(word + END | label) per word, in nats (labels None: the null / unlabelled start)."""
        spec, dev = self.text_spec_, torch.device(self.device_)
        out = np.empty(len(words))
        ids = [spec.encode(w) for w in words]
        order = np.argsort([len(w) for w in words], kind="stable")  # similar lengths share a batch
        with torch.no_grad():
            for a, b in chunks(len(words), 4096):
                rows = order[a:b]
                T = max(len(ids[i]) for i in rows) + 1
                tok = torch.full((len(rows), T), END, dtype=torch.long, device="cpu")
                tgt = torch.full((len(rows), T), -1, dtype=torch.long, device="cpu")
                for j, i in enumerate(rows):
                    tok[j, 1:len(ids[i]) + 1] = torch.tensor(ids[i], dtype=torch.long, device="cpu")
                    tgt[j, :len(ids[i]) + 1] = torch.tensor([*ids[i], END], dtype=torch.long, device="cpu")
                tok[:, 0] = self._starts(None if labels is None else labels[rows], len(rows), "cpu")
                lp = self._text_next_log_probs(tok.to(dev))
                tgt = tgt.to(dev)
                ll = lp.gather(2, tgt.clamp(min=0)[..., None])[..., 0]
                out[rows] = torch.where(tgt >= 0, ll, 0.0).double().sum(1).cpu().numpy()
        return out

    # ------------------------------------------------------------------ sampling
    def _text_next_guided(self, labels: torch.Tensor | None, guidance: float):
        """``f(body) -> log P(next | start(label), body)`` at the last position, with guidance."""
        null = int(self.n_classes_) or None

        def fn(body: torch.Tensor, lab: torch.Tensor | None) -> torch.Tensor:
            start = self._starts(lab, len(body), body.device)  # (B,) the label rides on the start token
            return F.log_softmax(self.module_(torch.cat([start[:, None], body], 1))[:, -1].float(), -1)

        f, cost = guided(fn, labels, guidance, null)
        return (lambda body: F.log_softmax(f(body), -1)), cost

    def _text_sample(self, n: int, labels: np.ndarray | None, seed: int, guidance: float | None = None) -> list[str]:
        """Ancestral sampling, all strings in one batch, one pass (two with guidance) per character;
        after ``max_len`` characters the end is certain and costs no pass."""
        spec, dev = self.text_spec_, torch.device(self.device_)
        g = float(self.guidance if guidance is None else guidance)
        lab = None if labels is None else torch.as_tensor(labels, dtype=torch.long, device=dev)
        f, cost = self._text_next_guided(lab, g)
        body = torch.zeros(n, 0, dtype=torch.long, device=dev)
        alive = torch.ones(n, dtype=torch.bool, device=dev)
        nfe = 0
        with torch_seed(seed, dev):
            for _ in range(spec.max_len):
                c = torch.where(alive, categorical(f(body)), END)  # (n,)
                nfe += cost
                body = torch.cat([body, c[:, None]], 1)
                alive &= c != END
                if not bool(alive.any()):
                    break
        self.last_nfe_ = nfe
        return [spec.decode(r) for r in body.cpu().numpy()]

    # ------------------------------------------------------------------ infill
    def _text_impute(self, words: list[str], mask: str, labels: np.ndarray | None, seed: int,
                     **opts) -> list[str]:
        _check_options(self._text_gibbs_options, opts, "impute", ())
        sweeps = int(opts.get("sweeps", 30))
        if sweeps < 1:
            raise ValueError(f"impute: sweeps must be a positive integer; got {sweeps}")
        rng = np.random.default_rng(seed)
        chars = self.text_spec_.chars
        K = len(chars)
        out = [list(w) for w in words]
        holes = {i: [j for j, c in enumerate(w) if c == mask] for i, w in enumerate(words)}
        enum = [i for i, h in holes.items() if h and K ** len(h) <= ENUMERATE_MAX]
        gibbs = [i for i, h in holes.items() if K ** len(h) > ENUMERATE_MAX]
        # exact: every completion of every query scored in one batch, one drawn per query
        cands, owner = [], []
        for i in enum:
            for fill in itertools.product(chars, repeat=len(holes[i])):
                s = out[i].copy()
                for j, c in zip(holes[i], fill):
                    s[j] = c
                cands.append("".join(s))
                owner.append(i)
        if cands:
            lp, owner = self._text_marginal(cands, self._rows_labels(labels, owner)), np.asarray(owner)
            for i in enum:
                rows = np.flatnonzero(owner == i)
                out[i] = list(cands[rows[_draw(lp[rows], rng)]])
        # Gibbs on the exact likelihood: each hole redrawn from its exact conditional given the rest
        for i in gibbs:
            out[i] = [chars[rng.integers(K)] if c == mask else c for c in out[i]]
        for _ in range(sweeps if gibbs else 0):
            for h in range(max(len(holes[i]) for i in gibbs)):
                todo = [i for i in gibbs if len(holes[i]) > h]
                cands = ["".join(out[i][:j] + [c] + out[i][j + 1:]) for i in todo for j in [holes[i][h]] for c in chars]
                lp = self._text_marginal(cands, self._rows_labels(labels, np.repeat(todo, K))).reshape(len(todo), K)
                for i, row in zip(todo, lp):
                    out[i][holes[i][h]] = chars[_draw(row, rng)]
        self.last_nfe_ = None
        return ["".join(s) for s in out]

    @staticmethod
    def _rows_labels(labels: np.ndarray | None, owner) -> np.ndarray | None:
        return None if labels is None else np.asarray(labels)[np.asarray(owner, dtype=np.int64)]

    def _text_gibbs_options(self, sweeps: int = 30) -> None:
        """Options of string infill: ``sweeps`` of the Gibbs sampler (used beyond enumeration)."""


def _draw(logp: np.ndarray, rng: np.random.Generator) -> int:
    p = np.exp(logp - np.max(logp))
    return int(rng.choice(len(p), p=p / p.sum()))


__all__ = ["TextAutoregressive", "BigramTable", "TEXT_MODELS", "ENUMERATE_MAX"]
