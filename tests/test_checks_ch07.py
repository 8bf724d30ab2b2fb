"""Each chapter-7 check passes the reference, says "to do" for an unimplemented stub, and fails
plausible wrong answers with a hint that points at the mistake; none of them raises."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib import checks, conservation, flow, law
from course_lib.checks import solutions


def stub(*args):
    raise NotImplementedError


@pytest.mark.parametrize(
    "student",
    [
        conservation.temperature_law_constant,
        lambda q2, T, lk, lw: (lk / lw) * (q2 / T**2) / 2,  # another order
        lambda q2, T, lk, lw: np.float32(lk * q2 / (2 * T * T * lw)),
        lambda q2, T, lk, lw: torch.tensor(lk * q2 / (2 * T**2 * lw), dtype=torch.float64),
        lambda q2, T, lk, lw: np.array([lk * q2 / (2 * T**2 * lw)]),
        lambda q2, T, lk, lw: lk * math.sqrt(q2) ** 2 / (2 * T**2 * lw),
    ],
    ids=["reference", "ratio form", "float32", "tensor", "one-element array", "sqrt squared"],
)
def test_temperature_law_constant_accepts_correct_forms(run_check, student):
    ok, out = run_check(checks.check_temperature_law_constant, student)
    assert ok and "[passed]" in out, out


@pytest.mark.parametrize(
    "student, hint",
    [
        (lambda q2, T, lk, lw: lk * q2 / (2 * T * lw), "1/T^2, not 1/T"),
        (lambda q2, T, lk, lw: lk * q2 * T**2 / (2 * lw), "SLOWER"),
        (lambda q2, T, lk, lw: lk * q2 / (2 * lw), "temperature is missing"),
        (lambda q2, T, lk, lw: lw * q2 / (2 * T**2 * lk), "upside down"),
        (lambda q2, T, lk, lw: q2 / (2 * T**2), "learning rates are missing"),
        (lambda q2, T, lk, lw: lk * q2 / (T**2 * lw), "factor 1/2 is missing"),
        (lambda q2, T, lk, lw: lk * q2**2 / (2 * T**2 * lw), "do not square it again"),
        (lambda q2, T, lk, lw: lk * math.sqrt(q2) / (2 * T**2 * lw), "not ||q||"),
        (lambda q2, T, lk, lw: 2 * T**2 * lw / (lk * q2), "that is 1/c"),
        (lambda q2, T, lk, lw: 1.1 * lk * q2 / (2 * T**2 * lw), "the constant is"),
        (lambda q2, T, lk, lw: [1.0, 2.0], "one number"),
        (lambda q2, T, lk, lw: "c", "a number"),
    ],
)
def test_temperature_law_constant_rejects_wrong_derivations(run_check, student, hint):
    ok, out = run_check(checks.check_temperature_law_constant, student)
    assert not ok and "[wrong]" in out and hint in out, out


def test_temperature_law_constant_check_stub(run_check):
    ok, out = run_check(checks.check_temperature_law_constant, stub)
    assert not ok and "[to do]" in out


def test_temperature_law_constant_reference():
    assert conservation.temperature_law_constant(2.0, 1.0, 0.1, 0.1) == 1.0  # corollary 1
    assert math.isclose(conservation.temperature_law_constant(1.0, 2.0, 0.3, 0.1), 3 / 8)
    with pytest.raises(ValueError, match="temperature"):
        conservation.temperature_law_constant(1.0, 0.0, 0.1, 0.1)
    with pytest.raises(TypeError, match="lr_key"):
        conservation.temperature_law_constant(1.0, 1.0, "fast", 0.1)


def test_temperature_law_holds_for_one_step_of_training():
    """Exercise 7.1's follow-up: a temperature is a query divided by T, two learning rates a
    step per parameter; one small step of Attn-FC measures the constant."""
    import torch.nn.functional as F

    from course_lib import topic
    from course_lib.topic import TopicAttention

    corpus = topic.make_repeated_topic_corpus(1, n_background=50, n_sentences=60)
    model = TopicAttention(corpus.vocab_size, corpus.n_topics, classifier="fixed", seed=0)
    model = model.double()
    background = torch.arange(8, corpus.vocab_size)
    T, lr_key, lr_emb = 2.0, 2e-4, 1e-4
    q2 = float(model.query.square().sum())
    with torch.no_grad():
        model.embedding.weight[background] = 0.0
        model.embedding.weight[:8] = 0.3
        model.query /= T
    tokens, labels = corpus.train.tokens, corpus.train.labels
    words = corpus.topic_word_ids
    theta0 = model.scores().detach()[words]
    norm0 = model.embedding.weight.detach()[words].square().sum(-1)
    loss = F.cross_entropy(model(tokens), labels)
    g_key, g_emb = torch.autograd.grad(loss, [model.keys.weight, model.embedding.weight])
    with torch.no_grad():
        model.keys.weight[:8] -= lr_key * g_key[:8]
        model.embedding.weight[:8] -= lr_emb * g_emb[:8]
    d_theta = model.scores().detach()[words] - theta0
    d_norm = model.embedding.weight.detach()[words].square().sum(-1) - norm0
    c = law.lemma_coupling(d_theta, d_norm, theta0, corpus.m)
    expected = conservation.temperature_law_constant(q2, T, lr_key, lr_emb)
    assert torch.allclose(c, torch.full_like(c, expected), rtol=1e-2), (c, expected)
    wrong_T = conservation.temperature_law_constant(q2, T**0.5, lr_key, lr_emb)
    assert not torch.allclose(c, torch.full_like(c, wrong_T), rtol=0.2)


def _measured_soft_constant(m, C, lr_focus, lr_classifier):
    """Another correct form: measure it on chapter 5's soft flow with the two rates."""
    rhs = flow.flow_rhs("soft", m=m, C=C)
    mu, nu = 1.3, 0.4
    dmu, dnu = rhs(0.0, [mu, nu])
    return float(law.lemma_coupling(lr_focus * dnu, 2 * mu * lr_classifier * dmu, nu, m - 1))


