"""Local Sphinx extension of the website (loaded from _config.yml, ``sphinx: local_extensions``).

sphinx-thebe 0.3.1 adds its inline configuration script after the HTML builder is set up, and
Sphinx 7.4 then writes it twice into every page (once with filename None, once with ''); the
second copy re-declares ``const THEBE_JS_URL`` and throws a SyntaxError in every reader's
console (found by tests/browser).  This drops duplicates of a script from each page.
"""

from __future__ import annotations


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        attributes = getattr(js, "attributes", {})
        key = (getattr(js, "filename", js) or "", tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def setup(app):
    # after every extension has added its page scripts (default priority 500)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
