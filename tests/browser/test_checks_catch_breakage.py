"""Each browser check fails when the website is deliberately broken.

A copy of the built site is served on its own port; each test writes a mutated copy of one real
page next to the original (so its relative links and assets still resolve) and runs the check
that must catch the breakage.  A control test shows the unmutated copy passes every check, so
the failures below come from the mutations.
"""

from __future__ import annotations

import io
import re
import shutil

import pytest

import sitecheck

# Runs only when selected: `make browser` (`-m browser`; pyproject.toml).
pytestmark = pytest.mark.browser

SPECS = [s for s in sitecheck.page_specs() if s.is_notebook]
# a figure's image in a cell output, bare or inside the <figure> of a captioned figure
FIGURE = r'(?s)(<div class="cell_output[^"]*">\s*(?:<figure[^>]*>\s*)?<img [^>]*src=")[^"]+'
FIGURE_ELEMENT = r'(<div class="cell_output[^"]*">\s*(?:<figure[^>]*>\s*)?)<img [^>]*/?>'


@pytest.fixture(scope="module")
def copy_site(site_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(site_dir, root, dirs_exist_ok=True)
    srv = sitecheck.SiteServer(root)
    yield root, srv
    srv.close()


class Broken:
    """Write a mutated copy of a page that contains ``marker`` and open it in a browser context."""

    def __init__(self, copy_site, marker: str, opened: list):
        self.root, self.server = copy_site
        self.opened = opened
        for spec in SPECS:
            text = (self.root / spec.url_path).read_text()
            if re.search(marker, text):
                self.spec, self.html = spec, text
                return
        pytest.skip(f"no chapter page has {marker!r} to break")

    def sub(self, pattern: str, replacement: str, count: int = 1) -> "Broken":
        new, n = re.subn(pattern, lambda m: m.expand(replacement), self.html, count=count)
        assert n, f"mutation found no {pattern!r} in {self.spec.url_path}"
        self.html = new
        return self

    def insert_in_article(self, html: str) -> "Broken":
        return self.sub(
            r'(<article class="bd-article"[^>]*>)', r"\g<1>" + html.replace("\\", "\\\\")
        )

    def open(self, context, name: str, math_timeout_ms: int | None = None) -> sitecheck.Visit:
        stem = self.spec.url_path.removesuffix(".html")
        path = f"{stem}__broken_{name}.html"
        (self.root / path).write_text(self.html)
        spec = sitecheck.PageSpec(self.spec.docname, self.spec.source, url_path=path)
        self.broken_spec = spec
        visit = sitecheck.open_page(
            context, self.server.base + path, math_timeout_ms=math_timeout_ms
        )
        self.opened.append(visit.page)
        return visit


@pytest.fixture
def breaker(copy_site):
    """``breaker(marker)``: a :class:`Broken` copy of the first chapter page matching ``marker``."""
    opened = []
    yield lambda marker: Broken(copy_site, marker, opened)
    for page in opened:
        page.close()


def _caught(problems, *needles):
    assert problems, "the check passed a broken page"
    text = "\n".join(problems)
    for needle in needles:
        assert needle in text, f"expected {needle!r} in:\n{text}"


# --- control ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.docname)
def test_unbroken_copy_passes_every_check(spec, copy_site, desktop):
    root, server = copy_site
    visit = sitecheck.open_page(desktop, server.base + spec.url_path)
    try:
        for check in (
            sitecheck.check_console,
            sitecheck.check_offline,
            sitecheck.check_figures,
            sitecheck.check_math,
            sitecheck.check_no_raw_markup,
            sitecheck.check_outputs,
            sitecheck.check_proofs_and_exercises,
            sitecheck.check_internal_links,
            sitecheck.check_colab,
            sitecheck.check_widgets,
        ):
            assert not check(visit, spec), check.__name__
    finally:
        visit.page.close()


# --- figures ---------------------------------------------------------------------------------


def test_missing_figure_file(breaker, desktop):
    b = breaker(FIGURE).sub(FIGURE, r"\g<1>../_images/missing.png")
    v = b.open(desktop, "missing_figure")
    _caught(sitecheck.check_figures(v, b.broken_spec), "not decoded", "missing.png")
    _caught(sitecheck.check_console(v, b.broken_spec), "404")


def test_removed_figure(breaker, desktop):
    b = breaker(FIGURE_ELEMENT).sub(FIGURE_ELEMENT, r"\g<1>")
    v = b.open(desktop, "removed_figure")
    _caught(sitecheck.check_figures(v, b.broken_spec), "calls plt.show() but shows no figure")


# --- math ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        r"<p>The mean $\frac{1}{n}\sum_i x_i$ stays raw.</p>",
        r"<p>An unclosed $$ \frac{1}{2} display.</p>",
    ],
    ids=["inline-dollar", "unclosed-display"],
)
def test_raw_tex_in_text(raw, breaker, desktop):
    b = breaker(r'class="math').insert_in_article(raw)
    v = b.open(desktop, "raw_tex")
    _caught(sitecheck.check_math(v, b.broken_spec), "raw TeX in the text")


