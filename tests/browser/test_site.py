"""The website as readers see it: every page of _toc.yml in headless Chromium, offline.

Every request outside 127.0.0.1 is blocked, so math that is typeset here was typeset by the
site's own MathJax.  Screenshots of each page go to _build/screenshots/.
"""

from __future__ import annotations

import pytest

import sitecheck

# Runs only when selected: `make browser` (`-m browser`; pyproject.toml).
pytestmark = pytest.mark.browser

SPECS = sitecheck.page_specs()
NOTEBOOKS = [s for s in SPECS if s.is_notebook]


def _ids(spec):
    return spec.docname


def _ok(problems):
    assert not problems, "\n".join(problems)


def test_toc_has_pages():
    assert len(NOTEBOOKS) >= 1 and SPECS[0].docname == "intro"


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_loads_without_errors(spec, visits):
    _ok(sitecheck.check_console(visits(spec), spec))


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_works_offline(spec, visits):
    _ok(sitecheck.check_offline(visits(spec), spec))


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_figures_present_and_decoded(spec, visits):
    _ok(sitecheck.check_figures(visits(spec), spec))


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_math_typeset(spec, visits):
    _ok(sitecheck.check_math(visits(spec), spec))


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_no_unrendered_markup(spec, visits):
    _ok(sitecheck.check_no_raw_markup(visits(spec), spec))


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_no_error_outputs(spec, visits):
    _ok(sitecheck.check_outputs(visits(spec), spec))


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_theorems_proofs_exercises_render(spec, visits):
    _ok(sitecheck.check_proofs_and_exercises(visits(spec), spec))


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_numbering_not_doubled(spec, visits):
    _ok(sitecheck.check_numbering(visits(spec), spec))


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=_ids)
def test_chapter_links_its_exercises(spec, visits):
    _ok(sitecheck.check_exercise_links(visits(spec), spec))


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_internal_links_resolve(spec, visits):
    _ok(sitecheck.check_internal_links(visits(spec), spec))


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=_ids)
def test_colab_button(spec, visits):
    _ok(sitecheck.check_colab(visits(spec), spec))


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=_ids)
def test_widgets_have_static_counterpart(spec, visits):
    _ok(sitecheck.check_widgets(visits(spec), spec))


@pytest.mark.parametrize("spec", [s for s in SPECS if s.directives("solution")], ids=_ids)
def test_solutions_folded_until_clicked(spec, server, desktop):
    visit = sitecheck.open_page(desktop, server.base + spec.url_path)
    try:
        _ok(sitecheck.check_solutions_fold(visit.page, spec))
    finally:
        visit.page.close()


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_dark_mode_figures_readable(spec, server, dark, screenshot_path):
    visit = sitecheck.open_page(dark, server.base + spec.url_path)
    try:
        figures = visit.page.locator("article.bd-article .cell_output img")
        if figures.count():  # the reviewer's screenshot shows a figure on the dark background
            figures.first.scroll_into_view_if_needed()
        visit.page.screenshot(path=screenshot_path(spec.docname, "-dark"))
        _ok(sitecheck.check_dark_mode_figures(visit.page, spec))
    finally:
        visit.page.close()


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_phone_width_no_sideways_scroll(spec, server, phone, screenshot_path):
    visit = sitecheck.open_page(phone, server.base + spec.url_path)
    try:
        visit.page.screenshot(path=screenshot_path(spec.docname, "-390px"), full_page=True)
        _ok(sitecheck.check_narrow_screen(visit.page, spec))
    finally:
        visit.page.close()


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_desktop_nothing_cut(spec, visits):
    """1280 px: every code line shows whole; wide equations, tables and outputs scroll in a box."""
    _ok(sitecheck.check_wide_content(visits(spec).page, spec, code_must_fit=True))


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_phone_nothing_cut(spec, server, phone):
    """390 px: equations, code, tables and outputs wider than the screen scroll in their own box."""
    visit = sitecheck.open_page(phone, server.base + spec.url_path)
    try:
        _ok(sitecheck.check_wide_content(visit.page, spec, code_must_fit=False))
    finally:
        visit.page.close()
