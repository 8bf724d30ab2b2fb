"""Tests for course_lib.max_margin (chapter 8)."""

import numpy as np
import pytest
import torch

from course_lib import max_margin as mm


def _random_problem(seed=0, n=3, T=4, d=3):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, T, d, generator=gen, dtype=torch.float64)
    v = torch.randn(d, generator=gen, dtype=torch.float64)
    y = torch.tensor([1.0, -1.0, 1.0][:n], dtype=torch.float64)
    W = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return X, v, y, W


def test_prompt_attention_matches_formula():
    X, v, y, W = _random_problem()
    p = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    f = mm.prompt_attention(X, v, W, p)
    for i in range(X.shape[0]):
        a = torch.softmax(X[i] @ W @ p, dim=0)
        assert torch.allclose(f[i], v @ X[i].T @ a)


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_gradients_equal_autograd_where_accurate(scale):
    X, v, y, W = _random_problem()
    p = scale * torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    q = p.clone().requires_grad_(True)
    mm.prompt_loss(q, X, v, y, W).backward()
    assert torch.allclose(mm.textbook_gradient(p, X, v, y, W), q.grad, rtol=1e-10, atol=1e-14)
    assert torch.allclose(mm.log_space_gradient(p, X, v, y, W), q.grad, rtol=1e-10, atol=1e-14)
    scaled, shift = mm.log_space_gradient(p, X, v, y, W, return_log_scale=True)
    assert torch.allclose(scaled * np.exp(shift), q.grad, rtol=1e-10, atol=1e-14)


def test_textbook_loses_direction_log_space_keeps_it():
    X, v, y, W = mm.official_single_input()
    p_mm = mm.svm_direction(X, W, [0])
    p = torch.from_numpy(200 * p_mm / np.linalg.norm(p_mm))
    p[1] += 0.05  # off the SVM direction: the gradient must point back
    # the exact gradient, in log space: a pair (opt, t) pulls along W^T (x_opt - x_t)
    stable, shift = mm.log_space_gradient(p, X, v, y, W, return_log_scale=True)
    assert shift < -100  # the gradient's norm is e^{shift}: far below float64's epsilon
    direction = stable / stable.norm()
    # reference: the pair sum at higher precision, by shifting the logits first (exact)
    expected = -(W.T @ (X[0, 0] - X[0, 2]))  # the support token dominates
    assert float(direction @ expected / expected.norm()) > 0.99
    textbook = mm.textbook_gradient(p, X, v, y, W)
    if float(textbook.norm()) > 0:
        cos = float(textbook @ direction / textbook.norm())
        assert cos < 0.9  # the textbook sum lost the pair structure


def test_svm_kkt_conditions():
    X, v, y, W = mm.official_single_input()
    opt = mm.optimal_tokens(X, v, y)
    p_mm = mm.svm_direction(X, W, opt)
    A, pairs = mm.svm_constraints(X, W, opt)
    margins = A @ p_mm
    assert margins.min() >= 1 - 1e-8  # primal feasibility
    active = margins <= 1 + 1e-6
    # stationarity: p_mm = sum of nonnegative multipliers times the active rows
    lam, *_ = np.linalg.lstsq(A[active].T, p_mm, rcond=None)
    assert np.all(lam >= -1e-8)
    assert np.allclose(A[active].T @ lam, p_mm, atol=1e-8)
    support = mm.svm_support(X, W, opt, p_mm)
    assert support.tolist() == [[False, False, True]]


