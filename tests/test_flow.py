"""course_lib.flow (chapter 5): the ODEs, the solver, the closed forms, argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from course_lib import flow
from course_lib.law import LOSS_NAMES


def naive_rhs(method, m, C):
    """The ODEs exactly as the official code's simulator writes them (exponentials, no logistic)."""

    def f(t, y):
        mu, nu = y
        a = np.exp(nu) / (np.exp(nu) + m - 1)
        b = np.exp(mu) / (np.exp(mu) + C - 1)
        if method == "soft":
            return [
                a / (np.exp(a * mu) + C - 1),
                a * (1 - a) * (C - 1) * mu / (C * (np.exp(a * mu) + C - 1)),
            ]
        if method == "hard":
            return [a / (np.exp(mu) + C - 1), a * (1 - a) * np.log(C * b) / C]
        Z = a * b + (1 - a) / C
        return [a * b / ((np.exp(mu) + C - 1) * Z), (a / C) * (b / Z - 1)]

    return f


# ---------------------------------------------------------------- flow_rhs


@pytest.mark.parametrize("method", LOSS_NAMES)
def test_flow_rhs_equals_the_official_formulas(method):
    rng = np.random.default_rng(0)
    for m, C in ((5, 3), (100, 1000), (2, 2)):
        f, g = flow.flow_rhs(method, m=m, C=C), naive_rhs(method, m, C)
        for mu, nu in rng.uniform(-2, 12, size=(20, 2)):
            np.testing.assert_allclose(f(0.0, [mu, nu]), g(0.0, [mu, nu]), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("method", LOSS_NAMES)
def test_flow_rhs_does_not_overflow_far_out(method):
    dmu, dnu = flow.flow_rhs(method, m=5, C=3)(0.0, [800.0, 900.0])
    assert np.isfinite(dmu) and np.isfinite(dnu) and dmu >= 0 and dnu >= 0


def test_flow_rhs_is_vectorised():
    f = flow.flow_rhs("lvml", m=5, C=3)
    y = np.array([[0.0, 1.0, 2.0], [0.0, 0.5, 3.0]])
    out = f(0.0, y)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[:, 1], f(0.0, y[:, 1]))


def test_flow_rhs_at_zero_is_alpha_over_C():
    # early times: all three agree, dmu/dt = alpha/C with alpha = 1/m, and the focus is at rest
    for method in LOSS_NAMES:
        dmu, dnu = flow.flow_rhs(method, m=5, C=3)(0.0, [0.0, 0.0])
        assert dmu == pytest.approx(1 / 15, rel=1e-12)
        assert dnu == pytest.approx(0.0, abs=1e-15)


# ---------------------------------------------------------------- solve_flow


@pytest.mark.parametrize("method", LOSS_NAMES)
def test_solve_flow_matches_an_independent_radau_solve_of_the_official_odes(method):
    t = np.linspace(0.0, 2000.0, 41)
    mu, nu = flow.solve_flow(method, t, m=5, C=3)
    ref = solve_ivp(
        naive_rhs(method, 5, 3),
        (0, 2000.0),
        [0.0, 0.0],
        method="Radau",
        t_eval=t,
        rtol=1e-12,
        atol=1e-14,
    ).y
    np.testing.assert_allclose(mu, ref[0], atol=1e-7)
    np.testing.assert_allclose(nu, ref[1], atol=1e-7)


@pytest.mark.parametrize("method", LOSS_NAMES)
def test_solve_flow_stated_accuracy_at_the_official_setting(method):
    # the docstring's claim: accurate to 1e-6 up to t = 4e5 at m = 100, C = 1000
    t = np.geomspace(1.0, 4e5, 60)
    mu, nu = flow.solve_flow(method, t, m=100, C=1000)
    mu_ref, nu_ref = flow.solve_flow(method, t, m=100, C=1000, rtol=1e-12, atol=1e-14)
    assert np.max(np.abs(mu - mu_ref)) < 1e-6
    assert np.max(np.abs(nu - nu_ref)) < 1e-6


