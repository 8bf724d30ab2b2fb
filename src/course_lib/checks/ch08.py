"""Checks for the exercises of chapter 8 (which tokens win, and in which direction): the
gradient of prompt attention summed over pairs of tokens in log space, and a two-constraint
SVM solved by hand."""

from __future__ import annotations

import numpy as np
import torch

from ..max_margin import (
    log_space_gradient,
    official_single_input,
    textbook_gradient,
)
from ._core import CheckFailed, run_check
from .solutions import svm_two_constraints


def _vector(value, name: str, d: int) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{name} should be a torch.Tensor, got {type(value).__name__}.")
    if tuple(value.shape) != (d,):
        raise CheckFailed(f"{name} should have shape ({d},), got {tuple(value.shape)}.")
    return value.detach().to(torch.float64)


def _cos(a, b) -> float:
    na, nb = float(a.norm()), float(b.norm())
    if na == 0 or nb == 0:
        return 0.0
    return float(a @ b) / (na * nb)


def _moderate_case():
    gen = torch.Generator().manual_seed(8)
    X = torch.randn(3, 4, 3, generator=gen, dtype=torch.float64)
    v = torch.randn(3, generator=gen, dtype=torch.float64)
    y = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    W = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    p = torch.tensor([0.4, -0.3, 0.6], dtype=torch.float64)
    return p, X, v, y, W


def _log_space_mistakes(p, X, v, y, W, truth) -> list:
    """``(value, hint)`` for the usual wrong gradients on the moderate case."""
    a = torch.softmax(X @ (W @ p), dim=1)
    g = y[:, None] * (X @ v)
    f = (a * g).sum(dim=1)
    lp = -torch.sigmoid(-f)
    no_w = (lp[:, None, None] * (a * (g - f[:, None]))[:, :, None] * X).sum(dim=(0, 1)) / 3
    no_dloss = W.T @ ((a * (g - f[:, None]))[:, :, None] * X).sum(dim=(0, 1)) / 3
    return [
        (
            -truth,
            "the sign is flipped: l'(u) = -1 / (1 + e^u) is negative, so the pairs pull p "
            "toward the token of larger score.",
        ),
        (3 * truth, "that is the sum over sequences; the loss is their mean (divide by n)."),
        (
            2 * truth,
            "each unordered pair is counted twice: sum over t < u, or halve the sum over all "
            "(t, u).",
        ),
        (
            no_w,
            "multiply by W^T: the logit of token t is x_t^T W p, so its gradient in p is W^T x_t.",
        ),
        (
            no_dloss,
            "the factor l'(y f) of the logistic loss is missing (it is -sigmoid(-y f)).",
        ),
    ]


def _check_moderate_prompt(student_fn) -> None:
    """The gradient on a random case (3 sequences, 4 tokens, d = 3), a mistake named."""
    p, X, v, y, W = _moderate_case()
    out = _vector(student_fn(p, X, v, y, W), "the gradient", 3)
    truth = log_space_gradient(p, X, v, y, W)
    if torch.allclose(out, truth, rtol=1e-8, atol=1e-12):
        return
    for value, hint in _log_space_mistakes(p, X, v, y, W, truth):
        if torch.allclose(out, value, rtol=1e-6, atol=1e-12):
            raise CheckFailed(hint)
    raise CheckFailed(
        "on a random case (3 sequences, 4 tokens, d = 3) your gradient differs from "
        "autograd's; write a_t a_u = exp(z_t + z_u - 2 logsumexp(z))."
    )


