"""Pure plotting functions of chapters 1-3: each takes numbers and returns a matplotlib Figure,
never shows it (each function's docstring names its chapter).

``use_course_style()`` (called in each notebook's import cell; importing this module changes no
matplotlib setting) gives figures a white background, so they read well in the website's light
and dark themes.  Colours are fixed per role across the whole course: topic words in ``TOPIC``,
background words in ``BACKGROUND``, and the three classifiers of chapter 1 in
``CLASSIFIER_COLOURS``.
"""

from __future__ import annotations

import textwrap
from typing import Mapping, NamedTuple, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from .identity import (
    large_score_miss,
    score_per_norm_sq,
    sen_norm_curve,
    small_score_norm_sq,
)
from .law import LOSS_NAMES, attention_weight

# Figures are sized for the website's text column: at most FIGURE_WIDTH inches wide (about
# 600 px at 100 dpi), so that a phone (390 px, a 345 px column) shrinks them by at most ~0.55 and a
# desktop (1280 px, a ~700 px column) not at all; panels are stacked, not set side by side.
# Text is large for a figure (FONT_SIZE points, the smallest "small" = SMALLEST_TEXT_PT), so that
# it stays at least 9 px high on a phone (tests/browser/test_figures.py measures the shrinking).
FIGURE_WIDTH = 5.8
PANEL_HEIGHT = 2.7
FONT_SIZE = 14.0
SMALLEST_TEXT_PT = FONT_SIZE / 1.2  # matplotlib's "small"

# The course's look: white backgrounds (readable in the website's light and dark themes), no top
# or right spines, text legible at phone width.  Applied by use_course_style(), never on import.
COURSE_STYLE = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "figure.dpi": 100,
    "figure.figsize": (FIGURE_WIDTH, 3.8),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": FONT_SIZE,
    "axes.titlesize": "medium",
    "axes.labelsize": "medium",
    "figure.titlesize": "medium",
    "xtick.labelsize": "small",
    "ytick.labelsize": "small",
    "legend.fontsize": "small",
}

TOPIC = "#c0392b"
BACKGROUND = "#7f8c8d"
CLASSIFIER_COLOURS = {"fixed": "#1f77b4", "linear": "#ff7f0e", "mlp": "#2ca02c"}
CLASSIFIER_NAMES = {
    "fixed": "Attn-FC (fixed)",
    "linear": "Attn-TC (linear)",
    "mlp": "Attn-TL (two-layer)",
}


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def use_course_style() -> None:
    """Apply the course's matplotlib style (``COURSE_STYLE``) to every later figure; each
    notebook calls it once in its import cell (chapter 1).  Importing this module changes nothing.

    >>> with matplotlib.rc_context():  # (the example leaves the global style alone)
    ...     use_course_style()
    ...     matplotlib.rcParams["axes.spines.top"]
    False
    """
    matplotlib.rcParams.update(COURSE_STYLE)


def _stacked(n: int, height: float = PANEL_HEIGHT, row: bool = False, **kwargs):
    """``n`` panels stacked vertically in one figure ``FIGURE_WIDTH`` wide (a phone shows them
    at a legible size; side by side they were shrunk to unreadable text).  Returns the figure and
    a ``(n,)`` array of axes, or ``(1, n)`` with ``row=True`` (the shape ``plt.subplots(1, n,
    squeeze=False)`` gave)."""
    fig, axes = plt.subplots(n, 1, figsize=(FIGURE_WIDTH, height * n), squeeze=False, **kwargs)
    axes = axes[:, 0]
    return fig, (axes.reshape(1, n) if row else axes)


def _transposed_grid(rows: int, cols: int, height: float = PANEL_HEIGHT, **kwargs):
    """A ``rows x cols`` grid of panels drawn as ``cols`` rows of ``rows`` panels (at most two
    side by side), returned so that ``axes[r, c]`` still indexes the original grid."""
    fig, axes = plt.subplots(
        cols, rows, figsize=(FIGURE_WIDTH, height * cols), squeeze=False, **kwargs
    )
    return fig, axes.T


def _wrap(text: str, width_in: float, fontsize: float) -> str:
    if not text or "$" in text:
        return text
    chars = max(12, int(width_in * 72 / (0.52 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def finish_figure(fig):
    """Fit a figure to the website's column (every chapter; the plotting functions end with it,
    and a figure drawn in a notebook calls it before ``plt.show()``): wrap titles to their
    panel's width (a long title widened the image and so shrank its text), drop the x labels of
    panels above a panel that shares their x axis, and tighten the layout.  Returns ``fig``."""
    if not isinstance(fig, matplotlib.figure.Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    width = fig.get_figwidth()
    for ax in fig.axes:
        title = ax.title
        title.set_text(
            _wrap(title.get_text(), ax.get_position().width * width, title.get_fontsize())
        )
        spec = ax.get_subplotspec()
        shared = len(ax.get_shared_x_axes().get_siblings(ax)) > 1
        if spec is not None and shared and not spec.is_last_row():
            ax.set_xlabel("")
    if fig._suptitle is not None:
        fig._suptitle.set_text(_wrap(fig._suptitle.get_text(), width, fig._suptitle.get_fontsize()))
    fig.tight_layout()
    return fig


def loss_curves(steps, losses: Mapping[str, Sequence[float]], title: str = "Training loss"):
    """Training loss against step, one line per named run (chapter 1)."""
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 3.6))
    for name, loss in losses.items():
        ax.plot(
            _np(steps),
            _np(loss),
            label=CLASSIFIER_NAMES.get(name, name),
            color=CLASSIFIER_COLOURS.get(name),
        )
    ax.axhline(np.log(4), color="0.7", lw=0.8, ls=":")
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("cross-entropy")
    ax.set_title(title)
    ax.legend(frameon=False)
    return finish_figure(fig)


def attention_curves(
    steps,
    on_topic: Mapping[str, Sequence[float]],
    m: int,
    title: str = "Attention on the topic word",
):
    """Mean attention on the topic word and on one background word against step (chapter 1).

    The background word's share is ``(1 - a_topic) / m``; the dotted line is the uniform
    ``1/(m+1)``.
    """
    fig, axes = _stacked(2, sharex=True)
    for name, values in on_topic.items():
        values = _np(values)
        colour = CLASSIFIER_COLOURS.get(name)
        label = CLASSIFIER_NAMES.get(name, name)
        axes[0].plot(_np(steps), values, color=colour, label=label)
        axes[1].plot(_np(steps), (1 - values) / m, color=colour, label=label)
    for ax in axes:
        ax.axhline(1 / (m + 1), color="0.6", lw=0.8, ls=":", label="uniform 1/(m+1)")
        ax.set_xlabel("gradient-descent step")
    axes[0].set_ylabel("attention")
    axes[0].set_title("on the topic word")
    axes[1].set_title("on each background word")
    axes[0].legend(frameon=False)
    fig.suptitle(title)
    return finish_figure(fig)


def score_norm_histograms(results: Mapping[str, tuple], bins: int = 30):
    """Histograms of final scores and of ``||q|| ||w_u||`` for topic vs background words.

    ``results[name] = (scores, scaled_norms, is_topic)``, three ``(vocab,)`` arrays (chapter 1).
    """
    fig, axes = _transposed_grid(2, len(results))
    for col, (name, (scores, norms, is_topic)) in enumerate(results.items()):
        scores, norms, is_topic = _np(scores), _np(norms), _np(is_topic).astype(bool)
        for row, (values, label) in enumerate(
            ((scores, "score $s_u$"), (norms, r"$\|q\|\,\|w_u\|$"))
        ):
            ax = axes[row, col]
            # one shared set of bins, counts not densities: 8 topic words against thousands
            edges = np.linspace(min(values.min(), 0.0), values.max(), bins + 1)
            ax.hist(
                values[~is_topic],
                bins=edges,
                color=BACKGROUND,
                alpha=0.85,
                label=f"background ({(~is_topic).sum()})",
            )
            ax.hist(
                values[is_topic],
                bins=edges,
                color=TOPIC,
                alpha=0.85,
                label=f"topic ({is_topic.sum()})",
            )
            ax.set_xlabel(label)
            ax.set_yscale("log")
            if row == 0:
                ax.set_title(CLASSIFIER_NAMES.get(name, name))
                ax.set_ylabel("words (log)")
    axes[0, 0].legend(frameon=False)
    return finish_figure(fig)


def sentence_attention(
    words: Sequence[str],
    attention: Sequence[float],
    is_topic: Sequence[bool],
    ax=None,
    title: str = "",
):
    """Bar chart of one sentence's attention over its words, the topic word in red (chapter 1).

    Returns the Figure (a new one unless ``ax`` is given)."""
    attention, is_topic = _np(attention), _np(is_topic).astype(bool)
    if ax is None:
        fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 3.0))
    else:
        fig = ax.figure
    colours = [TOPIC if t else BACKGROUND for t in is_topic]
    ax.bar(np.arange(len(words)), attention, color=colours)
    ax.axhline(1 / len(words), color="0.6", lw=0.8, ls=":")
    ax.set_xticks(np.arange(len(words)))
    ax.set_xticklabels([w[:8] for w in words], rotation=90)
    ax.set_ylim(0, 1)
    ax.set_ylabel("attention")
    if title:
        ax.set_title(title)
    return fig


