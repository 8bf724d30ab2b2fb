"""Checks for the exercises of chapter 4 (three ways to attend): the three losses, the gradient
each sends to the attention weights, where LVML's focus incentive overtakes hard attention's,
and a prediction to compare with a run."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..focus import MLPClassifier
from ..law import LOSS_NAMES
from ..losses import hard_attention_loss, lvml_loss, soft_attention_loss
from ._core import CheckFailed, close, expect_number, run_check
from .solutions import incentive_crossover


def _case(seed: int, batch: int = 5, m: int = 4, d: int = 6, n_classes: int = 3):
    """Random attention, segments, labels and a (nonlinear) MLP classifier, in float64."""
    gen = torch.Generator().manual_seed(seed)
    alpha = torch.softmax(2 * torch.randn(batch, m, generator=gen, dtype=torch.float64), 1)
    segments = torch.randn(batch, m, d, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, n_classes, (batch,), generator=gen)
    torch.manual_seed(seed)
    classifier = MLPClassifier(d, n_classes, hidden=5, init="xavier").double()
    return alpha, segments, labels, classifier


def _scalar(value, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{name} should return a torch.Tensor, got {type(value).__name__}.")
    if value.shape != ():
        raise CheckFailed(
            f"{name} should return one number (a 0-dim tensor, the mean over the batch), got "
            f"shape {tuple(value.shape)}."
        )
    return value


def _log_q(segments, labels, classifier):
    batch, m = segments.shape[:2]
    logits = classifier(segments.reshape(batch * m, -1)).reshape(batch, m, -1)
    return torch.log_softmax(logits, -1).gather(-1, labels.view(-1, 1, 1).expand(-1, m, 1))[..., 0]


def _first_match(out, candidates, tol: float = 1e-8):
    """The hint of the first ``(value, hint)`` pair whose value ``out`` matches, else None."""
    for value, hint in candidates:
        if value.shape == out.shape and close(out, value, tol=tol):
            return hint
    return None


def _soft_mistakes(alpha, segments, labels, clf, ref) -> tuple:
    """``(value, hint)`` for the usual wrong soft attention losses."""
    log_q = _log_q(segments, labels, clf)
    logits = clf(segments.reshape(-1, segments.shape[-1])).reshape(*alpha.shape, -1)
    blend_uniform = segments.mean(1)
    blend_mean = (alpha[..., None] * segments).mean(1)
    return (
        (
            -(alpha * log_q).sum(1).mean(),
            "you averaged the per-segment losses (that is hard attention); soft "
            "attention classifies ONE input, the blend sum_j alpha_j x_j.",
        ),
        (
            F.cross_entropy((alpha[..., None] * logits).sum(1), labels),
            "you averaged the segments' logits; soft attention averages the INPUTS and "
            "then classifies: g(sum_j alpha_j x_j) (with a nonlinear classifier these "
            "differ).",
        ),
        (
            F.cross_entropy(clf(blend_uniform), labels),
            "the blend must weight each segment by its attention: sum_j alpha_j x_j, "
            "not the plain mean over segments.",
        ),
        (
            F.cross_entropy(clf(blend_mean), labels),
            "the blend is the SUM over segments (dim 1) of alpha_j x_j; alpha already "
            "sums to 1, so taking the mean divides it by m.",
        ),
        (ref * len(labels), "return the MEAN over the batch, not the sum."),
    )


@run_check("soft attention loss: classify the blended input")
def check_soft_attention_loss(student_fn) -> None:
    """Check ``student_fn(alpha, segments, labels, classifier) -> scalar``."""
    for seed in range(3):
        alpha, segments, labels, clf = _case(seed)
        with torch.no_grad():
            out = _scalar(student_fn(alpha, segments, labels, clf), "soft_attention_loss")
            ref = soft_attention_loss(alpha, segments, labels, clf)
            if close(out, ref, tol=1e-8):
                continue
            candidates = _soft_mistakes(alpha, segments, labels, clf, ref)
            hint = _first_match(out, candidates)
            raise CheckFailed(
                hint
                or "the value differs from CE(g(sum_j alpha_j x_j), y) "
                "averaged over the batch; blend over dim 1, then classify."
            )


def _hard_mistakes(alpha, segments, labels, clf, ref) -> tuple:
    """``(value, hint)`` for the usual wrong hard attention losses."""
    log_q = _log_q(segments, labels, clf)
    return (
        (
            -torch.logsumexp(torch.log(alpha) + log_q, 1).mean(),
            "you computed -log sum_j alpha_j p_j(y) (that is LVML); hard attention "
            "averages the LOSSES: sum_j alpha_j (-log p_j(y)).",
        ),
        (
            soft_attention_loss(alpha, segments, labels, clf),
            "you classified the blend (that is soft attention); hard attention "
            "classifies each segment on its own.",
        ),
        (
            -log_q.mean(),
            "weight each segment's cross-entropy by its attention alpha_j, not equally.",
        ),
        (
            -(alpha * log_q).sum(0).mean(),
            "sum over the segments (dim 1) and average over the batch (dim 0); your "
            "axes are swapped.",
        ),
        (ref * len(labels), "return the MEAN over the batch, not the sum."),
        (-ref, "the cross-entropy is -log p_j(y): the sign is flipped."),
    )


@run_check("hard attention loss: the attention-weighted average of the losses")
def check_hard_attention_loss(student_fn) -> None:
    """Check ``student_fn(alpha, segments, labels, classifier) -> scalar``."""
    for seed in range(3):
        alpha, segments, labels, clf = _case(seed)
        with torch.no_grad():
            out = _scalar(student_fn(alpha, segments, labels, clf), "hard_attention_loss")
            ref = hard_attention_loss(alpha, segments, labels, clf)
            if close(out, ref, tol=1e-8):
                continue
            candidates = _hard_mistakes(alpha, segments, labels, clf, ref)
            hint = _first_match(out, candidates)
            raise CheckFailed(
                hint
                or "the value differs from sum_j alpha_j CE(g(x_j), y) averaged over the batch."
            )


def _lvml_mistakes(alpha, segments, labels, clf, ref) -> tuple:
    """``(value, hint)`` for the usual wrong LVML losses."""
    log_q = _log_q(segments, labels, clf)
    logits = clf(segments.reshape(-1, segments.shape[-1])).reshape(*alpha.shape, -1)
    return (
        (
            F.cross_entropy((alpha[..., None] * logits).sum(1), labels),
            "you averaged the LOGITS, CE(sum_j alpha_j g(x_j), y); LVML averages the "
            "PROBABILITIES: -log sum_j alpha_j softmax(g(x_j))_y.",
        ),
        (
            -(alpha * log_q).sum(1).mean(),
            "you averaged the per-segment losses (that is hard attention); LVML takes "
            "the log of the averaged likelihood: -log sum_j alpha_j p_j(y).",
        ),
        (
            -torch.logsumexp(torch.log(alpha) + log_q - math.log(alpha.shape[1]), 1).mean(),
            "sum the likelihoods over the segments (dim 1), not the mean: alpha already sums to 1.",
        ),
        (
            -torch.logsumexp(torch.log(alpha) + log_q, 0).mean(),
            "the sum runs over the segments (dim 1) of each example, then average over "
            "the batch (dim 0); your axes are swapped.",
        ),
        (ref * len(labels), "return the MEAN over the batch, not the sum."),
    )


@run_check("LVML loss: -log sum_j alpha_j p_j(y), in log space")
def check_lvml_loss(student_fn) -> None:
    """Check ``student_fn(alpha, segments, labels, classifier) -> scalar``, including a case
    where every p_j(y) underflows."""
    for seed in range(3):
        alpha, segments, labels, clf = _case(seed)
        with torch.no_grad():
            out = _scalar(student_fn(alpha, segments, labels, clf), "lvml_loss")
            ref = lvml_loss(alpha, segments, labels, clf)
            if close(out, ref, tol=1e-8):
                continue
            candidates = _lvml_mistakes(alpha, segments, labels, clf, ref)
            hint = _first_match(out, candidates)
            raise CheckFailed(
                hint or "the value differs from -log sum_j alpha_j p_j(y) averaged over the batch."
            )
    # every true-class probability underflows: p_j(y) = e^{-1000 - j}
    m = 4
    segments = torch.zeros(3, m, 2, dtype=torch.float64)
    segments[:, :, 1] = 1000.0 + torch.arange(m, dtype=torch.float64)
    labels = torch.zeros(3, dtype=torch.long)
    alpha = torch.softmax(
        torch.randn(3, m, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), 1
    )
    with torch.no_grad():
        out = _scalar(student_fn(alpha, segments, labels, lambda x: x), "lvml_loss")
    ref = lvml_loss(alpha, segments, labels, lambda x: x)
    if not torch.isfinite(out) or not close(out, ref, tol=1e-6):
        raise CheckFailed(
            f"on segments whose true-class probabilities are all about e^-1000 you returned "
            f"{out.item():.4g} instead of {ref.item():.6g}: the probabilities underflow to 0. "
            "Stay in log space: log sum_j alpha_j p_j(y) = logsumexp_j(log alpha_j + "
            "log_softmax(g(x_j))_y)."
        )


def _alpha_gradient_mistakes(alpha, segments, labels, clf, auto, truth) -> tuple:
    """``(value, hint)`` for the usual wrong gradients with respect to alpha; ``auto`` is
    autograd's gradient of the batch mean, ``truth`` that of each example's own loss."""
    with torch.no_grad():
        log_q = _log_q(segments, labels, clf)
        q = log_q.exp()
        mixture = (alpha * q).sum(1, keepdim=True)
        return (
            (
                auto,
                "that is the gradient of the batch MEAN; give each example's own loss "
                "(multiply by the batch size).",
            ),
            (
                -truth,
                "the sign is flipped (a worse segment gets a LARGER gradient: for hard "
                "attention d l / d alpha_j = -log q_j >= 0).",
            ),
            (
                alpha * (truth - (alpha * truth).sum(1, keepdim=True)),
                "that is the gradient with respect to the SCORES (it went through the "
                "softmax); the exercise asks for d loss / d alpha_j.",
            ),
            (
                -q,
                "missing the normalisation: d/d alpha_j of -log sum_k alpha_k q_k is "
                "-q_j / sum_k alpha_k q_k.",
            ),
            (
                -alpha * q / mixture,
                "that is the posterior gamma_j = alpha_j q_j / sum_k alpha_k q_k; the "
                "gradient is -q_j / sum_k alpha_k q_k (no alpha_j in the numerator).",
            ),
            (q, "segment j's loss is -log q_j, not q_j."),
        )


# the derivation of each loss's gradient, the hint when no usual mistake matches
_ALPHA_DERIVATIONS = {
    "soft": "soft attention depends on alpha only through the blend xbar = sum_j "
    "alpha_j x_j, so d l / d alpha_j = (grad of CE at xbar) . x_j.",
    "hard": "hard attention is linear in alpha: d l / d alpha_j = -log q_j.",
    "lvml": "d/d alpha_j of -log sum_k alpha_k q_k = -q_j / sum_k alpha_k q_k.",
}


@run_check("the gradient each loss sends to the attention weights alpha_j")
def check_alpha_gradient(student_fn) -> None:
    """Check ``student_fn(loss, alpha, segments, labels, classifier) -> (B, m)``: d l_b/d alpha_bj
    of each example's own loss, for loss in ("soft", "hard", "lvml")."""
    losses = {"soft": soft_attention_loss, "hard": hard_attention_loss, "lvml": lvml_loss}
    for name in LOSS_NAMES:
        for seed in range(2):
            alpha, segments, labels, clf = _case(seed)
            out = student_fn(name, alpha, segments, labels, clf)
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(alpha.shape):
                raise CheckFailed(
                    f"for {name!r} return a tensor of shape {tuple(alpha.shape)} "
                    f"(one entry per example and segment), got "
                    f"{getattr(out, 'shape', type(out).__name__)}."
                )
            a = alpha.clone().requires_grad_()
            (auto,) = torch.autograd.grad(losses[name](a, segments, labels, clf), a)
            truth = auto * len(labels)  # each example's own loss, not the batch mean
            if close(out.detach(), truth, tol=1e-7):
                continue
            candidates = _alpha_gradient_mistakes(alpha, segments, labels, clf, auto, truth)
            hint = _first_match(out.detach(), candidates, tol=1e-7)
            raise CheckFailed(
                f"for {name!r}: "
                + (hint or "the values differ from autograd's. " + _ALPHA_DERIVATIONS[name])
            )


