"""How fast chapter 5's ODE solver is against the official code's method (explicit Euler).

``flow_vs_euler``: the official code's trajectory figure (m = 100, C = 1000, t up to 4e5, soft,
hard and LVML) computed with ``flow.solve_flow`` (adaptive LSODA) and with fixed-step explicit
Euler at step 0.01 in a plain Python loop, 4e7 steps per method, as the official simulator
does.  Running 1.2e8 Euler steps would take many minutes, so the benchmark times a slice of the
Euler loop and extrapolates linearly (every step costs the same), and says so.

The comparison is made at matched accuracy.  Euler's error at step 0.01 is estimated from runs
at steps 1 and 1/2 (first order: error = c * step, checked by the ratio of the two errors) and
scaled to 0.01; ``solve_flow`` is then timed at the loosest tolerance whose error is no larger
than that, and at its default tolerance (far more accurate).  Errors are the largest of
|mu - mu_ref| and |nu - nu_ref| at t = 4e5 over the three methods, against solve_flow at
rtol 1e-12.  Two Euler loops are timed: ``flow.euler_flow`` (floats and ``math.exp``, the
fastest plain Python) and the same loop on NumPy scalars (``np.exp``), the official code's style.
"""

from __future__ import annotations

import time

import numpy as np

from course_lib import flow
from course_lib.law import LOSS_NAMES
from harness import Result, benchmark, check_size, time_call

OFFICIAL_STEP = 0.01


def _euler_numpy_scalars(method, m, C, n_steps, step):
    """The official simulator's style: the same Euler loop, arithmetic on NumPy scalars."""
    mu = nu = np.float64(0.0)
    for _ in range(n_steps):
        a = np.exp(nu) / (np.exp(nu) + m - 1)
        b = np.exp(mu) / (np.exp(mu) + C - 1)
        if method == "soft":
            d = np.exp(a * mu) + C - 1
            dmu, dnu = a / d, a * (1 - a) * (C - 1) * mu / (C * d)
        elif method == "hard":
            dmu, dnu = a / (np.exp(mu) + C - 1), a * (1 - a) * np.log(C * b) / C
        else:
            Z = a * b + (1 - a) / C
            dmu, dnu = a * b / ((np.exp(mu) + C - 1) * Z), (a / C) * (b / Z - 1)
        mu, nu = mu + step * dmu, nu + step * dnu
    return float(mu), float(nu)


def _per_step_seconds(fn, n_steps: int) -> float:
    start = time.perf_counter()
    fn(n_steps)
    return (time.perf_counter() - start) / n_steps


@benchmark(
    "flow_vs_euler",
    "Chapter 5: solve_flow vs the official explicit Euler (step 0.01), "
    "the m=100, C=1000, t=4e5 trajectory figure, at matched accuracy.",
)
def flow_vs_euler(size: str) -> Result:
    size = check_size(size)
    if size == "tiny":
        m, C, t_end, slice_steps = 5, 3, 40.0, 2000
    else:
        m, C, t_end, slice_steps = 100, 1000, 4e5, 200_000
    t_figure = np.linspace(0.0, t_end, 801)
    n_official = round(t_end / OFFICIAL_STEP)

    reference = {
        k: flow.solve_flow(k, [t_end], m=m, C=C, rtol=1e-12, atol=1e-14) for k in LOSS_NAMES
    }

    def error_of(state, method):
        return max(abs(state[0] - reference[method][0][0]), abs(state[1] - reference[method][1][0]))

    # Euler's error at the official step, from steps 1 and 1/2 (first order)
    coarse = {k: error_of(flow.euler_flow(k, t_end, m=m, C=C, step=1.0), k) for k in LOSS_NAMES}
    finer = {k: error_of(flow.euler_flow(k, t_end, m=m, C=C, step=0.5), k) for k in LOSS_NAMES}
    order_ratio = min(coarse[k] / finer[k] for k in LOSS_NAMES)
    euler_error = max(finer[k] * OFFICIAL_STEP / 0.5 for k in LOSS_NAMES)

    # solve_flow at its default tolerance, and at the loosest tolerance matching Euler's error
    def solve_all(rtol, atol):
        return {k: flow.solve_flow(k, t_figure, m=m, C=C, rtol=rtol, atol=atol) for k in LOSS_NAMES}

    def flow_error(rtol, atol):
        paths = solve_all(rtol, atol)
        return max(error_of((paths[k][0][-1], paths[k][1][-1]), k) for k in LOSS_NAMES)

    default_error = flow_error(flow.RTOL, flow.ATOL)
    matched_rtol = flow.RTOL
    for rtol in (1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9):
        if flow_error(rtol, rtol * 1e-2) <= euler_error:
            matched_rtol = rtol
            break
    matched_error = flow_error(matched_rtol, matched_rtol * 1e-2)
    default_s = time_call(lambda: solve_all(flow.RTOL, flow.ATOL), repeats=3)
    matched_s = time_call(lambda: solve_all(matched_rtol, matched_rtol * 1e-2), repeats=3)

    # a slice of each Euler loop, extrapolated to 4e7 steps per method
    loops = {
        "math floats (flow.euler_flow)": lambda k: (
            lambda n: flow.euler_flow(k, n * OFFICIAL_STEP, m=m, C=C, step=OFFICIAL_STEP)
        ),
        "NumPy scalars (official style)": lambda k: (
            lambda n: _euler_numpy_scalars(k, m, C, n, OFFICIAL_STEP)
        ),
    }
    rows = []
    for loop_name, make in loops.items():
        per_step = {k: _per_step_seconds(make(k), slice_steps) for k in LOSS_NAMES}
        euler_s = sum(per_step[k] * n_official for k in LOSS_NAMES)
        rows.append(
            {
                "Euler loop": loop_name,
                "us/step": 1e6 * float(np.mean(list(per_step.values()))),
                "Euler s (extrapolated)": euler_s,
                "solve_flow s (matched)": matched_s,
                "ratio (matched)": euler_s / matched_s,
                "solve_flow s (default)": default_s,
                "ratio (default)": euler_s / default_s,
            }
        )
    notes = [
        (
            f"m = {m}, C = {C}, t to {t_end:g}; figure grid of {t_figure.size} times; "
            f"{n_official:.0e} Euler steps per method at step {OFFICIAL_STEP}."
        ),
        (
            f"Euler timed on a slice of {slice_steps} steps per method and extrapolated linearly "
            f"to {n_official} steps."
        ),
        (
            f"Euler's error at step {OFFICIAL_STEP}: {euler_error:.1e} (from steps 1 and 1/2, "
            f"error ratio {order_ratio:.2f}, first order ~2)."
        ),
        (
            f"solve_flow at rtol {matched_rtol:g} (matched): error {matched_error:.1e}; at its "
            f"default rtol {flow.RTOL:g}: error {default_error:.1e}."
        ),
    ]
    official = rows[1]
    summary = (
        f"solve_flow {1e3 * matched_s:.0f} ms at matched accuracy ({1e3 * default_s:.0f} ms "
        f"at default tolerance) vs {official['Euler s (extrapolated)']:.0f} s extrapolated "
        f"for Euler in the official style: {official['ratio (matched)']:.0f}x "
        f"({official['ratio (default)']:.0f}x at default); the math-float loop: "
        f"{rows[0]['ratio (matched)']:.0f}x"
    )
    return Result(rows=rows, summary=summary, notes=notes)
