"""Full mode, run and recorded: every chapter and exercise notebook executed with COURSE_MODE=full.

    make full                                   # every notebook (hours on a 2-core CPU)
    make full NOTEBOOKS='chapters/03_*'         # one chapter (glob patterns, space-separated)
    .venv/bin/python benchmarks/full_mode.py --report   # rewrite the report from the JSON only
    .venv/bin/python benchmarks/full_mode.py --costs    # rewrite each chapter's cost paragraph

Each notebook runs in a fresh kernel (``bench_notebooks.run_notebook``: nbclient, as the book
executes it) with no cell timeout, every assertion live; a failed cell does not stop the run, so
the status lists every cell that failed.  The executed copy goes to
``_build/full/<folder>/<name>.ipynb`` (the website's quick-mode build is not touched); the row
(wall time, peak memory of the kernel, slowest cell, status, machine, commit) replaces the
notebook's earlier row in ``results/full_mode.json``, and ``results/full_mode.md`` is rewritten
from it.  The report also copies the printed output of every cell tagged ``measured``: the values
that the chapter's full-mode thresholds were set from.

``--no-downloads`` runs full mode without the datasets that need a download (CIFAR-10,
HateXplain): the chapters then use their offline data (scikit-learn's digits, the bundled SST-2)
at full-mode sizes, and the row says so.

``--costs`` rewrites the paragraph each chapter opens with (its second cell, id ``run-cost``):
the quick-mode time of ``make bench`` and the full-mode time recorded here, so that a reader
chooses a mode before waiting; ``tests/test_full_mode.py`` checks that they agree.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from bench_notebooks import ROOT, discover, run_notebook
from harness import machine_info, machine_line, now_utc

RESULTS = Path(__file__).resolve().parent / "results"
EXECUTED = ROOT / "_build" / "full"
MEASURED_TAG = "measured"
COST_CELL_ID = "run-cost"  # the Markdown cell, second in each chapter, that states the cost
# The website shows pages already executed in quick mode: the paragraph is for the reader who
# runs the notebook (Jupyter, Colab), so the website leaves it out.
COST_CELL_TAGS = ["remove-cell"]
# What a first full-mode run downloads (course_lib.data: sizes checked on download).
DOWNLOADS = {
    "chapters/04_three_ways_to_attend.ipynb": "CIFAR-10 (the python version, 170 MB)",
    "chapters/06_the_hybrid.ipynb": (
        "CIFAR-10 (the python version, 170 MB) and HateXplain's two JSON files"
        " (the posts and their train/val/test division)"
    ),
}


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "src",
                "chapters",
                "exercises",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def measured_outputs(source, executed) -> list[dict]:
    """The printed output in ``executed`` of each code cell that ``source`` (the notebook as it
    is in the repository) tags ``measured``, matched by cell id: tags added after a run are
    picked up by ``--report`` without running again."""
    outputs = {cell.get("id"): cell for cell in executed.cells}
    found = []
    for index, cell in enumerate(source.cells):
        if cell.cell_type != "code" or MEASURED_TAG not in cell.metadata.get("tags", []):
            continue
        ran = outputs.get(cell.get("id"), {})
        text = "".join(
            out.get("text", "")
            for out in ran.get("outputs", [])
            if out.get("output_type") == "stream" and out.get("name") == "stdout"
        )
        first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        found.append({"cell": index, "source": first[:80], "output": text.rstrip()})
    return found


def refresh_measured(doc: dict) -> dict:
    """Re-read the measured outputs of every recorded notebook from its executed copy."""
    for name, row in doc["notebooks"].items():
        copy = EXECUTED / name
        if copy.exists() and (ROOT / name).exists():
            row["measured"] = measured_outputs(
                nbformat.read(ROOT / name, as_version=4), nbformat.read(copy, as_version=4)
            )
    return doc


def _progress(path: Path, total: int):
    started = time.perf_counter()

    def on_cell(index: int, cell) -> None:
        if cell.cell_type == "code":
            elapsed = time.perf_counter() - started
            print(f"    {path.name}: cell {index + 1}/{total}, {elapsed:.0f} s", flush=True)

    return on_cell


def run(patterns: list[str] | None, downloads: bool) -> dict:
    """Run the selected notebooks in full mode; merge their rows into the JSON document."""
    doc = read()
    machine = machine_info()
    for path in discover(select=patterns):
        name = str(path.relative_to(ROOT))
        out = EXECUTED / name
        print(f"full mode: {name} -> {out.relative_to(ROOT)}", flush=True)
        cells = len(nbformat.read(path, as_version=4).cells)
        env = {} if downloads else {"COURSE_DOWNLOADS": "off"}
        commit = _commit()  # before the run: what ran, not what the checkout holds after it
        result = run_notebook(
            path,
            "full",
            timeout=-1,
            save_to=out,
            env=env,
            on_cell=_progress(path, cells),
            keep_going=True,
        )
        executed = nbformat.read(out, as_version=4)
        source = nbformat.read(path, as_version=4)
        doc = read()  # again: another `make full` may have recorded a notebook meanwhile
        doc["notebooks"][name] = {
            "status": "passed" if result["error"] is None else f"FAILED {result['error']}",
            "wall_s": round(result["wall_s"], 1),
            "peak_rss_mib": round(result["peak_rss_mib"]),
            "slowest_cell_s": result["slowest_cell_s"] and round(result["slowest_cell_s"], 1),
            "slowest_cell": result["slowest_cell"],
            "data": "downloads" if downloads else "offline data only (COURSE_DOWNLOADS=off)",
            "date": now_utc(),
            "commit": commit,
            "machine": machine_line(machine),
            "device": "cuda" if machine.get("gpu") else "cpu",
            "measured": measured_outputs(source, executed),
        }
        print(f"  {doc['notebooks'][name]['status']} in {result['wall_s']:.0f} s", flush=True)
        write(doc)
    return doc


def read() -> dict:
    path = RESULTS / "full_mode.json"
    return json.loads(path.read_text()) if path.exists() else {"notebooks": {}}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def render(doc: dict) -> str:
    """The Markdown report: one table row per notebook, then each notebook's measured values."""
    lines = [
        "# Full mode: every notebook, run and measured",
        "",
        "Written by `benchmarks/full_mode.py` (`make full`; `make full NOTEBOOKS='chapters/03_*'`",
        "for one chapter) from `full_mode.json`; do not edit by hand. Wall time includes the",
        "kernel's start; memory is the kernel's peak resident set size. A row is replaced when",
        "its notebook is run again, so rows can come from different runs: each names its own.",
        "",
        "| notebook | status | device | wall time | peak memory | slowest cell | data | run |",
        "|---|---|---|---:|---:|---|---|---|",
    ]
    rows = doc["notebooks"]
    for name in sorted(rows):
        r = rows[name]
        slowest = (
            f"{r['slowest_cell_s']:.0f} s ({r['slowest_cell']})" if r["slowest_cell_s"] else ""
        )
        lines.append(
            f"| `{name}` | {r['status']} | {r['device']} | {_minutes(r['wall_s'])} | "
            f"{r['peak_rss_mib']} MiB | {slowest.replace('|', '/')} | {_data_label(name, r)} | "
            f"{r['date']}, {r['commit']} |"
        )
    notes = [(name, rows[name]["note"]) for name in sorted(rows) if rows[name].get("note")]
    if notes:
        lines += ["", "Notes on rows (added by hand to the JSON, with the run they describe):", ""]
        lines += [f"- `{name}`: {note}" for name, note in notes]
    machines = sorted({r["machine"] for r in rows.values()})
    lines += ["", "Machines:", ""] + [f"- {m}" for m in machines]
    lines += ["", "## The values behind the full-mode thresholds", ""]
    lines.append(
        "The printed output, in full mode, of each cell tagged `measured` (the cells whose"
        " values the chapter's full-mode bounds were set from)."
    )
    for name in sorted(rows):
        measured = rows[name]["measured"]
        if not measured:
            continue
        lines += ["", f"### `{name}`", ""]
        for entry in measured:
            lines += [f"Cell {entry['cell']} (`{entry['source']}`):", "", "```text"]
            lines += [entry["output"] or "(no printed output)", "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def _quick_times() -> dict:
    """Quick-mode wall time per notebook from ``make bench`` (results/latest.json)."""
    path = RESULTS / "latest.json"
    if not path.exists():
        return {}
    for entry in json.loads(path.read_text()).get("benchmarks", []):
        if entry.get("name") == "notebooks":
            return {
                r["notebook"]: r["wall_s"]
                for r in entry.get("rows", [])
                if r.get("mode") == "quick" and r.get("status") == "ok"
            }
    return {}


GPU_DEFAULT = re.compile(r'default_mode\(on_gpu="(quick|full)"\)')
FULL_BY_DEFAULT_S = 15 * 60  # full mode is a chapter's default on a GPU only below this (CPU)


def gpu_default(nb) -> str | None:
    """The mode a chapter runs in on a GPU when COURSE_MODE is unset (``config.default_mode``)."""
    for cell in nb.cells:
        found = GPU_DEFAULT.search(cell.source) if cell.cell_type == "code" else None
        if found:
            return found.group(1)
    return None


def gpu_default_reason(name: str, row: dict | None) -> str:
    """Why a chapter runs full or quick mode on a GPU by default, from its recorded run; full
    only for the last answer (``expected_gpu_default``)."""
    if row is None:
        return "its full mode has not been timed"
    if row["status"] != "passed":
        return "its full mode did not pass its one recorded run"
    if name in DOWNLOADS and row["data"] != "downloads":
        return "its full mode has not been timed on the data it downloads"
    if row["wall_s"] > FULL_BY_DEFAULT_S:
        return "its full mode took longer than 15 minutes on the CPU"
    return "its full mode finished within 15 minutes on the CPU"


def expected_gpu_default(name: str, row: dict | None) -> str:
    """The default on a GPU that the recorded run implies: full only where it passed within
    ``FULL_BY_DEFAULT_S`` on the data full mode really uses."""
    fast = gpu_default_reason(name, row).endswith("within 15 minutes on the CPU")
    return "full" if fast else "quick"


def _data_label(name: str, row: dict) -> str:
    return row["data"] if name in DOWNLOADS else "nothing to download"


def cost_text(name: str, doc: dict, quick: dict, on_gpu: str | None = None) -> str:
    """The paragraph a chapter opens with: what each mode costs, measured, which mode a GPU
    runs by default (``on_gpu``), and how to switch."""
    parts = ["**What running this page costs.**"]
    if name in quick:
        parts.append(
            f"Quick mode (the default without a GPU) ran it in {_minutes(quick[name])}"
            " on 2 CPU cores (`make bench`)."
        )
    row = doc["notebooks"].get(name)
    if row is None:
        parts.append("Full mode (the papers' sizes) has not been timed.")
    else:
        failed = "" if row["status"] == "passed" else ", and an assertion failed"
        if failed and row.get("note"):
            failed += " (what was changed after it: the note there)"
        offline = " on its offline data" if name in DOWNLOADS and row["data"] != "downloads" else ""
        parts.append(
            f"Full mode (the papers' sizes) ran it{offline} in {_minutes(row['wall_s'])} on 2"
            f" CPU cores, peak memory {row['peak_rss_mib']} MiB (`make full`, {row['date'][:10]};"
            f" `benchmarks/results/full_mode.md`){failed}."
        )
    if row is None or row["device"] != "cuda":
        parts.append("Its time on a GPU has not been measured yet.")
    if name in DOWNLOADS:
        parts.append(f"A first full-mode run downloads {DOWNLOADS[name]} once, checksummed.")
    if on_gpu is not None:
        why = gpu_default_reason(name, row)
        parts.append(f"With a GPU this page runs in {on_gpu} mode unless told otherwise ({why}).")
    parts.append(
        "To switch modes, restart the kernel and run `%env COURSE_MODE=full` (or `quick`)"
        " before the first import."
    )
    return " ".join(parts)


def write_costs(doc: dict, root: Path | None = None) -> list[str]:
    """Write each chapter's cost paragraph (cell ``run-cost``, inserted second if missing);
    return the chapters whose cell changed."""
    root = ROOT if root is None else root
    quick, changed = _quick_times(), []
    for path in sorted((root / "chapters").glob("*.ipynb")):
        name = str(path.relative_to(root))
        nb = nbformat.read(path, as_version=4)
        text = cost_text(name, doc, quick, gpu_default(nb))
        cells = [c for c in nb.cells if c.get("id") == COST_CELL_ID]
        if cells and cells[0].source == text and COST_CELL_TAGS == cells[0].metadata.get("tags"):
            continue
        if cells:
            cells[0].source = text
        else:
            cells = [nbformat.v4.new_markdown_cell(text)]
            cells[0]["id"] = COST_CELL_ID
            nb.cells.insert(1, cells[0])
        cells[0].metadata["tags"] = list(COST_CELL_TAGS)
        nbformat.write(nb, path)
        changed.append(name)
    return changed


def write(doc: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "full_mode.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    (RESULTS / "full_mode.md").write_text(render(doc))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("patterns", nargs="*", help="glob patterns of notebooks (default: all)")
    parser.add_argument(
        "--no-downloads",
        action="store_true",
        help="use the offline datasets instead of CIFAR-10 and HateXplain",
    )
    parser.add_argument(
        "--costs",
        action="store_true",
        help="only rewrite each chapter's cost paragraph from the recorded times",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="only rewrite full_mode.md (measured outputs re-read from _build/full)",
    )
    args = parser.parse_args(argv)
    if args.report:
        write(refresh_measured(read()))
        return 0
    if args.costs:
        print("cost paragraphs rewritten:", write_costs(read()) or "none")
        return 0
    doc = run(args.patterns or None, downloads=not args.no_downloads)
    failed = [n for n, r in doc["notebooks"].items() if r["status"] != "passed"]
    print(f"report: {RESULTS / 'full_mode.md'}; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
