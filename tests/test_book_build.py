"""`make book` never hides a failed page (issue 9): a tiny book, built three times.

1. Its page fails to execute: the build fails, and scripts/check_build.py names the page.
2. Built again with nothing changed: the page is executed again (not reused from the first
   build) and the build fails again, instead of reporting success with a stale traceback.
3. With the cause fixed (the environment the kernel reads): the page is re-executed and the
   build, and the check, succeed.

The book uses the website's own extension (_ext/course_site.py) and scripts/check_build.py, as
`make build-book` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

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
"""


def build(book: Path, page_ok: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_")}
    env.pop("TINY_PAGE_OK", None)
    if page_ok:
        env["TINY_PAGE_OK"] = "1"
    return subprocess.run(
        [str(JUPYTER_BOOK), "build", str(book), "-W", "-n", "--keep-going"],
        cwd=book, env=env, capture_output=True, text=True, timeout=600,
    )


def check(book: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_build.py"), str(book / "_build")],
        capture_output=True, text=True,
    )


@pytest.mark.skipif(not JUPYTER_BOOK.exists(), reason="jupyter-book is not installed beside this Python")
def test_a_failed_page_is_reexecuted_and_never_reported_as_success(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    (book / "_config.yml").write_text(CONFIG)
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: page\n")
    (book / "intro.md").write_text("# Intro\n\nA tiny book.\n")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Page"),
        nbformat.v4.new_code_cell(
            "import os\n"
            "assert os.environ.get('TINY_PAGE_OK') == '1', 'the data is missing'\n"
            "print('page executed fine')"
        ),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "page.ipynb")
    html = book / "_build" / "html" / "page.html"

    first = build(book, page_ok=False)
    assert first.returncode != 0, first.stdout[-2000:]
    assert "Executing notebook failed" in first.stdout + first.stderr
    verdict = check(book)
    assert verdict.returncode == 1 and "FAILED page page" in verdict.stdout, verdict.stdout

    second = build(book, page_ok=False)  # nothing changed: the old build would say "succeeded"
    assert second.returncode != 0, second.stdout[-2000:]
    assert "whose last execution failed: page" in second.stdout
    assert "Executing notebook failed" in second.stdout + second.stderr
    assert check(book).returncode == 1

    third = build(book, page_ok=True)
    assert third.returncode == 0, (third.stdout + third.stderr)[-3000:]
    executed = nbformat.read(book / "_build" / "jupyter_execute" / "page.ipynb", as_version=4)
    assert [o.get("text") for o in executed.cells[1].outputs] == ["page executed fine\n"]
    assert "AssertionError" not in html.read_text()
    verdict = check(book)
    assert verdict.returncode == 0 and "none holds an error" in verdict.stdout, verdict.stdout
