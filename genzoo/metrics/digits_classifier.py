"""The digits classifier behind genzoo's image metrics (the Inception network of 8x8 digits).

A small conv net trained once by genzoo on the digits' train split (the first 1,000 images),
with the validation split (the next 350) choosing the epoch; its weights ship in the package
(``genzoo/metrics/data/digits_classifier.npz``, about 150 KB) with the accuracies they reached:
train 1.000, validation 0.991, test 0.984 (150 epochs, seed 0, 7 s on 2 cores; scikit-learn's MLP
in the acceptance check reaches 0.931). ``benchmarks/train_digits_classifier.py`` retrains it and
rewrites that file.

Architecture: pixels / 16 -> conv 3x3 (16) -> ReLU -> conv 3x3 stride 2 (32) -> ReLU -> linear
(64) -> ReLU -> linear (10). The 64 ReLU units before the last layer are the feature map of
FD-digits (the FID analogue), precision / recall and density / coverage; the softmax of the last
layer is the class posterior of the Inception-Score analogue and of class alignment.

It is not the acceptance check's classifier (scikit-learn's MLP there), so the two judge
samples independently.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import nn

WEIGHTS = Path(__file__).parent / "data" / "digits_classifier.npz"
N_LEVELS = 17  # the digits' grey levels 0 .. 16
N_FEATURES = 64


class DigitsNet(nn.Module):
    """The classifier: ``features(x)`` (n, 64) penultimate ReLU units, ``forward(x)`` (n, 10) logits."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, stride=2)
        self.fc1 = nn.Linear(32 * 4 * 4, N_FEATURES)
        self.fc2 = nn.Linear(N_FEATURES, 10)
        self.drop = nn.Dropout(0.3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return torch.relu(self.fc1(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.features(x)))


def as_input(images) -> torch.Tensor:
    """Images (n, 8, 8) or (n, 1, 8, 8) or rows of 64 pixels, levels 0..16 -> float tensor (n, 1, 8, 8) in [0, 1]."""
    A = np.asarray(images, dtype=np.float32)
    if A.ndim == 2 and A.shape[1] == 64 or A.ndim == 4 and A.shape[1:] == (1, 8, 8) or A.shape[1:] == (8, 8):
        return torch.from_numpy(A.reshape(len(A), 1, 8, 8) / (N_LEVELS - 1))
    raise ValueError(f"expected 8x8 digit images (n, 8, 8), (n, 1, 8, 8) or (n, 64); got shape {A.shape}")


def _shifted(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image moved by up to one pixel in each direction (zero fill): the augmentation."""
    n = len(x)
    pad = nn.functional.pad(x, (1, 1, 1, 1))
    dy, dx = torch.randint(0, 3, (2, n), generator=g)
    rows = (dy[:, None] + torch.arange(8))[:, :, None].expand(n, 8, 8)
    cols = (dx[:, None] + torch.arange(8))[:, None, :].expand(n, 8, 8)
    return pad[torch.arange(n)[:, None, None], 0, rows, cols][:, None]


def train_digits_classifier(epochs: int = 150, batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
                            verbose: bool = False) -> tuple[DigitsNet, dict]:
    """Train the classifier on the digits' train split; keep the epoch with the best validation
    accuracy (ties: the later one). Returns ``(net, info)``, ``info`` with the three accuracies."""
    from genzoo.datasets import get

    ds = get("digits")
    (Xtr, ytr), (Xva, yva), (Xte, yte) = (ds.split(p) for p in ("train", "val", "test"))
    xtr, xva, xte = as_input(Xtr), as_input(Xva), as_input(Xte)
    ttr = torch.from_numpy(ytr)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = DigitsNet()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    best, best_state, best_epoch = -1.0, None, -1
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            loss = nn.functional.cross_entropy(net(_shifted(xtr[idx], g)), ttr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        acc = _accuracy(net, xva, yva)
        if acc >= best:
            best, best_epoch = acc, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if verbose and epoch % 10 == 0:
            print(f"epoch {epoch}: loss {loss.item():.3f}, validation accuracy {acc:.4f}", flush=True)
    net.load_state_dict(best_state)
    net.eval()
    info = {"epoch": best_epoch, "train_accuracy": _accuracy(net, xtr, ytr), "val_accuracy": best,
            "test_accuracy": _accuracy(net, xte, yte), "seed": seed, "epochs": epochs}
    return net, info


def _accuracy(net: DigitsNet, x: torch.Tensor, y: np.ndarray) -> float:
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1).numpy() == y).mean())


def save_classifier(net: DigitsNet, info: dict, path: str | Path = WEIGHTS) -> None:
    """The weights (float32) and ``info`` (accuracies, seed) as one .npz."""
    arrays = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    meta = {f"info.{k}": np.asarray(v) for k, v in info.items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays, **meta)


@functools.lru_cache(maxsize=1)
def load_classifier(path: str | None = None) -> tuple[DigitsNet, dict]:
    """The shipped classifier (eval mode) and its ``info``; cached."""
    z = np.load(path or WEIGHTS)
    net = DigitsNet()
    net.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files if not k.startswith("info.")})
    net.eval()
    info = {k[5:]: z[k].item() for k in z.files if k.startswith("info.")}
    return net, info


def _run(images, what: str, batch: int = 4096) -> np.ndarray:
    net, _ = load_classifier()
    x = as_input(images)
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            h = net.features(x[i:i + batch])
            out.append(h if what == "features" else torch.softmax(net.fc2(h), 1))
    return torch.cat(out).double().numpy() if out else np.zeros((0, N_FEATURES if what == "features" else 10))


def digit_features(images) -> np.ndarray:
    """The classifier's 64 penultimate features of each 8x8 image (levels 0..16), float64 (n, 64)."""
    return _run(images, "features")


def digit_probabilities(images) -> np.ndarray:
    """The classifier's class posterior p(digit | image), float64 (n, 10), rows summing to 1."""
    return _run(images, "probabilities")
