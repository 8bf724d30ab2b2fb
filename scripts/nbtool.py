#!/usr/bin/env python3
"""Author notebooks as percent-format scripts; commit only the .ipynb this writes.

    python scripts/nbtool.py py2nb draft.py chapters/01_the_task.ipynb
    python scripts/nbtool.py nb2py chapters/01_the_task.ipynb draft.py
    python scripts/nbtool.py strip chapters/*.ipynb exercises/*.ipynb
    python scripts/nbtool.py sync chapters/*.ipynb exercises/*.ipynb

Cells start with ``# %%`` (code) or ``# %% [markdown]``; ``# %% tags=["a", "b"]`` adds tags.
Markdown lines are written with a leading ``# `` in the script.  ``py2nb`` puts the standard
Colab setup cell right after the title (the repository URL and branch come from _config.yml),
requests a GPU on Colab, writes no outputs, and writes the math of the markdown cells so that it
renders everywhere (scripts/plainmath.py): the book's macros of ``_config.yml`` expanded into
plain LaTeX, display math as ``equation*``.  A draft may therefore use the macros.
``sync`` inserts or refreshes the setup cell in existing notebooks, applies the same math
conversion (dropping the old macro cell), and leaves every other cell as it is; running it twice
changes nothing.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plainmath  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETUP_MARKER = "# Colab setup"
MACRO_MARKER = plainmath.OLD_MACRO_CELL  # the \\def cell notebooks had before plainmath


def repository() -> tuple[str, str]:
    """(url, branch) from _config.yml, read without a YAML dependency."""
    text = (ROOT / "_config.yml").read_text()
    block = text.split("repository:", 1)[1]
    url = re.search(r"^\s+url:\s*(\S+)", block, re.M).group(1)
    branch = re.search(r"^\s+branch:\s*(\S+)", block, re.M).group(1)
    return url, branch


def setup_cell_source() -> str:
    url, branch = repository()
    return (
        f"{SETUP_MARKER}: install course_lib from the course repository; Colab's own torch,\n"
        "# numpy and matplotlib are kept (course_lib pins none of them). Does nothing elsewhere.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import subprocess\n"
        "\n"
        f'    url = "{url}"\n'
        f'    package = f"course_lib @ git+{{url}}@{branch}"\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)'
    )


def macros() -> dict[str, tuple[str, int]]:
    """``{name: (definition, number of arguments)}`` from _config.yml's mathjax3_config."""
    return plainmath.macros()


def setup_cell():
    cell = nbformat.v4.new_code_cell(setup_cell_source())
    cell.metadata["tags"] = ["hide-cell"]
    return cell


def is_setup_cell(cell) -> bool:
    return cell.cell_type == "code" and cell.source.startswith(SETUP_MARKER)


def is_macro_cell(cell) -> bool:
    return cell.cell_type == "markdown" and cell.source.startswith(MACRO_MARKER)


def insert_standard_cells(nb, stem: str) -> None:
    """Put the setup cell after the title (replacing old copies, whose id is kept so a refresh
    is a small diff) and drop the old macro cell."""
    old_id = None
    kept = []
    for cell in nb.cells:
        if is_setup_cell(cell):
            old_id = old_id or cell.get("id")
        elif not is_macro_cell(cell):
            kept.append(cell)
    taken = {c.get("id") for c in kept}
    setup = setup_cell()
    wanted = old_id or f"{stem[:20]}-setup".replace("_", "-")
    while wanted in taken:
        wanted += "-x"
    setup["id"] = wanted
    at = 1 if kept and kept[0].cell_type == "markdown" else 0
    nb.cells = kept[:at] + [setup] + kept[at:]


def sync(paths) -> None:
    """Insert or refresh the Colab setup cell and convert the math (scripts/plainmath.py) in
    existing notebooks."""
    table = plainmath.macros()
    for path in paths:
        path = Path(path)
        nb = nbformat.read(path, as_version=4)
        insert_standard_cells(nb, path.stem)
        plainmath.convert_notebook(nb, plainmath.chapter_of(path), table)
        nb.metadata.setdefault("accelerator", "GPU")
        nbformat.validate(nb)
        text = nbformat.writes(nb) + "\n"
        if path.read_text() != text:
            path.write_text(text)
            print(f"synced {path}")


def parse_py(text: str) -> list:
    cells = []
    header, lines = None, []

    def flush():
        if header is None:
            return
        body = "\n".join(lines).strip("\n")
        tags = []
        m = re.search(r"tags=(\[.*\])", header)
        if m:
            tags = json.loads(m.group(1))
        if "[markdown]" in header:
            md = "\n".join(
                line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.split("\n")
            )
            cell = nbformat.v4.new_markdown_cell(md)
        else:
            cell = nbformat.v4.new_code_cell(body)
        if tags:
            cell.metadata["tags"] = tags
        cells.append(cell)

    for line in text.split("\n"):
        if line.startswith("# %%"):
            flush()
            header, lines = line, []
        else:
            lines.append(line)
    flush()
    return cells


def py2nb(src: Path, dest: Path) -> None:
    cells = [c for c in parse_py(src.read_text()) if not (is_setup_cell(c) or is_macro_cell(c))]
    # the setup cell right after the title
    at = 1 if cells and cells[0].cell_type == "markdown" else 0
    cells[at:at] = [setup_cell()]
    nb = nbformat.v4.new_notebook(cells=cells)
    plainmath.convert_notebook(nb, plainmath.chapter_of(dest))
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "accelerator": "GPU",
        "colab": {"provenance": []},
    }
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{dest.stem[:20]}-{i:03d}".replace("_", "-")
    nbformat.validate(nb)
    dest.write_text(nbformat.writes(nb) + "\n")


def nb2py(src: Path, dest: Path) -> None:
    nb = nbformat.read(src, as_version=4)
    out = []
    for cell in nb.cells:
        if is_setup_cell(cell) or is_macro_cell(cell):
            continue
        tags = cell.metadata.get("tags", [])
        tag = f" tags={json.dumps(tags)}" if tags else ""
        if cell.cell_type == "markdown":
            out.append(f"# %% [markdown]{tag}")
            out.extend(("# " + line) if line else "#" for line in cell.source.split("\n"))
        else:
            out.append(f"# %%{tag}")
            out.append(cell.source)
        out.append("")
    dest.write_text("\n".join(out))


def strip(paths) -> None:
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.metadata.pop("widgets", None)
        Path(path).write_text(nbformat.writes(nb) + "\n")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "py2nb":
        py2nb(Path(args[0]), Path(args[1]))
    elif cmd == "nb2py":
        nb2py(Path(args[0]), Path(args[1]))
    elif cmd == "strip":
        strip(args)
    elif cmd == "sync":
        sync(args)
    else:
        sys.exit(__doc__)