def sentence_attention_grid(
    words, attention_by_run: Mapping[str, Mapping[int, Sequence[float]]], is_topic
):
    """One sentence's attention for several runs (one panel each, stacked) at several steps
    (grouped bars, lighter to darker as training goes on; the topic word in red);
    ``attention_by_run[run][step]`` is a ``(length,)`` array (chapter 1)."""
    runs = list(attention_by_run)
    steps = list(next(iter(attention_by_run.values())))
    is_topic = _np(is_topic).astype(bool)
    fig, axes = _stacked(len(runs), height=2.5, sharex=True, sharey=True)
    x = np.arange(len(words))
    width = 0.8 / len(steps)
    for ax, run in zip(axes, runs):
        for j, step in enumerate(steps):
            shade = 0.3 + 0.7 * j / max(1, len(steps) - 1)
            colours = [TOPIC if t else BACKGROUND for t in is_topic]
            ax.bar(
                x - 0.4 + (j + 0.5) * width,
                _np(attention_by_run[run][step]),
                width,
                color=colours,
                alpha=shade,
                label=f"step {step}",
            )
        ax.axhline(1 / len(words), color="0.6", lw=0.8, ls=":")
        ax.set_ylim(0, 1)
        ax.set_ylabel("attention")
        ax.set_title(CLASSIFIER_NAMES.get(run, run))
    axes[0].legend(frameon=False, ncols=len(steps), loc="upper left")
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels([w[:8] for w in words], rotation=90, fontsize="small")
    return finish_figure(fig)


# ---- chapter 3


def sst_training_curves(
    runs: Mapping[str, tuple], baseline: float | None = None, title: str = "Training on SST"
):
    """Train (solid) and dev (dashed) cross-entropy against step for several runs (chapter 3).

    ``runs[name] = (steps, train_loss, dev_loss)``, each ``(T,)``; ``baseline`` draws a dotted
    line (e.g. ``ln 2``, the loss of a model that knows nothing).
    """
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 3.6))
    for i, (name, (steps, train, dev)) in enumerate(runs.items()):
        colour = CLASSIFIER_COLOURS.get(name, f"C{i}")
        label = CLASSIFIER_NAMES.get(name, name)
        ax.plot(_np(steps), _np(train), color=colour, label=f"{label}, train")
        ax.plot(_np(steps), _np(dev), color=colour, ls="--", label=f"{label}, dev")
    if baseline is not None:
        ax.axhline(baseline, color="0.7", lw=0.8, ls=":")
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("cross-entropy")
    ax.set_title(title)
    ax.legend(frameon=False)
    return finish_figure(fig)


def pad_token_curves(steps, pad_score, pad_share, title: str = "The unmasked pad token"):
    """Left: the pad token's score against step; right: the mean share of attention that the
    padding positions of a training sentence receive (chapter 3)."""
    fig, axes = _stacked(2, sharex=True)
    axes[0].plot(_np(steps), _np(pad_score), color=BACKGROUND)
    axes[0].axhline(0, color="0.7", lw=0.8, ls=":")
    axes[0].set_ylabel(r"pad score $s_{\mathrm{pad}}$")
    axes[1].plot(_np(steps), _np(pad_share), color=BACKGROUND)
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("attention on padding (mean)")
    for ax in axes:
        ax.set_xlabel("gradient-descent step")
    fig.suptitle(title)
    return finish_figure(fig)


