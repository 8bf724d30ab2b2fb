"""Each chapter-6 check passes the reference, says "to do" for an unimplemented stub, and fails
plausible wrong answers with a hint that points at the mistake; none of them raises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import checks, flow, metrics, mosaic_training
from course_lib.checks import ch06, solutions
from course_lib.engine import History


def stub(*args, **kwargs):
    raise NotImplementedError


def test_train_hybrid_check(run_check):
    ok, out = run_check(checks.check_train_hybrid, mosaic_training.train_hybrid)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_train_hybrid, stub)
    assert not ok and "[to do]" in out

    def one_optimizer(
        focus, classifier, data, soft_epochs, hard_epochs, lr, batch_size=256, momentum=0.9
    ):
        f, c = ch06._one_optimizer(
            (focus, classifier), [("soft", soft_epochs), ("hard", hard_epochs)]
        )
        for mine, trained in ((focus, f), (classifier, c)):
            mine.load_state_dict(trained.state_dict())
        return (
            focus,
            classifier,
            History(
                torch.arange(soft_epochs + hard_epochs),
                {
                    "loss": torch.zeros(soft_epochs + hard_epochs),
                    "mean_a_z": torch.zeros(soft_epochs + hard_epochs),
                },
            ),
        )

    ok, out = run_check(checks.check_train_hybrid, one_optimizer)
    assert not ok and "FRESH optimizer" in out

    def hard_first(
        focus, classifier, data, soft_epochs, hard_epochs, lr, batch_size=256, momentum=0.9
    ):
        parts = []
        for name, epochs in (("hard", hard_epochs), ("soft", soft_epochs)):
            if epochs:
                parts.append(
                    mosaic_training.train_mosaic(
                        focus, classifier, data, name, epochs=epochs, lr=lr, batch_size=batch_size
                    )[2]
                )
        return (
            focus,
            classifier,
            parts[0].then(parts[1]) if len(parts) == 2 else parts[0],
        )

    ok, out = run_check(checks.check_train_hybrid, hard_first)
    assert not ok and "soft comes FIRST" in out

    def soft_only(
        focus, classifier, data, soft_epochs, hard_epochs, lr, batch_size=256, momentum=0.9
    ):
        return mosaic_training.train_mosaic(
            focus,
            classifier,
            data,
            "soft",
            epochs=soft_epochs + hard_epochs,
            lr=lr,
            batch_size=batch_size,
        )

    ok, out = run_check(checks.check_train_hybrid, soft_only)
    assert not ok and "soft loss only" in out

    def last_phase_history(
        focus, classifier, data, soft_epochs, hard_epochs, lr, batch_size=256, momentum=0.9
    ):
        out = mosaic_training.train_hybrid(
            focus, classifier, data, soft_epochs, hard_epochs, lr, batch_size
        )
        last = History(out[2].steps[-1:], {k: v[-1:] for k, v in out[2].records.items()})
        return out[0], out[1], last

    ok, out = run_check(checks.check_train_hybrid, last_phase_history)
    assert not ok and "one value per epoch" in out


def simulated_lag(beta, steps):
    """Another correct form: measure it, with two torch optimizers on a steady gradient."""
    kept = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    fresh = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt_kept = torch.optim.SGD([kept], lr=1.0, momentum=beta)
    for _ in range(2000):  # the kept buffer at its steady value g/(1 - beta)
        opt_kept.zero_grad()
        kept.sum().backward()
        opt_kept.step()
    start = kept.detach().clone()
    opt_fresh = torch.optim.SGD([fresh], lr=1.0, momentum=beta)
    for _ in range(steps):
        for opt, p in ((opt_kept, kept), (opt_fresh, fresh)):
            opt.zero_grad()
            p.sum().backward()
            opt.step()
    kept_step = 1.0 / (1.0 - beta)
    return float((start - kept.detach()) - (-fresh.detach())) / kept_step


@pytest.mark.parametrize(
    "student",
    [
        flow.fresh_momentum_lag,
        lambda beta, k: sum(beta**n for n in range(1, k + 1)),
        lambda beta, k: np.float32(beta * (1 - beta**k) / (1 - beta)),
        lambda beta, k: torch.tensor(beta * (1 - beta**k) / (1 - beta), dtype=torch.float64),
        lambda beta, k: np.array(beta / (1 - beta) - beta ** (k + 1) / (1 - beta)),
    ],
    ids=["reference", "sum", "float32", "tensor", "0-d array, other form"],
)
def test_fresh_momentum_lag_accepts_correct_forms(run_check, student):
    ok, out = run_check(checks.check_fresh_momentum_lag, student)
    assert ok and "[passed]" in out, out


def test_fresh_momentum_lag_accepts_a_measurement(run_check):
    assert abs(simulated_lag(0.9, 4) - flow.fresh_momentum_lag(0.9, 4)) < 1e-9
    ok, out = run_check(checks.check_fresh_momentum_lag, simulated_lag)
    assert ok and "[passed]" in out, out


@pytest.mark.parametrize(
    "student, hint",
    [
        (lambda beta, k: beta / (1 - beta), "infinitely many steps"),
        (lambda beta, k: 1 / (1 - beta) if beta < 1 else 0.0, "time constant"),
        (lambda beta, k: (1 - beta**k) / (1 - beta), "beta^0 + ... + beta^(k-1)"),
        (lambda beta, k: beta * (1 - beta ** max(k - 1, 0)) / (1 - beta), "stopped at k - 1"),
        (lambda beta, k: beta * (1 - beta**k) / (1 - beta) ** 2, "plain SGD steps"),
        (lambda beta, k: beta**k, "the k-th step alone"),
        (lambda beta, k: beta**k / (1 - beta), "the k-th step's shortfall"),
        (lambda beta, k: -beta * (1 - beta**k) / (1 - beta), "positive lag"),
        (lambda beta, k: beta * (1 - beta**k) / (1 - beta) + (k == 0), "after 0 steps"),
        (lambda beta, k: 1.1 * beta * (1 - beta**k) / (1 - beta) + (beta == 0), "beta = 0"),
        (lambda beta, k: 1.1 * beta * (1 - beta**k) / (1 - beta), "at beta = 0.9, steps = 4"),
        (lambda beta, k: [1.0, 2.0], "one number"),
        (lambda beta, k: "nine", "a number"),
    ],
)
def test_fresh_momentum_lag_rejects_wrong_derivations(run_check, student, hint):
    ok, out = run_check(checks.check_fresh_momentum_lag, student)
    assert not ok and "[wrong]" in out and hint in out, out


def test_fresh_momentum_lag_check_stub(run_check):
    ok, out = run_check(checks.check_fresh_momentum_lag, stub)
    assert not ok and "[to do]" in out


def test_fresh_momentum_lag_reference():
    assert flow.fresh_momentum_lag(0.9, 0) == 0.0
    assert abs(flow.fresh_momentum_lag(0.9, 10_000) - 9.0) < 1e-9  # chapter 6's beta/(1-beta)
    assert abs(flow.fresh_momentum_lag(0.9, 4) - (0.9 + 0.81 + 0.729 + 0.6561)) < 1e-12
    with pytest.raises(ValueError, match="beta"):
        flow.fresh_momentum_lag(1.0, 3)
    with pytest.raises(ValueError, match="steps"):
        flow.fresh_momentum_lag(0.9, -1)


def test_the_follow_up_horizon_is_where_the_switch_matters():
    """The exercise's horizon is twice the peak of soft's lead, where the switch matters."""

    def alpha(method, t, switch_time=None):
        nu = flow.solve_flow(method, t, m=10, C=10, switch_time=switch_time)[1]
        return np.exp(nu) / (np.exp(nu) + 9)

    t = np.linspace(0.0, 400.0, 4001)
    peak = t[np.argmax(alpha("soft", t) - alpha("hard", t))]
    assert abs(ch06.EXERCISE_HORIZON - 2 * peak) < 1.0
    best = flow.best_switch_time(ch06.EXERCISE_HORIZON, ch06.EXERCISE_CANDIDATES, m=10, C=10)
    assert best == 168.0
    h = [ch06.EXERCISE_HORIZON]
    gain = alpha("hybrid", h, best)[0] - max(alpha("hard", h)[0], alpha("soft", h)[0])
    assert gain > 3e-3  # visible; at t = 800 it is 1.8e-4
    late = flow.best_switch_time(800.0, np.arange(0, 101) * 8.0, m=10, C=10)
    assert alpha("hybrid", [800.0], late)[0] - alpha("hard", [800.0])[0] < 2e-4


def _eliminator_by_simulation(C, m):
    """Another correct form: count the eliminator's cells over every (class, most-attended
    segment) pair once, each equally likely (exact, where sampling would be off by noise)."""
    counts = dict.fromkeys(("FTPT", "FFPT", "FTPF", "FFPF"), 0)
    for label in range(C):
        for attended in range(m):  # the foreground sits at segment 0
            if label != C - 1:  # a class it finds: attends to the foreground
                counts["FTPT"] += 1
            else:
                counts["FTPT" if attended == 0 else "FFPT"] += 1
    total = C * m
    return {k: 100 * v / total for k, v in counts.items()}


@pytest.mark.parametrize(
    "student",
    [
        solutions.shortcut_table,
        lambda C, m: {k: np.float32(v) for k, v in solutions.shortcut_table(C, m).items()},
        lambda C, m: {k: torch.tensor(v) for k, v in solutions.shortcut_table(C, m).items()},
        lambda C, m: {
            "FTPT": 100 * ((C - 1) + 1 / m) / C,
            "FFPT": 100 * (m - 1) / (m * C),
            "FTPF": 0,
            "FFPF": 0,
        },
        _eliminator_by_simulation,
    ],
    ids=["reference", "float32", "tensors", "other form, ints", "enumeration"],
)
def test_shortcut_table_accepts_correct_forms(run_check, student):
    ok, out = run_check(checks.check_shortcut_table, student)
    assert ok and "[passed]" in out, out


@pytest.mark.parametrize("hint", list(ch06._SHORTCUT_MISTAKES))
def test_shortcut_table_names_each_mistake(run_check, hint):
    ok, out = run_check(checks.check_shortcut_table, ch06._SHORTCUT_MISTAKES[hint])
    assert not ok and "[wrong]" in out and hint in out, out


@pytest.mark.parametrize(
    "student, hint",
    [
        (lambda C, m: {**solutions.shortcut_table(C, m), "FTPT": 100.0}, "sum to 100"),
        (lambda C, m: {"FTPT": 50.0, "FFPT": 30.0, "FTPF": 10.0, "FFPF": 10.0}, "FTPF and FFPF"),
        (lambda C, m: {"FTPT": 60.0, "FFPT": 40.0, "FTPF": 0.0, "FFPF": 0.0}, "split the mosaics"),
        (lambda C, m: {"FTPT": 1.0}, "keys"),
        (lambda C, m: {k: [1.0, 2.0] for k in ("FTPT", "FFPT", "FTPF", "FFPF")}, "one number"),
    ],
)
def test_shortcut_table_rejects_other_wrong_tables(run_check, student, hint):
    ok, out = run_check(checks.check_shortcut_table, student)
    assert not ok and "[wrong]" in out and hint in out, out


def test_shortcut_table_check_stub(run_check):
    ok, out = run_check(checks.check_shortcut_table, stub)
    assert not ok and "[to do]" in out


def test_shortcut_table_reference():
    assert solutions.shortcut_table(2, 2) == {"FTPT": 75.0, "FFPT": 25.0, "FTPF": 0.0, "FFPF": 0.0}
    table = solutions.shortcut_table(3, 20)
    assert abs(table["FFPT"] - 100 * 19 / 60) < 1e-12
    with pytest.raises(ValueError, match="m"):
        solutions.shortcut_table(3, 1)


def test_per_class_focus_accuracy_reference():
    alpha = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    out = metrics.per_class_focus_accuracy(
        alpha, torch.tensor([0, 1, 1, 1, 0]), torch.tensor([0, 0, 1, 1, 1]), 3
    )
    assert out[0] == 100.0 and abs(out[1] - 200 / 3) < 1e-12 and torch.isnan(out[2])
    import pytest

    with pytest.raises(ValueError, match="labels"):
        metrics.per_class_focus_accuracy(
            alpha, torch.zeros(5, dtype=torch.long), torch.tensor([0, 0, 1, 1, 5]), 3
        )
