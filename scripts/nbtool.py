#!/usr/bin/env python3
"""Author notebooks as percent-format scripts; commit only the .ipynb this writes.

    python scripts/nbtool.py py2nb draft.py chapters/01_the_task.ipynb
    python scripts/nbtool.py nb2py chapters/01_the_task.ipynb draft.py
    python scripts/nbtool.py strip chapters/*.ipynb exercises/*.ipynb

Cells start with ``# %%`` (code) or ``# %% [markdown]``; ``# %% tags=["a", "b"]`` adds tags.
Markdown lines are written with a leading ``# `` in the script.  ``py2nb`` puts the standard
Colab setup cell first (the repository URL and branch come from _config.yml), requests a GPU on
Colab, and writes no outputs.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SETUP_MARKER = "# Colab setup"


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
        "    subprocess.run(\n"
        f'        [sys.executable, "-m", "pip", "install", "-q", "course_lib @ git+{url}@{branch}"],\n'
        "        check=True,\n"
        "    )"
    )


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
            md = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.split("\n"))
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
    cells = parse_py(src.read_text())
    setup = nbformat.v4.new_code_cell(setup_cell_source())
    setup.metadata["tags"] = ["hide-cell"]
    # a title cell (markdown) stays first; the setup cell goes right after it
    at = 1 if cells and cells[0].cell_type == "markdown" else 0
    cells.insert(at, setup)
    nb = nbformat.v4.new_notebook(cells=cells)
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
        if cell.cell_type == "code" and cell.source.startswith(SETUP_MARKER):
            continue
        tags = cell.metadata.get("tags", [])
        tag = f" tags={json.dumps(tags)}" if tags else ""
        if cell.cell_type == "markdown":
            out.append(f"# %% [markdown]{tag}")
            out.extend(("# " + l) if l else "#" for l in cell.source.split("\n"))
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
    else:
        sys.exit(__doc__)
