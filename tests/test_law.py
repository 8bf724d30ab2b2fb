"""The law at the bottom of the library (course_lib.law, chapter 7): the weight a(theta), the
reciprocal 1 / (1 - a), the potential Psi_n and its inverse, the solver of e^y + k y = c, the
lemma (invariant, drift, coupling) and the kind rule every module of numbers follows."""

from __future__ import annotations

import doctest
import math

import mpmath
import numpy as np
import pytest
import torch
from scipy.integrate import quad, solve_ivp

from course_lib import law
from course_lib.law import attention_potential


def test_docstring_examples_run():
    failures, tried = doctest.testmod(law, optionflags=doctest.ELLIPSIS)
    assert tried >= 12 and failures == 0


def test_the_law_imports_no_other_course_module():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(law.__file__).read_text())
    relative = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
    }
    assert relative == {"_validate"}, relative


# --------------------------------------------------------------------------- the weight


def test_attention_weight_is_a_softmax_against_logits_at_zero():
    theta = torch.linspace(-6, 8, 29, dtype=torch.float64)
    for n in (1, 4, 19):
        others = [torch.zeros_like(theta)] * n
        softmax = torch.softmax(torch.stack([theta, *others], -1), -1)[:, 0]
        assert torch.allclose(law.attention_weight(theta, n), softmax, rtol=1e-12)
    assert law.attention_weight(0.0, 4) == pytest.approx(0.2)
    # no overflow at either end, in either precision
    for dtype in (torch.float32, torch.float64):
        far = law.attention_weight(torch.tensor([-1e4, 1e4], dtype=dtype), 3)
        assert far.dtype == dtype and far.tolist() == [0.0, 1.0]
    with np.errstate(all="raise"):
        assert law.attention_weight(np.array([-1e4, 1e4]), 3).tolist() == [0.0, 1.0]
    # elementwise n (one per logit)
    out = law.attention_weight(np.zeros(3), np.array([1.0, 3.0, 9.0]))
    assert np.allclose(out, [0.5, 0.25, 0.1])


def test_miss_reciprocal_is_one_over_the_missed_softmax_weight():
    theta = torch.linspace(-4, 6, 41, dtype=torch.float64)
    for n in (1, 4, 19, 2.5):
        a = law.attention_weight(theta, n)
        assert torch.allclose(law.miss_reciprocal(theta, n), 1 / (1 - a), rtol=1e-12)
    a = torch.softmax(torch.stack([theta] + [torch.zeros_like(theta)] * 4, -1), -1)[:, 0]
    assert torch.allclose(law.miss_reciprocal(theta, 4), 1 / (1 - a), rtol=1e-12)


@pytest.mark.parametrize("dtype, theta", [(torch.float64, 40.0), (torch.float32, 20.0)])
def test_miss_reciprocal_does_not_overflow_where_one_minus_a_rounds_to_zero(dtype, theta):
    t = torch.tensor([theta], dtype=dtype)
    direct = 1 / (1 - law.attention_weight(t, 4))  # the subtraction the law avoids
    assert torch.isinf(direct).all()
    out = law.miss_reciprocal(t, 4)
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert float(out) == pytest.approx(1 + math.exp(theta) / 4, rel=1e-6)


# --------------------------------------------------------------------------- the potential


def test_attention_potential_has_the_miss_reciprocal_as_derivative():
    theta = np.linspace(-3, 5, 17)
    h = 1e-6
    numeric = (attention_potential(theta + h, 7) - attention_potential(theta - h, 7)) / (2 * h)
    assert np.allclose(numeric, law.miss_reciprocal(theta, 7), rtol=1e-8)
    # exact near zero (expm1), where theta + (e^theta - 1)/n loses the small terms
    assert law.attention_potential(1e-12, 3) == pytest.approx(1e-12 * (1 + 1 / 3), rel=1e-12)


def test_inverse_attention_potential_round_trips():
    for n in (0.5, 1, 4, 99, 999):
        theta = np.array([-30.0, -5.0, -1e-3, 0.0, 1e-9, 0.5, 3.0, 12.0, 40.0, 300.0])
        back = law.inverse_attention_potential(law.attention_potential(theta, n), n)
        assert np.allclose(back, theta, rtol=1e-12, atol=1e-12), n
        values = np.array([-1e6, -3.0, 0.0, 0.2, 7.0, 1e5, 1e200])
        forward = law.attention_potential(law.inverse_attention_potential(values, n), n)
        assert np.allclose(forward, values, rtol=1e-12, atol=1e-12), n
    t = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float32)
    back = law.inverse_attention_potential(law.attention_potential(t, 4), 4)
    assert back.dtype == torch.float32 and torch.allclose(back, t, atol=1e-5)


