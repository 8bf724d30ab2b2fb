"""The library's habits (CONTRIBUTING.md), checked on every module of course_lib: its docstring
examples run, its docstring names the chapter that uses it, and every public function with more
than five parameters documents them in a Parameters/Returns block."""

from __future__ import annotations

import ast
import dataclasses
import doctest
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import course_lib

MODULES = [
    importlib.import_module(m.name)
    for m in pkgutil.walk_packages(course_lib.__path__, "course_lib.")
]
PACKAGES = {m.__name__ for m in MODULES if hasattr(m, "__path__")} | {"course_lib"}
# public functions whose Parameters/Returns block their owner has not written yet
PARAMETER_BLOCK_PENDING: set[str] = set()


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} docstring examples of {module.__name__} fail"
    )


def test_the_docstring_examples_are_found():
    finder = doctest.DocTestFinder()
    examples = sum(len(t.examples) for m in MODULES for t in finder.find(m))
    assert (
        examples >= 10
    )  # the examples of config, plotting, topic, training, sst ... are collected


@pytest.mark.parametrize(
    "module", [m for m in MODULES if m.__name__ not in PACKAGES], ids=lambda m: m.__name__
)
def test_module_docstring_names_its_chapter(module):
    assert re.search(r"[Cc]hapters? \d", module.__doc__ or ""), (
        f"{module.__name__}'s docstring names no chapter"
    )


def _public_callables(module):
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj, obj.__doc__
        elif (
            inspect.isclass(obj)
            and not dataclasses.is_dataclass(obj)
            and not issubclass(obj, tuple)
        ):
            if "__init__" in vars(
                obj
            ):  # a hand-written constructor: documented in the class docstring
                yield f"{module.__name__}.{name}", obj.__init__, obj.__doc__
            for method_name, method in vars(obj).items():
                if inspect.isfunction(method) and not method_name.startswith("_"):
                    yield f"{module.__name__}.{name}.{method_name}", method, method.__doc__


def test_functions_with_more_than_five_parameters_have_a_parameters_block():
    missing = []
    for module in MODULES:
        for name, fn, doc in _public_callables(module):
            params = [p for p in inspect.signature(fn).parameters if p not in ("self", "cls")]
            # a constructor returns nothing to document: its class docstring needs Parameters only
            blocks = (
                ("Parameters\n",) if fn.__name__ == "__init__" else ("Parameters\n", "Returns\n")
            )
            if len(params) > 5 and name not in PARAMETER_BLOCK_PENDING:
                if not all(block in (doc or "") for block in blocks):
                    missing.append(f"{name} ({len(params)} parameters)")
    assert not missing, "no Parameters/Returns block: " + ", ".join(missing)


MAX_FUNCTION_LINES = 50  # code lines of a body, docstring, blanks and comments left out
ROOT_PACKAGE = Path(course_lib.__file__).parent


def body_code_lines(function: ast.FunctionDef, lines: list[str]) -> int:
    """Code lines of a function's body: no docstring, blank line or comment-only line."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    if not body:
        return 0
    span = lines[body[0].lineno - 1 : function.end_lineno]
    return sum(1 for line in span if line.strip() and not line.strip().startswith("#"))


def test_body_code_lines_leaves_out_docstring_blanks_and_comments():
    source = 'def f(x):\n    """Doc.\n\n    More."""\n    # why\n    y = x\n\n    return y\n'
    (function,) = ast.parse(source).body
    assert body_code_lines(function, source.split("\n")) == 2


def test_no_library_function_is_longer_than_a_screen():
    long_functions = []
    for path in sorted(ROOT_PACKAGE.rglob("*.py")):
        source = path.read_text()
        lines = source.split("\n")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = body_code_lines(node, lines)
                if n > MAX_FUNCTION_LINES:
                    where = path.relative_to(ROOT_PACKAGE).as_posix()
                    long_functions.append(f"{where}::{node.name} ({n} lines)")
    assert not long_functions, (
        f"functions over {MAX_FUNCTION_LINES} code lines (split them): {long_functions}"
    )
