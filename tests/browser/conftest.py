"""Fixtures of the browser suite: the built site served on 127.0.0.1, Debian's headless Chromium.

Every test here carries the ``browser`` marker, which a plain ``pytest tests`` leaves out
(pyproject.toml), so the unit tests never check a stale website.  `make test` runs this suite
after the book build (``make browser``: ``pytest -m browser tests/browser`` with
COURSE_BROWSER_REQUIRED=1, so a missing site or browser fails there instead of skipping).
COURSE_SITE_DIR points the suite at another built site (default ``_build/html``); screenshots
go to ``_build/screenshots/`` (COURSE_SCREENSHOT_DIR).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import sitecheck

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # never download a browser

SITE = Path(os.environ.get("COURSE_SITE_DIR", sitecheck.ROOT / "_build" / "html")).resolve()
SHOTS = Path(os.environ.get("COURSE_SCREENSHOT_DIR", SITE.parent / "screenshots"))
REQUIRED = os.environ.get("COURSE_BROWSER_REQUIRED") == "1"


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def site_dir() -> Path:
    if not (SITE / "index.html").exists():
        _unavailable(f"no built website in {SITE}: run `make build-book` first")
    return SITE


@pytest.fixture(scope="session")
def server(site_dir):
    srv = sitecheck.SiteServer(site_dir)
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def browser():
    if not os.access(sitecheck.CHROMIUM, os.X_OK):
        _unavailable(f"{sitecheck.CHROMIUM} not found: `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    b = pw.chromium.launch(
        executable_path=sitecheck.CHROMIUM, args=sitecheck.CHROMIUM_ARGS, headless=True
    )
    yield b
    b.close()
    pw.stop()


def _context(browser, **kwargs):
    ctx = browser.new_context(**kwargs)
    ctx.set_default_timeout(30_000)
    return ctx


@pytest.fixture(scope="session")
def desktop(browser):
    ctx = _context(browser, viewport=sitecheck.DESKTOP, color_scheme="light")
    yield ctx
    ctx.close()


@pytest.fixture(scope="session")
def dark(browser):
    ctx = _context(browser, viewport=sitecheck.DESKTOP, color_scheme="dark")
    yield ctx
    ctx.close()


@pytest.fixture(scope="session")
def phone(browser):
    ctx = _context(browser, viewport=sitecheck.PHONE, color_scheme="light", device_scale_factor=1)
    yield ctx
    ctx.close()


def shot_name(docname: str, suffix: str = "") -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', docname)}{suffix}.png"


@pytest.fixture(scope="session")
def screenshot_path():
    """``screenshot_path(docname, suffix)``: where a page's screenshot goes
    (_build/screenshots/)."""
    return shot_name


@pytest.fixture(scope="session")
def visits(server, desktop):
    """Each page loaded once at desktop width (and its screenshot saved), shared by the
    read-only checks."""
    cache: dict[str, sitecheck.Visit] = {}

    def get(spec: sitecheck.PageSpec) -> sitecheck.Visit:
        if spec.url_path not in cache:
            visit = sitecheck.open_page(desktop, server.base + spec.url_path)
            visit.page.screenshot(path=shot_name(spec.docname), full_page=True)
            cache[spec.url_path] = visit
        return cache[spec.url_path]

    yield get
    for visit in cache.values():
        visit.page.close()
