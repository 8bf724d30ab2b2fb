"""Does what Colab does, for every chapter and exercise notebook.

A simulated Colab runtime (colab_sim.py: Python 3.13 and Colab's package versions); each
notebook copied alone into an empty folder and executed there by that runtime's kernel, with a
fresh HOME and no course variables (no COURSE_MODE: no CUDA here, so quick mode, as on a CPU
runtime; no COURSE_DATA_DIR); its own install cell run, as on Colab (``google.colab`` is in
``sys.modules``), but pointed at a local clone of this repository instead of its URL, offline.
Then ``pip freeze`` must show that the install added course_lib and changed nothing else.

Each executed notebook is rendered to HTML with nbconvert, as Jupyter shows it (no MyST), and
opened in headless Chromium with the website's own MathJax and no macro of _config.yml: the
notebooks write plain LaTeX (scripts/plainmath.py), so no formula may use an undefined macro (no
``merror``), and no TeX may stay raw in the text.
Results (executed notebooks, HTML, screenshots) land in _build/colab/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import colab_sim  # noqa: E402

# Runs only when selected: `make colab` (`-m colab`; pyproject.toml).
pytestmark = pytest.mark.colab

ROOT = colab_sim.ROOT
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb")) + sorted(
    (ROOT / "exercises").glob("*.ipynb")
)
if os.environ.get(
    "COURSE_COLAB_ONLY"
):  # e.g. "chapters/01_the_task.ipynb,exercises/01_the_task.ipynb"
    NOTEBOOKS = [ROOT / name.strip() for name in os.environ["COURSE_COLAB_ONLY"].split(",")]
OUT = ROOT / "_build" / "colab"
MATHJAX = ROOT / "_site_assets" / "_static" / "mathjax" / "tex-mml-chtml.js"


def nb_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@pytest.fixture(scope="session")
def runtime(tmp_path_factory):
    python = colab_sim.ensure_venv()
    wheelhouse = (
        colab_sim.VENV / "wheelhouse"
    )  # the install's build backend, for an offline install
    if not any(wheelhouse.glob("setuptools-*.whl")):
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "-d",
                str(wheelhouse),
                "setuptools>=77",
                "wheel",
            ],
            check=True,
        )
    if "course-lib" in colab_sim.freeze(python):  # left by an interrupted run
        subprocess.run(
            [str(python), "-m", "pip", "uninstall", "--quiet", "--yes", "course_lib"], check=True
        )
    before = colab_sim.freeze(python)
    assert (
        before["ipywidgets"] == "7.7.1"
        and before["numpy"] == "2.1.3"
        and before["torch"].startswith("2.11.0")
    )
    assert "course-lib" not in before, (
        "the simulated runtime must not hold course_lib before the install cell"
    )
    return python, before, wheelhouse


@pytest.fixture(scope="session")
def clone(tmp_path_factory) -> tuple[Path, str]:
    """A local clone of this repository at HEAD (what the install cell installs)."""
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "src", "pyproject.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    if dirty.strip():
        print(f"warning: uncommitted changes to course_lib are not in the clone:\n{dirty}")
    target = tmp_path_factory.mktemp("clone") / "how-attention-learns"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=target, capture_output=True, text=True, check=True
    ).stdout.strip()
    return target, commit


def colabify(nb, clone_dir: Path, commit: str):
    """The notebook as Colab runs it: ``google.colab`` imported, the install cell pointed at the
    local clone instead of the repository URL (pinned to its commit, so pip caches the wheel)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import nbtool

    url, branch = nbtool.repository()
    setup = [
        c for c in nb.cells if c.cell_type == "code" and c.source.startswith(nbtool.SETUP_MARKER)
    ]
    assert len(setup) == 1, "the notebook has no standard Colab setup cell (scripts/nbtool.py sync)"
    source = setup[0].source
    assert url in source and f"@{branch}" in source
    setup[0].source = source.replace(url, clone_dir.as_uri()).replace(f"@{branch}", f"@{commit}")
    marker = nbformat.v4.new_code_cell(
        'import sys, types\nsys.modules["google.colab"] = types.ModuleType("google.colab")'
    )
    nb.cells.insert(0, marker)
    return nb


