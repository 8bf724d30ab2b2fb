"""Checks for the exercises of chapter 7 (the structure behind both papers' laws): a new
corollary (a temperature and two learning rates), the soft orbit's constant with two learning
rates, and the law predicted for a repeated topic word."""

from __future__ import annotations

import numpy as np
import torch

from ..conservation import temperature_law_constant, topic_invariant
from ._core import CheckFailed, close, expect_number, expect_tensor, run_check
from .solutions import soft_orbit_constant


def _as_tensor(value, name: str, shape) -> torch.Tensor:
    if isinstance(value, (int, float)) and shape == ():
        return torch.tensor(float(value), dtype=torch.float64)
    return expect_tensor(value, name, shape)


def _judge_constant(student_fn, cases, reference, mistakes, fallback) -> None:
    """Read ``student_fn(*case)`` at every case at once and compare with ``reference(*case)``;
    name the mistake ``(formula, hint)`` whose ``formula(*case)`` matches at every case."""
    outs = np.array([expect_number(student_fn(*case), "c") for case in cases])
    refs = np.array([reference(*case) for case in cases])
    if np.allclose(outs, refs, rtol=1e-6, atol=0):
        return
    for formula, hint in mistakes:
        if np.allclose(outs, np.array([formula(*case) for case in cases]), rtol=1e-6, atol=0):
            raise CheckFailed(hint)
    bad = int(np.argmax(np.abs(outs - refs) / np.abs(refs)))
    raise CheckFailed(fallback(cases[bad], outs[bad], refs[bad]))


# (query_norm_sq, temperature, lr_key, lr_embedding): every argument varies on its own
_TEMPERATURE_CASES = (
    (2.0, 1.0, 0.1, 0.1),
    (0.5, 2.0, 0.1, 0.1),
    (1.3, 0.5, 0.2, 0.05),
    (3.0, 3.0, 0.01, 0.3),
    (0.7, 1.5, 1.0, 1.0),
    (1.0, 0.8, 0.3, 0.3),
)


# (formula of (query_norm_sq, temperature, lr_key, lr_embedding), hint)
_TEMPERATURE_MISTAKES = (
    (
        lambda q2, T, lk, lw: lk * q2 / (2 * T * lw),
        "the temperature divides the logit once and then the logit's gradient with respect "
        "to the key once more: theta' carries 1/T^2, not 1/T.",
    ),
    (
        lambda q2, T, lk, lw: lk * q2 * T**2 / (2 * lw),
        "a higher temperature makes the logit move SLOWER: it divides, 1/T^2.",
    ),
    (
        lambda q2, T, lk, lw: lk * q2 / (2 * lw),
        "the temperature is missing: theta = q.k/T, so theta' = q.k'/T with k' along q/T.",
    ),
    (
        lambda q2, T, lk, lw: lw * q2 / (2 * T**2 * lk),
        "the learning rates are upside down: the key's rate speeds up the logit "
        "(numerator), the embedding's the strength S (denominator).",
    ),
    (
        lambda q2, T, lk, lw: q2 / (2 * T**2),
        "the learning rates are missing: the keys move at lr_key, the embeddings at "
        "lr_embedding, and c is a ratio of the two speeds.",
    ),
    (
        lambda q2, T, lk, lw: lk * q2 / (T**2 * lw),
        "the factor 1/2 is missing: d||w||^2/dt = 2 w . w' (corollary 1 has ||q||^2 / 2).",
    ),
    (
        lambda q2, T, lk, lw: lk * q2**2 / (2 * T**2 * lw),
        "query_norm_sq is already ||q||^2: do not square it again.",
    ),
    (
        lambda q2, T, lk, lw: lk * np.sqrt(q2) / (2 * T**2 * lw),
        "the logit's speed carries ||q||^2 (q . k' with k' along q), not ||q||.",
    ),
    (
        lambda q2, T, lk, lw: 2 * T**2 * lw / (lk * q2),
        "that is 1/c: the law is theta' = c (1 - a) S', so c = theta' / ((1 - a) S').",
    ),
)


@run_check("the law's constant with a temperature and two learning rates")
def check_temperature_law_constant(student_fn) -> None:
    """Check ``student_fn(query_norm_sq, temperature, lr_key, lr_embedding) -> c`` (any real
    scalar) at cases where each argument varies alone; a formula wrong in the same way at
    every case is named."""

    def fallback(case, out, ref):
        q2, T, lk, lw = case
        return (
            f"at query_norm_sq = {q2}, temperature = {T}, lr_key = {lk}, lr_embedding = "
            f"{lw} the constant is {ref:.6g}, you returned {out:.6g}: write theta' and "
            "(||w||^2)' with chapter 2's proof, each with its learning rate, and divide."
        )

    _judge_constant(
        student_fn, _TEMPERATURE_CASES, temperature_law_constant, _TEMPERATURE_MISTAKES, fallback
    )


