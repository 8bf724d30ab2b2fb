"""Checks for the exercises of chapter 5 (gradient flow in closed form): the reduced soft loss,
the fixed-focus hard margin, the reduced flow of a fourth loss, and the time to half the
attention along an orbit."""

from __future__ import annotations

import numpy as np

from .. import flow, law
from . import solutions
from ._core import CheckFailed, run_check


def _number(value, what: str) -> np.ndarray:
    if np.iscomplexobj(value):
        raise CheckFailed(
            f"{what} is complex (scipy.special.lambertw returns complex numbers): "
            "take the real part, np.real(...) or .real."
        )
    try:
        out = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise CheckFailed(
            f"{what} should be a number or a NumPy array, got {type(value).__name__}."
        )
    return out


def _close(a, b, tol) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=tol, atol=tol))


@run_check("the reduced soft-attention loss log(1 + (C - 1) e^(-alpha mu))")
def check_reduced_soft_loss(student_fn) -> None:
    """Check ``student_fn(alpha, mu, C=C)`` (elementwise over NumPy arrays alpha and mu)."""
    alpha = np.array([0.2, 0.5, 1.0, 0.05, 0.9])
    mu = np.array([0.0, 1.5, 4.0, 30.0, 0.3])
    for C in (3, 20):
        out = _number(student_fn(alpha, mu, C=C), "the loss")
        if out.shape != alpha.shape:
            raise CheckFailed(
                f"the loss should have one value per (alpha, mu), shape {alpha.shape}, "
                f"got {out.shape}."
            )
        ref = flow.reduced_soft_loss(alpha, mu, C=C)
        if _close(out, ref, 1e-9):
            continue
        wrong = (
            (
                np.log1p((C - 1) * np.exp(-mu)),
                "the classifier sees the blend alpha e_y, so its margin is alpha mu, not mu.",
            ),
            (
                np.log1p(C * np.exp(-alpha * mu)),
                "there are C - 1 wrong classes, each with logit b: 1 + (C - 1) e^(-alpha mu).",
            ),
            (
                flow.reduced_loss("hard", alpha, mu, C=C),
                "that is hard attention's loss; soft attention classifies the blend of segments.",
            ),
            (
                -np.log1p((C - 1) * np.exp(-alpha * mu)),
                "the cross-entropy is -log p_y = log(1 + (C - 1) e^(-alpha mu)): check the sign.",
            ),
        )
        for value, hint in wrong:
            if _close(out, value, 1e-9):
                raise CheckFailed(hint)
        raise CheckFailed(
            "the values differ from the reference; at mu = 0 the loss must be log C, "
            "and the true-class logit of the blend is alpha a, the others alpha b."
        )
    far = _number(student_fn(np.array([1.0]), np.array([-800.0]), C=3), "the loss")
    if not np.isfinite(far).all():
        raise CheckFailed(
            "at mu = -800 the loss overflowed: write log(1 + x) with x = (C-1) e^(-alpha "
            "mu) as np.logaddexp(0, log(C - 1) - alpha * mu)."
        )


