"""The test markers keep the suites apart: a plain `pytest tests` (`make unit`) is the unit
suite, `make quick` leaves out the slow tests, `make browser` and `make colab` select their own.

Every test module in tests/browser and tests/colab must carry its folder's marker, or a plain
`pytest tests` would run it against a stale website or build a 6 GB runtime.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYTEST = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
MAKEFILE = (ROOT / "Makefile").read_text()


def module_marks(path: Path) -> set[str]:
    """The names in a module's ``pytestmark = pytest.mark.X`` (or a list of them)."""
    tree = ast.parse(path.read_text())
    marks = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            value = node.value
            values = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
            marks |= {ast.unparse(v).removeprefix("pytest.mark.") for v in values}
    return marks


@pytest.mark.parametrize("folder", ["browser", "colab"])
def test_every_module_of_a_held_back_suite_carries_its_marker(folder):
    modules = sorted((ROOT / "tests" / folder).glob("test_*.py"))
    assert modules, f"no test module in tests/{folder}"
    unmarked = [m.name for m in modules if folder not in module_marks(m)]
    assert not unmarked, f"add `pytestmark = pytest.mark.{folder}` to {unmarked}"


def test_the_markers_are_registered_and_held_back_by_default():
    names = {line.split(":")[0].strip() for line in PYTEST["markers"]}
    assert names == {"slow", "browser", "colab"}
    addopts = PYTEST["addopts"]
    assert "--strict-markers" in addopts
    assert addopts[addopts.index("-m") + 1] == "not browser and not colab"


def make_recipe(target: str) -> str:
    match = re.search(rf"^{target}:[^\n]*\n((?:\t[^\n]*\n)+)", MAKEFILE, re.M)
    assert match, f"no `make {target}`"
    return match.group(1)


def test_make_targets_select_the_suites():
    assert '-m "not slow and not browser and not colab"' in make_recipe("quick")
    # the default selection: everything but browser and colab
    assert "pytest tests -q\n" in make_recipe("unit")
    assert "-m browser" in make_recipe("browser")
    assert "COURSE_BROWSER_REQUIRED=1" in make_recipe("browser")
    assert "-m colab" in make_recipe("colab")
    recipe = make_recipe("test")
    steps = [
        "$(MAKE) unit",
        "$(MAKE) notebooks",
        "$(MAKE) build-book",
        "$(MAKE) browser",
        "$(MAKE) colab",
    ]
    assert all(step in recipe for step in steps)
    assert [recipe.index(step) for step in steps] == sorted(recipe.index(s) for s in steps)


def test_module_marks_reads_single_and_listed_marks(tmp_path):
    one = tmp_path / "test_one.py"
    one.write_text("import pytest\npytestmark = pytest.mark.browser\n")
    two = tmp_path / "test_two.py"
    two.write_text("import pytest\npytestmark = [pytest.mark.colab, pytest.mark.slow]\n")
    none = tmp_path / "test_none.py"
    none.write_text("import pytest\n\n\n@pytest.mark.browser\ndef test_x():\n    pass\n")
    assert module_marks(one) == {"browser"}
    assert module_marks(two) == {"colab", "slow"}
    assert module_marks(none) == set()
