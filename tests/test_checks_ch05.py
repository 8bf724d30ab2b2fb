"""Each chapter-5 check passes the reference, says "to do" for an unimplemented stub, and fails
plausible wrong answers with a hint that points at the mistake; none of them raises."""

from __future__ import annotations

import numpy as np

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


def test_orbit_invariant_check(run_check):
    ok, out = run_check(checks.check_orbit_invariant, flow.orbit_invariant)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_orbit_invariant, stub)
    assert not ok and "[to do]" in out
    ok, out = run_check(checks.check_orbit_invariant,
                        lambda method, mu, nu, m, C: -flow.orbit_invariant(method, mu, nu, m, C))
    assert not ok and "sign" in out

    def phi_over_m(method, mu, nu, m, C):
        return nu + np.expm1(nu) / m - flow.orbit_potential(method, mu, C)

    ok, out = run_check(checks.check_orbit_invariant, phi_over_m)
    assert not ok and "m - 1" in out

    def soft_orbit_for_all(method, mu, nu, m, C):
        return flow.orbit_invariant("soft", mu, nu, m, C)

    ok, out = run_check(checks.check_orbit_invariant, soft_orbit_for_all)
    assert not ok and "'hard'" in out


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
