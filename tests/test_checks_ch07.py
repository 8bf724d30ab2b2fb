"""Each chapter-7 check passes the reference, says "to do" for an unimplemented stub, and fails
plausible wrong answers with a hint that points at the mistake; none of them raises."""

from __future__ import annotations

import torch

from course_lib import checks, conservation


def stub(*args):
    raise NotImplementedError


def test_miss_reciprocal_check(run_check):
    ok, out = run_check(checks.check_miss_reciprocal, conservation.miss_reciprocal)
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
    ok, out = run_check(checks.check_lemma_coupling, conservation.lemma_coupling)
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
        "the signs": lambda s, w2, q2, m, k: -psi(s, m / k) + q2 * w2 / 2,
        "up to a constant": lambda s, w2, q2, m, k: s + k * torch.exp(s) / m - q2 * w2 / 2,
        "differs from": lambda s, w2, q2, m, k: psi(s, m / k) - q2 * w2 / 3,
    }
    for hint, wrong in cases.items():
        ok, out = run_check(checks.check_topic_invariant, wrong)
        assert not ok and "[wrong]" in out and hint in out, (hint, out)


def test_checks_reject_non_callables(capsys):
    for check in (checks.check_miss_reciprocal, checks.check_lemma_coupling, checks.check_topic_invariant):
        assert check(3.0) is False
    assert "[not run]" in capsys.readouterr().out
