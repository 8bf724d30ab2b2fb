"""The persisting identity between a topic word's score and its embedding norm (chapter 2).

Lu, Mao and Nayak (2021) show that, for a topic word ``tau`` trained by gradient flow with a fixed
query, the quantity

    C_tau = ||q||^2 ||w_tau||^2 - 2 s_tau - (2/m) exp(s_tau)            (chapter 2, eq. (2.2))

does not change, whatever classifier sits on top of the attention layer.  Equivalently the scaled
embedding norm is a fixed function of the score (the "SEN curve"),

    ||q|| ||w_tau|| = sqrt( 2 (s - s0) + (2/m)(exp(s) - exp(s0)) + ||q||^2 ||w0||^2 )   (eq. (2.3)).

The identity is chapter 7's law for one topic word (``conservation.topic_invariant``, with
``n = m`` logits at zero); this module writes it in chapter 2's form and holds its consequences
(the two regimes, the attention it implies), the gradient of a sentence's loss with respect to
the scores (eq. (2.1)) and measurements of recorded runs against the identity.  The weight
``a(s)`` is ``law.attention_weight``.  The corpora of the experiments are built in
``course_lib.topic``, the small run behind chapter 2's SEN-curve figure is
``training.sen_curve_run`` and the identity on real words (chapter 3) is ``sst.real_word_sen``.
The derivation is the course's own (chapter 2); the result is the paper's.

Functions of numbers (``sen_invariant``, ``sen_norm_curve``, ...) work elementwise and follow the
kind rule of ``course_lib.law`` (float, array or tensor in, the same kind out).
"""

from __future__ import annotations

import numpy as np
import torch

from ._validate import check_int, check_positive
from .conservation import topic_invariant
from .law import (
    _check_others,
    attention_potential,
    inverse_attention_potential,
    miss_reciprocal,
    real_values,
    same_kind,
)

__all__ = [
    "sen_invariant",
    "sen_norm_curve",
    "sen_relative_gap",
    "sen_score_from_norm",
    "small_score_norm_sq",
    "large_score_miss",
    "score_gradient",
    "sen_drift",
    "history_sen_gap",
    "history_invariant",
    "max_margin",
    "score_per_norm_sq",
]


def _check_m(m, name: str = "m"):
    """``m`` (background words per sentence): a positive number, or positive numbers elementwise."""
    return _check_others(m, name)


def _nonnegative(value, name: str):
    value = real_values(value, name)
    if (value < 0).any() if isinstance(value, (torch.Tensor, np.ndarray)) else value < 0:
        raise ValueError(f"{name} is a squared norm and must be >= 0")
    return value


def _sqrt_clamped(x):
    if isinstance(x, torch.Tensor):
        return torch.sqrt(torch.clamp(x, min=0.0))
    return np.sqrt(np.maximum(x, 0.0))


# --------------------------------------------------------------------------- the identity


def sen_invariant(score, embed_norm_sq, query_norm_sq, m):
    """The conserved quantity of chapter 2, eq. (2.2): ``||q||^2 ||w||^2 - 2 s - (2/m) e^s``.

    ``score`` is ``s_tau = q . k_tau``, ``embed_norm_sq`` is ``||w_tau||^2``, ``query_norm_sq`` is
    ``||q||^2`` and ``m`` the number of background words in each sentence.  Elementwise over
    broadcastable floats, arrays or tensors of any shape (e.g. ``(T, n_topic_words)`` for a run).
    Under the assumptions of theorem ``thm-ch2-identity`` (fixed query, one topic word per sentence,
    background words at zero embedding and equal score, gradient flow) it does not change in
    training, for any classifier and any loss.  It is chapter 7's law written in chapter 2's
    form: ``-2 conservation.topic_invariant - 2/m``.
    """
    m = _check_m(m)
    return -2.0 * topic_invariant(score, embed_norm_sq, query_norm_sq, m) - 2.0 / m