def clean_env(home: Path, python: Path, wheelhouse: Path, pip_cache: Path) -> dict:
    env = {
        "HOME": str(home),
        "PATH": f"{python.parent}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        # one torch thread, as CI runs everything (benchmarks/: faster on this shared 2-core
        # machine)
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        # offline: the install may use only what the runtime holds and the build backend
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheelhouse),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_CACHE_DIR": str(pip_cache),  # shared by the notebooks: one wheel build, reused
    }
    return env


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=nb_id)
def test_notebook_runs_alone_on_colab(notebook, runtime, clone, tmp_path_factory):
    python, before, wheelhouse = runtime
    clone_dir, commit = clone
    base = tmp_path_factory.mktemp(notebook.stem)
    work, home = base / "content", base / "home"
    work.mkdir()
    home.mkdir()
    kernels = home / ".local" / "share" / "jupyter" / "kernels" / "colab-sim"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (simulated Colab)",
                "language": "python",
            }
        )
    )
    nb = colabify(nbformat.read(notebook, as_version=4), clone_dir, commit)
    copy = work / notebook.name
    nbformat.write(nb, copy)
    OUT.mkdir(parents=True, exist_ok=True)
    executed = OUT / f"{notebook.parent.name}-{notebook.name}"
    pip_cache = tmp_path_factory.getbasetemp() / "pip-cache"
    env = clean_env(home, python, wheelhouse, pip_cache)
    # The executor (nbclient) runs in the course's environment (sys.executable), the kernel in the
    # simulated runtime; nothing else is on the path (no PYTHONPATH).
    start = time.perf_counter()
    try:
        run = subprocess.run(
            [sys.executable, str(HERE / "run_notebook.py"), str(copy), str(executed)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        seconds = time.perf_counter() - start
        print(
            f"{nb_id(notebook)}: "
            f"{run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ''} "
            f"({seconds:.0f} s with the install)"
        )
        assert run.returncode == 0, (
            f"{nb_id(notebook)} failed on the simulated Colab:\n"
            f"{run.stdout[-5000:]}\n{run.stderr[-3000:]}"
        )
        after = colab_sim.freeze(python)
        changed = {
            name: (before.get(name), after.get(name))
            for name in set(before) | set(after)
            if before.get(name) != after.get(name)
        }
        added = changed.pop("course-lib", (None, None))
        assert added[0] is None and added[1], "the install cell did not install course_lib"
        assert not changed, f"the install changed Colab's packages (before, after): {changed}"
        where = subprocess.run(
            [
                str(python),
                "-c",
                "import course_lib, os; print(os.path.dirname(course_lib.__file__))",
            ],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert Path(where).is_relative_to(colab_sim.VENV), where
        assert not (home / ".cache" / "how-attention-learns").exists() or not any(
            (home / ".cache" / "how-attention-learns").rglob("stsa.*")
        ), "SST was downloaded: the bundled copy was not used"
    finally:
        subprocess.run(
            [str(python), "-m", "pip", "uninstall", "--quiet", "--yes", "course_lib"],
            env=clean_env(home, python, wheelhouse, pip_cache),
            capture_output=True,
        )
    assert colab_sim.freeze(python) == before, "uninstalling course_lib did not restore the runtime"


# ------------------------------------------------------------------------- math outside the website


MATHJAX_CONFIG = """<script>
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']],
        displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']],
        processEscapes: true, processEnvironments: true,
        packages: {'[-]': ['noundefined']}},  // an undefined macro is an error, not red text
  startup: {typeset: true}
};
</script>
<script src="%s"></script>
"""

RAW_TEX_SCAN = """() => {
  const skip = 'mjx-container, code, pre, script, style, .jp-OutputArea, .jp-InputArea-editor';
  const offenders = [];
  for (const cell of document.querySelectorAll('.jp-MarkdownCell')) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode())) {
      if (node.parentElement.closest(skip)) continue;
      const text = node.textContent;
      if (/\\$|\\\\[A-Za-z]+|\\\\\\(|\\\\\\[/.test(text)) offenders.push(text.trim().slice(0, 120));
    }
  }
  return {
    errors: [...document.querySelectorAll('mjx-merror')]
      .map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 120)),
    typeset: document.querySelectorAll('mjx-container').length,
    raw: offenders,
  };
}"""


def to_html(executed: Path) -> Path:
    """nbconvert's HTML (what Jupyter shows, without MyST), with the website's MathJax 3 instead
    of nbconvert's CDN MathJax and none of _config.yml's macros."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(
        nbformat.read(executed, as_version=4)
    )
    body = re.sub(r"<script[^>]*mathjax[^>]*>\s*</script>", "", body, flags=re.I)
    body = re.sub(r'<script type="text/x-mathjax-config">.*?</script>', "", body, flags=re.S | re.I)
    body = body.replace("</head>", MATHJAX_CONFIG % MATHJAX.as_uri() + "</head>", 1)
    target = executed.with_suffix(".html")
    target.write_text(body)
    return target


@pytest.fixture(scope="session")
def browser():
    if not MATHJAX.exists():
        pytest.fail(
            f"{MATHJAX} is missing: run `make` (npm ci copies the site's MathJax there)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--allow-file-access-from-files"],
        )
        yield chromium
        chromium.close()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=nb_id)
def test_math_renders_outside_the_website(notebook, browser):
    executed = OUT / f"{notebook.parent.name}-{notebook.name}"
    if not executed.exists():
        pytest.fail(f"{executed} is missing: its Colab run failed or did not run", pytrace=False)
    html = to_html(executed)
    page = browser.new_page()
    try:
        page.goto(html.as_uri())
        page.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30000
        )
        page.evaluate("() => MathJax.startup.promise")
        found = page.evaluate(RAW_TEX_SCAN)
        page.screenshot(path=str(html.with_suffix(".png")), full_page=False)
    finally:
        page.close()
    source = nbformat.read(notebook, as_version=4)
    has_math = any(
        c.cell_type == "markdown" and "$" in c.source and "newcommand" not in c.source
        for c in source.cells
    )
    assert found["typeset"] > 0 or not has_math, "MathJax typeset nothing"
    assert not found["errors"], (
        f"{nb_id(notebook)}: MathJax errors (undefined macros?): {found['errors'][:10]}"
    )
    assert not found["raw"], f"{nb_id(notebook)}: raw TeX left in the text: {found['raw'][:10]}"
