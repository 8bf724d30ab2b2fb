"""Chapter 5 (gradient flow): the fixed-focus closed forms its figures draw, and their gap from
SGD with momentum on the time axis ``flow.sgd_flow_time`` (section "Fixed focus: the real
classifier").

* :func:`fixed_focus_closed_form`: the reduced loss and the focus incentive along the
  fixed-focus margin ``mu(t)``, at a focus ``alpha`` held fixed;
* :func:`fixed_focus_theory`: the same for every loss and several ``alpha``, in the nesting
  ``plotting.fixed_focus_curves`` takes;
* :func:`gap_to_closed_form`: the largest relative gap of a measured incentive from the closed
  form.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import flow
from .._validate import check_int, check_positive
from ..law import LOSS_NAMES

__all__ = ["fixed_focus_closed_form", "fixed_focus_theory", "gap_to_closed_form"]


def _check_method(method: str) -> str:
    if method not in LOSS_NAMES:
        raise ValueError(f"method must be one of {LOSS_NAMES}, got {method!r}")
    return method


def fixed_focus_closed_form(method: str, alpha: float, t, *, C: int) -> tuple:
    """``(loss, incentive)`` at flow times ``t`` (chapter 5, eqs. of the fixed-focus section):
    the reduced loss ``flow.reduced_loss`` and the focus incentive ``flow.focus_incentive`` at
    the focus ``alpha`` held fixed and the margin ``mu(t) = flow.fixed_focus_margin``.
    ``t``: a number or an array ``(T,)``; both results have its shape.

    >>> loss, incentive = fixed_focus_closed_form("hard", 1.0, [0.0, 1e6], C=20)
    >>> round(float(loss[0]), 4), round(float(incentive[-1]), 2)  # ln 20, then -> ln 20
    (2.9957, 3.0)
    """
    _check_method(method)
    alpha = check_positive(alpha, "alpha")
    if alpha > 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    check_int(C, "C", minimum=2)
    mu = flow.fixed_focus_margin(method, alpha, t, C=C)
    return flow.reduced_loss(method, alpha, mu, C=C), flow.focus_incentive(method, alpha, mu, C=C)


def fixed_focus_theory(t, alphas: Sequence[float], *, C: int) -> dict:
    """``{method: {alpha: (loss (T,), incentive (T,))}}`` of :func:`fixed_focus_closed_form`
    for every loss of ``law.LOSS_NAMES`` and each focus in ``alphas`` at the times ``t``
    ``(T,)`` (chapter 5's fixed-focus figures)."""
    alphas = list(alphas)
    if not alphas:
        raise ValueError("alphas must name at least one focus quality")
    return {
        method: {alpha: fixed_focus_closed_form(method, alpha, t, C=C) for alpha in alphas}
        for method in LOSS_NAMES
    }


def gap_to_closed_form(method: str, alpha: float, times, incentive, *, C: int, keep=None) -> float:
    """The largest ``|measured / closed form - 1|`` of a fixed-focus run's focus incentive
    against :func:`fixed_focus_closed_form` (chapter 5, "Fixed focus: the real classifier").

    Parameters
    ----------
    method, alpha
        The run's loss (one of ``law.LOSS_NAMES``) and its fixed focus quality.
    times
        ``(k,)``: the flow times of the run's records (`flow.sgd_flow_time` for SGD).
    incentive
        ``(k,)``: the measured focus incentive at those times.
    C
        The number of classes.
    keep
        ``(k,)`` bool: the records compared (e.g. once the momentum has built up);
        ``None``: all of them.

    Returns
    -------
    float: the largest relative gap over the kept records.
    """
    times, incentive = np.asarray(times, dtype=float), np.asarray(incentive, dtype=float)
    if times.ndim != 1 or incentive.shape != times.shape:
        raise ValueError(
            f"times and incentive must be 1-d of one shape, got {times.shape}, {incentive.shape}"
        )
    keep = np.ones(times.shape, dtype=bool) if keep is None else np.asarray(keep)
    if keep.dtype != bool or keep.shape != times.shape or not keep.any():
        raise ValueError(f"keep must be a bool mask of shape {times.shape} with a True entry")
    exact = fixed_focus_closed_form(method, alpha, times, C=C)[1]
    return float(np.max(np.abs(incentive[keep] / exact[keep] - 1)))