def sen_norm_curve(score, m, score0=0.0, scaled_norm0=0.0):
    """The SEN curve of chapter 2, eq. (2.3): the scaled embedding norm ``||q|| ||w_tau||`` that the
    identity predicts at score ``s``,

        sqrt( 2 (s - s0) + (2/m) (e^s - e^s0) + scaled_norm0^2 ),

    where ``score0 = s_tau(0)`` and ``scaled_norm0 = ||q|| ||w_tau(0)||`` are the values at the
    start of training (defaults 0: keys start at zero, embeddings near zero, as in the paper).
    Elementwise;
    a negative radicand (a score the identity cannot reach from the start) gives 0.  The curve
    depends on ``m`` only: the query norm is absorbed into the scaled norm.  The radicand is
    ``2 (Psi_m(s) - Psi_m(s0)) + scaled_norm0^2`` with ``Psi_m`` = ``law.attention_potential``.
    """
    score = real_values(score, "score")
    m = _check_m(m)
    score0 = real_values(score0, "score0")
    scaled_norm0 = real_values(scaled_norm0, "scaled_norm0")
    radicand = (
        2.0 * (attention_potential(score, m) - attention_potential(score0, m))
        + scaled_norm0 * scaled_norm0
    )
    return same_kind(_sqrt_clamped(radicand), score, m, score0, scaled_norm0)


def sen_relative_gap(score, scaled_norm, m, score0=0.0, scaled_norm0=0.0):
    """Relative gap of a measured ``||q|| ||w_tau||`` from the SEN curve (chapter 2, eq. (2.3)):
    ``|scaled_norm - curve(score)| / curve(score)``, elementwise.  Where the curve is 0 the gap is
    ``inf`` (or ``nan`` if the measurement is 0 too): compare only points of appreciable norm."""
    scaled_norm = real_values(scaled_norm, "scaled_norm")
    curve = sen_norm_curve(score, m, score0, scaled_norm0)
    if isinstance(curve, torch.Tensor) or isinstance(scaled_norm, torch.Tensor):
        like = curve if isinstance(curve, torch.Tensor) else scaled_norm  # the tensor's device
        curve = torch.as_tensor(curve, device=like.device)
        scaled_norm = torch.as_tensor(scaled_norm, dtype=curve.dtype, device=curve.device)
        return (scaled_norm - curve).abs() / curve
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.abs(scaled_norm - curve) / curve
    return same_kind(out, scaled_norm, curve)


def sen_score_from_norm(scaled_norm, m, score0=0.0, scaled_norm0=0.0):
    """The inverse of the SEN curve (chapter 2, eq. (2.3)): the score ``s`` at which the identity
    puts the scaled norm ``||q|| ||w_tau||``.  The curve says
    ``Psi_m(s) = (scaled_norm^2 - scaled_norm0^2) / 2 + Psi_m(s0)`` with
    ``Psi_m(s) = s + (e^s - 1)/m``, so ``s = law.inverse_attention_potential(...)``
    (Lambert W, chapter 7, eq. (7.2)).  Elementwise, by the kind rule of ``course_lib.law``.

    >>> round(sen_score_from_norm(sen_norm_curve(3.0, 20), 20), 12)
    3.0
    """
    scaled_norm = real_values(scaled_norm, "scaled_norm")
    m = _check_m(m)
    score0 = real_values(score0, "score0")
    scaled_norm0 = real_values(scaled_norm0, "scaled_norm0")
    if (
        (scaled_norm < 0).any()
        if isinstance(scaled_norm, (torch.Tensor, np.ndarray))
        else (scaled_norm < 0)
    ):
        raise ValueError("scaled_norm must be >= 0")
    potential = 0.5 * (scaled_norm * scaled_norm - scaled_norm0 * scaled_norm0) + (
        attention_potential(score0, m)
    )
    score = inverse_attention_potential(potential, m)
    return same_kind(score, scaled_norm, m, score0, scaled_norm0)


def small_score_norm_sq(score, m):
    """Small-score regime of the identity (chapter 2, eq. (2.8)): for ``|s| << 1`` (zero start),
    ``||q||^2 ||w_tau||^2 ~ 2 (1 + 1/m) s``: the score grows like the *squared* norm."""
    score = real_values(score, "score")
    m = _check_m(m)
    return same_kind(2.0 * (1.0 + 1.0 / m) * score, score, m)


