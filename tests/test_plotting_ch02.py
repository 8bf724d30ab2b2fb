"""Smoke tests of the chapter-2 figures and explorer: each returns what it promises on small
inputs."""

from __future__ import annotations

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import identity, law, plotting, widgets  # noqa: E402

T, N = 30, 4
S = torch.linspace(0, 3, T)[:, None].repeat(1, N)
X = identity.sen_norm_curve(S, 20)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_sen_curves_and_breaks():
    fig = plotting.sen_curves({"fixed": (S, X), "linear": (S, 1.01 * X)}, 20)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 2
    fig = plotting.identity_breaks(
        {"a": {"scores": S, "scaled": X, "curves": {"m = 20": 20, "m = 5": 5}}}
    )
    assert len(fig.axes) == 1


def test_drift_vs_lr():
    times = {lr: np.linspace(0, 10, 5) for lr in (0.2, 0.1, 0.05)}
    drifts = {lr: lr * np.linspace(0, 1, 5) for lr in (0.2, 0.1, 0.05)}
    fig = plotting.drift_vs_lr(times, drifts)
    assert "slope 1.00" in fig.axes[1].get_legend().get_texts()[0].get_text()


def test_regimes_convergence_ablation_collapse():
    fig = plotting.sen_regimes(20, measured=(S, X**2, 1 - law.attention_weight(S, 20)))
    assert len(fig.axes) == 2
    t = torch.linspace(1, 100, T)
    fig = plotting.convergence_curves(t, 1 - law.attention_weight(S, 20), X, [2.0] * N)
    assert len(fig.axes) == 2
    runs = {
        kind: {
            v: {k: torch.rand(2, T) for k in ("loss", "norm", "score")}
            for v in ("full", "KF", "EF")
        }
        for kind in ("fixed", "linear")
    }
    fig = plotting.ablation_curves(t, runs)
    assert len(fig.axes) == 6
    fig = plotting.sen_collapse([(20, 0.3, S, X), (5, 1.0, S, identity.sen_norm_curve(S, 5))])
    assert len(fig.axes) == 1


def test_sen_explorer_builds():
    explorer = widgets.sen_explorer(steps=5, n_sentences=20, n_background=20)
    names = {child.description for child in explorer.children if hasattr(child, "description")}
    assert {"m", "query std"} <= names


def test_importing_plotting_leaves_the_style_alone_and_use_course_style_applies_it():
    code = (
        "import matplotlib; before = dict(matplotlib.rcParams); "
        "from course_lib import plotting, widgets; "
        "assert dict(matplotlib.rcParams) == before, 'import changed rcParams'; "
        "assert matplotlib.rcParams['axes.spines.top']; "
        "plotting.use_course_style(); "
        "assert not matplotlib.rcParams['axes.spines.top']; "
        "assert matplotlib.rcParams['figure.facecolor'] == 'white'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
