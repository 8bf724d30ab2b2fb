"""Each chapter-6 check passes the reference, says "to do" for an unimplemented stub, and fails
plausible wrong answers with a hint that points at the mistake; none of them raises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import checks, flow, metrics, mosaic_training
from course_lib.checks import ch06


def stub(*args, **kwargs):
    raise NotImplementedError


def test_train_hybrid_check(run_check):
    ok, out = run_check(checks.check_train_hybrid, mosaic_training.train_hybrid)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_train_hybrid, stub)
    assert not ok and "[to do]" in out

    def one_optimizer(focus, classifier, data, soft_epochs, hard_epochs, lr, batch_size=256,
                      momentum=0.9):
        f, c = ch06._one_optimizer((focus, classifier),
                                   [("soft", soft_epochs), ("hard", hard_epochs)])
        for mine, trained in ((focus, f), (classifier, c)):
            mine.load_state_dict(trained.state_dict())
        return focus, classifier, mosaic_training.MosaicHistory(
            torch.zeros(soft_epochs + hard_epochs), torch.zeros(soft_epochs + hard_epochs))

    ok, out = run_check(checks.check_train_hybrid, one_optimizer)
    assert not ok and "FRESH optimizer" in out

    def hard_first(focus, classifier, data, soft_epochs, hard_epochs, lr, batch_size=256,
                   momentum=0.9):
        parts = []
        for name, epochs in (("hard", hard_epochs), ("soft", soft_epochs)):
            if epochs:
                parts.append(mosaic_training.train_mosaic(
                    focus, classifier, data, name, epochs=epochs, lr=lr,
                    batch_size=batch_size)[2])
        return focus, classifier, mosaic_training.MosaicHistory(
            *(torch.cat(col) for col in zip(*parts)))

    ok, out = run_check(checks.check_train_hybrid, hard_first)
    assert not ok and "soft comes FIRST" in out

    def soft_only(focus, classifier, data, soft_epochs, hard_epochs, lr, batch_size=256,
                  momentum=0.9):
        return mosaic_training.train_mosaic(focus, classifier, data, "soft",
                                            epochs=soft_epochs + hard_epochs, lr=lr,
                                            batch_size=batch_size)

    ok, out = run_check(checks.check_train_hybrid, soft_only)
    assert not ok and "soft loss only" in out

    def last_phase_history(focus, classifier, data, soft_epochs, hard_epochs, lr,
                           batch_size=256, momentum=0.9):
        out = mosaic_training.train_hybrid(focus, classifier, data, soft_epochs, hard_epochs,
                                           lr, batch_size)
        return out[0], out[1], mosaic_training.MosaicHistory(out[2].loss[-1:],
                                                             out[2].mean_a_z[-1:])

    ok, out = run_check(checks.check_train_hybrid, last_phase_history)
    assert not ok and "one value per epoch" in out


@pytest.mark.slow  # trains every candidate switch: seconds each
def test_best_switch_time_check(run_check):
    ok, out = run_check(checks.check_best_switch_time, flow.best_switch_time)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_best_switch_time, stub)
    assert not ok and "[to do]" in out

    def finals(m, C, horizon, candidates):
        return [flow.solve_flow("hybrid", m, C, [horizon], switch_time=T)[1][0]
                for T in candidates]

    ok, out = run_check(checks.check_best_switch_time,
                        lambda m, C, h, c: float(np.argmax(finals(m, C, h, c))))
    assert not ok and "index" in out
    ok, out = run_check(checks.check_best_switch_time,
                        lambda m, C, h, c: float(c[int(np.argmin(finals(m, C, h, c)))]))
    assert not ok and "WORST" in out
    ok, out = run_check(checks.check_best_switch_time, lambda m, C, h, c: float(c[-1]))
    assert not ok and "[wrong]" in out


def test_best_switch_time_check_tests_the_exercise_horizon():
    """The exercise's horizon is twice the peak of soft's lead, where the switch matters."""
    def alpha(method, t, switch_time=None):
        nu = flow.solve_flow(method, 10, 10, t, switch_time=switch_time)[1]
        return np.exp(nu) / (np.exp(nu) + 9)

    t = np.linspace(0.0, 400.0, 4001)
    peak = t[np.argmax(alpha("soft", t) - alpha("hard", t))]
    assert abs(ch06.EXERCISE_HORIZON - 2 * peak) < 1.0
    best = flow.best_switch_time(10, 10, ch06.EXERCISE_HORIZON, ch06.EXERCISE_CANDIDATES)
    assert best == 168.0
    h = [ch06.EXERCISE_HORIZON]
    gain = alpha("hybrid", h, best)[0] - max(alpha("hard", h)[0], alpha("soft", h)[0])
    assert gain > 3e-3  # visible; at t = 800 it is 1.8e-4
    late = flow.best_switch_time(10, 10, 800.0, np.arange(0, 101) * 8.0)
    assert alpha("hybrid", [800.0], late)[0] - alpha("hard", [800.0])[0] < 2e-4


@pytest.mark.slow  # trains every candidate switch: seconds each
def test_best_switch_time_check_accepts_every_scalar_form(run_check):
    for convert in (float, np.float64, np.float32, lambda v: np.array(v),
                    lambda v: torch.tensor(v, dtype=torch.float64)):
        ok, out = run_check(checks.check_best_switch_time,
                            lambda m, C, h, c, f=convert: f(flow.best_switch_time(m, C, h, c)))
        assert ok and "[passed]" in out, (convert, out)


@pytest.mark.slow  # trains every candidate switch: seconds each
def test_best_switch_time_check_rejects_wrong_switches_with_hints(run_check):
    def only_on_the_exercise(answer):  # right everywhere but on the exercise's horizon
        def student(m, C, h, c):
            if h == ch06.EXERCISE_HORIZON:
                return answer(m, C, h, c)
            return flow.best_switch_time(m, C, h, c)
        return student

    ok, out = run_check(checks.check_best_switch_time,
                        only_on_the_exercise(lambda m, C, h, c: 0.0))
    assert not ok and "pure hard" in out
    ok, out = run_check(checks.check_best_switch_time,  # pure soft is the worst there
                        only_on_the_exercise(lambda m, C, h, c: float(c[-1])))
    assert not ok and "WORST" in out
    ok, out = run_check(checks.check_best_switch_time,  # a grid step late
                        only_on_the_exercise(lambda m, C, h, c: 176.0))
    assert not ok and "the best switch is 168" in out and "..., 336]" in out
    ok, out = run_check(checks.check_best_switch_time,  # a fixed fraction of the budget
                        lambda m, C, h, c: float(c[np.argmin(np.abs(np.asarray(c) - 0.3 * h))]))
    assert not ok and "[wrong]" in out
    ok, out = run_check(checks.check_best_switch_time, lambda m, C, h, c: [168.0])
    assert not ok and "a float" in out


@pytest.mark.slow  # trains every candidate switch: seconds each
def test_best_switch_time_check_names_ties_and_the_margin(run_check):
    def finals(m, C, horizon, candidates, row):
        return np.array([flow.solve_flow("hybrid", m, C, [horizon], switch_time=T)[row][0]
                         for T in candidates])

    def last_of_ties(m, C, h, c):  # the last maximum where the text asks for the first
        nu = finals(m, C, h, c, 1)
        return float(c[len(c) - 1 - int(np.argmax(nu[::-1]))])

    ok, out = run_check(checks.check_best_switch_time, last_of_ties)
    assert not ok and "tie" in out and "first" in out and "WORST" not in out
    ok, out = run_check(checks.check_best_switch_time,  # the classifier's margin, not the focus
                        lambda m, C, h, c: float(c[int(np.argmax(finals(m, C, h, c, 0)))]))
    assert not ok and "margin" in out and "WORST" not in out
    ok, out = run_check(checks.check_best_switch_time,  # the smallest focus is still "WORST"
                        lambda m, C, h, c: float(c[int(np.argmin(finals(m, C, h, c, 1)))]))
    assert not ok and "WORST" in out and "margin" not in out


def test_per_class_focus_accuracy_check(run_check):
    ok, out = run_check(checks.check_per_class_focus_accuracy, metrics.per_class_focus_accuracy)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_per_class_focus_accuracy, stub)
    assert not ok and "[to do]" in out
    ok, out = run_check(checks.check_per_class_focus_accuracy,
                        lambda a, f, y, n: metrics.per_class_focus_accuracy(a, f, y, n) / 100)
    assert not ok and "percentages" in out
    ok, out = run_check(checks.check_per_class_focus_accuracy,
                        lambda a, f, y, n: torch.nan_to_num(
                            metrics.per_class_focus_accuracy(a, f, y, n)))
    assert not ok and "NaN" in out

    def overall(a, f, y, n):
        return torch.full((n,), 100 * (a.argmax(1) == f).double().mean().item())

    ok, out = run_check(checks.check_per_class_focus_accuracy, overall)
    assert not ok and "overall" in out
    ok, out = run_check(checks.check_per_class_focus_accuracy, lambda a, f, y, n: torch.zeros(2))
    assert not ok and "shape" in out


def test_per_class_focus_accuracy_reference():
    alpha = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    out = metrics.per_class_focus_accuracy(alpha, torch.tensor([0, 1, 1, 1, 0]),
                                           torch.tensor([0, 0, 1, 1, 1]), 3)
    assert out[0] == 100.0 and abs(out[1] - 200 / 3) < 1e-12 and torch.isnan(out[2])
    import pytest
    with pytest.raises(ValueError, match="labels"):
        metrics.per_class_focus_accuracy(alpha, torch.zeros(5, dtype=torch.long),
                                         torch.tensor([0, 0, 1, 1, 5]), 3)
