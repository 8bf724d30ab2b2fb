#!/usr/bin/env python3
"""Refuse a book build that holds a failed page (run by ``make build-book`` after jupyter-book).

    python scripts/check_build.py _build

Fails (exit 1, one line per page) when

* Sphinx's environment records a notebook whose last execution failed (a timeout included,
  which leaves no traceback in the page), or
* an executed notebook of the website (``_build/jupyter_execute``) holds an error output in a
  cell not tagged ``raises-exception``.

Prints how many pages it checked, so a build that checked nothing is visible.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import nbformat


def failed_executions(build: Path) -> dict[str, str]:
    """docname -> error name, from Sphinx's pickled environment (myst-nb's execution data)."""
    pickled = build / ".doctrees" / "environment.pickle"
    if not pickled.exists():
        return {}
    with open(pickled, "rb") as handle:
        env = pickle.load(handle)
    metadata = getattr(env, "nb_metadata", {}) or {}
    return {
        docname: str((data.get("exec_data") or {}).get("error"))
        for docname, data in metadata.items()
        if (data.get("exec_data") or {}).get("succeeded") is False and docname in env.all_docs
    }


def error_outputs(build: Path) -> dict[str, str]:
    """page -> first error (``ename: evalue``) among the executed notebooks of built pages."""
    found = {}
    executed = build / "jupyter_execute"
    for path in sorted(executed.rglob("*.ipynb")) if executed.exists() else []:
        page = path.relative_to(executed).with_suffix("")
        if not (build / "html" / page.with_suffix(".html")).exists():
            continue  # not part of this website (an old page)
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code" or "raises-exception" in cell.metadata.get("tags", []):
                continue
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if errors:
                found[str(page)] = f"{errors[0].get('ename')}: {str(errors[0].get('evalue'))[:200]}"
                break
    return found


def main(argv: list[str]) -> int:
    build = Path(argv[1] if len(argv) > 1 else "_build")
    problems = {page: f"its last execution failed ({error})" for page, error in failed_executions(build).items()}
    for page, error in error_outputs(build).items():
        problems.setdefault(page, f"it shows an error output: {error}")
    executed = build / "jupyter_execute"
    checked = len(list(executed.rglob("*.ipynb"))) if executed.exists() else 0
    if problems:
        for page, why in sorted(problems.items()):
            print(f"check_build: FAILED page {page}: {why}")
        print(f"check_build: {len(problems)} page(s) hold an error; the build is not a success.")
        return 1
    print(f"check_build: {checked} executed page(s), none holds an error.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
