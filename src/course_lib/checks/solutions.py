"""Reference solutions of the exercises (chapters 1 to 8) that no chapter uses, next to their
checks, as ARENA keeps a ``solutions.py`` beside its tests.

Each function has the name and the parameters of an exercise's stub in
``exercises/NN_name.ipynb``; ``checks.check_<name>`` compares the student's function with it,
and a cell that builds on an exercise falls back on it when the student's function does not run
yet (``checks.yours_or_reference(f, checks.solutions.f, ...)``).  Read it after trying: it is
not part of the library's API, and nothing outside ``checks`` imports it.

An exercise whose answer a chapter or the library itself uses keeps its reference in the
library instead (for example ``topic.attention_forward`` for exercise 1.1,
``losses.soft_attention_loss`` for 4.1, ``flow.reduced_soft_loss`` for 5.1, which
``flow.reduced_loss`` calls); ``tests/test_exercises.py`` looks for each stub's reference in
both places and wants exactly one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .._validate import check_int, check_positive
from ..flow import (
    _as_float_array,
    _check_alpha,
    _check_method,
    _check_sizes,
    _same_kind,
    _sigmoid,
    flow_rhs,
    orbit,
    orbit_potential,
)
from ..identity import _check_m, sen_invariant
from ..law import attention_potential, solve_exp_plus_linear
from ..max_margin import _tensor
from ..sst import _check_data

__all__ = [
    "mlp_jacobian",
    "sigmoid_invariant",
    "lift_embeddings",
    "early_score_with_context",
    "early_score_law",
    "incentive_crossover",
    "fixed_focus_hard_margin",
    "likelihood_flow_rhs",
    "time_to_half",
    "shortcut_table",
    "soft_orbit_constant",
    "svm_two_constraints",
]


# --------------------------------------------------------------- chapter 1: the task


def mlp_jacobian(classifier: nn.Module, context: torch.Tensor) -> torch.Tensor:
    """Chapter 1, exercise 1.3: the Jacobian ``d logits / d v`` of Attn-TL's classifier.

    ``classifier`` is ``Linear(d_e, h) -> ReLU -> Linear(h, K)`` (``TopicAttention(classifier=
    "mlp").classifier``), with weights ``W1`` ``(h, d_e)``, ``W2`` ``(K, h)`` and bias ``b1``.
    At a context ``v`` the ReLU passes the hidden units whose pre-activation ``W1 v + b1`` is
    positive, so ``J(v) = W2 diag(1[W1 v + b1 > 0]) W1``; at ``v = 0`` the mask is ``b1 > 0``.

    Parameters
    ----------
    classifier
        The two-layer classifier, an ``nn.Sequential`` of ``Linear``, ``ReLU``, ``Linear``.
    context
        ``(N, d_e)`` context vectors.

    Returns
    -------
    torch.Tensor
        ``(N, K, d_e)``: the Jacobian at each context vector.
    """
    layers = list(classifier) if isinstance(classifier, nn.Sequential) else []
    kinds = [type(layer) for layer in layers]
    if kinds != [nn.Linear, nn.ReLU, nn.Linear]:
        raise TypeError(
            "classifier must be nn.Sequential(Linear, ReLU, Linear) (Attn-TL's classifier), "
            f"got {type(classifier).__name__}"
        )
    first, _, second = layers
    if not isinstance(context, torch.Tensor) or context.dim() != 2:
        raise ValueError("context must be a (N, d_e) tensor")
    if context.shape[1] != first.in_features:
        raise ValueError(
            f"context has {context.shape[1]} features, the classifier expects {first.in_features}"
        )
    with torch.no_grad():
        w1, w2 = first.weight, second.weight  # (h, d_e), (K, h)
        context = context.to(w1.dtype)
        active = (context @ w1.T + first.bias) > 0  # (N, h)
        return torch.einsum("kh,nh,hd->nkd", w2, active.to(w1.dtype), w1)


# ------------------------------------------------ chapter 2: the persisting identity


def sigmoid_invariant(score, embed_norm_sq, query_norm_sq, m):
    """Chapter 2, exercise 2.3: the conserved quantity when attention is a sigmoid.

    With ``a_i = sigmoid(s_{x_i})`` at each position instead of the softmax (no normalisation:
    ``v = sum_i a_i w_{x_i}``), the restricted flow of theorem ``thm-ch2-identity`` gives
    ``dv / ds_i = a_i (1 - a_i) w_{x_i}``, so ``d||w||^2 / dt = 2 a R`` and
    ``ds / dt = ||q||^2 a (1 - a) R`` as before, now with ``a = sigmoid(s)``; since
    ``1 / (1 - sigmoid(s)) = 1 + e^s`` the flow keeps ``||q||^2 ||w||^2 - 2 s - 2 e^s``.  The
    topic word no longer competes with its background words, so ``m`` drops out: it is the
    softmax's (2.2) with ``m = 1``.  ``m`` is accepted (and checked) only to make that visible.
    Elementwise over floats, arrays or tensors; ``query_norm_sq`` is ``||q||^2`` and
    ``embed_norm_sq`` is ``||w||^2`` (both already squared).

    >>> round(float(sigmoid_invariant(0.0, 2.0, 1.0, 20)), 4)  # 2 - 0 - 2
    0.0
    """
    _check_m(m)
    return sen_invariant(score, embed_norm_sq, query_norm_sq, 1.0)


# -------------------------------------------------------------- chapter 3: real text


def lift_embeddings(
    reduced: torch.Tensor, initial: torch.Tensor, U: torch.Tensor, L: torch.Tensor
) -> torch.Tensor:
    """Chapter 3, exercise 3.1: the official Attn-FC's embeddings from its reduction's.

    ``reduce_fixed_classifier`` trains embeddings ``e_u = L^{-1} U^T w_u`` (``U^T U = L L^T``).
    Every gradient step moves ``w_u`` by ``U c`` for some ``c`` in ``R^C`` (the gradient of an
    embedding is a sum of ``a U (p - e_y)``), and so moves ``e_u`` by ``L^{-1} U^T U c = L^T c``;
    hence ``w_u(t) = w_u(0) + U L^{-T} (e_u(t) - e_u(0))`` with ``e_u(0) = L^{-1} U^T w_u(0)``.

    Parameters
    ----------
    reduced
        ``(V, C)``: the reduced model's embeddings ``e_u(t)``.
    initial
        ``(V, d_e)``: the official model's initial embeddings ``w_u(0)``.
    U
        ``(d_e, C)``: the fixed classifier (``model.classifier.weight.T``).
    L
        ``(C, C)``: lower triangular with ``L L^T = U^T U`` (the reduction's classifier weight).

    Returns
    -------
    torch.Tensor
        ``(V, d_e)``: the official model's embeddings ``w_u(t)``, in ``initial``'s dtype.
    """
    tensors = {"reduced": reduced, "initial": initial, "U": U, "L": L}
    for name, value in tensors.items():
        if not isinstance(value, torch.Tensor) or value.dim() != 2:
            raise ValueError(f"{name} must be a 2-D tensor")
    embed_dim, n_classes = U.shape
    if tuple(L.shape) != (n_classes, n_classes):
        raise ValueError(f"L must be ({n_classes}, {n_classes}) for U of shape {tuple(U.shape)}")
    if reduced.shape[1] != n_classes or initial.shape[1] != embed_dim:
        raise ValueError("reduced must be (V, C) and initial (V, d_e), matching U (d_e, C)")
    if reduced.shape[0] != initial.shape[0]:
        raise ValueError("reduced and initial must have one row per word each")
    U64, L64, w0 = U.detach().double(), L.detach().double(), initial.detach().double()
    e0 = torch.linalg.solve_triangular(L64, (w0 @ U64).T, upper=False)  # (C, V)
    moved = reduced.detach().double().T - e0  # (C, V): e(t) - e(0)
    coefficients = torch.linalg.solve_triangular(L64.T, moved, upper=True)  # L^{-T} (e - e0)
    return (w0 + (U64 @ coefficients).T).to(initial.dtype)


def early_score_with_context(data) -> dict[str, float]:
    """Chapter 3, exercise 3.2: every word's early Attn-FC score, its neighbours included.

    At the start (keys zero, so sentence ``i`` of ``n_i`` words attends uniformly; embeddings
    near zero, so the fixed classifier outputs ``(1/2, 1/2)`` and ``g_i = -(sigma_i / 2) d`` with
    ``sigma_i = +1`` for label 1, ``-1`` for label 0 and ``d = U_1 - U_0``), gradient flow gives
    ``w_u(t) = t B_u d / (2N)`` with ``B_u = sum_i sigma_i c_ui / n_i`` (``c_ui`` the occurrences
    of ``u`` in sentence ``i``), the context ``v_i = t V_i d / (2N)`` with
    ``V_i = sum_u c_ui B_u / n_i``, and by chapter 2's score gradient
    ``s_u(t) = t^2 ||q||^2 ||d||^2 / (8 N^2) * sum_i sigma_i (c_ui / n_i) (B_u - V_i)``, that is
    ``B_u^2 - sum_i sigma_i c_ui V_i / n_i`` up to a positive factor.  Returns that bracket for
    every word of ``data`` (binary labels 0/1): the first term is the word's own evidence, the
    second its neighbours', which pushes down words whose sentences already lean their way.

    >>> law = early_score_with_context([(["good", "film"], 1), (["bad", "film"], 0)])
    >>> {w: round(v, 4) for w, v in law.items()}
    {'good': 0.125, 'film': -0.25, 'bad': 0.125}
    """
    _check_data(data)
    own: dict[str, float] = {}  # B_u
    for tokens, label in data:
        if label not in (0, 1):
            raise ValueError(f"data: early_score_with_context needs labels 0/1, found {label!r}")
        if not tokens:
            raise ValueError("data: every sentence needs at least one word")
        sign = 1.0 if label == 1 else -1.0
        for w in tokens:
            own[w] = own.get(w, 0.0) + sign / len(tokens)
    law = {w: b * b for w, b in own.items()}
    for tokens, label in data:
        sign = 1.0 if label == 1 else -1.0
        context = sum(own[w] for w in tokens) / len(tokens)  # V_i
        for w in tokens:
            law[w] -= sign * context / len(tokens)
    return law


def early_score_law(data) -> dict[str, float]:
    """Chapter 3, exercise 3.4: the early-time law behind "frequency first", for Attn-FC.

    At the start (embeddings near zero, uniform attention, fixed classifier output ``(1/2, 1/2)``)
    a word's embedding grows in proportion to its *net label count*, the number of positive
    sentences of ``data`` containing it minus the number of negative ones (frequency times
    purity in size), and its score grows with the square of that count.  Returns
    ``{word: net_label_count ** 2}``, proportional to the early scores.

    >>> early_score_law([(["good", "film"], 1), (["good"], 1), (["bad", "film"], 0)])
    {'good': 4.0, 'film': 0.0, 'bad': 1.0}
    """
    _check_data(data)
    net: dict[str, int] = {}
    for tokens, label in data:
        if label not in (0, 1):
            raise ValueError(f"data: early_score_law needs binary labels 0/1, found {label!r}")
        for w in dict.fromkeys(tokens):
            net[w] = net.get(w, 0) + (1 if label == 1 else -1)
    return {w: float(n * n) for w, n in net.items()}


# --------------------------------------------------- chapter 4: three ways to attend


def incentive_crossover(C):
    """The focus quality below which LVML pushes the focus harder than hard attention, once the
    classifier has converged with the focus held fixed (exercise 4.5, the course's derivation).

    With the focus fixed at ``alpha`` and the classifier trained to convergence on the
    population (no bias), the losses level off at ``(1 - alpha) log C`` (hard) and
    ``-log(alpha + (1 - alpha)/C)`` (LVML), so the focus incentives ``-dL/dalpha`` tend to
    ``log C`` and ``(C - 1)/(C alpha + 1 - alpha)`` (``focus_incentive`` at a large margin).
    They are equal at ``alpha* = 1/log C - 1/(C - 1)``; below it LVML's is the larger.

    >>> round(incentive_crossover(10), 4)
    0.3232
    """
    C = check_int(C, "C", minimum=2)
    return 1.0 / math.log(C) - 1.0 / (C - 1)


# ---------------------------------------------------------- chapter 5: gradient flow


def fixed_focus_hard_margin(alpha, t, *, C):
    """Chapter 5, exercise 5.2: the hard-attention classifier margin at time ``t`` with the
    focus frozen at ``alpha``.

    The margin obeys dmu/dt = alpha / (e^mu + C - 1) from mu = 0, so e^mu + (C - 1) mu =
    alpha t + 1 and, with x = (alpha t + 1)/(C - 1),

        mu(t) = x - W_0(e^x / (C - 1))    (``law.solve_exp_plus_linear``).

    >>> round(fixed_focus_hard_margin(1.0, 0.0, C=3), 12)
    0.0
    """
    raw = (alpha, t)
    C = check_int(C, "C", minimum=2)
    alpha = _check_alpha(alpha)
    t = _as_float_array(t, "t")
    if np.any(t < 0):
        raise ValueError("t must be >= 0")
    return _same_kind(solve_exp_plus_linear(alpha * t + 1.0, C - 1.0), *raw)


def likelihood_flow_rhs(mu, nu, *, m, C):
    """``(dmu/dt, dnu/dt)`` of the chapter-5 flow for the expected-likelihood loss.

    The loss ``1 - sum_j alpha_j p_y(x_j)`` (LVML without its logarithm) reduces, in chapter 5's
    setting, to ``1 - alpha beta - (1 - alpha)/C``; (5.2) then gives

        dmu/dt = alpha beta (1 - beta) / (C - 1) = alpha beta / (e^mu + C - 1),
        dnu/dt = alpha (1 - alpha) (beta - 1/C) / C,

    with alpha = e^nu/(e^nu + m - 1), beta = e^mu/(e^mu + C - 1) (exercise 5.3; its orbit is
    LVML's, because LVML's factor 1/Z cancels in the ratio).  Elementwise over arrays ``mu`` and
    ``nu`` of one shape; returns an array of shape ``(2, *mu.shape)``.

    >>> [round(float(v), 6) for v in likelihood_flow_rhs(0.0, 0.0, m=5, C=3)]  # alpha/C^2, 0
    [0.022222, 0.0]
    """
    m, C = _check_sizes(m, C)
    mu = _as_float_array(mu, "mu")
    nu = _as_float_array(nu, "nu")
    if mu.shape != nu.shape:
        raise ValueError(f"mu and nu must have one shape, got {mu.shape} and {nu.shape}")
    alpha = _sigmoid(nu - np.log(m - 1))
    one_minus_alpha = _sigmoid(np.log(m - 1) - nu)
    beta = _sigmoid(mu - np.log(C - 1))
    one_minus_beta = _sigmoid(np.log(C - 1) - mu)
    dmu = alpha * beta * one_minus_beta / (C - 1)
    dnu = alpha * one_minus_alpha * (beta - 1.0 / C) / C
    return np.stack([dmu, dnu])


def time_to_half(method, *, m, C):
    """The time at which the ``method`` flow from mu = nu = 0 puts half its attention on the
    foreground, as one integral along the orbit (exercise 5.4, the course's derivation).

    alpha = 1/2 at ``nu_half = log(m - 1)``; the orbit ``Phi(nu) = G(mu)`` (``orbit``) reaches it
    at ``mu_half`` with ``G(mu_half) = Phi(nu_half)``.  Along the orbit the margin grows strictly,
    so ``t = int_0^{mu_half} dmu / (dmu/dt)(mu, orbit(mu))``; ``scipy.integrate.quad`` does it
    without solving the ODE in time.

    >>> round(time_to_half("soft", m=5, C=3), 2)
    32.13
    """
    from scipy.integrate import quad
    from scipy.optimize import brentq

    method = _check_method(method)
    m, C = _check_sizes(m, C)
    target = float(attention_potential(math.log(m - 1), m - 1))
    high = 1.0
    while float(orbit_potential(method, high, C=C)) < target:
        high *= 2
    mu_half = brentq(
        lambda mu: float(orbit_potential(method, mu, C=C)) - target,
        0.0,
        high,
        xtol=1e-13,
        rtol=1e-13,
    )
    rhs = flow_rhs(method, m=m, C=C)

    def seconds_per_margin(mu):
        return 1.0 / float(rhs(0.0, [mu, float(orbit(method, mu, m=m, C=C))])[0])

    time, _ = quad(seconds_per_margin, 0.0, mu_half, epsabs=0.0, epsrel=1e-11, limit=200)
    return time


# ------------------------------------------------------------- chapter 6: the hybrid


def shortcut_table(n_classes: int, m: int) -> dict:
    """The FTPT/FFPT table of a perfect eliminator (exercise 6.3, the course's derivation).

    The model finds the foreground of every class but one: on a mosaic of another class its
    most-attended segment is the foreground and it predicts right; on a mosaic of the eliminated
    class it knows no segment, its most-attended segment is a uniformly random one of the ``m``,
    and it predicts the eliminated class (right, by elimination).  With equally frequent
    classes, in percent: FTPT = 100 (1 - (1 - 1/m)/C), FFPT = 100 (1 - 1/m)/C, FTPF = FFPF = 0.
    Its accuracy is 100 % while its focus accuracy is FTPT.

    >>> shortcut_table(2, 2)
    {'FTPT': 75.0, 'FFPT': 25.0, 'FTPF': 0.0, 'FFPF': 0.0}
    """
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    m = check_int(m, "m", minimum=2)
    missed = 100.0 * (1.0 - 1.0 / m) / n_classes
    return {"FTPT": 100.0 - missed, "FFPT": missed, "FTPF": 0.0, "FFPF": 0.0}


# ---------------------------------------------------------------- chapter 7: one law


def soft_orbit_constant(m, C, lr_focus, lr_classifier):
    """The law's constant ``c`` for chapter 5's soft flow with ``S = mu^2`` and two learning
    rates (exercise 7.2, the course's derivation).

    Corollary 2 gives ``c = 1/2`` for ``S = ||W e_y||^2``; on chapter 5's symmetric manifold
    ``||W e_y||^2 = (C - 1) mu^2 / C``, so with ``S = mu^2`` the constant is ``(C - 1)/(2C)``.
    A focus trained at ``lr_focus`` and a classifier at ``lr_classifier`` scale ``nu'`` and
    ``mu'`` by their rates, so ``c = lr_focus (C - 1) / (2 C lr_classifier)``.  It does not
    depend on ``m``, which enters the law only through ``n = m - 1``.

    >>> soft_orbit_constant(5, 3, 1.0, 1.0)  # chapter 5's soft orbit, (C - 1)/(2C)
    0.3333333333333333
    """
    check_int(m, "m", minimum=2)
    C = check_int(C, "C", minimum=2)
    lr_focus = check_positive(lr_focus, "lr_focus")
    lr_classifier = check_positive(lr_classifier, "lr_classifier")
    return lr_focus * (C - 1) / (2.0 * C * lr_classifier)


# ------------------------------------------------------------- chapter 8: max margin


def svm_two_constraints(a1, a2) -> torch.Tensor:
    """Chapter 8, exercise 8.2: (8.2) with two constraints, by hand.

    ``min ||p||^2`` subject to ``a1^T p >= 1`` and ``a2^T p >= 1`` (``a1``, ``a2`` of shape
    ``(d,)``, linearly independent).  Either one constraint is active, ``p = a_k / ||a_k||^2``
    when that point satisfies the other, or both are, ``p = A^T (A A^T)^{-1} 1`` with rows
    ``a1, a2``.  Returns ``p`` as a float64 tensor ``(d,)``.

    >>> svm_two_constraints(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0])).tolist()
    [0.5, 1.0]
    """
    a1, a2 = _tensor(a1, "a1", 1), _tensor(a2, "a2", 1)
    if a1.shape != a2.shape:
        raise ValueError(
            f"a1 and a2 must have the same shape, got {tuple(a1.shape)} and {tuple(a2.shape)}"
        )
    A = torch.stack([a1, a2])
    if torch.linalg.matrix_rank(A) < 2:
        raise ValueError("a1 and a2 must be linearly independent")
    for k, other in ((a1, a2), (a2, a1)):
        p = k / (k @ k)
        if float(other @ p) >= 1:
            return p
    return A.T @ torch.linalg.solve(A @ A.T, torch.ones(2, dtype=torch.float64))