def sen_real_words(
    score,
    scaled_norm,
    m,
    words: Sequence[str] = (),
    label: int = 8,
    title: str = "The identity on real words",
):
    """Measured ``||q|| ||w_u||`` against the score for real words (dots), with the chapter-2
    curve ``sqrt(2 (s + (e^s - 1)/m))`` for the smallest, median and largest ``m_u`` (chapter 3).

    Parameters
    ----------
    score, scaled_norm, m
        ``(n_words,)`` each: ``s_u``, ``||q|| ||w_u||`` and ``m_u`` (``sst.real_word_sen``).
    words, label
        The words, in the same order; the first ``label`` of them are written next to their dots.
    title
        The axes' title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    score, scaled_norm, m = _np(score), _np(scaled_norm), _np(m)
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 4.2))
    ax.scatter(
        score, scaled_norm, s=12, color=TOPIC, alpha=0.7, label="measured, top words", zorder=3
    )
    grid = np.linspace(0, max(float(score.max()) * 1.05, 1e-3), 200)
    for mv, ls in zip((m.min(), np.median(m), m.max()), (":", "-", "--")):
        curve = sen_norm_curve(grid, float(mv))
        ax.plot(grid, curve, color="0.3", ls=ls, lw=1, label=f"identity, $m_u$ = {mv:.0f}")
    for i, w in enumerate(list(words)[:label]):
        ax.annotate(
            w,
            (score[i], scaled_norm[i]),
            fontsize="small",
            xytext=(3, -3),
            textcoords="offset points",
        )
    ax.set_xlabel(r"score $s_u$")
    ax.set_ylabel(r"$\|q\|\,\|w_u\|$")
    ax.set_title(title)
    ax.legend(frameon=False)
    return finish_figure(fig)


def purity_dynamics(
    steps,
    purity: Mapping[str, Sequence[float]],
    frequency: Mapping[str, Sequence[float]],
    title: str = "Frequency first, purity later",
    log_steps: bool = False,
):
    """For each trace word ``u``: mean purity (left) and mean frequency (right, log scale) of the
    most-attended word of the training sentences containing ``u``, against step (chapter 3);
    ``log_steps`` puts the steps on a log scale, to show the early phase."""
    fig, axes = _stacked(2, sharex=True)
    for i, word in enumerate(purity):
        axes[0].plot(_np(steps), _np(purity[word]), color=f"C{i}", label=word)
        axes[1].plot(_np(steps), _np(frequency[word]), color=f"C{i}", label=word)
    axes[0].set_ylim(0, 1.02)
    axes[0].set_ylabel("purity of the most-attended word")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("its frequency (sentences)")
    for ax in axes:
        ax.set_xlabel("gradient-descent step")
        if log_steps:
            ax.set_xscale("log")
    axes[0].legend(frameon=False)
    fig.suptitle(title)
    return finish_figure(fig)


def word_race(
    steps,
    series: Mapping[str, Mapping[str, Sequence[float]]],
    title: str = "Two words in one sentence",
):
    """Small multiples of several quantities (``series[quantity][word]``, each ``(T,)``) against
    step, one line per word: e.g. attention, score and ``||q|| ||w||`` of two words (chapter 3)."""
    fig, axes = _stacked(len(series), row=True, sharex=True)
    for ax, (quantity, by_word) in zip(axes[0], series.items()):
        for i, (word, values) in enumerate(by_word.items()):
            ax.plot(_np(steps), _np(values), color=("C1", "C0", "C2", "C3")[i % 4], label=word)
        ax.set_title(quantity)
        ax.set_xlabel("gradient-descent step")
    axes[0, 0].legend(frameon=False)
    fig.suptitle(title)
    return finish_figure(fig)


# ---- chapter 2: the persisting identity


def _sen_theory(ax, m, s_max, s_min=0.0, colour="k", label=None, ls="--"):
    s = np.linspace(min(s_min, 0.0), s_max, 200)
    ax.plot(
        s,
        sen_norm_curve(s, m),
        color=colour,
        ls=ls,
        lw=1.2,
        label=label if label is not None else f"identity, m = {m}",
    )


def sen_curves(
    runs: Mapping[str, tuple],
    m: int,
    title: str = "Scaled norm against score: the identity's curve",
):
    """Measured ``||q|| ||w_tau||`` against ``s_tau`` for every topic word (solid, one panel per
    run)
    over the curve ``sqrt(2(s + (e^s - 1)/m))`` of chapter 2, eq. (2.3) (dashed).

    ``runs[name] = (scores, scaled_norms)``, two ``(T, n_topic_words)`` arrays.
    """
    fig, axes = _stacked(len(runs), row=True)
    for ax, (name, (scores, scaled)) in zip(axes[0], runs.items()):
        scores, scaled = _np(scores), _np(scaled)
        colour = CLASSIFIER_COLOURS.get(name, TOPIC)
        for k in range(scores.shape[1]):
            ax.plot(
                scores[:, k],
                scaled[:, k],
                color=colour,
                lw=2.2,
                alpha=0.45,
                label="topic words (measured)" if k == 0 else None,
            )
        _sen_theory(ax, m, float(np.nanmax(scores)) * 1.05, float(np.nanmin(scores)))
        ax.set_title(CLASSIFIER_NAMES.get(name, name))
        ax.set_xlabel(r"score $s_\tau$")
        ax.set_ylabel(r"$\|q\|\,\|w_\tau\|$")
    axes[0, 0].legend(frameon=False)
    fig.suptitle(title)
    return finish_figure(fig)


def drift_vs_lr(
    times: Mapping[float, Sequence[float]],
    drifts: Mapping[float, Sequence[float]],
    slope: float | None = None,
):
    """Left: ``max_tau |C_tau(t) - C_tau(0)|`` against training time ``t = lr * step``, one line per
    learning rate; right: the final drift against the learning rate on log-log axes with the fitted
    power law (chapter 2, "the identity is exact in the limit of small steps").

    ``times[lr]`` and ``drifts[lr]`` are ``(T,)``; ``slope`` the fitted log-log slope, for the
    label.
    """
    fig, axes = _stacked(2)
    lrs = sorted(drifts)
    for i, lr in enumerate(lrs):
        axes[0].plot(_np(times[lr]), _np(drifts[lr]), color=f"C{i}", label=f"lr = {lr:g}")
    axes[0].set_xlabel(r"training time $t = \eta \times$ step")
    axes[0].set_ylabel(r"$\max_\tau |C_\tau(t) - C_\tau(0)|$")
    axes[0].legend(frameon=False)
    final = np.array([float(_np(drifts[lr])[-1]) for lr in lrs])
    axes[1].loglog(lrs, final, "o", color="k")
    fit = np.polyfit(np.log(lrs), np.log(final), 1)
    grid = np.geomspace(min(lrs) / 1.3, max(lrs) * 1.3, 20)
    label = f"fit: slope {slope if slope is not None else fit[0]:.2f}"
    axes[1].loglog(grid, np.exp(np.polyval(fit, np.log(grid))), color="0.5", ls="--", label=label)
    axes[1].set_xlabel(r"learning rate $\eta$")
    axes[1].set_ylabel("drift at the end")
    axes[1].legend(frameon=False)
    fig.suptitle("The conserved quantity drifts by O(learning rate)")
    return finish_figure(fig)


def identity_breaks(panels: Mapping[str, dict]):
    """One panel per broken assumption (chapter 2, "where the identity breaks"):
    ``panels[title] = {"scores": (T, n), "scaled": (T, n), "curves": {label: m}}``; the measured
    ``||q|| ||w_tau||`` against ``s_tau`` (solid) over the identity's curves for the given ``m``
    (dashed)."""
    fig, axes = _stacked(len(panels), row=True)
    for ax, (title, panel) in zip(axes[0], panels.items()):
        scores, scaled = _np(panel["scores"]), _np(panel["scaled"])
        for k in range(scores.shape[1]):
            ax.plot(
                scores[:, k],
                scaled[:, k],
                color=TOPIC,
                lw=2,
                alpha=0.45,
                label="measured" if k == 0 else None,
            )
        for i, (label, m) in enumerate(panel["curves"].items()):
            _sen_theory(
                ax,
                m,
                float(np.nanmax(scores)) * 1.05,
                float(np.nanmin(scores)),
                colour=("k", "C0", "C2")[i % 3],
                label=label,
            )
        ax.set_title(title)
        ax.set_xlabel(r"score $s_\tau$")
        ax.legend(frameon=False)
        ax.set_ylabel(r"$\|q\|\,\|w_\tau\|$")
    return finish_figure(fig)


def sen_regimes(m: int, measured: tuple | None = None, s_max: float = 12.0):
    """The identity's two regimes (chapter 2, eqs. (2.8)-(2.9)).  Left: ``||q||^2 ||w||^2`` against
    ``s`` with the small-score line ``2(1 + 1/m) s`` and the large-score curve ``(2/m) e^s``.
    Right: the attention missed, ``1 - a``, against ``||q||^2 ||w||^2`` with
    ``2/(||q||^2 ||w||^2)``.
    ``measured = (scores, scaled_norm_sq, miss)`` adds points from a run."""
    s = np.linspace(0.0, s_max, 300)
    x = sen_norm_curve(s, m) ** 2
    fig, axes = _stacked(2)
    axes[0].plot(s, x, color="k", label="identity")
    axes[0].plot(
        s, small_score_norm_sq(s, m), color="C0", ls="--", label=r"small score: $2(1 + 1/m)\,s$"
    )
    axes[0].plot(s, 2 / m * np.exp(s), color="C3", ls="--", label=r"large score: $(2/m)\,e^s$")
    axes[0].set_yscale("log")
    axes[0].set_ylim(x[1] / 2, x[-1] * 2)
    axes[0].set_xlabel(r"score $s_\tau$")
    axes[0].set_ylabel(r"$\|q\|^2 \|w_\tau\|^2$")
    miss = 1 - attention_weight(s, m)
    axes[1].loglog(x[1:], miss[1:], color="k", label=r"identity: $1 - a(s)$")
    big = x > 1.0
    axes[1].loglog(
        x[big], large_score_miss(x[big]), color="C3", ls="--", label=r"$2 / (\|q\|^2\|w\|^2)$"
    )
    if measured is not None:
        ms, mx, mmiss = (_np(v).ravel() for v in measured)
        axes[0].plot(ms, mx, ".", color=TOPIC, ms=3, alpha=0.4, label="training run")
        shown = mx > 1e-2
        axes[1].plot(
            mx[shown], mmiss[shown], ".", color=TOPIC, ms=3, alpha=0.4, label="training run"
        )
    axes[1].set_xlim(1e-2, x[-1] * 2)
    axes[1].set_xlabel(r"$\|q\|^2 \|w_\tau\|^2$")
    axes[1].set_ylabel(r"attention missed $1 - a_\tau$")
    for ax in axes:
        ax.legend(frameon=False)
    fig.suptitle(f"The two regimes of the identity (m = {m})")
    return finish_figure(fig)


def convergence_curves(times, miss, context_norm, gamma: Sequence[float]):
    """Convergence with a fixed linear classifier (chapter 2): left, the attention each topic word
    misses, ``1 - a_tau``, against training time (log-log); right, the context norm
    ``a_tau ||w_tau||`` against ``log t`` with the predicted slope ``1 / gamma_c`` (dashed, anchored
    at the end).  ``miss`` and ``context_norm`` are ``(T, n_topic_words)``; ``gamma`` one margin
    per topic word."""
    times, miss, context_norm = _np(times), _np(miss), _np(context_norm)
    keep = times > 0
    fig, axes = _stacked(2)
    for k in range(miss.shape[1]):
        axes[0].loglog(times[keep], miss[keep, k], color=f"C{k % 10}", lw=1)
        axes[1].plot(np.log(times[keep]), context_norm[keep, k], color=f"C{k % 10}", lw=1)
        lt = np.log(times[keep])
        end = context_norm[keep, k][-1]
        line = end + (lt - lt[-1]) / gamma[k]
        show = lt > lt[-1] - np.log(100)
        axes[1].plot(
            lt[show],
            line[show],
            color="k",
            ls="--",
            lw=0.8,
            label=r"slope $1/\gamma$" if k == 0 else None,
        )
    axes[0].set_xlabel(r"training time $t$")
    axes[0].set_ylabel(r"$1 - a_\tau$")
    axes[1].set_xlabel(r"$\log t$")
    axes[1].set_ylabel(r"$\|v\| = a_\tau \|w_\tau\|$")
    axes[1].legend(frameon=False)
    fig.suptitle("Fixed linear classifier: attention tends to 1, the norm grows like log t")
    return finish_figure(fig)


ABLATION_STYLES = {"full": ("k", "-"), "KF": ("C0", "--"), "EF": ("C3", ":")}


def ablation_curves(times, runs: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]):
    """The KF/EF ablation (chapter 2): rows are classifiers, columns the training loss, the mean
    topic-word ``||q|| ||w_tau||`` and the mean topic-word score against training time; one line
    per seed.  ``runs[classifier][variant] = {"loss": (R, T), "norm": (R, T), "score": (R, T)}``,
    variants ``"full"``, ``"KF"`` (keys frozen) and ``"EF"`` (embeddings frozen)."""
    fig, axes = _transposed_grid(len(runs), 3, sharex=True)
    times = _np(times)
    for row, (classifier, variants) in enumerate(runs.items()):
        for variant, values in variants.items():
            colour, ls = ABLATION_STYLES.get(variant, ("0.5", "-"))
            for col, key in enumerate(("loss", "norm", "score")):
                data = _np(values[key])
                for r in range(data.shape[0]):
                    axes[row, col].plot(
                        times,
                        data[r],
                        color=colour,
                        ls=ls,
                        lw=1.2,
                        alpha=0.8,
                        label=variant if r == 0 else None,
                    )
        axes[row, 0].set_title(CLASSIFIER_NAMES.get(classifier, classifier))
        axes[row, 0].set_ylabel("loss")
        axes[row, 1].set_ylabel(r"mean $\|q\|\,\|w_\tau\|$")
        axes[row, 2].set_ylabel(r"mean score $s_\tau$")
    for ax in axes.flat:
        ax.set_xlabel(r"training time $t = \eta \times$ step")
    axes[0, 0].legend(frameon=False)
    fig.suptitle("Ablation: keys frozen (KF) or embeddings frozen (EF), one line per seed")
    return finish_figure(fig)


def sen_collapse(
    runs: Sequence[tuple], ax=None, title: str = "Every topic word on its universal curve"
):
    """SEN curves of several trainings (chapter 2, "the curve depends on m only"): each run is
    ``(m, query_std, scores, scaled_norms)`` with ``(T, n_topic_words)`` arrays, drawn in the
    colour of
    its ``m`` over the curve for that ``m`` (dashed); line style marks the query's std."""
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 4.0))
    else:
        fig = ax.figure
    ms = sorted({run[0] for run in runs})
    stds = sorted({run[1] for run in runs})
    s_max = max(float(np.nanmax(_np(run[2]))) for run in runs) * 1.05
    styles = ("-", "-.", ":", (0, (5, 1)))
    for i, m in enumerate(ms):
        _sen_theory(ax, m, s_max, colour=f"C{i}", label=f"curve, m = {m}", ls="--")
    for m, std, scores, scaled in runs:
        scores, scaled = _np(scores), _np(scaled)
        colour = f"C{ms.index(m)}"
        for k in range(scores.shape[1]):
            ax.plot(
                scores[:, k],
                scaled[:, k],
                color=colour,
                ls=styles[stds.index(std) % 4],
                lw=2,
                alpha=0.5,
                label=f"m = {m}, query std {std:g}" if k == 0 else None,
            )
    ax.set_xlabel(r"score $s_\tau$")
    ax.set_ylabel(r"$\|q\|\,\|w_\tau\|$")
    ax.set_title(title)
    ax.legend(frameon=False)
    if own:
        return finish_figure(fig)