_CROSSOVER_CLASSES = (2, 3, 10, 20, 1000)


def _finite_difference_crossover(C, delta=0.01):
    # delta log C = log(1 + delta (1 - 1/C) / Z) with Z = alpha + (1 - alpha)/C
    Z = delta * (1 - 1 / C) / (C**delta - 1)
    return (Z - 1 / C) / (1 - 1 / C)


# (formula of C, hint): the usual wrong derivations of alpha*
_CROSSOVER_MISTAKES = (
    (
        lambda C: 1 / math.log(C),
        "the background segments still give the true class probability 1/C, so LVML's floor "
        "is -log(alpha + (1 - alpha)/C), not -log(alpha): its incentive is "
        "(C - 1)/(C alpha + 1 - alpha), not 1/alpha.",
    ),
    (
        lambda C: (C - 1) / (C * math.log(C)),
        "LVML's incentive is (1 - 1/C) / (alpha + (1 - alpha)/C): keep the (1 - alpha)/C in "
        "the denominator.",
    ),
    (
        lambda C: 1 / math.log2(C) - 1 / (C - 1),
        "use the natural logarithm: the cross-entropy of a uniform guess is ln C.",
    ),
    (
        lambda C: 1 / math.log(C) + 1 / (C - 1),
        "the sign of the second term: (C - 1)/(C alpha + 1 - alpha) = ln C gives "
        "alpha = 1/ln C - 1/(C - 1).",
    ),
    (
        lambda C: 1 / math.log(C) - 1 / C,
        "C - 1, not C: alpha C + 1 - alpha = alpha (C - 1) + 1.",
    ),
    (
        _finite_difference_crossover,
        "that is the crossover of the official code's finite differences "
        "L(alpha) - L(alpha + 0.01); the question asks for the derivatives -dL/dalpha.",
    ),
    (
        lambda C: 1 - (1 / math.log(C) - 1 / (C - 1)),
        "that is where hard attention starts to push HARDER, read from the other end: the "
        "crossover is alpha*, not 1 - alpha*.",
    ),
)


