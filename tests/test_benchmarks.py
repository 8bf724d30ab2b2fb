"""The benchmarks cannot rot: each registered benchmark runs once at the tiny size, the naive
reference of ``training_step`` computes the model's loss and gradients, the report is written.
(No real notebook is executed: the notebook benchmark's tiny size runs a 1-cell notebook it
writes.)"""

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_notebooks  # noqa: E402
import bench_topic  # noqa: E402
import harness  # noqa: E402
import run  # noqa: E402
from course_lib.topic import TopicAttention, make_topic_corpus  # noqa: E402

REGISTRY = harness.load_all()


def test_the_core_benchmarks_are_registered():
    assert {"notebooks", "batched_seeds", "training_step", "paper_experiment"} <= set(REGISTRY)
    for bench in REGISTRY.values():
        assert bench.description.strip() and callable(bench.fn)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_benchmark_runs_at_the_tiny_size(name):
    entry = harness.run_one(REGISTRY[name], "tiny")
    assert not entry.get("error"), entry["summary"]
    assert entry["rows"] and entry["summary"]
    columns = set(entry["rows"][0])
    assert columns and all(
        isinstance(v, (int, float, str, type(None))) for r in entry["rows"] for v in r.values()
    )
    json.dumps(entry)  # the results file can hold it


@pytest.mark.parametrize("classifier", ["fixed", "linear", "mlp"])
def test_naive_reference_matches_the_model(classifier):
    corpus = make_topic_corpus(n_background=20, m=4, n_sentences=12, seed=2)
    tokens, labels = corpus.train
    model = TopicAttention(
        corpus.vocab_size, corpus.n_topics, classifier=classifier, embedding_std=0.3, seed=1
    ).double()
    with torch.no_grad():
        model.keys.weight.normal_(0, 1.0)  # non-uniform attention
    params = [p for p in model.parameters() if p.requires_grad]
    naive = bench_topic.naive_loss(model, tokens, labels)
    vectorised = F.cross_entropy(model(tokens), labels)
    torch.testing.assert_close(naive, vectorised, rtol=1e-12, atol=1e-12)
    for g_naive, g_vec in zip(
        torch.autograd.grad(naive, params), torch.autograd.grad(vectorised, params)
    ):
        torch.testing.assert_close(g_naive, g_vec, rtol=1e-10, atol=1e-12)


def test_a_benchmark_is_one_decorated_function():
    @harness.benchmark("unit_test_example", "An example.")
    def example(size):
        return harness.Result(rows=[{"size": size, "ms": 1.5}], summary="ok")

    try:
        entry = harness.run_one(harness.REGISTRY["unit_test_example"], "tiny")
        assert entry["rows"] == [{"size": "tiny", "ms": 1.5}]
        with pytest.raises(ValueError, match="size"):
            harness.run_one(harness.REGISTRY["unit_test_example"], "huge")
        with pytest.raises(ValueError, match="name"):
            harness.benchmark("bad name!", "x")
    finally:
        harness.REGISTRY.pop("unit_test_example", None)


def test_a_failing_benchmark_is_recorded_not_raised():
    bench = harness.Benchmark("broken", "Raises.", lambda size: 1 / 0)
    entry = harness.run_one(bench, "tiny")
    assert entry["error"] and "ZeroDivisionError" in entry["summary"]