def test_solve_flow_reaches_the_official_settings_late_state():
    # m = 100, C = 1000, t = 4e5: the hard focus logit ends far above the soft one
    mu, nu = {}, {}
    for method in LOSS_NAMES:
        mu[method], nu[method] = flow.solve_flow(method, [4e5], m=100, C=1000)
    assert nu["hard"][0] > nu["lvml"][0] > nu["soft"][0] + 1.0
    assert 12.0 < mu["soft"][0] < 13.5


def test_solve_flow_starts_at_zero_and_keeps_the_shape():
    mu, nu = flow.solve_flow("soft", [0.0, 1.0, 2.0], m=5, C=3)
    assert mu.shape == nu.shape == (3,)
    assert mu[0] == 0.0 and nu[0] == 0.0 and mu[1] > 0


def test_hybrid_switch_at_zero_is_hard_and_past_the_end_is_soft():
    t = np.linspace(0.0, 300.0, 31)
    hard = flow.solve_flow("hard", t, m=5, C=3)
    soft = flow.solve_flow("soft", t, m=5, C=3)
    np.testing.assert_allclose(
        flow.solve_flow("hybrid", t, m=5, C=3, switch_time=0.0), hard, atol=1e-9
    )
    np.testing.assert_allclose(
        flow.solve_flow("hybrid", t, m=5, C=3, switch_time=300.0), soft, atol=1e-9
    )
    np.testing.assert_allclose(
        flow.solve_flow("hybrid", t, m=5, C=3, switch_time=1e6), soft, atol=1e-9
    )


def test_hybrid_is_soft_then_hard_and_continuous_at_the_switch():
    switch = 37.5
    t = np.concatenate([np.linspace(0.0, switch, 16), switch + np.geomspace(1e-6, 500.0, 30)])
    mu, nu = flow.solve_flow("hybrid", t, m=5, C=3, switch_time=switch)
    soft_mu, soft_nu = flow.solve_flow("soft", t[:16], m=5, C=3)
    np.testing.assert_allclose(mu[:16], soft_mu, atol=1e-9)
    np.testing.assert_allclose(nu[:16], soft_nu, atol=1e-9)
    # continuous: a millionth after the switch the state has barely moved
    assert abs(mu[16] - mu[15]) < 1e-6 and abs(nu[16] - nu[15]) < 1e-6
    # after the switch it is the hard flow started from the soft state
    ref = solve_ivp(
        naive_rhs("hard", 5, 3),
        (switch, t[-1]),
        [mu[15], nu[15]],
        method="Radau",
        t_eval=t[16:],
        rtol=1e-12,
        atol=1e-14,
    ).y
    np.testing.assert_allclose(mu[16:], ref[0], atol=1e-7)
    np.testing.assert_allclose(nu[16:], ref[1], atol=1e-7)
    # and differs from pure soft later on (the switch did something)
    assert nu[-1] > flow.solve_flow("soft", t, m=5, C=3)[1][-1] + 1.0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "adam"}, ValueError, "method"),
        ({"method": 3}, ValueError, "method"),
        ({"m": 1}, ValueError, "m must be >= 2"),
        ({"m": 2.5}, TypeError, "m must be an int"),
        ({"C": 1}, ValueError, "C must be >= 2"),
        ({"t": [-1.0, 2.0]}, ValueError, "t must be >= 0"),
        ({"t": [0.0, 2.0, 1.0]}, ValueError, "t must be strictly increasing"),
        ({"t": [[0.0, 1.0]]}, ValueError, "t must be a non-empty 1-D"),
        ({"t": [0.0, np.inf]}, ValueError, "finite"),
        ({"method": "hybrid"}, ValueError, "switch_time is required"),
        ({"method": "hybrid", "switch_time": -1.0}, ValueError, "switch_time"),
        ({"method": "soft", "switch_time": 3.0}, ValueError, "switch_time is only used"),
    ],
)
def test_solve_flow_rejects_bad_arguments(kwargs, error, match):
    args = {"method": "soft", "m": 5, "C": 3, "t": [0.0, 1.0]}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        flow.solve_flow(**args)