def _exact_root(c, k):
    """e^y + k y = c in 50-digit arithmetic: y = log(k w) with w = W_0(e^{c/k} / k)."""
    with mpmath.workdps(50):
        c, k = mpmath.mpf(c), mpmath.mpf(k)
        w = mpmath.lambertw(mpmath.exp(c / k) / k)
        return float(c / k - w) if w < mpmath.mpf("1e-30") else float(mpmath.log(k * w))


def test_solve_exp_plus_linear_against_high_precision():
    worst = 0.0
    for k in (1e-3, 0.05, 1.0, 4.0, 19.0, 99.0, 999.0, 1e5):
        for c in (-1e4, -50.0, -1.0, 0.0, 0.5, 1.0, 1 + 1e-9, 2.0, 10.0, 1e3, 1e6, 1e15, 1e30):
            y = law.solve_exp_plus_linear(c, k)
            exact = _exact_root(c, k)
            worst = max(worst, abs(y - exact) / max(1.0, abs(exact)))
    assert worst < 2e-15
    # the two forms it replaced: x - W loses everything at c/k = 1e33, a fixed Newton loop
    # from a clamped start at c = -1e4 (both rejected here)
    assert abs(law.solve_exp_plus_linear(1e30, 1e-3) - _exact_root(1e30, 1e-3)) < 1e-12
    assert law.solve_exp_plus_linear(-1e4, 1e-3) == pytest.approx(-1e7, rel=1e-12)


def test_solve_exp_plus_linear_kinds_and_arguments():
    assert type(law.solve_exp_plus_linear(1.0, 2.0)) is float
    out = law.solve_exp_plus_linear(torch.tensor([1.0, 5.0], dtype=torch.float32), 3.0)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert isinstance(law.solve_exp_plus_linear([1.0, 2.0], np.array([1.0, 2.0])), np.ndarray)
    with pytest.raises(ValueError, match="k"):
        law.solve_exp_plus_linear(1.0, 0.0)
    with pytest.raises(TypeError, match="c"):
        law.solve_exp_plus_linear("1", 1.0)


# ------------------------------------------------------------------ Psi_n, as chapter 5 uses it


def test_attention_potential_is_the_integral_of_one_over_one_minus_a():
    for n_others in (1, 4, 99, 2.5):
        for theta in (-3.0, 0.7, 6.0):
            integral, _ = quad(lambda s, n=n_others: (np.exp(s) + n) / n, 0.0, theta)
            assert law.attention_potential(theta, n_others) == pytest.approx(integral, rel=1e-12)


def test_attention_potential_keeps_the_input_type():
    assert isinstance(law.attention_potential(1.0, 3), float)
    out_np = law.attention_potential(np.array([0.0, 1.0]), 3)
    assert isinstance(out_np, np.ndarray) and out_np.shape == (2,)
    out_t = law.attention_potential(torch.tensor([0.0, 1.0], dtype=torch.float64), 3)
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_allclose(out_t.numpy(), out_np, rtol=1e-15)


def test_attention_potential_rejects_bad_input():
    with pytest.raises(ValueError, match="n_others"):
        law.attention_potential(1.0, 0)
    with pytest.raises(TypeError, match="theta"):
        law.attention_potential("1.0", 3)


# --------------------------------------------------------------------------- the lemma


def _lemma_flow(c_true, n, g):
    """theta' = c (1 - a(theta)) S', S' = g(t) (g changes sign): the lemma's hypothesis."""

    def rhs(t, y):
        theta = y[0]
        s_rate = g(t)
        return [c_true * (n / (np.exp(theta) + n)) * s_rate, s_rate]

    return rhs


def test_lemma_holds_for_any_common_factor_and_fails_for_the_wrong_coupling():
    g = lambda t: np.cos(0.7 * t) + 0.6 + 0.3 * np.sin(3.1 * t)  # noqa: E731, changes sign
    times = np.linspace(0, 30, 301)
    sol = solve_ivp(
        _lemma_flow(0.8, 5.0, g), (0, 30), [0.3, 1.0], t_eval=times, rtol=1e-11, atol=1e-12
    )
    theta, S = sol.y
    assert np.ptp(theta) > 2  # the logit really moves (both ways)
    assert law.lemma_drift(theta, S, 0.8, 5.0) < 1e-8
    # the invariant is of order 1 here; a wrong c, or a wrong n, drifts by far more
    assert law.lemma_drift(theta, S, 0.7, 5.0) > 0.1
    assert law.lemma_drift(theta, S, 0.8, 6.0) > 0.05
    # the measured coupling is the constant c
    rates = np.array([_lemma_flow(0.8, 5.0, g)(t, y) for t, y in zip(times, sol.y.T)])
    c = law.lemma_coupling(rates[:, 0], rates[:, 1], theta, 5.0)
    assert np.allclose(c[np.abs(rates[:, 1]) > 1e-3], 0.8, rtol=1e-10)


