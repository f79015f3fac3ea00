"""Imports run one way (DESIGN.md, Architecture): checked on the source, by AST, without importing it.

- ``genzoo.nn`` holds networks only: no module under it imports ``genzoo.samplers`` or
  ``genzoo.objectives``.
- samplers, networks, metrics and datasets never import a family.

Every import statement counts, also one inside a function (a deferred import is still a
dependency); relative imports are resolved against the module's package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import genzoo

ROOT = Path(genzoo.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement in ``path`` (``from a import b`` gives ``a`` and ``a.b``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for mod in sorted(imported_modules(path)):
            if any(mod == f or mod.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT.parent)} imports {mod}")
    return bad


def test_the_checker_sees_plain_relative_and_deferred_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "genzoo" / "nn"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("import genzoo.samplers.ode\nfrom ..objectives import paths\n"
                              "def f():\n    from genzoo.families import flow\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path / "genzoo")
    found = imported_modules(pkg / "x.py")
    assert {"genzoo.samplers.ode", "genzoo.objectives", "genzoo.objectives.paths", "genzoo.families.flow"} <= found


def test_networks_import_no_objective_and_no_sampler():
    assert _violations("nn", ("genzoo.samplers", "genzoo.objectives")) == []


@pytest.mark.parametrize("package", ["samplers", "nn", "metrics", "datasets"])
def test_lower_layers_never_import_a_family(package):
    assert (ROOT / package).is_dir()
    assert _violations(package, ("genzoo.families",)) == []
