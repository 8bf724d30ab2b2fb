"""The lemma behind both papers' conservation laws (chapter 7, the course's own contribution).

Both papers' models share a structure: a trained vector read against a fixed one sets an
attention logit (Part I: the key against the query; Part II: the focus against the data vector),
the attended vector (the embedding; the first-layer output) is passed on times its weight, and
the competitors sit at logit 0 and add nothing to the context.  Chapter 7 shows that each
paper's law is then a separation of variables in the same equation (7.1); the lemma is that
separation, and each model's proof that it satisfies (7.1) is its own.  Let a logit
``theta`` compete against ``n`` logits held at zero, so that its softmax weight is
``a(theta) = e^theta / (e^theta + n)``, and let ``S`` be a second quantity ("the strength") that
changes in training.  If the two velocities share their unknown factor,

    d theta / dt = c (1 - a(theta)) dS/dt          with a constant c       (chapter 7, eq. (7.1)),

then, because ``1 / (1 - a(theta)) = 1 + e^theta / n`` (eq. (7.3)),

    Psi_n(theta(t)) - Psi_n(theta(0)) = c (S(t) - S(0)),
    Psi_n(theta) = theta + (e^theta - 1)/n = course_lib.law.attention_potential(theta, n)  (7.2).

The weight, the potential and the lemma itself (``lemma_invariant``, ``lemma_drift``,
``lemma_coupling``, ``miss_reciprocal``) live in ``course_lib.law``; this module holds the two
papers' corollaries and the lemma's reach.

* Part I (Lu et al. 2021, chapter 2): ``theta`` = a topic word's score, ``n = m``, ``S`` = its
  squared embedding norm, ``c = ||q||^2 / 2`` (``topic_invariant``).
* Part II (Vashisht & Ramaswamy 2023, chapter 5): ``theta`` = the focus logit ``nu``, ``n = m - 1``,
  ``S`` = the squared norm of the classifier's logits on the clean foreground segment,
  ``c = 1/2`` (``segment_invariant``); on the symmetric manifold of chapter 5 this is the
  soft orbit ``Phi(nu) = (C - 1) mu^2 / (2C)`` (``soft_orbit_strength``).
* Reach: a topic word repeated ``k`` times in each of its sentences obeys the law with
  ``n = m / k`` (``topic_invariant(..., copies=k)``; the corpus is
  ``topic.make_repeated_topic_corpus``); the hard and
  LVML orbits are the law with another strength, which ``strength_from_rates`` computes from any
  right-hand side and whose hypothesis it tests; when it holds, ``Psi_n(theta) - G(mu)`` is a
  first integral, conserved from every start and not only along the orbit from (0, 0).
* A third corollary (the course's derivation, on the warm-up toy of Snell et al. 2021 as the
  course writes it): a softmax gate ``p = a(theta)`` with ``n = 1`` and a score gap ``gap`` with
  ``theta' = gap p (1 - p)``, ``gap' = 2 p`` obey the law with ``S = gap^2``, ``c = 1/4``
  (``gate_rates``, ``gate_invariant``, ``gate_descent``).

Functions of numbers work elementwise and follow the kind rule of ``course_lib.law`` (float,
array or tensor in, the same kind out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from ._validate import check_int, check_positive
from .law import (
    _align,
    _check_others,
    attention_potential,
    attention_weight,
    lemma_invariant,
    miss_reciprocal,
    real_values,
    same_kind,
)

__all__ = [
    "topic_invariant",
    "segment_invariant",
    "symmetric_logit_norm_sq",
    "soft_orbit_strength",
    "class_margin",
    "LemmaStrength",
    "strength_from_rates",
    "gate_rates",
    "gate_invariant",
    "gate_descent",
]


def _check_nonnegative(value, name: str):
    value = real_values(value, name)
    bad = (value < 0).any() if isinstance(value, (torch.Tensor, np.ndarray)) else value < 0
    if bad:
        raise ValueError(f"{name} is a squared norm and must be >= 0")
    return value


# --------------------------------------------------------------------------- the two corollaries


def topic_invariant(score, embed_norm_sq, query_norm_sq, m, copies=1):
    """Part I as a corollary of the lemma (chapter 7, corollary 1, eq. (7.4)):
    ``Psi_{m/k}(s) - ||q||^2 ||w||^2 / 2``, conserved for a topic word with score ``s`` and
    embedding norm ``||w||`` that occurs ``k = copies`` times in every sentence holding it, among
    ``m`` background words at zero (fixed query, gradient flow).

    With ``copies = 1`` this is Lu et al.'s identity: ``sen_invariant = -2 topic_invariant - 2/m``
    (chapter 2, eq. (2.2)).  With ``k`` copies the word's total attention in a sentence is
    ``k e^s / (k e^s + m) = e^s / (e^s + m/k)``: the law holds with ``n = m / k`` (the course's own
    prediction, checked in chapter 7).  Elementwise.

    >>> float(topic_invariant(0.0, 0.0, 1.0, 20))
    0.0
    """
    score = real_values(score, "score")
    embed_norm_sq = _check_nonnegative(embed_norm_sq, "embed_norm_sq")
    query_norm_sq = _check_nonnegative(query_norm_sq, "query_norm_sq")
    m = _check_others(m, "m")
    copies = check_int(copies, "copies", minimum=1)
    out = attention_potential(score, m / copies) - 0.5 * query_norm_sq * embed_norm_sq
    return same_kind(out, score, embed_norm_sq, query_norm_sq, m)


def segment_invariant(nu, logit_norm_sq, m):
    """Part II as a corollary of the lemma (chapter 7, corollary 2, eq. (7.5)):
    ``Psi_{m-1}(nu) - ||W x||^2 / 2``, conserved under soft attention.

    ``nu`` is the focus logit of a foreground segment ``x`` over the background (``u . x`` for a
    linear focus ``s_j = u . x_j``), ``logit_norm_sq`` is ``||W x||^2``, the squared norm of what
    the classifier's linear first layer ``W`` makes of that segment (the logits, for a linear
    classifier), and ``m`` the number of segments.  The coupling is ``1/2`` whatever ``||x||``:
    the focus logit and ``W x`` both move by ``||x||^2`` times the common factor.  It holds per
    class when the foreground vectors of different classes are orthogonal and every background
    segment is zero; the layers after ``W``, a bias, the class frequencies and the initialisation
    are free.  Elementwise.

    >>> float(segment_invariant(0.0, 0.0, 5))
    0.0
    """
    nu = real_values(nu, "nu")
    logit_norm_sq = _check_nonnegative(logit_norm_sq, "logit_norm_sq")
    m = check_int(m, "m", minimum=2)
    return same_kind(attention_potential(nu, m - 1) - 0.5 * logit_norm_sq, nu, logit_norm_sq)


def symmetric_logit_norm_sq(mu, C):
    """``||W e_y||^2 = (C - 1) mu^2 / C`` on the symmetric manifold of chapter 5 (chapter 7).

    There the classifier's logits on ``e_y`` are ``a`` for class ``y`` and ``b`` for each other
    class, their sum stays 0 (each gradient ``alpha (e_y - p)`` sums to 0), and ``mu = a - b``;
    so ``a = (C - 1) mu / C``, ``b = -mu / C``.  Elementwise.

    >>> round(float(symmetric_logit_norm_sq(3.0, 3)), 6)  # a = 2, b = -1: 4 + 1 + 1
    6.0
    """
    mu = real_values(mu, "mu")
    C = check_int(C, "C", minimum=2)
    return same_kind((C - 1) * mu * mu / C, mu)


def soft_orbit_strength(mu, C):
    """The right-hand side of the soft-attention orbit, ``(C - 1) mu^2 / (2C)`` (chapter 5;
    chapter 7, corollary 2): the lemma's ``c S`` with ``c = 1/2``, ``S = ||W e_y||^2``
    (``symmetric_logit_norm_sq``).  Elementwise.

    >>> round(float(soft_orbit_strength(2.0, 3)), 6)
    1.333333
    """
    return 0.5 * symmetric_logit_norm_sq(mu, C)


def class_margin(logits, labels):
    """``z_y - mean_{j != y} z_j``: the margin of logits ``z`` for the true class (chapter 7).

    On the symmetric manifold of chapter 5, applied to the classifier's logits on the foreground
    ``e_y``, this is ``mu``.  ``logits`` ``(..., C)``, ``labels`` ``(...)`` long; returns ``(...)``.

    >>> float(class_margin(torch.tensor([2.0, -1.0, -1.0]), torch.tensor(0)))
    3.0
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() < 1 or logits.shape[-1] < 2:
        raise TypeError("logits must be a torch.Tensor of shape (..., C) with C >= 2")
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long:
        raise TypeError("labels must be a torch.long tensor of class ids")
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"labels must have shape {tuple(logits.shape[:-1])} to match logits, "
            f"got {tuple(labels.shape)}"
        )
    C = logits.shape[-1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= C):
        raise ValueError(f"labels must be class ids in [0, {C - 1}]")
    own = logits.gather(-1, labels.to(logits.device).unsqueeze(-1)).squeeze(-1)
    return own - (logits.sum(-1) - own) / (C - 1)


