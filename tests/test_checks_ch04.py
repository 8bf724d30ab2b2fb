"""Each chapter-4 check passes the reference, says "to do" for an unimplemented stub, and fails
plausible wrong answers with a hint that points at the mistake; none of them raises."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import brentq

from course_lib import checks, flow, losses
from course_lib.checks import ch04, solutions


def stub(*args):
    raise NotImplementedError


def _logits(segments, classifier):
    return classifier(segments.reshape(-1, segments.shape[-1])).reshape(*segments.shape[:2], -1)


def _log_q(segments, labels, classifier):
    log_p = torch.log_softmax(_logits(segments, classifier), -1)
    return log_p.gather(-1, labels.view(-1, 1, 1).expand(-1, segments.shape[1], 1))[..., 0]


def expect(run_check, check, fn, *fragments):
    ok, out = run_check(check, fn)
    assert not ok and "[wrong]" in out, out
    for fragment in fragments:
        assert fragment in out, out


def test_soft_loss_check(run_check):
    check = checks.check_soft_attention_loss
    ok, out = run_check(check, losses.soft_attention_loss)
    assert ok and "[passed]" in out
    ok, out = run_check(check, stub)
    assert not ok and "[to do]" in out
    expect(run_check, check, losses.hard_attention_loss, "hard attention", "blend")
    expect(
        run_check,
        check,
        lambda a, x, y, g: F.cross_entropy((a[..., None] * _logits(x, g)).sum(1), y),
        "averaged the segments' logits",
    )
    expect(
        run_check, check, lambda a, x, y, g: F.cross_entropy(g(x.mean(1)), y), "weight each segment"
    )
    expect(
        run_check,
        check,
        lambda a, x, y, g: F.cross_entropy(g((a[..., None] * x).mean(1)), y),
        "divides it by m",
    )
    expect(
        run_check,
        check,
        lambda a, x, y, g: F.cross_entropy(g((a[..., None] * x).sum(1)), y, reduction="sum"),
        "MEAN over the batch",
    )
    ok, out = run_check(
        check, lambda a, x, y, g: F.cross_entropy(g((a[..., None] * x).sum(1)), y, reduction="none")
    )
    assert not ok and "one number" in out


def test_hard_loss_check(run_check):
    check = checks.check_hard_attention_loss
    ok, out = run_check(check, losses.hard_attention_loss)
    assert ok and "[passed]" in out
    ok, out = run_check(check, stub)
    assert not ok and "[to do]" in out
    expect(run_check, check, losses.lvml_loss, "that is LVML")
    expect(run_check, check, losses.soft_attention_loss, "soft attention")
    expect(run_check, check, lambda a, x, y, g: -_log_q(x, y, g).mean(), "weight each")
    expect(
        run_check,
        check,
        lambda a, x, y, g: -(a * _log_q(x, y, g)).sum(0).mean(),
        "axes are swapped",
    )
    expect(run_check, check, lambda a, x, y, g: (a * _log_q(x, y, g)).sum(1).mean(), "sign")


def test_lvml_loss_check(run_check):
    check = checks.check_lvml_loss
    ok, out = run_check(check, losses.lvml_loss)
    assert ok and "[passed]" in out
    ok, out = run_check(check, stub)
    assert not ok and "[to do]" in out
    expect(
        run_check,
        check,
        lambda a, x, y, g: F.cross_entropy((a[..., None] * _logits(x, g)).sum(1), y),
        "averaged the LOGITS",
    )

    def naive(a, x, y, g):  # right formula, no log-sum-exp
        q = torch.softmax(_logits(x, g), -1).gather(-1, y.view(-1, 1, 1).expand(-1, x.shape[1], 1))[
            ..., 0
        ]
        return -torch.log((a * q).sum(1)).mean()

    expect(run_check, check, naive, "underflow", "logsumexp")

    def clipped(a, x, y, g):  # the official code's +1e-30
        q = torch.softmax(_logits(x, g), -1).gather(-1, y.view(-1, 1, 1).expand(-1, x.shape[1], 1))[
            ..., 0
        ]
        return -torch.log((a * q).sum(1) + 1e-30).mean()

    expect(run_check, check, clipped, "log space")
    expect(
        run_check,
        check,
        lambda a, x, y, g: -torch.logsumexp(torch.log(a) + _log_q(x, y, g), 0).mean(),
        "axes are swapped",
    )
    expect(run_check, check, losses.hard_attention_loss, "hard attention")


def test_alpha_gradient_check(run_check):
    check = checks.check_alpha_gradient
    ok, out = run_check(check, losses.alpha_gradient)
    assert ok and "[passed]" in out
    ok, out = run_check(check, stub)
    assert not ok and "[to do]" in out

    def batch_mean(loss, alpha, segments, labels, classifier):
        return losses.alpha_gradient(loss, alpha, segments, labels, classifier) / len(labels)

    expect(run_check, check, batch_mean, "'soft'", "batch size")

    def lvml_wrong(kind):
        def fn(loss, alpha, segments, labels, classifier):
            if loss != "lvml":
                return losses.alpha_gradient(loss, alpha, segments, labels, classifier)
            q = _log_q(segments, labels, classifier).exp().detach()
            if kind == "unnormalised":
                return -q
            return -alpha * q / (alpha * q).sum(1, keepdim=True)

        return fn

    expect(run_check, check, lvml_wrong("unnormalised"), "'lvml'", "normalisation")
    expect(run_check, check, lvml_wrong("posterior"), "'lvml'", "posterior")

    def hard_wrong(loss, alpha, segments, labels, classifier):
        if loss == "hard":
            return _log_q(segments, labels, classifier).detach()
        return losses.alpha_gradient(loss, alpha, segments, labels, classifier)

    expect(run_check, check, hard_wrong, "'hard'", "sign is flipped")

    def hard_probability(loss, alpha, segments, labels, classifier):
        if loss == "hard":
            return _log_q(segments, labels, classifier).exp().detach()
        return losses.alpha_gradient(loss, alpha, segments, labels, classifier)

    expect(run_check, check, hard_probability, "'hard'", "-log q_j, not q_j")

    def score_gradient(loss, alpha, segments, labels, classifier):
        g = losses.alpha_gradient(loss, alpha, segments, labels, classifier)
        return alpha * (g - (alpha * g).sum(1, keepdim=True))

    expect(run_check, check, score_gradient, "SCORES")
    ok, out = run_check(check, lambda loss, a, x, y, g: a.sum(1))
    assert not ok and "shape" in out


@pytest.mark.parametrize(
    "student",
    [
        solutions.incentive_crossover,
        lambda C: ((C - 1) / math.log(C) - 1) / (C - 1),  # straight from the equation
        lambda C: np.float32(1 / np.log(C) - 1 / (C - 1)),
        lambda C: torch.tensor(1 / math.log(C) - 1 / (C - 1), dtype=torch.float64),
        lambda C: np.array([1 / math.log(C) - 1 / (C - 1)]),
        lambda C: brentq(
            lambda a: flow.focus_incentive("lvml", a, 800.0, C=C) - math.log(C),
            1e-6,
            1.0,
            xtol=1e-14,
        ),  # found numerically at a converged classifier
    ],
    ids=["reference", "unsimplified", "float32", "tensor", "one-element array", "root"],
)
def test_incentive_crossover_accepts_correct_forms(run_check, student):
    ok, out = run_check(checks.check_incentive_crossover, student)
    assert ok and "[passed]" in out, out


@pytest.mark.parametrize(
    "student, hint",
    [
        (lambda C: 1 / math.log(C), "not 1/alpha"),
        (lambda C: (C - 1) / (C * math.log(C)), "keep the (1 - alpha)/C"),
        (lambda C: 1 / math.log2(C) - 1 / (C - 1), "natural logarithm"),
        (lambda C: 1 / math.log(C) + 1 / (C - 1), "the sign of the second term"),
        (lambda C: 1 / math.log(C) - 1 / C, "C - 1, not C"),
        (lambda C: ch04._finite_difference_crossover(C), "finite differences"),
        (lambda C: 1 - 1 / math.log(C) + 1 / (C - 1), "not 1 - alpha*"),
        (lambda C: 1.05 * (1 / math.log(C) - 1 / (C - 1)), "for C = 2 the crossover is"),
        (lambda C: math.log(C), "not a focus quality"),
        (lambda C: [0.3, 0.4], "one number"),
        (lambda C: "lvml", "a number"),
    ],
)
def test_incentive_crossover_rejects_wrong_derivations(run_check, student, hint):
    ok, out = run_check(checks.check_incentive_crossover, student)
    assert not ok and "[wrong]" in out and hint in out, out


def test_incentive_crossover_check_stub(run_check):
    ok, out = run_check(checks.check_incentive_crossover, stub)
    assert not ok and "[to do]" in out


def test_incentive_crossover_reference():
    """At alpha* the two incentives of a converged classifier agree; below it LVML's is larger."""
    for C in (2, 10, 20):
        a = solutions.incentive_crossover(C)
        hard, lvml = (flow.focus_incentive(k, a, 60.0, C=C) for k in ("hard", "lvml"))
        assert math.isclose(hard, lvml, rel_tol=1e-9)
        assert flow.focus_incentive("lvml", a / 2, 60.0, C=C) > hard
        assert flow.focus_incentive("lvml", (1 + a) / 2, 60.0, C=C) < hard
    with pytest.raises(ValueError, match="C"):
        solutions.incentive_crossover(1)


def test_compare_prediction(capsys):
    measured = {"soft": 93.0, "hard": 82.0, "lvml": 83.0}
    assert checks.compare_prediction("soft", measured) is True
    assert "[passed]" in capsys.readouterr().out
    assert checks.compare_prediction("hard", measured) is False
    assert "'soft' won" in capsys.readouterr().out
    assert checks.compare_prediction(None, measured) is False
    assert "[to do]" in capsys.readouterr().out
