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
        (
            "import os\nprint(os.environ['COURSE_MODE'], os.environ.get('COURSE_DOWNLOADS'))",
            ["measured"],
        ),
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


def test_cost_paragraph_states_both_modes_the_gpu_and_how_to_switch():
    doc = {"notebooks": {"chapters/04_x.ipynb": _row(wall_s=754.2, data="offline data only")}}
    ch6 = "chapters/06_the_hybrid.ipynb"
    offline = {"notebooks": {ch6: _row(data="offline data only")}}
    assert "ran it on its offline data in" in full_mode.cost_text(ch6, offline, {})
    assert "downloads CIFAR-10" in full_mode.cost_text(ch6, offline, {})
    text = full_mode.cost_text("chapters/04_x.ipynb", doc, {"chapters/04_x.ipynb": 41.0})
    assert "Quick mode" in text and "41 s" in text
    assert "ran it in 12.6 min" in text and "812 MiB" in text  # no download in chapter 04_x
    assert "GPU has not been measured" in text and "%env COURSE_MODE=full" in text
    failed = {"notebooks": {"chapters/04_x.ipynb": _row(status="FAILED cell 3")}}
    assert "an assertion failed" in full_mode.cost_text("chapters/04_x.ipynb", failed, {})
    on_gpu = {"notebooks": {"chapters/04_x.ipynb": _row(device="cuda")}}
    assert "GPU has not" not in full_mode.cost_text("chapters/04_x.ipynb", on_gpu, {})
    unknown = full_mode.cost_text("chapters/09_y.ipynb", {"notebooks": {}}, {})
    assert "has not been timed" in unknown and "With a GPU" not in unknown
    quick_on_gpu = full_mode.cost_text("chapters/04_x.ipynb", doc, {}, on_gpu="quick")
    assert "With a GPU this page runs in quick mode" in quick_on_gpu


def test_gpu_default_reads_the_chapters_call():
    nb = _notebook(
        ("from course_lib import config", []), ('config.default_mode(on_gpu="full")  # comment', [])
    )
    assert full_mode.gpu_default(nb) == "full"
    assert full_mode.gpu_default(_notebook(("x = 1", []))) is None


def test_write_costs_inserts_then_updates_one_cell(tmp_path):
    (tmp_path / "chapters").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("x = 1")]
    path = tmp_path / "chapters" / "01_a.ipynb"
    nbformat.write(nb, path)
    doc = {"notebooks": {"chapters/01_a.ipynb": _row()}}
    assert full_mode.write_costs(doc, root=tmp_path) == ["chapters/01_a.ipynb"]
    cells = nbformat.read(path, as_version=4).cells
    assert cells[1].get("id") == full_mode.COST_CELL_ID and "12.6 min" in cells[1].source
    assert cells[1].metadata["tags"] == ["remove-cell"]  # for notebook readers only
    assert full_mode.write_costs(doc, root=tmp_path) == []  # up to date: nothing written
    doc["notebooks"]["chapters/01_a.ipynb"]["wall_s"] = 60.0
    assert full_mode.write_costs(doc, root=tmp_path) == ["chapters/01_a.ipynb"]
    cells = nbformat.read(path, as_version=4).cells
    assert len(cells) == 3 and "1.0 min" in cells[1].source


def test_every_chapter_states_the_recorded_costs():
    """The cost paragraph of each chapter agrees with results/full_mode.json and latest.json
    (after `make full` or `make bench`, run `benchmarks/full_mode.py --costs`)."""
    doc, quick = full_mode.read(), full_mode._quick_times()
    root = Path(__file__).resolve().parents[1]
    for path in sorted((root / "chapters").glob("*.ipynb")):
        name = str(path.relative_to(root))
        cells = [
            c
            for c in nbformat.read(path, as_version=4).cells
            if c.get("id") == full_mode.COST_CELL_ID
        ]
        assert cells, f"{name} has no cost paragraph (benchmarks/full_mode.py --costs)"
        on_gpu = full_mode.gpu_default(nbformat.read(path, as_version=4))
        assert cells[0].source == full_mode.cost_text(name, doc, quick, on_gpu), name


def test_each_chapter_defaults_to_full_mode_on_a_gpu_only_where_it_was_measured_fast():
    """config.default_mode(on_gpu=...) in each chapter follows its recorded full-mode run:
    full only where that run passed within FULL_BY_DEFAULT_S (about 15 minutes) on the data
    full mode really uses (not chapters 4 and 6's offline stand-ins)."""
    doc = full_mode.read()
    root = Path(__file__).resolve().parents[1]
    for path in sorted((root / "chapters").glob("*.ipynb")):
        name = str(path.relative_to(root))
        expected = full_mode.expected_gpu_default(name, doc["notebooks"].get(name))
        assert full_mode.gpu_default(nbformat.read(path, as_version=4)) == expected, name


def test_the_gpu_default_rule():
    ch4 = "chapters/04_three_ways_to_attend.ipynb"
    assert full_mode.expected_gpu_default("chapters/01_a.ipynb", _row(wall_s=600.0)) == "full"
    assert full_mode.expected_gpu_default("chapters/01_a.ipynb", _row(wall_s=1000.0)) == "quick"
    assert full_mode.expected_gpu_default("chapters/01_a.ipynb", _row(status="FAILED")) == "quick"
    assert full_mode.expected_gpu_default("chapters/01_a.ipynb", None) == "quick"
    offline = _row(wall_s=600.0, data="offline data only (COURSE_DOWNLOADS=off)")
    assert full_mode.expected_gpu_default(ch4, offline) == "quick"  # not the real data
    assert full_mode.expected_gpu_default(ch4, _row(wall_s=600.0)) == "full"