def common_factor(score, measured, query_norm: float, m: int, title: str = "The proof's key step"):
    """Measured ``ds / d||w_tau||^2`` (dots, one colour per topic word) against the score, over
    the identity's prediction ``(||q||^2 / 2)(1 - a(s))`` (chapter 2, eq. (2.5); dashed).

    ``score`` and ``measured`` are ``(T, n_topic_words)`` (the score at the middle of each
    recorded interval and the ratio of the increments over it).
    """
    score, measured = _np(score), _np(measured)
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 3.6))
    for k in range(score.shape[1]):
        ax.plot(score[:, k], measured[:, k], ".", ms=3, alpha=0.6, color=f"C{k % 10}")
    grid = np.linspace(float(np.nanmin(score)), float(np.nanmax(score)), 200)
    prediction = score_per_norm_sq(grid, query_norm**2, m)
    ax.plot(grid, prediction, "k--", lw=1.5, label=r"$\frac{\|q\|^2}{2}(1 - a(s))$")
    ax.set_xlabel(r"score $s_\tau$")
    ax.set_ylabel(r"$\Delta s_\tau / \Delta \|w_\tau\|^2$")
    ax.set_title(title)
    ax.legend(frameon=False)
    return finish_figure(fig)


# --------------------------------------------------------------------------- chapter 5: the flow

