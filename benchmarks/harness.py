"""The benchmark harness: a registry, timing and memory helpers, the machine, and the report.

Adding a benchmark is one function in a module of ``benchmarks/`` (listed in ``MODULES``)::

    from harness import benchmark, Result, time_call

    @benchmark("my_engine", "What it measures, in one line.")
    def my_engine(size: str) -> Result:
        n = {"tiny": 10, "quick": 1000, "full": 10000}[size]
        seconds = time_call(lambda: work(n))
        return Result(rows=[{"case": f"n={n}", "ms": 1e3 * seconds}],
                      summary=f"work(n={n}) takes {1e3 * seconds:.1f} ms")

``size`` is ``"tiny"`` (the unit test runs every benchmark once at this size: keep it well under a
second), ``"quick"`` (``make bench`` on a laptop CPU) or ``"full"`` (the papers' sizes, a GPU).
A benchmark returns a ``Result``: rows of one small table (same keys in every row) and a
one-line summary.  ``benchmarks/run.py`` runs the registry and writes ``results/latest.{md,json}``.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy
import psutil
import torch

SIZES = ("tiny", "quick", "full")
# Modules whose import registers benchmarks, in report order.
MODULES = ("bench_notebooks", "bench_topic", "bench_mosaic", "bench_flow", "bench_hybrid")


@dataclass
class Result:
    """What a benchmark returns: ``rows`` (a table, the same keys in each row) and a summary."""

    rows: list[dict]
    summary: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class Benchmark:
    name: str
    description: str
    fn: Callable[[str], Result]


REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str, description: str):
    """Register ``fn(size) -> Result`` under ``name`` (unique) with a one-line description."""
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"benchmark name must be letters, digits and underscores, got {name!r}")

    def register(fn):
        if name in REGISTRY and REGISTRY[name].fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = Benchmark(name, description, fn)
        return fn

    return register


def load_all() -> dict[str, Benchmark]:
    """Import every module in ``MODULES`` (which registers its benchmarks); return the registry."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    for module in MODULES:
        importlib.import_module(module)
    return REGISTRY


def check_size(size: str) -> str:
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    return size


# --------------------------------------------------------------------------- timing


