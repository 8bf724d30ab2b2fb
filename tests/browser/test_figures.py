"""Figures and first results as a reader sees them, in headless Chromium.

On every chapter page, at 1280 px and at 390 px:

* every figure a cell draws sits in a numbered, captioned figure ("Fig. 2.3" and a sentence) and
  has alt text that describes it (not the image's file hash);
* its text stays legible: the course's smallest figure text (``plotting.SMALLEST_TEXT_PT`` at the
  style's 100 dpi, about 16 px in the image) times the factor by which the page shrinks the image
  (displayed width / natural width) is at least ``MIN_TEXT_PX`` (12 px on a desktop, 9 px on a
  phone; the side-by-side panels of the old figures came out at 6-8 px and 3-5 px);

and on a desktop the first figure or results table starts within the first three screens.
Each check is shown to fail on a page broken on purpose (the last tests).
"""

from __future__ import annotations

import re

import pytest

import sitecheck
from course_lib import plotting

pytestmark = pytest.mark.browser

CHAPTERS = [s for s in sitecheck.page_specs() if s.docname.startswith("chapters/") and s.executed]
SMALLEST_TEXT_PX = plotting.SMALLEST_TEXT_PT * plotting.COURSE_STYLE["figure.dpi"] / 72
MIN_TEXT_PX = {"desktop": 12.0, "phone": 9.0}
FIRST_RESULT_SCREENS = 3
HASHLIKE = re.compile(r"(^|/)[0-9a-f]{16,}(\.\w+)?$")

_FIGURES_JS = """
() => [...document.querySelectorAll('article.bd-article div.cell_output img')].map(img => {
  const figure = img.closest('figure');
  const caption = figure && figure.querySelector('figcaption');
  const number = caption && caption.querySelector('.caption-number');
  return {
    src: img.getAttribute('src'),
    alt: img.getAttribute('alt') || '',
    natural: img.naturalWidth,
    shown: img.getBoundingClientRect().width,
    number: number ? number.textContent.trim() : '',
    caption: caption ? caption.textContent.replace(/\\s+/g, ' ').trim() : '',
    id: figure ? figure.id : '',
  };
})
"""

_FIRST_RESULT_JS = """
() => {
  const art = document.querySelector('article.bd-article');
  const found = [...art.querySelectorAll('div.cell_output img, div.cell_output table')]
    .map(e => e.getBoundingClientRect().top + window.scrollY);
  return {top: found.length ? Math.min(...found) : null, screen: window.innerHeight};
}
"""


def _chapter(spec) -> int:
    return int(spec.docname.split("/")[1][:2])


def check_figure_captions(page, spec) -> list[str]:
    """Every figure is numbered "Fig. N.k" in order, has a caption and describing alt text."""
    problems = []
    figures = page.evaluate(_FIGURES_JS)
    n = _chapter(spec)
    for k, f in enumerate(figures, start=1):
        where = f"figure {k} ({f['src']})"
        if f["number"].rstrip(".: ") != f"Fig. {n}.{k}":
            problems.append(f"{where}: numbered {f['number']!r}, expected 'Fig. {n}.{k}'")
        if len(f["caption"].split()) < 6:
            problems.append(f"{where}: no caption ({f['caption']!r})")
        if not f["id"].startswith(f"fig-ch{n}-"):
            problems.append(f"{where}: no fig-ch{n}-... name to refer to ({f['id']!r})")
        alt = f["alt"].strip()
        if len(alt.split()) < 5 or HASHLIKE.search(alt) or alt == f["src"]:
            problems.append(f"{where}: alt text {alt[:40]!r} does not describe the figure")
    if len(figures) != len(spec.figure_cells):
        problems.append(f"{len(figures)} figures on the page, {len(spec.figure_cells)} drawn")
    return problems


def check_figure_text(page, spec, width: str) -> list[str]:
    """No figure is shrunk so far that its smallest text falls below MIN_TEXT_PX."""
    problems = []
    for k, f in enumerate(page.evaluate(_FIGURES_JS), start=1):
        if not f["natural"]:
            problems.append(f"figure {k} ({f['src']}) not decoded")
            continue
        scale = f["shown"] / f["natural"]
        text = SMALLEST_TEXT_PX * scale
        if text < MIN_TEXT_PX[width] - 1e-6:
            problems.append(
                f"figure {k} ({f['number'] or f['src']}): {f['natural']} px wide shown at "
                f"{f['shown']:.0f} px (x{scale:.2f}), its smallest text {text:.1f} px "
                f"< {MIN_TEXT_PX[width]:.0f} px"
            )
    return problems


def check_first_result(page, spec) -> list[str]:
    """A figure or results table starts within the first FIRST_RESULT_SCREENS screens."""
    info = page.evaluate(_FIRST_RESULT_JS)
    if info["top"] is None:
        return ["no figure or results table on the page"]
    screens = info["top"] / info["screen"]
    if screens > FIRST_RESULT_SCREENS:
        return [f"the first figure or results table starts {screens:.1f} screens down"]
    return []


def _ok(problems):
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def phone_pages(server, phone):
    cache = {}

    def get(spec):
        if spec.url_path not in cache:
            cache[spec.url_path] = sitecheck.open_page(phone, server.base + spec.url_path).page
        return cache[spec.url_path]

    yield get
    for page in cache.values():
        page.close()


@pytest.mark.parametrize("spec", CHAPTERS, ids=lambda s: s.docname)
def test_figures_numbered_captioned_described(spec, visits):
    _ok(check_figure_captions(visits(spec).page, spec))


@pytest.mark.parametrize("spec", CHAPTERS, ids=lambda s: s.docname)
def test_figure_text_legible_on_desktop(spec, visits):
    _ok(check_figure_text(visits(spec).page, spec, "desktop"))


@pytest.mark.parametrize("spec", CHAPTERS, ids=lambda s: s.docname)
def test_figure_text_legible_on_phone(spec, phone_pages):
    _ok(check_figure_text(phone_pages(spec), spec, "phone"))


@pytest.mark.parametrize("spec", CHAPTERS, ids=lambda s: s.docname)
def test_first_result_within_three_screens(spec, visits):
    _ok(check_first_result(visits(spec).page, spec))


# ------------------------------------------------------------ the checks fail on broken pages


@pytest.fixture
def broken(server, desktop):
    spec = CHAPTERS[0]
    page = sitecheck.open_page(desktop, server.base + spec.url_path).page
    yield spec, page
    page.close()


def test_caption_check_catches_a_bare_image(broken):
    spec, page = broken
    assert not check_figure_captions(page, spec)
    page.evaluate(
        """() => { const img = document.querySelector('article.bd-article div.cell_output img');
                   img.closest('figure').querySelector('figcaption').remove();
                   img.setAttribute('alt', '../_images/' + 'ab12'.repeat(16) + '.png'); }"""
    )
    problems = check_figure_captions(page, spec)
    assert any("numbered" in p for p in problems) and any("alt text" in p for p in problems)


def test_text_check_catches_a_shrunk_figure(broken):
    spec, page = broken
    page.evaluate(
        """() => document.querySelectorAll('article.bd-article div.cell_output img')
                 .forEach(img => { img.style.width = (0.4 * img.naturalWidth) + 'px'; })"""
    )
    assert check_figure_text(page, spec, "desktop")


def test_first_result_check_catches_a_late_figure(broken):
    spec, page = broken
    page.evaluate(
        """() => { const art = document.querySelector('article.bd-article');
                   const pad = document.createElement('div');
                   pad.style.height = (4 * window.innerHeight) + 'px';
                   art.prepend(pad); }"""
    )
    assert check_first_result(page, spec)
