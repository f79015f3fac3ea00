"""Documentation contract of the families: docstrings say what and why, measurements live in benchmarks/.

Every registered family class documents each of its hyperparameters in a numpydoc
"Parameters" section and carries a runnable example; experiment logs (markdown tables of
per-seed figures) belong in ``benchmarks/RESULTS.md``, which has a section per family.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import genzoo as gz

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "RESULTS.md"


def _family_class(name: str) -> type:
    return type(gz.make(name))


@pytest.mark.parametrize("name", gz.families())
def test_class_docstring_documents_every_hyperparameter(name):
    cls = _family_class(name)
    doc = cls.__doc__ or ""
    assert re.search(r"^\s*Parameters\n\s*-{10}", doc, re.M), f"{cls.__name__}: no numpydoc 'Parameters' section"
    params = doc.split("Parameters", 1)[1]
    missing = [k for k in gz.make(name).get_params() if not re.search(rf"(?<![\w.]){re.escape(k)}(?!\w)", params)]
    assert not missing, f"{cls.__name__} docstring does not document {missing}"


@pytest.mark.parametrize("name", gz.families())
def test_class_docstring_has_an_example(name):
    cls = _family_class(name)
    doc = cls.__doc__ or ""
    assert ">>>" in doc, f"{cls.__name__} docstring has no '>>>' example"
    assert re.search(r"^\s*Examples\n\s*-{8}", doc, re.M), f"{cls.__name__}: no numpydoc 'Examples' section"


@pytest.mark.parametrize("name", gz.families())
def test_module_docstring_holds_no_experiment_tables(name):
    module = sys.modules[_family_class(name).__module__]
    doc = module.__doc__ or ""
    assert "|---" not in doc, f"{module.__name__}: move measurement tables to benchmarks/RESULTS.md"
    assert doc.strip(), f"{module.__name__} has no module docstring"


def test_results_file_has_a_section_per_family():
    text = RESULTS.read_text()
    headings = set(re.findall(r"^## `?([a-z_]+)`?", text, re.M))
    missing = [n for n in gz.families() if n not in headings]
    assert not missing, f"benchmarks/RESULTS.md has no section for {missing}"
