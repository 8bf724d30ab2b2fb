"""Each chapter-8 check passes the reference, says "to do" for an unimplemented stub, accepts
other correct forms, and fails plausible wrong answers with a hint that points at the mistake;
none of them raises."""

from __future__ import annotations

import numpy as np
import torch

from course_lib import checks
from course_lib import max_margin as mm
from course_lib.checks import solutions


def stub(*args, **kwargs):
    raise NotImplementedError


def _autograd(p, X, v, y, W=None):
    p = p.detach().clone().requires_grad_(True)
    mm.prompt_loss(p, X, v, y, W).backward()
    return p.grad


def _pairs_all_ordered(p, X, v, y, W=None, halve=True):
    """A student's pair form over all ordered pairs, with explicit loops."""
    W = torch.eye(X.shape[2], dtype=torch.float64) if W is None else W
    total = torch.zeros(X.shape[2], dtype=torch.float64)
    for i in range(X.shape[0]):
        z = X[i] @ (W @ p)
        log_a = z - torch.logsumexp(z, dim=0)
        g = y[i] * (X[i] @ v)
        f = (torch.exp(log_a) * g).sum()
        dloss = -torch.sigmoid(-y[i] * 0 - f)
        for t in range(X.shape[1]):
            for u in range(X.shape[1]):
                w = torch.exp(log_a[t] + log_a[u])
                total += dloss * w * (g[t] - g[u]) * (X[i, t] - X[i, u])
    return W.T @ total / X.shape[0] / (2 if halve else 1)


def test_log_space_gradient_check(run_check):
    ok, out = run_check(checks.check_log_space_gradient, mm.log_space_gradient)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_log_space_gradient, stub)
    assert not ok and "[to do]" in out
    # another correct form: loops over all ordered pairs, halved
    ok, out = run_check(checks.check_log_space_gradient, _pairs_all_ordered)
    assert ok, out
    # a numpy return is accepted too
    ok, out = run_check(
        checks.check_log_space_gradient,
        lambda *a: mm.log_space_gradient(*a).numpy(),
    )
    assert ok, out
    cases = {
        "textbook sum": mm.textbook_gradient,
        "textbook sum ": _autograd,  # autograd: the same cancellation, the same hint
        "sign is flipped": lambda *a: -mm.log_space_gradient(*a),
        "divide by n": lambda *a: 3 * mm.log_space_gradient(*a),
        "counted twice": lambda *a: _pairs_all_ordered(*a, halve=False),
        "multiply by W^T": lambda p, X, v, y, W=None: torch.linalg.solve(
            W.T, mm.log_space_gradient(p, X, v, y, W)
        ),
        "shape": lambda *a: mm.log_space_gradient(*a)[:2],
    }
    for hint, wrong in cases.items():
        ok, out = run_check(checks.check_log_space_gradient, wrong)
        assert not ok and "[wrong]" in out and hint.strip() in out, (hint, out)
    ok, out = run_check(checks.check_log_space_gradient, lambda *a: 1 / 0)
    assert not ok and "[error]" in out


def test_svm_two_constraints_check(run_check):
    ok, out = run_check(checks.check_svm_two_constraints, solutions.svm_two_constraints)
    assert ok and "[passed]" in out
    ok, out = run_check(checks.check_svm_two_constraints, stub)
    assert not ok and "[to do]" in out

    def via_slsqp(a1, a2):  # another correct form: the general solver
        X = torch.cat([torch.zeros(1, len(a1), dtype=torch.float64), -torch.stack([a1, a2])])
        return torch.from_numpy(mm.svm_direction(X[None], torch.eye(len(a1)), [0]))

    ok, out = run_check(checks.check_svm_two_constraints, via_slsqp)
    assert ok, out

    def both_active(a1, a2):
        A = torch.stack([a1, a2])
        return A.T @ torch.linalg.solve(A @ A.T, torch.ones(2, dtype=torch.float64))

    def first_alone(a1, a2):
        return a1 / (a1 @ a1)

    def unit_norm(a1, a2):
        return a1 / a1.norm()

    def feasible_not_shortest(a1, a2):
        return 2 * solutions.svm_two_constraints(a1, a2)

    cases = {
        "one constraint is slack": both_active,
        "violates a constraint": first_alone,
        "divide a_k by its squared norm": unit_norm,
        "feasible but not the shortest": feasible_not_shortest,
        "shape": lambda a1, a2: np.zeros(5),
    }
    for hint, wrong in cases.items():
        ok, out = run_check(checks.check_svm_two_constraints, wrong)
        assert not ok and "[wrong]" in out and hint in out, (hint, out)


def test_svm_two_constraints_matches_slsqp():
    gen = torch.Generator().manual_seed(5)
    for _ in range(10):
        a = torch.randn(2, 3, generator=gen, dtype=torch.float64)
        X = torch.cat([torch.zeros(1, 3, dtype=torch.float64), -a])[None]
        ref = mm.svm_direction(X, torch.eye(3, dtype=torch.float64), [0])
        assert np.allclose(solutions.svm_two_constraints(a[0], a[1]).numpy(), ref, atol=1e-6)
