"""The persisting identity between a topic word's score and its embedding norm (chapter 2).

Lu, Mao and Nayak (2021) show that, for a topic word ``tau`` trained by gradient flow with a fixed
query, the quantity

    C_tau = ||q||^2 ||w_tau||^2 - 2 s_tau - (2/m) exp(s_tau)            (chapter 2, eq. (2.2))

does not change, whatever classifier sits on top of the attention layer.  Equivalently the scaled
embedding norm is a fixed function of the score (the "SEN curve"),

    ||q|| ||w_tau|| = sqrt( 2 (s - s0) + (2/m)(exp(s) - exp(s0)) + ||q||^2 ||w0||^2 )   (eq. (2.3)).

This module holds the identity and its consequences (the two regimes, the attention it implies),
the gradient of a sentence's loss with respect to the scores (eq. (2.1)), measurements of
experiments against the identity, and the corpora of the experiments where its assumptions fail
(two topic words in a sentence, sentences of different lengths; the corpora themselves are built
in ``course_lib.topic``), and the identity on real words (chapter 3, ``real_word_sen``).  The
derivation is the course's own (chapter 2); the result is the paper's.

Functions of numbers (``sen_invariant``, ``sen_norm_curve``, ...) work elementwise on floats, NumPy
arrays and torch tensors and return the same kind; tensors keep their dtype and device.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
import torch

from ._validate import check_int, check_positive
from .sst import PAD, Vocabulary, mean_length_containing
from .topic import (  # noqa: F401  (the chapter-2 corpora live in topic; chapter 2 imports them here)
    TopicAttention,
    make_topic_corpus,
    make_two_topic_corpus,
    make_variable_length_corpus,
)
from .training import train_full_batch

__all__ = [
    "sen_invariant",
    "sen_norm_curve",
    "sen_relative_gap",
    "sen_score_from_norm",
    "attention_from_score",
    "small_score_norm_sq",
    "large_score_miss",
    "score_gradient",
    "sen_drift",
    "history_sen_gap",
    "history_invariant",
    "max_margin",
    "make_two_topic_corpus",
    "make_variable_length_corpus",
    "sen_curve_run",
    "score_per_norm_sq",
    "RealWordSEN",
    "real_word_sen",
]


# --------------------------------------------------------------------------- argument helpers


def _check_values(value, name: str):
    """Accept a real number, a NumPy array or a torch tensor of real numbers."""
    if isinstance(value, torch.Tensor):
        if value.is_complex() or not (
            value.is_floating_point() or value.dtype in (torch.int32, torch.int64)
        ):
            raise TypeError(f"{name} must hold real numbers, got a tensor of dtype {value.dtype}")
        return value if value.is_floating_point() else value.double()
    if isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.number) or np.iscomplexobj(value):
            raise TypeError(f"{name} must hold real numbers, got an array of dtype {value.dtype}")
        return value.astype(float)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a number, a NumPy array or a torch tensor, got {type(value).__name__}"
        )
    return float(value)


def _check_m(m, name: str = "m"):
    """``m`` (background words per sentence): a positive int, or positive numbers elementwise."""
    if isinstance(m, (torch.Tensor, np.ndarray)):
        m = _check_values(m, name)
        if (m <= 0).any() if isinstance(m, torch.Tensor) else np.any(m <= 0):
            raise ValueError(f"{name} must be > 0 everywhere")
        return m
    if isinstance(m, bool) or not isinstance(m, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {type(m).__name__}")
    return check_positive(m, name)


def _exp(x):
    return torch.exp(x) if isinstance(x, torch.Tensor) else np.exp(x)


def _sqrt_clamped(x):
    if isinstance(x, torch.Tensor):
        return torch.sqrt(torch.clamp(x, min=0.0))
    out = np.sqrt(np.maximum(x, 0.0))
    return float(out) if np.ndim(out) == 0 else out


def _to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, float)


def _abs(x):
    return x.abs() if isinstance(x, torch.Tensor) else np.abs(x)


# --------------------------------------------------------------------------- the identity


def sen_invariant(score, embed_norm_sq, query_norm_sq, m):
    """The conserved quantity of chapter 2, eq. (2.2): ``||q||^2 ||w||^2 - 2 s - (2/m) e^s``.

    ``score`` is ``s_tau = q . k_tau``, ``embed_norm_sq`` is ``||w_tau||^2``, ``query_norm_sq`` is
    ``||q||^2`` and ``m`` the number of background words in each sentence.  Elementwise over
    broadcastable floats, arrays or tensors of any shape (e.g. ``(T, n_topic_words)`` for a run).
    Under the assumptions of theorem ``thm-ch2-identity`` (fixed query, one topic word per sentence,
    background words at zero embedding and equal score, gradient flow) it does not change in
    training, for any classifier and any loss.
    """
    score = _check_values(score, "score")
    embed_norm_sq = _check_values(embed_norm_sq, "embed_norm_sq")
    query_norm_sq = _check_values(query_norm_sq, "query_norm_sq")
    m = _check_m(m)
    for name, value in (("embed_norm_sq", embed_norm_sq), ("query_norm_sq", query_norm_sq)):
        if (value < 0).any() if isinstance(value, (torch.Tensor, np.ndarray)) else value < 0:
            raise ValueError(f"{name} is a squared norm and must be >= 0")
    return query_norm_sq * embed_norm_sq - 2.0 * score - (2.0 / m) * _exp(score)


def sen_norm_curve(score, m, score0=0.0, scaled_norm0=0.0):
    """The SEN curve of chapter 2, eq. (2.3): the scaled embedding norm ``||q|| ||w_tau||`` that the
    identity predicts at score ``s``,

        sqrt( 2 (s - s0) + (2/m) (e^s - e^s0) + scaled_norm0^2 ),

    where ``score0 = s_tau(0)`` and ``scaled_norm0 = ||q|| ||w_tau(0)||`` are the values at the
    start of training (defaults 0: keys start at zero, embeddings near zero, as in the paper).
    Elementwise;
    a negative radicand (a score the identity cannot reach from the start) gives 0.  The curve
    depends on ``m`` only: the query norm is absorbed into the scaled norm.
    """
    score = _check_values(score, "score")
    m = _check_m(m)
    score0 = _check_values(score0, "score0")
    scaled_norm0 = _check_values(scaled_norm0, "scaled_norm0")
    radicand = (
        2.0 * (score - score0)
        + (2.0 / m) * (_exp(score) - _exp(score0))
        + scaled_norm0 * scaled_norm0
    )
    return _sqrt_clamped(radicand)


def sen_relative_gap(score, scaled_norm, m, score0=0.0, scaled_norm0=0.0):
    """Relative gap of a measured ``||q|| ||w_tau||`` from the SEN curve (chapter 2, eq. (2.3)):
    ``|scaled_norm - curve(score)| / curve(score)``, elementwise.  Where the curve is 0 the gap is
    ``inf`` (or ``nan`` if the measurement is 0 too): compare only points of appreciable norm."""
    scaled_norm = _check_values(scaled_norm, "scaled_norm")
    curve = sen_norm_curve(score, m, score0, scaled_norm0)
    if isinstance(curve, torch.Tensor) or isinstance(scaled_norm, torch.Tensor):
        curve = torch.as_tensor(curve)
        scaled_norm = torch.as_tensor(scaled_norm, dtype=curve.dtype, device=curve.device)
        return (scaled_norm - curve).abs() / curve
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.abs(np.asarray(scaled_norm) - curve) / curve
    return float(out) if np.ndim(out) == 0 else out


def sen_score_from_norm(scaled_norm, m, score0=0.0, scaled_norm0=0.0):
    """The inverse of the SEN curve (chapter 2, eq. (2.3)): the score ``s`` at which the identity
    puts the scaled norm ``||q|| ||w_tau||``.  Solves ``2 s + (2/m) e^s = Y`` with
    ``Y = scaled_norm^2 - scaled_norm0^2 + 2 s0 + (2/m) e^{s0}`` by the Lambert W function,
    ``s = Y/2 - W(e^{Y/2} / m) = log(m W(e^{Y/2} / m))`` (the second form is stable for large
    ``Y``).
    Returns a NumPy array or float.
    """
    scaled_norm = _check_values(scaled_norm, "scaled_norm")
    m = _check_m(m)
    score0 = _check_values(score0, "score0")
    scaled_norm0 = _check_values(scaled_norm0, "scaled_norm0")
    x, x0, s0, mm = (_to_numpy(v) for v in (scaled_norm, scaled_norm0, score0, m))
    if np.any(x < 0):
        raise ValueError("scaled_norm must be >= 0")
    half_y = 0.5 * (x * x - x0 * x0) + s0 + np.exp(s0) / mm
    # z = W(exp(half_y) / m) solves z + log z = half_y - log m; Newton from a safe start
    c = half_y - np.log(mm)
    z = np.where(c > 1.0, c - np.log(np.maximum(c, 1.0)), np.exp(np.minimum(c, 1.0)))
    z = np.maximum(z, 1e-300)
    for _ in range(60):
        step = (z + np.log(z) - c) / (1.0 + 1.0 / z)
        z = np.maximum(z - step, z * 1e-3)
    out = np.log(mm) + np.log(
        z
    )  # = half_y - z since z + log z = half_y - log m; stable for large Y
    return float(out) if np.ndim(out) == 0 else out


def attention_from_score(score, m):
    """Attention on the topic word when the ``m`` background words of its sentence have score 0
    (chapter 2, step 1 of the proof): ``a(s) = e^s / (e^s + m) = 1 / (1 + m e^{-s})``."""
    score = _check_values(score, "score")
    m = _check_m(m)
    return 1.0 / (1.0 + m * _exp(-score))


def small_score_norm_sq(score, m):
    """Small-score regime of the identity (chapter 2, eq. (2.7)): for ``|s| << 1`` (zero start),
    ``||q||^2 ||w_tau||^2 ~ 2 (1 + 1/m) s``: the score grows like the *squared* norm."""
    score = _check_values(score, "score")
    m = _check_m(m)
    return 2.0 * (1.0 + 1.0 / m) * score


def large_score_miss(scaled_norm_sq):
    """Large-score regime of the identity (chapter 2, eq. (2.8)): the attention the topic word
    misses,
    ``1 - a_tau ~ 2 / (||q||^2 ||w_tau||^2)``, given ``scaled_norm_sq = ||q||^2 ||w_tau||^2``.
    Independent of ``m``."""
    scaled_norm_sq = _check_values(scaled_norm_sq, "scaled_norm_sq")
    if (
        (scaled_norm_sq <= 0).any()
        if isinstance(scaled_norm_sq, (torch.Tensor, np.ndarray))
        else scaled_norm_sq <= 0
    ):
        raise ValueError("scaled_norm_sq must be > 0")
    return 2.0 / scaled_norm_sq


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
    ``TrainingHistory`` (chapter 2), using the query norm recorded at each step."""
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
            raise TypeError(f"history must be a TrainingHistory (missing {attr!r})")
    if history.topic_scores.shape[-1] == 0:
        raise ValueError("history records no topic words: train with topic_word_ids=...")