FLOW_COLOURS = {"soft": "#1f77b4", "hard": "#d62728", "lvml": "#2ca02c", "hybrid": "#9467bd"}
FLOW_NAMES = {
    "soft": "soft attention",
    "hard": "hard attention",
    "lvml": "LVML",
    "hybrid": "hybrid",
}


def flow_trajectories(
    t, paths: Mapping[str, tuple], m: int, C: int, log_time: bool = False, title: str | None = None
):
    """Chapter 5: the classifier margin mu(t), the focus logit nu(t) and alpha(t), per method.

    Parameters
    ----------
    t
        The times.
    paths
        ``paths[method] = (mu, nu)``, arrays of the shape of ``t``.
    m, C
        The number of segments (the attention is ``alpha = 1 / (1 + (m - 1) e^{-nu})``) and of
        classes.
    log_time, title
        A logarithmic time axis; the figure's title (default: names ``m`` and ``C``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    t = _np(t)
    fig, axes = _stacked(3, sharex=True)
    for method, (mu, nu) in paths.items():
        mu, nu = _np(mu), _np(nu)
        alpha = 1.0 / (1.0 + (m - 1) * np.exp(-nu))
        style = {"color": FLOW_COLOURS.get(method), "label": FLOW_NAMES.get(method, method)}
        axes[0].plot(t, mu, **style)
        axes[1].plot(t, nu, **style)
        axes[2].plot(t, alpha, **style)
    for ax, label in zip(axes, (r"margin $\mu$", r"focus logit $\nu$", r"attention $\alpha$")):
        ax.set_xlabel("time $t$")
        ax.set_ylabel(label)
        if log_time:
            ax.set_xscale("log")
    axes[2].axhline(1.0, color="0.7", lw=0.8, ls=":")
    axes[0].legend(frameon=False)
    fig.suptitle(title or f"gradient flow, m = {m}, C = {C}")
    return finish_figure(fig)


def fixed_focus_curves(
    t,
    theory: Mapping[str, Mapping[float, tuple]],
    measured: Mapping[str, Mapping[float, tuple]] | None = None,
    C: int | None = None,
):
    """Chapter 5: with the focus frozen at alpha, the loss and the focus incentive -dL/dalpha.

    ``theory[method][alpha] = (loss, incentive)`` on the times ``t`` (closed form);
    ``measured[method][alpha] = (times, loss, incentive)`` from gradient descent, drawn as dots.
    Dotted lines: the limits log C (hard) and (C-1)/(C alpha + 1 - alpha) (LVML) when C is given.
    """
    t = _np(t)
    methods = list(theory)
    fig, axes = _transposed_grid(2, len(methods), sharex=True)
    cmap = plt.get_cmap("viridis")
    for col, method in enumerate(methods):
        alphas = sorted(theory[method])
        for k, alpha in enumerate(alphas):
            colour = cmap(k / max(1, len(alphas) - 1) * 0.85)
            loss, incentive = theory[method][alpha]
            axes[0, col].plot(t, _np(loss), color=colour, label=rf"$\alpha$ = {alpha:g}")
            axes[1, col].plot(t, _np(incentive), color=colour)
            if measured and alpha in measured.get(method, {}):
                times, m_loss, m_inc = measured[method][alpha]
                axes[0, col].plot(_np(times), _np(m_loss), "o", ms=3, color=colour)
                axes[1, col].plot(_np(times), _np(m_inc), "o", ms=3, color=colour)
            if C is not None and method == "lvml":
                axes[1, col].axhline(
                    (C - 1) / (C * alpha + 1 - alpha), color=colour, lw=0.8, ls=":"
                )
        if C is not None and method == "hard":
            axes[1, col].axhline(np.log(C), color="0.4", lw=0.8, ls=":", label="log C")
            axes[1, col].legend(frameon=False)
        axes[0, col].set_title(FLOW_NAMES.get(method, method))
        for ax in axes[:, col]:
            ax.set_xlabel("time $t$")
        axes[1, col].set_xscale("log")
    axes[0, 0].set_ylabel("loss $L$")
    axes[1, 0].set_ylabel(r"focus incentive $-\partial L/\partial\alpha$")
    axes[0, 0].legend(
        frameon=False,
    )
    return finish_figure(fig)


def orbit_plane(paths: Mapping[str, tuple], orbits: Mapping[str, tuple], m: int, C: int):
    """Chapter 5: solver points (mu, nu) on top of the closed-form orbit curves nu = orbit(mu)."""
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 4.0))
    for method, (mu_curve, nu_curve) in orbits.items():
        ax.plot(
            _np(mu_curve),
            _np(nu_curve),
            color=FLOW_COLOURS.get(method),
            lw=1.5,
            label=f"{FLOW_NAMES.get(method, method)}: orbit",
        )
    for method, (mu, nu) in paths.items():
        ax.plot(_np(mu), _np(nu), "o", ms=3.5, mfc="none", color=FLOW_COLOURS.get(method))
    ax.set_xlabel(r"classifier margin $\mu$")
    ax.set_ylabel(r"focus logit $\nu$")
    ax.set_title(f"orbits (lines) and the ODE solver (circles), m = {m}, C = {C}")
    ax.legend(frameon=False)
    return finish_figure(fig)


def focus_error_rates(
    t,
    errors: Mapping[str, Sequence[float]],
    asymptotes: Mapping[str, Sequence[float]],
    title: str = "",
):
    """Chapter 5: the focus error 1 - alpha(t) on log axes, each with its late-time asymptote."""
    t = _np(t)
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 4.2))
    for method, error in errors.items():
        colour = FLOW_COLOURS.get(method)
        ax.loglog(t, _np(error), color=colour, label=FLOW_NAMES.get(method, method))
        if method in asymptotes:
            ax.loglog(t, _np(asymptotes[method]), color=colour, ls="--", lw=1)
    ax.set_xlabel("time $t$")
    ax.set_ylabel(r"focus error $1 - \alpha(t)$")
    ax.set_title(title or "focus error and its asymptote (dashed)")
    ax.legend(frameon=False)
    return finish_figure(fig)


# ------------------------------------------------------------------------ chapter 7: one structure


def one_law(
    gains: Mapping[str, tuple],
    drifts: Mapping[str, tuple],
    colours: Mapping[str, str] | None = None,
    title: str = "Both papers' laws: one separable equation",
):
    """Chapter 7's figure: both papers' conservation laws along real training runs.

    ``gains`` maps a run's name to ``(time (T,), potential_gain (T, k), strength_gain (T, k))``:
    ``Psi_n(theta) - Psi_n(theta(0))`` and ``c (S - S(0))`` for its ``k`` logits, drawn against each
    other (left) over the diagonal that the lemma predicts.  ``drifts`` maps a name to
    ``(time (T,), error (T,))``, the law's largest error ``|I(t) - I(0)|`` over the logits, drawn
    against training time on a log scale (right).  ``colours`` maps names to colours (default: the
    colour cycle); in the right panel the first run of each colour is dashed, the others solid.
    """
    colours = dict(colours or {})
    for i, name in enumerate([*gains, *drifts]):
        colours.setdefault(name, f"C{i % 10}")
    fig, (left, right) = _stacked(2, height=4.2)
    top = max(max(float(np.nanmax(_np(s))), float(np.nanmax(_np(p)))) for _, p, s in gains.values())
    left.plot([0, top], [0, top], color="k", lw=0.8, label="the lemma: equal gains", zorder=1)
    markers = "osD^v"
    for i, (name, (_, potential, strength)) in enumerate(gains.items()):
        potential, strength = _np(potential), _np(strength)
        every = max(
            1, potential.shape[0] // 12
        )  # markers, so that runs on the same line stay visible
        for j in range(potential.shape[1]):
            left.plot(
                strength[::every, j],
                potential[::every, j],
                ls="none",
                marker=markers[i % len(markers)],
                ms=4,
                mfc="none",
                color=colours[name],
                alpha=0.8,
                label=name if j == 0 else None,
            )
    left.set_xlabel(r"squared strength gained, $c\,(S - S(0))$")
    left.set_ylabel(r"attention potential gained, $\Psi_n(\theta) - \Psi_n(\theta(0))$")
    left.set_title(title)
    left.legend(frameon=False)
    seen: set = set()
    for name, (time, error) in drifts.items():
        style = "-" if colours[name] in seen else "--"
        seen.add(colours[name])
        time, error = _np(time), _np(error)
        right.plot(
            time[1:],
            np.maximum(error[1:], 1e-12),
            color=colours[name],
            ls=style,
            lw=1.8,
            label=name,
        )
    right.set_yscale("log")
    right.set_xlabel("training time (learning rate x steps)")
    right.set_ylabel(r"the law's error $|I(t) - I(0)|$")
    right.set_title("halving the step halves the error")
    right.legend(frameon=False)
    return finish_figure(fig)


def repeated_word_curves(
    runs: Mapping[int, tuple], m: int, title: str = "A topic word repeated k times"
):
    """Chapter 7, "reach": scaled norm against score for topic words that occur ``k`` times in each
    sentence.  ``runs`` maps ``k`` to ``(scores, scaled_norms)``, ``(T, n_words)`` each; every run
    is drawn over the predicted curve for ``m / k`` background words (dashed) and the paper's curve
    for ``m`` (dotted, grey)."""
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 4.0))
    for i, (k, (scores, scaled)) in enumerate(runs.items()):
        scores, scaled = _np(scores), _np(scaled)
        for j in range(scores.shape[1]):
            ax.plot(
                scores[:, j],
                scaled[:, j],
                color=f"C{i}",
                lw=4,
                alpha=0.35,
                label=f"k = {k}" if j == 0 else None,
            )
        # the prediction on top of the measurements, so that both stay visible
        _sen_theory(
            ax,
            m / k,
            float(np.nanmax(scores)),
            colour="k",
            label="predicted, m / k" if i == 0 else "_nolegend_",
            ls="--",
        )
    _sen_theory(
        ax,
        m,
        max(float(np.nanmax(_np(s))) for s, _ in runs.values()),
        colour="0.6",
        label=f"the paper's, m = {m}",
        ls=":",
    )
    ax.set_xlabel(r"score $s_\tau$")
    ax.set_ylabel(r"$\|q\|\,\|w_\tau\|$")
    ax.set_title(title)
    ax.legend(frameon=False)
    return finish_figure(fig)


# ---------------------------------------------------------------- chapter 4: three ways to attend

LOSS_COLOURS = {name: FLOW_COLOURS[name] for name in LOSS_NAMES}
LOSS_LABELS = {name: FLOW_NAMES[name] for name in LOSS_NAMES}
# the methods of the mosaic runs (chapters 4 and 6): "kept" is the hybrid that keeps its momentum
MOSAIC_COLOURS = {**FLOW_COLOURS, "kept": "#8c564b"}
MOSAIC_NAMES = {**FLOW_NAMES, "kept": "hybrid, momentum kept"}


def mosaic_examples(segments, foreground, labels, image_shape=(8, 8), n_rows: int = 3):
    """A few image mosaics, one row each, the foreground segment framed in red (chapter 4)."""
    segments = _np(segments)
    m = segments.shape[1]
    fig, axes = plt.subplots(
        n_rows, m, figsize=(FIGURE_WIDTH, FIGURE_WIDTH / m * 1.1 * n_rows), squeeze=False
    )
    for row in range(n_rows):
        for j in range(m):
            ax = axes[row, j]
            image = segments[row, j].reshape(image_shape)
            if image.ndim == 3:  # (channels, h, w) -> (h, w, channels)
                image = np.clip(image.transpose(1, 2, 0), 0, 1)
            ax.imshow(image, cmap="gray_r" if image.ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            is_fg = j == int(_np(foreground)[row])
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_color(TOPIC if is_fg else "0.85")
                spine.set_linewidth(3 if is_fg else 1)
        axes[row, 0].set_ylabel(f"label {int(_np(labels)[row])}")
    return finish_figure(fig)


def focus_curves(
    epochs,
    mean_a_z: Mapping[str, np.ndarray],
    title: str = "Attention on the foreground",
    *,
    band: bool = False,
    ax=None,
):
    """Mean a_z against epoch, one colour per method, for (seeds, epochs) curves per method
    (``mean_a_z[method]``; methods: the losses, "hybrid" and "kept", the hybrid that keeps its
    momentum).

    Two styles: one thin line per seed on a (0, 1) axis, in a figure of its own that is
    finished and returned (chapter 4, the default); or, with ``band``, the mean over the seeds
    as a line and their range as a band (chapter 6).  With ``ax`` the curves are drawn into
    that axis and its figure is returned unfinished (the caller adds to it and calls
    :func:`finish_figure`)."""
    if not isinstance(band, bool):
        raise TypeError(f"band must be a bool, got {type(band).__name__}")
    unknown = set(mean_a_z) - set(MOSAIC_COLOURS)
    if unknown:
        raise ValueError(f"mean_a_z's methods must be among {tuple(MOSAIC_COLOURS)}: {unknown}")
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 3.6))
    epochs = _np(epochs)
    for method, curves in mean_a_z.items():
        curves, colour = np.atleast_2d(_np(curves)), MOSAIC_COLOURS[method]
        if band:
            ax.plot(epochs, curves.mean(0), color=colour, label=MOSAIC_NAMES[method])
            ax.fill_between(epochs, curves.min(0), curves.max(0), color=colour, alpha=0.2, lw=0)
            continue
        for k, curve in enumerate(curves):
            label = MOSAIC_NAMES[method] if k == 0 else None
            ax.plot(epochs, curve, color=colour, lw=1.2, label=label)
    ax.set_xlabel("epoch")
    if band:
        ax.set_ylabel("mean $a_z$ (training)")
    else:
        ax.set_ylabel("mean attention on the foreground $a_z$")
        ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(frameon=False)
    return finish_figure(ax.figure) if own else ax.figure


def signature_heatmaps(
    histograms: Mapping[str, np.ndarray], s_labels: Mapping[str, str] | None = None
):
    """(a_z, s_y) histograms side by side, in percent, s_y upwards (chapter 4).
    ``histograms[name]`` is ``metrics.signature_histogram``'s (bins, bins) array."""
    names = list(histograms)
    fig, axes = _stacked(len(names), height=3.9, row=True)
    for ax, name in zip(axes[0], names):
        hist = _np(histograms[name])
        bins = hist.shape[0]
        ax.imshow(hist[::-1], cmap="coolwarm", vmin=0, vmax=100, extent=(0, 1, 0, 1))
        for i in range(bins):
            for j in range(bins):
                ax.text(
                    (j + 0.5) / bins,
                    (i + 0.5) / bins,
                    f"{hist[i, j]:.0f}",
                    ha="center",
                    va="center",
                    fontsize="small",
                )
        ax.set_xlabel("attention on the foreground $a_z$")
        ax.set_ylabel((s_labels or {}).get(name, "$s_y$"))
        ax.set_title(LOSS_LABELS.get(name, name))
    return finish_figure(fig)


