"""The score-function (REINFORCE) estimate of hard attention's gradient (chapter 4):
unbiased against the exact expectation, variance falling like 1/K, clear errors."""

import pytest
import torch

from course_lib.losses import hard_attention_loss, reinforce_hard_attention_loss

B, M, C, D = 3, 5, 4, 6


def _example():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(B, M, generator=gen, dtype=torch.float64)
    segments = torch.randn(B, M, D, generator=gen, dtype=torch.float64)
    weight = torch.randn(D, C, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 2, 3])
    return scores, segments, weight, labels


def _exact_gradients():
    scores, segments, weight, labels = _example()
    scores.requires_grad_()
    weight.requires_grad_()
    loss = hard_attention_loss(torch.softmax(scores, 1), segments, labels, lambda x: x @ weight)
    return loss.detach(), *torch.autograd.grad(loss, (scores, weight))


def _replicated_estimates(k, replicas, seed=1, baseline=False):
    """``replicas`` independent estimates in one call: replica r has its own copy of the scores
    and of the classifier's weight, so one backward pass gives every replica's gradient."""
    scores, segments, weight, labels = _example()
    s = scores.expand(replicas, B, M).clone().requires_grad_()
    w = weight.expand(replicas, D, C).clone().requires_grad_()

    def classifier(x):  # x: (replicas * B * k, D), replica-major
        return torch.bmm(x.reshape(replicas, -1, D), w).reshape(-1, C)

    value = reinforce_hard_attention_loss(
        torch.softmax(s, 2).reshape(replicas * B, M),
        segments.repeat(replicas, 1, 1),
        labels.repeat(replicas),
        classifier,
        k,
        baseline=baseline,
        generator=torch.Generator().manual_seed(seed),
    )
    # the surrogate is a mean over replicas * B rows: times replicas, each replica's own mean
    grad_s, grad_w = torch.autograd.grad(value * replicas, (s, w))
    return value.detach(), grad_s, grad_w


@pytest.mark.parametrize("baseline", [False, True])
def test_the_estimate_is_unbiased(baseline):
    loss, exact_s, exact_w = _exact_gradients()
    replicas = 4000
    value, grad_s, grad_w = _replicated_estimates(4, replicas, baseline=baseline)
    for estimates, exact in ((grad_s, exact_s), (grad_w, exact_w)):
        mean = estimates.mean(0)
        standard_error = estimates.std(0) / replicas**0.5
        # 5 standard errors per entry (plus float rounding where an entry has no variance)
        assert ((mean - exact).abs() <= 5 * standard_error + 1e-12).all()
        # the test has power: the exact gradient is far from 0 on this scale
        assert (exact.abs() / (standard_error + 1e-12)).max() > 20
    assert abs(float(value) - float(loss)) < 0.02 * float(loss)  # the value estimates the loss


def test_dropping_the_score_term_is_caught():
    """The classifier-only gradient (no score term) gives the attention nothing: the test
    above would reject it, since the exact attention gradient is many standard errors from 0."""
    _, exact_s, _ = _exact_gradients()
    _, grad_s, _ = _replicated_estimates(4, 4000)
    standard_error = grad_s.std(0) / 4000**0.5
    assert ((torch.zeros_like(exact_s) - exact_s).abs() > 5 * standard_error).any()


def test_the_variance_falls_like_one_over_k():
    replicas = 4000
    total = {}
    for k in (1, 4, 16):
        _, grad_s, grad_w = _replicated_estimates(k, replicas, seed=10 + k)
        total[k] = float(grad_s.var(0).sum() + grad_w.var(0).sum())
    for k in (4, 16):
        ratio = total[k] / total[1]
        # 1/K within 20 % (the variance estimate's own error is a few %); 1/sqrt(K) or a
        # K-independent variance is far outside
        assert abs(ratio * k - 1) < 0.2, (k, ratio)


def test_the_baseline_lowers_the_attention_gradients_variance_here():
    _, plain, _ = _replicated_estimates(4, 4000, seed=3)
    _, with_baseline, _ = _replicated_estimates(4, 4000, seed=3, baseline=True)
    assert float(with_baseline.var(0).sum()) < 0.8 * float(plain.var(0).sum())


def test_only_the_sampled_segments_are_classified():
    scores, segments, weight, labels = _example()
    seen = []

    def classifier(x):
        seen.append(x.shape[0])
        return x @ weight

    reinforce_hard_attention_loss(torch.softmax(scores, 1), segments, labels, classifier, 2)
    assert seen == [B * 2]


def test_a_weight_of_zero_is_never_sampled():
    scores, segments, weight, labels = _example()
    alpha = torch.softmax(scores, 1)
    alpha[:, 1:] = 0
    alpha[:, 0] = 1
    alpha.requires_grad_()
    value = reinforce_hard_attention_loss(alpha, segments, labels, lambda x: x @ weight, 8)
    (grad,) = torch.autograd.grad(value, alpha)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    assert (grad[:, 1:] == 0).all()


def test_bad_arguments_are_named():
    scores, segments, weight, labels = _example()
    alpha = torch.softmax(scores, 1)

    def call(*args, **kwargs):
        return reinforce_hard_attention_loss(
            alpha, segments, labels, lambda x: x @ weight, *args, **kwargs
        )

    with pytest.raises(ValueError, match="n_samples"):
        call(0)
    with pytest.raises(TypeError, match="n_samples"):
        call(1.5)
    with pytest.raises(ValueError, match="n_samples"):
        call(1, baseline=True)
    with pytest.raises(TypeError, match="baseline"):
        call(2, baseline="yes")
    with pytest.raises(TypeError, match="generator"):
        call(2, generator=0)
    with pytest.raises(ValueError, match="alpha"):
        reinforce_hard_attention_loss(alpha * 2, segments, labels, lambda x: x @ weight, 2)
    with pytest.raises(TypeError, match="labels"):
        reinforce_hard_attention_loss(alpha, segments, labels.double(), lambda x: x @ weight, 2)