@run_check("where hard attention's and LVML's late focus incentives cross")
def check_incentive_crossover(student_fn) -> None:
    """Check ``student_fn(C) -> alpha*`` (any real scalar) for several C, read all at once so
    that a formula wrong in the same way everywhere is named."""
    outs = [expect_number(student_fn(C), "alpha*") for C in _CROSSOVER_CLASSES]
    refs = [incentive_crossover(C) for C in _CROSSOVER_CLASSES]

    def same(values):
        return all(math.isclose(o, r, rel_tol=1e-6, abs_tol=1e-12) for o, r in zip(outs, values))

    if same(refs):
        return
    for formula, hint in _CROSSOVER_MISTAKES:
        if same([formula(C) for C in _CROSSOVER_CLASSES]):
            raise CheckFailed(hint)
    for C, out in zip(_CROSSOVER_CLASSES, outs):
        if not 0 < out < 1:
            raise CheckFailed(f"for C = {C} you returned {out:.6g}, not a focus quality in (0, 1).")
    for C, out, ref in zip(_CROSSOVER_CLASSES, outs, refs):
        if not math.isclose(out, ref, rel_tol=1e-6):
            raise CheckFailed(
                f"for C = {C} the crossover is {ref:.6g}, you returned "
                f"{out:.6g}: take each loss's floor with the classifier "
                "converged, differentiate in alpha, and set the two equal."
            )


def compare_prediction(prediction, focus_accuracy: dict) -> bool:
    """Compare a predicted winner ("soft", "hard" or "lvml") with measured focus accuracies.

    Prints what was measured and whether the prediction matched; returns True if it did.
    """
    if prediction not in LOSS_NAMES:
        print(f"[to do] set `prediction` to one of {LOSS_NAMES} before running the experiment.")
        return False
    winner = max(focus_accuracy, key=focus_accuracy.get)
    ranking = ", ".join(
        f"{k} {v:.1f} %" for k, v in sorted(focus_accuracy.items(), key=lambda kv: -kv[1])
    )
    if prediction == winner:
        print(f"[passed] you predicted {prediction!r} and it won: {ranking}.")
        return True
    print(
        f"[different] you predicted {prediction!r}, but {winner!r} won: {ranking}. "
        "Look at the signatures of chapter 4: which loss keeps every segment in view while "
        "the focus is still poor?"
    )
    return False
