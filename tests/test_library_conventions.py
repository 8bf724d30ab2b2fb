"""The library's habits (CONTRIBUTING.md), checked on every module of course_lib: its docstring
examples run, its docstring names the chapter that uses it, and every public function with more
than five parameters documents them in a Parameters/Returns block."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import inspect
import pkgutil
import re

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
