"""Checks for the exercises of chapter 7 (the structure behind both papers' laws): the lemma's
key step, the lemma's hypothesis measured, and the law predicted for a repeated topic word."""

from __future__ import annotations

import torch

from ..conservation import topic_invariant
from ..law import lemma_coupling, miss_reciprocal
from ._core import CheckFailed, close, expect_tensor, run_check


def _as_tensor(value, name: str, shape) -> torch.Tensor:
    if isinstance(value, (int, float)) and shape == ():
        return torch.tensor(float(value), dtype=torch.float64)
    return expect_tensor(value, name, shape)


@run_check("the key step: 1 / (1 - a(theta)) = 1 + e^theta / n")
def check_miss_reciprocal(student_fn) -> None:
    """Check ``student_fn(theta, n_others)``, elementwise: ``1 / (1 - a(theta))``."""
    theta = torch.linspace(-3, 4, 15, dtype=torch.float64)
    for n in (4, 19):
        out = _as_tensor(student_fn(theta, n), "1 / (1 - a)", theta.shape)
        # the truth from a real softmax over theta and n logits at zero
        logits = torch.stack([theta] + [torch.zeros_like(theta)] * n, dim=-1)
        a = torch.softmax(logits, dim=-1)[:, 0]
        truth = 1 / (1 - a)
        if not close(out, truth, tol=1e-9):
            e = torch.exp(theta)
            wrong = {
                "that is a(theta) itself; the lemma needs the reciprocal of what it misses, 1 / "
                "(1 - a).":
                    e / (e + n),
                "that is 1 - a(theta); take its reciprocal.": n / (e + n),
                "that is 1 / a(theta); the proof divides by the weight the logit misses, 1 - a.":
                    (e + n) / e,
                "n counts the *other* logits: a(theta) = e^theta / (e^theta + n), not e^theta / "
                "(e^theta + n - 1).":
                    1 + e / (n - 1),
                "the exponential is e^theta (a larger logit misses less), not e^{-theta}.":
                    1 + torch.exp(-theta) / n,
                "divide e^theta by n: (e^theta + n) / n = 1 + e^theta / n.": 1 + e * n,
            }
            for hint, value in wrong.items():
                if close(out, value, tol=1e-9):
                    raise CheckFailed(hint)
            raise CheckFailed("write 1 - a = n / (e^theta + n) and invert it.")
        if not close(out, miss_reciprocal(theta, n), tol=1e-9):
            raise CheckFailed("the values differ from the reference on this case.")
    # at theta = 0 the logit has 1/(n+1) of the weight and misses n/(n+1)
    zero = _as_tensor(student_fn(torch.zeros(1, dtype=torch.float64), 9), "1 / (1 - a)", (1,))
    if not close(zero, torch.tensor([10 / 9], dtype=torch.float64), tol=1e-9):
        raise CheckFailed(
            "at theta = 0 with n = 9 the logit misses 9/10 of the weight, so 1/(1 - a) = 10/9."
        )
    # large logits: 1 - a(theta) rounds to 0 (theta = 40 in float64, 20 in float32), so a direct
    # 1 / (1 - a) overflows to inf, and a little below that it loses its digits by cancellation
    for dtype, thetas, tol in ((torch.float64, [10.0, 20.0, 30.0, 40.0], 1e-9),
                               (torch.float32, [5.0, 10.0, 15.0, 20.0], 1e-5)):
        theta = torch.tensor(thetas, dtype=dtype)
        out = _as_tensor(student_fn(theta, 4), "1 / (1 - a)", theta.shape)
        truth = 1 + torch.exp(theta.double()) / 4
        if close(out, truth, tol=tol):
            continue
        bad = int(torch.argmax(((out.double() - truth) / truth).abs().nan_to_num(float("inf"))))
        if not bool(torch.isfinite(out[bad])):
            raise CheckFailed(
                f"at theta = {thetas[bad]:g} in {dtype} your function returned "
                f"{float(out[bad])}, an overflow: a(theta) rounds to 1 there, so 1 - a is 0 "
                "and 1 / (1 - a) is inf, while the true value is "
                f"{float(truth[bad]):.4g}. Do not subtract: 1 + e^theta / n is exact."
            )
        raise CheckFailed(f"at theta = {thetas[bad]:g} in {dtype} your function returned "
                          f"{float(out[bad]):.6g} instead of {float(truth[bad]):.6g}: 1 - a(theta) "
                          "subtracts two numbers close to 1 and loses its digits (cancellation). "
                          "Do not subtract: 1 + e^theta / n.")