# --------------------------------------------------------------------------- reach: other strengths


class LemmaStrength(NamedTuple):
    """What ``strength_from_rates`` returns (chapter 7): on the grid ``mu`` (``(K,)``),
    ``strength`` ``G(mu) - G(mu[0])``, ``coupling`` the measured ``theta' / ((1 - a) mu')``
    (``(K,)``, averaged over the probes), and ``spread``, the largest relative difference of the
    coupling between probe logits (0 when the lemma's hypothesis holds)."""

    mu: np.ndarray
    strength: np.ndarray
    coupling: np.ndarray
    spread: float


def strength_from_rates(
    rates: Callable, mu, n_others, theta_probes=(-2.0, 0.0, 2.0, 5.0)
) -> LemmaStrength:
    """The strength ``G`` for which ``Psi_n(theta) = G(mu)`` is an orbit of a two-scalar flow, and
    a test of the lemma's hypothesis on it (chapter 7, "the hard and LVML orbits").

    ``rates(mu, theta) -> (dmu/dt, dtheta/dt)`` is the flow's right-hand side, vectorised over
    arrays.  If ``theta' = (1 - a(theta)) h(mu) mu'`` for some function ``h`` of ``mu`` alone, the
    lemma (with ``S = G(mu)``, ``G' = h``, ``c = 1``) makes ``Psi_n(theta) - G(mu)`` a first
    integral: conserved along every path, from every start, so the orbit through ``(mu[0], 0)``
    is ``Psi_n(theta) = G(mu)``.  (Where ``mu`` increases strictly, the one orbit from a given
    start can always be written with some ``G``; a ``spread`` of 0 is what makes that ``G`` the
    same for every start.)  The function measures ``h(mu) = theta' / ((1 - a) mu')`` at each
    ``theta`` in ``theta_probes``: ``spread`` says how far it depends on ``theta`` (the hypothesis
    fails where it does), and ``strength`` integrates the probe average by the trapezoid rule on
    the increasing grid ``mu`` (use a fine grid: the error is ``O(h^2)``).

    >>> rates = lambda mu, theta: (np.ones_like(mu), 2 * mu / (1 + np.exp(theta) / 4))
    >>> out = strength_from_rates(rates, np.linspace(0, 1, 101), 4)
    >>> round(float(out.strength[-1]), 4), out.spread < 1e-12  # G(mu) = mu^2
    (1.0, True)
    """
    if not callable(rates):
        raise TypeError(
            "rates must be a function (mu, theta) -> (dmu/dt, dtheta/dt), "
            f"got {type(rates).__name__}"
        )
    mu = np.asarray(mu, dtype=float)
    if mu.ndim != 1 or mu.size < 2 or not np.all(np.isfinite(mu)) or np.any(np.diff(mu) <= 0):
        raise ValueError("mu must be a strictly increasing 1-D grid of at least 2 finite values")
    n_others = _check_others(n_others)
    probes = np.asarray(theta_probes, dtype=float).reshape(-1)
    if probes.size < 1 or not np.all(np.isfinite(probes)):
        raise ValueError("theta_probes must be one or more finite logits")
    couplings = []
    for theta in probes:
        dmu, dtheta = rates(mu, np.full_like(mu, theta))
        dmu, dtheta = np.asarray(dmu, dtype=float), np.asarray(dtheta, dtype=float)
        if dmu.shape != mu.shape or dtheta.shape != mu.shape:
            raise ValueError(f"rates must return two arrays of the grid's shape {mu.shape}")
        if np.any(dmu == 0):
            raise ValueError(
                "rates gives dmu/dt = 0 on the grid: the strength is defined only where mu moves"
            )
        couplings.append(dtheta * miss_reciprocal(theta, n_others) / dmu)
    couplings = np.stack(couplings)  # (n_probes, K)
    coupling = couplings.mean(axis=0)
    scale = np.maximum(np.abs(coupling), 1e-12 * max(1.0, float(np.abs(coupling).max())))
    spread = float((np.abs(couplings - coupling) / scale).max())
    steps = 0.5 * (coupling[1:] + coupling[:-1]) * np.diff(mu)
    strength = np.concatenate([[0.0], np.cumsum(steps)])
    return LemmaStrength(mu=mu, strength=strength, coupling=coupling, spread=spread)


