"""Each chapter-2 check passes the reference, says "to do" for an unimplemented stub, and fails
plausible wrong answers with a hint that points at the mistake; none of them raises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import checks, identity
from course_lib.checks import solutions


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


def _candidate(f):
    """A candidate invariant ||q||^2 ||w||^2 - f(s, m)."""
    return lambda s, w2, q2, m: q2 * w2 - f(s, m)


def test_sigmoid_invariant_reference_and_correct_forms_pass(run_check):
    def halved(s, w2, q2, m):
        return q2 * w2 / 2 - s - torch.exp(s)

    def negated_shifted(s, w2, q2, m):
        return 7.0 - solutions.sigmoid_invariant(s, w2, q2, m)

    def softmax_with_one_word(s, w2, q2, m):  # a sigmoid is a softmax against one score 0
        return identity.sen_invariant(s, w2, q2, 1)

    def monotone(s, w2, q2, m):
        return torch.exp(solutions.sigmoid_invariant(s, w2, q2, m) / 10)

    def in_numpy(s, w2, q2, m):
        return q2 * w2.numpy() - 2 * s.numpy() - 2 * np.exp(s.numpy())

    for fn in (
        solutions.sigmoid_invariant,
        halved,
        negated_shifted,
        softmax_with_one_word,
        monotone,
        in_numpy,
    ):
        ok, out = run_check(checks.check_sigmoid_invariant, fn)
        assert ok and "[passed]" in out, (fn, out)


def test_sigmoid_invariant_stub_and_crash(run_check):
    ok, out = run_check(checks.check_sigmoid_invariant, stub)
    assert not ok and "[to do]" in out
    ok, out = run_check(checks.check_sigmoid_invariant, lambda s, w2, q2, m: s / 0.0)
    assert not ok and "not finite" in out


def test_sigmoid_invariant_wrong_derivations(run_check):
    cases = {
        "the softmax's C, with its m": lambda s, m: 2 * s + 2 * torch.exp(s) / m,
        "lost its factor (1 - a)": lambda s, m: 2 * s,
        "not 1 + e^{-s}": lambda s, m: 2 * s - 2 * torch.exp(-s),
        "a factor 2 is lost": lambda s, m: s + torch.exp(s),
        "a factor 2 too many": lambda s, m: 4 * s + 4 * torch.exp(s),
    }
    for hint, f in cases.items():
        ok, out = run_check(checks.check_sigmoid_invariant, _candidate(f))
        assert not ok and "[wrong]" in out and hint in out, (hint, out)


def test_sigmoid_invariant_constant_shape_and_general_hint(run_check):
    ok, out = run_check(checks.check_sigmoid_invariant, lambda s, w2, q2, m: 0 * s + 3.0)
    assert not ok and "same number everywhere" in out
    ok, out = run_check(checks.check_sigmoid_invariant, lambda s, w2, q2, m: s.sum())
    assert not ok and "shape" in out
    ok, out = run_check(checks.check_sigmoid_invariant, lambda s, w2, q2, m: [1.0])
    assert not ok and "return a tensor" in out
    # the small-score limit of the right answer: not conserved exactly
    ok, out = run_check(checks.check_sigmoid_invariant, _candidate(lambda s, m: 4 * s + s**2))
    assert not ok and "changes along the flow" in out


@pytest.mark.slow
def test_sigmoid_invariant_is_kept_by_a_restricted_run_with_sigmoid_attention():
    """The reference is conserved by gradient descent on a model whose attention is a sigmoid
    (drift O(lr), halving with it), while the softmax's C is not."""
    from course_lib.topic import TopicAttention, make_topic_corpus
    from course_lib.training import train_full_batch

    class Sigmoid(TopicAttention):
        def _attention(self, tokens, mask):
            weights = torch.sigmoid(self.scores()[tokens])
            return weights if mask is None else weights * mask

    corpus = make_topic_corpus(n_background=40, n_sentences=60, seed=0)
    background = torch.arange(corpus.n_topics * corpus.words_per_topic, corpus.vocab_size)
    drift, wrong = {}, 0.0
    for lr in (0.2, 0.1):
        model = Sigmoid(corpus.vocab_size, corpus.n_topics, seed=0).double()
        with torch.no_grad():
            model.embedding.weight[background] = 0.0
        _, h = train_full_batch(
            model,
            *corpus.train,
            int(40 / lr),
            lr,
            topic_word_ids=corpus.topic_word_ids,
            frozen_word_ids=background,
            record_every=int(round(1 / lr)),
        )
        s, w2 = h.topic_scores.double(), h.topic_norms.double().square()
        q2 = float(h.query_norm[0]) ** 2
        c = solutions.sigmoid_invariant(s, w2, q2, corpus.m)
        drift[lr] = float((c - c[:1]).abs().max())
        softmax_c = identity.sen_invariant(s, w2, q2, corpus.m)
        wrong = max(wrong, float((softmax_c - softmax_c[:1]).abs().max()))
        scale = float((q2 * w2).max())
    assert scale > 0.5, scale  # the run went somewhere
    assert drift[0.1] < 0.01 * scale, drift
    assert 1.7 < drift[0.2] / drift[0.1] < 2.3, drift
    assert wrong > 20 * drift[0.1], (wrong, drift)


def test_sigmoid_invariant_validates_m():
    with pytest.raises(ValueError, match="m"):
        solutions.sigmoid_invariant(1.0, 1.0, 1.0, 0)


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
        checks.check_sigmoid_invariant,
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
