#!/usr/bin/env python3
"""Run the course's benchmarks and write ``benchmarks/results/latest.{md,json}`` (``make bench``).

    .venv/bin/python benchmarks/run.py                     # everything, quick size
    .venv/bin/python benchmarks/run.py --skip-notebooks    # engines only
    .venv/bin/python benchmarks/run.py --only notebooks --notebooks 'chapters/02_*'
    .venv/bin/python benchmarks/run.py --list

The size defaults to ``full`` when a CUDA device is present and ``quick`` otherwise, as the
course's mode does.  A partial run (``--only``, ``--skip-notebooks``) replaces its own entries
in the results and keeps the others, each labelled with the run (machine, date) that measured it.
"""

from __future__ import annotations

import argparse
import fnmatch
import secrets
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import bench_notebooks  # noqa: E402
import harness  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size", choices=harness.SIZES, help="problem size (default: full with CUDA, else quick)"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only benchmarks whose name matches this glob (repeatable)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        metavar="NAME",
        default=[],
        help="skip benchmarks matching this glob (repeatable)",
    )
    parser.add_argument(
        "--skip-notebooks",
        action="store_true",
        help="do not execute notebooks (same as --skip notebooks)",
    )
    parser.add_argument(
        "--notebooks",
        action="append",
        metavar="GLOB",
        help="execute only these notebooks, e.g. 'chapters/01_*' (repeatable)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results",
        help="results folder (default: benchmarks/results)",
    )
    parser.add_argument("--no-write", action="store_true", help="print the results, write nothing")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser.parse_args(argv)


def select(registry: dict, only, skip) -> list:
    names = list(registry)
    if only:
        names = [n for n in names if any(fnmatch.fnmatch(n, pat) for pat in only)]
        if not names:
            raise SystemExit(f"no benchmark matches {only}; known: {', '.join(registry)}")
    names = [n for n in names if not any(fnmatch.fnmatch(n, pat) for pat in skip)]
    return [registry[n] for n in names]


def main(argv=None) -> int:
    args = parse_args(argv)
    registry = harness.load_all()
    if args.list:
        for b in registry.values():
            print(f"{b.name:24s} {b.description}")
        return 0
    size = args.size or ("full" if torch.cuda.is_available() else "quick")
    skip = list(args.skip) + (["notebooks"] if args.skip_notebooks else [])
    bench_notebooks.SELECT = args.notebooks
    chosen = select(registry, args.only, skip)
    run = {
        "id": time.strftime("%Y%m%d-%H%M") + "-" + secrets.token_hex(2),
        "date": harness.now_utc(),
        "size": size,
        "machine": harness.machine_info(),
    }
    print(f"benchmarks ({size}): {', '.join(b.name for b in chosen)}")
    print(f"machine: {harness.machine_line(run['machine'])}")
    entries = []
    for bench in chosen:
        print(f"[{bench.name}] {bench.description}", flush=True)
        entry = harness.run_one(bench, size)
        print(f"  -> {entry['summary']} ({entry['wall_s']} s)", flush=True)
        entries.append(entry)
    doc = harness.merge(None if args.no_write else harness.read_results(args.out), run, entries)
    if args.no_write:
        print(harness.render_markdown(doc))
    else:
        md, js = harness.write_results(doc, args.out)
        if args.out.resolve() == (HERE / "results").resolve():
            harness.update_readme(doc, HERE / "README.md")
        shown = md.relative_to(Path.cwd()) if md.is_relative_to(Path.cwd()) else md
        print(f"wrote {shown} and {js.name}")
    return 1 if any(e.get("error") for e in entries) else 0


if __name__ == "__main__":
    sys.exit(main())
