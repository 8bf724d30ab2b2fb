"""Each chapter-2 check passes the reference, says "to do" for an unimplemented stub, and fails
plausible wrong answers with a hint that points at the mistake; none of them raises."""

from __future__ import annotations

import torch

from course_lib import checks, identity


def stub(*args):
    raise NotImplementedError


def test_score_gradient_check(run_check):
    ok, out = run_check(checks.check_score_gradient, identity.score_gradient)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_score_gradient, stub)
    assert not ok and "[to do]" in out and "not implemented" in out

    def no_context(attention, word_embeddings, context, grad_context):
        return attention * torch.einsum("bld,bd->bl", word_embeddings, grad_context)

    ok, out = run_check(checks.check_score_gradient, no_context)
    assert not ok and "[wrong]" in out and "subtracts the context" in out

    def no_attention(attention, word_embeddings, context, grad_context):
        return torch.einsum("bld,bd->bl", word_embeddings - context[:, None, :], grad_context)

    ok, out = run_check(checks.check_score_gradient, no_attention)
    assert not ok and "factor a_i is missing" in out

    def flipped(attention, word_embeddings, context, grad_context):
        return -identity.score_gradient(attention, word_embeddings, context, grad_context)

    ok, out = run_check(checks.check_score_gradient, flipped)
    assert not ok and "sign" in out

    def idealised(attention, word_embeddings, context, grad_context):
        projected = torch.einsum("bld,bd->bl", word_embeddings, grad_context)
        return attention * (1 - attention) * projected

    ok, out = run_check(checks.check_score_gradient, idealised)
    assert not ok and "special case" in out

    ok, out = run_check(checks.check_score_gradient, lambda a, w, v, g: a.sum(-1))
    assert not ok and "shape" in out

    def crashes(attention, word_embeddings, context, grad_context):
        return attention @ context

    ok, out = run_check(checks.check_score_gradient, crashes)
    assert not ok and "[error]" in out


def test_sen_invariant_check(run_check):
    ok, out = run_check(checks.check_sen_invariant, identity.sen_invariant)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_sen_invariant, stub)
    assert not ok and "[to do]" in out

    cases = {
        "(2/m) e^s, not e^s / m": lambda s, w2, q2, m: q2 * w2 - 2 * s - torch.exp(s) / m,
        "linear term is 2 s": lambda s, w2, q2, m: q2 * w2 - s - 2 * torch.exp(s) / m,
        "signs": lambda s, w2, q2, m: -(q2 * w2) + 2 * s + 2 * torch.exp(s) / m,
        "already squared": lambda s, w2, q2, m: q2**2 * w2 - 2 * s - 2 * torch.exp(s) / m,
        "not e^{-s}": lambda s, w2, q2, m: q2 * w2 - 2 * s - 2 * torch.exp(-s) / m,
        "up to a constant": lambda s, w2, q2, m: q2 * w2 - 2 * s - 2 * (torch.exp(s) - 1) / m,
    }
    for hint, wrong in cases.items():
        ok, out = run_check(checks.check_sen_invariant, wrong)
        assert not ok and "[wrong]" in out and hint in out, (hint, out)


def test_sen_drift_check(run_check):
    ok, out = run_check(checks.check_sen_drift, identity.sen_drift)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_sen_drift, stub)
    assert not ok and "[to do]" in out

    def first_query(scores, norms, query_norms, m):
        c = identity.sen_invariant(scores, norms.square(), query_norms[0].square(), m)
        return (c - c[:1]).abs().amax(dim=0)

    ok, out = run_check(checks.check_sen_drift, first_query)
    assert not ok and "first step's query norm" in out

    def last_only(scores, norms, query_norms, m):
        c = identity.sen_invariant(scores, norms.square(), query_norms.square()[:, None], m)
        return (c[-1] - c[0]).abs()

    ok, out = run_check(checks.check_sen_drift, last_only)
    assert not ok and "last step only" in out

    def no_abs(scores, norms, query_norms, m):
        c = identity.sen_invariant(scores, norms.square(), query_norms.square()[:, None], m)
        return (c - c[:1]).amax(dim=0)

    ok, out = run_check(checks.check_sen_drift, no_abs)
    assert not ok and "absolute value" in out

    def unsquared_query(scores, norms, query_norms, m):
        c = identity.sen_invariant(scores, norms.square(), query_norms[:, None], m)
        return (c - c[:1]).abs().amax(dim=0)

    ok, out = run_check(checks.check_sen_drift, unsquared_query)
    assert not ok and "square it" in out

    ok, out = run_check(
        checks.check_sen_drift, lambda s, w, q, m: identity.sen_drift(s, w, q, m).max()
    )
    assert not ok and "shape" in out