def fixed_focus_training(
    epochs,
    loss: Mapping[str, Mapping[float, np.ndarray]],
    incentive: Mapping[str, Mapping[float, np.ndarray]],
):
    """The fixed-focus experiment (chapter 4): L(alpha) (top) and the incentive
    L(alpha) - L(alpha + 0.01) (bottom) against epoch, one column per loss, one line per alpha."""
    names = list(loss)
    fig, axes = _transposed_grid(2, len(names), sharex=True)
    cmap = plt.get_cmap("viridis")
    for col, name in enumerate(names):
        alphas = sorted(loss[name])
        for k, alpha in enumerate(alphas):
            colour = cmap(k / max(1, len(alphas) - 1))
            axes[0, col].plot(
                _np(epochs), _np(loss[name][alpha]), color=colour, label=f"α = {alpha:g}"
            )
            axes[1, col].plot(_np(epochs), _np(incentive[name][alpha]), color=colour)
        axes[0, col].set_title(LOSS_LABELS.get(name, name))
        for ax in axes[:, col]:
            ax.set_xlabel("epoch")
        axes[1, col].set_xscale("log")
    axes[0, 0].set_ylabel("loss $L(\\alpha)$")
    axes[1, 0].set_ylabel("$L(\\alpha) - L(\\alpha + 0.01)$")
    axes[0, 0].legend(frameon=False)
    return finish_figure(fig)


