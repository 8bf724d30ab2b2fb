"""Checks for the exercises of chapter 2 (the persisting identity): the score gradient, the
proof's common factor, the conserved quantity with sigmoid attention, and the drift along a run."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..identity import score_gradient, score_per_norm_sq, sen_drift, sen_invariant
from ..topic import attention_forward
from ._core import CheckFailed, close, expect_tensor, run_check


def _gradient_case(seed: int, batch: int = 4, length: int = 6, d: int = 3, n_classes: int = 3):
    """Random attention, embeddings, context and g; g is a real dloss/dv
    (linear classifier + CE)."""
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(batch, length, generator=gen, dtype=torch.float64)
    attention = torch.softmax(scores, dim=-1)
    word_embeddings = torch.randn(batch, length, d, generator=gen, dtype=torch.float64)
    context = torch.einsum("bl,bld->bd", attention, word_embeddings)
    U = torch.randn(d, n_classes, generator=gen, dtype=torch.float64)
    labels = torch.randint(n_classes, (batch,), generator=gen)
    grad_context = (
        torch.softmax(context @ U, dim=-1) - F.one_hot(labels, n_classes).double()
    ) @ U.T
    return scores, attention, word_embeddings, context, grad_context, U, labels


def _autograd_score_gradient(scores, word_embeddings, U, labels):
    scores = scores.clone().requires_grad_()
    context = torch.einsum("bl,bld->bd", torch.softmax(scores, dim=-1), word_embeddings)
    F.cross_entropy(context @ U, labels, reduction="sum").backward()
    return scores.grad


@run_check("gradient of the loss with respect to the scores")
def check_score_gradient(student_fn) -> None:
    """Check
    ``student_fn(attention, word_embeddings, context, grad_context) -> (batch, length)``."""
    for seed in range(3):
        scores, attention, word_embeddings, context, g, U, labels = _gradient_case(seed)
        batch, length = attention.shape
        out = student_fn(attention, word_embeddings, context, g)
        expect_tensor(out, "the score gradient", (batch, length))
        truth = _autograd_score_gradient(scores, word_embeddings, U, labels)
        if not close(out, truth, tol=1e-6):
            plain = torch.einsum("bld,bd->bl", word_embeddings, g)
            if close(out, -truth, tol=1e-6):
                raise CheckFailed(
                    "the sign is flipped: d loss / d s_i = + a_i (w_i - v) . g, with "
                    "g = d loss / d v."
                )
            if close(out, attention * plain, tol=1e-6):
                raise CheckFailed(
                    "you used a_i w_i . g; the softmax couples the positions: raising s_i also "
                    "lowers the other weights, which subtracts the context v: a_i (w_i - v) . g."
                )
            if close(
                out, torch.einsum("bld,bd->bl", word_embeddings - context[:, None, :], g), tol=1e-6
            ):
                raise CheckFailed(
                    "the factor a_i is missing: d v / d s_i = a_i (w_i - v) (differentiate the "
                    "softmax)."
                )
            if close(out, attention * (1 - attention) * plain, tol=1e-6):
                raise CheckFailed(
                    "a_i (1 - a_i) w_i . g is the special case where all other words have zero "
                    "embedding; in general d v / d s_i = a_i (w_i - v)."
                )
            raise CheckFailed(
                "the values differ from autograd's; start from v = sum_l a_l w_l and "
                "d a_l / d s_i = a_l (delta_il - a_i)."
            )
        if not close(out, score_gradient(attention, word_embeddings, context, g), tol=1e-6):
            raise CheckFailed("the values differ from the reference on this case.")
    # a uniform attention over identical embeddings: the scores cannot matter, the gradient is 0
    w = torch.ones(2, 5, 3, dtype=torch.float64)
    a = torch.full((2, 5), 0.2, dtype=torch.float64)
    out = student_fn(a, w, w[:, 0], torch.randn(2, 3, dtype=torch.float64))
    if not close(out, torch.zeros(2, 5, dtype=torch.float64), tol=1e-9):
        raise CheckFailed(
            "when all words of a sentence have the same embedding, the scores cannot change v, "
            "so the gradient must be 0."
        )


# ------------------------------------------------------------ exercise 2.3: sigmoid attention

# (||q||^2, m) of the three cases
_SIGMOID_CASES = ((0.9, 20), (1.7, 5), (0.4, 3))
_ORBIT_SCORES = torch.linspace(-1.0, 3.0, 8, dtype=torch.float64)


def _orbits(f: torch.Tensor, q2: float) -> torch.Tensor:
    """(3, S) squared norms on three level sets of ``q2 ||w||^2 - f(s)``, all positive."""
    base = torch.clamp(-f.min(), min=0.0)
    levels = base + torch.tensor([0.5, 2.0, 5.0], dtype=torch.float64)[:, None]
    return (levels + f[None, :]) / q2


def _sigmoid_forms(m: float):
    """``(f(s), hint)``: the level sets ``||q||^2 ||w||^2 - f(s) = const`` of the right
    invariant (hint None) and of the usual wrong derivations."""
    s = _ORBIT_SCORES
    e = torch.exp(s)
    return (
        (2 * s + 2 * e, None),
        (
            2 * s + 2 * e / m,
            "that is the softmax's C, with its m: a sigmoid weighs each word on its own, so the "
            "topic word's attention a = sigmoid(s) does not depend on the m background words.",
        ),
        (
            2 * s,
            "the score's rate lost its factor (1 - a): the derivative of sigmoid(s) is "
            "sigmoid(s) (1 - sigmoid(s)), so ds / d||w||^2 = (||q||^2 / 2)(1 - a) still.",
        ),
        (
            2 * s - 2 * torch.exp(-s),
            "1 / (1 - sigmoid(s)) is 1 + e^s, not 1 + e^{-s}: 1 - sigmoid(s) = 1 / (1 + e^s).",
        ),
        (
            s + e,
            "a factor 2 is lost: d||w||^2 / dt = 2 w . dw/dt = 2 a R, so "
            "ds / d||w||^2 = (||q||^2 / 2)(1 - a).",
        ),
        (
            4 * s + 4 * e,
            "a factor 2 too many: d||w||^2 / dt = 2 a R and ds / dt = ||q||^2 a (1 - a) R, so "
            "ds / d||w||^2 = (||q||^2 / 2)(1 - a).",
        ),
    )


def _invariant_values(student_fn, s, w2, q2, m) -> torch.Tensor:
    out = student_fn(s.clone(), w2.clone(), q2, m)
    if isinstance(out, np.ndarray) or isinstance(out, (float, int)):
        out = torch.as_tensor(out, dtype=torch.float64)
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(
            "return a tensor (or NumPy array) of the same shape as score, not "
            f"{type(out).__name__}."
        )
    if tuple(out.shape) != tuple(s.shape):
        raise CheckFailed(
            f"the result should have the shape of score, {tuple(s.shape)} "
            f"(elementwise), got {tuple(out.shape)}."
        )
    out = out.detach().double()
    if not torch.isfinite(out).all():
        raise CheckFailed("some values are not finite (inf or nan) at moderate scores and norms.")
    return out


def _kept_on(values: torch.Tensor) -> bool:
    """Constant along each row (a level set) and different between the rows."""
    scale = 1.0 + float(values.abs().max())
    spread = float((values.max(dim=1).values - values.min(dim=1).values).max())
    means = values.mean(dim=1)
    apart = float((means[:, None] - means[None, :]).abs().add(torch.eye(3) * 1e9).min())
    return spread <= 1e-7 * scale and apart > 1e-6 * scale


@run_check("a conserved quantity for sigmoid attention")
def check_sigmoid_invariant(student_fn) -> None:
    """Check ``student_fn(score, embed_norm_sq, query_norm_sq, m)``: a quantity the restricted
    flow with sigmoid attention, ``a_i = sigmoid(s_{x_i})``, keeps constant.

    Every function of ``||q||^2 ||w||^2 - 2 s - 2 e^s`` that is not constant passes (any scale,
    sign or constant, or a monotone function of it): the check evaluates the student's quantity
    along three level sets of the true invariant (three trajectories of the flow) for three
    ``(||q||^2, m)``, and asks it to be constant on each and different between them.  A failing
    answer is compared with the level sets of the usual wrong derivations, to name the mistake.
    """
    s = _ORBIT_SCORES.expand(3, -1)
    for q2, m in _SIGMOID_CASES:
        forms = _sigmoid_forms(m)
        values = _invariant_values(student_fn, s, _orbits(forms[0][0], q2), q2, m)
        if _kept_on(values):
            continue
        if float(values.max() - values.min()) <= 1e-9 * (1.0 + float(values.abs().max())):
            raise CheckFailed(
                "your quantity is the same number everywhere: that is conserved by "
                "any flow and says nothing. Find one that differs between "
                "trajectories."
            )
        for f, hint in forms[1:]:
            if _kept_on(_invariant_values(student_fn, s, _orbits(f, q2), q2, m)):
                raise CheckFailed(hint + f" (||q||^2 = {q2}, m = {m})")
        raise CheckFailed(
            f"your quantity changes along the flow (||q||^2 = {q2}, m = {m}). Redo the proof "
            "with a = sigmoid(s): dv / ds for this attention, steps 3 and 4 for the ratio "
            "ds / d||w||^2, then separate and integrate."
        )


@run_check("drift of the conserved quantity along a run")
def check_sen_drift(student_fn) -> None:
    """Check ``student_fn(scores, norms, query_norms, m) -> (n_words,)``:
    ``max_t |C(t) - C(0)|``."""
    gen = torch.Generator().manual_seed(3)
    T, n = 12, 5
    scores = torch.cumsum(torch.rand(T, n, generator=gen, dtype=torch.float64) * 0.3, dim=0)
    norms = torch.sqrt(2 * scores + 2 * (torch.exp(scores) - 1) / 20) / 1.3
    # off the curve a little
    norms = norms + 0.05 * torch.randn(T, n, generator=gen, dtype=torch.float64)
    norms[T // 2, :3] += 0.5  # a bump mid-run: the largest drift is not at the end
    # shrinking norms: C drifts downwards
    norms[:, 3:] *= torch.linspace(1.0, 0.05, T, dtype=torch.float64)[:, None]
    # a trained query's norm changes
    query_norms = 1.3 * (1 + 0.5 * torch.sin(torch.linspace(0, 3.0, T, dtype=torch.float64)))
    m = 20
    out = student_fn(scores, norms.abs(), query_norms, m)
    expect_tensor(out, "the drift", (n,))
    ref = sen_drift(scores, norms.abs(), query_norms, m)
    if not close(out, ref, tol=1e-8):
        C = sen_invariant(scores, norms.abs().square(), query_norms.square()[:, None], m)
        C_first_q = sen_invariant(scores, norms.abs().square(), query_norms[0].square(), m)
        if close(out, (C_first_q - C_first_q[:1]).abs().amax(dim=0), tol=1e-8):
            raise CheckFailed(
                "you used the first step's query norm throughout; when the query is trained "
                "||q|| changes, so use query_norms[t] at step t."
            )
        if close(out, (C[-1] - C[0]).abs(), tol=1e-8) or close(out, C[-1] - C[0], tol=1e-8):
            raise CheckFailed(
                "that is the change at the last step only; the drift is the largest change over "
                "all recorded steps, max_t |C(t) - C(0)|."
            )
        if close(out, (C - C[:1]).amax(dim=0), tol=1e-8):
            raise CheckFailed("take the absolute value: C can drift downwards too.")
        sen_q = sen_invariant(scores, norms.abs().square(), query_norms[:, None], m)
        if close(out, (sen_q - sen_q[:1]).abs().amax(dim=0), tol=1e-8):
            raise CheckFailed("query_norms holds ||q||, not ||q||^2: square it in C.")
        raise CheckFailed(
            "the drift differs from max_t |C(t) - C(0)| with C from sen_invariant at each step."
        )
    # a word exactly on the curve with a fixed query has no drift
    s = torch.linspace(0, 3, 7, dtype=torch.float64)[:, None]
    w = torch.sqrt(2 * s + 2 * (torch.exp(s) - 1) / m)
    zero = student_fn(s, w, torch.ones(7, dtype=torch.float64), m)
    if not close(zero, torch.zeros(1, dtype=torch.float64), tol=1e-9):
        raise CheckFailed(
            "a word on the identity's curve with a fixed query (||q|| = 1) must have zero drift."
        )


def _measured_score_per_norm_sq(score: float, query_norm: float, m: int, seed: int) -> float:
    """``ds / d||w||^2`` of the restricted flow at one state, measured through the model.

    One sentence: the topic word (id 0) with embedding ``w`` and score ``score``, and ``m``
    background words with embedding 0 and key 0; a random fixed linear classifier and
    cross-entropy.  Under gradient flow ``dk/dt = -dloss/dk`` and ``dw/dt = -dloss/dw``, so the
    ratio of ``ds/dt = q . dk/dt`` to ``d||w||^2/dt = 2 w . dw/dt`` is read off autograd's
    gradients, with no formula from the chapter in between.
    """
    gen = torch.Generator().manual_seed(seed)
    embed_dim, key_dim, n_classes = 5, 4, 3
    query = torch.randn(key_dim, generator=gen, dtype=torch.float64)
    query = query * (query_norm / query.norm())
    embedding = torch.zeros(m + 1, embed_dim, dtype=torch.float64)
    embedding[0] = torch.randn(embed_dim, generator=gen, dtype=torch.float64)
    keys = torch.zeros(m + 1, key_dim, dtype=torch.float64)
    keys[0] = score * query / query_norm**2
    embedding.requires_grad_()
    keys.requires_grad_()
    U = torch.randn(embed_dim, n_classes, generator=gen, dtype=torch.float64)
    tokens = torch.arange(m + 1)[None, :]
    _, _, context = attention_forward(tokens, embedding, keys, query)
    F.cross_entropy(context @ U, torch.tensor([seed % n_classes])).backward()
    score_rate = -(query @ keys.grad[0])
    norm_sq_rate = -2 * (embedding.detach()[0] @ embedding.grad[0])
    return float(score_rate / norm_sq_rate)


def _norm_sq_mistakes(score: torch.Tensor, q_sq: float, m: int) -> list:
    """``(value, hint)`` for the usual wrong derivations of ``ds / d||w||^2``."""
    a = torch.exp(score) / (torch.exp(score) + m)
    return [
        (
            q_sq * (1 - a),
            "the factor 1/2 is missing: d||w||^2/dt = 2 w . dw/dt = 2 a R, while ds/dt = "
            "||q||^2 a (1 - a) R.",
        ),
        (
            q_sq / 2 * a,
            "the ratio is 1 - a, not a: the score's rate carries a (1 - a), the squared norm's "
            "rate only a.",
        ),
        (
            q_sq / 2 * a * (1 - a),
            "a (1 - a) is the score's rate alone; divide by the squared norm's rate 2 a R: the "
            "a and R cancel.",
        ),
        (
            2 / (q_sq * (1 - a)),
            "that is d||w||^2 / ds, the inverse: divide the score's rate by the squared norm's "
            "rate.",
        ),
        (
            q_sq**2 / 2 * (1 - a),
            "query_norm_sq is already ||q||^2: multiply by it, do not square it again.",
        ),
        (
            q_sq**0.5 / 2 * (1 - a),
            "use ||q||^2 (query_norm_sq itself), not its square root.",
        ),
        (
            q_sq / 2 * (1 - 1 / (m + 1)) * torch.ones_like(score),
            "a depends on the score: a(s) = e^s / (e^s + m), not its value 1 / (m + 1) at s = 0.",
        ),
        (
            q_sq / 2 * (1 - torch.exp(score) / (torch.exp(score) + m + 1)),
            "the topic word is one of the m + 1 words: a(s) = e^s / (e^s + m), not "
            "e^s / (e^s + m + 1).",
        ),
        (
            q_sq / 2 * (1 - torch.sigmoid(score)),
            "the m background words (score 0) compete for attention: a(s) = e^s / (e^s + m), "
            "not 1 / (1 + e^-s).",
        ),
    ]


@run_check("the proof's common factor, d s / d ||w||^2")
def check_score_per_norm_sq(student_fn) -> None:
    """Check ``student_fn(score, query_norm_sq, m)`` (elementwise) against a measurement."""
    score = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.0, 2.5, 4.0, 7.0], dtype=torch.float64)
    for query_norm, m in ((1.3, 20), (0.6, 5), (2.0, 50)):
        measured = torch.tensor(
            [
                _measured_score_per_norm_sq(float(s), query_norm, m, seed)
                for seed, s in enumerate(score)
            ],
            dtype=torch.float64,
        )
        q_sq = query_norm**2
        out = student_fn(score, q_sq, m)
        expect_tensor(out, "ds / d||w||^2", tuple(score.shape))
        if close(out, measured, tol=1e-8):
            continue
        for value, hint in _norm_sq_mistakes(score, q_sq, m):
            if close(out, value, tol=1e-8):
                raise CheckFailed(hint)
        raise CheckFailed(
            f"for ||q|| = {query_norm}, m = {m} the measured ds/d||w||^2 at scores "
            f"{score.tolist()} is "
            f"{[round(v, 4) for v in measured.tolist()]}, yours "
            f"{[round(v, 4) for v in out.double().tolist()]}; "
            "divide ds/dt = ||q||^2 a (1 - a) R by d||w||^2/dt = 2 a R."
        )
    if not close(student_fn(score, 1.7, 20), score_per_norm_sq(score, 1.7, 20), tol=1e-8):
        raise CheckFailed("the values differ from the reference on this case.")
