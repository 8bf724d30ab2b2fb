"""What the course costs to run: every notebook executed top to bottom, as the book executes it.

Each notebook runs in a fresh kernel through ``nbclient.NotebookClient`` (the executor under
myst-nb / jupyter-cache) with the timeout of ``_config.yml``, in the notebook's own folder, with
``COURSE_MODE`` set for the kernel.  Wall time includes the kernel's start; memory is the peak
resident set size of the kernel's process tree, sampled every 20 ms with psutil.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from harness import PeakRSS, Result, benchmark, check_size, mib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))
import reply_polling  # noqa: E402  (the website's build waits for replies the same way)

reply_polling.install()

FOLDERS = ("chapters", "exercises")
NOTEBOOK_BUDGET_S = 120  # CONTRIBUTING.md: a chapter in quick mode runs in well under two minutes
BOOK_BUDGET_S = 600  # the whole book in quick mode, on a 2-core CPU

# Set by run.py (--notebooks / --skip-notebooks): glob patterns of notebooks to run, None = all.
SELECT: list[str] | None = None


def discover(root: Path = ROOT, select: list[str] | None = None) -> list[Path]:
    """Every ``chapters/*.ipynb`` and ``exercises/*.ipynb`` (sorted), optionally filtered by glob
    patterns matched against the path relative to ``root`` or the file name."""
    found = sorted(p for folder in FOLDERS for p in (root / folder).glob("*.ipynb"))
    if select:
        found = [
            p
            for p in found
            if any(
                fnmatch.fnmatch(str(p.relative_to(root)), pat) or fnmatch.fnmatch(p.name, pat)
                for pat in select
            )
        ]
    return found


def book_timeout(root: Path = ROOT) -> int:
    """``execute.timeout`` from ``_config.yml`` (seconds per cell), read without a YAML parser."""
    text = (root / "_config.yml").read_text()
    block = text.split("\nexecute:", 1)[1] if "\nexecute:" in text else ""
    found = re.search(r"^\s+timeout:\s*(-?\d+)", block, re.M)
    return int(found.group(1)) if found else 30


@contextmanager
def _environment(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _cell_seconds(cell) -> float | None:
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def _cell_label(index: int, cell) -> str:
    source = cell.source.strip()
    return f"#{index}: {source.splitlines()[0][:50] if source else ''}"


def run_notebook(
    path: Path,
    mode: str = "quick",
    timeout: int | None = None,
    save_to: Path | None = None,
    env: dict | None = None,
    on_cell=None,
    keep_going: bool = False,
) -> dict:
    """Execute one notebook in a fresh kernel; return wall time, peak kernel RSS, the slowest
    cell and whether it ran without error.  The notebook file is not modified: ``save_to``, when
    given, receives the executed copy (also after an error); ``env`` adds environment variables
    for the kernel; ``on_cell(index, cell)`` is called as each cell starts (progress);
    ``keep_going`` runs every cell even after one fails, and ``error`` then lists each failed
    cell (full mode: one run shows every assertion that fails, not only the first)."""
    nb = nbformat.read(path, as_version=4)
    kernel = nb.metadata.get("kernelspec", {}).get("name", "python3")
    hooks = (
        {}
        if on_cell is None
        else {"on_cell_start": lambda cell, cell_index: on_cell(cell_index, cell)}
    )
    client = NotebookClient(
        nb,
        timeout=book_timeout() if timeout is None else timeout,
        kernel_name=kernel,
        allow_errors=keep_going,
        record_timing=True,
        resources={"metadata": {"path": str(path.parent)}},
        **hooks,
    )
    data_dir = ROOT.parent / "shared" / "data"
    # COURSE_PROGRESS=off: no progress bars, as in the book build (and none in executed copies)
    env = {
        "COURSE_MODE": mode,
        "COURSE_PROGRESS": "off",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        **(env or {}),
    }
    if "COURSE_DATA_DIR" not in os.environ and data_dir.is_dir():
        env["COURSE_DATA_DIR"] = str(data_dir)  # as .ci/run does
    error = None
    with _environment(**env), PeakRSS(include_root=False) as rss:
        start = time.perf_counter()
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # no terminal colours
            error = f"{type(exc).__name__}: {text.splitlines()[-1][:200] if text else ''}"
        wall = time.perf_counter() - start
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save_to)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    failed = [
        f"cell {i}: {out.get('ename')}: {str(out.get('evalue', '')).splitlines()[0][:160]}"
        if str(out.get("evalue", "")).strip()
        else f"cell {i}: {out.get('ename')}"
        for i, c in code
        for out in c.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    if failed and error is None:
        error = "; ".join(failed)
    timed = [(s, i, c) for i, c in code if (s := _cell_seconds(c)) is not None]
    slowest = max(timed, key=lambda t: t[0], default=None)
    return {
        "wall_s": wall,
        "peak_rss_mib": mib(rss.peak),
        "code_cells": len(code),
        "slowest_cell_s": slowest[0] if slowest else None,
        "slowest_cell": _cell_label(slowest[1], slowest[2]) if slowest else None,
        "error": error,
    }


def _trivial_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint(os.environ['COURSE_MODE'])")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / "trivial.ipynb"
    nbformat.write(nb, path)
    return path


def notebook_rows(paths: list[Path], modes: list[str], root: Path = ROOT) -> list[dict]:
    rows = []
    for mode in modes:
        for path in paths:
            print(f"  executing {path.name} ({mode}) ...", flush=True)
            r = run_notebook(path, mode)
            try:
                name = str(path.relative_to(root))
            except ValueError:
                name = path.name
            rows.append(
                {
                    "notebook": name,
                    "mode": mode,
                    "wall_s": r["wall_s"],
                    "peak_rss_mib": r["peak_rss_mib"],
                    "cells": r["code_cells"],
                    "slowest_cell_s": r["slowest_cell_s"],
                    "slowest_cell": r["slowest_cell"],
                    "status": "ok" if r["error"] is None else f"ERROR {r['error']}",
                }
            )
    return rows


def summarise(rows: list[dict]) -> tuple[str, list[str]]:
    quick = [r for r in rows if r["mode"] == "quick"]
    if not quick:
        return "no notebooks were run in quick mode", []
    total = sum(r["wall_s"] for r in quick)
    ranked = sorted(quick, key=lambda r: -r["wall_s"])
    top = ", ".join(
        f"{r['notebook']} {r['wall_s']:.0f} s ({100 * r['wall_s'] / total:.0f} %)"
        for r in ranked[:3]
    )
    failed = [r["notebook"] for r in quick if r["status"] != "ok"]
    summary = (
        f"whole book, quick mode: {total:.0f} s for {len(quick)} notebooks "
        f"(budget {BOOK_BUDGET_S} s: {'within' if total <= BOOK_BUDGET_S else 'OVER'}); "
        f"largest peak memory {max(r['peak_rss_mib'] for r in quick):.0f} MiB; dominated by {top}"
    )
    full = [r for r in rows if r["mode"] == "full"]
    if full:
        slowest = max(full, key=lambda r: r["wall_s"])["notebook"]
        summary += f"; full mode: {sum(r['wall_s'] for r in full):.0f} s, slowest {slowest}"
    notes = []
    over = [r["notebook"] for r in quick if r["wall_s"] > NOTEBOOK_BUDGET_S]
    if over:
        notes.append(
            f"over the {NOTEBOOK_BUDGET_S} s per-notebook budget in quick mode: {', '.join(over)}"
        )
    if failed:
        notes.append(f"failed in quick mode: {', '.join(failed)}")
    notes.append("wall time includes starting the kernel (about 1-3 s) and importing torch")
    return summary, notes


@benchmark(
    "notebooks",
    "Every chapter and exercise notebook executed top to bottom with nbclient "
    "(as the book build does): wall time and peak RSS of the kernel.",
)
def notebooks(size: str) -> Result:
    check_size(size)
    if size == "tiny":  # the unit test: one trivial notebook written here, never the real ones
        with tempfile.TemporaryDirectory() as tmp:
            rows = notebook_rows([_trivial_notebook(Path(tmp))], ["quick"], root=Path(tmp))
        return Result(rows=rows, summary=summarise(rows)[0])
    paths = discover(select=SELECT)
    modes = ["quick"] + (["full"] if torch.cuda.is_available() or size == "full" else [])
    rows = notebook_rows(paths, modes)
    summary, notes = summarise(rows)
    if SELECT:
        notes.append(f"only notebooks matching {SELECT} were run")
    return Result(rows=rows, summary=summary, notes=notes)
