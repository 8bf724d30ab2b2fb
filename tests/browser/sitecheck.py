"""Checks of the built website as a reader's browser sees it.

Each ``check_*`` function takes a loaded page (a :class:`Visit`, or a Playwright page for the
ones that interact with it) and the :class:`PageSpec` saying what the page's source promises,
and returns a list of problems (empty when the page is fine).  ``test_site.py`` runs them on
every page of ``_toc.yml``; ``test_checks_catch_breakage.py`` shows each one fails on a
deliberately broken copy of a real page.
"""

from __future__ import annotations

import fnmatch
import functools
import html.parser
import io
import json
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import nbtool  # noqa: E402  (reads the repository URL and branch from _config.yml)

# Debian's Chromium, never a browser downloaded by Playwright.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
OVERFLOW_TOLERANCE_PX = 2
CODE_LINE_LIMIT = 88  # CONTRIBUTING.md, tests/test_conventions.py, `make lint`
WIDGET_NOTE = "Open this notebook in Jupyter or Colab to move the sliders"
MATH_TIMEOUT_MS = 15_000

# Text that must not survive rendering: TeX that MathJax did not typeset, MyST that was not parsed.
RAW_TEX = re.compile(
    r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\[A-Za-z]{2,}|\$[^$\n]*[\\^_{}][^$\n]*\$"
)
RAW_MYST = re.compile(r":::\s*\{|\{(prf:\w+|exercise|solution|cite(:\w+)?|ref|numref|eq)\}")
ERROR_TEXT = re.compile(
    r"Traceback \(most recent call last\)|\b[A-Z]\w*(Error|Exception)\b|\bError\b"
)
SOURCE_MATH = re.compile(r"\$[^$]+\$|\\begin\{")
DOUBLE_NUMBER = re.compile(r"^\d+(\.\d+)*\.\s+\d+(\.\d+)*\.\s")
DIRECTIVE = re.compile(r"^\s*(?::{3,}|`{3,})\s*\{([\w:-]+)\}", re.M)


# --------------------------------------------------------------------------------------------
# What the sources promise
# --------------------------------------------------------------------------------------------


@dataclass
class PageSpec:
    """One page of the book: its document name and what its source says it contains."""

    docname: str  # e.g. "chapters/02_the_identity"
    source: Path  # the .ipynb or .md it is built from
    url_path: str = ""  # path of the HTML page under the site root (default docname.html)

    def __post_init__(self):
        self.url_path = self.url_path or f"{self.docname}.html"

    @property
    def is_notebook(self) -> bool:
        return self.source.suffix == ".ipynb"

    @functools.cached_property
    def notebook(self) -> dict | None:
        return json.loads(self.source.read_text()) if self.is_notebook else None

    @functools.cached_property
    def markdown(self) -> str:
        """All the markdown of the source (the markdown cells of a notebook)."""
        if not self.is_notebook:
            return self.source.read_text()
        return "\n".join(_src(c) for c in self.notebook["cells"] if c["cell_type"] == "markdown")

    @property
    def has_math(self) -> bool:
        return bool(SOURCE_MATH.search(self.markdown))

    def directives(self, name: str) -> int:
        """How many ``{name}`` directives the source's markdown opens; the gated form of
        sphinx-exercise (``{name-start}`` ... ``{name-end}``, which lets executed code cells sit
        inside a solution) counts as one."""
        return sum(
            1 for m in DIRECTIVE.finditer(self.markdown) if m.group(1) in (name, f"{name}-start")
        )

    @property
    def explorer_cells(self) -> int:
        """Interactive widget cells (removed from the website, CONTRIBUTING.md)."""
        if not self.is_notebook:
            return 0
        return sum(
            1
            for c in self.notebook["cells"]
            if c["cell_type"] == "code" and "widgets." in _src(c) and "explorer" in _src(c)
        )

    @property
    def shown_code_cells(self) -> list[dict]:
        """The code cells the website shows (myst-nb renders each as a div.cell, in order)."""
        if not self.is_notebook:
            return []
        return [
            c
            for c in self.notebook["cells"]
            if c["cell_type"] == "code"
            and "remove-cell" not in c.get("metadata", {}).get("tags", [])
        ]

    @property
    def executed(self) -> bool:
        """Whether the book build executes this notebook (the exercise notebooks have pages but are
        not executed: _config.yml's ``execute.exclude_patterns``)."""
        return self.is_notebook and not any(
            fnmatch.fnmatch(self.source.relative_to(ROOT).as_posix(), pattern)
            for pattern in execute_exclusions()
        )

    @property
    def figure_cells(self) -> dict[int, str]:
        """{position among the shown code cells: source} of the cells that draw a figure.

        CONTRIBUTING.md: a figure cell ends with ``plt.show()``; its output must show an image
        (on an executed page).
        """
        if not self.executed:
            return {}
        return {
            i: _src(c)
            for i, c in enumerate(self.shown_code_cells)
            if "plt.show()" in _src(c)
            and "remove-output" not in c.get("metadata", {}).get("tags", [])
        }


