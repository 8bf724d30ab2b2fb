"""Each chapter-5 check passes the reference, says "to do" for an unimplemented stub, and fails
plausible wrong answers with a hint that points at the mistake; none of them raises."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from course_lib import checks, flow


def stub(*args):
    raise NotImplementedError


def naive_soft_loss(alpha, mu, C):
    with np.errstate(over="ignore"):
        return np.log(1 + (C - 1) * np.exp(-alpha * mu))


def test_reduced_soft_loss_check(run_check):
    ok, out = run_check(checks.check_reduced_soft_loss, flow.reduced_soft_loss)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_reduced_soft_loss, stub)
    assert not ok and "[to do]" in out
    ok, out = run_check(checks.check_reduced_soft_loss,
                        lambda alpha, mu, C: np.log1p((C - 1) * np.exp(-mu)))
    assert not ok and "[wrong]" in out and "alpha mu" in out
    ok, out = run_check(checks.check_reduced_soft_loss,
                        lambda alpha, mu, C: np.log1p(C * np.exp(-alpha * mu)))
    assert not ok and "C - 1 wrong classes" in out
    ok, out = run_check(checks.check_reduced_soft_loss,
                        lambda alpha, mu, C: flow.reduced_loss("hard", alpha, mu, C))
    assert not ok and "hard attention" in out
    # right formula, written naively: overflows at very negative margins
    ok, out = run_check(checks.check_reduced_soft_loss,
                        naive_soft_loss)
    assert not ok and "overflow" in out
    ok, out = run_check(checks.check_reduced_soft_loss, lambda alpha, mu, C: alpha[0])
    assert not ok and "shape" in out


def test_fixed_focus_hard_margin_check(run_check):
    from scipy.special import lambertw

    ok, out = run_check(checks.check_fixed_focus_hard_margin, flow.fixed_focus_hard_margin)
    assert ok and "[passed]" in out

    def with_scipy(alpha, C, t):  # what a student writes: the textbook formula
        x = (alpha * t + 1) / (C - 1)
        return x - np.real(lambertw(np.exp(x) / (C - 1)))

    ok, out = run_check(checks.check_fixed_focus_hard_margin, with_scipy)
    assert ok, out
    ok, out = run_check(checks.check_fixed_focus_hard_margin, stub)
    assert not ok and "[to do]" in out

    def no_constant(alpha, C, t):
        x = alpha * t / (C - 1)
        return x - np.real(lambertw(np.exp(x) / (C - 1)))

    ok, out = run_check(checks.check_fixed_focus_hard_margin, no_constant)
    assert not ok and "integration constant" in out

    def no_alpha(alpha, C, t):
        return with_scipy(1.0, C, t)

    ok, out = run_check(checks.check_fixed_focus_hard_margin, no_alpha)
    assert not ok and "alpha is missing" in out

    def classes_not_wrong_classes(alpha, C, t):
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
    return [a * b / (np.exp(mu) + C - 1),
            a * (1 - a) * (C - 1) * np.expm1(mu) / (C * C * (np.exp(mu) + C - 1))]


@pytest.mark.parametrize("make", [
    lambda f: f,
    lambda f: lambda *args: tuple(float(v) for v in f(*args)),
    lambda f: lambda *args: torch.tensor(np.asarray(f(*args), dtype=float)),
    lambda f: lambda *args: tuple(np.float32(v) for v in f(*args)),
], ids=["list", "python-floats", "tensor", "float32"])
def test_likelihood_flow_rhs_accepts_correct_forms(run_check, make):
    ok, out = run_check(checks.check_likelihood_flow_rhs, make(likelihood_other_form))
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_likelihood_flow_rhs, flow.likelihood_flow_rhs)
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
            return tuple(flow.flow_rhs("lvml", m, C)(0.0, [mu, nu]))
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


@pytest.mark.parametrize("kind, hint", [
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
])
def test_likelihood_flow_rhs_rejects_wrong_derivations(run_check, kind, hint):
    ok, out = run_check(checks.check_likelihood_flow_rhs, _wrong_likelihood(kind))
    assert not ok and "[wrong]" in out and hint in out, out


def test_likelihood_flow_rhs_check_stub(run_check):
    ok, out = run_check(checks.check_likelihood_flow_rhs, stub)
    assert not ok and "[to do]" in out


def test_likelihood_flow_follows_the_lvml_orbit():
    """The exercise's follow-up claims the expected-likelihood flow keeps LVML's orbit."""
    t = np.linspace(0.0, 200.0, 50)
    sol = solve_ivp(lambda _, y: flow.likelihood_flow_rhs(y[0], y[1], 5, 3), (0, 200),
                    [0.0, 0.0], t_eval=t, rtol=1e-10, atol=1e-12)
    mu, nu = sol.y
    assert nu[-1] > 1.0  # the focus moved
    lvml = np.abs(flow.orbit_invariant("lvml", mu, nu, 5, 3)).max()
    soft = np.abs(flow.orbit_invariant("soft", mu, nu, 5, 3)).max()
    assert lvml < 1e-6 < 1e-2 < soft


def test_euler_flow_check(run_check):
    ok, out = run_check(checks.check_euler_flow, flow.euler_flow)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_euler_flow, stub)
    assert not ok and "[to do]" in out

    def one_short(method, m, C, t_end, step):
        return flow.euler_flow(method, m, C, t_end - step, step)

    ok, out = run_check(checks.check_euler_flow, one_short)
    assert not ok and "one step too few" in out

    def exact(method, m, C, t_end, step):
        mu, nu = flow.solve_flow(method, m, C, [t_end])
        return float(mu[0]), float(nu[0])

    ok, out = run_check(checks.check_euler_flow, exact)
    assert not ok and "exact flow" in out

    def sequential(method, m, C, t_end, step):  # updates mu, then uses the new mu for nu
        rhs = flow.flow_rhs(method, m, C)
        mu = nu = 0.0
        for _ in range(round(t_end / step)):
            mu = mu + step * rhs(0.0, [mu, nu])[0]
            nu = nu + step * rhs(0.0, [mu, nu])[1]
        return mu, nu

    ok, out = run_check(checks.check_euler_flow, sequential)
    assert not ok and "current (mu, nu)" in out
    ok, out = run_check(checks.check_euler_flow, lambda *args: 1.0)
    assert not ok and "pair" in out


def test_euler_step_needed_check(run_check):
    ok, out = run_check(checks.check_euler_step_needed, flow.euler_step_needed)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_euler_step_needed, stub)
    assert not ok and "[to do]" in out
    ok, out = run_check(checks.check_euler_step_needed, lambda method, m, C, t_end, tol: 0.5)
    assert not ok and "keep halving" in out
    ok, out = run_check(checks.check_euler_step_needed,
                        lambda method, m, C, t_end, tol: flow.euler_step_needed(method, m, C, t_end,
                                                                                tol) / 2)
    assert not ok and "FIRST halving" in out


def test_fixed_focus_hard_margin_w_sign_and_complex(run_check):
    from scipy.special import lambertw

    def lambert_term(alpha, C, t):
        x = (alpha * t + 1) / (C - 1)
        return np.real(lambertw(np.exp(x) / (C - 1)))

    ok, out = run_check(checks.check_fixed_focus_hard_margin, lambert_term)
    assert not ok and "W_0(e^x / (C - 1)) itself" in out and "integration constant" not in out
    ok, out = run_check(checks.check_fixed_focus_hard_margin,
                        lambda alpha, C, t: -flow.fixed_focus_hard_margin(alpha, C, t))
    assert not ok and "the sign" in out

    def complex_valued(alpha, C, t):
        x = (alpha * t + 1) / (C - 1)
        return x - lambertw(np.exp(x) / (C - 1))

    ok, out = run_check(checks.check_fixed_focus_hard_margin, complex_valued)
    assert not ok and "[wrong]" in out and "real part" in out


def test_fixed_focus_hard_margin_other_correct_forms(run_check):
    from scipy.optimize import brentq
    from scipy.special import lambertw

    def logarithm(alpha, C, t):  # e^mu = (C - 1) W_0(e^x / (C - 1))
        x = (alpha * t + 1) / (C - 1)
        return np.log((C - 1) * np.real(lambertw(np.exp(x) / (C - 1))))

    def root_find(alpha, C, t):
        def solve(ti):
            return brentq(lambda u: np.exp(u) + (C - 1) * u - alpha * ti - 1, 0.0, 50.0,
                          xtol=1e-14)
        return np.array([solve(ti) for ti in np.atleast_1d(t)])

    for right in (logarithm, root_find):
        ok, out = run_check(checks.check_fixed_focus_hard_margin, right)
        assert ok and "[passed]" in out, out


def _euler(method, m, C, n_steps, step):
    mu, nu = 0.0, 0.0
    rhs = flow.flow_rhs(method, m, C)
    for _ in range(n_steps):
        dmu, dnu = rhs(0.0, [mu, nu])
        mu, nu = mu + step * float(dmu), nu + step * float(dnu)
    return mu, nu


def test_euler_flow_truncated_step_count(run_check):
    def truncating(method, m, C, t_end, step):  # 0.3 / 0.1 = 2.9999999999999996 -> 2 steps
        return _euler(method, m, C, int(t_end / step), step)

    ok, out = run_check(checks.check_euler_flow, truncating)
    assert not ok and "[wrong]" in out and "int() truncates" in out and "round(t_end / step)" in out

    def accumulating(method, m, C, t_end, step):  # a hundred 0.1s add up to 9.99999999999998
        mu, nu, t = 0.0, 0.0, 0.0
        rhs = flow.flow_rhs(method, m, C)
        while t < t_end:
            dmu, dnu = rhs(0.0, [mu, nu])
            mu, nu, t = mu + step * float(dmu), nu + step * float(dnu), t + step
        return mu, nu

    ok, out = run_check(checks.check_euler_flow, accumulating)
    assert not ok and "one step too many" in out


def test_euler_flow_swapped_and_gauss_seidel(run_check):
    def swapped(method, m, C, t_end, step):
        mu, nu = flow.euler_flow(method, m, C, t_end, step)
        return nu, mu

    ok, out = run_check(checks.check_euler_flow, swapped)
    assert not ok and "swapped" in out and "Gauss-Seidel" not in out

    def nu_first(method, m, C, t_end, step):
        rhs = flow.flow_rhs(method, m, C)
        mu = nu = 0.0
        for _ in range(round(t_end / step)):
            nu = nu + step * rhs(0.0, [mu, nu])[1]
            mu = mu + step * rhs(0.0, [mu, nu])[0]
        return mu, nu

    for wrong, first in ((nu_first, "update nu first"),):
        ok, out = run_check(checks.check_euler_flow, wrong)
        assert not ok and "Gauss-Seidel" in out and first in out

    def whole_path(method, m, C, t_end, step):
        mu, nu = flow.euler_flow(method, m, C, t_end, step)
        return [0.0, mu], [0.0, nu]

    ok, out = run_check(checks.check_euler_flow, whole_path)
    assert not ok and "not the whole path" in out


def test_euler_flow_other_return_forms_pass(run_check):
    import torch

    forms = {
        "list": lambda *a: list(flow.euler_flow(*a)),
        "array": lambda *a: np.array(flow.euler_flow(*a)),
        "tensor": lambda *a: torch.tensor(flow.euler_flow(*a), dtype=torch.float64),
        "numpy scalars": lambda *a: tuple(np.float64(v) for v in flow.euler_flow(*a)),
        "own loop": lambda method, m, C, t_end, step: _euler(method, m, C, round(t_end / step),
                                                             step),
    }
    for name, right in forms.items():
        ok, out = run_check(checks.check_euler_flow, right)
        assert ok and "[passed]" in out, (name, out)


def _halving(method, m, C, t_end, tol, *, first=1.0, measure=True):
    mu_ref, nu_ref = flow.solve_flow(method, m, C, [t_end])

    def error(step):
        mu, nu = flow.euler_flow(method, m, C, t_end, step)
        return max(abs(mu - mu_ref[0]), abs(nu - nu_ref[0]))

    if not measure:  # first order: error(step) = error(1) * step, so predict the step
        step, e1 = 1.0, error(1.0)
        while e1 * step > tol:
            step /= 2
        return step
    step = first
    while error(step) > tol:
        step /= 2
    return step


def test_euler_step_needed_skipping_step_one_and_extrapolating(run_check):
    def from_half(method, m, C, t_end, tol):  # halves before trying step 1
        return _halving(method, m, C, t_end, tol, first=0.5)

    ok, out = run_check(checks.check_euler_step_needed, from_half)
    assert not ok and "[wrong]" in out and "test step 1 before the first halving" in out

    def extrapolated(method, m, C, t_end, tol):
        return _halving(method, m, C, t_end, tol, measure=False)

    ok, out = run_check(checks.check_euler_step_needed, extrapolated)
    assert not ok and "already gives error" in out and "first order" in out

    def only_mu(method, m, C, t_end, tol):
        mu_ref, _ = flow.solve_flow(method, m, C, [t_end])
        step = 1.0
        while abs(flow.euler_flow(method, m, C, t_end, step)[0] - mu_ref[0]) > tol:
            step /= 2
        return step

    ok, out = run_check(checks.check_euler_step_needed, only_mu)
    assert not ok and "keep halving" in out and "larger of the mu and nu errors" in out

    def steps_not_step(method, m, C, t_end, tol):
        return t_end / flow.euler_step_needed(method, m, C, t_end, tol)

    ok, out = run_check(checks.check_euler_step_needed, steps_not_step)
    assert not ok and "not the number of steps" in out

    def predicted(method, m, C, t_end, tol):
        return tol / 0.03

    ok, out = run_check(checks.check_euler_step_needed, predicted)
    assert not ok and "not a halving of step 1" in out


def test_euler_step_needed_numpy_and_torch_numbers_pass(run_check):
    import torch

    for wrap in (np.float64, torch.tensor, lambda v: np.array([v])):
        ok, out = run_check(checks.check_euler_step_needed,
                            lambda *a, wrap=wrap: wrap(_halving(*a)))
        assert ok and "[passed]" in out, out
