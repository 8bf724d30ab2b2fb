"""The chapters as a reader meets them, checked from the sources without running anything:
every figure is numbered, captioned and described; the cells that
only assert a claim are folded under one uniform label that each page's opening note counts;
the imports and settings are folded; equation numbers run in reading order; the results table
of chapters 4 and 6 has one home in the library.  The rendered pages are checked by
tests/browser/test_figures.py.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import nbformat
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from course_lib import plotting  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
CHECK_TAG = "claim-check"
CHECK_SHOW = "Checked: show the assertion"
NOTE = re.compile(r"^\*Checked claims:\* (\d+) claims this page makes", re.M)
HASHLIKE = re.compile(r"^[0-9a-f]{16,}(\.\w+)?$")
TAG = re.compile(r"\\tag\{(\d+)\.(\d+)\}")


def load(path):
    return nbformat.read(path, as_version=4)


def chapter_number(path) -> int:
    return int(path.name[:2])


def figure_cells(nb):
    """The code cells the website shows that draw a figure (CONTRIBUTING.md: ``plt.show()``)."""
    return [
        c
        for c in nb.cells
        if c.cell_type == "code"
        and "plt.show()" in c.source
        and "remove-cell" not in c.metadata.get("tags", [])
    ]


def figure_problems(nb, number: int) -> list[str]:
    problems = []
    for cell in figure_cells(nb):
        first = cell.source.strip().splitlines()[0][:50]
        meta = cell.metadata.get("mystnb", {})
        figure, image = meta.get("figure", {}), meta.get("image", {})
        caption, name, alt = figure.get("caption", ""), figure.get("name", ""), image.get("alt", "")
        if cell.source.count("plt.show()") != 1:
            problems.append(f"{first!r}: one figure per cell (one caption, one number)")
        if len(caption.split()) < 5:
            problems.append(f"{first!r}: no caption (mystnb.figure.caption)")
        if not re.fullmatch(rf"fig-ch{number}-[a-z0-9-]+", name):
            problems.append(f"{first!r}: figure name {name!r} is not fig-ch{number}-...")
        if len(alt.split()) < 5 or HASHLIKE.match(alt):
            problems.append(f"{first!r}: no alt text (mystnb.image.alt)")
    return problems


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_figure_has_a_caption_a_name_and_alt_text(path):
    nb = load(path)
    assert figure_cells(nb), f"{path.name} draws no figure"
    problems = figure_problems(nb, chapter_number(path))
    assert not problems, "\n".join(problems)


def test_figure_names_are_unique_across_the_book():
    names = [
        c.metadata["mystnb"]["figure"]["name"]
        for path in CHAPTERS
        for c in figure_cells(load(path))
    ]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_the_figure_check_rejects_a_figure_without_metadata():
    nb = load(CHAPTERS[0])
    cell = figure_cells(nb)[0]
    cell.metadata["mystnb"]["image"]["alt"] = "3f2a9c0d1e5b7a6c4d8e9f0a1b2c3d4e.png"
    del cell.metadata["mystnb"]["figure"]["caption"]
    problems = figure_problems(nb, chapter_number(CHAPTERS[0]))
    assert any("no caption" in p for p in problems) and any("alt text" in p for p in problems)
    assert figure_problems(nb, 9), "a chapter-1 name must not pass as chapter 9's"


def claim_checks(nb):
    return [c for c in nb.cells if CHECK_TAG in c.metadata.get("tags", [])]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_assertion_cells_are_folded_under_one_label_and_counted(path):
    nb = load(path)
    checks = claim_checks(nb)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code" and "hide-input" in tags and "assert" in cell.source:
            assert CHECK_TAG in tags, f"assertion cell without {CHECK_TAG}: {cell.source[:60]!r}"
    for cell in checks:
        assert "assert" in cell.source, f"{CHECK_TAG} asserts nothing: {cell.source[:60]!r}"
        assert "hide-input" in cell.metadata["tags"]
        assert cell.metadata["mystnb"]["code_prompt_show"] == CHECK_SHOW
    note = NOTE.search(nb.cells[0].source)
    assert note, "the first cell has no note counting the page's checked claims"
    assert int(note.group(1)) == len(checks), (
        f"the note says {note.group(1)} checked claims, the page has {len(checks)}"
    )
    assert CHECK_SHOW in nb.cells[0].source, "the note does not name the label to click"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_imports_and_settings_are_folded(path):
    code = [c for c in load(path).cells if c.cell_type == "code"]
    imports, settings = code[1], code[2]  # code[0] is the Colab setup cell (hide-cell)
    assert "import" in imports.source and "hide-input" in imports.metadata.get("tags", [])
    assert "hide-input" in settings.metadata.get("tags", []), settings.source[:60]


def tags_in_order(text: str) -> list[str]:
    """The ``\\tag{N.k}`` numbers of a chapter that break reading order (expected k = 1, 2, ...)."""
    found = [(int(n), int(k)) for n, k in TAG.findall(text)]
    return [
        f"({n}.{k}) where ({n}.{i}) was expected"
        for i, (n, k) in enumerate(found, start=1)
        if k != i
    ]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_equation_numbers_run_in_reading_order(path):
    text = "\n".join(c.source for c in load(path).cells if c.cell_type == "markdown")
    assert not tags_in_order(text)


def test_the_order_check_rejects_a_swapped_pair():
    assert tags_in_order(r"\tag{7.1} \tag{7.3} \tag{7.2}")
    assert not tags_in_order(r"\tag{7.1} \tag{7.2} \tag{7.3}")


# ------------------------------------------------------------------ the results table


def evaluation(focus, a_z, argmax, avg_out, avg_in, ftpt, ffpt):
    table = {rule: {"FTPT": ftpt, "FFPT": ffpt} for rule in ("average_input", "average_output")}
    accuracy = {"argmax_segment": argmax, "average_output": avg_out, "average_input": avg_in}
    return SimpleNamespace(focus_accuracy=focus, mean_a_z=a_z, accuracy=accuracy, table=table)


def test_metrics_table_means_over_seeds_and_writes_markdown():
    results = {
        "soft": [evaluation(90, 0.5, 80, 81, 82, 70, 10), evaluation(100, 0.7, 90, 91, 92, 80, 20)],
        "hard": [evaluation(50, np.float32(0.25), 40, 41, 42, 30, 5)],
    }
    table = plotting.metrics_table(results)
    assert table.rows["soft"] == [95.0, 0.6, 85.0, 86.0, 87.0, 75.0, 15.0]
    assert all(type(v) is float for v in table.rows["hard"])  # no np.float32(...) reprs
    lines = table.markdown.splitlines()
    assert lines[0] == "| loss | " + " | ".join(plotting.METRICS_HEADER) + " |"
    assert lines[2] == "| soft | 95.0 | 0.600 | 85.0 | 86.0 | 87.0 | 75.0 | 15.0 |"
    assert table._repr_markdown_() == table.markdown
    four = plotting.metrics_table(results, label="method", a_z_digits=4)
    assert four.markdown.splitlines()[3].startswith("| hard | 50.0 | 0.2500 |")


def test_metrics_table_uses_each_methods_natural_rule():
    e = evaluation(100, 0.9, 100, 100, 100, 0, 0)
    e.table["average_input"] = {"FTPT": 60.0, "FFPT": 40.0}
    e.table["average_output"] = {"FTPT": 90.0, "FFPT": 10.0}
    rows = plotting.metrics_table({"soft": [e], "hybrid": [e]}).rows
    assert rows["soft"][5:] == [60.0, 40.0] and rows["hybrid"][5:] == [90.0, 10.0]


def test_metrics_table_rejects_bad_input_naming_the_argument():
    with pytest.raises(TypeError, match="results"):
        plotting.metrics_table([])
    with pytest.raises(ValueError, match="rules"):
        plotting.metrics_table({"mystery": [evaluation(1, 1, 1, 1, 1, 1, 1)]})
    with pytest.raises(ValueError, match="results"):
        plotting.metrics_table({"soft": []})
    with pytest.raises(ValueError, match="a_z_digits"):
        plotting.metrics_table({"soft": [evaluation(1, 1, 1, 1, 1, 1, 1)]}, a_z_digits=-1)


@pytest.mark.parametrize("name", ["04_three_ways_to_attend", "06_the_hybrid"])
def test_chapters_4_and_6_use_the_library_table(name):
    sources = [c.source for c in load(ROOT / "chapters" / f"{name}.ipynb").cells]
    assert not any("def metrics_table" in s for s in sources)
    assert any("plotting.metrics_table(" in s for s in sources)


# ------------------------------------------------------------------ figure size and text


def png_width(fig) -> int:
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")  # as the notebooks' inline backend
    plt.close(fig)
    return Image.open(buffer).size[0]


def test_course_style_text_is_large_enough_for_a_phone():
    with matplotlib.rc_context():
        plotting.use_course_style()
        assert matplotlib.rcParams["font.size"] == plotting.FONT_SIZE
        # the smallest named size in the style is "small"; nothing in plotting asks for less
        source = Path(plotting.__file__).read_text()
        assert not re.search(r"fontsize=\d", source), "a numeric font size in plotting.py"
        assert not re.search(r"fontsize=\"(x-small|xx-small)\"", source)


@pytest.mark.slow
def test_multi_panel_figures_fit_the_column():
    """Panels are stacked: the image stays near FIGURE_WIDTH inches (side by side it was up to
    1150 px and a phone shrank it to a third)."""
    t = np.linspace(0, 100, 50)
    limit = (plotting.FIGURE_WIDTH + 0.6) * 100
    with matplotlib.rc_context():
        plotting.use_course_style()
        paths = {m: (t / 10, t / 20) for m in ("soft", "hard", "lvml")}
        theory = {m: {a: (np.exp(-t / 30), t / 100) for a in (0.2, 0.6)} for m in paths}
        figures = {
            "attention_curves": plotting.attention_curves(t, {"fixed": t / 100}, m=10),
            "flow_trajectories": plotting.flow_trajectories(t, paths, 5, 3),
            "fixed_focus_curves": plotting.fixed_focus_curves(t + 1, theory, C=3),
            "orbit_plane": plotting.orbit_plane(paths, paths, 5, 3),
        }
        widths = {name: png_width(fig) for name, fig in figures.items()}
    assert all(w <= limit for w in widths.values()), widths


def test_finish_figure_wraps_long_titles_and_rejects_non_figures():
    with matplotlib.rc_context():
        plotting.use_course_style()
        fig, ax = plt.subplots(figsize=(plotting.FIGURE_WIDTH, 3))
        ax.set_title("a title far too long for one line of a phone-sized figure " * 2)
        plotting.finish_figure(fig)
        assert "\n" in ax.get_title()
        plt.close(fig)
    with pytest.raises(TypeError, match="fig"):
        plotting.finish_figure("not a figure")