@run_check("the fixed-focus hard-attention margin by Lambert W")
def check_fixed_focus_hard_margin(student_fn) -> None:
    """Check ``student_fn(alpha, t, C=C) -> mu`` (elementwise over a NumPy array t)."""
    t = np.array([0.0, 1.0, 10.0, 100.0, 1000.0])
    for alpha, C in ((1.0, 3), (0.3, 3), (0.6, 20)):
        out = _number(student_fn(alpha, t, C=C), "mu")
        if out.shape != t.shape:
            raise CheckFailed(f"mu should have the shape of t, {t.shape}, got {out.shape}.")
        ref = solutions.fixed_focus_hard_margin(alpha, t, C=C)
        x = (alpha * t + 1) / (C - 1.0)
        if _close(out, x - ref, 1e-8):
            raise CheckFailed(
                "you returned W_0(e^x / (C - 1)) itself; that is w = x - mu, so "
                "mu = x - W_0(e^x / (C - 1)) with x = (alpha t + 1)/(C - 1)."
            )
        if _close(out, -ref, 1e-8):
            raise CheckFailed(
                "the sign: you returned W_0(e^x / (C - 1)) - x; the margin grows, "
                "mu = x - W_0(e^x / (C - 1))."
            )
        if abs(out[0]) > 1e-9:
            raise CheckFailed(
                f"at t = 0 the margin must be 0, got {out[0]:.4g}: the integration "
                "constant is e^0 = 1, so e^mu + (C - 1) mu = alpha t + 1."
            )
        if _close(out, ref, 1e-8):
            continue
        A = C - 1.0
        if _close(out, solutions.fixed_focus_hard_margin(1.0, t, C=C), 1e-8):
            raise CheckFailed(
                "the focus alpha is missing: the margin grows at alpha / (e^mu + C - 1)."
            )
        residual = np.exp(out) + A * out - (alpha * t + 1)
        if np.all(np.isfinite(residual)) and np.allclose(np.exp(out) + C * out, alpha * t + 1):
            raise CheckFailed("use C - 1 (the number of wrong classes), not C.")
        raise CheckFailed(
            "mu should solve e^mu + (C - 1) mu = alpha t + 1; with x = (alpha t + 1)/(C - 1) "
            f"it is x - W_0(e^x / (C - 1)). Your largest residual is "
            f"{np.nanmax(np.abs(residual)):.3g}."
        )


def _pair(out, what: str) -> np.ndarray:
    """The student's two numbers: a tuple, list, array or tensor of two numbers."""
    if isinstance(out, (str, bytes, dict)) or not hasattr(out, "__len__") or len(out) != 2:
        raise CheckFailed(f"return the pair {what}, two numbers.")
    pair = []
    for value, name in zip(out, what.strip("()").split(", ")):
        if hasattr(value, "detach"):  # a torch tensor
            value = value.detach().cpu().double().numpy()
        value = _number(value, name)
        if value.size != 1:
            raise CheckFailed(
                f"{name} should be one number at a scalar (mu, nu), got {value.size} values."
            )
        pair.append(float(value.reshape(())))
    return np.array(pair)


def _likelihood_terms(mu, nu, m, C, *, n_focus=None, n_class=None):
    """alpha, beta and the two derivatives of the reduced loss 1 - alpha beta - (1-alpha)/C."""
    n_focus = m - 1 if n_focus is None else n_focus
    n_class = C - 1 if n_class is None else n_class
    alpha = np.exp(nu) / (np.exp(nu) + n_focus)
    beta = np.exp(mu) / (np.exp(mu) + n_class)
    return alpha, beta


def _likelihood_wrong(mu, nu, m, C) -> list:
    """The usual wrong derivations of exercise 5.3: ``((dmu/dt, dnu/dt), hint)`` pairs."""
    a, b = _likelihood_terms(mu, nu, m, C)
    dmu, dnu = solutions.likelihood_flow_rhs(mu, nu, m=m, C=C)
    lvml = flow.flow_rhs("lvml", m=m, C=C)(0.0, [mu, nu])
    a_m, b_m = _likelihood_terms(mu, nu, m, C, n_focus=m)
    _, b_c = _likelihood_terms(mu, nu, m, C, n_class=C)
    return [
        (
            (-dmu, -dnu),
            "the signs: gradient flow must go downhill on the loss, d(theta)/dt = -grad L.",
        ),
        ((dnu, dmu), "you returned (dnu/dt, dmu/dt): return (dmu/dt, dnu/dt)."),
        (
            tuple(lvml),
            "that is LVML's flow, with its 1/Z: this loss has no logarithm, so nothing divides "
            "the derivatives by the likelihood Z.",
        ),
        (
            (a * b * (1 - b), dnu),
            "dmu/dt is -dL/dmu without the factor 1/(C - 1): the gradient reaches the margin "
            "through W_yy (weight 1/C) and the C - 1 entries W_ky (see the derivation of (5.2)).",
        ),
        (
            (a * b * (1 - b) / C, dnu),
            "dmu/dt divides by C; the margin moves at -(1/C)(1 + 1/(C - 1)) dL/dmu = "
            "-dL/dmu / (C - 1).",
        ),
        (
            (dmu, (b - 1 / C) / C),
            "dnu/dt lacks the chain-rule factor d(alpha)/d(nu) = alpha (1 - alpha).",
        ),
        (
            (dmu, a * (1 - a) * (b - 1 / C)),
            "dnu/dt lacks the factor 1/C: the focus weight u_y only sees class y's mosaics, "
            "which have weight 1/C.",
        ),
        (
            (dmu, a * (1 - a) * b / C),
            "the background segments are zero vectors: the classifier gives them the uniform "
            "probability 1/C, not 0, so -dL/dalpha = beta - 1/C.",
        ),
        (
            (a_m * b * (1 - b) / (C - 1), a_m * (1 - a_m) * (b - 1 / C) / C),
            "alpha = e^nu / (e^nu + m - 1): there are m - 1 background segments, not m.",
        ),
        (
            (a * b_c * (1 - b_c) / (C - 1), a * (1 - a) * (b_c - 1 / C) / C),
            "beta = e^mu / (e^mu + C - 1): there are C - 1 wrong classes, not C.",
        ),
    ]


