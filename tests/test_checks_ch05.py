"""Each chapter-5 check passes the reference, says "to do" for an unimplemented stub, and fails
plausible wrong answers with a hint that points at the mistake; none of them raises."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import quad, solve_ivp
from scipy.optimize import brentq

from course_lib import checks, flow
from course_lib.checks import ch05, solutions
from course_lib.law import LOSS_NAMES


def stub(*args, **kwargs):
    raise NotImplementedError


def naive_soft_loss(alpha, mu, C):
    with np.errstate(over="ignore"):
        return np.log(1 + (C - 1) * np.exp(-alpha * mu))


def test_reduced_soft_loss_check(run_check):
    ok, out = run_check(checks.check_reduced_soft_loss, flow.reduced_soft_loss)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_reduced_soft_loss, stub)
    assert not ok and "[to do]" in out
    ok, out = run_check(
        checks.check_reduced_soft_loss, lambda alpha, mu, C: np.log1p((C - 1) * np.exp(-mu))
    )
    assert not ok and "[wrong]" in out and "alpha mu" in out
    ok, out = run_check(
        checks.check_reduced_soft_loss, lambda alpha, mu, C: np.log1p(C * np.exp(-alpha * mu))
    )
    assert not ok and "C - 1 wrong classes" in out
    ok, out = run_check(
        checks.check_reduced_soft_loss,
        lambda alpha, mu, C: flow.reduced_loss("hard", alpha, mu, C=C),
    )
    assert not ok and "hard attention" in out
    # right formula, written naively: overflows at very negative margins
    ok, out = run_check(checks.check_reduced_soft_loss, naive_soft_loss)
    assert not ok and "overflow" in out
    ok, out = run_check(checks.check_reduced_soft_loss, lambda alpha, mu, C: alpha[0])
    assert not ok and "shape" in out


def test_fixed_focus_hard_margin_check(run_check):
    from scipy.special import lambertw

    ok, out = run_check(checks.check_fixed_focus_hard_margin, solutions.fixed_focus_hard_margin)
    assert ok and "[passed]" in out

    def with_scipy(alpha, t, C):  # what a student writes: the textbook formula
        x = (alpha * t + 1) / (C - 1)
        return x - np.real(lambertw(np.exp(x) / (C - 1)))

    ok, out = run_check(checks.check_fixed_focus_hard_margin, with_scipy)
    assert ok, out
    ok, out = run_check(checks.check_fixed_focus_hard_margin, stub)
    assert not ok and "[to do]" in out

    def no_constant(alpha, t, C):
        x = alpha * t / (C - 1)
        return x - np.real(lambertw(np.exp(x) / (C - 1)))

    ok, out = run_check(checks.check_fixed_focus_hard_margin, no_constant)
    assert not ok and "integration constant" in out

    def no_alpha(alpha, t, C):
        return with_scipy(1.0, t, C)

    ok, out = run_check(checks.check_fixed_focus_hard_margin, no_alpha)
    assert not ok and "alpha is missing" in out

    def classes_not_wrong_classes(alpha, t, C):
        x = (alpha * t + 1) / C
        return x - np.real(lambertw(np.exp(x) / C))

    ok, out = run_check(checks.check_fixed_focus_hard_margin, classes_not_wrong_classes)
    assert not ok and "C - 1" in out


def _alpha_beta(mu, nu, m, C, n_focus=None, n_class=None):
    n_focus = m - 1 if n_focus is None else n_focus
    n_class = C - 1 if n_class is None else n_class
    return np.exp(nu) / (np.exp(nu) + n_focus), np.exp(mu) / (np.exp(mu) + n_class)


def likelihood_other_form(mu, nu, m, C):
    """Another correct form: alpha beta / (e^mu + C - 1), with beta - 1/C written out."""
    a, b = _alpha_beta(mu, nu, m, C)
    return [
        a * b / (np.exp(mu) + C - 1),
        a * (1 - a) * (C - 1) * np.expm1(mu) / (C * C * (np.exp(mu) + C - 1)),
    ]


@pytest.mark.parametrize(
    "make",
    [
        lambda f: f,
        lambda f: lambda *args, **kw: tuple(float(v) for v in f(*args, **kw)),
        lambda f: lambda *args, **kw: torch.tensor(np.asarray(f(*args, **kw), dtype=float)),
        lambda f: lambda *args, **kw: tuple(np.float32(v) for v in f(*args, **kw)),
    ],
    ids=["list", "python-floats", "tensor", "float32"],
)
def test_likelihood_flow_rhs_accepts_correct_forms(run_check, make):
    ok, out = run_check(checks.check_likelihood_flow_rhs, make(likelihood_other_form))
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_likelihood_flow_rhs, solutions.likelihood_flow_rhs)
    assert ok and "[passed]" in out


def _wrong_likelihood(kind):
    def rhs(mu, nu, m, C):
        a, b = _alpha_beta(mu, nu, m, C)
        dmu, dnu = a * b * (1 - b) / (C - 1), a * (1 - a) * (b - 1 / C) / C
        if kind == "sign":
            return -dmu, -dnu
        if kind == "swapped":
            return dnu, dmu
        if kind == "lvml":
            return tuple(flow.flow_rhs("lvml", m=m, C=C)(0.0, [mu, nu]))
        if kind == "no 1/(C-1)":
            return a * b * (1 - b), dnu
        if kind == "1/C":
            return a * b * (1 - b) / C, dnu
        if kind == "no chain rule":
            return dmu, (b - 1 / C) / C
        if kind == "no 1/C":
            return dmu, a * (1 - a) * (b - 1 / C)
        if kind == "background 0":
            return dmu, a * (1 - a) * b / C
        if kind == "m not m-1":
            a, _ = _alpha_beta(mu, nu, m, C, n_focus=m)
            return a * b * (1 - b) / (C - 1), a * (1 - a) * (b - 1 / C) / C
        if kind == "C not C-1":
            _, b = _alpha_beta(mu, nu, m, C, n_class=C)
            return a * b * (1 - b) / (C - 1), a * (1 - a) * (b - 1 / C) / C
        if kind == "dnu off":
            return dmu, 2 * dnu
        if kind == "both off":
            return 2 * dmu, 2 * dnu
        if kind == "one number":
            return dmu
        raise AssertionError(kind)

    return rhs


@pytest.mark.parametrize(
    "kind, hint",
    [
        ("sign", "go downhill"),
        ("swapped", "(dnu/dt, dmu/dt)"),
        ("lvml", "LVML's flow"),
        ("no 1/(C-1)", "without the factor 1/(C - 1)"),
        ("1/C", "divides by C"),
        ("no chain rule", "alpha (1 - alpha)"),
        ("no 1/C", "lacks the factor 1/C"),
        ("background 0", "probability 1/C, not 0"),
        ("m not m-1", "m - 1 background segments"),
        ("C not C-1", "C - 1 wrong classes"),
        ("dnu off", "dmu/dt is right but dnu/dt is not"),
        ("both off", "both derivatives differ"),
        ("one number", "return the pair"),
    ],
)
def test_likelihood_flow_rhs_rejects_wrong_derivations(run_check, kind, hint):
    ok, out = run_check(checks.check_likelihood_flow_rhs, _wrong_likelihood(kind))
    assert not ok and "[wrong]" in out and hint in out, out


def test_likelihood_flow_rhs_check_stub(run_check):
    ok, out = run_check(checks.check_likelihood_flow_rhs, stub)
    assert not ok and "[to do]" in out


def test_likelihood_flow_follows_the_lvml_orbit():
    """The exercise's follow-up claims the expected-likelihood flow keeps LVML's orbit."""
    t = np.linspace(0.0, 200.0, 50)
    sol = solve_ivp(
        lambda _, y: solutions.likelihood_flow_rhs(y[0], y[1], m=5, C=3),
        (0, 200),
        [0.0, 0.0],
        t_eval=t,
        rtol=1e-10,
        atol=1e-12,
    )
    mu, nu = sol.y
    assert nu[-1] > 1.0  # the focus moved
    lvml = np.abs(flow.orbit_invariant("lvml", mu, nu, m=5, C=3)).max()
    soft = np.abs(flow.orbit_invariant("soft", mu, nu, m=5, C=3)).max()
    assert lvml < 1e-6 < 1e-2 < soft


def test_fixed_focus_hard_margin_w_sign_and_complex(run_check):
    from scipy.special import lambertw

    def lambert_term(alpha, t, C):
        x = (alpha * t + 1) / (C - 1)
        return np.real(lambertw(np.exp(x) / (C - 1)))

    ok, out = run_check(checks.check_fixed_focus_hard_margin, lambert_term)
    assert not ok and "W_0(e^x / (C - 1)) itself" in out and "integration constant" not in out
    ok, out = run_check(
        checks.check_fixed_focus_hard_margin,
        lambda alpha, t, C: -solutions.fixed_focus_hard_margin(alpha, t, C=C),
    )
    assert not ok and "the sign" in out

    def complex_valued(alpha, t, C):
        x = (alpha * t + 1) / (C - 1)
        return x - lambertw(np.exp(x) / (C - 1))

    ok, out = run_check(checks.check_fixed_focus_hard_margin, complex_valued)
    assert not ok and "[wrong]" in out and "real part" in out


def test_fixed_focus_hard_margin_reference_is_the_lambert_w_formula():
    from scipy.special import lambertw

    for alpha, C, t in ((0.3, 3, 50.0), (1.0, 20, 1e3), (0.8, 1000, 4e5)):
        x = (alpha * t + 1) / (C - 1)
        expected = x - np.real(lambertw(np.exp(x) / (C - 1)))
        margin = solutions.fixed_focus_hard_margin(alpha, t, C=C)
        assert margin == pytest.approx(expected, rel=1e-12)
        assert margin == pytest.approx(flow.fixed_focus_margin("hard", alpha, t, C=C), rel=1e-14)
    with pytest.raises(ValueError, match="t must be"):
        solutions.fixed_focus_hard_margin(1.0, -1.0, C=3)
    with pytest.raises(ValueError, match="alpha"):
        solutions.fixed_focus_hard_margin(0.0, 1.0, C=3)


def test_fixed_focus_hard_margin_other_correct_forms(run_check):
    from scipy.optimize import brentq
    from scipy.special import lambertw

    def logarithm(alpha, t, C):  # e^mu = (C - 1) W_0(e^x / (C - 1))
        x = (alpha * t + 1) / (C - 1)
        return np.log((C - 1) * np.real(lambertw(np.exp(x) / (C - 1))))

    def root_find(alpha, t, C):
        def solve(ti):
            return brentq(lambda u: np.exp(u) + (C - 1) * u - alpha * ti - 1, 0.0, 50.0, xtol=1e-14)

        return np.array([solve(ti) for ti in np.atleast_1d(t)])

    for right in (logarithm, root_find):
        ok, out = run_check(checks.check_fixed_focus_hard_margin, right)
        assert ok and "[passed]" in out, out


def _time_by_root(method, m, C):
    """Another correct form: solve the ODE in time and find where alpha = 1/2 by root finding."""
    return brentq(
        lambda t: flow.solve_flow(method, [t], m=m, C=C)[1][0] - np.log(m - 1), 1.0, 1e4, xtol=1e-10
    )


def _time_along_nu(method, m, C):
    """Another correct form: integrate dt = dnu / (dnu/dt) in nu, with mu from the orbit."""
    from course_lib import law

    rhs = flow.flow_rhs(method, m=m, C=C)

    def mu_of(nu):
        target = float(law.attention_potential(nu, m - 1))
        return brentq(
            lambda mu: float(flow.orbit_potential(method, mu, C=C)) - target, 0.0, 50.0, xtol=1e-14
        )

    # nu starts at 0 with dnu/dt = 0: integrate in mu over a first short stretch instead
    mu0 = 1e-3
    first = quad(
        lambda mu: 1 / rhs(0.0, [mu, float(flow.orbit(method, mu, m=m, C=C))])[0],
        0.0,
        mu0,
        epsabs=0,
        epsrel=1e-12,
    )[0]
    nu0 = float(flow.orbit(method, mu0, m=m, C=C))
    rest = quad(
        lambda nu: 1 / rhs(0.0, [mu_of(nu), nu])[1],
        nu0,
        np.log(m - 1),
        epsabs=0,
        epsrel=1e-11,
        limit=200,
    )[0]
    return first + rest


@pytest.mark.parametrize(
    "student",
    [
        solutions.time_to_half,
        lambda method, m, C: np.float64(solutions.time_to_half(method, m=m, C=C)),
        lambda method, m, C: torch.tensor(solutions.time_to_half(method, m=m, C=C)),
        lambda method, m, C: np.array([solutions.time_to_half(method, m=m, C=C)]),
        _time_by_root,
        _time_along_nu,
    ],
    ids=["reference", "numpy", "tensor", "one-element array", "root of solve_flow", "in nu"],
)
def test_time_to_half_accepts_correct_forms(run_check, student):
    ok, out = run_check(checks.check_time_to_half, student)
    assert ok and "[passed]" in out, out


def _wrong_time(**kind):
    def student(method, m, C):
        if kind.get("m_not_m_minus_1"):
            return ch05._time_along_orbit(method, m, C, np.log(m))
        return ch05._time_along_orbit(method, m, C, np.log(m - 1), **kind)

    return student


@pytest.mark.parametrize(
    "student, hint",
    [
        (_wrong_time(m_not_m_minus_1=True), "e^nu = m - 1, not m"),
        (_wrong_time(integrand="margin"), "that is the MARGIN"),
        (_wrong_time(integrand="speed"), "not the speed"),
        (_wrong_time(frozen_focus=True), "not at nu = 0"),
        (_wrong_time(orbit_of="soft"), "its own orbit"),
        (lambda method, m, C: 1.001 * solutions.time_to_half(method, m=m, C=C), "within 1 %"),
        (
            lambda method, m, C: 2 * solutions.time_to_half(method, m=m, C=C),
            "alpha reaches 1/2 at t =",
        ),
        (lambda method, m, C: [1.0, 2.0], "one time"),
    ],
)
def test_time_to_half_rejects_wrong_derivations(run_check, student, hint):
    ok, out = run_check(checks.check_time_to_half, student)
    assert not ok and "[wrong]" in out and hint in out, out


def test_time_to_half_check_stub(run_check):
    ok, out = run_check(checks.check_time_to_half, stub)
    assert not ok and "[to do]" in out


def test_time_to_half_reference_matches_the_solver():
    """The follow-up's claim: at (5, 3) soft attention is first to alpha = 1/2, LVML close
    behind; at (20, 20) LVML is first by far."""
    for m, C in ((5, 3), (20, 20)):
        times = {method: solutions.time_to_half(method, m=m, C=C) for method in LOSS_NAMES}
        for method, t in times.items():
            nu = flow.solve_flow(method, [t], m=m, C=C)[1][0]
            assert abs(nu - np.log(m - 1)) < 1e-6
        if (m, C) == (5, 3):
            assert times["soft"] < times["lvml"] < times["hard"]
        else:
            assert times["lvml"] < 0.8 * min(times["soft"], times["hard"])