def large_score_miss(scaled_norm_sq):
    """Large-score regime of the identity (chapter 2, eq. (2.9)): the attention the topic word
    misses,
    ``1 - a_tau ~ 2 / (||q||^2 ||w_tau||^2)``, given ``scaled_norm_sq = ||q||^2 ||w_tau||^2``.
    Independent of ``m``."""
    scaled_norm_sq = real_values(scaled_norm_sq, "scaled_norm_sq")
    if (
        (scaled_norm_sq <= 0).any()
        if isinstance(scaled_norm_sq, (torch.Tensor, np.ndarray))
        else scaled_norm_sq <= 0
    ):
        raise ValueError("scaled_norm_sq must be > 0")
    return same_kind(2.0 / scaled_norm_sq, scaled_norm_sq)


# --------------------------------------------------------------------------- gradients


def score_gradient(attention, word_embeddings, context, grad_context):
    """Gradient of each sentence's loss with respect to the score at each position (chapter 2,
    eq. (2.1)): ``d loss / d s_i = a_i (w_{x_i} - v) . g`` with ``g = d loss / d v``.

    ``attention`` ``(batch, length)``; ``word_embeddings`` ``(batch, length, embed_dim)``, the
    embeddings ``w_{x_i}`` of the words at each position; ``context`` ``(batch, embed_dim)``,
    ``v = sum_i a_i w_{x_i}``; ``grad_context`` ``(batch, embed_dim)``, ``g``.  Returns
    ``(batch, length)``.  A word's score gradient sums its positions; its key gradient is that times
    the query.
    """
    for name, value, dim in (
        ("attention", attention, 2),
        ("word_embeddings", word_embeddings, 3),
        ("context", context, 2),
        ("grad_context", grad_context, 2),
    ):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if value.dim() != dim:
            raise ValueError(f"{name} must have {dim} dimensions, got shape {tuple(value.shape)}")
    batch, length = attention.shape
    if word_embeddings.shape[:2] != (batch, length):
        raise ValueError(
            f"word_embeddings must have shape ({batch}, {length}, embed_dim), "
            f"got {tuple(word_embeddings.shape)}"
        )
    embed_dim = word_embeddings.shape[2]
    for name, value in (("context", context), ("grad_context", grad_context)):
        if tuple(value.shape) != (batch, embed_dim):
            raise ValueError(
                f"{name} must have shape ({batch}, {embed_dim}), got {tuple(value.shape)}"
            )
    return attention * torch.einsum(
        "bld,bd->bl", word_embeddings - context[:, None, :], grad_context
    )


# --------------------------------------------------------------------------- measuring runs


