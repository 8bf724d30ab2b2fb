"""Property tests of the three attention losses (chapter 4)."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.focus import LinearClassifier
from course_lib.losses import (
    KERNELS,
    LOSS_NAMES,
    attention_loss,
    check_loss_inputs,
    hard_attention_loss,
    lvml_loss,
    selected_loss,
    soft_attention_loss,
)

LOSSES = [soft_attention_loss, hard_attention_loss, lvml_loss]
NAMES = {soft_attention_loss: "soft", hard_attention_loss: "hard", lvml_loss: "lvml"}


def random_case(batch=6, m=4, d=5, C=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    alpha = torch.softmax(torch.randn(batch, m, generator=g, dtype=dtype), dim=1)
    segments = torch.randn(batch, m, d, generator=g, dtype=dtype)
    labels = torch.randint(0, C, (batch,), generator=g)
    clf = LinearClassifier(d, C, init="xavier").to(dtype)
    return alpha, segments, labels, clf


@pytest.mark.parametrize("loss", LOSSES)
def test_one_hot_attention_gives_the_segments_cross_entropy(loss):
    _, segments, labels, clf = random_case()
    chosen = torch.tensor([0, 3, 1, 2, 2, 0])
    one_hot = F.one_hot(chosen, 4).double()
    expected = F.cross_entropy(clf(segments[torch.arange(6), chosen]), labels)
    assert torch.allclose(loss(one_hot, segments, labels, clf), expected, atol=1e-12)


def test_the_three_losses_differ_for_diffuse_attention():
    alpha, segments, labels, clf = random_case()
    soft, hard, lvml = (loss(alpha, segments, labels, clf).item() for loss in LOSSES)
    # Jensen: -log sum_j a_j q_j <= sum_j a_j (-log q_j), strictly unless the q_j agree
    assert lvml < hard - 1e-3
    assert abs(soft - hard) > 1e-3 and abs(soft - lvml) > 1e-3


def test_losses_match_their_formulas_on_a_hand_case():
    def clf(x):
        return x

    segments = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    alpha = torch.tensor([[0.25, 0.75]], dtype=torch.float64)
    labels = torch.tensor([0])
    q = torch.softmax(segments[0], dim=-1)[:, 0]  # p_j(y=0) per segment
    blend_logits = torch.tensor([0.5, 0.75], dtype=torch.float64)
    soft = -torch.log_softmax(blend_logits, 0)[0]
    hard = -(alpha[0] * torch.log(q)).sum()
    lvml = -torch.log((alpha[0] * q).sum())
    for loss, value in zip(LOSSES, [soft, hard, lvml]):
        assert torch.allclose(loss(alpha, segments, labels, clf), value, atol=1e-12)


@pytest.mark.parametrize("loss", LOSSES)
def test_gradients_match_finite_differences_in_float64(loss):
    _, segments, labels, clf = random_case(seed=3)
    scores = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)

    def f(s, weight, bias):
        return loss(torch.softmax(s, 1), segments, labels, lambda x: x @ weight.T + bias)

    inputs = (
        scores,
        clf.net.weight.detach().clone().requires_grad_(),
        clf.net.bias.detach().clone().requires_grad_(),
    )
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_with_respect_to_alpha_matches_finite_differences(loss):
    alpha, segments, labels, clf = random_case(seed=4)
    alpha = alpha.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(alpha, segments, labels, clf), alpha)
    eps = 1e-6
    for b, j in [(0, 0), (2, 3), (5, 1)]:
        up, down = alpha.detach().clone(), alpha.detach().clone()
        up[b, j] += eps
        down[b, j] -= eps
        # the unchecked kernel: the formulas are defined off the simplex too
        kernel = KERNELS[NAMES[loss]]
        with torch.no_grad():
            numeric = kernel(up, segments, labels, clf) - kernel(down, segments, labels, clf)
        assert abs(numeric.item() / (2 * eps) - grad[b, j].item()) < 1e-6


def test_lvml_is_exact_where_every_likelihood_underflows():
    # every segment's true-class probability is exp(-1000 - j): underflows to 0 in float64
    batch, m, C = 3, 4, 2
    offsets = torch.arange(m, dtype=torch.float64)
    segments = torch.zeros(batch, m, C, dtype=torch.float64)
    segments[:, :, 1] = 1000.0 + offsets  # logit of class 1; the label is class 0
    labels = torch.zeros(batch, dtype=torch.long)
    alpha = torch.softmax(torch.randn(batch, m, dtype=torch.float64), 1)

    def clf(x):
        return x

    log_q = -torch.logaddexp(torch.zeros(()), 1000.0 + offsets)  # exact log p_j(0)
    exact = -torch.logsumexp(torch.log(alpha) + log_q, dim=1).mean()
    value = lvml_loss(alpha, segments, labels, clf)
    assert torch.isfinite(value) and abs(float(value) - float(exact)) < 1e-9
    assert float(value) > 1000.0
    q = torch.softmax(segments, -1)[..., 0]
    naive = -torch.log((alpha * q).sum(1)).mean()
    clipped = -torch.log((alpha * q).sum(1) + 1e-30).mean()
    assert torch.isinf(naive)
    assert abs(float(clipped) - 30 * math.log(10)) < 1e-9  # the official +1e-30 clips at 69.08
    alpha_g = alpha.clone().requires_grad_()
    (grad,) = torch.autograd.grad(lvml_loss(alpha_g, segments, labels, clf), alpha_g)
    assert torch.isfinite(grad).all()
    # dL/dalpha_j = -q_j / sum_k alpha_k q_k / B, computed in log space
    expected = -torch.exp(log_q - torch.logsumexp(torch.log(alpha) + log_q, 1, keepdim=True))
    assert torch.allclose(grad, expected / batch, rtol=1e-9)


def test_lvml_gradient_is_finite_and_exact_at_one_hot_attention():
    _, segments, labels, clf = random_case(seed=5)
    one_hot = F.one_hot(torch.tensor([1, 0, 3, 2, 1, 0]), 4).double().requires_grad_()
    (grad,) = torch.autograd.grad(lvml_loss(one_hot, segments, labels, clf), one_hot)
    q = torch.softmax(clf(segments.reshape(-1, 5)).reshape(6, 4, 3), -1)
    q = q.gather(-1, labels.view(-1, 1, 1).expand(-1, 4, 1)).squeeze(-1).detach()
    expected = -q / (one_hot.detach() * q).sum(1, keepdim=True) / 6
    assert torch.allclose(grad, expected, rtol=1e-10)


def test_losses_run_in_float32_and_on_image_shaped_segments():
    torch.manual_seed(0)
    alpha = torch.softmax(torch.randn(2, 3), 1)
    segments = torch.randn(2, 3, 1, 4, 4)

    def clf(x):
        return x.flatten(1)[:, :5]

    for loss in LOSSES:
        value = loss(alpha, segments, torch.tensor([1, 4]), clf)
        assert value.dtype == torch.float32 and value.shape == ()


@pytest.mark.parametrize("loss", LOSSES)
def test_bad_arguments_raise_clear_errors(loss):
    alpha, segments, labels, clf = random_case()
    with pytest.raises(ValueError, match="alpha"):
        loss(alpha[:, :3], segments, labels, clf)
    with pytest.raises(ValueError, match="sum to 1"):
        loss(alpha * 2, segments, labels, clf)
    with pytest.raises(ValueError, match="non-negative"):
        loss(alpha - 0.5, segments, labels, clf)
    with pytest.raises(TypeError, match="labels"):
        loss(alpha, segments, labels.double(), clf)
    with pytest.raises(ValueError, match="labels"):
        loss(alpha, segments, labels[:2], clf)
    with pytest.raises(TypeError, match="classifier"):
        loss(alpha, segments, labels, "not a model")
    with pytest.raises(ValueError, match="segments"):
        loss(alpha, segments[:, :, 0], labels, clf)


def test_attention_loss_by_name():
    assert attention_loss("hard") is hard_attention_loss
    with pytest.raises(ValueError, match="soft"):
        attention_loss("sparse")


@pytest.mark.parametrize("name", ["soft", "hard", "lvml"])
def test_alpha_gradient_closed_forms_match_autograd(name):
    from course_lib.losses import alpha_gradient

    alpha, segments, labels, clf = random_case(seed=7)
    alpha = alpha.clone().requires_grad_()
    loss = {"soft": soft_attention_loss, "hard": hard_attention_loss, "lvml": lvml_loss}[name]
    (auto,) = torch.autograd.grad(loss(alpha, segments, labels, clf), alpha)
    closed = alpha_gradient(name, alpha.detach(), segments, labels, clf)
    assert torch.allclose(closed / 6, auto, atol=1e-12)
    assert torch.allclose(alpha_gradient(loss, alpha.detach(), segments, labels, clf), closed)
    with pytest.raises(ValueError, match="loss"):
        alpha_gradient("sparse", alpha.detach(), segments, labels, clf)


def test_selected_loss_is_the_weighted_sum_of_the_public_losses():
    # the engine's one entry to the losses: a one-hot weight picks a loss, and only the losses
    # named are computed (a weight on another is ignored)
    alpha, segments, labels, clf = random_case(seed=4)
    values = {name: attention_loss(name)(alpha, segments, labels, clf) for name in LOSS_NAMES}
    assert len({round(v.item(), 6) for v in values.values()}) == 3  # the three really differ
    for k, name in enumerate(LOSS_NAMES):
        weights = F.one_hot(torch.tensor(k), 3).double()
        got = selected_loss(weights, alpha, segments, labels, clf)
        assert torch.allclose(got, values[name], atol=1e-12)
    weights = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    mix = sum(w * values[name] for w, name in zip(weights, LOSS_NAMES))
    assert torch.allclose(selected_loss(weights, alpha, segments, labels, clf), mix, atol=1e-12)
    only = selected_loss(weights, alpha, segments, labels, clf, ("hard",))
    assert torch.allclose(only, 0.3 * values["hard"], atol=1e-12)
    with pytest.raises(ValueError, match="names"):
        selected_loss(weights, alpha, segments, labels, clf, ("sparse",))


def test_check_loss_inputs_is_the_public_losses_check():
    alpha, segments, labels, clf = random_case()
    check_loss_inputs(alpha, segments, labels, clf)  # a valid case passes
    with pytest.raises(ValueError, match="sum to 1"):
        check_loss_inputs(2 * alpha, segments, labels, clf)
    with pytest.raises(ValueError, match="segments"):
        check_loss_inputs(alpha, segments[:, :3], labels, clf)
