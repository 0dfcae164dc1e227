"""The suite's markers say what a test needs: every test that needs the export extra is marked ``export``, so that
``-m "not export"`` deselects it and, where the extra is missing, it skips with the reason (conftest)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import EXPORT_EXTRA

TESTS = Path(__file__).resolve().parent


def _needs_extra(node: ast.AST, helpers: set[str] = frozenset()) -> bool:
    """``node`` calls importorskip on a module of the export extra, or a helper of its file that does."""
    for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
        name = ast.unparse(call.func)
        arg = call.args[0] if call.args else None
        module = str(arg.value).partition(".")[0] if isinstance(arg, ast.Constant) else ""
        if (name.endswith("importorskip") and module in EXPORT_EXTRA) or name in helpers:
            return True
    return False


def _marked_export(exprs: list[ast.expr]) -> bool:
    return any("mark.export" in ast.unparse(e) for e in exprs)


def unmarked_export_tests(source: str, name: str) -> list[str]:
    tree = ast.parse(source)
    for node in tree.body:
        is_mark = isinstance(node, ast.Assign) and any(ast.unparse(t) == "pytestmark" for t in node.targets)
        if is_mark and _marked_export([node.value]):
            return []
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if any(_needs_extra(n) for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))):
        return [name]  # module-level need: the whole file needs `pytestmark = pytest.mark.export`
    helpers = {f.name for f in functions if not f.name.startswith("test_") and _needs_extra(f)}
    return [
        f"{name}::{f.name}"
        for f in functions
        if f.name.startswith("test_") and _needs_extra(f, helpers) and not _marked_export(f.decorator_list)
    ]


def test_tests_that_need_the_export_extra_are_marked() -> None:
    unmarked = [t for p in sorted(TESTS.glob("test_*.py")) for t in unmarked_export_tests(p.read_text(), p.name)]
    assert unmarked == []


def test_the_marker_check_finds_unmarked_tests() -> None:
    source = """
import pytest

def keras_file(path):
    h5py = pytest.importorskip("h5py")

def test_through_a_helper(tmp_path):
    keras_file(tmp_path)

@pytest.mark.export
def test_marked():
    pytest.importorskip("tensorflow")

def test_direct():
    pytest.importorskip("tf_keras.layers")

def test_light():
    pytest.importorskip("onnx")
"""
    assert unmarked_export_tests(source, "t.py") == ["t.py::test_through_a_helper", "t.py::test_direct"]
    assert unmarked_export_tests('import pytest\npytest.importorskip("tf2onnx")\n', "m.py") == ["m.py"]
    marked = 'import pytest\npytest.importorskip("tf2onnx")\npytestmark = pytest.mark.export\n'
    assert unmarked_export_tests(marked, "m.py") == []
