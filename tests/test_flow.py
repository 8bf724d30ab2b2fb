"""course_lib.flow (chapter 5): the ODEs, the solver, the closed forms, argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import quad, solve_ivp

from course_lib import flow

METHODS = ("soft", "hard", "lvml")


def naive_rhs(method, m, C):
    """The ODEs exactly as the official code's simulator writes them (exponentials, no logistic)."""

    def f(t, y):
        mu, nu = y
        a = np.exp(nu) / (np.exp(nu) + m - 1)
        b = np.exp(mu) / (np.exp(mu) + C - 1)
        if method == "soft":
            return [a / (np.exp(a * mu) + C - 1),
                    a * (1 - a) * (C - 1) * mu / (C * (np.exp(a * mu) + C - 1))]
        if method == "hard":
            return [a / (np.exp(mu) + C - 1), a * (1 - a) * np.log(C * b) / C]
        Z = a * b + (1 - a) / C
        return [a * b / ((np.exp(mu) + C - 1) * Z), (a / C) * (b / Z - 1)]

    return f


# ---------------------------------------------------------------- attention_potential


def test_attention_potential_is_the_integral_of_one_over_one_minus_a():
    for n_others in (1, 4, 99, 2.5):
        for theta in (-3.0, 0.7, 6.0):
            integral, _ = quad(lambda s: (np.exp(s) + n_others) / n_others, 0.0, theta)
            assert flow.attention_potential(theta, n_others) == pytest.approx(integral, rel=1e-12)


def test_attention_potential_keeps_the_input_type():
    assert isinstance(flow.attention_potential(1.0, 3), float)
    out_np = flow.attention_potential(np.array([0.0, 1.0]), 3)
    assert isinstance(out_np, np.ndarray) and out_np.shape == (2,)
    out_t = flow.attention_potential(torch.tensor([0.0, 1.0], dtype=torch.float64), 3)
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_allclose(out_t.numpy(), out_np, rtol=1e-15)


def test_attention_potential_rejects_bad_input():
    with pytest.raises(ValueError, match="n_others"):
        flow.attention_potential(1.0, 0)
    with pytest.raises(TypeError, match="theta"):
        flow.attention_potential("1.0", 3)


# ---------------------------------------------------------------- flow_rhs


@pytest.mark.parametrize("method", METHODS)
def test_flow_rhs_equals_the_official_formulas(method):
    rng = np.random.default_rng(0)
    for m, C in ((5, 3), (100, 1000), (2, 2)):
        f, g = flow.flow_rhs(method, m, C), naive_rhs(method, m, C)
        for mu, nu in rng.uniform(-2, 12, size=(20, 2)):
            np.testing.assert_allclose(f(0.0, [mu, nu]), g(0.0, [mu, nu]), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("method", METHODS)
def test_flow_rhs_does_not_overflow_far_out(method):
    dmu, dnu = flow.flow_rhs(method, 5, 3)(0.0, [800.0, 900.0])
    assert np.isfinite(dmu) and np.isfinite(dnu) and dmu >= 0 and dnu >= 0


def test_flow_rhs_is_vectorised():
    f = flow.flow_rhs("lvml", 5, 3)
    y = np.array([[0.0, 1.0, 2.0], [0.0, 0.5, 3.0]])
    out = f(0.0, y)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[:, 1], f(0.0, y[:, 1]))


def test_flow_rhs_at_zero_is_alpha_over_C():
    # early times: all three agree, dmu/dt = alpha/C with alpha = 1/m, and the focus is at rest
    for method in METHODS:
        dmu, dnu = flow.flow_rhs(method, 5, 3)(0.0, [0.0, 0.0])
        assert dmu == pytest.approx(1 / 15, rel=1e-12)
        assert dnu == pytest.approx(0.0, abs=1e-15)


# ---------------------------------------------------------------- solve_flow


@pytest.mark.parametrize("method", METHODS)
def test_solve_flow_matches_an_independent_radau_solve_of_the_official_odes(method):
    t = np.linspace(0.0, 2000.0, 41)
    mu, nu = flow.solve_flow(method, 5, 3, t)
    ref = solve_ivp(naive_rhs(method, 5, 3), (0, 2000.0), [0.0, 0.0], method="Radau",
                    t_eval=t, rtol=1e-12, atol=1e-14).y
    np.testing.assert_allclose(mu, ref[0], atol=1e-7)
    np.testing.assert_allclose(nu, ref[1], atol=1e-7)