# --------------------------------------------------------------------------- a third corollary


def gate_rates(theta, gap):
    """The warm-up toy's gradient flow (chapter 7, "a third corollary"; the course's model).

    Two sequences share one attention logit ``theta`` on their key word against one filler at
    logit 0 (``n = 1``), so the key word's weight is ``p = a(theta)``; the outputs are
    ``p beta_A`` and ``p beta_B`` under the linear loss ``L = -p (beta_A - beta_B)``, and the
    score gap is ``gap = beta_A - beta_B``.  Gradient flow gives
    ``theta' = gap p (1 - p)`` and ``gap' = 2 p``; returns that pair (elementwise, same kind).

    >>> [round(float(v), 4) for v in gate_rates(0.0, -1.0)]  # p = 1/2
    [-0.25, 1.0]
    """
    theta = real_values(theta, "theta")
    gap = real_values(gap, "gap")
    theta, gap = _align(theta, gap)
    p = attention_weight(theta, 1.0)
    return same_kind(gap * p * (1 - p), theta, gap), same_kind(2 * p, theta, gap)


def gate_invariant(theta, gap):
    """``Psi_1(theta) - gap^2 / 4``, conserved by ``gate_rates`` (chapter 7): the lemma with
    ``n = 1``, ``S = gap^2`` and ``c = 1/4``, because ``theta' = gap p (1 - p)`` equals
    ``(1/4) (1 - p) d(gap^2)/dt = (1/4) (1 - p) 4 gap p`` (the course's derivation).

    >>> gate_invariant(0.0, 0.0)
    0.0
    """
    gap = real_values(gap, "gap")
    return lemma_invariant(theta, gap * gap, 0.25, 1.0)


