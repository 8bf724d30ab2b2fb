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
``alpha`` and ``beta`` are the weight ``a`` of ``law.attention_weight`` (one logit against
``m - 1`` or ``C - 1`` at zero); ``flow_rhs`` writes them as logistic functions in log space
without argument checks, since the solver calls it thousands of times.  The potential that links
the focus logit to the orbits is ``law.attention_potential``, inverted by
``law.inverse_attention_potential``; the soft orbit is chapter 7's
``conservation.soft_orbit_strength``.  Functions of numbers follow the kind rule of
``course_lib.law`` (float, array or tensor in, the same kind out).

One argument order for every public function: the method (the loss) first, then the state or
time it is evaluated at (``alpha``, ``mu``, ``nu``, ``t``), then the sizes ``m`` and ``C`` as
keyword-only arguments, then settings (``switch_time``, ``step``, tolerances), e.g.
``solve_flow("soft", t, m=5, C=3)`` and ``fixed_focus_margin("hard", alpha, t, C=3)``.
``flow_descent`` follows the same order (``gradient_descent_path(method, n_steps, m=, C=,
lr=)``).  Times are flow times (``switch_time``); steps are counted in ``switch_step``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import solve_ivp
from scipy.special import spence

from ._validate import check_fraction, check_int, check_positive
from .conservation import soft_orbit_strength
from .law import (
    LOSS_NAMES,
    METHODS,
    attention_potential,
    inverse_attention_potential,
    real_values,
    same_kind,
    solve_exp_plus_linear,
)

# Tolerances of solve_flow.  Tested (tests/test_flow.py): against a solve 100x tighter the
# paths differ by < 1e-6 in mu and nu up to t = 4e5 at m = 100, C = 1000 (the official code's
# setting), and the first integrals hold to a relative 1e-7.
RTOL = 1e-10
ATOL = 1e-12


def _check_method(method, allowed=LOSS_NAMES) -> str:
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


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def _sigmoid(x):
    return np.exp(_log_sigmoid(x))


def flow_rhs(method, *, m, C):
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

    >>> f = flow_rhs("hard", m=5, C=3)
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