def sen_drift(scores, norms, query_norms, m):
    """Largest change of the conserved quantity (chapter 2, eq. (2.2)) along a run, per word:
    ``max_t |C(t) - C(0)|``.

    ``scores`` and ``norms`` ``(T, n_words)``: ``s_tau`` and ``||w_tau||`` at the recorded steps;
    ``query_norms`` ``(T,)``: ``||q||`` at those steps (constant unless the query is trained; use
    the value of each step).  Returns ``(n_words,)``.
    """
    for name, value in (("scores", scores), ("norms", norms), ("query_norms", query_norms)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if scores.dim() != 2 or norms.shape != scores.shape:
        raise ValueError(
            "scores and norms must both have shape (T, n_words), "
            f"got {tuple(scores.shape)} and {tuple(norms.shape)}"
        )
    if query_norms.shape != scores.shape[:1]:
        raise ValueError(
            f"query_norms must have shape ({scores.shape[0]},), got {tuple(query_norms.shape)}"
        )
    invariant = sen_invariant(scores, norms.square(), query_norms.square()[:, None], m)  # (T, n)
    return (invariant - invariant[:1]).abs().amax(dim=0)


def history_invariant(history, m) -> torch.Tensor:
    """``([R,] T, n_topic_words)``: the conserved quantity (eq. (2.2)) at every recorded step of a
    ``train_full_batch`` history (chapter 2), using the query norm recorded at each step."""
    _check_history(history)
    return sen_invariant(
        history.topic_scores.double(),
        history.topic_norms.double().square(),
        history.query_norm.double().square()[..., None],
        m,
    )


def history_sen_gap(history, m, min_scaled_norm: float = 0.5) -> torch.Tensor:
    """``([R,] T, n_topic_words)``: relative gap of the measured ``||q|| ||w_tau||`` from the SEN
    curve
    (eq. (2.3)) started at each word's first recorded score and scaled norm (chapter 2).  Points
    whose measured scaled norm is below ``min_scaled_norm`` are ``nan`` (there the curve is near 0
    and a relative gap means little); reduce with ``torch.nanquantile`` / ``nan_to_num``.
    """
    _check_history(history)
    check_positive(min_scaled_norm, "min_scaled_norm", allow_zero=True)
    scores = history.topic_scores.double()  # ([R,] T, n)
    scaled = history.scaled_norms.double()
    gap = sen_relative_gap(scores, scaled, m, scores[..., :1, :], scaled[..., :1, :])
    return torch.where(scaled >= min_scaled_norm, gap, torch.full_like(gap, float("nan")))


def _check_history(history) -> None:
    for attr in ("topic_scores", "topic_norms", "query_norm"):
        if not hasattr(history, attr):
            raise TypeError(f"history must be train_full_batch's History (missing {attr!r})")
    if history.topic_scores.shape[-1] == 0:
        raise ValueError("history records no topic words: train with topic_word_ids=...")


def max_margin(classifier_matrix: torch.Tensor, label: int) -> tuple[float, torch.Tensor]:
    """The max-margin direction of a fixed linear classifier for class ``label`` (chapter 2,
    convergence theorem): the unit ``u`` maximising ``gamma = min_{j != c} (U_c - U_j) . u``.

    ``classifier_matrix`` ``(embed_dim, n_classes)`` (the columns ``U_j``).  Returns
    ``(gamma, u)``; ``gamma <= 0`` means class ``label`` cannot be separated.  Solved through the
    dual ``min_{lam >= 0} 1/2 ||D^T lam||^2 - sum(lam)`` by projected gradient (a few classes), on
    a float64 CPU copy; ``u`` is returned on ``classifier_matrix``'s device.
    """
    if not isinstance(classifier_matrix, torch.Tensor) or classifier_matrix.dim() != 2:
        raise TypeError("classifier_matrix must be a (embed_dim, n_classes) torch.Tensor")
    n_classes = classifier_matrix.shape[1]
    check_int(label, "label", minimum=0, maximum=n_classes - 1)
    U = classifier_matrix.detach().double().cpu()
    others = [j for j in range(n_classes) if j != label]
    D = (U[:, label : label + 1] - U[:, others]).T  # (K-1, d)
    gram = D @ D.T
    lam = torch.zeros(len(others), dtype=torch.float64)
    step = 1.0 / float(torch.linalg.eigvalsh(gram).max().clamp(min=1e-12))
    for _ in range(20000):
        new = (lam - step * (gram @ lam - 1.0)).clamp(min=0.0)
        if float((new - lam).abs().max()) < 1e-13:
            lam = new
            break
        lam = new
    w = D.T @ lam
    norm = float(w.norm())
    if norm == 0.0 or float((D @ w).min()) < 1.0 - 1e-6:
        return 0.0, torch.zeros(U.shape[0], dtype=torch.float64).to(classifier_matrix.device)
    return 1.0 / norm, (w / norm).to(classifier_matrix.device)


# ------------------------------------------------------------------ the proof's common factor


def score_per_norm_sq(score, query_norm_sq, m):
    """The proof's key step (chapter 2, eq. (2.5)): the score a topic word gains per unit of
    squared embedding norm, ``ds / d||w||^2 = (||q||^2 / 2) (1 - a(s))`` with
    ``a(s) = e^s / (e^s + m)`` (``law.attention_weight``).

    Both rates share the classifier's factor ``a R_tau``, which cancels in their ratio;
    ``query_norm_sq`` is ``||q||^2`` (already squared), ``m`` the background words per sentence
    (their scores taken as 0).  Elementwise over floats, arrays or tensors.

    >>> round(float(score_per_norm_sq(0.0, 1.0, 20)), 4)  # (1/2)(1 - 1/21)
    0.4762
    """
    score = real_values(score, "score")
    query_norm_sq = _nonnegative(query_norm_sq, "query_norm_sq")
    m = _check_m(m)
    out = 0.5 * query_norm_sq / miss_reciprocal(score, m)  # 1 - a = 1 / (1 + e^s / m), exact
    return same_kind(out, score, query_norm_sq, m)