def test_flow_rhs_rejects_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        flow.flow_rhs("hybrid", m=5, C=3)
    with pytest.raises(ValueError, match="C must be >= 2"):
        flow.flow_rhs("soft", m=5, C=0)


# ---------------------------------------------------------------- focus held fixed


def fixed_focus_ode(method, alpha, C, t_end):
    """mu(t_end) from the fixed-focus ODE, integrated numerically (the closed forms' referee)."""

    def f(s, y):
        mu = y[0]
        if method == "soft":
            return [alpha / (np.exp(alpha * mu) + C - 1)]
        if method == "hard":
            return [alpha / (np.exp(mu) + C - 1)]
        b = np.exp(mu) / (np.exp(mu) + C - 1)
        return [alpha * b / ((np.exp(mu) + C - 1) * (alpha * b + (1 - alpha) / C))]

    return solve_ivp(f, (0, t_end), [0.0], method="LSODA", rtol=1e-12, atol=1e-14).y[0, -1]


@pytest.mark.parametrize("method", LOSS_NAMES)
@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.6, 1.0])
@pytest.mark.parametrize("C", [2, 3, 20, 1000])
def test_fixed_focus_margin_solves_the_fixed_focus_ode(method, alpha, C):
    for t_end in (1.0, 100.0, 1e4):
        assert flow.fixed_focus_margin(method, alpha, t_end, C=C) == pytest.approx(
            fixed_focus_ode(method, alpha, C, t_end), abs=1e-8, rel=1e-9
        )


def test_the_hard_fixed_focus_margin_is_the_lambert_w_formula():
    from scipy.special import lambertw

    for alpha, C, t in ((0.3, 3, 50.0), (1.0, 20, 1e3), (0.8, 1000, 4e5)):
        x = (alpha * t + 1) / (C - 1)
        expected = x - np.real(lambertw(np.exp(x) / (C - 1)))
        assert flow.fixed_focus_margin("hard", alpha, t, C=C) == pytest.approx(expected, rel=1e-12)


def test_fixed_focus_margin_has_no_overflow_at_huge_times():
    mu = flow.fixed_focus_margin("hard", 1.0, 1e9, C=3)  # e^x with x = 5e8 would overflow
    assert np.exp(mu) + 2 * mu == pytest.approx(1e9 + 1, rel=1e-12)


def test_soft_margin_is_the_hard_margin_at_time_alpha_squared_t():
    t = np.linspace(0.0, 500.0, 11)
    for alpha in (0.1, 0.5):
        np.testing.assert_allclose(
            alpha * flow.fixed_focus_margin("soft", alpha, t, C=3),
            flow.fixed_focus_margin("hard", 1.0, alpha**2 * t, C=3),
            rtol=1e-12,
            atol=1e-14,
        )


def test_fixed_focus_margin_broadcasts_and_keeps_scalars():
    assert isinstance(flow.fixed_focus_margin("lvml", 0.5, 10.0, C=3), float)
    out = flow.fixed_focus_margin(
        "lvml", np.array([[0.2], [0.8]]), np.array([1.0, 10.0, 100.0]), C=3
    )
    assert out.shape == (2, 3)
    assert out[0, 2] == pytest.approx(flow.fixed_focus_margin("lvml", 0.2, 100.0, C=3), rel=1e-12)


def test_fixed_focus_values_reproduce_the_digest_table():
    # the course's derivation at C = 20 (reference digest §5.3b): mu, L, -dL/dalpha
    cases = {
        ("soft", 0.2, 1e3): (9.149, 1.398, 6.889),
        ("hard", 0.6, 1e4): (8.672, 1.200, 2.992),
        ("lvml", 0.2, 1e4): (8.996, 1.429, 3.956),
    }
    for (method, alpha, t), expected in cases.items():
        mu = flow.fixed_focus_margin(method, alpha, t, C=20)
        got = (
            mu,
            flow.reduced_loss(method, alpha, mu, C=20),
            flow.focus_incentive(method, alpha, mu, C=20),
        )
        np.testing.assert_allclose(got, expected, atol=1.5e-3)