@pytest.mark.parametrize(
    "student",
    [
        solutions.soft_orbit_constant,
        lambda m, C, lf, lc: 0.5 * (1 - 1 / C) * lf / lc,
        lambda m, C, lf, lc: np.float32(lf * (C - 1) / (2 * C * lc)),
        lambda m, C, lf, lc: torch.tensor(lf * (C - 1) / (2 * C * lc)),
        _measured_soft_constant,
    ],
    ids=["reference", "other form", "float32", "tensor", "measured on the flow"],
)
def test_soft_orbit_constant_accepts_correct_forms(run_check, student):
    ok, out = run_check(checks.check_soft_orbit_constant, student)
    assert ok and "[passed]" in out, out


@pytest.mark.parametrize(
    "student, hint",
    [
        (lambda m, C, lf, lc: lf / (2 * lc), "S = ||W e_y||^2"),
        (lambda m, C, lf, lc: lf * (C - 1) / (C * lc), "factor 1/2 is missing"),
        (lambda m, C, lf, lc: lf * C / (2 * (C - 1) * lc), "class factor is upside down"),
        (lambda m, C, lf, lc: lc * (C - 1) / (2 * C * lf), "learning rates are upside down"),
        (lambda m, C, lf, lc: (C - 1) / (2 * C), "learning rates are missing"),
        (lambda m, C, lf, lc: lf * (m - 1) / (2 * m * lc), "does not depend on m"),
        (lambda m, C, lf, lc: 2 * C * lc / (lf * (C - 1)), "that is 1/c"),
        (lambda m, C, lf, lc: lf * (C - 1) / (2 * C * lc) * (1 + 0.1 * (m == 50)), "at m = 50"),
    ],
)
def test_soft_orbit_constant_rejects_wrong_derivations(run_check, student, hint):
    ok, out = run_check(checks.check_soft_orbit_constant, student)
    assert not ok and "[wrong]" in out and hint in out, out


def test_soft_orbit_constant_check_stub(run_check):
    ok, out = run_check(checks.check_soft_orbit_constant, stub)
    assert not ok and "[to do]" in out


def test_soft_orbit_constant_reference():
    assert math.isclose(solutions.soft_orbit_constant(5, 3, 1.0, 1.0), 1 / 3)
    assert math.isclose(solutions.soft_orbit_constant(50, 3, 0.2, 0.1), 2 / 3)
    with pytest.raises(ValueError, match="lr_classifier"):
        solutions.soft_orbit_constant(5, 3, 1.0, 0.0)


def test_topic_invariant_check(run_check):
    ok, out = run_check(checks.check_topic_invariant, conservation.topic_invariant)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_topic_invariant, stub)
    assert not ok and "[to do]" in out

    def psi(s, n):
        return s + (torch.exp(s) - 1) / n

    cases = {
        "you used n = m": lambda s, w2, q2, m, k: psi(s, m) - q2 * w2 / 2,
        "count for less, not more": lambda s, w2, q2, m, k: psi(s, m * k) - q2 * w2 / 2,
        "the coupling is ||q||^2 / 2": lambda s, w2, q2, m, k: psi(s, m / k) - q2 * w2,
        "the signs": lambda s, w2, q2, m, k: psi(s, m / k) + q2 * w2 / 2,
        "up to a constant": lambda s, w2, q2, m, k: s + k * torch.exp(s) / m - q2 * w2 / 2,
        "differs from the prediction": lambda s, w2, q2, m, k: psi(s, m / k) - q2 * w2 / 3,
    }
    for hint, wrong in cases.items():
        ok, out = run_check(checks.check_topic_invariant, wrong)
        assert not ok and "[wrong]" in out and hint in out, (hint, out)
        # the hints nudge towards n without stating it (exercise 7.3 asks to predict it)
        assert "m / k" not in out and "m/k" not in out and "k (e^s - 1) / m" not in out, out


def test_checks_reject_non_callables(capsys):
    for check in (
        checks.check_temperature_law_constant,
        checks.check_soft_orbit_constant,
        checks.check_topic_invariant,
    ):
        assert check(3.0) is False
    assert "[not run]" in capsys.readouterr().out


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
