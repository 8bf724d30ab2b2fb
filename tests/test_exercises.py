"""Every exercise stub is tied to a reference solution and a check (CONTRIBUTING.md, Exercises).

For each cell tagged ``exercise-stub`` in ``exercises/*.ipynb``: the functions it defines have
one reference with the same name and parameters, either in ``course_lib.checks.solutions`` (the
exercises no chapter uses) or a public function of a library module (an answer a chapter or the
library uses); the cell right after calls the matching ``checks.check_<name>``; that check
passes the reference and says "[to do]" for the unfilled stub (without raising).  Every function
of ``checks.solutions`` is the reference of a stub.  Wrong answers with hints are tested per
chapter in ``test_checks_chNN.py``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import nbformat
import pytest

import course_lib
from course_lib import checks
from course_lib.checks import solutions

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "exercises").glob("*.ipynb"))


def stub_cells():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            if "exercise-stub" in cell.metadata.get("tags", []):
                yield pytest.param(path, nb, index, id=f"{path.stem}-cell{index}")


def reference(name: str):
    """The functions called ``name`` in ``checks.solutions`` and, public, in every library
    module (one of them is the reference)."""
    found = [getattr(solutions, name)] if name in solutions.__all__ else []
    for info in pkgutil.iter_modules(course_lib.__path__):
        if info.name.startswith("_") or info.name in ("checks", "widgets"):
            continue
        module = importlib.import_module(f"course_lib.{info.name}")
        value = getattr(module, name, None)
        if callable(value) and getattr(value, "__module__", "") == module.__name__:
            found.append(value)
    return found


def stub_names() -> set[str]:
    names = set()
    for param in stub_cells():
        _, nb, index = param.values
        tree = ast.parse(nb.cells[index].source)
        names |= {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    return names


def test_every_solution_is_the_reference_of_a_stub():
    defined = {
        name
        for name, value in vars(solutions).items()
        if inspect.isfunction(value)
        and value.__module__ == solutions.__name__
        and not name.startswith("_")
    }
    assert defined == set(solutions.__all__)
    orphans = sorted(defined - stub_names())
    assert not orphans, f"checks.solutions holds functions no exercise stub asks for: {orphans}"


def test_there_are_exercise_notebooks_with_stubs():
    assert NOTEBOOKS, "exercises/ holds no notebooks"
    assert len(list(stub_cells())) >= len(NOTEBOOKS)


@pytest.mark.parametrize("path, nb, index", list(stub_cells()))
def test_stub_has_reference_and_check(path, nb, index, capsys):
    source = nb.cells[index].source
    functions = [node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)]
    assert functions, f"{path.name} cell {index}: an exercise-stub cell must define a function"
    namespace: dict = {}
    exec(compile(source, f"{path.name}-cell{index}", "exec"), namespace)
    following = nb.cells[index + 1].source if index + 1 < len(nb.cells) else ""
    for node in functions:
        name = node.name
        refs = reference(name)
        assert len(refs) == 1, (
            f"{name}: expected one reference solution in checks.solutions or the library, "
            f"found {len(refs)}"
        )
        ref = refs[0]
        stub = namespace[name]
        stub_params = list(inspect.signature(stub).parameters.values())
        ref_params = list(inspect.signature(ref).parameters.values())
        assert [(p.name, p.kind) for p in stub_params] == [(p.name, p.kind) for p in ref_params], (
            f"{name}: the stub's parameters differ from the reference's {inspect.signature(ref)}"
        )
        positional = [
            p for p in stub_params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        required = {  # keyword-only parameters keep their defaults, the others get None
            p.name: None for p in stub_params if p.kind == p.KEYWORD_ONLY and p.default is p.empty
        }
        with pytest.raises(NotImplementedError):
            stub(*[None] * len(positional), **required)
        check_name = f"check_{name}"
        assert re.search(rf"checks\.{check_name}\(\s*{name}\s*\)", following), (
            f"{path.name}: the cell after the stub of {name} must call checks.{check_name}({name})"
        )
        check = getattr(checks, check_name)
        assert check(ref) is True, f"{check_name} rejects the reference solution"
        capsys.readouterr()
        assert check(stub) is False
        assert "[to do]" in capsys.readouterr().out


def test_yours_or_reference_keeps_a_working_function_and_falls_back_otherwise(capsys):
    def reference(x):
        return 2 * x

    def working(x):
        return x + x

    def stub(x):
        raise NotImplementedError

    def buggy(x):
        return x.missing

    assert checks.yours_or_reference(working, reference, 3) is working
    assert capsys.readouterr().out == ""
    assert checks.yours_or_reference(stub, reference, 3) is reference
    assert "stub is not implemented yet" in capsys.readouterr().out
    assert checks.yours_or_reference(buggy, reference, 3) is reference
    assert "buggy raised AttributeError" in capsys.readouterr().out
