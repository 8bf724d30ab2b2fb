"""Notebook conventions (CONTRIBUTING.md), checked without running anything."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import nbtool  # noqa: E402
import plainmath  # noqa: E402

CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
ALL = CHAPTERS + EXERCISES


def load(path):
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_chapters_and_exercises():
    assert CHAPTERS and EXERCISES


def test_every_chapter_is_in_the_toc_and_every_toc_file_exists():
    toc = (ROOT / "_toc.yml").read_text()
    files = re.findall(r"file:\s*(\S+)", toc)
    for path in CHAPTERS:
        assert f"chapters/{path.stem}" in files, f"{path.name} is missing from _toc.yml"
    for entry in files:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".ipynb", ".md")), (
            f"_toc.yml lists {entry}, which does not exist"
        )


def test_each_chapter_has_an_exercise_notebook():
    assert {p.stem for p in CHAPTERS} <= {p.stem for p in EXERCISES}


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_committed_without_outputs_or_widget_state(path):
    nb = load(path)
    assert "widgets" not in nb.metadata, "strip widget state: python scripts/nbtool.py strip"
    for cell in code_cells(nb):
        assert not cell.outputs and cell.execution_count is None, (
            "strip outputs: python scripts/nbtool.py strip"
        )


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_colab_setup_cell_and_gpu_metadata(path):
    nb = load(path)
    first_code = code_cells(nb)[0]
    assert first_code.source == nbtool.setup_cell_source(), (
        "the first code cell must be the standard Colab setup cell (scripts/nbtool.py); "
        "its repository URL and branch must match _config.yml"
    )
    url, branch = nbtool.repository()
    assert f'url = "{url}"' in first_code.source and f'git+{{url}}@{branch}"' in first_code.source
    assert nb.metadata.get("accelerator") == "GPU"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    # the cell must not pin the libraries Colab ships
    assert not re.search(r"(torch|numpy|matplotlib)\s*[=<>]=", first_code.source)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_prints_mode_and_device_once(path):
    sources = [c.source for c in code_cells(load(path))]
    assert sum("config.describe()" in s for s in sources) == 1


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_asserts_its_claims_and_shows_figures(path):
    sources = "\n".join(c.source for c in code_cells(load(path)))
    assert sources.count("assert ") >= 5, "chapters assert the claims their prose makes"
    assert "plt.show()" in sources


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_plot_cells_end_with_show(path):
    for cell in code_cells(load(path)):
        lines = [
            line
            for line in cell.source.strip().split("\n")
            if line.strip() and not line.strip().startswith("#")
        ]
        if lines and re.match(r"^(fig\s*=\s*)?plotting\.", lines[-1].strip()):
            pytest.fail(f"a plotting cell must end with plt.show(): {lines[-1]!r}")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_widget_cells_are_removed_from_the_site_and_have_a_static_note(path):
    nb = load(path)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "widgets." in cell.source and "explorer" in cell.source:
            assert "remove-cell" in cell.metadata.get("tags", []), (
                "the interactive cell is removed from the website"
            )
            nearby = " ".join(c.source for c in nb.cells[max(0, i - 2) : i + 3])
            assert "Jupyter or Colab" in nearby, "say next to the explorer how to move its sliders"


def test_config_has_colab_button_and_repository():
    config = (ROOT / "_config.yml").read_text()
    assert "colab_url: https://colab.research.google.com" in config
    url, branch = nbtool.repository()
    assert url.startswith("https://github.com/") and branch


def test_notebook_ids_unique():
    for path in ALL:
        ids = [c.get("id") for c in load(path).cells]
        assert len(ids) == len(set(ids)), path.name


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_math_is_written_to_render_everywhere(path):
    """The website, JupyterLab with jupyterlab-myst (KaTeX), Colab and GitHub show the same math:
    no custom macro (KaTeX would not know it), display math as equation* with the book's \tag as
    its only number (scripts/plainmath.py; tests/browser/test_jupyterlab.py renders them)."""
    nb = load(path)
    fix = f"run: python scripts/plainmath.py {path.relative_to(ROOT)}"
    assert not any(nbtool.is_macro_cell(c) for c in nb.cells), (
        f"the old macro cell is still there; {fix}"
    )
    before = [c.source for c in nb.cells]
    plainmath.convert_notebook(nb, plainmath.chapter_of(path))
    changed = [i for i, c in enumerate(nb.cells) if c.source != before[i]]
    assert not changed, (
        f"cells {changed} use a macro of _config.yml, $$ display math or an {{eq}} label; {fix}"
    )


def test_references_to_other_notebooks_have_words():
    """jupyterlab-myst resolves a {prf:ref} only inside its own notebook; elsewhere it shows the
    link text, so a reference to another chapter's result carries words
    ({prf:ref}`words <label>`)."""
    defined, bare = {}, []
    for path in ALL:
        for cell in load(path).cells:
            if cell.cell_type == "markdown":
                for label in re.findall(r"^:label:\s*(\S+)", cell.source, re.M):
                    defined[label] = path
    for path in ALL:
        for cell in load(path).cells:
            if cell.cell_type == "markdown":
                for label in re.findall(r"\{prf:ref\}`([^`<>]+)`", cell.source):
                    if defined.get(label) != path:
                        bare.append(f"{path.relative_to(ROOT)}: {{prf:ref}}`{label}`")
    assert not bare, "references to another notebook without words:\n" + "\n".join(bare)


MACROS = {
    "emb": (r"\mathbf{w}_{#1}", 1),
    "norm": (r"\lVert #1 \rVert", 1),
    "query": (r"\mathbf{q}", 0),
    "R": (r"\mathbb{R}", 0),
    "twice": (r"2\norm{#1}", 1),
}


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"$\norm{\emb{\tau}}^2$", r"$\lVert \mathbf{w}_{\tau} \rVert^2$"),  # nested
        (
            r"$\dot\query$ and $x_\query$",
            r"$\dot{\mathbf{q}}$ and $x_{\mathbf{q}}$",
        ),  # an argument: one group
        (
            r"$\emb u \in \R^{d}$, $\Rightarrow$",
            r"$\mathbf{w}_{u} \in \mathbb{R}^{d}$, $\Rightarrow$",
        ),
        (r"$\twice{\query}$", r"$2\lVert \mathbf{q} \rVert$"),  # a definition using another macro
        ("no math, \\\\ no macro", "no math, \\\\ no macro"),
    ],
)
def test_plainmath_expands_macros(text, expected):
    assert plainmath.expand_macros(text, MACROS) == expected


def test_plainmath_writes_display_math_unnumbered_and_tags_labels():
    source = "\n".join(
        [
            "Its weight is",
            "",
            "$$",
            r"a = \query",
            r"\tag{3.1}",
            "$$",
            "",
            "1. item",
            "",
            "   $$x = y$$",
            "",
            "$$",
            "b = c",
            "$$ (eq-b)",
            "",
            "```python",
            "$$ code $$",
            "```",
            "```{solution-end}",
            "```",
            "",
            "$$",
            "d",
            "$$",
        ]
    )
    text, labels = plainmath.display_math_to_equation(source, "3")
    assert text == "\n".join(
        [
            "Its weight is",
            "",
            r"$$\begin{equation*}",
            r"a = \query",
            r"\tag{3.1}",
            r"\end{equation*}$$",
            "",
            "1. item",
            "",
            r"   $$\begin{equation*}",
            "   x = y",
            r"   \end{equation*}$$",
            "",
            r"$$\begin{equation*}",
            "b = c",
            r"\tag{3.2}",
            r"\end{equation*}$$",
            "",
            "```python",
            "$$ code $$",
            "```",
            "```{solution-end}",
            "```",
            "",
            r"$$\begin{equation*}",
            "d",
            r"\end{equation*}$$",
        ]
    )
    assert plainmath.display_math_to_equation(text, "3") == (text, {})  # written already
    assert labels == {"eq-b": "(3.2)"}
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(nbtool.MACRO_MARKER + "\n$\\def\\R{x}$"),
            nbformat.v4.new_markdown_cell(source),
            nbformat.v4.new_markdown_cell("see {eq}`eq-b`."),
            nbformat.v4.new_code_cell("x = '$$'"),
        ]
    )
    assert plainmath.convert_notebook(nb, "3", MACROS) == 3
    assert [c.source for c in nb.cells][1:] == ["see (3.2).", "x = '$$'"]
    assert r"a = \mathbf{q}" in nb.cells[0].source
    assert plainmath.convert_notebook(nb, "3", MACROS) == 0  # idempotent
    with pytest.raises(ValueError, match="without"):
        plainmath.display_math_to_equation("$$\\begin{equation*}\na = b", "3")
    with pytest.raises(ValueError, match="unclosed"):
        plainmath.display_math_to_equation("$$\na = b", "3")


def test_sync_is_idempotent_and_keeps_other_cells(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(nbtool.MACRO_MARKER + "\n$\\def\\query{\\mathbf{q}}$"),
            nbformat.v4.new_markdown_cell("# Title"),
            nbformat.v4.new_code_cell("# Colab setup: an old version"),
            nbformat.v4.new_markdown_cell("The query $\\query$."),
            nbformat.v4.new_code_cell("x = 1"),
        ]
    )
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    nbtool.sync([path])
    first = path.read_text()
    nbtool.sync([path])
    assert path.read_text() == first
    cells = nbformat.read(path, as_version=4).cells
    assert [c.source for c in cells] == [
        "# Title",
        nbtool.setup_cell_source(),
        "The query $\\mathbf{q}$.",
        "x = 1",
    ]


MAX_CODE_LINE = 88  # the website's text column shows about 85 characters of code


def test_notebook_code_lines_fit_the_page():
    offenders = []
    for path in ALL:
        for number, cell in enumerate(load(path).cells):
            if cell.cell_type != "code":
                continue
            for line in cell.source.split("\n"):
                if len(line) > MAX_CODE_LINE:
                    offenders.append(
                        f"{path.relative_to(ROOT)} cell {number}: {len(line)} chars: "
                        f"{line.strip()[:60]}"
                    )
    assert not offenders, (
        f"{len(offenders)} code lines over {MAX_CODE_LINE} characters:\n" + "\n".join(offenders)
    )


COLAB_CONSTRAINTS = ROOT / "tests" / "colab" / "colab-constraints.txt"


def test_dependency_lower_bounds_accept_colab_versions():
    """Installing course_lib on Colab must replace none of Colab's packages: every lower bound
    of pyproject.toml is met by the version Colab ships (tests/colab/colab-constraints.txt)."""
    import tomllib
    from packaging.requirements import Requirement
    from packaging.version import Version

    colab = {}
    for line in COLAB_CONSTRAINTS.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            colab[name.strip().lower().replace("_", "-")] = Version(version.split("+")[0])
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert dependencies
    for text in dependencies:
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-")
        assert name in colab, f"{name} is not preinstalled on Colab: the install cell would add it"
        assert requirement.specifier.contains(colab[name], prereleases=True), (
            f"pyproject.toml asks for {requirement}, Colab ships {name} {colab[name]}: the "
            "install would replace it"
        )
    assert colab["ipywidgets"] == Version("7.7.1")


def test_licence_and_citation():
    import yaml

    licence = (ROOT / "LICENSE").read_text()
    assert (
        "MIT License" in licence
        and "CC BY 4.0" in licence
        and "creativecommons.org/licenses/by/4.0" in licence
    )
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert (
        citation["cff-version"] == "1.2.0"
        and citation["title"]
        and citation["authors"]
        and citation["message"]
    )
    assert set(citation["license"]) == {"MIT", "CC-BY-4.0"}
    url, _ = nbtool.repository()
    assert citation["repository-code"] == url
    import tomllib

    assert (
        citation["version"]
        == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    )
    for page in ("README.md", "intro.md"):
        text = (ROOT / page).read_text()
        assert "CC BY 4.0" in text and "MIT" in text and "CITATION.cff" in text, page


def test_make_lab_copies_exercises_once_into_an_ignored_folder(tmp_path):
    """`make lab` gives the student copies in my_exercises/ (git-ignored), never overwrites one,
    and then starts JupyterLab (a stub here)."""
    import shutil
    import subprocess

    assert "my_exercises/" in (ROOT / ".gitignore").read_text().split()
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copytree(ROOT / "exercises", tmp_path / "exercises")
    for name in ("requirements.txt", "pyproject.toml"):
        (tmp_path / name).write_text("")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "jupyter").write_text('#!/bin/sh\necho "stub jupyter $@"\n')
    (bin_dir / "jupyter").chmod(0o755)
    (tmp_path / ".venv" / ".installed").write_text("")  # newer than the requirements: no install

    def make_lab():
        return subprocess.run(
            ["make", "-s", "lab"], cwd=tmp_path, capture_output=True, text=True, check=True
        )

    first = make_lab()
    copies = sorted(p.name for p in (tmp_path / "my_exercises").glob("*.ipynb"))
    assert copies == sorted(p.name for p in EXERCISES) and "stub jupyter lab" in first.stdout
    mine = tmp_path / "my_exercises" / EXERCISES[0].name
    mine.write_text("the student's work")
    second = make_lab()
    assert mine.read_text() == "the student's work" and "copied" not in second.stdout


MAX_CELL_LINES = 30  # a code cell a reader takes in at once; longer recipes go to chapters.chNN


def code_lines(source: str) -> int:
    """Lines that hold code: neither blank nor only a comment."""
    return sum(
        1 for line in source.split("\n") if line.strip() and not line.strip().startswith("#")
    )


def test_code_lines_counts_code_only():
    assert code_lines("x = 1\n\n# why\n    # indented comment\ny = f(x)  # trailing\n") == 2


def test_no_code_cell_is_longer_than_a_reader_takes_in_at_once():
    long_cells = [
        f"{path.relative_to(ROOT)} cell {cell.get('id')}: {code_lines(cell.source)} lines"
        for path in ALL
        for cell in code_cells(load(path))
        if code_lines(cell.source) > MAX_CELL_LINES
    ]
    assert not long_cells, (
        f"code cells over {MAX_CELL_LINES} code lines (move recipes to "
        "course_lib.chapters.chNN, see ARCHITECTURE.md):\n" + "\n".join(long_cells)
    )


def without_comments(source: str) -> str:
    return "\n".join(line.split("#")[0] for line in source.split("\n"))


def test_no_notebook_trains_with_its_own_optimizer():
    """Training goes through course_lib's engine; a single .backward() for one gradient is fine,
    an optimizer or a step loop is not (chapter 1's gradient_step loop is the teaching loop)."""
    loops = [
        f"{path.relative_to(ROOT)} cell {cell.get('id')}"
        for path in ALL
        for cell in code_cells(load(path))
        if re.search(r"\.step\(\)|torch\.optim\.", without_comments(cell.source))
    ]
    assert not loops, "notebook cells with an optimizer (use course_lib.engine):\n" + "\n".join(
        loops
    )


def test_no_function_is_defined_in_two_notebooks():
    homes: dict[str, list[str]] = {}
    for path in ALL:
        for cell in code_cells(load(path)):
            if "exercise-stub" in cell.metadata.get("tags", []):
                continue  # a stub is the student's to write, named after the reference
            for name in re.findall(r"^(?:def|class) (\w+)", cell.source, re.M):
                if name == "Settings":
                    continue  # each chapter's own sizes (CONTRIBUTING.md: one per chapter)
                homes.setdefault(name, []).append(str(path.relative_to(ROOT)))
    twice = {name: paths for name, paths in homes.items() if len(set(paths)) > 1}
    assert not twice, f"defined in more than one notebook (one home in course_lib): {twice}"
