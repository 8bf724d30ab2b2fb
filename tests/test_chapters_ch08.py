"""Tests for course_lib.chapters.ch08 (chapter 8's figure)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.chapters import ch08  # noqa: E402
from course_lib.plotting import FIGURE_WIDTH  # noqa: E402


def test_plot_direction_runs_draws_one_line_per_run_on_log_axes():
    steps = np.arange(1, 11)
    curves = {"a": (steps, 1.0 / steps), "b": (steps, 2.0 / steps)}
    norms = {"a": (steps, np.log(steps + 1)), "b": (steps, np.sqrt(steps))}
    fig = ch08.plot_direction_runs(curves, norms)
    top, bottom = fig.axes
    assert [len(top.lines), len(bottom.lines)] == [2, 2]
    assert top.get_xscale() == top.get_yscale() == bottom.get_yscale() == "log"
    np.testing.assert_allclose(top.lines[1].get_ydata(), 2.0 / steps)
    assert fig.get_size_inches()[0] == pytest.approx(FIGURE_WIDTH)
    plt.close(fig)


def test_plot_direction_runs_names_its_arguments():
    with pytest.raises(TypeError, match="curves and norms"):
        ch08.plot_direction_runs([(1, 2)], {})
