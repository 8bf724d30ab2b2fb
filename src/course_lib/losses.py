"""The three ways to train attention: soft, hard and LVML losses (defined in chapter 4).

A focus model gives attention weights ``alpha`` over the m segments of an input; a classifier
maps one segment (or a blend of segments) to C logits.  The losses differ only in *where they
average* (Vashisht and Ramaswamy 2023; the formulas are those of the authors' official code):

* soft attention averages the **inputs**:  CE(g(sum_j alpha_j x_j), y);
* hard attention averages the **losses**:  sum_j alpha_j CE(g(x_j), y)  (the exact expectation);
* LVML averages the **likelihoods**:       -log sum_j alpha_j p_j(y), computed in log space.

Each public loss takes ``(alpha (B, m), segments (B, m, *features), labels (B,), classifier)``
and returns the mean over the batch.  It validates its arguments.  The training engine
(``course_lib.mosaic_training``) runs inside ``torch.func.vmap``, where data-dependent checks
cannot run, so it validates once with :func:`check_loss_inputs` and then calls
:func:`selected_loss`, the same kernels without the checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ._validate import check_int
from .law import LOSS_NAMES


def check_loss_inputs(alpha, segments, labels, classifier) -> None:
    """Raise a clear error unless ``(alpha, segments, labels, classifier)`` are what every loss
    of this module takes (shapes above; rows of alpha non-negative, summing to 1)."""
    if not isinstance(alpha, torch.Tensor) or not alpha.is_floating_point():
        raise TypeError(f"alpha must be a floating-point torch.Tensor, got {type(alpha).__name__}")
    if alpha.dim() != 2:
        raise ValueError(f"alpha must have shape (batch, m), got {tuple(alpha.shape)}")
    if not isinstance(segments, torch.Tensor) or not segments.is_floating_point():
        raise TypeError(
            f"segments must be a floating-point torch.Tensor, got {type(segments).__name__}"
        )
    if segments.dim() < 3 or tuple(segments.shape[:2]) != tuple(alpha.shape):
        raise ValueError(
            "segments must have shape (batch, m, *features) matching alpha "
            f"{tuple(alpha.shape)}, got {tuple(segments.shape)}"
        )
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long:
        raise TypeError("labels must be a torch.Tensor of dtype torch.long (class ids)")
    if labels.shape != (alpha.shape[0],):
        raise ValueError(f"labels must have shape ({alpha.shape[0]},), got {tuple(labels.shape)}")
    if not callable(classifier):
        raise TypeError(f"classifier must be callable, got {type(classifier).__name__}")
    with torch.no_grad():
        if not bool(torch.isfinite(alpha).all()) or float(alpha.min()) < 0:
            raise ValueError("alpha must hold finite, non-negative attention weights")
        drift = float((alpha.sum(1) - 1).abs().max()) if alpha.numel() else 0.0
        if drift > 1e-4:
            raise ValueError(f"each row of alpha must sum to 1, found a row off by {drift:.2e}")


def per_segment_logits(segments: torch.Tensor, classifier: Callable) -> torch.Tensor:
    """Classify every segment on its own: (B, m, *features) -> logits (B, m, C)."""
    batch, m = segments.shape[:2]
    logits = classifier(segments.reshape(batch * m, *segments.shape[2:]))  # (B*m, C)
    if logits.dim() != 2 or logits.shape[0] != batch * m:
        raise ValueError(
            f"classifier must map (N, *features) to (N, C) logits; for N={batch * m} "
            f"it returned shape {tuple(logits.shape)}"
        )
    return logits.reshape(batch, m, -1)


def blend(alpha: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """The attention-weighted average of the segments: (B, m), (B, m, *f) -> (B, *f)."""
    weights = alpha.reshape(*alpha.shape, *[1] * (segments.dim() - 2))  # (B, m, 1, ...)
    return (weights * segments).sum(1)


def _true_class_log_prob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p_j(y) for every segment: logits (B, m, C), labels (B,) -> (B, m)."""
    log_p = torch.log_softmax(logits, dim=-1)  # (B, m, C)
    index = labels.reshape(-1, 1, 1).expand(-1, logits.shape[1], 1)  # (B, m, 1)
    return log_p.gather(-1, index).squeeze(-1)


def _soft(alpha, segments, labels, classifier):
    return F.cross_entropy(classifier(blend(alpha, segments)), labels)


def _log_q(segments, labels, classifier):
    """log p_j(y) of every segment classified on its own: (B, m)."""
    return _true_class_log_prob(per_segment_logits(segments, classifier), labels)


def _hard_of(alpha, log_q):
    return -(alpha * log_q).sum(1).mean()


def _hard(alpha, segments, labels, classifier):
    return _hard_of(alpha, _log_q(segments, labels, classifier))


