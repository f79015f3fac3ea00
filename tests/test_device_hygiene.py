"""Every tensor a family creates lands on the model's device: no factory call without ``device=``.

Checked on the source (a GPU is not needed to find a CPU tensor mixed into device tensors):
inside the estimator classes every ``torch.full/zeros/ones/arange/randn/rand/tensor/...`` call
names its device. Exempt: ``nn.Module`` subclasses (their buffers move with ``.to(device)``),
tensors turned straight into NumPy or Python numbers, and values copied into an existing tensor.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

FACTORIES = {"full", "zeros", "ones", "arange", "randn", "rand", "randint", "tensor", "empty", "linspace",
             "eye", "as_tensor", "logspace"}
TO_HOST = {"numpy", "tolist", "item"}
ROOT = pathlib.Path(__file__).resolve().parents[1] / "genzoo"
FILES = sorted((ROOT / "families").glob("*.py")) + sorted((ROOT / "objectives").glob("*.py"))


def _is_module(cls: ast.ClassDef) -> bool:
    return any((isinstance(b, ast.Attribute) and b.attr == "Module") or (isinstance(b, ast.Name) and b.id == "Module")
               for b in cls.bases)


def _violations(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text())
    parent = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        f = node.func
        if not (isinstance(f.value, ast.Name) and f.value.id == "torch" and f.attr in FACTORIES):
            continue
        if any(k.arg == "device" for k in node.keywords):
            continue
        up, exempt = node, False
        while up in parent:  # the chain above the call, and the class it sits in
            up = parent[up]
            if isinstance(up, ast.Attribute) and up.attr in TO_HOST:
                exempt = True
            if isinstance(up, ast.Call) and isinstance(up.func, ast.Attribute) and up.func.attr == "copy_":
                exempt = True
            if isinstance(up, ast.ClassDef):
                exempt = exempt or _is_module(up)
                break
        if not exempt:
            out.append(f"{path.name}:{node.lineno} torch.{f.attr}(...) without device=")
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_tensor_factory_without_device(path):
    assert _violations(path) == []