@pytest.mark.parametrize("method", LOSS_NAMES)
def test_focus_incentive_is_minus_the_derivative_of_the_reduced_loss(method):
    for alpha, mu, C in ((0.3, 2.0, 3), (0.7, 9.0, 20), (0.5, 0.0, 1000)):
        h = 1e-6
        derivative = (
            flow.reduced_loss(method, alpha + h, mu, C=C)
            - flow.reduced_loss(method, alpha - h, mu, C=C)
        ) / (2 * h)
        assert flow.focus_incentive(method, alpha, mu, C=C) == pytest.approx(
            -derivative, rel=1e-6, abs=1e-8
        )


def test_reduced_losses_start_at_log_C_and_floor_where_the_chapter_says():
    for method in LOSS_NAMES:
        assert flow.reduced_loss(method, 0.4, 0.0, C=7) == pytest.approx(np.log(7), rel=1e-12)
    alpha, C = 0.4, 5
    assert flow.reduced_loss("soft", alpha, 200.0, C=C) < 1e-30
    assert flow.reduced_loss("hard", alpha, 200.0, C=C) == pytest.approx((1 - alpha) * np.log(C))
    assert flow.reduced_loss("lvml", alpha, 200.0, C=C) == pytest.approx(
        -np.log(alpha + (1 - alpha) / C)
    )
    assert flow.reduced_loss("lvml", 1.0, 0.0, C=C) == pytest.approx(np.log(C))


@pytest.mark.parametrize("alpha", [0.2, 0.6, 0.9])
def test_focus_incentive_after_the_classifier_adapts(alpha):
    # the chapter's section-3 limits: soft -> 0, hard -> log C, lvml -> (C-1)/(C alpha + 1 - alpha)
    C = 20
    early, late = 1e3, 1e8
    inc = {
        k: [
            flow.focus_incentive(k, alpha, flow.fixed_focus_margin(k, alpha, t, C=C), C=C)
            for t in (early, late)
        ]
        for k in LOSS_NAMES
    }
    assert inc["soft"][1] < 0.05 * max(inc["soft"][0], 1.0) and inc["soft"][1] < 1e-2
    assert inc["hard"][1] == pytest.approx(np.log(C), rel=1e-4)
    assert inc["hard"][0] < inc["hard"][1]
    assert inc["lvml"][1] == pytest.approx((C - 1) / (C * alpha + 1 - alpha), rel=1e-4)


# ---------------------------------------------------------------- orbits


def test_hard_orbit_potential_is_the_integral():
    for C in (2, 3, 1000):
        for mu in (0.05, 1.0, 13.0):
            integral, _ = quad(
                lambda s, C=C: (np.exp(s) + C - 1) * np.log(C * np.exp(s) / (np.exp(s) + C - 1)),
                0,
                mu,
                epsabs=0,
                epsrel=1e-13,
            )
            assert flow.orbit_potential("hard", mu, C=C) == pytest.approx(integral / C, rel=1e-9)


@pytest.mark.parametrize("method", LOSS_NAMES)
@pytest.mark.parametrize("m, C, t_end", [(5, 3, 2000.0), (100, 1000, 4e5), (2, 2, 500.0)])
def test_orbit_holds_along_the_ode_solution(method, m, C, t_end):
    t = np.geomspace(1e-2, t_end, 80)
    mu, nu = flow.solve_flow(method, t, m=m, C=C)
    np.testing.assert_allclose(flow.orbit(method, mu, m=m, C=C), nu, atol=1e-7, rtol=1e-8)
    scale = 1 + flow.attention_potential(nu, m - 1)
    assert np.max(np.abs(flow.orbit_invariant(method, mu, nu, m=m, C=C)) / scale) < 1e-7


