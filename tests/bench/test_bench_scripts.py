"""The bench scripts under benches/ run on the device machine, where a mistake costs a device call: what a CPU can
check of them is checked here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

BENCHES = sorted((Path(__file__).resolve().parents[2] / "benches").glob("*.py"))


def _imported_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


@pytest.mark.parametrize("script", BENCHES, ids=lambda p: p.name)
def test_no_function_or_class_shadows_an_imported_name(script):
    # nvidia_lane.py once defined a function `timing` over the imported module `mpskernels.cuda.timing`: every run
    # then failed at its first measurement with an AttributeError, on the device only.
    tree = ast.parse(script.read_text(), filename=str(script))
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assert not defined & _imported_names(tree), f"{script.name} redefines imported names"


@pytest.mark.parametrize("script", BENCHES, ids=lambda p: p.name)
def test_script_imports_and_parses_its_arguments(script):
    # Everything a script imports must import on a machine without a GPU, or its first device call fails at start.
    run = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "usage:" in run.stdout