def test_undefined_macro(breaker, desktop):
    b = breaker(r'class="math notranslate nohighlight">\\\(').sub(
        r'(class="math notranslate nohighlight">\\\()', r"\g<1>\\nosuchmacro "
    )
    v = b.open(desktop, "undefined_macro")
    _caught(sitecheck.check_math(v, b.broken_spec), "undefined TeX macro", "nosuchmacro")


def test_tex_error(breaker, desktop):
    b = breaker(r'class="math notranslate nohighlight">\\\(').sub(
        r'(class="math notranslate nohighlight">\\\()', r"\g<1>\\frac{1}{2}}"
    )
    v = b.open(desktop, "tex_error")
    _caught(sitecheck.check_math(v, b.broken_spec), "MathJax error")


def test_mathjax_from_a_cdn_is_caught_offline(breaker, desktop):
    b = breaker(r"_static/mathjax/tex-mml-chtml\.js").sub(
        r'src="[^"]*_static/mathjax/tex-mml-chtml\.js[^"]*"',
        'src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"',
    )
    v = b.open(desktop, "cdn_mathjax", math_timeout_ms=3000)
    _caught(
        sitecheck.check_offline(v, b.broken_spec),
        "requested from the internet: https://cdn.jsdelivr.net",
    )
    _caught(sitecheck.check_math(v, b.broken_spec), "MathJax did not load", "math not typeset")


def test_widget_manager_from_a_cdn_is_caught_offline(breaker, desktop):
    b = breaker(r"</head>").sub(
        r"</head>",
        "<script "
        'src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js"></script></head>',
    )
    v = b.open(desktop, "cdn_require")
    _caught(sitecheck.check_offline(v, b.broken_spec), "cdnjs.cloudflare.com")


# --- outputs, console, markup ----------------------------------------------------------------

TRACEBACK = (
    '<div class="output stream highlight-myst-ansi notranslate"><div '
    'class="highlight"><pre><span></span>'
    'Traceback (most recent call last):\n  File "&lt;cell&gt;", line 3\nValueError: '
    "boom</pre></div></div>"
)


def test_traceback_in_an_output(breaker, desktop):
    b = breaker(r'class="cell_output').sub(r'(<div class="cell_output[^>]*>)', r"\g<1>" + TRACEBACK)
    v = b.open(desktop, "traceback")
    _caught(sitecheck.check_outputs(v, b.broken_spec), "Traceback")


def test_error_output_cell(breaker, desktop):
    b = breaker(r'class="cell_output').sub(
        r'(<div class="cell_output[^>]*>)',
        r'\g<1><div class="output traceback highlight-ipythontb"><pre>oops</pre></div>',
    )
    v = b.open(desktop, "error_output")
    _caught(sitecheck.check_outputs(v, b.broken_spec), "error output")


def test_javascript_error_and_missing_stylesheet(breaker, desktop):
    b = breaker(r"</head>").sub(
        r"</head>",
        '<link rel="stylesheet" href="../_static/no-such.css"><script>throw new '
        'Error("boom")</script></head>',
    )
    v = b.open(desktop, "console")
    _caught(sitecheck.check_console(v, b.broken_spec), "uncaught exception: boom", "no-such.css")


def test_unrendered_directive(breaker, desktop):
    b = breaker(r"bd-article").insert_in_article(
        "<p>:::{prf:theorem} Something</p><p>See {prf:ref}`thm-x`.</p>"
    )
    v = b.open(desktop, "raw_myst")
    _caught(sitecheck.check_no_raw_markup(v, b.broken_spec), "unrendered MyST")


# --- theorems, proofs, solutions -------------------------------------------------------------


def test_theorem_not_rendered_as_a_theorem(breaker, desktop):
    b = breaker(r'class="proof theorem admonition"').sub(
        r'class="proof theorem admonition"', 'class="section"'
    )
    v = b.open(desktop, "theorem")
    _caught(
        sitecheck.check_proofs_and_exercises(v, b.broken_spec), "theorem directive(s) in the source"
    )


def test_unstyled_proof(breaker, desktop):
    b = breaker(r'class="proof admonition"').sub(
        r"</head>",
        "<style>div.proof { border: none !important; box-shadow: none !important; }</style></head>",
    )
    v = b.open(desktop, "unstyled_proof")
    _caught(sitecheck.check_proofs_and_exercises(v, b.broken_spec), "not styled as a block")


