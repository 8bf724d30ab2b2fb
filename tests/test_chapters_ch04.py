"""course_lib.chapters.ch04: chapter 4's recipes (settings, run builders, measurements, the
closed forms of the fixed-focus section, the REINFORCE statistics), each against a direct
computation, and each rejecting a bad argument by name."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from course_lib import flow
from course_lib.chapters import ch04
from course_lib.focus import LinearClassifier, LinearFocus, MLPClassifier, MLPFocus
from course_lib.law import LOSS_NAMES
from course_lib.metrics import evaluate_mosaics
from course_lib.mosaic import load_digit_images, make_image_mosaics, make_linear_mosaics
from course_lib.mosaic_training import train_mosaic_runs

QUICK = dict(
    linear_classes=10,
    linear_m=10,
    linear_train=1000,
    linear_epochs=100,
    linear_lr=0.2,
    seeds=3,
    images="digits",
    image_m=5,
    image_train=2000,
    image_test=1000,
    image_epochs=40,
    image_lr=0.05,
    shortcut_train=2000,
    shortcut_epochs=40,
    fixed_classes=10,
    fixed_m=5,
    fixed_train=500,
    fixed_epochs=200,
    fixed_lr=0.5,
    batch_size=250,
    official_train=5000,
    official_epochs=40,
)


# ------------------------------------------------------------------ settings and images


def test_settings_are_frozen_and_print_every_field():
    settings = ch04.Settings(**QUICK)
    assert repr(settings).startswith("Settings(linear_classes=10, linear_m=10,")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.seeds = 4


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("images", "mnist", ValueError),
        ("seeds", 0, ValueError),
        ("linear_m", 10.0, TypeError),
        ("fixed_lr", -0.5, ValueError),
    ],
)
def test_settings_reject_a_bad_field_by_name(field, value, error):
    with pytest.raises(error, match=field):
        ch04.Settings(**{**QUICK, field: value})


def test_load_images_digits_and_cifar_scaling(monkeypatch):
    images, classes = ch04.load_images("digits", "test")
    reference = load_digit_images("test")
    assert torch.equal(images, reference[0]) and torch.equal(classes, reference[1])
    fake = torch.tensor([[0.0, 0.5, 1.0]]), torch.tensor([3])
    monkeypatch.setattr(ch04, "load_cifar10", lambda split: fake)
    scaled, cifar_classes = ch04.load_images("cifar10", "train")
    assert torch.equal(scaled, torch.tensor([[-1.0, 0.0, 1.0]]))  # the official [-1, 1]
    assert torch.equal(cifar_classes, fake[1])
    assert ch04.IMAGE_SHAPES == {"digits": (8, 8), "cifar10": (3, 32, 32)}


def test_load_images_rejects_a_bad_kind_or_split():
    with pytest.raises(ValueError, match="kind"):
        ch04.load_images("mnist", "train")
    with pytest.raises(ValueError, match="split"):
        ch04.load_images("digits", "valid")


# ------------------------------------------------------------------ runs


def test_runs_for_seeds_each_loss_of_a_seed_alike():
    focus, classifiers, names = ch04.runs_for(
        lambda: LinearFocus(4, init="xavier"), lambda: LinearClassifier(4, 3, init="xavier"), 2
    )
    assert names == [*LOSS_NAMES, *LOSS_NAMES]
    weights = [f.net.weight for f in focus]
    assert all(torch.equal(weights[0], w) for w in weights[1:3])  # one seed, three losses
    assert not torch.equal(weights[0], weights[3])  # the next seed
    torch.manual_seed(1)
    expected = LinearFocus(4, init="xavier")
    assert torch.equal(weights[3], expected.net.weight)
    assert torch.equal(classifiers[4].net.weight, classifiers[3].net.weight)


def test_runs_for_moves_to_the_device():
    focus, classifiers, _ = ch04.runs_for(
        lambda: LinearFocus(4), lambda: LinearClassifier(4, 3), 1, torch.device("cpu")
    )
    assert all(p.device.type == "cpu" for m in focus + classifiers for p in m.parameters())


def test_runs_for_rejects_bad_arguments():
    with pytest.raises(TypeError, match="make_focus"):
        ch04.runs_for(LinearFocus(4), lambda: LinearClassifier(4, 3), 1)
    with pytest.raises(ValueError, match="seeds"):
        ch04.runs_for(lambda: LinearFocus(4), lambda: LinearClassifier(4, 3), 0)


def test_evaluate_runs_groups_evaluate_mosaics_by_loss():
    runs = ch04.runs_for(
        lambda: LinearFocus(4, init="xavier"), lambda: LinearClassifier(4, 3, init="xavier"), 2
    )
    data = make_linear_mosaics(30, 3, 5, seed=1)
    results = ch04.evaluate_runs(*runs, data, torch.device("cpu"))
    assert list(results) == list(LOSS_NAMES) and all(len(v) == 2 for v in results.values())
    direct = evaluate_mosaics(runs[0][4], runs[1][4], data)  # seed 1, hard
    assert torch.equal(results["hard"][1].a_z, direct.a_z)
    only_soft = ch04.evaluate_runs(runs[0][:1], runs[1][:1], ["soft"], data)
    assert list(only_soft) == ["soft"]


def test_evaluate_runs_rejects_bad_arguments():
    runs = ch04.runs_for(lambda: LinearFocus(4), lambda: LinearClassifier(4, 3), 1)
    data = make_linear_mosaics(10, 3, 5)
    with pytest.raises(ValueError, match="one entry per run"):
        ch04.evaluate_runs(runs[0], runs[1][:2], runs[2], data)
    with pytest.raises(ValueError, match="names"):
        ch04.evaluate_runs(runs[0], runs[1], ["soft", "hard", "hybrid"], data)


def test_digit_runs_is_runs_for_trained_and_evaluated():
    results, test = ch04.digit_runs(n_train=60, epochs=1, seeds=1, batch_size=30, n_test=20)
    train = make_image_mosaics(*load_digit_images("train"), [0, 1, 2], 5, 60, seed=0)
    expected_test = make_image_mosaics(*load_digit_images("test"), [0, 1, 2], 5, 20, seed=1)
    assert torch.equal(test.segments, expected_test.segments)
    runs = ch04.runs_for(lambda: MLPFocus(64, 32), lambda: MLPClassifier(64, 3, 32), 1)
    train_mosaic_runs(runs[0], runs[1], train, runs[2], epochs=1, lr=0.05, batch_size=30)
    for k, name in enumerate(runs[2]):
        direct = evaluate_mosaics(runs[0][k], runs[1][k], expected_test)
        assert torch.allclose(results[name][0].a_z, direct.a_z)


def test_digit_runs_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_train"):
        ch04.digit_runs(n_train=0, epochs=1, seeds=1, batch_size=10)
    with pytest.raises(ValueError, match="n_test"):
        ch04.digit_runs(n_train=10, epochs=1, seeds=1, batch_size=10, n_test=0)


# ------------------------------------------------------------------ measurements


def test_first_time_interpolates_the_first_crossing():
    values = np.array([0.0, 0.4, 0.8, 0.2, 0.9])
    times = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    assert ch04.first_time(values, times) == pytest.approx(12.5)  # the first crossing only
    assert ch04.first_time(values, times, level=0.8) == 20.0  # reached exactly
    assert ch04.first_time(np.array([0.6, 0.7]), np.array([1.0, 2.0])) == 1.0  # at the start


def test_first_time_rejects_bad_input():
    with pytest.raises(ValueError, match="never reach"):
        ch04.first_time(np.array([0.1, 0.2]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="values and times"):
        ch04.first_time(np.array([0.1, 0.9]), np.array([0.0, 1.0, 2.0]))


def test_attention_profile_counts_the_bounds_as_intermediate():
    a_z = torch.tensor([0.0, 0.19, 0.2, 0.5, 0.8, 0.81, 1.0, 1.0])
    assert ch04.attention_profile(SimpleNamespace(a_z=a_z)) == (0.25, 0.375, 0.375)
    with pytest.raises(TypeError, match="evaluation"):
        ch04.attention_profile(SimpleNamespace(a_z=[0.5]))


def test_fixed_focus_curves_and_nesting():
    history = SimpleNamespace(
        loss=torch.arange(8.0).reshape(4, 2), incentive=-torch.arange(8.0).reshape(4, 2)
    )
    names, alphas = ["soft", "soft", "hard", "hard"], [0.2, 0.4, 0.2, 0.4]
    curves = ch04.fixed_focus_curves(history, names, alphas)
    assert list(curves) == list(zip(names, alphas))
    loss, incentive = curves["hard", 0.2]
    assert isinstance(loss, np.ndarray) and loss.tolist() == [4.0, 5.0]
    assert incentive.tolist() == [-4.0, -5.0]
    nested = ch04.nested_by_loss(curves, 1)
    assert list(nested) == ["soft", "hard"] and list(nested["soft"]) == [0.2, 0.4]
    assert nested["soft"][0.4].tolist() == [-2.0, -3.0]
    with pytest.raises(ValueError, match="names and alphas"):
        ch04.fixed_focus_curves(history, names[:3], alphas)
    with pytest.raises(ValueError, match="part"):
        ch04.nested_by_loss(curves, 2)


# ------------------------------------------------------------------ closed forms


@pytest.mark.parametrize("a", [0.2, 0.6, 1.0])
def test_lvml_limit_is_the_reduced_loss_at_a_large_margin(a):
    C = 10
    after = flow.reduced_loss("lvml", a + 0.01, 60.0, C=C) if a < 1 else -math.log(1.01 - 0.01 / C)
    by_flow = flow.reduced_loss("lvml", a, 60.0, C=C) - after
    assert ch04.lvml_limit(a, C) == pytest.approx(by_flow, abs=1e-12)
    assert ch04.lvml_derivative_limit(a, C) > ch04.lvml_limit(a, C)  # first order overshoots
    assert ch04.lvml_derivative_limit(a, C) == pytest.approx(
        0.01 * float(flow.focus_incentive("lvml", a, 60.0, C=C)), rel=1e-9
    )


def test_closed_forms_reject_bad_alpha_or_classes():
    with pytest.raises(ValueError, match="a must be <= 1"):
        ch04.lvml_limit(1.5, 10)
    with pytest.raises(ValueError, match="C"):
        ch04.lvml_derivative_limit(0.5, 1)
    with pytest.raises(ValueError, match="a must be < 1"):
        ch04.hard_share(1.0, 100.0, C=20)


def test_closed_form_incentive_against_flow():
    t = np.array([0.0, 10.0, 100.0])
    for name in LOSS_NAMES:
        mu = flow.fixed_focus_margin(name, 0.4, t, C=5)
        expected = flow.reduced_loss(name, 0.4, mu, C=5) - flow.reduced_loss(name, 0.41, mu, C=5)
        got = ch04.closed_form_incentive(name, 0.4, t, C=5)
        assert np.allclose(got, expected, rtol=0, atol=1e-15)
        at_one = ch04.closed_form_incentive(name, 1.0, t, C=5)
        mu_one = flow.fixed_focus_margin(name, 1.0, t, C=5)
        assert np.allclose(at_one, 0.01 * flow.focus_incentive(name, 1.0, mu_one, C=5))
        wrong = ch04.closed_form_incentive(name, 0.4, t, C=5, margin_alpha=1.0)
        assert not np.allclose(wrong[1:], got[1:])  # the margin law depends on alpha


def test_incentive_predictions_time_axis():
    steps = np.array([0, 9, 10, 30])
    predicted = ch04.incentive_predictions(steps, lr=0.5, alphas=[0.2, 1.0], C=10)
    assert list(predicted) == [(n, a) for n in LOSS_NAMES for a in (0.2, 1.0)]
    lag = 0.9 / (1 - 0.9)
    flow_time = np.maximum(steps - lag, 0) * 0.5 / (1 - 0.9)
    expected = ch04.closed_form_incentive("hard", 0.2, flow_time, C=10)
    assert np.array_equal(predicted["hard", 0.2], expected)
    assert predicted["hard", 0.2][0] == predicted["hard", 0.2][1]  # within the lag: t = 0
    fast = ch04.incentive_predictions(steps, lr=0.5, alphas=[0.2], C=10, lag=0, time_scale=3)
    slow = ch04.incentive_predictions(3 * steps, lr=0.5, alphas=[0.2], C=10, lag=0)
    assert np.allclose(fast["soft", 0.2], slow["soft", 0.2], rtol=1e-12, atol=0)


def test_incentive_predictions_rejects_bad_arguments():
    with pytest.raises(ValueError, match="lr"):
        ch04.incentive_predictions([1, 2], lr=-1.0, alphas=[0.2], C=10)
    with pytest.raises(ValueError, match="momentum"):
        ch04.incentive_predictions([1, 2], lr=0.5, alphas=[0.2], C=10, momentum=1.0)
    with pytest.raises(ValueError, match="time_scale"):
        ch04.incentive_predictions([1, 2], lr=0.5, alphas=[0.2], C=10, time_scale=0)


def test_rising_points_and_error():
    epochs = np.array([2, 4, 6, 8, 10, 12])
    predicted = {
        ("soft", 0.2): np.array([1.0, 2.0, 3.0, 3.5, 4.0, 3.0]),
        ("soft", 0.4): np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ("hard", 0.2): np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0]),
    }
    rising = ch04.rising_points(predicted, epochs, first_epoch=6, below=0.95)
    assert rising["soft", 0.2].tolist() == [False, False, True, True, False, False]
    assert rising["soft", 0.4].tolist() == [False, False, True, True, True, False]
    assert not rising["hard", 0.2].any()  # falling from the start: nothing compared
    measured = {key: 1.1 * p for key, p in predicted.items()}
    measured["soft", 0.4] = predicted["soft", 0.4] * np.array([1, 1, 1, 0.7, 1, 1])
    errors = ch04.rising_error(measured, predicted, rising)
    assert errors["soft"] == pytest.approx(0.3) and errors["hard"] == 0.0
    with pytest.raises(ValueError, match="same"):
        ch04.rising_error(measured, predicted, {("soft", 0.2): rising["soft", 0.2]})
    with pytest.raises(ValueError, match="shape"):
        ch04.rising_points(predicted, epochs[:3])


def test_default_init_classifier_draws_after_the_seed():
    classifier = ch04.default_init_classifier(20, seed=12)
    torch.manual_seed(12)
    reference = torch.nn.Linear(21, 20)
    assert torch.equal(classifier.net.weight, reference.weight)
    assert torch.equal(classifier.net.bias, reference.bias)
    with pytest.raises(ValueError, match="n_classes"):
        ch04.default_init_classifier(1)


def test_hard_share_reaches_95_percent_at_t_95():
    C = 20
    beta = C**-0.05
    mu = math.log(beta * (C - 1) / (1 - beta))
    for a in (0.2, 0.6):
        t_95 = (math.exp(mu) + (C - 1) * mu - 1) / a
        assert ch04.hard_share(a, t_95, C=C) == pytest.approx(0.95, abs=1e-9)
        assert ch04.hard_share(a, t_95 / 5, C=C) < 0.95


# ------------------------------------------------------------------ REINFORCE statistics


def test_flat_gradient_concatenates_in_order():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([[3.0]], requires_grad=True)
    loss = (w**2).sum() + 5 * b.sum()
    assert torch.equal(ch04.flat_gradient(loss, [w, b]), torch.tensor([2.0, 4.0, 5.0]))


def test_flat_gradient_rejects_bad_arguments():
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="loss"):
        ch04.flat_gradient(w * 2, [w])
    with pytest.raises(ValueError, match="params"):
        ch04.flat_gradient((w * 2).sum(), [])


def test_relative_errors_of_an_unbiased_estimator():
    generator = torch.Generator().manual_seed(0)
    exact = torch.tensor([1.0, -2.0, 3.0])
    estimates = exact + 0.5 * torch.randn(4000, 3, generator=generator)
    stats = ch04.relative_errors(estimates, exact, n_focus=1)
    assert list(stats) == ["focus", "classifier"]
    mse, bias2 = stats["focus"]
    assert mse == pytest.approx(0.25, rel=0.1)  # E|noise|^2 / |g|^2 = 0.25 / 1
    assert bias2 < 4 * mse / 4000
    assert stats["classifier"][0] == pytest.approx(0.5 / 13, rel=0.1)


def test_relative_errors_rejects_bad_shapes():
    with pytest.raises(ValueError, match="estimates"):
        ch04.relative_errors(torch.zeros(3), torch.zeros(3), 1)
    with pytest.raises(ValueError, match="n_focus"):
        ch04.relative_errors(torch.zeros(5, 3), torch.ones(3), 3)