@run_check("the lemma's hypothesis measured: c = theta' / ((1 - a(theta)) S')")
def check_lemma_coupling(student_fn) -> None:
    """Check ``student_fn(theta_rate, strength_rate, theta, n_others) -> c``, elementwise."""
    gen = torch.Generator().manual_seed(7)
    theta = torch.randn(12, generator=gen, dtype=torch.float64) * 2
    common = torch.randn(12, generator=gen, dtype=torch.float64)  # the unknown factor g, any sign
    n, c = 6.0, 0.37
    a = torch.exp(theta) / (torch.exp(theta) + n)
    strength_rate = 2.0 * common
    theta_rate = c * (1 - a) * strength_rate
    out = _as_tensor(student_fn(theta_rate, strength_rate, theta, n), "c", theta.shape)
    if not close(out, torch.full_like(theta, c), tol=1e-9):
        wrong = {
            "you returned theta' / S'; divide also by (1 - a(theta)) (multiply by 1 + e^theta / "
            "n).":
                theta_rate / strength_rate,
            "divide by (1 - a), do not multiply: c = theta' / ((1 - a) S').":
                theta_rate * (1 - a) / strength_rate,
            "the ratio is upside down: c = theta' / ((1 - a) S').":
                (1 - a) * strength_rate / theta_rate,
            "use 1 - a(theta), not a(theta): the logit's speed carries the weight it misses.":
                theta_rate / (a * strength_rate),
        }
        for hint, value in wrong.items():
            if close(out, value, tol=1e-9):
                raise CheckFailed(hint)
        raise CheckFailed(
            "on velocities built with c = 0.37 your function does not return 0.37 everywhere."
        )
    if not close(out, lemma_coupling(theta_rate, strength_rate, theta, n), tol=1e-9):
        raise CheckFailed("the values differ from the reference on this case.")
    # the Part I velocities of chapter 2: s' = ||q||^2 a (1 - a) R, (||w||^2)' = 2 a R,
    # c = ||q||^2 / 2
    R = torch.randn(12, generator=gen, dtype=torch.float64)
    q2 = 1.44
    part_one = _as_tensor(student_fn(q2 * a * (1 - a) * R, 2 * a * R, theta, n), "c", theta.shape)
    if not close(part_one, torch.full_like(theta, q2 / 2), tol=1e-9):
        raise CheckFailed(
            "on chapter 2's velocities (score and squared norm) the coupling must be ||q||^2 / 2."
        )


def _factor(out: torch.Tensor, ref: torch.Tensor) -> float:
    """The c with out = c ref, by least squares (0 when ref vanishes)."""
    scale = float((ref.double() * ref.double()).sum())
    return float((out.double() * ref.double()).sum()) / scale if scale > 0 else 0.0


@run_check("the law for a topic word repeated k times")
def check_topic_invariant(student_fn) -> None:
    """Check ``student_fn(score, embed_norm_sq, query_norm_sq, m, copies)``: the prediction
    ``Psi_{m/k}(s) - ||q||^2 ||w||^2 / 2`` for a word that occurs ``k = copies`` times, or any
    nonzero multiple of it (chapter 2's ``||q||^2 ||w||^2 - 2 s - ...`` form, the negative):
    the exercise fixes only the zero point, and a multiple of a conserved quantity is conserved."""
    gen = torch.Generator().manual_seed(11)
    score = torch.randn(6, 4, generator=gen, dtype=torch.float64) * 2
    embed_norm_sq = torch.rand(6, 4, generator=gen, dtype=torch.float64) * 5
    query_norm_sq = 1.3
    for m, k in ((20, 4), (12, 3), (20, 1)):
        answer = student_fn(score, embed_norm_sq, query_norm_sq, m, k)
        out = _as_tensor(answer, "the invariant", score.shape)
        ref = topic_invariant(score, embed_norm_sq, query_norm_sq, m, k)
        c = _factor(out, ref)
        if abs(c) > 1e-6 and close(out / c, ref, tol=1e-9):
            continue
        e = torch.exp(score)
        half = 0.5 * query_norm_sq * embed_norm_sq
        wrong = {
            "you used n = m, as if the word occurred once; with k copies the word's total "
            "attention is e^s / (e^s + m/k), so n = m / k.":
                score + (e - 1) / m - half,
            "n = m / k, not m k: more copies mean fewer effective competitors.":
                score + (e - 1) / (m * k) - half,
            "the coupling is ||q||^2 / 2 (score speed ||q||^2 a(1 - a) R, squared-norm speed 2 a "
            "R), not ||q||^2.":
                score + k * (e - 1) / m - 2 * half,
            "the signs: the score side and the norm side enter with opposite signs, Psi(s) - "
            "||q||^2 ||w||^2 / 2 (or a multiple of it).":
                score + k * (e - 1) / m + half,
        }
        for hint, value in wrong.items():
            c = _factor(out, value)
            if abs(c) > 1e-6 and close(out / c, value, tol=1e-9):
                raise CheckFailed(hint)
        if close(out - out.flatten()[0], ref - ref.flatten()[0], tol=1e-9):
            raise CheckFailed(
                "right up to a constant, which conservation does not see; write "
                "Psi_n(s) = s + (e^s - 1)/n so that the invariant is 0 at s = 0, w = 0."
            )
        raise CheckFailed(
            "the invariant differs from s + k (e^s - 1) / m - ||q||^2 ||w||^2 / 2 "
            "(or a nonzero multiple of it)."
        )
