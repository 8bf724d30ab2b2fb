"""`make book` never hides a failed page and stops at the first one: a tiny book, built three times.

1. Its first page fails to execute: the build stops there (the second page is never executed),
   fails, and scripts/check_build.py names the page in one line from the build's log.
2. Built again with nothing changed: the page is executed again (not reused from the first
   build) and the build fails again, instead of reporting success with a stale traceback.
3. With the cause fixed (the environment the kernel reads): the page is re-executed and the
   build, and the check, succeed.
4. An execution report left in the website (html/reports) fails the check.

The book uses the website's own extension (_ext/course_site.py), its execution settings
(nb_execution_raise_on_error) and scripts/check_build.py, as `make build-book` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"

CONFIG = f"""\
title: tiny
only_build_toc_files: true
execute:
  execute_notebooks: cache
  cache: _build/.jupyter_cache
  timeout: 120
  allow_errors: false
sphinx:
  local_extensions:
    course_site: {ROOT / "_ext"}
  config:
    nb_execution_raise_on_error: true
"""


def build(book: Path, page_ok: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_")}
    env.pop("TINY_PAGE_OK", None)
    if page_ok:
        env["TINY_PAGE_OK"] = "1"
    result = subprocess.run(
        [str(JUPYTER_BOOK), "build", str(book), "-W", "-n", "--keep-going"],
        cwd=book,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (book / "_build" / "build_log.txt").write_text(result.stdout + result.stderr)
    return result


def check(book: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "check_build.py"),
            str(book / "_build"),
            "--log",
            str(book / "_build" / "build_log.txt"),
        ],
        capture_output=True,
        text=True,
    )


def notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Page")])
    nb.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def test_the_website_stops_at_a_failed_page():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert config["execute"]["allow_errors"] is False


@pytest.mark.slow
@pytest.mark.skipif(
    not JUPYTER_BOOK.exists(), reason="jupyter-book is not installed beside this Python"
)
def test_a_failed_page_stops_the_build_is_reexecuted_and_never_reported_as_success(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    (book / "_config.yml").write_text(CONFIG)
    (book / "intro.md").write_text("# Intro\n\nA tiny book.\n")
    nbformat.write(
        notebook(
            "import os\n"
            "assert os.environ.get('TINY_PAGE_OK') == '1', 'the data is missing'\n"
            "print('page executed fine')"
        ),
        book / "page.ipynb",
    )
    # Sphinx reads pages in name order: zz_later runs after page only if the build goes on.
    nbformat.write(notebook("open('later_ran', 'w').close()"), book / "zz_later.ipynb")
    (book / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: page\n  - file: zz_later\n"
    )
    html = book / "_build" / "html" / "page.html"

    first = build(book, page_ok=False)
    assert first.returncode != 0, first.stdout[-2000:]
    assert "Executing notebook failed" in first.stdout + first.stderr
    assert not (book / "later_ran").exists(), "the build went on after the failed page"
    verdict = check(book)
    assert verdict.returncode == 1, verdict.stdout
    failed = [line for line in verdict.stdout.splitlines() if "FAILED page" in line]
    assert failed == [failed[0]]
    assert "FAILED page page: its execution failed (CellExecutionError)" in failed[0]

    second = build(book, page_ok=False)  # nothing changed: the page must run again and fail again
    assert second.returncode != 0, second.stdout[-2000:]
    assert "Executing notebook failed" in second.stdout + second.stderr
    assert check(book).returncode == 1

    third = build(book, page_ok=True)
    assert third.returncode == 0, (third.stdout + third.stderr)[-3000:]
    assert (book / "later_ran").exists()
    executed = nbformat.read(book / "_build" / "jupyter_execute" / "page.ipynb", as_version=4)
    assert [o.get("text") for o in executed.cells[1].outputs] == ["page executed fine\n"]
    assert "AssertionError" not in html.read_text()
    verdict = check(book)
    assert verdict.returncode == 0 and "none holds an error" in verdict.stdout, verdict.stdout

    stale = book / "_build" / "html" / "reports" / "page.err.log"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("an old traceback")
    verdict = check(book)
    assert verdict.returncode == 1
    assert "FAILED page page: the website holds its execution report" in verdict.stdout