def _integrate(method, t0, y0, times, *, m, C, rtol, atol):
    """Solve one method's ODE from (t0, y0) and return its state at ``times`` (all > t0)."""
    if times.size == 0:
        return np.empty((2, 0))
    sol = solve_ivp(
        flow_rhs(method, m=m, C=C),
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


def solve_flow(method, t, *, m, C, switch_time=None, rtol=RTOL, atol=ATOL):
    """Solve the chapter-5 gradient flow from mu = nu = 0; return ``(mu, nu)`` at the times ``t``.

    ``method`` is "soft", "hard", "lvml" or "hybrid".  The hybrid (chapter 6) follows the soft
    flow until ``switch_time`` and then the hard flow from the state it reached, so the path is
    continuous at the switch; ``switch_time=0`` is pure hard, a switch at or after the last time
    is pure soft.  ``switch_time`` is required for the hybrid and refused otherwise.

    ``t`` is a strictly increasing 1-D array of times >= 0.  The solver is SciPy's LSODA
    (adaptive, switches to a stiff method when needed) at ``rtol=1e-10, atol=1e-12``; at these
    settings the path is accurate to 1e-6 in mu and nu up to t = 4e5 for m = 100, C = 1000
    (tests/test_flow.py).

    Parameters
    ----------
    method
        "soft", "hard", "lvml" or "hybrid".
    t
        Strictly increasing 1-D array of times >= 0.
    m, C
        Number of segments (>= 2) and of classes (>= 2), keyword-only.
    switch_time
        The hybrid's switch from soft to hard, in flow time (required for "hybrid", refused
        otherwise).
    rtol, atol
        The solver's tolerances.

    Returns
    -------
    mu, nu
        The classifier margin and the focus logit at the times ``t`` (arrays of its shape).

    >>> mu, nu = solve_flow("soft", [0.0, 10.0], m=5, C=3)
    >>> round(float(mu[1]), 2), round(float(nu[1]), 2)
    (0.67, 0.12)
    """
    method = _check_method(method, METHODS)
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
        out[:, ~at_start] = _integrate(
            method, 0.0, [0.0, 0.0], times[~at_start], m=m, C=C, rtol=rtol, atol=atol
        )
        return out[0], out[1]

    soft_part = (times <= switch_time) & ~at_start
    hard_part = times > switch_time
    if switch_time > 0 and hard_part.any():
        # one soft solve gives the soft times and the state at the switch
        soft_times = np.append(times[soft_part], switch_time)
        if soft_times.size > 1 and soft_times[-2] == switch_time:
            soft_times = soft_times[:-1]
        soft_path = _integrate("soft", 0.0, [0.0, 0.0], soft_times, m=m, C=C, rtol=rtol, atol=atol)
        out[:, soft_part] = soft_path[:, : int(soft_part.sum())]
        y_switch = soft_path[:, -1]
    else:
        out[:, soft_part] = _integrate(
            "soft", 0.0, [0.0, 0.0], times[soft_part], m=m, C=C, rtol=rtol, atol=atol
        )
        y_switch = np.zeros(2)
    if hard_part.any():
        out[:, hard_part] = _integrate(
            "hard", switch_time, y_switch, times[hard_part], m=m, C=C, rtol=rtol, atol=atol
        )
    return out[0], out[1]


# ---------------------------------------------------------------- the reduced losses (section 1)


def _as_float_array(value, name: str) -> np.ndarray:
    """Read ``value`` by the kind rule (``law.real_values``) and return it as a float64 NumPy
    array for the computation; the caller gives the result its kind with ``_same_kind``."""
    value = real_values(value, name)
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    values = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite")
    return values


def _check_alpha(alpha, name: str = "alpha") -> np.ndarray:
    values = _as_float_array(alpha, name)
    if np.any(values <= 0) or np.any(values > 1):
        raise ValueError(f"{name} must lie in (0, 1], got {alpha!r}")
    return values


def _same_kind(result, *arguments):
    """``result`` (computed in NumPy) in the kind the rule of ``course_lib.law`` gives the
    original ``arguments``."""
    return same_kind(result, *(real_values(x, "argument") for x in arguments))


def reduced_soft_loss(alpha, mu, *, C):
    """Soft-attention population loss in the reduced model: log(1 + (C - 1) e^{-alpha mu}).

    The classifier sees the blend ``alpha e_y`` (backgrounds are zero), whose true-class margin
    is ``alpha mu`` (chapter 5, section 1).

    >>> round(reduced_soft_loss(1.0, 0.0, C=3), 6)  # log C at the start
    1.098612
    """
    raw = (alpha, mu)
    C = check_int(C, "C", minimum=2)
    alpha = _check_alpha(alpha)
    mu = _as_float_array(mu, "mu")
    return _same_kind(np.logaddexp(0.0, np.log(C - 1) - alpha * mu), *raw)


def reduced_loss(method, alpha, mu, *, C):
    """The population loss of the reduced model at focus ``alpha`` and margin ``mu`` (chapter 5).

    soft: log(1 + (C-1) e^{-alpha mu});  hard: -alpha log beta + (1 - alpha) log C;
    lvml: -log(alpha beta + (1 - alpha)/C), with beta = e^mu/(e^mu + C - 1).
    """
    raw = (alpha, mu)
    method = _check_method(method)
    if method == "soft":
        return reduced_soft_loss(alpha, mu, C=C)
    C = check_int(C, "C", minimum=2)
    alpha = _check_alpha(alpha)
    mu = _as_float_array(mu, "mu")
    log_beta = _log_sigmoid(mu - np.log(C - 1))
    if method == "hard":
        loss = -alpha * log_beta + (1 - alpha) * np.log(C)
    else:
        with np.errstate(divide="ignore"):  # alpha = 1: the background term is log 0
            loss = -np.logaddexp(np.log(alpha) + log_beta, np.log1p(-alpha) - np.log(C))
    return _same_kind(loss, *raw)


def focus_incentive(method, alpha, mu, *, C):
    """-dL/dalpha of the reduced loss at fixed classifier margin ``mu`` (chapter 5, section 3).

    soft: (C - 1) mu / (e^{alpha mu} + C - 1);  hard: log(C beta);
    lvml: (beta - 1/C) / (alpha beta + (1 - alpha)/C).
    The focus logit moves at ``dnu/dt = alpha (1 - alpha) focus_incentive / C``.

    >>> round(focus_incentive("hard", 0.5, 50.0, C=3), 6)  # -> log C once the classifier is sure
    1.098612
    """
    raw = (alpha, mu)
    method = _check_method(method)
    C = check_int(C, "C", minimum=2)
    alpha = _check_alpha(alpha)
    mu = _as_float_array(mu, "mu")
    log_bg = np.log(C - 1)
    if method == "soft":
        value = mu * _sigmoid(log_bg - alpha * mu)  # (C - 1) mu / (e^{alpha mu} + C - 1)
    elif method == "hard":
        value = np.log(C) + _log_sigmoid(mu - log_bg)
    else:
        beta = _sigmoid(mu - log_bg)
        value = (beta - 1.0 / C) / (alpha * beta + (1 - alpha) / C)
    return _same_kind(value, *raw)


# ---------------------------------------------------------------- focus held fixed (section 3)


def _lvml_fixed_focus_time(mu, alpha, C):
    """alpha t(mu): the LVML fixed-focus time at which the margin reaches mu, times alpha."""
    A = C - 1.0
    return alpha * (np.expm1(mu) + A * mu) + (1 - alpha) / C * (
        np.expm1(mu) + 2 * A * mu - A**2 * np.expm1(-mu)
    )


def fixed_focus_margin(method, alpha, t, *, C):
    """Classifier margin mu(t) from mu(0) = 0 with the focus frozen at ``alpha`` (chapter 5, §3).

    hard:  e^mu + (C - 1) mu = alpha t + 1                  (Lambert W: ``solve_exp_plus_linear``)
    soft:  e^{alpha mu} + (C - 1) alpha mu = alpha^2 t + 1  (the same with alpha mu, time alpha^2 t)
    lvml:  alpha t = alpha (e^mu - 1 + (C-1) mu)
                     + ((1 - alpha)/C)(e^mu - 1 + 2(C-1) mu + (C-1)^2 (1 - e^{-mu}))
           which is increasing in mu and is inverted numerically (bisection, then Newton).

    ``alpha`` in (0, 1] and ``t >= 0`` may be scalars or broadcastable arrays.

    >>> round(fixed_focus_margin("soft", 0.5, 100.0, C=3) * 0.5, 9) == round(
    ...     fixed_focus_margin("hard", 1.0, 25.0, C=3), 9)
    True
    """
    raw = (alpha, t)
    method = _check_method(method)
    C = check_int(C, "C", minimum=2)
    alpha = _check_alpha(alpha)
    t = _as_float_array(t, "t")
    if np.any(t < 0):
        raise ValueError("t must be >= 0")
    if method == "hard":
        return _same_kind(solve_exp_plus_linear(alpha * t + 1.0, C - 1.0), *raw)
    if method == "soft":
        effective = solve_exp_plus_linear(alpha**2 * t + 1.0, C - 1.0)
        return _same_kind(effective / alpha, *raw)
    alpha, t = np.broadcast_arrays(alpha, t)
    target = alpha * t
    low = np.zeros_like(target)
    high = np.log1p(t) + 1.0  # t(mu) >= e^mu - 1, so mu <= log(1 + t)
    for _ in range(80):
        middle = 0.5 * (low + high)
        below = _lvml_fixed_focus_time(middle, alpha, C) < target
        low = np.where(below, middle, low)
        high = np.where(below, high, middle)
    mu = 0.5 * (low + high)
    A = C - 1.0
    for _ in range(3):  # Newton polishes the last bits
        slope = alpha * (np.exp(mu) + A) + (1 - alpha) / C * (
            np.exp(mu) + 2 * A + A**2 * np.exp(-mu)
        )
        mu = mu - (_lvml_fixed_focus_time(mu, alpha, C) - target) / slope
    return _same_kind(np.maximum(mu, 0.0), *raw)


# ---------------------------------------------------------------- orbits (section 4)


def _dilog(x):
    """Li_2(x) for x <= 1 (SciPy's ``spence`` is Li_2(1 - x))."""
    return spence(1.0 - x)


def _hard_antiderivative(s, C):
    """F(s) with F'(s) = (e^s + C - 1) log(C e^s / (e^s + C - 1)) (chapter 5, hard orbit)."""
    A = C - 1.0
    es = np.exp(s)
    g = es + A
    return (
        (s + np.log(C)) * (es + A * s)
        - es
        - A * s**2 / 2
        - g * np.log(g)
        + g
        - A * s * np.log(A)
        + A * _dilog(-es / A)
    )


def orbit_potential(method, mu, *, C):
    """G(mu): the orbit of ``method`` is Phi(nu) = G(mu) (chapter 5, section 4).

    soft:  G = (C - 1) mu^2 / (2C)
    lvml:  G = ((C - 1)/C^2) (e^mu + (C - 1) e^{-mu} + (C - 2) mu - C)
    hard:  G = (1/C) int_0^mu (e^s + C - 1) log(C e^s / (e^s + C - 1)) ds = (F(mu) - F(0))/C,
           F(s) = (s + log C)(e^s + A s) - e^s - A s^2/2 - (e^s + A) log(e^s + A) + (e^s + A)
                  - A s log A + A Li_2(-e^s / A),  A = C - 1.
    """
    raw = (mu,)
    method = _check_method(method)
    C = check_int(C, "C", minimum=2)
    mu = _as_float_array(mu, "mu")
    if np.any(mu < 0):
        raise ValueError("mu must be >= 0 (the margin never goes negative from mu = 0)")
    if method == "soft":
        value = soft_orbit_strength(mu, C)  # chapter 7's corollary 2
    elif method == "lvml":
        value = (C - 1) / C**2 * (np.expm1(mu) + (C - 1) * np.expm1(-mu) + (C - 2) * mu)
    else:
        value = (_hard_antiderivative(mu, C) - _hard_antiderivative(0.0, C)) / C
    return _same_kind(value, *raw)


def orbit(method, mu, *, m, C):
    """The focus logit nu on the trajectory where the margin is ``mu`` (chapter 5, section 4).

    Along the flow ``Phi(nu) = G(mu)`` with Phi(nu) = (e^nu - 1 + (m - 1) nu)/(m - 1), the
    ``law.attention_potential(nu, m - 1)``, and G from ``orbit_potential``.  Phi is inverted with
    Lambert W (``law.inverse_attention_potential``): e^nu + (m - 1) nu = (m - 1) G + 1.

    >>> round(orbit("soft", 0.0, m=5, C=3), 12)
    0.0
    """
    raw = (mu,)
    method = _check_method(method)
    m, C = _check_sizes(m, C)
    G = _as_float_array(orbit_potential(method, mu, C=C), "mu")
    return _same_kind(inverse_attention_potential(G, m - 1), *raw)


def orbit_invariant(method, mu, nu, *, m, C):
    """Phi(nu) - G(mu): zero all along the ``method`` flow from mu = nu = 0 (chapter 5, §4)."""
    raw = (mu, nu)
    m, C = _check_sizes(m, C)
    nu = _as_float_array(nu, "nu")
    G = _as_float_array(orbit_potential(method, mu, C=C), "mu")
    return _same_kind(attention_potential(nu, m - 1) - G, *raw)


# ---------------------------------------------------------------- late times (section 5)


def soft_fixed_focus_incentive_asymptote(alpha, t, *, C):
    """Leading term of soft attention's fixed-focus incentive as t -> infinity (chapter 5, §3).

    Along the fixed-focus solution (``fixed_focus_margin``) the effective margin s = alpha mu
    satisfies e^s + (C - 1) s = alpha^2 t + 1, so the incentive (C - 1) mu / (e^s + C - 1) is
    exactly (C - 1) s / (alpha (alpha^2 t + C - (C - 1) s)); with s = log(alpha^2 t) + o(1):

        -dL/dalpha ~ (C - 1) log(alpha^2 t) / (alpha^3 t).

    ``alpha`` in (0, 1] and ``t`` (with alpha^2 t > 1) may be scalars or broadcastable arrays.

    >>> round(soft_fixed_focus_incentive_asymptote(1.0, float(np.e), C=2), 6)  # 1 * 1 / e
    0.367879
    """
    raw = (alpha, t)
    C = check_int(C, "C", minimum=2)
    alpha = _check_alpha(alpha)
    t = _as_float_array(t, "t")
    if np.any(alpha**2 * t <= 1):
        raise ValueError("t must be > 1/alpha^2 for the late-time asymptote (log(alpha^2 t) > 0)")
    value = (C - 1) * np.log(alpha**2 * t) / (alpha**3 * t)
    return _same_kind(value, *raw)


def late_time_focus_error(method, t, *, m, C):
    """The leading asymptotic term of the focus error 1 - alpha(t) as t -> infinity (ch. 5, §5).

    soft:  2C / ((C - 1) (log t)^2)   (the ratio to the true error tends to 1 like 1/log t)
    hard:  C / (t log C)
    lvml:  C^2 / ((C - 1) t)

    None of the leading terms depends on m: m only sets how long the flow takes to get there.
    ``t`` must be > 1 (soft's term has log t in it).
    """
    raw = (t,)
    method = _check_method(method)
    m, C = _check_sizes(m, C)
    t = _as_float_array(t, "t")
    if np.any(t <= 1):
        raise ValueError("t must be > 1 for the late-time asymptote")
    if method == "soft":
        value = 2 * C / ((C - 1) * np.log(t) ** 2)
    elif method == "hard":
        value = C / (t * np.log(C))
    else:
        value = C**2 / ((C - 1) * t)
    return _same_kind(value, *raw)


# ---------------------------------------------------------------- the official code's integrator


def euler_flow(method, t_end, *, m, C, step):
    """Fixed-step explicit Euler for the chapter-5 ODE, in a plain Python loop; (mu, nu) at t_end.

    This is the official code's method (step 0.01).  It exists to be compared with
    ``solve_flow`` (chapter 5, benchmarks/bench_flow.py).  ``t_end`` must be a whole
    number of steps.

    >>> mu, nu = euler_flow("hard", 0.02, m=5, C=3, step=0.01)
    >>> round(mu, 6)  # two steps of 0.01 * alpha / C, alpha = 1/5
    0.001333
    """
    method = _check_method(method)
    m, C = _check_sizes(m, C)
    t_end = check_positive(t_end, "t_end", allow_zero=True)
    step = check_positive(step, "step")
    n_steps = round(t_end / step)
    if abs(n_steps * step - t_end) > 1e-9 * max(1.0, t_end):
        raise ValueError(f"t_end must be a whole number of steps, got t_end={t_end}, step={step}")
    exp, log = math.exp, math.log
    log_C = log(C)
    mu = nu = 0.0
    for _ in range(n_steps):
        e_nu = exp(nu)
        a = e_nu / (e_nu + m - 1)
        e_mu = exp(mu)
        if method == "soft":
            d = exp(a * mu) + C - 1
            dmu, dnu = a / d, a * (1 - a) * (C - 1) * mu / (C * d)
        elif method == "hard":
            b = e_mu / (e_mu + C - 1)
            dmu, dnu = a / (e_mu + C - 1), a * (1 - a) * (log_C + log(b)) / C
        else:
            b = e_mu / (e_mu + C - 1)
            Z = a * b + (1 - a) / C
            dmu, dnu = a * b / ((e_mu + C - 1) * Z), (a / C) * (b / Z - 1)
        mu, nu = mu + step * dmu, nu + step * dnu
    return mu, nu


# ---------------------------------------------------------------- the hybrid's switch (chapter 6)


def best_switch_time(horizon, candidates, *, m, C):
    """The switch time of the soft-then-hard hybrid that ends most focused at ``horizon``.

    For each candidate T (0 <= T; a T at or past the horizon is pure soft, T = 0 pure hard),
    solve the hybrid flow (:func:`solve_flow`) up to ``horizon`` and return the T whose
    attention on the foreground alpha(horizon) is largest (the first one on ties), as a float
    (chapter 6, "When to switch").

    >>> best_switch_time(100.0, [0.0, 35.0, 100.0], m=5, C=3)  # hard, a hybrid, soft
    35.0
    """
    m, C = _check_sizes(m, C)
    horizon = check_positive(horizon, "horizon")
    candidates = np.asarray(candidates, dtype=float)
    if candidates.ndim != 1 or candidates.size == 0 or np.any(~np.isfinite(candidates)):
        raise ValueError("candidates must be a non-empty 1-D array of finite switch times")
    if np.any(candidates < 0):
        raise ValueError("candidates must be switch times >= 0")
    final_nu = [
        solve_flow("hybrid", [horizon], m=m, C=C, switch_time=float(T))[1][0] for T in candidates
    ]
    return float(candidates[int(np.argmax(final_nu))])


# ---------------------------------------------------------------- momentum (chapters 5 and 6)


def sgd_flow_time(steps, *, lr: float, momentum: float = 0.9, lag: float | None = None):
    """``(k,)`` float: the flow time of SGD after ``steps`` ``(k,)`` steps of size ``lr`` with
    heavy-ball momentum ``momentum`` (chapter 5; chapter 4 compares its runs on this axis): a
    step is flow time ``lr / (1 - momentum)`` once the momentum has built up, which takes
    ``lag`` steps, by default ``momentum / (1 - momentum)`` (9 steps at 0.9); times before the
    lag are 0.

    >>> sgd_flow_time([0, 9, 19], lr=0.05)
    array([0., 0., 5.])
    """
    lr = check_positive(lr, "lr")
    momentum = check_fraction(momentum, "momentum", allow_zero=True)
    lag = momentum / (1 - momentum) if lag is None else check_positive(lag, "lag", allow_zero=True)
    steps = np.asarray(steps, dtype=float)
    return np.maximum(steps - lag, 0) * lr / (1 - momentum)


def fresh_momentum_lag(beta, steps):
    """How many steps a fresh momentum optimizer falls behind a kept one (exercise 6.2).

    Heavy-ball SGD as PyTorch runs it: ``b <- beta b + g`` (a fresh optimizer's first step sets
    ``b = g``), then ``theta <- theta - lr b``.  Under a steady gradient ``g`` a kept buffer
    holds ``g/(1 - beta)``; a fresh one holds ``g(1 - beta^n)/(1 - beta)`` at its ``n``-th step,
    short by ``beta^n`` kept steps.  After ``steps`` steps the fresh run is behind by
    ``sum_{n=1}^{steps} beta^n = beta (1 - beta^steps)/(1 - beta)`` steps of the kept run,
    which tends to chapter 6's ``beta/(1 - beta)``.

    >>> round(fresh_momentum_lag(0.9, 4), 4)  # one epoch of 4 steps
    3.0951
    """
    beta = float(beta)
    if not 0 <= beta < 1:
        raise ValueError(f"beta must lie in [0, 1), got {beta}")
    steps = check_int(steps, "steps", minimum=0)
    return beta * (1 - beta**steps) / (1 - beta)