def _sync(device) -> None:
    if device is not None and str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1, device=None) -> float:
    """Seconds one call of ``fn`` takes: the minimum over ``repeats`` timed calls after
    ``warmup`` untimed ones (the minimum is the least disturbed by other load on the machine).
    CUDA work is synchronised before the clock is read when ``device`` is a CUDA device."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def median(values) -> float:
    return float(statistics.median(values))


class PeakRSS:
    """Sample the resident memory of a process tree in a background thread (context manager).

    ``pid``: the root process (default: this one); ``include_root``: count the root itself, or
    only its descendants (a Jupyter kernel is a child of the process that started it).
    After the ``with`` block, ``peak`` is the largest sampled sum of RSS in bytes.
    """

    def __init__(self, pid: int | None = None, include_root: bool = True, interval: float = 0.02):
        self.pid = os.getpid() if pid is None else pid
        self.include_root = include_root
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        try:
            root = psutil.Process(self.pid)
            procs = root.children(recursive=True) + ([root] if self.include_root else [])
        except psutil.Error:
            return 0
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.peak = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.peak = max(self.peak, self.sample())
        self._stop.set()
        self._thread.join()
        return False


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20


# --------------------------------------------------------------------------- the machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """The machine and software a run measured: CPU, cores, memory, GPU, versions, load."""
    gpu = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = f"{torch.cuda.get_device_name(0)} ({props.total_memory / 2**30:.0f} GiB)"
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": _cpu_model(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": gpu,
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_at_start": load,
    }


def machine_line(m: dict) -> str:
    gpu = m.get("gpu") or "no GPU"
    load = m.get("load_average_at_start")
    load_text = f", load average {load[0]:.1f} at start" if load else ""
    return (
        f"{m['cpu']}, {m['logical_cores']} logical cores, {m['memory_gib']} GiB, {gpu}; "
        f"Python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads), "
        f"numpy {m['numpy']}{load_text}"
    )


# --------------------------------------------------------------------------- running and reporting


def run_one(bench: Benchmark, size: str) -> dict:
    """Run one benchmark; return its JSON entry (an error is recorded, not raised)."""
    check_size(size)
    start = time.perf_counter()
    entry = {"name": bench.name, "description": bench.description, "size": size}
    try:
        result = bench.fn(size)
        if not isinstance(result, Result):
            raise TypeError(
                f"benchmark {bench.name!r} returned {type(result).__name__}, not Result"
            )
        entry.update(
            rows=[_round_row(r) for r in result.rows], summary=result.summary, notes=result.notes
        )
    except Exception as exc:  # a broken benchmark must not hide the others
        entry.update(rows=[], summary=f"FAILED: {type(exc).__name__}: {exc}", notes=[], error=True)
    entry["wall_s"] = round(time.perf_counter() - start, 2)
    return entry


def _round_row(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if isinstance(value, float):
            value = float(f"{value:.4g}") if value == value else None
        out[key] = value
    return out


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def merge(previous: dict | None, run: dict, entries: list[dict]) -> dict:
    """The results document: this run's entries replace earlier entries of the same name; the
    others are kept with the run (machine, date) that measured them."""
    doc = {"runs": {}, "benchmarks": []}
    if previous and isinstance(previous.get("benchmarks"), list):
        names = {e["name"] for e in entries}
        kept = [e for e in previous["benchmarks"] if e.get("name") not in names]
        doc["benchmarks"] = kept
        used = {e.get("run") for e in kept}
        doc["runs"] = {k: v for k, v in previous.get("runs", {}).items() if k in used}
    doc["runs"][run["id"]] = run
    for e in entries:
        e["run"] = run["id"]
    doc["benchmarks"] += entries
    order = {name: i for i, name in enumerate(REGISTRY)}
    doc["benchmarks"].sort(key=lambda e: order.get(e["name"], len(order)))
    return doc


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    return str(value).replace("|", "\\|")


def table(rows: list[dict]) -> str:
    """A Markdown table of ``rows`` (columns: the keys of all rows, in first-seen order)."""
    if not rows:
        return "(no rows)\n"
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def render_markdown(doc: dict) -> str:
    parts = [
        "# Benchmark results\n",
        "Written by `make bench` (`benchmarks/run.py`); see `benchmarks/README.md` for what each "
        "benchmark measures.  Times are the minimum of repeated runs unless stated.\n",
    ]
    for run_id, run in doc["runs"].items():
        parts.append(
            f"- Run `{run_id}` ({run['date']}, size `{run['size']}`): "
            f"{machine_line(run['machine'])}."
        )
    parts.append("")
    for e in doc["benchmarks"]:
        parts.append(f"## {e['name']}\n")
        parts.append(
            f"{e['description']}  \n*Size `{e['size']}`, run `{e.get('run')}`, {e['wall_s']} s.*\n"
        )
        if e.get("summary"):
            parts.append(f"**{e['summary']}**\n")
        if e.get("rows"):
            parts.append(table(e["rows"]))
        for note in e.get("notes", []):
            parts.append(f"- {note}")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def write_results(doc: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "latest.json", out_dir / "latest.md"
    json_path.write_text(json.dumps(doc, indent=1) + "\n")
    md_path.write_text(render_markdown(doc))
    return md_path, json_path


def read_results(out_dir: Path) -> dict | None:
    path = out_dir / "latest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summary_table(doc: dict) -> str:
    """One row per benchmark (its summary line), for benchmarks/README.md."""
    lines = ["| benchmark | latest result | size | measured on |", "|---|---|---|---|"]
    for e in doc["benchmarks"]:
        run = doc["runs"].get(e.get("run"), {})
        m = run.get("machine", {})
        where = (
            f"{m.get('gpu') or m.get('cpu', '?')}, {m.get('torch_threads', '?')} threads, "
            f"{run.get('date', '?')}"
        )
        lines.append(
            f"| `{e['name']}` | {_cell(e.get('summary', ''))} | {e['size']} | {_cell(where)} |"
        )
    return "\n".join(lines) + "\n"


def update_readme(doc: dict, readme: Path) -> bool:
    """Replace the text between the results markers of ``readme``; False if it has none."""
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    try:
        text = readme.read_text()
    except OSError:
        return False
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    readme.write_text(f"{head}{start}\n{summary_table(doc)}{end}{tail}")
    return True