def _src(cell) -> str:
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s


@functools.lru_cache(maxsize=None)
def execute_exclusions(root: Path = ROOT) -> tuple[str, ...]:
    """_config.yml's ``execute.exclude_patterns``: notebooks the build shows without running."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    return tuple((config.get("execute") or {}).get("exclude_patterns") or ())


def toc_docnames(root: Path = ROOT) -> list[str]:
    """Every document of _toc.yml, in reading order (root first)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key))

    walk([toc])
    return [n.removesuffix(".md").removesuffix(".ipynb") for n in names]


def page_specs(root: Path = ROOT) -> list[PageSpec]:
    specs = []
    for name in toc_docnames(root):
        source = next(
            (
                root / f"{name}{ext}"
                for ext in (".ipynb", ".md")
                if (root / f"{name}{ext}").exists()
            ),
            None,
        )
        if source is None:
            raise FileNotFoundError(f"_toc.yml lists {name}, which has no .ipynb or .md")
        specs.append(PageSpec(name, source))
    return specs


def colab_url(docname: str) -> str:
    """The Colab link a notebook page must carry: repository and branch of _config.yml (book at
    its root)."""
    url, branch = nbtool.repository()
    owner_repo = urllib.parse.urlparse(url).path.strip("/").removesuffix(".git")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/{docname}.ipynb"


# --------------------------------------------------------------------------------------------
# Serving the site and loading pages
# --------------------------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class SiteServer:
    """``http.server`` on a free 127.0.0.1 port, serving a built site from a thread."""

    def __init__(self, directory: Path):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def is_local(url: str) -> bool:
    parsed = urllib.parse.urlparse(url)
    return parsed.scheme in ("data", "blob", "about") or parsed.hostname in (
        "127.0.0.1",
        "localhost",
    )


@dataclass
class Visit:
    """A page loaded with every request outside localhost blocked, and what happened meanwhile."""

    page: object  # playwright Page
    url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_local: list[str] = field(default_factory=list)
    math_problem: str | None = None


def open_page(context, url: str, math_timeout_ms: int | None = None) -> Visit:
    """Load ``url`` in a new page of ``context`` offline (only localhost answers) and let MathJax
    finish."""
    page = context.new_page()
    visit = Visit(page, url)

    def route(r):
        if is_local(r.request.url):
            r.continue_()
        else:
            visit.external_requests.append(r.request.url)
            r.abort("internetdisconnected")

    def on_console(msg):
        if msg.type == "error":
            where = (msg.location or {}).get("url", "")
            if where and not is_local(where):
                return  # a blocked external request: reported by check_offline
            visit.console_errors.append(f"{msg.text} ({where})")

    def on_response(resp):
        if is_local(resp.url) and resp.status >= 400:
            visit.failed_local.append(f"{resp.status} {resp.url}")

    def on_failed(req):
        if is_local(req.url) and not req.url.startswith("data:"):
            visit.failed_local.append(f"{req.failure} {req.url}")

    page.route("**/*", route)
    page.on("console", on_console)
    page.on("pageerror", lambda err: visit.page_errors.append(str(err)))
    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    page.goto(url, wait_until="load")
    visit.math_problem = wait_for_math(page, math_timeout_ms or MATH_TIMEOUT_MS)
    return visit


