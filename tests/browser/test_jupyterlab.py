r"""A chapter opened in JupyterLab with jupyterlab-myst (the README's Jupyter instructions) shows
its MyST markup rendered: theorems, exercises, solutions, {cite} and {prf:ref} are not raw text,
and its math is typeset (by KaTeX, which jupyterlab-myst uses).

Known limit, recorded not hidden: jupyterlab-myst takes math macros only from YAML front matter
in a notebook's first cell, which Colab and plain Jupyter would show as raw text; the macro cell
(\def/\newcommand, which MathJax keeps for the whole page) is local to its cell under KaTeX, so
formulas with the course's macros show KaTeX errors there. The test prints how many.

Starts `jupyter lab` from this environment on 127.0.0.1 with a fresh HOME and settings
(windowing off, so every cell is rendered), opens a copy of chapter 2 (synced by nbtool, as the
committed notebooks are) in headless Chromium, and reads the rendered cells.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import sitecheck

# Runs only when selected: `make browser` (`-m browser`; pyproject.toml).
pytestmark = pytest.mark.browser

ROOT = sitecheck.ROOT
JUPYTER = Path(sys.executable).parent / "jupyter"
CHAPTER = ROOT / "chapters" / "02_the_identity.ipynb"
TOKEN = "course-test"
RAW_MYST = (":::{prf:", ":::{exercise", "{prf:ref}", "{cite}", "{cite:t}", "{solution-start}", "{solution-end}", ":label:")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not JUPYTER.exists():
        pytest.fail("jupyter is not installed beside this Python (requirements.txt: jupyterlab, jupyterlab_myst)")
    listed = subprocess.run([str(JUPYTER), "labextension", "list"], capture_output=True, text=True)
    lines = [l for l in (listed.stdout + listed.stderr).splitlines() if "jupyterlab-myst" in l]
    assert lines and "enabled" in lines[0] and "OK" in lines[0], f"jupyterlab-myst is not enabled and OK:\n{listed.stdout}{listed.stderr}"
    base = tmp_path_factory.mktemp("lab")
    root, home, settings = base / "root", base / "home", base / "settings"
    root.mkdir(), home.mkdir()
    shutil.copy(CHAPTER, root / CHAPTER.name)
    sys.path.insert(0, str(ROOT / "scripts"))
    import nbtool

    nbtool.sync([root / CHAPTER.name])  # as the committed notebooks are (a no-op once synced)
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "COURSE_"))}
    env.update(HOME=str(home), JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTER_CONFIG_DIR=str(home / "config"))
    port = free_port()
    log = open(base / "lab.log", "w")
    proc = subprocess.Popen(
        [str(JUPYTER), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--allow-root", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"jupyter lab did not start:\n{(base / 'lab.log').read_text()[-3000:]}")
            time.sleep(1)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_chapter_renders_its_myst_in_jupyterlab(lab, browser, screenshot_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(f"{lab}/lab/tree/{CHAPTER.name}?token={TOKEN}", timeout=120_000)
        page.wait_for_selector(".jp-Notebook .jp-MarkdownCell", timeout=120_000)
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-Notebook .jp-MarkdownCell .katex').length > 20",
            timeout=120_000,
        )
        time.sleep(3)  # let the last cells finish rendering
        found = page.evaluate("""() => {
            const cells = [...document.querySelectorAll('.jp-Notebook .jp-MarkdownCell')];
            const inCells = sel => cells.reduce((n, c) => n + c.querySelectorAll(sel).length, 0);
            return {
              cells: cells.length,
              text: cells.map(c => c.innerText).join('\\n'),
              boxes: inCells('[class*="admonition"], [class*="proof"], [class*="exercise"], aside, details'),
              math: inCells('.katex, mjx-container'),
              errors: [...document.querySelectorAll('.jp-Notebook .jp-MarkdownCell .text-red-500, .jp-Notebook mjx-merror')].length,
            };
        }""")
        page.screenshot(path=str(screenshot_path("jupyterlab_02_the_identity")), full_page=False)
    finally:
        context.close()
    markdown_cells = sum(c["cell_type"] == "markdown" for c in json.loads((ROOT / "chapters" / CHAPTER.name).read_text())["cells"])
    assert found["cells"] >= markdown_cells, f"only {found['cells']} of {markdown_cells} markdown cells were rendered"
    raw = [marker for marker in RAW_MYST if marker in found["text"]]
    assert not raw, f"jupyterlab-myst left MyST markup as raw text: {raw}"
    assert found["boxes"] > 0, "no rendered theorem, exercise or solution box"
    assert found["math"] > 20, "jupyterlab-myst typeset no math"
    print(f"jupyterlab-myst: {found['cells']} markdown cells, {found['boxes']} boxes, {found['math']} formulas, "
          f"{found['errors']} formula errors (macros; see the module docstring)")
