"""The Colab simulation runs only when asked for (`make colab`, or `pytest tests/colab`); a plain
`pytest tests` skips it (it builds a 6 GB runtime and executes every notebook)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent.resolve()
REQUIRED = os.environ.get("COURSE_COLAB_REQUIRED") == "1"


def pytest_collection_modifyitems(config, items):
    asked = REQUIRED or any(Path(str(arg).split("::")[0]).resolve().is_relative_to(HERE) for arg in config.args)
    if asked:
        return
    skip = pytest.mark.skip(reason="the Colab simulation: `make colab` or `pytest tests/colab`")
    for item in items:
        if Path(str(item.path)).resolve().is_relative_to(HERE):
            item.add_marker(skip)
