"""plotting.focus_curves, the mean a_z curves of the mosaic runs in its two styles: one line per
seed (chapter 4) and the seeds' mean with their range as a band (chapter 6)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from course_lib import plotting  # noqa: E402

EPOCHS = np.arange(1, 6)
CURVES = {
    "soft": np.linspace(0.2, 0.6, 15).reshape(3, 5),
    "hybrid": np.linspace(0.1, 0.9, 15).reshape(3, 5),
    "kept": np.full((3, 5), 0.5),
}


def test_one_line_per_seed_in_a_finished_figure_of_its_own():
    fig = plotting.focus_curves(EPOCHS, CURVES, "seeds")
    (ax,) = fig.axes
    assert len(ax.lines) == 9 and ax.get_ylim() == (0, 1)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        plotting.MOSAIC_NAMES[m] for m in CURVES
    ]
    assert ax.lines[3].get_color() == plotting.MOSAIC_COLOURS["hybrid"]
    plt.close(fig)


def test_band_draws_the_mean_and_the_range_into_a_given_axis():
    fig, ax = plt.subplots()
    returned = plotting.focus_curves(EPOCHS, CURVES, "bands", band=True, ax=ax)
    assert returned is fig and len(ax.lines) == 3
    np.testing.assert_allclose(ax.lines[1].get_ydata(), CURVES["hybrid"].mean(0))
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 3
    vertices = bands[0].get_paths()[0].vertices
    assert vertices[:, 1].min() == pytest.approx(CURVES["soft"].min())
    assert vertices[:, 1].max() == pytest.approx(CURVES["soft"].max())
    assert ax.get_ylabel() == "mean $a_z$ (training)" and ax.get_title() == "bands"
    plt.close(fig)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="methods must be among"):
        plotting.focus_curves(EPOCHS, {"sharp": CURVES["soft"]})
    with pytest.raises(TypeError, match="band must be a bool"):
        plotting.focus_curves(EPOCHS, CURVES, band="yes")