def test_svm_infeasible_and_bad_arguments():
    X = torch.zeros(1, 2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="infeasible"):
        mm.svm_direction(X, torch.eye(2, dtype=torch.float64), [0])
    with pytest.raises(ValueError, match="X must have 3"):
        mm.token_scores(torch.zeros(2, 2), torch.zeros(2), torch.ones(2))
    X, v, y, W = mm.official_single_input()
    with pytest.raises(ValueError, match="y must hold labels"):
        mm.token_scores(X, v, torch.tensor([0.5]))
    with pytest.raises(ValueError, match="gradient must be"):
        mm.train_prompt(X, v, y, W, steps=2, lr=0.1, gradient="exact")
    with pytest.raises(ValueError, match="lr"):
        mm.train_prompt(X, v, y, W, steps=2, lr=-0.1)
    with pytest.raises(ValueError, match="opt"):
        mm.svm_direction(X, W, [0, 1])
    with pytest.raises(ValueError, match="norm"):
        mm.matrix_svm(X, torch.ones(1, 3), [0], norm="spectral")
    with pytest.raises(TypeError, match="p must be"):
        mm.prompt_attention(X, v, W, [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="tied"):
        mm.optimal_tokens(torch.ones(1, 2, 3), v, y)


def test_normalised_gd_converges_to_svm():
    X, v, y, W = mm.official_single_input()
    p_mm = mm.svm_direction(X, W, [0])
    run = mm.train_prompt(X, v, y, W, steps=1000, lr=0.1, record=[300, 1000])
    err = mm.direction_error(run.p, p_mm)
    assert err[1] < 5e-4 and err[1] < err[0] / 5
    bad = mm.train_prompt(X, v, y, W, steps=1000, lr=0.1, gradient="textbook", record=[1000])
    assert mm.direction_error(bad.p, p_mm)[0] > 0.1


def test_matrix_svm_norms():
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(2, 3, 2, generator=gen, dtype=torch.float64)
    Z = torch.randn(2, 2, generator=gen, dtype=torch.float64)
    W_f = mm.matrix_svm(X, Z, [0, 1], "fro")
    W_n = mm.matrix_svm(X, Z, [0, 1], "nuc")
    for W in (W_f, W_n):
        for i, o in enumerate([0, 1]):
            for t in range(3):
                if t != o:
                    assert (X[i, o] - X[i, t]).numpy() @ W @ Z[i].numpy() >= 1 - 1e-6
    assert np.linalg.norm(W_f) <= np.linalg.norm(W_n) + 1e-6
    assert np.linalg.norm(W_n, "nuc") <= np.linalg.norm(W_f, "nuc") + 1e-6


def test_train_attention_matrix_shapes_and_direction():
    X, v, y, Z = mm.official_two_sequences()
    run = mm.train_attention_matrix(X, v, y, Z, steps=300, lr=0.1, record=[0, 300])
    assert run.W.shape == (2, 2, 2) and np.all(run.W[0] == 0)
    W_f = mm.matrix_svm(X, Z, mm.optimal_tokens(X, v, y), "fro")
    cos = (run.W[1] * W_f).sum() / np.linalg.norm(run.W[1]) / np.linalg.norm(W_f)
    assert cos > 0.95


def test_one_hot_joint_direction_and_law():
    run = mm.train_one_hot_joint(3, steps=200, lr=0.2)
    p_mm = mm.svm_direction(
        torch.eye(4, dtype=torch.float64)[None], torch.eye(4, dtype=torch.float64), [0]
    )
    assert np.allclose(p_mm, [0.75, -0.25, -0.25, -0.25], atol=1e-8)
    assert mm.direction_error(run.p[2:], p_mm).max() < 1e-12
    frozen = mm.train_one_hot_joint(3, steps=5, lr=0.2, train_background=False)
    assert np.all(frozen.p[:, 1:] == 0) and frozen.p[-1, 0] > 0
    with pytest.raises(ValueError, match="n_background"):
        mm.train_one_hot_joint(0, steps=2, lr=0.1)


def test_loglog_slope_and_direction_error():
    x = np.array([1.0, 10.0, 100.0])
    assert abs(mm.loglog_slope(x, 3 / x**2) + 2) < 1e-12
    with pytest.raises(ValueError, match="positive"):
        mm.loglog_slope(x, -x)
    assert abs(mm.direction_error([1.0, 0.0], [2.0, 0.0])[0]) < 1e-15