def max_margin(classifier_matrix: torch.Tensor, label: int) -> tuple[float, torch.Tensor]:
    """The max-margin direction of a fixed linear classifier for class ``label`` (chapter 2,
    convergence theorem): the unit ``u`` maximising ``gamma = min_{j != c} (U_c - U_j) . u``.

    ``classifier_matrix`` ``(embed_dim, n_classes)`` (the columns ``U_j``).  Returns
    ``(gamma, u)``; ``gamma <= 0`` means class ``label`` cannot be separated.  Solved through the
    dual ``min_{lam >= 0} 1/2 ||D^T lam||^2 - sum(lam)`` by projected gradient (a few classes).
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
        return 0.0, torch.zeros(U.shape[0], dtype=torch.float64)
    return 1.0 / norm, w / norm


# ------------------------------------------------------------ small runs for figures and widgets


def sen_curve_run(
    m: int,
    query_std: float,
    *,
    n_sentences: int = 200,
    n_background: int = 200,
    steps: int = 500,
    lr: float = 0.3,
    classifier: str = "fixed",
    seed: int = 0,
    record_every: int = 5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train one small model on a fresh topic corpus and return the SEN curves of all its topic
    words (chapter 2, "the curve depends on m only"; used by the static figure and by
    ``widgets.sen_explorer``).  Nothing is frozen: this is the unrestricted model.

    Parameters
    ----------
    m, query_std
        Background words per sentence, and the standard deviation of the query's coordinates.
    n_sentences, n_background, seed
        The corpus (``topic.make_topic_corpus``); ``seed`` also seeds the model.
    steps, lr, record_every, classifier
        The run (``training.train_full_batch``) and the model's classifier.

    Returns
    -------
    (scores, scaled_norms)
        Each ``(T, n_topic_words)``: ``s_tau`` and ``||q|| ||w_tau||`` at the recorded steps.
    """
    check_int(m, "m", minimum=1)
    check_positive(query_std, "query_std")
    check_int(steps, "steps", minimum=1)
    corpus = make_topic_corpus(n_background=n_background, m=m, n_sentences=n_sentences, seed=seed)
    model = TopicAttention(
        corpus.vocab_size, corpus.n_topics, classifier=classifier, query_std=query_std, seed=seed
    )
    train = corpus.train
    _, history = train_full_batch(
        model,
        train.tokens,
        train.labels,
        steps,
        lr,
        topic_word_ids=corpus.topic_word_ids,
        record_every=record_every,
    )
    return history.topic_scores, history.scaled_norms


