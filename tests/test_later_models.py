"""course_lib.later_models: the JoMA re-implementation and the two-layer balance (chapter 7)."""

from __future__ import annotations

import pytest
import torch

from course_lib import later_models as lm


def test_correlation_and_slope_against_hand_values():
    a = torch.tensor([0.0, 1.0, 2.0])
    assert lm.normalised_correlation(a, 3 * a + 5) == pytest.approx(1.0)
    assert lm.normalised_correlation(a, -a) == pytest.approx(-1.0)
    assert lm.least_squares_slope(a, 4 * a - 1) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="one shape"):
        lm.least_squares_slope(a, torch.ones(4))
    with pytest.raises(TypeError, match="actual"):
        lm.normalised_correlation([0.0, 1.0], a)


def test_joma_tokens_are_distributions_with_a_moving_bump():
    X = lm.joma_tokens(n_distinct=10, n_common=10, n_classes=20)
    assert X.shape == (20, 20) and torch.allclose(X.sum(0), torch.ones(20, dtype=X.dtype))
    peaks = X[:10].argmax(0)
    assert peaks[0] == 0 and peaks[-1] >= 8  # the bump moves with the class


def test_joma_prediction_tracks_the_logits_early_and_loses_scale_late():
    run = lm.joma_run(lm.joma_tokens(), steps=2000, every=500)
    assert torch.allclose(run.z[0], run.z_hat[0])  # the constant fits the start
    early = lm.least_squares_slope(run.z[1], run.z_hat[1])
    late = lm.least_squares_slope(run.z[-1], run.z_hat[-1])
    assert 0.75 < early < 1.0 and late < 0.25
    assert min(lm.normalised_correlation(z, h) for z, h in zip(run.z[1:], run.z_hat[1:])) > 0.95
    assert run.top_weight[-1] > 3 * run.top_weight[0]


def test_joma_run_checks_arguments():
    with pytest.raises(ValueError, match="width"):
        lm.joma_run(lm.joma_tokens(), steps=1, width=5)
    with pytest.raises(TypeError, match="X"):
        lm.joma_run([[1.0]], steps=1)


def test_unit_balance_drift_is_first_order_in_the_step():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 5, generator=gen, dtype=torch.float64)
    y = torch.sin(x[:, :2])
    drift = []
    for lr, steps in ((0.02, 100), (0.01, 200)):
        run = lm.train_two_layer_relu(x, y, 8, lr, steps)
        b = run.balance
        drift.append(float((b - b[0]).abs().max()))
    assert 1.8 < drift[0] / drift[1] < 2.2
    assert float((run.size - run.size[0]).abs().max()) > 10 * drift[1]  # the weights move
    with pytest.raises(ValueError, match="w_in"):
        lm.unit_balance(torch.ones(2, 3), torch.ones(1, 3))


def test_special_case_obeys_the_psi_law_and_not_the_linear_one():
    from course_lib import law

    x = torch.linspace(0.2, 0.6, 8, dtype=torch.float64)
    T = 0.5
    drifts = []
    for lr, steps in ((0.1, 600), (0.05, 1200)):
        run = lm.joma_special_case(x, steps=steps, lr=lr, temperature=T, every=steps // 3)
        psi = T * law.attention_potential(run.z / T, run.n)
        invariant = psi - run.strength / (2 * T)
        drifts.append(float((invariant - invariant[0]).abs().max()))
    linear = run.z - run.strength / (2 * T)  # the Psi law with e^theta / n dropped
    assert 1.8 < drifts[0] / drifts[1] < 2.2
    assert float((linear - linear[0]).abs().max()) > 100 * drifts[1]
    for z, s in zip(psi[1:], run.strength[1:]):
        assert abs(lm.least_squares_slope(z, s / (2 * T)) - 1) < 0.01
    with pytest.raises(ValueError, match="masses"):
        lm.joma_special_case(torch.tensor([0.5, 1.5]), steps=1)


def test_the_two_figures_draw():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from course_lib import plotting

    t = np.linspace(0, 1, 5)
    fig = plotting.gate_toy(t, t - 0.5, 2 * t - 1)
    assert len(fig.axes) == 2
    fig2 = plotting.joma_fit(t, t, 1 - t, t / 2)
    assert len(fig2.axes) == 1 and len(fig2.axes[0].lines) == 4  # three curves and y = 1
    plt.close("all")