def gate_descent(
    theta0: float, gap0: float, lr: float, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Plain gradient descent on the toy of ``gate_rates`` (chapter 7): ``steps`` steps of size
    ``lr`` from ``(theta0, gap0)``, each ``x <- x + lr * rates(x)``.  Returns ``theta`` and
    ``gap`` as ``(steps + 1,)`` arrays; the invariant ``gate_invariant`` drifts by ``O(lr)``
    over a fixed time ``lr * steps``.

    >>> theta, gap = gate_descent(0.0, -1.0, 0.1, 2)
    >>> theta.shape, round(float(gap[1]), 4)
    ((3,), -0.9)
    """
    theta0 = float(real_values(theta0, "theta0"))
    gap0 = float(real_values(gap0, "gap0"))
    lr = check_positive(lr, "lr")
    steps = check_int(steps, "steps", minimum=0)
    theta, gap = np.empty(steps + 1), np.empty(steps + 1)
    theta[0], gap[0] = theta0, gap0
    for t in range(steps):
        d_theta, d_gap = gate_rates(theta[t], gap[t])
        theta[t + 1] = theta[t] + lr * d_theta
        gap[t + 1] = gap[t] + lr * d_gap
    return theta, gap


# --------------------------------------------------------------- a new corollary (exercise 7.1)


def temperature_law_constant(query_norm_sq, temperature, lr_key, lr_embedding):
    """The law's constant ``c`` for Part I with a temperature and two learning rates
    (exercise 7.1, the course's derivation).

    The attention logit of a topic word is ``theta = q . k / T``; the keys train at ``lr_key``,
    the embeddings at ``lr_embedding``.  Then ``theta' = lr_key ||q||^2 / T^2 * a (1 - a) R``
    and ``(||w||^2)' = 2 lr_embedding a R`` (chapter 2's proof with the chain rule through
    ``1/T`` twice), so (7.1) holds with ``n = m``, ``S = ||w||^2`` and
    ``c = lr_key ||q||^2 / (2 T^2 lr_embedding)``.  With ``T = 1`` and one learning rate it is
    corollary 1's ``||q||^2 / 2``.  Numbers in, a float out.

    >>> temperature_law_constant(2.0, 1.0, 0.1, 0.1)  # corollary 1
    1.0
    """
    query_norm_sq = check_positive(query_norm_sq, "query_norm_sq")
    temperature = check_positive(temperature, "temperature")
    lr_key = check_positive(lr_key, "lr_key")
    lr_embedding = check_positive(lr_embedding, "lr_embedding")
    return lr_key * query_norm_sq / (2.0 * temperature**2 * lr_embedding)