def wait_for_math(page, timeout_ms: int = MATH_TIMEOUT_MS) -> str | None:
    """Wait until MathJax has typeset the page; say why not if it cannot (None: fine or no math)."""
    if not page.locator(".math").count():
        return None
    try:
        page.wait_for_function(
            "() => window.MathJax && window.MathJax.startup && window.MathJax.startup.promise",
            timeout=timeout_ms,
        )
        page.evaluate("() => window.MathJax.startup.promise")
    except Exception as exc:  # noqa: BLE001 - reported as a problem, not raised
        return (
            f"MathJax did not load or start within {timeout_ms / 1000:.0f} s ({type(exc).__name__})"
        )
    return None


# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------

# The article's text without code, outputs and typeset math; folded solutions included.
_PROSE_JS = """
() => {
  const article = document.querySelector('article.bd-article') || document.body;
  const copy = article.cloneNode(true);
  copy.querySelectorAll(
      'pre, code, .highlight, script, style, mjx-container, .cell_input, .cell_output')
      .forEach(e => e.remove());
  return copy.textContent;
}
"""


def check_console(visit: Visit, spec: PageSpec) -> list[str]:
    """No JavaScript error and no failed request for the site's own assets."""
    return (
        [f"console error: {e}" for e in visit.console_errors]
        + [f"uncaught exception: {e}" for e in visit.page_errors]
        + [f"failed request: {e}" for e in visit.failed_local]
    )


def check_offline(visit: Visit, spec: PageSpec) -> list[str]:
    """The page asks nothing of the internet: every script, style, font and image is on the site."""
    problems = [f"requested from the internet: {u}" for u in visit.external_requests]
    tags = visit.page.evaluate(
        """() => [...document.querySelectorAll('script[src], link[rel=stylesheet][href], img[src]')]
                 .map(e => e.src || e.href)"""
    )
    problems += [f"loads an external asset: {u}" for u in tags if not is_local(u)]
    return sorted(set(problems))


def check_figures(visit: Visit, spec: PageSpec) -> list[str]:
    """Every image of the page is decoded, and every figure cell of the notebook shows its
    figure."""
    page = visit.page
    images = page.evaluate(
        """() => [...document.querySelectorAll('article.bd-article img')].map(img => ({
               src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth}))"""
    )
    problems = [
        f"image not decoded (naturalWidth 0): {i['src']}"
        for i in images
        if not (i["complete"] and i["width"] > 0)
    ]
    if not spec.is_notebook:
        return problems
    cells = page.evaluate(
        """() => [...document.querySelectorAll('article.bd-article div.cell')].map(cell =>
               [...cell.querySelectorAll('.cell_output img')]
                   .filter(i => i.complete && i.naturalWidth > 0).length)"""
    )
    if len(cells) != len(spec.shown_code_cells):
        problems.append(
            f"{len(cells)} code cells on the page, the notebook shows {len(spec.shown_code_cells)}"
        )
        return problems
    for i, source in spec.figure_cells.items():
        if not cells[i]:
            first = next((line for line in source.splitlines() if line.strip()), "")
            problems.append(
                f"code cell {i + 1} ({first.strip()[:60]!r}) calls plt.show() but shows no figure"
            )
    return problems


