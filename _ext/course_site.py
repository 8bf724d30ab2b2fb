"""Local Sphinx extension of the website (loaded from _config.yml, ``sphinx: local_extensions``).

sphinx-thebe 0.3.1 adds its inline configuration script after the HTML builder is set up, and
Sphinx 7.4 then writes it twice into every page (once with filename None, once with ''); the
second copy re-declares ``const THEBE_JS_URL`` and throws a SyntaxError in every reader's
console (found by tests/browser).  This drops duplicates of a script from each page.

A page whose notebook failed to execute must not survive into a later build: Sphinx re-reads
only pages whose source changed, so after a failed ``make book`` the next build would reuse the
page with its traceback and report success.  ``_reread_failed_executions`` marks every page
whose last execution failed as outdated, so it is read, and executed, again (jupyter-cache never
caches a failed execution).  ``scripts/check_build.py`` then refuses a build that still holds a
failed page.

The website shows no progress bars: ``setup`` sets ``COURSE_PROGRESS=off`` in the build's
environment, which the kernels that execute the pages inherit (``course_lib.progress``).  It is
set here, not in the Makefile, so that ``jupyter-book build .`` run by hand gets it too.

``setup`` also makes the executor wait for each cell's reply in short polls
(``reply_polling``), so an explorer cell cannot stall a page for the cell timeout.
"""

from __future__ import annotations

import os

import reply_polling  # _ext/ is on the path of local extensions (_config.yml)

# what the build's kernels see: no progress bars on the website (course_lib.progress)
PAGE_ENVIRONMENT = {"COURSE_PROGRESS": "off"}


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        attributes = getattr(js, "attributes", {})
        key = (
            getattr(js, "filename", js) or "",
            tuple(sorted((k, str(v)) for k, v in attributes.items())),
        )
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def _reread_failed_executions(app, env, added, changed, removed):
    metadata = getattr(env, "nb_metadata", {}) or {}
    failed = [
        docname
        for docname, data in metadata.items()
        if (data.get("exec_data") or {}).get("succeeded") is False and docname in env.all_docs
    ]
    if failed:
        from sphinx.util import logging

        logging.getLogger(__name__).info(
            "re-executing %d page(s) whose last execution failed: %s",
            len(failed),
            ", ".join(sorted(failed)),
        )
    return failed


def setup(app):
    # before any page is executed: the kernels are started later, with this environment
    os.environ.update(PAGE_ENVIRONMENT)
    reply_polling.install()  # a widget cell's reply must not stall the page (jupyter/nbclient#312)
    app.connect("env-get-outdated", _reread_failed_executions)
    # after every extension has added its page scripts (default priority 500)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