def test_solution_not_folded(breaker, desktop):
    b = breaker(r'class="solution dropdown admonition"').sub(
        r'class="solution dropdown admonition"', 'class="solution admonition"'
    )
    v = b.open(desktop, "solution_unfolded")
    _caught(sitecheck.check_solutions_fold(v.page, b.broken_spec), "open before it is clicked")


def test_solution_does_not_open(breaker, desktop):
    b = breaker(r'class="solution dropdown admonition"').sub(
        r"</head>",
        "<style>div.solution > :not(.admonition-title) { display: none !important; "
        "}</style></head>",
    )
    v = b.open(desktop, "solution_stuck")
    _caught(sitecheck.check_solutions_fold(v.page, b.broken_spec), "does not open")


# --- Colab button, links ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, replacement",
    [
        (r"(colab\.research\.google\.com/github/[^\"]*/blob/)[^/\"]+/", r"\g<1>no-such-branch/"),
        (r"(colab\.research\.google\.com/github/[^\"]*?)/chapters/", r"\g<1>/notebooks/"),
    ],
    ids=["wrong-branch", "wrong-path"],
)
def test_wrong_colab_link(pattern, replacement, breaker, desktop):
    b = breaker(r"colab\.research\.google\.com/github/").sub(pattern, replacement)
    v = b.open(desktop, "colab")
    _caught(sitecheck.check_colab(v, b.broken_spec), "Colab button points at")


def test_missing_colab_button(breaker, desktop):
    b = breaker(r"colab\.research\.google\.com/github/").sub(
        r'href="https://colab\.research\.google\.com/[^"]*"', 'href="#"'
    )
    v = b.open(desktop, "no_colab")
    _caught(sitecheck.check_colab(v, b.broken_spec), "no Colab button")


def test_broken_internal_links(breaker, desktop):
    b = breaker(r"bd-article").insert_in_article(
        '<p><a href="no_such_page.html">gone</a> and <a '
        'href="../intro.html#no-such-anchor">nowhere</a></p>'
    )
    v = b.open(desktop, "links")
    _caught(
        sitecheck.check_internal_links(v, b.broken_spec),
        "no_such_page.html' -> HTTP 404",
        "no-such-anchor",
    )


# --- widgets ---------------------------------------------------------------------------------


def test_widget_note_missing(breaker, desktop):
    b = breaker(re.escape(sitecheck.WIDGET_NOTE)).sub(
        r"<p>[^<]*" + re.escape(sitecheck.WIDGET_NOTE), "<p>Here is a figure"
    )
    v = b.open(desktop, "widget_note")
    _caught(sitecheck.check_widgets(v, b.broken_spec), "interactive explorer(s) in the notebook")


def test_live_widget_view(breaker, desktop):
    b = breaker(r"bd-article").insert_in_article(
        '<script type="application/vnd.jupyter.widget-view+json">{"model_id": "x", '
        '"version_major": 2}</script>'
    )
    v = b.open(desktop, "widget_view")
    _caught(sitecheck.check_widgets(v, b.broken_spec), "live widget view")


# --- dark mode, phone width ------------------------------------------------------------------


def test_figure_dark_in_dark_mode(breaker, dark):
    b = breaker(FIGURE).sub(
        r"</head>",
        "<style>html[data-theme=dark] .bd-article img { filter: invert(1) !important; "
        "}</style></head>",
    )
    v = b.open(dark, "dark")
    _caught(
        sitecheck.check_dark_mode_figures(v.page, b.broken_spec), "dark background in dark mode"
    )


def test_transparent_figure_readable_in_dark_mode_thanks_to_course_css(copy_site, breaker, dark):
    """A figure saved with a transparent background: course.css gives it white; without it,
    caught."""
    from PIL import Image, ImageDraw

    root, _ = copy_site
    img = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    ImageDraw.Draw(img).line((10, 190, 290, 10), fill=(0, 0, 0, 255), width=3)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    (root / "_images").mkdir(exist_ok=True)
    (root / "_images" / "transparent.png").write_bytes(buf.getvalue())
    swap = (FIGURE, r"\g<1>../_images/transparent.png")

    b = breaker(FIGURE).sub(*swap)
    v = b.open(dark, "transparent_with_css")
    assert not sitecheck.check_dark_mode_figures(v.page, b.broken_spec)

    b = (
        breaker(r"_static/course\.css")
        .sub(*swap)
        .sub(r"<link [^>]*course\.css[^>]*>", "")
        .sub(
            r"</head>",
            "<style>html[data-theme=dark] .bd-content div.cell_output img { background: none "
            "!important; }</style></head>",
        )
    )
    v = b.open(dark, "transparent_without_css")
    _caught(
        sitecheck.check_dark_mode_figures(v.page, b.broken_spec), "dark background in dark mode"
    )