def check_math(visit: Visit, spec: PageSpec) -> list[str]:
    """Math is typeset by MathJax: containers where the source has math, no raw TeX, no errors."""
    page = visit.page
    problems = [visit.math_problem] if visit.math_problem else []
    stats = page.evaluate(
        """() => ({
            containers: document.querySelectorAll('article.bd-article mjx-container').length,
            untypeset: [...document.querySelectorAll('article.bd-article .math')]
                .filter(e => !e.querySelector('mjx-container'))
                .map(e => e.textContent.trim().slice(0, 80)),
            errors: [...document.querySelectorAll('mjx-merror')]
                .map(e => e.textContent.slice(0, 80)),
            // MathJax's noundefined extension draws an unknown macro as its name in red
            undefined: [...document.querySelectorAll(
                    'mjx-container mjx-assistive-mml mtext[mathcolor="red"]')]
                .map(e => e.textContent).filter(t => t.startsWith('\\\\')),
        })"""
    )
    if spec.has_math and not stats["containers"]:
        problems.append("the source has math but the page has no MathJax output (mjx-container)")
    problems += [f"math not typeset: {t!r}" for t in stats["untypeset"][:5]]
    problems += [f"MathJax error: {t!r}" for t in stats["errors"][:5]]
    problems += [f"undefined TeX macro: {t!r}" for t in stats["undefined"][:5]]
    prose = page.evaluate(_PROSE_JS)
    for m in list(RAW_TEX.finditer(prose))[:5]:
        problems.append(f"raw TeX in the text: {_around(prose, m)!r}")
    return problems


def check_no_raw_markup(visit: Visit, spec: PageSpec) -> list[str]:
    """No MyST directive or role left as text (an extension missing or a typo in a fence)."""
    prose = visit.page.evaluate(_PROSE_JS)
    return [f"unrendered MyST: {_around(prose, m)!r}" for m in list(RAW_MYST.finditer(prose))[:5]]


def check_outputs(visit: Visit, spec: PageSpec) -> list[str]:
    """No output cell shows a traceback or an error."""
    outputs = visit.page.evaluate(
        """() => [...document.querySelectorAll('.cell_output, .output')].map(e => ({
               cls: e.className, text: e.textContent}))"""
    )
    problems = []
    for out in outputs:
        if re.search(r"\b(traceback|error)\b", out["cls"]):
            problems.append(f"error output ({out['cls']}): {out['text'].strip()[:200]!r}")
        elif m := ERROR_TEXT.search(out["text"]):
            problems.append(f"output shows an error: {_around(out['text'], m, 100)!r}")
    return sorted(set(problems))


def check_proofs_and_exercises(visit: Visit, spec: PageSpec) -> list[str]:
    """Each sphinx-proof / sphinx-exercise directive of the source is a styled, titled block."""
    page = visit.page
    blocks = page.evaluate(
        """() => [...document.querySelectorAll('article.bd-article div.admonition')].map(e => {
               const s = getComputedStyle(e),
                     t = e.querySelector(':scope > .admonition-title')
                         || e.querySelector(':scope > p');
               return {cls: [...e.classList], title: t ? t.innerText.trim() : '',
                       titleVisible: !!(t && t.offsetHeight),
                       styled: parseFloat(s.borderLeftWidth) > 0 || parseFloat(s.borderTopWidth) > 0
                               || s.boxShadow !== 'none'};
           })"""
    )
    problems = []
    wanted = {
        n.split(":", 1)[1]: spec.directives(n)
        for n in set(DIRECTIVE.findall(spec.markdown))
        if n.startswith("prf:")
    }
    wanted.update({n: spec.directives(n) for n in ("exercise", "solution")})
    for kind, n_source in sorted(wanted.items()):
        if kind == "proof":
            found = [b for b in blocks if set(b["cls"]) == {"proof", "admonition"}]
        elif kind in ("exercise", "solution"):
            found = [b for b in blocks if kind in b["cls"]]
        else:
            found = [b for b in blocks if "proof" in b["cls"] and kind in b["cls"]]
        if len(found) != n_source:
            problems.append(
                f"{n_source} {kind} directive(s) in the source, {len(found)} {kind} block(s) on "
                "the page"
            )
        label = (
            kind.capitalize()
        )  # "Theorem 2.1 (...)", "Exercise 1.1", "Solution"; a proof starts "Proof."
        for b in found:
            if not b["titleVisible"] or not b["title"].startswith(label):
                problems.append(
                    f"{kind} block without its visible title {label!r}: {b['title'][:60]!r}"
                )
            if not b["styled"]:
                problems.append(
                    f"{kind} block {b['title'][:40]!r} is not styled as a block (no border)"
                )
    return problems


