"""Gradient flow of the simple focus/classifier model in closed form (chapter 5).

The setting (chapter 5, section 1): C classes, m segments, the foreground segment is the class
vector e_y, every background segment is zero, a linear focus ``s_j = u . x_j`` and a linear
classifier ``g(x) = W x``, both started at zero and trained by gradient flow on the population
loss.  By symmetry the whole state is two scalars: the classifier margin ``mu`` and the focus
logit ``nu``, with

    alpha = e^nu / (e^nu + m - 1)     (attention on the foreground)
    beta  = e^mu / (e^mu + C - 1)     (classifier probability of the true class)

This module gives the right-hand sides of the three ODEs (soft, hard, LVML), an adaptive stiff
solver for them (and the soft-then-hard hybrid of chapter 6), and the course's closed forms:
the fixed-focus margins, the orbits (first integrals) and the late-time focus errors.
``attention_potential`` is the integral that links the focus logit to the orbits; chapter 7
builds its conservation law on it.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from scipy.integrate import solve_ivp

from ._validate import check_int, check_positive

METHODS = ("soft", "hard", "lvml")
SOLVE_METHODS = METHODS + ("hybrid",)

# Tolerances of solve_flow.  Tested (tests/test_flow.py): against a solve 100x tighter the
# paths differ by < 1e-6 in mu and nu up to t = 4e5 at m = 100, C = 1000 (the official code's
# setting), and the first integrals hold to a relative 1e-7.
RTOL = 1e-10
ATOL = 1e-12


def _check_method(method, allowed=METHODS) -> str:
    if not isinstance(method, str) or method not in allowed:
        raise ValueError(f"method must be one of {allowed}, got {method!r}")
    return method


def _check_sizes(m, C) -> tuple[int, int]:
    m = check_int(m, "m", minimum=2)
    C = check_int(C, "C", minimum=2)
    return m, C


def _check_times(t, name: str = "t") -> np.ndarray:
    try:
        times = np.asarray(t, dtype=float)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of times, got {type(t).__name__}") from error
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of times, got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{name} must hold finite times")
    if times[0] < 0:
        raise ValueError(f"{name} must be >= 0, got a first time of {times[0]}")
    if np.any(np.diff(times) <= 0):
        raise ValueError(f"{name} must be strictly increasing")
    return times


def attention_potential(theta, n_others):
    """theta + (e^theta - 1)/n_others: the integral of d theta' / (1 - a(theta')) from 0 to theta.

    Here ``a(theta) = e^theta / (e^theta + n_others)`` is the softmax weight of one logit theta
    against ``n_others`` logits at zero.  With ``n_others = m - 1`` this is the potential
    ``Phi(nu) = (e^nu - 1 + (m - 1) nu)/(m - 1)`` of the chapter-5 orbits (see ``orbit``);
    chapter 7 builds its conservation law on it.  Accepts a float, a NumPy array or
    a torch tensor and returns the same type.

    >>> attention_potential(0.0, 4)
    0.0
    >>> round(attention_potential(1.0, 1), 6)  # 1 + (e - 1)
    2.718282
    """
    n_others = check_positive(n_others, "n_others")
    if isinstance(theta, torch.Tensor):
        return theta + torch.expm1(theta) / n_others
    if isinstance(theta, bool) or not isinstance(theta, (numbers.Real, np.ndarray, list, tuple)):
        raise TypeError(
            f"theta must be a float, a NumPy array or a torch tensor, got {type(theta).__name__}"
        )
    if isinstance(theta, numbers.Real):
        return float(theta + np.expm1(theta) / n_others)
    theta = np.asarray(theta, dtype=float)
    return theta + np.expm1(theta) / n_others


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def _sigmoid(x):
    return np.exp(_log_sigmoid(x))


def flow_rhs(method, m, C):
    """Right-hand side ``f(t, y) -> dy/dt`` of the chapter-5 ODE in ``y = (mu, nu)``.

    With alpha = e^nu/(e^nu + m - 1), beta = e^mu/(e^mu + C - 1) and A = C - 1 (chapter 5,
    section 2):

    soft:  dmu/dt = alpha / (e^{alpha mu} + A),
           dnu/dt = A alpha (1 - alpha) mu / (C (e^{alpha mu} + A))
    hard:  dmu/dt = alpha / (e^mu + A),
           dnu/dt = alpha (1 - alpha) log(C beta) / C
    lvml:  dmu/dt = alpha beta / (Z (e^mu + A)),
           dnu/dt = alpha (1 - alpha) (beta - 1/C) / (C Z),   Z = alpha beta + (1 - alpha)/C

    These match the official code's simulator.  They are written with logistic functions so that
    no exponential overflows at large mu or nu.  ``y`` may be shape (2,) or (2, k) (vectorised).

    >>> f = flow_rhs("hard", 5, 3)
    >>> [round(float(v), 6) for v in f(0.0, [0.0, 0.0])]  # alpha = 1/5, dmu/dt = alpha/C
    [0.066667, 0.0]
    """
    method = _check_method(method)
    m, C = _check_sizes(m, C)
    log_bg_focus = np.log(m - 1)  # alpha = sigmoid(nu - log(m - 1))
    log_bg_class = np.log(C - 1)  # beta = sigmoid(mu - log(C - 1))
    A = C - 1

    def rhs(t, y):
        mu, nu = np.asarray(y, dtype=float)
        alpha = _sigmoid(nu - log_bg_focus)
        one_minus_alpha = _sigmoid(log_bg_focus - nu)
        if method == "soft":
            one_minus_p = _sigmoid(log_bg_class - alpha * mu)  # A / (e^{alpha mu} + A)
            dmu = alpha * one_minus_p / A
            dnu = alpha * one_minus_alpha * mu * one_minus_p / C
        elif method == "hard":
            one_minus_beta = _sigmoid(log_bg_class - mu)
            log_beta = _log_sigmoid(mu - log_bg_class)
            dmu = alpha * one_minus_beta / A
            dnu = alpha * one_minus_alpha * (np.log(C) + log_beta) / C
        else:
            beta = _sigmoid(mu - log_bg_class)
            one_minus_beta = _sigmoid(log_bg_class - mu)
            Z = alpha * beta + one_minus_alpha / C
            dmu = alpha * beta * one_minus_beta / (A * Z)
            dnu = alpha * one_minus_alpha * (beta - 1.0 / C) / (C * Z)
        return np.stack([dmu, dnu])

    return rhs


def _integrate(method, m, C, t0, y0, times, rtol, atol):
    """Solve one method's ODE from (t0, y0) and return its state at ``times`` (all > t0)."""
    if times.size == 0:
        return np.empty((2, 0))
    sol = solve_ivp(
        flow_rhs(method, m, C),
        (t0, float(times[-1])),
        y0,
        method="LSODA",
        t_eval=times,
        rtol=rtol,
        atol=atol,
    )
    if not sol.success:  # pragma: no cover - LSODA has not failed on this system
        raise RuntimeError(f"the {method} flow solver failed: {sol.message}")
    return sol.y


