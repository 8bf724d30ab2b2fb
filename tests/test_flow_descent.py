"""Gradient descent on the real model (course_lib.flow_descent, chapter 5, section 6; chapter 6's
hybrid), checked against the flow of course_lib.flow: the symmetry reduction makes plain gradient
descent on the linear focus and classifier exactly Euler's method on the ODE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import flow, flow_descent
from course_lib.law import LOSS_NAMES

torch.set_num_threads(1)


def test_population_mosaics_hold_every_class_at_every_position():
    segments, labels = flow_descent.population_mosaics(4, 3)
    assert segments.shape == (12, 4, 3) and labels.shape == (12,)
    assert torch.equal(segments.sum(dim=(1, 2)), torch.ones(12, dtype=segments.dtype))
    assert torch.equal(segments.sum(dim=1).argmax(1), labels)
    positions = segments.sum(2).argmax(1)
    pairs = {(int(y), int(z)) for y, z in zip(labels, positions)}
    assert len(pairs) == 12


@pytest.mark.parametrize("method", LOSS_NAMES)
def test_gradient_descent_on_the_linear_model_is_euler_on_the_ode(method):
    # the symmetry reduction is exact: GD on the real model IS Euler with step lr on (mu, nu),
    # so it matches euler_flow to rounding, and the ODE to O(lr)
    lr, n_steps = 0.01, 2000
    times, mu, nu, asym = flow_descent.gradient_descent_path(
        method, n_steps, m=5, C=3, lr=lr, record_every=200
    )
    assert asym.max() < 1e-12
    mu_e, nu_e = flow.euler_flow(method, n_steps * lr, m=5, C=3, step=lr)
    assert abs(mu[-1] - mu_e) < 1e-11 and abs(nu[-1] - nu_e) < 1e-11
    mu_o, nu_o = flow.solve_flow(method, times, m=5, C=3)
    assert np.max(np.abs(mu - mu_o)) < 5e-4 and np.max(np.abs(nu - nu_o)) < 5e-4
    assert np.max(np.abs(nu - nu_o)) > 1e-6  # it is O(lr), not zero: the check is not vacuous


def test_hybrid_gradient_descent_follows_the_hybrid_flow():
    lr, switch_step, n_steps = 0.02, 1000, 2000
    times, _mu, nu, _ = flow_descent.gradient_descent_path(
        "hybrid", n_steps, m=5, C=3, lr=lr, record_every=100, switch_step=switch_step
    )
    _mu_o, nu_o = flow.solve_flow("hybrid", times, m=5, C=3, switch_time=switch_step * lr)
    assert np.max(np.abs(nu - nu_o)) < 2e-3
    soft_nu = flow.solve_flow("soft", times, m=5, C=3)[1]
    assert np.max(np.abs(nu - soft_nu)) > 0.1


def test_gradient_descent_path_rejects_bad_arguments():
    with pytest.raises(ValueError, match="lr"):
        flow_descent.gradient_descent_path("soft", 10, m=5, C=3, lr=0.0)
    with pytest.raises(TypeError, match="switch_step"):
        flow_descent.gradient_descent_path("hybrid", 10, m=5, C=3, lr=0.1)
    with pytest.raises(ValueError, match="switch_step is only used"):
        flow_descent.gradient_descent_path("hard", 10, m=5, C=3, lr=0.1, switch_step=3)


def test_gradient_descent_leaves_torch_threads_as_they_were():
    before = torch.get_num_threads()
    flow_descent.gradient_descent_path("soft", 3, m=3, C=2, lr=0.1)
    flow_descent.fixed_focus_gradient_descent("hard", 0.5, 3, m=2, C=3, lr=0.1)
    assert torch.get_num_threads() == before


def test_fixed_focus_gradient_descent_matches_the_closed_form_and_ignores_m():
    times, mu, loss, incentive = flow_descent.fixed_focus_gradient_descent(
        "soft", 0.4, 400, m=2, C=3, lr=0.05, record_every=100
    )
    exact = flow.fixed_focus_margin("soft", 0.4, times, C=3)
    assert np.max(np.abs(mu - exact)) < 2e-3
    np.testing.assert_allclose(incentive, flow.focus_incentive("soft", 0.4, mu, C=3), rtol=1e-9)
    np.testing.assert_allclose(loss, flow.reduced_loss("soft", 0.4, mu, C=3), rtol=1e-9)
    _, mu_m6, _, _ = flow_descent.fixed_focus_gradient_descent(
        "soft", 0.4, 400, m=6, C=3, lr=0.05, record_every=100
    )
    np.testing.assert_allclose(mu_m6, mu, atol=1e-12)  # zero backgrounds: m does not matter
