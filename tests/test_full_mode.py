"""benchmarks/full_mode.py (`make full`): the report of full-mode runs, on a tiny notebook."""

import sys
from pathlib import Path

import nbformat
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import full_mode  # noqa: E402


def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for src, tags in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    return nb


def _row(**changes):
    row = {
        "status": "passed",
        "wall_s": 754.2,
        "peak_rss_mib": 812,
        "slowest_cell_s": 300.0,
        "slowest_cell": "#12: train(...)",
        "data": "downloads",
        "date": "2026-12-02 14:00 UTC",
        "commit": "abc1234",
        "machine": "a CPU, 2 logical cores",
        "device": "cpu",
        "measured": [],
    }
    row.update(changes)
    return row


def test_measured_outputs_follow_the_tags_of_the_source_by_cell_id():
    source = _notebook(("x = 1", []), ("print('gap', 0.3)", ["measured"]))
    executed = nbformat.from_dict(source)
    for cell in executed.cells:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="gap 0.3\n")]
    found = full_mode.measured_outputs(source, executed)
    assert found == [{"cell": 1, "source": "print('gap', 0.3)", "output": "gap 0.3"}]
    untagged = _notebook(("x = 1", []), ("print('gap', 0.3)", []))
    assert full_mode.measured_outputs(untagged, executed) == []


def test_report_has_one_row_per_notebook_with_time_memory_and_status():
    doc = {
        "notebooks": {
            "chapters/02_b.ipynb": _row(status="FAILED AssertionError: 0.7", wall_s=42.0),
            "chapters/01_a.ipynb": _row(measured=[{"cell": 3, "source": "s", "output": "1.5"}]),
        }
    }
    text = full_mode.render(doc)
    rows = [line for line in text.splitlines() if line.startswith("| `chapters/")]
    assert [r.split("`")[1] for r in rows] == ["chapters/01_a.ipynb", "chapters/02_b.ipynb"]
    assert "12.6 min" in rows[0] and "812 MiB" in rows[0] and "passed" in rows[0]
    assert "42 s" in rows[1] and "FAILED AssertionError" in rows[1]
    assert "### `chapters/01_a.ipynb`" in text and "1.5" in text
    assert "### `chapters/02_b.ipynb`" not in text  # nothing measured, no section


def test_report_only_mode_rewrites_from_json(tmp_path, monkeypatch):
    monkeypatch.setattr(full_mode, "RESULTS", tmp_path)
    monkeypatch.setattr(full_mode, "EXECUTED", tmp_path / "executed")
    full_mode.write({"notebooks": {"chapters/01_a.ipynb": _row()}})
    (tmp_path / "full_mode.md").write_text("stale")
    assert full_mode.main(["--report"]) == 0
    assert "chapters/01_a.ipynb" in (tmp_path / "full_mode.md").read_text()


@pytest.mark.slow
def test_a_notebook_runs_in_full_mode_and_is_recorded(tmp_path, monkeypatch):
    folder = tmp_path / "chapters"
    folder.mkdir()
    nb = _notebook(
        ("import os\nprint(os.environ['COURSE_MODE'], os.environ.get('COURSE_DOWNLOADS'))",
         ["measured"]),
    )
    nbformat.write(nb, folder / "01_tiny.ipynb")
    monkeypatch.setattr(full_mode, "ROOT", tmp_path)
    monkeypatch.setattr(full_mode, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(full_mode, "EXECUTED", tmp_path / "executed")
    monkeypatch.setattr(full_mode, "discover", lambda select=None: [folder / "01_tiny.ipynb"])
    doc = full_mode.run(None, downloads=False)
    row = doc["notebooks"]["chapters/01_tiny.ipynb"]
    assert row["status"] == "passed", row
    assert row["measured"][0]["output"] == "full off"
    assert (tmp_path / "executed" / "chapters" / "01_tiny.ipynb").exists()
    assert "01_tiny" in (tmp_path / "results" / "full_mode.md").read_text()
