"""ARCHITECTURE.md stays true: its module table lists every public name of course_lib and what
each module imports, and no module imports one of a higher layer."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import module_table  # noqa: E402

NOTE = (ROOT / "ARCHITECTURE.md").read_text()


def note_rows() -> dict[str, str]:
    """Module -> its row in the note's table."""
    rows = {}
    for line in module_table.note_table(NOTE).splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`"):
            rows[cells[1].strip("`")] = line
    return rows


def test_every_public_name_is_in_the_note():
    rows = note_rows()
    missing = []
    for module, path in module_table.modules().items():
        if path.name == "__init__.py":
            continue
        row = rows.get(module, "")
        missing += [f"{module}.{n}" for n in module_table.public_names(path) if f"`{n}`" not in row]
    assert not missing, (
        f"not in ARCHITECTURE.md's module table: {missing}; "
        "run python scripts/module_table.py --write"
    )


def test_the_note_table_is_the_generated_one():
    assert module_table.note_table(NOTE) == module_table.table(), (
        "ARCHITECTURE.md's module table is out of date: run python scripts/module_table.py --write"
    )


def test_every_module_has_a_layer_and_no_import_goes_up():
    layers = module_table.layer_of()
    assert set(module_table.modules()) <= set(layers)
    assert module_table.upward_imports() == []


def test_imports_reads_relative_absolute_and_function_level_imports(tmp_path, monkeypatch):
    package = tmp_path / "course_lib"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "law.py").write_text("def f():\n    pass\n")
    (package / "flow.py").write_text(
        "from .law import f\n\n\ndef g():\n    from course_lib import law\n"
    )
    (package / "sub" / "__init__.py").write_text("from . import leaf\n")
    (package / "sub" / "leaf.py").write_text("from ..flow import g\nimport course_lib.law\n")
    monkeypatch.setattr(module_table, "PACKAGE", package)
    found = module_table.modules()
    assert set(found) == {"law", "flow", "sub", "sub.leaf"}
    known = set(found)
    assert module_table.imports(found["flow"], known) == {"law"}
    assert module_table.imports(found["sub"], known) == {"sub.leaf"}
    assert module_table.imports(found["sub.leaf"], known) == {"flow", "law"}
    assert module_table.public_names(found["flow"]) == ["g"]


def test_an_upward_import_is_reported(monkeypatch):
    layers = [(name, [m for m in members if m != "law"]) for name, members in module_table.LAYERS]
    monkeypatch.setattr(module_table, "LAYERS", layers + [("top", ["law"])])
    wrong = module_table.upward_imports()
    assert "conservation (theory) imports law (top)" in wrong