def fixed_focus_flow_time(
    times: Mapping[str, np.ndarray],
    loss: Mapping[str, Mapping[float, np.ndarray]],
    incentive: Mapping[str, Mapping[float, np.ndarray]],
    reference: tuple | None = None,
    reference_label: str = "official code",
):
    """The fixed-focus experiment on the flow-time axis (chapter 4): L(alpha) (top) and
    L(alpha) - L(alpha + 0.01) (bottom), one column per loss, one line per alpha.

    ``times[name]`` is that loss's flow time per record (epoch x batches x lr / (1 - momentum)),
    so runs at different learning rates share the axis.  ``reference``, optional, is a second
    ``(times, loss, incentive)`` of the same structure, drawn dashed in black on top."""
    names = list(loss)
    fig, axes = _transposed_grid(2, len(names))
    cmap = plt.get_cmap("viridis")
    for col, name in enumerate(names):
        alphas = sorted(loss[name])
        for k, alpha in enumerate(alphas):
            colour = cmap(k / max(1, len(alphas) - 1))
            t = _np(times[name])
            axes[0, col].plot(t, _np(loss[name][alpha]), color=colour, label=f"α = {alpha:g}")
            axes[1, col].plot(t, _np(incentive[name][alpha]), color=colour)
            if reference is not None and alpha in reference[1].get(name, {}):
                ref_t = _np(reference[0][name])
                label = reference_label if k == 0 and col == 0 else None
                axes[0, col].plot(ref_t, _np(reference[1][name][alpha]), "k--", lw=0.8, label=label)
                axes[1, col].plot(ref_t, _np(reference[2][name][alpha]), "k--", lw=0.8)
        axes[0, col].set_title(LOSS_LABELS.get(name, name))
        axes[1, col].set_xlabel("flow time $t$")
    axes[0, 0].set_ylabel("loss $L(\\alpha)$")
    axes[1, 0].set_ylabel("$L(\\alpha) - L(\\alpha + 0.01)$")
    axes[0, 0].legend(frameon=False)
    return finish_figure(fig)