# --------------------------------------------------------------------------- real words (chapter 3)


class RealWordSEN(NamedTuple):
    """The identity on real words (chapter 3): for each of the chosen words, its ``score``
    ``s_u``, the measured ``scaled_norm`` ``||q|| ||w_u||``, ``m`` (``m_u``, the mean length of
    the training sentences containing it, minus one), the ``theory`` value
    ``sqrt(2 (s_u + (e^{s_u} - 1) / m_u))`` and the relative ``gap``
    ``|measured - theory| / theory``."""

    words: list
    score: torch.Tensor
    scaled_norm: torch.Tensor
    m: torch.Tensor
    theory: torch.Tensor
    gap: torch.Tensor


def real_word_sen(model, data, vocab: Vocabulary, top: int = 100) -> RealWordSEN:
    """Chapter 3: test the identity of chapter 2 on the ``top`` words with the largest final score.

    The identity ``||q||^2 ||w||^2 = 2 s + (2/m)(e^s - 1)`` (zero keys and embeddings at the start)
    was derived for one topic word among ``m`` words that never move; on real text ``m_u`` is
    taken, as in the paper's code, as the mean length of the training sentences (``data``)
    containing ``u`` minus one.  Words that occur only in one-word sentences (``m_u = 0``) are
    skipped.
    """
    check_int(top, "top", minimum=1)
    lengths = mean_length_containing(data)  # checks data
    scores = model.scores().detach().cpu().double()
    candidates = [
        (float(scores[vocab[w]]), w)
        for w, n in lengths.items()
        if n > 1 and w in vocab and w != PAD
    ]
    chosen = [w for _, w in sorted(candidates, key=lambda t: (-t[0], t[1]))[:top]]
    ids = torch.tensor(vocab.ids(chosen), dtype=torch.long)
    s = scores[ids]
    m = torch.tensor([lengths[w] - 1 for w in chosen], dtype=torch.float64)
    measured = model.scaled_norms().cpu().double()[ids]
    theory = sen_norm_curve(s, m)
    gap = (measured - theory).abs() / theory.clamp(min=1e-12)
    return RealWordSEN(chosen, s, measured, m, theory, gap)


# ------------------------------------------------------------------ the proof's common factor


def score_per_norm_sq(score, query_norm_sq, m):
    """The proof's key step (chapter 2, eq. (2.5)): the score a topic word gains per unit of
    squared embedding norm, ``ds / d||w||^2 = (||q||^2 / 2) (1 - a(s))`` with
    ``a(s) = e^s / (e^s + m)``.

    Both rates share the classifier's factor ``a R_tau``, which cancels in their ratio;
    ``query_norm_sq`` is ``||q||^2`` (already squared), ``m`` the background words per sentence
    (their scores taken as 0).  Elementwise over floats, arrays or tensors.

    >>> round(float(score_per_norm_sq(0.0, 1.0, 20)), 4)  # (1/2)(1 - 1/21)
    0.4762
    """
    query_norm_sq = _check_values(query_norm_sq, "query_norm_sq")
    if (
        (query_norm_sq < 0).any()
        if isinstance(query_norm_sq, (torch.Tensor, np.ndarray))
        else query_norm_sq < 0
    ):
        raise ValueError("query_norm_sq is a squared norm and must be >= 0")
    return 0.5 * query_norm_sq * (1.0 - attention_from_score(score, m))
