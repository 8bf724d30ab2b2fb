"""Each chapter-7 check passes the reference, says "to do" for an unimplemented stub, and fails
plausible wrong answers with a hint that points at the mistake; none of them raises."""

from __future__ import annotations

import math

import torch

from course_lib import checks, conservation, law


def stub(*args):
    raise NotImplementedError


def test_miss_reciprocal_check(run_check):
    ok, out = run_check(checks.check_miss_reciprocal, law.miss_reciprocal)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_miss_reciprocal, stub)
    assert not ok and "[to do]" in out and "not implemented" in out
    cases = {
        "that is a(theta) itself": lambda th, n: torch.exp(th) / (torch.exp(th) + n),
        "that is 1 - a(theta)": lambda th, n: n / (torch.exp(th) + n),
        "1 / a(theta)": lambda th, n: (torch.exp(th) + n) / torch.exp(th),
        "counts the *other* logits": lambda th, n: 1 + torch.exp(th) / (n - 1),
        "not e^{-theta}": lambda th, n: 1 + torch.exp(-th) / n,
        "divide e^theta by n": lambda th, n: 1 + torch.exp(th) * n,
        "invert it": lambda th, n: 2 + torch.exp(th) / n,
    }
    for hint, wrong in cases.items():
        ok, out = run_check(checks.check_miss_reciprocal, wrong)
        assert not ok and "[wrong]" in out and hint in out, (hint, out)
    ok, out = run_check(checks.check_miss_reciprocal, lambda th, n: th.sum())
    assert not ok and "shape" in out
    ok, out = run_check(checks.check_miss_reciprocal, lambda th, n: th @ th)
    assert not ok and ("[error]" in out or "[wrong]" in out)


def test_lemma_coupling_check(run_check):
    ok, out = run_check(checks.check_lemma_coupling, law.lemma_coupling)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_lemma_coupling, stub)
    assert not ok and "[to do]" in out

    def miss(th, n):
        return n / (torch.exp(th) + n)

    cases = {
        "you returned theta' / S'": lambda dth, dS, th, n: dth / dS,
        "do not multiply": lambda dth, dS, th, n: dth * miss(th, n) / dS,
        "upside down": lambda dth, dS, th, n: miss(th, n) * dS / dth,
        "not a(theta)": lambda dth, dS, th, n: dth / ((1 - miss(th, n)) * dS),
        "does not return 0.37": lambda dth, dS, th, n: 2 * dth / (miss(th, n) * dS),
    }
    for hint, wrong in cases.items():
        ok, out = run_check(checks.check_lemma_coupling, wrong)
        assert not ok and "[wrong]" in out and hint in out, (hint, out)


def test_topic_invariant_check(run_check):
    ok, out = run_check(checks.check_topic_invariant, conservation.topic_invariant)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_topic_invariant, stub)
    assert not ok and "[to do]" in out

    def psi(s, n):
        return s + (torch.exp(s) - 1) / n

    cases = {
        "you used n = m": lambda s, w2, q2, m, k: psi(s, m) - q2 * w2 / 2,
        "not m k": lambda s, w2, q2, m, k: psi(s, m * k) - q2 * w2 / 2,
        "the coupling is ||q||^2 / 2": lambda s, w2, q2, m, k: psi(s, m / k) - q2 * w2,
        "the signs": lambda s, w2, q2, m, k: psi(s, m / k) + q2 * w2 / 2,
        "up to a constant": lambda s, w2, q2, m, k: s + k * torch.exp(s) / m - q2 * w2 / 2,
        "differs from": lambda s, w2, q2, m, k: psi(s, m / k) - q2 * w2 / 3,
    }
    for hint, wrong in cases.items():
        ok, out = run_check(checks.check_topic_invariant, wrong)
        assert not ok and "[wrong]" in out and hint in out, (hint, out)


def test_checks_reject_non_callables(capsys):
    for check in (
        checks.check_miss_reciprocal,
        checks.check_lemma_coupling,
        checks.check_topic_invariant,
    ):
        assert check(3.0) is False
    assert "[not run]" in capsys.readouterr().out


def test_miss_reciprocal_direct_form_overflows(run_check):
    def direct(th, n):
        a = torch.exp(th) / (torch.exp(th) + n)
        return 1 / (1 - a)

    def through_softmax(th, n):
        logits = torch.stack([th] + [torch.zeros_like(th)] * n, dim=-1)
        return 1 / (1 - torch.softmax(logits, dim=-1)[..., 0])

    def through_sigmoid(th, n):
        return 1 / (1 - torch.sigmoid(th - math.log(n)))

    for wrong in (direct, through_softmax, through_sigmoid):
        ok, out = run_check(checks.check_miss_reciprocal, wrong)
        assert not ok and "[wrong]" in out and "overflow" in out and "inf" in out, out
        assert "theta = 40 in torch.float64" in out or "theta = 20 in torch.float32" in out, out

    def cancelling(th, n):  # finite, but 1 - a loses its digits
        a = torch.exp(th) / (torch.exp(th) + n)
        return (1 / (1 - a)).nan_to_num(posinf=1e300)

    ok, out = run_check(checks.check_miss_reciprocal, cancelling)
    assert not ok and "cancellation" in out


def test_miss_reciprocal_other_correct_forms_pass(run_check):
    forms = {
        "quotient": lambda th, n: (torch.exp(th) + n) / n,
        "sigmoid": lambda th, n: 1 / torch.sigmoid(math.log(n) - th),
        "shifted exponent": lambda th, n: 1 + torch.exp(th - math.log(n)),
    }
    for name, right in forms.items():
        ok, out = run_check(checks.check_miss_reciprocal, right)
        assert ok and "[passed]" in out, (name, out)


def test_topic_invariant_multiples_pass(run_check):
    def psi(s, n):
        return s + (torch.exp(s) - 1) / n

    forms = {
        "negative": lambda s, w2, q2, m, k: q2 * w2 / 2 - psi(s, m / k),
        # chapter 2's form, ||q||^2 ||w||^2 - 2 s - (2/n) e^s, shifted to vanish at the origin
        "chapter 2's scaling": lambda s, w2, q2, m, k: (
            q2 * w2 - 2 * s - 2 * k * (torch.exp(s) - 1) / m
        ),
        "over the coupling": lambda s, w2, q2, m, k: 2 * psi(s, m / k) / q2 - w2,
        "times n": lambda s, w2, q2, m, k: (m / k) * s + torch.exp(s) - 1 - (m / k) * q2 * w2 / 2,
    }
    for name, right in forms.items():
        ok, out = run_check(checks.check_topic_invariant, right)
        assert ok and "[passed]" in out, (name, out)
    ok, out = run_check(checks.check_topic_invariant, lambda s, w2, q2, m, k: 0 * s)
    assert not ok and "[wrong]" in out
