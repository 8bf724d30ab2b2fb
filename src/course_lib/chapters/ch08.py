"""Chapter 8 (max-margin attention): the chapter's figure of directional convergence."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..plotting import FIGURE_WIDTH, PANEL_HEIGHT, finish_figure

__all__ = ["plot_direction_runs"]


def plot_direction_runs(curves: dict, norms: dict):
    """Chapter 8's figure (section 8.3): ``1 - cos(p_t, p_mm)`` (top) and ``||p_t||`` (bottom)
    against the step, log-log, one line per run.

    ``curves[label] = (steps, errors)`` and ``norms[label] = (steps, norms)``, 1-d arrays of one
    length per label.  Returns the matplotlib figure.
    """
    if not isinstance(curves, dict) or not isinstance(norms, dict):
        raise TypeError("curves and norms must be dicts of label -> (steps, values)")
    # stacked, at the course's figure width, so that a phone shows the text legibly
    fig, axes = plt.subplots(2, 1, figsize=(FIGURE_WIDTH, 2 * PANEL_HEIGHT), sharex=True)
    for label, (steps, err) in curves.items():
        axes[0].loglog(steps, err, label=label)
    for label, (steps, nrm) in norms.items():
        axes[1].loglog(steps, nrm, label=label)
    axes[0].set_ylabel(r"$1 - \cos(p_t, p_{mm})$")
    axes[1].set_ylabel(r"$\|p_t\|$")
    axes[1].set_xlabel("step $t$")
    for ax in axes:
        ax.legend(frameon=False)
    return finish_figure(fig)