def _log_mixture(alpha: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """log sum_j alpha_j exp(log_q_j) per row, exact when every q_j underflows.

    The shift M is the largest log(alpha_j q_j) over the segments with alpha_j > 0, so the
    largest term is exp(0) = 1 and nothing underflows.  The sum stays linear in alpha, so the
    gradient with respect to an alpha_j that is exactly 0 is still the true -q_j / sum.
    """
    tiny = torch.finfo(log_q.dtype).tiny
    positive = alpha > 0
    joint = torch.where(positive, torch.log(alpha.clamp_min(tiny)) + log_q, -torch.inf)
    shift = joint.max(dim=1, keepdim=True).values.detach()  # (B, 1)
    cap = 0.5 * math.log(torch.finfo(log_q.dtype).max)  # a Python float: no tensor, no device
    scaled = torch.exp((log_q - shift).clamp(max=cap))  # q_j e^{-M}; capped only where alpha_j=0
    return torch.log((alpha * scaled).sum(1)) + shift.squeeze(1)


def _lvml_of(alpha, log_q):
    return -_log_mixture(alpha, log_q).mean()


def _lvml(alpha, segments, labels, classifier):
    return _lvml_of(alpha, _log_q(segments, labels, classifier))


KERNELS = {"soft": _soft, "hard": _hard, "lvml": _lvml}


def selected_loss(weights, alpha, segments, labels, classifier, names=LOSS_NAMES):
    """sum_k weights[k] L_k, the losses ``LOSS_NAMES`` weighted by ``weights`` (3,), computing
    only those in ``names`` (the others count as 0): the loss of one run of the batched engine,
    whose one-hot ``weights`` pick the run's loss (chapters 4 and 6).

    No argument checks (it runs inside ``torch.func.vmap``; check once with
    :func:`check_loss_inputs`).  Hard and LVML share the per-segment classification.

    Parameters
    ----------
    weights : (3,) the weight of each loss of ``LOSS_NAMES`` (soft, hard, lvml).
    alpha, segments, labels, classifier : as in :func:`soft_attention_loss`.
    names : the losses to compute, among ``LOSS_NAMES``.

    Returns
    -------
    A scalar tensor (the integer 0 when ``names`` is empty).

    >>> import torch
    >>> clf = lambda x: x
    >>> seg, alpha = torch.tensor([[[4.0, 0.0], [0.0, 0.0]]]), torch.tensor([[0.5, 0.5]])
    >>> y, pick_hard = torch.tensor([0]), torch.tensor([0.0, 1.0, 0.0])
    >>> value = selected_loss(pick_hard, alpha, seg, y, clf)
    >>> bool(value == hard_attention_loss(alpha, seg, y, clf))
    True
    """
    unknown = set(names) - set(LOSS_NAMES)
    if unknown:
        raise ValueError(f"names must be among {LOSS_NAMES}, got {sorted(unknown)}")
    parts = []
    if "soft" in names:
        parts.append(weights[0] * _soft(alpha, segments, labels, classifier))
    if "hard" in names or "lvml" in names:
        log_q = _log_q(segments, labels, classifier)  # (B, m)
        if "hard" in names:
            parts.append(weights[1] * _hard_of(alpha, log_q))
        if "lvml" in names:
            parts.append(weights[2] * _lvml_of(alpha, log_q))
    return sum(parts)


def soft_attention_loss(alpha, segments, labels, classifier) -> torch.Tensor:
    """Soft attention (chapter 4): cross-entropy of the classifier on the blended input.

    L_SA = mean_b CE(g(sum_j alpha_bj x_bj), y_b).

    alpha (B, m) rows summing to 1; segments (B, m, *features); labels (B,) int64;
    classifier maps (N, *features) to (N, C) logits.  Returns a scalar tensor.

    >>> import torch
    >>> clf = lambda x: x  # two features read as two logits
    >>> seg = torch.tensor([[[4.0, 0.0], [0.0, 0.0]]])
    >>> alpha = torch.tensor([[1.0, 0.0]])  # all attention on the first segment
    >>> round(soft_attention_loss(alpha, seg, torch.tensor([0]), clf).item(), 4)
    0.0181
    """
    check_loss_inputs(alpha, segments, labels, classifier)
    return _soft(alpha, segments, labels, classifier)


def hard_attention_loss(alpha, segments, labels, classifier) -> torch.Tensor:
    """Hard attention (chapter 4): the expected per-segment cross-entropy under alpha.

    L_HA = mean_b sum_j alpha_bj CE(g(x_bj), y_b), the exact expectation (no sampling).
    Shapes as in :func:`soft_attention_loss`.
    """
    check_loss_inputs(alpha, segments, labels, classifier)
    return _hard(alpha, segments, labels, classifier)


def lvml_loss(alpha, segments, labels, classifier) -> torch.Tensor:
    """Latent-variable marginal likelihood (chapter 4): -log sum_j alpha_j p_j(y), batch mean.

    The segment index is a latent variable with prior alpha; p_j = softmax(g(x_j)).  Computed in
    log space (a shifted log-sum-exp), so it stays finite and exact where every p_j(y) underflows
    and the naive formula returns inf (or, with the official code's +1e-30, a clipped 69.08).
    Shapes as in :func:`soft_attention_loss`.
    """
    check_loss_inputs(alpha, segments, labels, classifier)
    return _lvml(alpha, segments, labels, classifier)


def attention_loss(name: str) -> Callable:
    """The public loss called ``name`` ("soft", "hard" or "lvml")."""
    losses = {"soft": soft_attention_loss, "hard": hard_attention_loss, "lvml": lvml_loss}
    if name not in losses:
        raise ValueError(f"loss name must be one of {LOSS_NAMES}, got {name!r}")
    return losses[name]


def alpha_gradient(loss, alpha, segments, labels, classifier) -> torch.Tensor:
    """The gradient each loss sends to the attention weights, from its closed form (chapter 4).

    Returns (B, m): entry (b, j) is d l_b / d alpha_bj for example b's own loss l_b (so the
    gradient of the batch mean is this divided by B).  The course's derivation:

    * soft: <grad of CE at the blend, x_j> = (p(xbar) - e_y)^T J_g(xbar) x_j;
    * hard: CE_j = -log p_j(y), the segment's own loss;
    * lvml: -p_j(y) / sum_k alpha_k p_k(y), computed in log space.
    """
    name = loss if isinstance(loss, str) else getattr(loss, "__name__", loss)
    aliases = {"soft_attention_loss": "soft", "hard_attention_loss": "hard", "lvml_loss": "lvml"}
    name = aliases.get(name, name)
    if name not in LOSS_NAMES:
        raise ValueError(f"loss must be one of {LOSS_NAMES} (or one of the loss functions)")
    check_loss_inputs(alpha, segments, labels, classifier)
    if name == "soft":
        mixed = blend(alpha, segments).detach().requires_grad_()
        with torch.enable_grad():
            per_example = F.cross_entropy(classifier(mixed), labels, reduction="sum")
            # (B, *f): p(xbar) - e_y, pulled back through the classifier
            (grad_mixed,) = torch.autograd.grad(per_example, mixed)
        return (grad_mixed.unsqueeze(1) * segments).flatten(2).sum(-1).detach()
    with torch.no_grad():
        log_q = _log_q(segments, labels, classifier)
        if name == "hard":
            return -log_q
        return -torch.exp(log_q - _log_mixture(alpha, log_q).unsqueeze(1))


def reinforce_hard_attention_loss(
    alpha, segments, labels, classifier, n_samples, *, baseline=False, generator=None
) -> torch.Tensor:
    """Hard attention trained by sampling (chapter 4): a score-function (REINFORCE) surrogate.

    The usual way to train hard attention draws segments J_1..J_K ~ alpha_b for each example and
    never classifies the others.  This returns the surrogate

        S = mean_b (1/K) sum_k [ CE_b(J_k)
                                 + (CE_b(J_k) - c_bk) * (log alpha_bJ_k - stop(log alpha_bJ_k)) ]

    (stop = detached).  Its value is the sampled loss, an unbiased estimate of
    :func:`hard_attention_loss`; its gradient is the score-function estimate of the exact
    gradient: for the classifier, the gradient of CE at the sampled segments; for the attention,
    CE(J) * grad log alpha_J, unbiased because
    E_J[CE(J) grad log alpha_J] = sum_j CE_j grad alpha_j.
    The classifier sees K segments per example instead of m.  The course trains with the exact
    expectation instead (:func:`hard_attention_loss`); the estimate's variance falls like 1/K.

    Parameters
    ----------
    alpha : (B, m) attention weights, rows summing to 1 (gradients flow through log alpha).
    segments : (B, m, *features).
    labels : (B,) int64 class ids.
    classifier : maps (N, *features) to (N, C) logits; called once on N = B * n_samples rows.
    n_samples : K >= 1 segments drawn per example, with replacement.
    baseline : if True, c_bk is the mean loss of the example's other K - 1 samples (a
        leave-one-out baseline, still unbiased; needs K >= 2); otherwise c_bk = 0.
    generator : optional ``torch.Generator`` for the draws (on alpha's device).

    Returns
    -------
    A scalar tensor: the sampled loss, whose gradient is the REINFORCE estimate.
    """
    check_loss_inputs(alpha, segments, labels, classifier)
    k = check_int(n_samples, "n_samples", minimum=1)
    if not isinstance(baseline, bool):
        raise TypeError(f"baseline must be a bool, got {type(baseline).__name__}")
    if baseline and k < 2:
        raise ValueError(f"n_samples must be >= 2 with baseline=True, got {k}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator is not None and generator.device.type != alpha.device.type:
        raise ValueError(
            f"generator is on {generator.device} but alpha is on {alpha.device}: make it with "
            f"torch.Generator(device=alpha.device)"
        )
    with torch.no_grad():
        index = torch.multinomial(alpha.detach(), k, replacement=True, generator=generator)
    rows = torch.arange(alpha.shape[0], device=alpha.device).unsqueeze(1)  # (B, 1)
    picked = segments[rows, index]  # (B, K, *features): only these are classified
    ce = -_log_q(picked, labels, classifier)  # (B, K)
    reward = ce.detach()
    if baseline:
        reward = reward - (reward.sum(1, keepdim=True) - reward) / (k - 1)
    log_alpha = torch.log(alpha.gather(1, index))  # finite: a sampled weight is > 0
    return (ce + reward * (log_alpha - log_alpha.detach())).mean()