@pytest.mark.parametrize("method", METHODS)
def test_solve_flow_stated_accuracy_at_the_official_setting(method):
    # the docstring's claim: accurate to 1e-6 up to t = 4e5 at m = 100, C = 1000
    t = np.geomspace(1.0, 4e5, 60)
    mu, nu = flow.solve_flow(method, 100, 1000, t)
    mu_ref, nu_ref = flow.solve_flow(method, 100, 1000, t, rtol=1e-12, atol=1e-14)
    assert np.max(np.abs(mu - mu_ref)) < 1e-6
    assert np.max(np.abs(nu - nu_ref)) < 1e-6


def test_solve_flow_reaches_the_official_settings_late_state():
    # m = 100, C = 1000, t = 4e5: the hard focus logit ends far above the soft one
    mu, nu = {}, {}
    for method in METHODS:
        mu[method], nu[method] = flow.solve_flow(method, 100, 1000, [4e5])
    assert nu["hard"][0] > nu["lvml"][0] > nu["soft"][0] + 1.0
    assert 12.0 < mu["soft"][0] < 13.5


def test_solve_flow_starts_at_zero_and_keeps_the_shape():
    mu, nu = flow.solve_flow("soft", 5, 3, [0.0, 1.0, 2.0])
    assert mu.shape == nu.shape == (3,)
    assert mu[0] == 0.0 and nu[0] == 0.0 and mu[1] > 0


def test_hybrid_switch_at_zero_is_hard_and_past_the_end_is_soft():
    t = np.linspace(0.0, 300.0, 31)
    hard = flow.solve_flow("hard", 5, 3, t)
    soft = flow.solve_flow("soft", 5, 3, t)
    np.testing.assert_allclose(flow.solve_flow("hybrid", 5, 3, t, switch_time=0.0), hard,
                               atol=1e-9)
    np.testing.assert_allclose(flow.solve_flow("hybrid", 5, 3, t, switch_time=300.0), soft,
                               atol=1e-9)
    np.testing.assert_allclose(flow.solve_flow("hybrid", 5, 3, t, switch_time=1e6), soft,
                               atol=1e-9)


def test_hybrid_is_soft_then_hard_and_continuous_at_the_switch():
    switch = 37.5
    t = np.concatenate([np.linspace(0.0, switch, 16), switch + np.geomspace(1e-6, 500.0, 30)])
    mu, nu = flow.solve_flow("hybrid", 5, 3, t, switch_time=switch)
    soft_mu, soft_nu = flow.solve_flow("soft", 5, 3, t[:16])
    np.testing.assert_allclose(mu[:16], soft_mu, atol=1e-9)
    np.testing.assert_allclose(nu[:16], soft_nu, atol=1e-9)
    # continuous: a millionth after the switch the state has barely moved
    assert abs(mu[16] - mu[15]) < 1e-6 and abs(nu[16] - nu[15]) < 1e-6
    # after the switch it is the hard flow started from the soft state
    ref = solve_ivp(naive_rhs("hard", 5, 3), (switch, t[-1]), [mu[15], nu[15]], method="Radau",
                    t_eval=t[16:], rtol=1e-12, atol=1e-14).y
    np.testing.assert_allclose(mu[16:], ref[0], atol=1e-7)
    np.testing.assert_allclose(nu[16:], ref[1], atol=1e-7)
    # and differs from pure soft later on (the switch did something)
    assert nu[-1] > flow.solve_flow("soft", 5, 3, t)[1][-1] + 1.0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(method="adam"), ValueError, "method"),
        (dict(method=3), ValueError, "method"),
        (dict(m=1), ValueError, "m must be >= 2"),
        (dict(m=2.5), TypeError, "m must be an int"),
        (dict(C=1), ValueError, "C must be >= 2"),
        (dict(t=[-1.0, 2.0]), ValueError, "t must be >= 0"),
        (dict(t=[0.0, 2.0, 1.0]), ValueError, "t must be strictly increasing"),
        (dict(t=[[0.0, 1.0]]), ValueError, "t must be a non-empty 1-D"),
        (dict(t=[0.0, np.inf]), ValueError, "finite"),
        (dict(method="hybrid"), ValueError, "switch_time is required"),
        (dict(method="hybrid", switch_time=-1.0), ValueError, "switch_time"),
        (dict(method="soft", switch_time=3.0), ValueError, "switch_time is only used"),
    ],
)
def test_solve_flow_rejects_bad_arguments(kwargs, error, match):
    args = dict(method="soft", m=5, C=3, t=[0.0, 1.0])
    args.update(kwargs)
    with pytest.raises(error, match=match):
        flow.solve_flow(**args)


def test_flow_rhs_rejects_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        flow.flow_rhs("hybrid", 5, 3)
    with pytest.raises(ValueError, match="C must be >= 2"):
        flow.flow_rhs("soft", 5, 0)