def solve_flow(method, m, C, t, switch_time=None, *, rtol=RTOL, atol=ATOL):
    """Solve the chapter-5 gradient flow from mu = nu = 0; return ``(mu, nu)`` at the times ``t``.

    ``method`` is "soft", "hard", "lvml" or "hybrid".  The hybrid (chapter 6) follows the soft
    flow until ``switch_time`` and then the hard flow from the state it reached, so the path is
    continuous at the switch; ``switch_time=0`` is pure hard, a switch at or after the last time
    is pure soft.  ``switch_time`` is required for the hybrid and refused otherwise.

    ``t`` is a strictly increasing 1-D array of times >= 0.  The solver is SciPy's LSODA
    (adaptive, switches to a stiff method when needed) at ``rtol=1e-10, atol=1e-12``; at these
    settings the path is accurate to 1e-6 in mu and nu up to t = 4e5 for m = 100, C = 1000
    (tests/test_flow.py).  Returns two arrays of the shape of ``t``.

    >>> mu, nu = solve_flow("soft", 5, 3, [0.0, 10.0])
    >>> round(float(mu[1]), 2), round(float(nu[1]), 2)
    (0.67, 0.12)
    """
    method = _check_method(method, SOLVE_METHODS)
    m, C = _check_sizes(m, C)
    times = _check_times(t)
    rtol = check_positive(rtol, "rtol")
    atol = check_positive(atol, "atol")
    if method == "hybrid":
        if switch_time is None:
            raise ValueError("switch_time is required for method 'hybrid' (soft until then)")
        switch_time = check_positive(switch_time, "switch_time", allow_zero=True)
    elif switch_time is not None:
        raise ValueError(f"switch_time is only used by method 'hybrid', got it with {method!r}")

    out = np.zeros((2, times.size))
    at_start = times == 0.0  # the initial state, mu = nu = 0
    if method != "hybrid":
        out[:, ~at_start] = _integrate(method, m, C, 0.0, [0.0, 0.0], times[~at_start], rtol, atol)
        return out[0], out[1]

    soft_part = (times <= switch_time) & ~at_start
    hard_part = times > switch_time
    if switch_time > 0 and hard_part.any():
        # one soft solve gives the soft times and the state at the switch
        soft_times = np.append(times[soft_part], switch_time)
        if soft_times.size > 1 and soft_times[-2] == switch_time:
            soft_times = soft_times[:-1]
        soft_path = _integrate("soft", m, C, 0.0, [0.0, 0.0], soft_times, rtol, atol)
        out[:, soft_part] = soft_path[:, : int(soft_part.sum())]
        y_switch = soft_path[:, -1]
    else:
        out[:, soft_part] = _integrate(
            "soft", m, C, 0.0, [0.0, 0.0], times[soft_part], rtol, atol
        )
        y_switch = np.zeros(2)
    if hard_part.any():
        out[:, hard_part] = _integrate(
            "hard", m, C, switch_time, y_switch, times[hard_part], rtol, atol
        )
    return out[0], out[1]