def check_solutions_fold(page, spec: PageSpec) -> list[str]:
    """Every solution is folded when the page opens, and opens when its title is clicked."""
    problems = []
    solutions = page.locator("article.bd-article div.solution")
    for i in range(solutions.count()):
        sol = solutions.nth(i)
        body = sol.locator(":scope > :not(.admonition-title)").first
        name = sol.get_attribute("id") or f"solution {i + 1}"
        if not body.count():
            problems.append(f"{name}: empty solution")
            continue
        if body.is_visible():
            problems.append(f"{name}: solution is open before it is clicked")
            continue
        sol.locator(":scope > .admonition-title").click()
        try:
            body.wait_for(state="visible", timeout=3000)
        except Exception:  # noqa: BLE001
            problems.append(f"{name}: solution does not open when its title is clicked")
    return problems


def check_colab(visit: Visit, spec: PageSpec) -> list[str]:
    """A notebook page's Colab button opens this notebook from the configured repository and branch.

    Colab links in the text (a chapter pointing at its exercise notebook) must open a notebook
    that exists in this repository, from the same repository and branch.
    """
    buttons, others = visit.page.evaluate(
        """() => {
            const all = [...document.querySelectorAll('a[href*="colab.research.google.com"]')];
            const inButtons = a => a.closest('.dropdown-launch-buttons') !== null;
            return [all.filter(inButtons).map(a => a.href),
                    all.filter(a => !inButtons(a)).map(a => a.href)];
        }"""
    )
    if not spec.is_notebook:
        return []
    expected = colab_url(spec.docname)
    if not buttons:
        return [f"no Colab button (expected {expected})"]
    problems = [
        f"Colab button points at {u}, expected {expected}"
        for u in sorted(set(buttons))
        if u != expected
    ]
    prefix = expected[: -len(f"{spec.docname}.ipynb")]
    for url in sorted(set(others)):
        path = url[len(prefix) :] if url.startswith(prefix) else None
        if path is None or not path.endswith(".ipynb") or not (ROOT / path).is_file():
            problems.append(
                f"Colab link in the text points at {url}, not at a notebook of {prefix}"
            )
    return problems