@run_check("the reduced flow of the expected-likelihood loss")
def check_likelihood_flow_rhs(student_fn) -> None:
    """Check ``student_fn(mu, nu, m=m, C=C) -> (dmu/dt, dnu/dt)`` at scalar points."""
    for mu, nu, m, C in ((0.7, 0.3, 5, 3), (2.0, -0.5, 10, 7), (1.3, 1.1, 4, 20)):
        out = _pair(student_fn(mu, nu, m=m, C=C), "(dmu/dt, dnu/dt)")
        ref = np.array(solutions.likelihood_flow_rhs(mu, nu, m=m, C=C), dtype=float)
        if _close(out, ref, 1e-8):
            continue
        for wrong, hint in _likelihood_wrong(mu, nu, m, C):
            if _close(out, np.array(wrong, dtype=float), 1e-8):
                raise CheckFailed(hint)
        right = [
            name
            for name, o, r in zip(("dmu/dt", "dnu/dt"), out, ref)
            if abs(o - r) <= 1e-8 * (1 + abs(r))
        ]
        where = f"at mu = {mu}, nu = {nu}, m = {m}, C = {C}"
        if right:
            wrong_one = "dnu/dt" if right == ["dmu/dt"] else "dmu/dt"
            raise CheckFailed(
                f"{right[0]} is right but {wrong_one} is not ({where}): reduce "
                "the loss to alpha and beta first, then apply (5.2)."
            )
        raise CheckFailed(
            f"both derivatives differ from the reference {where}: reduce the loss "
            "to 1 - alpha beta - (1 - alpha)/C, then apply (5.2)."
        )


def _time_along_orbit(
    method, m, C, nu_target, *, frozen_focus=False, integrand="inverse", orbit_of=None
):
    """The usual wrong derivations of exercise 5.4 share the reference's quadrature."""
    from scipy.integrate import quad
    from scipy.optimize import brentq

    orbit_of = method if orbit_of is None else orbit_of
    target = float(law.attention_potential(nu_target, m - 1))
    high = 1.0
    while float(flow.orbit_potential(orbit_of, high, C=C)) < target:
        high *= 2
    mu_end = brentq(
        lambda mu: float(flow.orbit_potential(orbit_of, mu, C=C)) - target,
        0.0,
        high,
        xtol=1e-13,
        rtol=1e-13,
    )
    if integrand == "margin":
        return mu_end
    rhs = flow.flow_rhs(method, m=m, C=C)

    def speed(mu):
        nu = 0.0 if frozen_focus else float(flow.orbit(orbit_of, mu, m=m, C=C))
        return float(rhs(0.0, [mu, nu])[0])

    f = (lambda mu: 1 / speed(mu)) if integrand == "inverse" else speed
    return quad(f, 0.0, mu_end, epsabs=0.0, epsrel=1e-11, limit=200)[0]


