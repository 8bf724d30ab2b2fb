"""Pure plotting functions: each takes numbers and returns a matplotlib Figure, never shows it.

Figures use a white background so they read well in the website's light and dark themes.
Colours are fixed per role across the whole course: topic words in ``TOPIC``, background words
in ``BACKGROUND``, and the three classifiers of chapter 1 in ``CLASSIFIER_COLOURS``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.rcParams.update(
    {
        "figure.facecolor": "white",
        "axes.facecolor": "white",
        "savefig.facecolor": "white",
        "figure.dpi": 100,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

TOPIC = "#c0392b"
BACKGROUND = "#7f8c8d"
CLASSIFIER_COLOURS = {"fixed": "#1f77b4", "linear": "#ff7f0e", "mlp": "#2ca02c"}
CLASSIFIER_NAMES = {"fixed": "Attn-FC (fixed)", "linear": "Attn-TC (linear)", "mlp": "Attn-TL (two-layer)"}


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def loss_curves(steps, losses: Mapping[str, Sequence[float]], title: str = "Training loss"):
    """Training loss against step, one line per named run (chapter 1)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, loss in losses.items():
        ax.plot(_np(steps), _np(loss), label=CLASSIFIER_NAMES.get(name, name), color=CLASSIFIER_COLOURS.get(name))
    ax.axhline(np.log(4), color="0.7", lw=0.8, ls=":")
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("cross-entropy")
    ax.set_title(title)
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def attention_curves(steps, on_topic: Mapping[str, Sequence[float]], m: int, title: str = "Attention on the topic word"):
    """Mean attention on the topic word and on one background word against step (chapter 1).

    The background word's share is ``(1 - a_topic) / m``; the dotted line is the uniform ``1/(m+1)``.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.4), sharex=True)
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
    axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def score_norm_histograms(results: Mapping[str, tuple], bins: int = 30):
    """Histograms of final scores and of ``||q|| ||w_u||`` for topic vs background words.

    ``results[name] = (scores, scaled_norms, is_topic)``, three ``(vocab,)`` arrays (chapter 1).
    """
    fig, axes = plt.subplots(2, len(results), figsize=(3.4 * len(results), 5.2), squeeze=False)
    for col, (name, (scores, norms, is_topic)) in enumerate(results.items()):
        scores, norms, is_topic = _np(scores), _np(norms), _np(is_topic).astype(bool)
        for row, (values, label) in enumerate(((scores, "score $s_u$"), (norms, r"$\|q\|\,\|w_u\|$"))):
            ax = axes[row, col]
            ax.hist(values[~is_topic], bins=bins, color=BACKGROUND, alpha=0.8, label="background", density=True)
            ax.hist(values[is_topic], bins=max(5, bins // 3), color=TOPIC, alpha=0.8, label="topic", density=True)
            ax.set_xlabel(label)
            ax.set_yscale("log")
            if row == 0:
                ax.set_title(CLASSIFIER_NAMES.get(name, name))
            if col == 0:
                ax.set_ylabel("density (log)")
    axes[0, 0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def sentence_attention(words: Sequence[str], attention: Sequence[float], is_topic: Sequence[bool], ax=None, title: str = ""):
    """Bar chart of one sentence's attention over its words, the topic word in red (chapter 1).

    Returns the Figure (a new one unless ``ax`` is given)."""
    attention, is_topic = _np(attention), _np(is_topic).astype(bool)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 2.6))
    else:
        fig = ax.figure
    colours = [TOPIC if t else BACKGROUND for t in is_topic]
    ax.bar(np.arange(len(words)), attention, color=colours)
    ax.axhline(1 / len(words), color="0.6", lw=0.8, ls=":")
    ax.set_xticks(np.arange(len(words)))
    ax.set_xticklabels([w[:8] for w in words], rotation=90, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("attention")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def sentence_attention_grid(words, attention_by_run: Mapping[str, Mapping[int, Sequence[float]]], is_topic):
    """Small multiples: one sentence's attention for several runs (rows) at several steps
    (columns); ``attention_by_run[run][step]`` is a ``(length,)`` array (chapter 1)."""
    runs = list(attention_by_run)
    steps = list(next(iter(attention_by_run.values())))
    fig, axes = plt.subplots(len(runs), len(steps), figsize=(3.2 * len(steps), 2.3 * len(runs)), squeeze=False, sharey=True)
    for i, run in enumerate(runs):
        for j, step in enumerate(steps):
            ax = axes[i, j]
            sentence_attention(words, attention_by_run[run][step], is_topic, ax=ax)
            ax.set_title(f"{CLASSIFIER_NAMES.get(run, run)}, step {step}", fontsize=9)
            if i < len(runs) - 1:
                ax.set_xticklabels([])
            if j > 0:
                ax.set_ylabel("")
    fig.tight_layout()
    return fig