def test_results_are_written_and_partial_runs_merge(tmp_path):
    machine = harness.machine_info()
    assert machine["cpu"] and machine["torch"] == torch.__version__ and "gpu" in machine
    first = {"id": "run-a", "date": "d1", "size": "quick", "machine": machine}
    second = {"id": "run-b", "date": "d2", "size": "quick", "machine": machine}
    entries = [
        {
            "name": n,
            "description": "d",
            "size": "quick",
            "rows": [{"x": 1.0}],
            "summary": "s",
            "notes": [],
            "wall_s": 1.0,
        }
        for n in ("notebooks", "batched_seeds")
    ]
    harness.write_results(harness.merge(None, first, entries), tmp_path)
    redo = [
        {
            "name": "batched_seeds",
            "description": "d",
            "size": "quick",
            "rows": [{"x": 2.0}],
            "summary": "s2",
            "notes": ["n"],
            "wall_s": 1.0,
        }
    ]
    doc = harness.merge(harness.read_results(tmp_path), second, redo)
    harness.write_results(doc, tmp_path)
    saved = json.loads((tmp_path / "latest.json").read_text())
    by_name = {e["name"]: e for e in saved["benchmarks"]}
    assert by_name["notebooks"]["run"] == "run-a" and by_name["batched_seeds"]["run"] == "run-b"
    assert set(saved["runs"]) == {"run-a", "run-b"}
    text = (tmp_path / "latest.md").read_text()
    assert "| x |" in text and "run-b" in text and machine["cpu"] in text
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\nafter\n")
    assert harness.update_readme(doc, readme)
    text = readme.read_text()
    assert "old" not in text and "`batched_seeds` | s2" in text and text.endswith("after\n")
    assert not harness.update_readme(doc, tmp_path / "missing.md")


def test_notebooks_are_discovered_and_the_book_timeout_is_used(tmp_path):
    for rel in (
        "chapters/02_b.ipynb",
        "chapters/01_a.ipynb",
        "exercises/01_a.ipynb",
        "chapters/notes.md",
    ):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text("{}")
    found = [str(p.relative_to(tmp_path)) for p in bench_notebooks.discover(tmp_path)]
    assert found == ["chapters/01_a.ipynb", "chapters/02_b.ipynb", "exercises/01_a.ipynb"]
    only = bench_notebooks.discover(tmp_path, select=["chapters/02_*"])
    assert [p.name for p in only] == ["02_b.ipynb"]
    assert bench_notebooks.book_timeout() > 0
    (tmp_path / "_config.yml").write_text(
        "title: x\nexecute:\n  execute_notebooks: cache\n  timeout: 123\n"
    )
    assert bench_notebooks.book_timeout(tmp_path) == 123


def test_command_line_selection():
    assert run.main(["--list"]) == 0
    chosen = run.select(REGISTRY, ["batched_*"], [])
    assert [b.name for b in chosen] == ["batched_seeds"]
    assert "notebooks" not in [b.name for b in run.select(REGISTRY, None, ["notebooks"])]
    with pytest.raises(SystemExit):
        run.select(REGISTRY, ["no_such_benchmark"], [])


def test_notebook_summary_names_the_budget_and_the_dominant_notebooks():
    rows = [
        {
            "notebook": "chapters/01.ipynb",
            "mode": "quick",
            "wall_s": 30.0,
            "peak_rss_mib": 300.0,
            "status": "ok",
        },
        {
            "notebook": "chapters/02.ipynb",
            "mode": "quick",
            "wall_s": 150.0,
            "peak_rss_mib": 400.0,
            "status": "ok",
        },
        {
            "notebook": "exercises/02.ipynb",
            "mode": "quick",
            "wall_s": 5.0,
            "peak_rss_mib": 200.0,
            "status": "ERROR CellExecutionError: x",
        },
        {
            "notebook": "chapters/02.ipynb",
            "mode": "full",
            "wall_s": 900.0,
            "peak_rss_mib": 900.0,
            "status": "ok",
        },
    ]
    summary, notes = bench_notebooks.summarise(rows)
    assert "185 s for 3 notebooks" in summary and "within" in summary
    assert summary.index("chapters/02.ipynb 150 s") < summary.index("chapters/01.ipynb")
    assert "full mode: 900 s" in summary and "400 MiB" in summary
    assert any("budget" in n and "chapters/02.ipynb" in n for n in notes)
    assert any("failed" in n and "exercises/02.ipynb" in n for n in notes)