def test_sideways_scroll_on_a_phone(breaker, phone):
    b = breaker(r"bd-article").insert_in_article(
        '<div style="width: 900px">a fixed-width box</div>'
    )
    v = b.open(phone, "wide_box")
    _caught(sitecheck.check_narrow_screen(v.page, b.broken_spec), "scrolls sideways", "div")


def test_long_url_wraps_only_with_course_css(breaker, phone):
    url = "<p>https://github.com/haoyelyu/On_the_Dynamics_of_Training_Attention_Models_and_more</p>"
    b = breaker(r"bd-article").insert_in_article(url)
    v = b.open(phone, "long_url_with_css")
    assert not sitecheck.check_narrow_screen(v.page, b.broken_spec)

    b = (
        breaker(r"_static/course\.css")
        .insert_in_article(url)
        .sub(r"<link [^>]*course\.css[^>]*>", "")
    )
    v = b.open(phone, "long_url_without_css")
    _caught(
        sitecheck.check_narrow_screen(v.page, b.broken_spec), "scrolls sideways", "On_the_Dynamics"
    )


def test_colab_link_in_text_to_a_missing_notebook(breaker, desktop):
    b = breaker(r'class="reference external" href="https://colab\.research\.google\.com/')
    b.sub(
        r'(class="reference external" href="https://colab\.research\.google\.com/[^"]*?)\.ipynb"',
        r'\g<1>_missing.ipynb"',
    )
    v = b.open(desktop, "colab_text")
    _caught(sitecheck.check_colab(v, b.broken_spec), "Colab link in the text")


# --- wide content: equations, code, tables --------------------------------------------------


def test_wide_equation_readable_only_with_course_css(breaker, phone):
    """A display equation wider than a phone: with course.css and course.js it scrolls with a cue;
    without them (the theme alone) the check catches it cut off."""
    eq = (
        r'<div class="math notranslate nohighlight">\['
        + " + ".join(f"x_{{{i}}}^2" for i in range(40))
        + r"\]</div>"
    )
    b = breaker(r"_static/course\.css").insert_in_article(eq)
    v = b.open(phone, "wide_equation_with_css")
    assert not sitecheck.check_wide_content(v.page, b.broken_spec, code_must_fit=False)

    b = breaker(r"_static/course\.css").insert_in_article(eq)
    b.sub(r"<link [^>]*course\.css[^>]*>", "").sub(r"<script [^>]*course\.js[^>]*></script>", "")
    v = b.open(phone, "wide_equation_without_css")
    _caught(sitecheck.check_wide_content(v.page, b.broken_spec, code_must_fit=False), "equation")


def test_equation_without_cue(breaker, phone):
    eq = (
        r'<div class="math notranslate nohighlight">\['
        + " + ".join(f"y_{{{i}}}" for i in range(60))
        + r"\]</div>"
    )
    b = (
        breaker(r"_static/course\.js")
        .insert_in_article(eq)
        .sub(r"<script [^>]*course\.js[^>]*></script>", "")
    )
    v = b.open(phone, "equation_no_cue")
    _caught(sitecheck.check_wide_content(v.page, b.broken_spec, code_must_fit=False), "no cue")


def test_code_line_cut_on_desktop(breaker, desktop):
    b = breaker(r"cell_input").sub(
        r"</head>",
        "<style>.bd-article div.cell div.highlight pre { font-size: 18px !important; "
        "}</style></head>",
    )
    v = b.open(desktop, "code_cut")
    _caught(
        sitecheck.check_wide_content(v.page, b.broken_spec, code_must_fit=True), "code column shows"
    )


def test_wide_table_without_scroll_box(breaker, phone):
    row = "".join(f"<td>column {i}</td>" for i in range(30))
    table = f'<div style="overflow: hidden"><table><tr>{row}</tr></table></div>'
    b = breaker(r"bd-article").insert_in_article(table)
    v = b.open(phone, "wide_table")
    _caught(
        sitecheck.check_wide_content(v.page, b.broken_spec, code_must_fit=False),
        "table output wider",
    )


def test_doubled_section_number(breaker, desktop):
    heading = r'<h2>(?=[^<]*<a class="headerlink")'  # a section heading of the article
    b = breaker(heading).sub(heading, "<h2>5.1. 1. ")
    v = b.open(desktop, "doubled_number")
    _caught(sitecheck.check_numbering(v, b.broken_spec), "heading numbered twice")


def test_exercise_page_not_linked(breaker, desktop):
    link = r'href="\.\./exercises/[^"]+\.html"'
    b = breaker(link).sub(link, 'href="#"', count=0)
    v = b.open(desktop, "no_exercise_link")
    _caught(sitecheck.check_exercise_links(v, b.broken_spec), "its page on this website")