def test_checks_reject_non_callables(capsys):
    for check in (
        checks.check_score_gradient,
        checks.check_score_per_norm_sq,
        checks.check_sen_invariant,
        checks.check_sen_drift,
    ):
        assert check(42) is False
    assert "[not run]" in capsys.readouterr().out


def test_score_per_norm_sq_check(run_check):
    ok, out = run_check(checks.check_score_per_norm_sq, identity.score_per_norm_sq)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_score_per_norm_sq, stub)
    assert not ok and "[to do]" in out and "not implemented" in out

    def attention(s, m):
        return torch.exp(s) / (torch.exp(s) + m)

    cases = {
        "factor 1/2 is missing": lambda s, q2, m: q2 * (1 - attention(s, m)),
        "1 - a, not a": lambda s, q2, m: q2 / 2 * attention(s, m),
        "a and R cancel": lambda s, q2, m: q2 / 2 * attention(s, m) * (1 - attention(s, m)),
        "the inverse": lambda s, q2, m: 2 / (q2 * (1 - attention(s, m))),
        "already ||q||^2": lambda s, q2, m: q2**2 / 2 * (1 - attention(s, m)),
        "not its square root": lambda s, q2, m: q2**0.5 / 2 * (1 - attention(s, m)),
        "a depends on the score": lambda s, q2, m: q2 / 2 * m / (m + 1) * torch.ones_like(s),
        "not e^s / (e^s + m + 1)": lambda s, q2, m: q2 / 2 * (1 - attention(s, m + 1)),
        "not 1 / (1 + e^-s)": lambda s, q2, m: q2 / 2 * (1 - torch.sigmoid(s)),
    }
    for hint, wrong in cases.items():
        ok, out = run_check(checks.check_score_per_norm_sq, wrong)
        assert not ok and "[wrong]" in out and hint in out, (hint, out)

    # an answer with no recognised mistake gets the measured values to compare with
    ok, out = run_check(
        checks.check_score_per_norm_sq, lambda s, q2, m: q2 / 3 * (1 - attention(s, m))
    )
    assert not ok and "[wrong]" in out and "the measured ds/d||w||^2" in out
    ok, out = run_check(checks.check_score_per_norm_sq, lambda s, q2, m: s.sum())
    assert not ok and "shape" in out


def test_measured_common_factor_is_a_measurement():
    """The check's measurement comes from autograd through the model, not from the formula: it
    agrees with (||q||^2/2)(1 - a(s)) and moves with the score, the query and m."""
    from course_lib.checks.ch02 import _measured_score_per_norm_sq

    for score, q_norm, m in ((0.0, 1.0, 20), (3.0, 0.5, 5), (-1.0, 2.0, 50)):
        measured = _measured_score_per_norm_sq(score, q_norm, m, seed=4)
        assert abs(measured - identity.score_per_norm_sq(score, q_norm**2, m)) < 1e-10
    large, small = (_measured_score_per_norm_sq(s, 1.0, 20, 0) for s in (4.0, 0.0))
    assert large < small


def test_score_per_norm_sq_reference_kinds_and_bad_input():
    import numpy as np
    import pytest

    assert abs(float(identity.score_per_norm_sq(0.0, 2.0, 20)) - (1 - 1 / 21)) < 1e-12
    grid = np.array([0.0, 10.0])
    assert isinstance(identity.score_per_norm_sq(grid, 1.0, 5), np.ndarray)
    scores = torch.tensor([0.0, 50.0], dtype=torch.float32)
    out = identity.score_per_norm_sq(scores, 1.0, 5)
    assert out.dtype == torch.float32 and float(out[1]) < 1e-15  # full attention: no gain
    with pytest.raises(ValueError, match="query_norm_sq"):
        identity.score_per_norm_sq(0.0, -1.0, 20)
    with pytest.raises(ValueError, match="m"):
        identity.score_per_norm_sq(0.0, 1.0, 0)
    with pytest.raises(TypeError, match="score"):
        identity.score_per_norm_sq("0", 1.0, 20)