def test_orbit_invariant_is_not_zero_off_the_orbit():
    mu, nu = flow.solve_flow("hard", [200.0], m=5, C=3)
    # the soft orbit does not hold on the hard path: the test can tell orbits apart
    assert abs(flow.orbit_invariant("soft", mu, nu, m=5, C=3)[0]) > 1.0
    assert abs(flow.orbit_invariant("hard", mu, nu + 0.01, m=5, C=3)[0]) > 1e-3


def test_orbit_rejects_negative_margins():
    with pytest.raises(ValueError, match="mu must be >= 0"):
        flow.orbit("soft", -1.0, m=5, C=3)


# ---------------------------------------------------------------- late times


@pytest.mark.parametrize("m, C", [(5, 3), (20, 20), (100, 1000)])
def test_late_time_focus_error_is_the_asymptote(m, C):
    t = np.array([1e7, 1e9, 1e11])
    ratio = {}
    for method in LOSS_NAMES:
        _mu, nu = flow.solve_flow(method, t, m=m, C=C)
        error = (m - 1) / (np.exp(nu) + m - 1)
        ratio[method] = error / flow.late_time_focus_error(method, t, m=m, C=C)
    # hard and lvml: 1/t, the relative correction shrinks like 1/t too (100x per 100x in time)
    for method in ("hard", "lvml"):
        excess = ratio[method] - 1
        assert np.all(excess > 0) and excess[-1] < 1e-5
        assert excess[0] / excess[1] > 50  # (at 1e11 the excess is at the solver's tolerance)
    # soft: 1/(log t)^2, approached from above, slowly (the correction is of order 1/log t)
    excess = ratio["soft"] - 1
    assert np.all(np.diff(excess) < 0) and np.all(excess > 0.01) and excess[-1] < 0.03


def test_soft_loses_to_hard_late_but_leads_early():
    t = np.array([30.0, 2000.0])
    soft_nu = flow.solve_flow("soft", t, m=5, C=3)[1]
    hard_nu = flow.solve_flow("hard", t, m=5, C=3)[1]
    assert soft_nu[0] > hard_nu[0] + 0.2 and hard_nu[1] > soft_nu[1] + 3.0


def test_late_time_focus_error_rejects_small_times():
    with pytest.raises(ValueError, match="t must be > 1"):
        flow.late_time_focus_error("soft", [0.5, 10.0], m=5, C=3)


# ---------------------------------------------------------------- Euler and gradient descent


def test_euler_flow_converges_to_solve_flow_at_first_order():
    _mu_ref, nu_ref = flow.solve_flow("lvml", [40.0], m=5, C=3)
    errors = [
        abs(flow.euler_flow("lvml", 40.0, m=5, C=3, step=h)[1] - nu_ref[0]) for h in (0.1, 0.05)
    ]
    assert errors[0] / errors[1] == pytest.approx(2.0, rel=0.05)


def test_euler_flow_rejects_a_fractional_number_of_steps():
    with pytest.raises(ValueError, match="whole number of steps"):
        flow.euler_flow("soft", 1.0, m=5, C=3, step=0.3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: flow.fixed_focus_margin("soft", 0.0, 1.0, C=3), "alpha"),
        (lambda: flow.fixed_focus_margin("soft", 1.5, 1.0, C=3), "alpha"),
        (lambda: flow.fixed_focus_margin("soft", 0.5, 1.0, C=1), "C must be >= 2"),
        (lambda: flow.fixed_focus_margin("soft", 0.5, -1.0, C=3), "t must be >= 0"),
        (lambda: flow.fixed_focus_margin("ha", 0.5, 1.0, C=3), "method"),
        (lambda: flow.orbit("soft", 1.0, m=1, C=3), "m must be >= 2"),
        (lambda: flow.focus_incentive("soft", 0.5, np.nan, C=3), "mu must be finite"),
    ],
)
def test_closed_forms_reject_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- soft's fixed-focus incentive