def gate_toy(times, theta, gap):
    """Chapter 7, "a third corollary": the warm-up toy's logit and score gap against time (left)
    and ``Psi_1(theta)`` against ``gap^2 / 4`` (right; the law says a line of slope 1)."""
    from .law import attention_potential

    times, theta, gap = _np(times), _np(theta), _np(gap)
    fig, axes = _stacked(2)
    axes[0].plot(times, theta, label=r"logit $\theta$")
    axes[0].plot(times, gap, label=r"score gap $\Delta$")
    axes[0].axhline(0, color="0.7", lw=0.8)
    axes[0].set_xlabel("time")
    axes[0].legend(frameon=False)
    axes[0].set_title("falls while the gap is negative, then rises")
    psi = _np(attention_potential(theta, 1.0))
    axes[1].plot(gap**2 / 4, psi - psi[0], lw=4, alpha=0.4, label="flow")
    axes[1].plot(gap**2 / 4, gap**2 / 4 - gap[0] ** 2 / 4, "k--", label="law, slope 1")
    axes[1].set_xlabel(r"$\Delta^2 / 4$")
    axes[1].set_ylabel(r"$\Psi_1(\theta) - \Psi_1(\theta_0)$")
    axes[1].legend(frameon=False)
    return finish_figure(fig)


def joma_fit(steps, correlations, slopes, top_weight):
    """Chapter 7, "JoMA": against the SGD step, the normalised correlation of the logits with the
    official script's prediction, the least-squares slope of logits on prediction, and the mean
    largest attention weight (how sharp attention is)."""
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 3.6))
    steps = _np(steps)
    ax.plot(steps, _np(correlations), label="normalised correlation")
    ax.plot(steps, _np(slopes), label="least-squares slope")
    ax.plot(steps, _np(top_weight), ls="--", label="largest attention weight")
    ax.axhline(1, color="0.7", lw=0.8)
    ax.set_xlabel("SGD step")
    ax.set_ylim(0, 1.05)
    ax.legend(frameon=False)
    ax.set_title("JoMA's prediction keeps its direction, not its scale")
    return finish_figure(fig)


# ------------------------------------------------------------ chapters 4 and 6: results tables

NATURAL_RULE = {
    "soft": "average_input",
    "hard": "average_output",
    "lvml": "average_output",
    "hybrid": "average_output",
    "kept": "average_output",
}
METRICS_HEADER = (
    "focus acc",
    "mean a_z",
    "acc argmax",
    "acc avg-out",
    "acc avg-in",
    "FTPT",
    "FFPT",
)


class MetricsTable(NamedTuple):
    """What :func:`metrics_table` returns: ``rows[name]`` the seven means (floats, in the order
    of ``METRICS_HEADER``) and ``markdown`` the table as Markdown.  A notebook cell that ends
    with it displays the table (``_repr_markdown_``)."""

    rows: dict
    markdown: str

    def _repr_markdown_(self) -> str:
        return self.markdown


def metrics_table(
    results: Mapping[str, Sequence],
    rules: Mapping[str, str] | None = None,
    label: str = "loss",
    a_z_digits: int = 3,
) -> MetricsTable:
    """The results table of chapters 4 and 6: for each method, the mean over its seeds of the
    focus accuracy, the mean attention on the foreground a_z, the accuracy of the three
    prediction rules, and FTPT and FFPT under the method's natural rule (percentages).

    Parameters
    ----------
    results
        ``results[name]`` is a non-empty sequence of ``metrics.MosaicEvaluation`` (one per seed).
    rules
        The natural rule of each name (default ``NATURAL_RULE``: average input for soft
        attention, average output for the others).
    label, a_z_digits
        The first column's header; the digits shown for mean a_z (percentages get one).

    Returns
    -------
    MetricsTable
        ``rows`` (floats, for the notebook's assertions) and ``markdown``.
    """
    if not isinstance(results, Mapping) or not results:
        raise TypeError("results must be a non-empty mapping of name -> list of evaluations")
    rules = dict(NATURAL_RULE if rules is None else rules)
    if not isinstance(a_z_digits, int) or a_z_digits < 0:
        raise ValueError(f"a_z_digits must be a non-negative int, got {a_z_digits!r}")
    rows = {}
    for name, evals in results.items():
        if name not in rules:
            raise ValueError(f"rules has no natural rule for {name!r} (results' key)")
        if not isinstance(evals, Sequence) or not evals:
            raise ValueError(f"results[{name!r}] must be a non-empty list of evaluations")
        rule = rules[name]

        def mean(get):
            return float(np.mean([float(get(e)) for e in evals]))

        rows[name] = [
            mean(lambda e: e.focus_accuracy),
            mean(lambda e: e.mean_a_z),
            *[
                mean(lambda e, r=r: e.accuracy[r])
                for r in ("argmax_segment", "average_output", "average_input")
            ],
            mean(lambda e: e.table[rule]["FTPT"]),
            mean(lambda e: e.table[rule]["FFPT"]),
        ]
    header = (label, *METRICS_HEADER)
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for name, row in rows.items():
        cells = [f"{v:.{a_z_digits}f}" if k == 1 else f"{v:.1f}" for k, v in enumerate(row)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return MetricsTable(rows, "\n".join(lines))