def test_lemma_invariant_is_psi_minus_c_s():
    theta, strength = np.array([0.0, 1.0, -2.0]), np.array([0.0, 2.0, 3.0])
    expected = theta + np.expm1(theta) / 4 - 0.3 * strength
    assert np.allclose(law.lemma_invariant(theta, strength, 0.3, 4), expected, rtol=1e-14)


def test_lemma_coupling_where_the_strength_does_not_move():
    assert law.lemma_coupling(1.0, 0.0, 0.0, 4) == float("inf")
    assert np.isnan(law.lemma_coupling(0.0, 0.0, 0.0, 4))
    out = law.lemma_coupling(torch.tensor([1.0, 0.4]), torch.tensor([0.0, 1.0]), 0.0, 4)
    assert torch.isinf(out[0]) and out[1].item() == pytest.approx(0.5)


def test_lemma_drift_shapes_and_types():
    theta = torch.zeros(5, 3)
    assert law.lemma_drift(theta, theta, 0.5, 4).shape == (3,)
    assert isinstance(law.lemma_drift(np.zeros(5), np.zeros(5), 0.5, 4), float)
    with pytest.raises(ValueError, match="same shape"):
        law.lemma_drift(torch.zeros(5, 3), torch.zeros(5, 2), 0.5, 4)
    with pytest.raises(ValueError, match="time axis"):
        law.lemma_drift(1.0, 1.0, 0.5, 4)


# --------------------------------------------------------------------------- the kind rule


def test_the_kind_rule():
    # numbers (Python, NumPy, 0-d arrays) give a Python float
    for number in (1, 1.0, np.float32(1.0), np.int64(1), np.array(1.0)):
        assert type(law.attention_potential(number, 3)) is float
    # arrays, lists and tuples give a float64 array
    for array in ([0.0, 1.0], (0, 1), np.array([0, 1]), np.array([0.0, 1.0], dtype=np.float32)):
        out = law.attention_potential(array, 3)
        assert isinstance(out, np.ndarray) and out.dtype == np.float64
    # tensors keep their floating dtype; integer tensors become float64
    for dtype, expected in (
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
        (torch.int64, torch.float64),
    ):
        out = law.attention_potential(torch.tensor([0, 1], dtype=dtype), 3)
        assert isinstance(out, torch.Tensor) and out.dtype == expected
    out = law.attention_potential(torch.tensor(1.0), 3)  # a 0-d tensor stays a tensor
    assert isinstance(out, torch.Tensor) and out.dim() == 0
    # mixed: a tensor wins over an array, an array over a number
    out = law.lemma_invariant(torch.zeros(2), np.ones(2), 0.5, 3)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert isinstance(law.lemma_invariant(0.0, np.ones(2), 0.5, 3), np.ndarray)
    # a SciPy computation comes back in the tensor's dtype
    out = law.solve_exp_plus_linear(torch.ones(2, dtype=torch.float32), 2.0)
    assert out.dtype == torch.float32 and out.device == torch.device("cpu")


@pytest.mark.parametrize(
    "bad, error",
    [
        (True, TypeError),
        ("1", TypeError),
        (1 + 2j, TypeError),
        (np.array([1 + 2j]), TypeError),
        (np.array(["a"]), TypeError),
        (torch.tensor([True]), TypeError),
        ([[1.0], [1.0, 2.0]], TypeError),
        ({1.0}, TypeError),
    ],
)
def test_the_kind_rule_refuses_what_is_not_real_numbers(bad, error):
    with pytest.raises(error, match="theta"):
        law.attention_potential(bad, 3)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="n_others"):
        law.miss_reciprocal(0.0, 0)
    with pytest.raises(ValueError, match="n_others"):
        law.attention_weight(0.0, np.array([1.0, -1.0]))
    with pytest.raises(TypeError, match="n_others"):
        law.lemma_invariant(0.0, 0.0, 0.5, "20")
    with pytest.raises(TypeError, match="theta"):
        law.miss_reciprocal("1", 3)
    with pytest.raises(ValueError, match="coupling"):
        law.lemma_invariant(0.0, 1.0, 0.0, 3)
    with pytest.raises(TypeError, match="strength_rate"):
        law.lemma_coupling(1.0, "x", 0.0, 3)
    with pytest.raises(TypeError, match="value"):
        law.inverse_attention_potential(None, 3)
