"""Interactive explorers (ipywidgets) built on ``course_lib.plotting`` (chapter 1: the attention
of a sentence during training; chapter 2: the SEN curves for a chosen ``m`` and query; chapter 5:
the gradient flow).

Each explorer has a static counterpart in its chapter, so the website, which has no kernel, says
the same thing; open the notebook in Jupyter or Colab to move the sliders.
"""

from __future__ import annotations

from typing import Mapping

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch

from . import flow, plotting
from .engine import History
from .topic import sentence_attention_at
from .training import sen_curve_run


def attention_explorer(
    histories: Mapping[str, History], words, sentence: torch.Tensor, is_topic: torch.Tensor
):
    """Chapter 1: pick a classifier and a training step; see one sentence's attention then.

    ``histories[name]`` must have been recorded with ``record_all_scores=True``.
    Returns the ipywidgets ``interactive`` object (display it as a cell's last value).
    """
    for name, history in histories.items():
        if history.stacked:
            raise ValueError(f"histories[{name!r}] is stacked: give the history of one model each")
        if "scores" not in history.records:
            raise ValueError(
                f"histories[{name!r}] has no score snapshots: train with record_all_scores=True"
            )
    names = list(histories)
    steps = histories[names[0]].steps
    sentence_words = [words[int(u)] for u in sentence]

    def show(classifier: str, step_index: int):
        history = histories[classifier]
        step_index = min(step_index, len(history.steps) - 1)
        attention = sentence_attention_at(history.scores[step_index], sentence)
        fig, axes = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw={"width_ratios": [2, 1]})
        plotting.sentence_attention(
            sentence_words,
            attention,
            is_topic,
            ax=axes[0],
            title=f"step {int(history.steps[step_index])}",
        )
        axes[1].plot(history.steps, history.loss, color=plotting.CLASSIFIER_COLOURS.get(classifier))
        axes[1].axvline(int(history.steps[step_index]), color="k", lw=0.8)
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("training loss")
        fig.tight_layout()
        plt.show()

    return W.interactive(
        show,
        classifier=W.Dropdown(options=names, value=names[0], description="classifier"),
        step_index=W.IntSlider(
            min=0, max=len(steps) - 1, step=1, value=len(steps) // 2, description="record #"
        ),
    )


# ---- chapter 2: the persisting identity


def sen_explorer(
    steps: int = 600, lr: float = 0.15, n_sentences: int = 200, n_background: int = 1000
):
    """Chapter 2: choose ``m`` (background words per sentence) and the query's std, train a small
    model (``training.sen_curve_run``, a second or two on a CPU) and see the SEN curves of all its
    topic words fall on the universal curve ``sqrt(2(s + (e^s - 1)/m))`` (eq. (2.3)), which depends
    on ``m`` only.  Returns the ipywidgets ``interactive`` object (display it as a cell's last
    value).
    """
    cache: dict = {}

    def show(m: int, query_std: float):
        key = (m, round(query_std, 4))
        if key not in cache:
            cache[key] = sen_curve_run(
                m,
                query_std,
                steps=steps,
                lr=lr,
                n_sentences=n_sentences,
                n_background=n_background,
                record_every=10,
            )
        scores, scaled = cache[key]
        fig, ax = plt.subplots(figsize=(6, 4))
        plotting.sen_collapse(
            [(m, query_std, scores, scaled)],
            ax=ax,
            title=f"m = {m}, query std {query_std:.2f}: ||q|| = scaled axis",
        )
        fig.tight_layout()
        plt.show()

    return W.interactive(
        show,
        m=W.IntSlider(min=2, max=100, step=1, value=20, description="m", continuous_update=False),
        query_std=W.FloatLogSlider(
            min=-1,
            max=0.3,
            step=0.05,
            value=0.3,
            base=10,
            description="query std",
            continuous_update=False,
        ),
    )


def flow_explorer():
    """Chapter 5: choose m, C, the methods and the horizon; see mu(t), nu(t) and alpha(t).

    Each redraw solves the two-scalar ODEs with ``flow.solve_flow`` (a few hundredths of a second
    per method).  Returns the ipywidgets ``interactive`` object.
    """

    def show(
        m: int, C: int, log10_horizon: float, soft: bool, hard: bool, lvml: bool, log_time: bool
    ):
        t = np.linspace(0.0, 10**log10_horizon, 400)
        if log_time:
            t = np.concatenate([[0.0], np.geomspace(1e-2, 10**log10_horizon, 399)])
        chosen = [k for k, on in (("soft", soft), ("hard", hard), ("lvml", lvml)) if on]
        paths = {k: flow.solve_flow(k, t, m=m, C=C) for k in chosen}
        plotting.flow_trajectories(t, paths, m, C, log_time=log_time)
        plt.show()

    return W.interactive(
        show,
        m=W.IntSlider(value=5, min=2, max=200, description="m", continuous_update=False),
        C=W.IntSlider(value=3, min=2, max=1000, description="C", continuous_update=False),
        log10_horizon=W.FloatSlider(
            value=3.0,
            min=1.0,
            max=6.0,
            step=0.1,
            description="log10 t_max",
            continuous_update=False,
        ),
        soft=W.Checkbox(value=True, description="soft"),
        hard=W.Checkbox(value=True, description="hard"),
        lvml=W.Checkbox(value=True, description="LVML"),
        log_time=W.Checkbox(value=False, description="log time axis"),
    )