_HALF_CASES = [(method, m, C) for m, C in ((5, 3), (10, 10)) for method in law.LOSS_NAMES]


def _student_times(student_fn) -> np.ndarray:
    """The student's time for each of ``_HALF_CASES``, each checked to be one number."""
    outs = []
    for method, m, C in _HALF_CASES:
        value = student_fn(method, m=m, C=C)
        if hasattr(value, "detach"):
            value = value.detach().cpu().double().numpy()
        out = _number(value, "the time")
        if out.size != 1:
            raise CheckFailed(f"return one time, a number; got {out.size} values.")
        outs.append(float(out.reshape(())))
    return np.array(outs)


def _half_mistakes() -> tuple:
    """``(formula of (method, m, C), hint)`` for the usual wrong derivations of exercise 5.4."""
    half = {case: np.log(case[1] - 1) for case in _HALF_CASES}
    return (
        (
            lambda method, m, C: _time_along_orbit(method, m, C, np.log(m)),
            "alpha = e^nu / (e^nu + m - 1) is 1/2 where e^nu = m - 1, not m: the foreground "
            "competes with m - 1 background segments.",
        ),
        (
            lambda method, m, C: _time_along_orbit(
                method, m, C, half[method, m, C], integrand="margin"
            ),
            "that is the MARGIN mu at which alpha reaches 1/2; the question asks for the time: "
            "dt = dmu / (dmu/dt), integrated along the orbit.",
        ),
        (
            lambda method, m, C: _time_along_orbit(
                method, m, C, half[method, m, C], integrand="speed"
            ),
            "dt = dmu / (dmu/dt): integrate the reciprocal of the margin's speed, not the speed.",
        ),
        (
            lambda method, m, C: _time_along_orbit(
                method, m, C, half[method, m, C], frozen_focus=True
            ),
            "the focus moves while the margin grows: evaluate dmu/dt at the orbit's nu(mu), not "
            "at nu = 0 (that is the fixed-focus clock).",
        ),
        (
            lambda method, m, C: _time_along_orbit(
                method, m, C, half[method, m, C], orbit_of="soft"
            ),
            "each loss has its own orbit: you used soft attention's G(mu) for every method.",
        ),
    )


@run_check("the time to half the attention, as one integral along the orbit")
def check_time_to_half(student_fn) -> None:
    """Check ``student_fn(method, m=m, C=C) -> t`` (any real scalar) for the three methods at two
    sizes, read all at once so that a derivation wrong in the same way everywhere is named."""
    outs = _student_times(student_fn)
    refs = np.array([solutions.time_to_half(method, m=m, C=C) for method, m, C in _HALF_CASES])
    if _close_rel(outs, refs, 1e-5):
        return
    for formula, hint in _half_mistakes():
        if _close_rel(outs, np.array([formula(*case) for case in _HALF_CASES]), 1e-5):
            raise CheckFailed(hint)
    bad = int(np.argmax(np.abs(outs - refs) / refs))
    (method, m, C), out, ref = _HALF_CASES[bad], outs[bad], refs[bad]
    if abs(out - ref) / ref < 1e-2:
        raise CheckFailed(
            f"for {method!r} at m = {m}, C = {C} you are within 1 % of the time "
            f"({out:.6g} against {ref:.6g}) but not within 1e-5: a fixed-step "
            "integrator or a coarse grid is too rough; integrate along the orbit "
            "with scipy.integrate.quad."
        )
    raise CheckFailed(
        f"for {method!r} at m = {m}, C = {C} alpha reaches 1/2 at t = {ref:.6g}, "
        f"you returned {out:.6g}: find the margin where the orbit reaches "
        "alpha = 1/2, then add up dt = dmu / (dmu/dt) along the orbit."
    )


def _close_rel(a, b, tol) -> bool:
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= tol * np.abs(b)))