class _Anchors(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" or (key == "name" and tag == "a"):
                self.ids.add(value or "")


@functools.lru_cache(maxsize=None)
def fetch(url: str) -> tuple[int, frozenset[str]]:
    """(HTTP status, ids in the document) of a same-site URL."""
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            status, body, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, frozenset()
    except OSError:
        return 0, frozenset()
    ids: set[str] = set()
    if "html" in ctype:
        parser = _Anchors()
        parser.feed(body.decode("utf-8", "replace"))
        ids = parser.ids
    return status, frozenset(ids)


def check_internal_links(visit: Visit, spec: PageSpec) -> list[str]:
    """Every same-site link answers 200 from the server and its #anchor exists in the target."""
    hrefs = visit.page.evaluate(
        "() => [...document.querySelectorAll('a[href]')].map(a => [a.getAttribute('href'), a.href])"
    )
    problems = []
    for raw, absolute in hrefs:
        if raw.startswith(("javascript:", "mailto:")) or raw in ("#", "") or not is_local(absolute):
            continue
        target, _, fragment = absolute.partition("#")
        status, ids = fetch(target)
        if status != 200:
            problems.append(f"link {raw!r} -> HTTP {status}")
        elif fragment and urllib.parse.unquote(fragment) not in ids:
            problems.append(
                f"link {raw!r}: no element with id {urllib.parse.unquote(fragment)!r} in {target}"
            )
    return sorted(set(problems))


def check_widgets(visit: Visit, spec: PageSpec) -> list[str]:
    """Each interactive explorer is replaced on the website by the note and a static figure."""
    page = visit.page
    problems = []
    live = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
    if live:
        problems.append(
            f"{live} live widget view(s) on the page: they cannot work on a static site (tag the "
            "cell remove-cell)"
        )
    notes = page.evaluate(
        """(note) => {
            const out = [];
            const walker = document.createTreeWalker(
                document.querySelector('article.bd-article') || document.body,
                NodeFilter.SHOW_ELEMENT);
            const all = []; while (walker.nextNode()) all.push(walker.currentNode);
            const isFigure = e => e.tagName === 'IMG' && e.closest('.cell_output')
                                  && e.naturalWidth > 0;
            const isHeading = e => /^H[1-6]$/.test(e.tagName);
            all.forEach((el, i) => {
              if (el.tagName !== 'P' || !el.textContent.includes(note)) return;
              let figure = false;  // a static figure in the same section, after or before the note
              for (const next of all.slice(i + 1)) {
                if (isHeading(next)) break;
                if (isFigure(next)) { figure = true; break; }
              }
              for (const prev of all.slice(0, i).reverse()) {
                if (figure || isHeading(prev)) break;
                if (isFigure(prev)) figure = true;
              }
              out.push({visible: !!el.offsetHeight, figure});
            });
            return out;
        }""",
        WIDGET_NOTE,
    )
    if len(notes) < spec.explorer_cells:
        problems.append(
            f"{spec.explorer_cells} interactive explorer(s) in the notebook, "
            f"{len(notes)} note(s) {WIDGET_NOTE!r} on the page"
        )
    for n, note in enumerate(notes, 1):
        if not note["visible"]:
            problems.append(f"widget note {n} is hidden")
        if not note["figure"]:
            problems.append(f"widget note {n} has no static figure next to it (in its section)")
    return problems


_LIGHT = 0.6  # relative luminance a figure's background keeps in dark mode


def check_dark_mode_figures(page, spec: PageSpec) -> list[str]:
    """In dark mode each figure keeps a light background (its edges stay light)."""
    from PIL import Image

    theme = page.evaluate("() => document.documentElement.dataset.theme")
    if theme != "dark":
        return [f"the page did not switch to the dark theme (data-theme={theme!r})"]
    problems = []
    images = page.locator("article.bd-article .cell_output img, article.bd-article figure img")
    for i in range(images.count()):
        img = images.nth(i)
        img.scroll_into_view_if_needed()
        shot = Image.open(io.BytesIO(img.screenshot(animations="disabled"))).convert("RGB")
        w, h = shot.size
        if w < 8 or h < 8:
            continue
        edge = [shot.getpixel((x, y)) for x in range(0, w, max(1, w // 40)) for y in (1, h - 2)]
        edge += [shot.getpixel((x, y)) for y in range(0, h, max(1, h // 40)) for x in (1, w - 2)]
        lum = sum(0.2126 * r + 0.7152 * g + 0.0722 * b for r, g, b in edge) / (255 * len(edge))
        if lum < _LIGHT:
            problems.append(
                f"figure {i + 1} ({img.get_attribute('src')}) has a dark background in dark mode "
                f"(edge luminance {lum:.2f} < {_LIGHT})"
            )
    return problems


def check_narrow_screen(page, spec: PageSpec) -> list[str]:
    """At phone width the page does not scroll sideways (wide content scrolls in its own box)."""
    info = page.evaluate(
        """(tol) => {
            const width = window.innerWidth, doc = document.documentElement.scrollWidth;
            const culprits = [];
            const contained = el => {  // inside a box that fits the screen and scrolls or clips
              for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
                const o = getComputedStyle(p).overflowX;
                if (o !== 'visible' && p.getBoundingClientRect().right <= width + tol) return true;
              }
              return false;
            };
            const name = el => el.tagName.toLowerCase()
                + (typeof el.className === 'string' && el.className.trim()
                   ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
            if (doc > width + tol) {
              const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
              const range = document.createRange();
              while (walker.nextNode() && culprits.length < 5) {
                const node = walker.currentNode;
                if (!node.textContent.trim()) continue;
                range.selectNodeContents(node);
                const r = range.getBoundingClientRect();
                if (r.width && r.right > width + tol && !contained(node))
                  culprits.push(`${name(node.parentElement)} `
                                + `"${node.textContent.trim().slice(0, 50)}"`
                                + ` (right edge ${Math.round(r.right)} px)`);
              }
              for (const el of document.querySelectorAll('body *')) {
                if (culprits.length >= 5) break;
                const r = el.getBoundingClientRect();
                if (r.width && r.right > width + tol && !contained(el)
                    && ![...el.children].some(c => c.getBoundingClientRect().right > width + tol))
                  culprits.push(`${name(el)} (right edge ${Math.round(r.right)} px)`);
              }
            }
            return {width, doc, culprits};
        }""",
        OVERFLOW_TOLERANCE_PX,
    )
    if info["doc"] <= info["width"] + OVERFLOW_TOLERANCE_PX:
        return []
    return [
        f"page is {info['doc']} px wide at a {info['width']} px screen (scrolls sideways); "
        f"widest: {', '.join(info['culprits']) or 'unknown'}"
    ]


_WIDE_JS = """
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const art = document.querySelector('article.bd-article');
  if (!art) return {equations: [], code: [], tables: [], codeChars: null};
  const tol = 2, col = art.getBoundingClientRect();
  // the nearest box (el itself or above it, inside the article) that scrolls sideways
  const scroller = el => {
    for (let p = el; p && p !== art; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll') return p;
      if (o === 'hidden' || o === 'clip') return null;  // cut, not scrollable
    }
    return null;
  };
  const text = el => el.textContent.replace(/\\s+/g, ' ').trim().slice(0, 50);
  const equations = [];
  for (const m of art.querySelectorAll('mjx-container[display="true"]')) {
    const math = m.querySelector(':scope > mjx-math') || m;
    const r = math.getBoundingClientRect();
    const wide = m.scrollWidth > m.clientWidth + tol || r.left < col.left - tol
                 || r.right > col.right + tol;
    if (!wide) continue;
    const box = scroller(m);
    const b = box && box.getBoundingClientRect();
    if (!box) equations.push(`equation wider than the column without a scroll box: "${text(m)}"`);
    else if (b.left < col.left - tol || b.right > col.right + tol)
      equations.push(`equation's scroll box is wider than the column (${Math.round(b.width)} px): `
                     + `"${text(m)}"`);
    else if (box.scrollLeft === 0 && r.left < b.left - tol)
      equations.push(`equation's left end cannot be scrolled to: "${text(m)}"`);
    else if (!(m.getAttribute('data-course-more') || '').includes('right') && box.scrollLeft === 0)
      equations.push('equation scrolls with no cue (data-course-more, _static/course.js): '
                     + `"${text(m)}"`);
  }
  const code = [];
  let codeChars = null;
  for (const pre of art.querySelectorAll('div.cell div.cell_input pre')) {
    if (codeChars === null) {
      const s = document.createElement('span'); s.textContent = 'x'.repeat(100); pre.appendChild(s);
      const cs = getComputedStyle(pre);
      codeChars = (pre.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight))
                  / (s.getBoundingClientRect().width / 100);
      s.remove();
    }
    if (pre.scrollWidth > pre.clientWidth + tol)
      code.push(`code cut at the right edge (${pre.scrollWidth - pre.clientWidth} px more): `
                + `"${text(pre)}"`);
  }
  const tables = [];
  for (const t of art.querySelectorAll('table, div.cell_output pre')) {
    const r = t.getBoundingClientRect();
    if (t.scrollWidth <= t.clientWidth + tol && r.right <= col.right + tol) continue;
    const box = t.tagName === 'PRE' && t.scrollWidth > t.clientWidth + tol
                ? scroller(t) : scroller(t.parentElement);
    if (!box)
      tables.push(`${t.tagName.toLowerCase()} output wider than the column without a scroll box: `
                  + `"${text(t)}"`);
  }
  return {equations, code, tables, codeChars};
}
"""


def wide_content(page) -> dict:
    """What of the page is wider than the text column: display equations, code cells' lines, tables
    and printed outputs (lists of problems), and how many code characters a line shows."""
    return page.evaluate(_WIDE_JS)


def check_wide_content(page, spec: PageSpec, code_must_fit: bool) -> list[str]:
    """Nothing is cut at the right (or left) edge: a display equation, table or printed output
    wider than the text column scrolls in its own box that fits the column (an equation with a
    cue that it goes on), and with ``code_must_fit`` (desktop width) no code line is cut at all:
    the column shows the 88 characters CONTRIBUTING.md allows."""
    info = wide_content(page)
    problems = info["equations"] + info["tables"]
    if code_must_fit:
        problems += info["code"]
        if info["codeChars"] is not None and info["codeChars"] < CODE_LINE_LIMIT:
            problems.append(
                f"the code column shows {info['codeChars']:.0f} characters, "
                f"fewer than the {CODE_LINE_LIMIT} a code line may have"
            )
    return problems


def check_numbering(visit: Visit, spec: PageSpec) -> list[str]:
    """No heading carries two numbers ("5.1. 1. The setting": the book's section number in front
    of the notebook's own), and no bibliography entry shows a [n] label (the book cites
    author-year)."""
    info = visit.page.evaluate(
        """() => ({
            headings: [...document.querySelectorAll('article.bd-article :is(h1,h2,h3,h4)')]
                .map(h => h.innerText.trim()),
            labels: [...document.querySelectorAll('article.bd-article div.citation > span.label')]
                .filter(e => e.offsetWidth > 0 && e.offsetHeight > 0).map(e => e.innerText.trim()),
        })"""
    )
    problems = [
        f"heading numbered twice: {h[:60]!r}" for h in info["headings"] if DOUBLE_NUMBER.match(h)
    ]
    if info["labels"]:
        problems.append(
            f"bibliography entries numbered under author-year citations: {info['labels'][:3]}"
        )
    return problems


def check_exercise_links(visit: Visit, spec: PageSpec) -> list[str]:
    """A chapter whose exercise notebook exists links it the same way as every other chapter: its
    page on this website, on GitHub and in Colab."""
    name = spec.docname.removeprefix("chapters/")
    if (
        not spec.docname.startswith("chapters/")
        or not (ROOT / "exercises" / f"{name}.ipynb").is_file()
    ):
        return []
    hrefs = visit.page.evaluate(
        "() => [...document.querySelectorAll('article.bd-article a[href]')].map(a => a.href)"
    )
    colab = colab_url(f"exercises/{name}")
    github = colab.replace("https://colab.research.google.com/github/", "https://github.com/")
    wanted = {
        "its page on this website": lambda h: urllib.parse.urlparse(h).path.endswith(
            f"/exercises/{name}.html"
        ),
        "GitHub": lambda h: h == github,
        "Colab": lambda h: h == colab,
    }
    return [
        f"no link to exercises/{name}.ipynb ({what})"
        for what, ok in wanted.items()
        if not any(map(ok, hrefs))
    ]


def _around(text: str, m: re.Match, width: int = 40) -> str:
    return " ".join(text[max(0, m.start() - width) : m.end() + width].split())
