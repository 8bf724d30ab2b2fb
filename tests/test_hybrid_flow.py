"""The hybrid in the ODE (chapter 6): the switch at 0 and past the end, the late-time rate
of every hybrid, the best switch time, and gradient descent across the switch."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import flow, flow_descent


def alpha(nu, m):
    return np.exp(nu) / (np.exp(nu) + m - 1)


@pytest.mark.parametrize("m, C", [(5, 3), (10, 10)])
def test_switch_at_zero_is_hard_and_past_the_end_is_soft(m, C):
    t = np.linspace(0.0, 400.0, 41)
    hybrid0 = np.array(flow.solve_flow("hybrid", t, m=m, C=C, switch_time=0.0))
    late = np.array(flow.solve_flow("hybrid", t, m=m, C=C, switch_time=400.0))
    hard = np.array(flow.solve_flow("hard", t, m=m, C=C))
    soft = np.array(flow.solve_flow("soft", t, m=m, C=C))
    np.testing.assert_allclose(hybrid0, hard, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(late, soft, rtol=1e-8, atol=1e-10)
    assert np.abs(hard - soft).max() > 0.1  # the two really differ


@pytest.mark.parametrize("switch", [2.0, 30.0, 300.0])
def test_every_hybrid_has_hard_attentions_late_time_rate(switch):
    t = np.geomspace(1e6, 1e10, 5)
    nu = flow.solve_flow("hybrid", t, m=5, C=3, switch_time=switch)[1]
    ratio = (1 - alpha(nu, 5)) / flow.late_time_focus_error("hard", t, m=5, C=3)
    assert np.all(np.abs(ratio - 1) < 1e-3), ratio
    soft_nu = flow.solve_flow("soft", t, m=5, C=3)[1]
    assert (1 - alpha(soft_nu, 5))[-1] > 1e4 * (1 - alpha(nu, 5))[-1]


def test_best_switch_time():
    assert flow.best_switch_time(100.0, [0.0, 35.0, 100.0], m=5, C=3) == 35.0
    assert flow.best_switch_time(30.0, [0.0, 15.0, 30.0], m=5, C=3) == 30.0  # soft leads: no switch
    grid = np.linspace(0.0, 100.0, 21)
    best = flow.best_switch_time(100.0, grid, m=5, C=3)
    finals = [
        alpha(flow.solve_flow("hybrid", [100.0], m=5, C=3, switch_time=T)[1][0], 5) for T in grid
    ]
    assert best == grid[int(np.argmax(finals))] and 25.0 <= best <= 45.0
    assert max(finals) > max(finals[0], finals[-1]) + 1e-3  # it beats both pure methods
    with pytest.raises(ValueError, match="candidates"):
        flow.best_switch_time(100.0, [], m=5, C=3)
    with pytest.raises(ValueError, match=">= 0"):
        flow.best_switch_time(100.0, [-1.0], m=5, C=3)
    with pytest.raises(ValueError, match="horizon"):
        flow.best_switch_time(0.0, [1.0], m=5, C=3)


def test_gradient_descent_across_the_switch_follows_the_hybrid_ode():
    lr, steps, switch = 0.01, 4000, 2500
    times, _, nu, asym = flow_descent.gradient_descent_path(
        "hybrid", steps, m=5, C=3, lr=lr, record_every=200, switch_step=switch
    )
    nu_ode = flow.solve_flow("hybrid", times, m=5, C=3, switch_time=switch * lr)[1]
    gap = np.max(np.abs(nu - nu_ode))
    assert gap < 2e-3 and asym.max() < 1e-12
    nu_soft = flow.solve_flow("soft", times, m=5, C=3)[1]
    nu_hard = flow.solve_flow("hard", times, m=5, C=3)[1]
    assert np.max(np.abs(nu - nu_soft)) > 20 * gap and np.max(np.abs(nu - nu_hard)) > 20 * gap


def test_lvml_beside_the_hybrid():
    """Chapter 6: LVML leads soft by up to 0.60 at (20, 20); the hybrid wins at (5, 3), H = 100."""
    t = np.linspace(0.0, 1000.0, 1001)
    lead = alpha(flow.solve_flow("lvml", t, m=20, C=20)[1], 20) - alpha(
        flow.solve_flow("soft", t, m=20, C=20)[1], 20
    )
    assert abs(lead.max() - 0.5996) < 1e-3 and abs(t[np.argmax(lead)] - 501) <= 5
    hybrid = alpha(flow.solve_flow("hybrid", [100.0], m=5, C=3, switch_time=35.0)[1][0], 5)
    lvml = alpha(flow.solve_flow("lvml", [100.0], m=5, C=3)[1][0], 5)
    assert abs(hybrid - 0.9466) < 1e-4 and abs(lvml - 0.9216) < 1e-4