@pytest.mark.parametrize("alpha", [0.2, 0.6, 1.0])
def test_soft_fixed_focus_incentive_asymptote_is_the_leading_term(alpha):
    # along the closed-form fixed-focus solution at C = 20, t in [1e6, 1e8]
    C, t = 20, np.geomspace(1e6, 1e8, 5)
    exact = flow.focus_incentive("soft", alpha, flow.fixed_focus_margin("soft", alpha, t, C=C), C=C)
    asymptote = flow.soft_fixed_focus_incentive_asymptote(alpha, t, C=C)
    assert np.max(np.abs(asymptote / exact - 1)) < 0.01
    # the ratio tends to 1: the relative error falls with t
    assert np.all(np.diff(np.abs(asymptote / exact - 1)) < 0)
    # the form the chapter once stated, log t / (alpha^2 t), is off by about (C - 1)/alpha
    old = np.log(t) / (alpha**2 * t)
    assert np.all(np.abs(old / exact - 1) > 0.9)


def test_soft_fixed_focus_incentive_asymptote_needs_log_alpha_squared_t():
    # log t in place of log(alpha^2 t): 30 % off at alpha = 0.2, t = 1e6, outside the tolerance
    C, alpha, t = 20, 0.2, 1e6
    exact = flow.focus_incentive("soft", alpha, flow.fixed_focus_margin("soft", alpha, t, C=C), C=C)
    wrong = (C - 1) * np.log(t) / (alpha**3 * t)
    assert abs(wrong / exact - 1) > 0.25
    assert isinstance(flow.soft_fixed_focus_incentive_asymptote(alpha, t, C=C), float)


def test_soft_fixed_focus_incentive_asymptote_rejects_bad_arguments():
    with pytest.raises(ValueError, match="t must be > 1/alpha"):
        flow.soft_fixed_focus_incentive_asymptote(0.5, [2.0, 100.0], C=3)
    with pytest.raises(ValueError, match="alpha"):
        flow.soft_fixed_focus_incentive_asymptote(0.0, 100.0, C=3)
    with pytest.raises(ValueError, match="C must be >= 2"):
        flow.soft_fixed_focus_incentive_asymptote(0.5, 100.0, C=1)


def test_soft_effective_margin_is_the_perfect_focus_margin_at_alpha_squared_t_not_t():
    # chapter 5, section 3: at alpha = 0.2, t = 1000, alpha mu = 1.83 = hard(alpha = 1, t = 40)
    soft = 0.2 * flow.fixed_focus_margin("soft", 0.2, 1000.0, C=20)
    assert soft == pytest.approx(flow.fixed_focus_margin("hard", 1.0, 40.0, C=20), rel=1e-12)
    assert flow.fixed_focus_margin("hard", 1.0, 1000.0, C=20) > soft + 4.0  # 6.77 against 1.83


def test_soft_lead_over_hard_shrinks_like_one_over_C():
    # chapter 5, section 4: the largest alpha_soft - alpha_hard at m = 100, times C
    scaled = {}
    for C in (100, 1000):
        t = np.geomspace(C, 400.0 * C, 1500)
        alpha = {
            k: 1 / (1 + 99 * np.exp(-flow.solve_flow(k, t, m=100, C=C)[1]))
            for k in ("soft", "hard")
        }
        scaled[C] = C * np.max(alpha["soft"] - alpha["hard"])
    assert 20 < scaled[100] < 30 and 20 < scaled[1000] < 30  # about 24/C and 27/C
    assert scaled[1000] / scaled[100] < 1.3  # a 1/sqrt(C) law would give 3.2


def test_sgd_flow_time_subtracts_the_momentum_lag():
    steps = np.array([0, 5, 9, 10, 109])
    times = flow.sgd_flow_time(steps, lr=0.01)  # a step is 0.1, after 9 steps of lag
    assert np.allclose(times, [0.0, 0.0, 0.0, 0.1, 10.0])
    no_lag = flow.sgd_flow_time(steps, lr=0.01, momentum=0.0)
    assert np.allclose(no_lag, steps * 0.01)
    assert np.allclose(flow.sgd_flow_time(steps, lr=0.01, lag=0), steps * 0.1)
    with pytest.raises(ValueError, match="momentum"):
        flow.sgd_flow_time([1, 2], lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="lr"):
        flow.sgd_flow_time([1, 2], lr=0.0)