def _check_large_prompt(student_fn) -> None:
    """At a large prompt (the official example, ||p|| = 200) the textbook sum is lost to
    cancellation; the pair sum is not: the direction, then the size."""
    X, v, y, W = official_single_input()
    p = torch.tensor([-0.0995, 0.995, 0.0], dtype=torch.float64) * 200
    p[1] += 0.05
    out = _vector(student_fn(p, X, v, y, W), "the gradient", 3)
    scaled, shift = log_space_gradient(p, X, v, y, W, return_log_scale=True)
    if not bool(torch.isfinite(out).all()):
        raise CheckFailed("at ||p|| = 200 your gradient is not finite: take logs of the weights.")
    if _cos(out, scaled) < 1 - 1e-9:
        if torch.allclose(out, textbook_gradient(p, X, v, y, W), rtol=1e-6, atol=0):
            raise CheckFailed(
                "that is the textbook sum over tokens: at ||p|| = 200 the difference "
                "g_opt - f is lost to cancellation and the direction is wrong. Sum over pairs "
                "(t, u) with (g_t - g_u)(x_t - x_u)."
            )
        raise CheckFailed(
            "at ||p|| = 200 (the official example) your gradient points the wrong way: "
            "form each pair's weight as exp of a sum of logs, never as a difference."
        )
    size = float(out.norm())
    expected = float(scaled.norm()) * np.exp(shift)
    if abs(size / expected - 1) > 1e-6:
        raise CheckFailed(
            f"at ||p|| = 200 the direction is right but the size is {size:.3e}, not {expected:.3e}."
        )


@run_check("the gradient of prompt attention over pairs of tokens, in log space")
def check_log_space_gradient(student_fn) -> None:
    """Check ``student_fn(p, X, v, y, W)``: the gradient of the mean logistic loss of (8.1), on
    a moderate case and at a large prompt where only a log-space pair sum keeps the direction."""
    _check_moderate_prompt(student_fn)
    _check_large_prompt(student_fn)


@run_check("a two-constraint SVM solved by hand")
def check_svm_two_constraints(student_fn) -> None:
    """Check ``student_fn(a1, a2)``: ``argmin ||p||^2`` s.t. ``a1^T p >= 1``, ``a2^T p >= 1``."""
    cases = [
        ([2.0, 0.0], [0.0, 1.0]),  # both active
        ([1.0, 0.0], [1.0, 1.0]),  # a1 alone: (1, 0) already has a2^T p = 1
        ([1.0, 1.0], [0.5, 0.0]),  # a2 alone
        ([1.0, 1.0], [3.0, 0.2]),  # a2 alone, a1 slack
    ]
    gen = torch.Generator().manual_seed(2)
    for _ in range(6):
        a = torch.randn(2, 3, generator=gen, dtype=torch.float64)
        cases.append((a[0].tolist(), a[1].tolist()))
    for a1, a2 in cases:
        a1t = torch.tensor(a1, dtype=torch.float64)
        a2t = torch.tensor(a2, dtype=torch.float64)
        out = _vector(student_fn(a1t, a2t), "p", len(a1))
        truth = svm_two_constraints(a1t, a2t)
        if torch.allclose(out, truth, atol=1e-8):
            continue
        A = torch.stack([a1t, a2t])
        both = A.T @ torch.linalg.solve(A @ A.T, torch.ones(2, dtype=torch.float64))
        if float((A @ out).min()) < 1 - 1e-8:
            if torch.allclose(out, a1t / a1t.norm(), atol=1e-8) or torch.allclose(
                out, a2t / a2t.norm(), atol=1e-8
            ):
                raise CheckFailed(
                    "the margin must be 1: divide a_k by its squared norm, not its norm."
                )
            raise CheckFailed(
                f"for a1 = {a1}, a2 = {a2} your p violates a constraint: A p = "
                f"{(A @ out).tolist()} (both must be >= 1)."
            )
        if torch.allclose(out, both, atol=1e-8):
            raise CheckFailed(
                f"for a1 = {a1}, a2 = {a2} one constraint is slack: a_k / ||a_k||^2 already "
                "satisfies the other, and is shorter than the point where both are active."
            )
        raise CheckFailed(
            f"for a1 = {a1}, a2 = {a2} your p is feasible but not the shortest: try each "
            "constraint alone (p = a_k / ||a_k||^2), keep it if it satisfies the other, "
            "else make both active."
        )
