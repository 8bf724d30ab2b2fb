#!/usr/bin/env python3
"""Refuse a book build that holds a failed page (run by ``make build-book`` after jupyter-book).

    python scripts/check_build.py _build [--log _build/build_log.txt]

Fails (exit 1, one line per page) when

* the build's log shows a notebook whose execution failed: the website sets
  ``nb_execution_raise_on_error``, so the build stops at the first failed page, and this names it
  in one line instead of leaving the reader a traceback to read (a timeout included);
* Sphinx's environment records a notebook whose last execution failed, or
* an executed notebook of the website (``_build/jupyter_execute``) holds an error output in a
  cell not tagged ``raises-exception``, or
* the website holds an execution report (``html/reports/*.err.log``), which myst-nb writes only
  for a failed page (``make build-book`` removes old ones before each build).

Prints how many pages it checked, so a build that checked nothing is visible.
"""

from __future__ import annotations

import pickle
import re
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


FAILED_IN_LOG = re.compile(  # myst-nb's warning, possibly coloured
    r"^(?:\x1b\[[0-9;]*m)*(\S+\.ipynb): WARNING: Executing notebook failed: (\w+)", re.M
)


def failed_in_log(log: str, root: Path) -> dict[str, str]:
    """page -> error name, for each notebook the build's log says failed to execute."""
    found = {}
    for path, error in FAILED_IN_LOG.findall(log):
        page = Path(path)
        try:
            page = page.resolve().relative_to(root.resolve())
        except ValueError:
            pass
        found[str(page.with_suffix(""))] = error
    return found


def execution_reports(build: Path) -> list[str]:
    """Pages with an execution report in the website (myst-nb writes one per failed page)."""
    reports = build / "html" / "reports"
    if not reports.exists():
        return []
    suffix = len(".err.log")
    return sorted(str(path.relative_to(reports))[:-suffix] for path in reports.rglob("*.err.log"))


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
    args = list(argv[1:])
    log = None
    if "--log" in args:
        at = args.index("--log")
        if at + 1 >= len(args):
            print("check_build: --log needs a file (the build's log)")
            return 2
        log = Path(args.pop(at + 1))
        args.pop(at)
    build = Path(args[0] if args else "_build")
    problems = {}
    if log is not None and log.exists():
        text = log.read_text(errors="replace")
        for page, error in failed_in_log(text, build.resolve().parent).items():
            problems[page] = (
                f"its execution failed ({error}); the build stopped there (traceback in {log})"
            )
    for page, error in failed_executions(build).items():
        problems.setdefault(page, f"its last execution failed ({error})")
    for page in execution_reports(build):
        problems.setdefault(page, "the website holds its execution report (html/reports)")
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