# (m, C, lr_focus, lr_classifier): every argument varies on its own
_SOFT_CASES = (
    (5, 3, 1.0, 1.0),
    (50, 3, 1.0, 1.0),
    (5, 10, 1.0, 1.0),
    (5, 3, 0.3, 0.1),
    (9, 2, 0.05, 0.2),
    (20, 20, 0.5, 0.5),
)


# (formula of (m, C, lr_focus, lr_classifier), hint)
_SOFT_MISTAKES = (
    (
        lambda m, C, lf, lc: lf / (2 * lc),
        "1/2 is corollary 2's constant for S = ||W e_y||^2; the exercise takes S = mu^2, "
        "and on the symmetric manifold ||W e_y||^2 is not mu^2 (write W e_y with a and b).",
    ),
    (
        lambda m, C, lf, lc: lf * (C - 1) / (C * lc),
        "the factor 1/2 is missing: d(mu^2)/dt = 2 mu mu'.",
    ),
    (
        lambda m, C, lf, lc: lf * C / (2 * (C - 1) * lc),
        "the class factor is upside down: ||W e_y||^2 = (C - 1) mu^2 / C, so c = (1/2) (C - 1)/C.",
    ),
    (
        lambda m, C, lf, lc: lc * (C - 1) / (2 * C * lf),
        "the learning rates are upside down: the focus's rate speeds up nu (the logit), the "
        "classifier's the strength S.",
    ),
    (
        lambda m, C, lf, lc: (C - 1) / (2 * C),
        "the learning rates are missing: nu moves at lr_focus times its gradient, mu at "
        "lr_classifier times its own, and c is a ratio of the two speeds.",
    ),
    (
        lambda m, C, lf, lc: lf * (m - 1) / (2 * m * lc),
        "c does not depend on m: the m - 1 background segments enter the law through "
        "n = m - 1 in Psi_n, not through c.",
    ),
    (
        lambda m, C, lf, lc: 2 * C * lc / (lf * (C - 1)),
        "that is 1/c: the law is theta' = c (1 - a) S', so c = theta' / ((1 - a) S').",
    ),
)


@run_check("the soft orbit's constant with S = mu^2 and two learning rates")
def check_soft_orbit_constant(student_fn) -> None:
    """Check ``student_fn(m, C, lr_focus, lr_classifier) -> c`` (any real scalar) at cases
    where each argument varies alone; a formula wrong in the same way everywhere is named."""

    def fallback(case, out, ref):
        m, C, lf, lc = case
        return (
            f"at m = {m}, C = {C}, lr_focus = {lf}, lr_classifier = {lc} the constant is "
            f"{ref:.6g}, you returned {out:.6g}: take corollary 2 (c = 1/2 for "
            "S = ||W e_y||^2), write ||W e_y||^2 through mu, and scale each speed by its "
            "rate."
        )

    _judge_constant(student_fn, _SOFT_CASES, soft_orbit_constant, _SOFT_MISTAKES, fallback)


def _factor(out: torch.Tensor, ref: torch.Tensor) -> float:
    """The c with out = c ref, by least squares (0 when ref vanishes)."""
    scale = float((ref.double() * ref.double()).sum())
    return float((out.double() * ref.double()).sum()) / scale if scale > 0 else 0.0


def _topic_mistakes(score, embed_norm_sq, query_norm_sq, m, k) -> tuple:
    """``(value, hint)`` for the usual wrong laws of a word repeated ``k`` times."""
    e = torch.exp(score)
    half = 0.5 * query_norm_sq * embed_norm_sq
    return (
        (
            score + (e - 1) / m - half,
            "you used n = m, as if the word occurred once. Add up the word's attention over "
            "its k positions and bring the total to the lemma's form e^s / (e^s + n): which "
            "n is that?",
        ),
        (
            score + (e - 1) / (m * k) - half,
            "with more copies the word should win MORE of the attention, so the background "
            "should count for less, not more: check how k enters n.",
        ),
        (
            score + k * (e - 1) / m - 2 * half,
            "the coupling is ||q||^2 / 2 (score speed ||q||^2 a(1 - a) R, squared-norm "
            "speed 2 a R), not ||q||^2.",
        ),
        (
            score + k * (e - 1) / m + half,
            "the signs: the score side and the norm side enter with opposite signs, "
            "Psi(s) - ||q||^2 ||w||^2 / 2 (or a multiple of it).",
        ),
    )


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
        for value, hint in _topic_mistakes(score, embed_norm_sq, query_norm_sq, m, k):
            c = _factor(out, value)
            if abs(c) > 1e-6 and close(out / c, value, tol=1e-9):
                raise CheckFailed(hint)
        if close(out - out.flatten()[0], ref - ref.flatten()[0], tol=1e-9):
            raise CheckFailed(
                "right up to a constant, which conservation does not see; write "
                "Psi_n(s) = s + (e^s - 1)/n so that the invariant is 0 at s = 0, w = 0."
            )
        raise CheckFailed(
            f"at m = {m}, copies = {k} your invariant differs from the prediction (and from "
            "every nonzero multiple of it): find n from the word's total attention, then "
            "write Psi_n(s) - c ||w||^2 with corollary 1's constant c."
        )
