"""Which tokens win, and in which direction: prompt attention and its max-margin SVM (chapter 8).

Tarzanagh, Li, Zhang and Oymak (2023) study prompt attention

    f(X) = v^T X^T softmax(X W p)                                             (8.1)

on sequences ``X`` of ``T`` tokens in ``R^d`` with a label ``y = +-1``, the logistic loss
``l(u) = log(1 + e^{-u})`` on ``y f(X)``, and gradient descent on the prompt ``p``; the token
``x_{i,t}`` has the score ``g_{i,t} = y_i v^T x_{i,t}`` and the logit ``z_{i,t} = x_{i,t}^T W p``.
Their hard-margin SVM for ``p`` separates each sequence's selected token from the others:

    p_mm = argmin ||p||^2  subject to  (x_{i,opt} - x_{i,t})^T W p >= 1  for t != opt_i.   (8.2)

``svm_direction`` solves (8.2) with SciPy's SLSQP (the official code uses cvxopt).

The gradient of the mean loss in ``p`` is, for each sequence, the textbook sum over tokens

    sum_t a_t (g_t - f) W^T x_t,    f = sum_u a_u g_u,                         (8.3)

times ``l'(f) / n``.  Written over pairs of tokens (the course's rewriting, using
``sum_u a_u = 1``) it is

    (1/2) sum_{t,u} a_t a_u (g_t - g_u) W^T (x_t - x_u),                         (8.4)

and ``a_t a_u = exp(z_t + z_u - 2 logsumexp(z))`` can be summed in log space: no difference of
two nearly equal numbers (``g_opt - f`` in (8.3)) and no underflow of a tiny weight that the
direction needs.  ``textbook_gradient`` is (8.3); ``log_space_gradient`` is (8.4), which returns
the gradient as a scaled vector and the logarithm of its scale, so that normalised gradient
descent keeps the direction even when the gradient's norm is below the smallest float.

The same pairs give the gradient in a matrix ``W`` whose logits are ``z_{i,t} = x_{i,t}^T W q_i``
with a query ``q_i`` per sequence (Tarzanagh, Li, Thrampoulidis, Oymak 2023):
``train_attention_matrix`` trains ``W`` directly or factorised as ``W = K Q^T``, and
``matrix_svm`` solves the matching SVMs, minimising the Frobenius norm or the nuclear norm of
``W`` under the constraints ``(x_{i,opt} - x_{i,t})^T W q_i >= 1``.

Arrays are float64 torch tensors on the CPU: ``X`` has shape ``(n, T, d)``, ``v`` and ``p``
``(d,)``, ``y`` ``(n,)``, ``W`` ``(d, d)``, the queries ``(n, d)``.  Inputs on another device
are copied to the CPU: the problems are tiny, and the SVMs are solved by SciPy.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from scipy.optimize import minimize

from ._validate import check_int, check_positive
from .progress import progress_bar, show_loss

__all__ = [
    "prompt_attention",
    "token_scores",
    "optimal_tokens",
    "prompt_loss",
    "textbook_gradient",
    "log_space_gradient",
    "svm_direction",
    "svm_constraints",
    "svm_support",
    "PromptRun",
    "train_prompt",
    "matrix_svm",
    "MatrixRun",
    "train_attention_matrix",
    "direction_error",
    "loglog_slope",
    "official_single_input",
    "official_two_sequences",
    "OneHotRun",
    "train_one_hot_joint",
]


# --------------------------------------------------------------------------- argument checks


def _tensor(value, name: str, dim: int) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or NumPy array, got {type(value).__name__}")
    if value.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimension(s), got shape {tuple(value.shape)}")
    if not torch.is_floating_point(value):
        value = value.double()
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} must be finite")
    return value.to("cpu", torch.float64)  # the module computes on the CPU (docstring above)


def _problem(X, v, y, W):
    X = _tensor(X, "X", 3)
    n, T, d = X.shape
    if T < 2:
        raise ValueError(f"X must hold at least 2 tokens per sequence, got T = {T}")
    v = _tensor(v, "v", 1)
    if v.shape[0] != d:
        raise ValueError(f"v must have shape ({d},), got {tuple(v.shape)}")
    y = _tensor(y, "y", 1)
    if y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},), got {tuple(y.shape)}")
    if not bool(((y == 1) | (y == -1)).all()):
        raise ValueError("y must hold labels +1 or -1")
    if W is None:
        W = torch.eye(d, dtype=torch.float64)
    W = _tensor(W, "W", 2)
    if tuple(W.shape) != (d, d):
        raise ValueError(f"W must have shape ({d}, {d}), got {tuple(W.shape)}")
    return X, v, y, W


def _vector(p, d: int, name: str = "p") -> torch.Tensor:
    p = _tensor(p, name, 1)
    if p.shape[0] != d:
        raise ValueError(f"{name} must have shape ({d},), got {tuple(p.shape)}")
    return p


def _queries(queries, n: int, d: int) -> torch.Tensor:
    queries = _tensor(queries, "queries", 2)
    if tuple(queries.shape) != (n, d):
        raise ValueError(f"queries must have shape ({n}, {d}), got {tuple(queries.shape)}")
    return queries


# --------------------------------------------------------------------------- the model (8.1)


def token_scores(X, v, y) -> torch.Tensor:
    """Chapter 8: the scores ``g_{i,t} = y_i v^T x_{i,t}``, shape ``(n, T)``."""
    X, v, y, _ = _problem(X, v, y, None)
    return y[:, None] * (X @ v)


def optimal_tokens(X, v, y) -> torch.Tensor:
    """Chapter 8: each sequence's token of largest score ``g_{i,t}`` (long tensor, shape ``(n,)``).

    Raises ``ValueError`` when a sequence has two tokens tied for the largest score.
    """
    g = token_scores(X, v, y)
    top = torch.topk(g, 2, dim=1).values
    if bool((top[:, 0] - top[:, 1] <= 1e-12).any()):
        raise ValueError("X, v, y: some sequence has two tokens tied for the largest score")
    return g.argmax(dim=1)


def prompt_attention(X, v, W, p) -> torch.Tensor:
    """Chapter 8, (8.1): ``f(X_i) = v^T X_i^T softmax(X_i W p)`` per sequence, shape ``(n,)``."""
    X, v, _, W = _problem(X, v, torch.ones(_tensor(X, "X", 3).shape[0]), W)
    p = _vector(p, X.shape[2])
    a = torch.softmax(X @ (W @ p), dim=1)
    return (a * (X @ v)).sum(dim=1)


def prompt_loss(p, X, v, y, W=None) -> torch.Tensor:
    """Chapter 8: mean logistic loss ``log(1 + exp(-y_i f(X_i)))`` of (8.1), a 0-dim tensor."""
    X, v, y, W = _problem(X, v, y, W)
    return torch.nn.functional.softplus(-y * prompt_attention(X, v, W, p)).mean()


# --------------------------------------------------------------------------- the gradients


def textbook_gradient(p, X, v, y, W=None) -> torch.Tensor:
    """Chapter 8, (8.3): the gradient of ``prompt_loss`` in ``p`` as the sum over tokens
    ``(1/n) sum_i l'_i W^T sum_t a_t (g_t - f_i) x_t`` with ``g_t = y_i v^T x_t``, shape ``(d,)``.

    Accurate while no weight is tiny; at large ``||p||`` the difference ``g_opt - f`` is lost
    to cancellation and the tiny weights underflow (chapter 8 shows the direction it loses).
    """
    X, v, y, W = _problem(X, v, y, W)
    p = _vector(p, X.shape[2])
    a = torch.softmax(X @ (W @ p), dim=1)
    g = y[:, None] * (X @ v)
    f = (a * g).sum(dim=1)
    dloss = -torch.sigmoid(-f)  # l'(u) at u = y f, with l(u) = log(1 + e^{-u})
    per_token = dloss[:, None] * a * (g - f[:, None])
    return W.T @ (per_token[:, :, None] * X).sum(dim=(0, 1)) / X.shape[0]


def _pair_terms(z, g, X, dloss_log):
    """Log-magnitudes and signs of the pair terms of (8.4), and the token differences."""
    n, T, _ = X.shape
    t_idx, u_idx = torch.triu_indices(T, T, offset=1)
    lse = torch.logsumexp(z, dim=1, keepdim=True)
    log_a = z - lse
    gap = g[:, t_idx] - g[:, u_idx]
    log_mag = dloss_log[:, None] + log_a[:, t_idx] + log_a[:, u_idx] + torch.log(gap.abs())
    # l' < 0, so each term's sign is minus the sign of g_t - g_u
    sign = -torch.sign(gap)
    diff = X[:, t_idx, :] - X[:, u_idx, :]
    return log_mag, sign, diff


def _pair_sum(log_mag, sign, outer):
    """sum of sign * exp(log_mag) * outer over all pairs, as (scaled sum, log of the scale)."""
    finite = torch.isfinite(log_mag)
    if not bool(finite.any()):
        return torch.zeros(outer.shape[2:], dtype=torch.float64), -math.inf
    shift = float(log_mag[finite].max())
    weights = torch.where(finite, sign * torch.exp(log_mag - shift), torch.zeros_like(log_mag))
    scaled = torch.einsum("ip,ip...->...", weights, outer)
    return scaled, shift


def _log_dloss(f_signed):
    # log |l'(u)| = log sigmoid(-u) = -softplus(u)
    return -torch.nn.functional.softplus(f_signed)


def _stable_f(z, g):
    # f = sum_t a_t g_t, with the weights from a log-sum-exp
    return (torch.softmax(z, dim=1) * g).sum(dim=1)


def log_space_gradient(p, X, v, y, W=None, *, return_log_scale: bool = False):
    """Chapter 8, (8.4): the gradient of ``prompt_loss`` in ``p`` summed over pairs of tokens,
    ``(1/n) sum_i l'_i W^T (1/2) sum_{t,u} a_t a_u (g_t - g_u) (x_t - x_u)``, in log space.

    Each pair's weight ``|l'_i| a_t a_u |g_t - g_u|`` is formed as the exponential of a sum of
    logarithms (``log a_t = z_t - logsumexp(z)``), and all terms are scaled by the largest before
    they are added.  With ``return_log_scale=True`` the function returns ``(scaled, log_scale)``
    with gradient ``= exp(log_scale) * scaled`` and ``max |term| = 1`` in ``scaled``: the
    direction survives even when the gradient's norm underflows.  Otherwise it returns the
    gradient, shape ``(d,)`` (which may then be exactly zero).

    Parameters
    ----------
    p : (d,) the prompt.  X : (n, T, d) the sequences.  v : (d,) the value vector.
    y : (n,) labels +-1.  W : (d, d) the key-query matrix (identity when None).
    return_log_scale : bool, see above.

    Returns
    -------
    The gradient ``(d,)``, or ``(scaled (d,), log_scale float)``.
    """
    X, v, y, W = _problem(X, v, y, W)
    p = _vector(p, X.shape[2])
    z = X @ (W @ p)
    g = y[:, None] * (X @ v)
    dloss_log = _log_dloss(_stable_f(z, g)) - math.log(X.shape[0])
    log_mag, sign, diff = _pair_terms(z, g, X, dloss_log)
    scaled, shift = _pair_sum(log_mag, sign, diff)
    scaled = W.T @ scaled
    if return_log_scale:
        return scaled, shift
    return scaled * math.exp(shift) if shift > -math.inf else scaled


# --------------------------------------------------------------------------- the SVM (8.2)


def svm_constraints(X, W, opt) -> tuple[np.ndarray, np.ndarray]:
    """Chapter 8: the rows ``A`` of (8.2)'s constraints ``A p >= 1``, with their (i, t) labels.

    Row ``k`` is ``W^T (x_{i,opt_i} - x_{i,t})`` for the ``k``-th pair ``(i, t)``, ``t != opt_i``.
    Returns ``(A, pairs)`` with shapes ``(n (T - 1), d)`` and ``(n (T - 1), 2)``.
    """
    X = _tensor(X, "X", 3)
    n, T, d = X.shape
    W = _tensor(W, "W", 2)
    if tuple(W.shape) != (d, d):
        raise ValueError(f"W must have shape ({d}, {d}), got {tuple(W.shape)}")
    opt = _opt(opt, n, T)
    rows, pairs = [], []
    for i in range(n):
        for t in range(T):
            if t != opt[i]:
                rows.append((W.T @ (X[i, opt[i]] - X[i, t])).numpy())
                pairs.append((i, t))
    return np.array(rows), np.array(pairs, dtype=int)


def _opt(opt, n, T):
    if isinstance(opt, torch.Tensor):
        opt = opt.tolist()
    opt = [check_int(int(o) if isinstance(o, np.integer) else o, "opt", 0, T - 1) for o in opt]
    if len(opt) != n:
        raise ValueError(f"opt must name one token per sequence ({n}), got {len(opt)}")
    return opt


def svm_direction(X, W, opt) -> np.ndarray:
    """Chapter 8, (8.2): the hard-margin SVM ``min ||p||^2`` s.t.
    ``(x_{i,opt} - x_{i,t})^T W p >= 1``
    for every sequence ``i`` and token ``t != opt_i``.

    Solved with SciPy's SLSQP from the least-squares point of the constraints; ``X`` is
    ``(n, T, d)``, ``W`` is ``(d, d)``, ``opt`` names one token per sequence.  Returns ``p_mm``,
    shape ``(d,)``.  Raises ``ValueError`` when the problem is infeasible (no ``p`` separates).
    """
    A, _ = svm_constraints(X, W, opt)
    return _min_norm_point(A, "X, W, opt: the SVM (8.2) is infeasible: no p separates the tokens")


def _min_norm_point(A: np.ndarray, infeasible: str, scale_start: bool = True) -> np.ndarray:
    """``argmin ||x||^2`` s.t. ``A x >= 1`` by SLSQP from the constraints' least-squares point,
    scaled up to the feasible side when ``scale_start`` (the matrix SVM converges only from the
    unscaled point: tests/test_max_margin.py)."""
    start = np.linalg.lstsq(A, np.ones(len(A)), rcond=None)[0]
    if scale_start and np.min(A @ start) < 1:
        start = start / max(np.min(A @ start), 1e-3)
    result = minimize(
        lambda x: x @ x,
        start,
        jac=lambda x: 2 * x,
        method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda x: A @ x - 1, "jac": lambda x: A}],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    if not result.success or np.min(A @ result.x) < 1 - 1e-6:
        raise ValueError(infeasible)
    return result.x


def svm_support(X, W, opt, p_mm, tol: float = 1e-6) -> torch.Tensor:
    """Chapter 8: boolean ``(n, T)`` mask of the SVM's support, the non-selected tokens whose
    constraint in (8.2) is active: ``(x_{i,opt} - x_{i,t})^T W p_mm <= 1 + tol``."""
    tol = check_positive(tol, "tol")
    A, pairs = svm_constraints(X, W, opt)
    p_mm = np.asarray(p_mm, dtype=float)
    if p_mm.shape != (A.shape[1],):
        raise ValueError(f"p_mm must have shape ({A.shape[1]},), got {p_mm.shape}")
    X = _tensor(X, "X", 3)
    mask = torch.zeros(X.shape[:2], dtype=torch.bool)
    for (i, t), margin in zip(pairs, A @ p_mm):
        mask[i, t] = bool(margin <= 1 + tol)
    return mask


# --------------------------------------------------------------------------- training p


class PromptRun(NamedTuple):
    """One training run of the prompt: the recorded steps and prompts (``(k,)`` and ``(k, d)``)."""

    steps: np.ndarray
    p: np.ndarray


GRADIENTS = ("log_space", "textbook", "autograd")


def _recorded_steps(record, steps: int) -> set[int]:
    """The steps a run keeps: ``record`` (each checked in 0..steps), or every step if None."""
    if record is None:
        return set(range(steps + 1))
    return {check_int(int(k), "record", 0, steps) for k in record}


def _autograd_gradient(p, X, v, y, W):
    p = p.detach().clone().requires_grad_(True)
    prompt_loss(p, X, v, y, W).backward()
    return p.grad


def train_prompt(
    X,
    v,
    y,
    W=None,
    *,
    steps: int,
    lr: float,
    normalised: bool = True,
    gradient: str = "log_space",
    p0=None,
    record=None,
) -> PromptRun:
    """Chapter 8: gradient descent on the prompt ``p`` of (8.1), ``v`` and ``W`` fixed.

    ``normalised=True`` steps ``p <- p - lr * grad / ||grad||`` (the official code's normalised
    gradient descent), ``False`` steps ``p <- p - lr * grad``.  ``gradient`` is ``"log_space"``
    (8.4), ``"textbook"`` (8.3) or ``"autograd"`` (PyTorch's).  ``p0`` is the start (zeros by
    default); ``record`` lists the step counts at which ``p`` is kept (default: every step).
    A step whose gradient is exactly zero (underflow) leaves ``p`` where it is.

    Parameters
    ----------
    X, v, y, W : the problem, shapes ``(n, T, d)``, ``(d,)``, ``(n,)``, ``(d, d)`` or None.
    steps : int, lr : float, normalised : bool, gradient : str, p0 : ``(d,)`` or None,
    record : iterable of step counts or None, as above.

    Returns
    -------
    PromptRun with ``steps`` ``(k,)`` and ``p`` ``(k, d)``.
    """
    X, v, y, W = _problem(X, v, y, W)
    steps = check_int(steps, "steps", 1)
    lr = check_positive(lr, "lr")
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
    d = X.shape[2]
    p = torch.zeros(d, dtype=torch.float64) if p0 is None else _vector(p0, d, "p0").clone()
    keep = _recorded_steps(record, steps)
    rec_steps, rec_p = [], []
    bar = progress_bar(steps, desc="train_prompt")
    for k in range(steps + 1):
        if k in keep:
            rec_steps.append(k)
            rec_p.append(p.numpy().copy())
        if k == steps:
            bar.close()
            break
        bar.update()
        show_loss(bar, lambda: prompt_loss(p, X, v, y, W))  # read at most once a second
        if gradient == "log_space" and normalised:
            grad, _ = log_space_gradient(p, X, v, y, W, return_log_scale=True)
        elif gradient == "log_space":
            grad = log_space_gradient(p, X, v, y, W)
        elif gradient == "textbook":
            grad = textbook_gradient(p, X, v, y, W)
        else:
            grad = _autograd_gradient(p, X, v, y, W)
        norm = float(torch.linalg.vector_norm(grad))
        if norm == 0.0 or not math.isfinite(norm):
            continue
        p = p - lr * (grad / norm if normalised else grad)
    return PromptRun(np.array(rec_steps), np.array(rec_p))


def direction_error(p, p_mm) -> np.ndarray:
    """Chapter 8: ``1 - cos(p, p_mm)`` for each row of ``p`` (shape ``(k, d)`` or ``(d,)``)."""
    p = np.atleast_2d(np.asarray(p, dtype=float))
    p_mm = np.asarray(p_mm, dtype=float).ravel()
    if p.shape[1] != p_mm.shape[0]:
        raise ValueError(
            f"p and p_mm must have the same length, got {p.shape[1]} and {p_mm.shape[0]}"
        )
    norms = np.linalg.norm(p, axis=1) * np.linalg.norm(p_mm)
    if np.any(norms == 0):
        raise ValueError("p and p_mm must be nonzero")
    return 1 - (p @ p_mm) / norms


def loglog_slope(x, y) -> float:
    """Chapter 8: least-squares slope of ``log y`` against ``log x`` (a power law's exponent)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError("x and y must be 1-d arrays of the same length >= 2")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be positive for a log-log slope")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# --------------------------------------------------------------------------- training W


def matrix_svm(
    X, queries, opt, norm: str = "fro", *, restarts: int = 8, seed: int = 0
) -> np.ndarray:
    """Chapter 8: the SVM for a matrix, ``min ||W||`` s.t. ``(x_{i,opt} - x_{i,t})^T W q_i >= 1``.

    ``norm="fro"`` minimises the Frobenius norm (a QP, SLSQP); ``norm="nuc"`` the nuclear norm,
    through its variational form ``||W||_* = min_{W = K Q^T} (||K||_F^2 + ||Q||_F^2) / 2``
    (smooth but not convex in ``K, Q``: SLSQP from ``restarts`` random starts, the best kept).
    ``X`` is ``(n, T, d)``, ``queries`` ``(n, d)``; returns ``W``, shape ``(d, d)``.

    Parameters
    ----------
    X : (n, T, d).  queries : (n, d).  opt : one token index per sequence.
    norm : "fro" or "nuc".  restarts : int.  seed : int, seeds the restarts.

    Returns
    -------
    ``W`` as a NumPy array ``(d, d)``.
    """
    X = _tensor(X, "X", 3)
    n, T, d = X.shape
    Z = _queries(queries, n, d).numpy()
    if norm not in ("fro", "nuc"):
        raise ValueError(f"norm must be 'fro' or 'nuc', got {norm!r}")
    restarts = check_int(restarts, "restarts", 1)
    rows = []
    for i, o in enumerate(_opt(opt, n, T)):
        for t in range(T):
            if t != o:
                rows.append(np.outer(X[i, o].numpy() - X[i, t].numpy(), Z[i]).ravel())
    A = np.array(rows)  # constraint k: <A_k, vec(W)> >= 1
    if norm == "fro":
        infeasible = "X, queries, opt: the SVM is infeasible"
        return _min_norm_point(A, infeasible, scale_start=False).reshape(d, d)
    rng = np.random.default_rng(seed)

    def w_of(kq):
        return kq[: d * d].reshape(d, d) @ kq[d * d :].reshape(d, d).T

    def cons(kq):
        return A @ w_of(kq).ravel() - 1

    best = None
    for _ in range(restarts):
        res = minimize(
            lambda kq: 0.5 * kq @ kq,
            rng.standard_normal(2 * d * d),
            jac=lambda kq: kq,
            method="SLSQP",
            constraints=[{"type": "ineq", "fun": cons}],
            options={"ftol": 1e-14, "maxiter": 1000},
        )
        if res.success and np.min(cons(res.x)) > -1e-6 and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        raise ValueError("X, queries, opt: the nuclear-norm SVM found no feasible point")
    return w_of(best.x)


class MatrixRun(NamedTuple):
    """One training run of the attention matrix: steps ``(k,)`` and matrices ``W`` ``(k, d, d)``."""

    steps: np.ndarray
    W: np.ndarray


def train_attention_matrix(
    X, v, y, queries, *, steps: int, lr: float, factorised: bool = False, seed: int = 0, record=None
) -> MatrixRun:
    """Chapter 8: normalised gradient descent on ``W`` with logits ``z_{i,t} = x_{i,t}^T W q_i``.

    ``factorised=False`` trains ``W`` from zero, ``W <- W - lr G / ||G||_F``; ``factorised=True``
    trains ``W = K Q^T`` with ``Q = 0`` and ``K`` small and random (seeded), each factor stepped
    along its own normalised gradient, as in the official code of Tarzanagh, Li, Thrampoulidis
    and Oymak (which also adds a 2.2e-16 weight decay; here the log-space gradient (8.4) keeps
    the direction instead).  ``record`` lists the steps kept (default every step).

    Parameters
    ----------
    X, v, y : the problem, ``(n, T, d)``, ``(d,)``, ``(n,)``.  queries : ``(n, d)``.
    steps : int.  lr : float.  factorised : bool.  seed : int (the start of ``K``).
    record : iterable of step counts or None.

    Returns
    -------
    MatrixRun with ``steps`` ``(k,)`` and ``W`` ``(k, d, d)``.
    """
    X, v, y, _ = _problem(X, v, y, None)
    n, T, d = X.shape
    Z = _queries(queries, n, d)
    steps = check_int(steps, "steps", 1)
    lr = check_positive(lr, "lr")
    keep = _recorded_steps(record, steps)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", 0))
    K = 0.1 * torch.randn(d, d, generator=gen, dtype=torch.float64)
    Q = torch.zeros(d, d, dtype=torch.float64)
    W = torch.zeros(d, d, dtype=torch.float64)
    g = y[:, None] * (X @ v)
    rec_steps, rec_W = [], []
    bar = progress_bar(steps, desc="train_attention_matrix")
    for k in range(steps + 1):
        current = K @ Q.T if factorised else W
        if k in keep:
            rec_steps.append(k)
            rec_W.append(current.numpy().copy())
        if k == steps:
            bar.close()
            break
        z = torch.einsum("itd,de,ie->it", X, current, Z)
        bar.update()
        # the loss of (8.1) with this W, computed only when the bar shows it (once a second)
        show_loss(bar, lambda: torch.nn.functional.softplus(-(z.softmax(1) * g).sum(1)).mean())
        dloss_log = _log_dloss(_stable_f(z, g)) - math.log(n)
        log_mag, sign, diff = _pair_terms(z, g, X, dloss_log)
        outer = diff[:, :, :, None] * Z[:, None, None, :]
        G, _ = _pair_sum(log_mag, sign, outer)  # dL/dW up to a positive scale
        if not factorised:
            W = W - lr * G / torch.linalg.matrix_norm(G)
            continue
        gK, gQ = G @ Q, G.T @ K
        for name, grad in (("K", gK), ("Q", gQ)):
            size = torch.linalg.matrix_norm(grad)
            if size > 0:
                if name == "K":
                    K = K - lr * grad / size
                else:
                    Q = Q - lr * grad / size
    return MatrixRun(np.array(rec_steps), np.array(rec_W))


# --------------------------------------------------------------------------- the official example


def official_single_input():
    """Chapter 8: the single-sequence example of the official code (``single_input_converge``).

    One sequence of three tokens in ``R^3``, label ``+1``, ``v = e_3`` (scores 1, 0.9, 0.9) and
    ``W = diag(1, 1, 0)``.  Returns ``(X, v, y, W)`` as float64 tensors of shapes
    ``(1, 3, 3)``, ``(3,)``, ``(1,)``, ``(3, 3)``.
    """
    X = torch.tensor([[[-0.1, 1.0, 1.0], [1.0, 0.0, 0.9], [0.0, 0.0, 0.9]]], dtype=torch.float64)
    v = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    y = torch.tensor([1.0], dtype=torch.float64)
    W = torch.diag(torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))
    return X, v, y, W


def official_two_sequences(seed: int = 1):
    """Chapter 8: data drawn by the recipe of the official code's ``TFasSVM/visualization``.

    Two sequences of three tokens in ``R^2``, label ``+1``: ``v`` a random unit vector, tokens
    ``0.3 N(0, I)`` shifted by ``(-1, 0)`` and ``(1, 0)``, a random unit query per sequence; drawn
    in that order from a torch generator seeded with ``seed`` (1 in the official code).
    Returns ``(X, v, y, queries)`` as float64 tensors ``(2, 3, 2)``, ``(2,)``, ``(2,)``, ``(2, 2)``.
    """
    gen = torch.Generator().manual_seed(check_int(seed, "seed", 0))
    v = torch.randn(2, generator=gen)
    v = v / v.norm()
    X = 0.3 * torch.randn((2, 3, 2), generator=gen)
    X[0] += torch.tensor([-1.0, 0.0])
    X[1] += torch.tensor([1.0, 0.0])
    Z = torch.randn((2, 2), generator=gen)
    Z = Z / Z.norm(dim=-1, keepdim=True)
    return X.double(), v.double(), torch.ones(2, dtype=torch.float64), Z.double()


# --------------------------------------------------------------------------- chapter 2's geometry


class OneHotRun(NamedTuple):
    """Joint training of the prompt and the selected token's value (one-hot tokens).

    ``steps`` ``(k,)``; ``p`` ``(k, 1 + n_background)`` (coordinate 0 is the selected token);
    ``value`` ``(k,)`` the selected token's value ``v_0``; ``theta`` ``(k,)`` the logit gap
    ``p_0 - mean(p_background)``.
    """

    steps: np.ndarray
    p: np.ndarray
    value: np.ndarray
    theta: np.ndarray


def train_one_hot_joint(
    n_background: int, *, steps: int, lr: float, record=None, train_background: bool = True
) -> OneHotRun:
    """Chapter 8: Lu, Mao and Nayak's geometry as prompt attention (the course's construction).

    One sequence of one-hot tokens (token 0 selected, ``n_background`` background tokens), label
    ``+1``, ``W = I``, so the logits are the coordinates of ``p``.  Plain gradient descent with
    step ``lr`` on the logistic loss trains every coordinate of ``p`` (the background's too) and
    the selected token's value ``v_0``; the background's values stay 0.  Starts at ``p = 0``,
    ``v_0 = 0``.  ``record`` lists the steps kept (default every step).
    ``train_background=False`` freezes the background's logits at 0, as chapter 2 does.
    """
    n = check_int(n_background, "n_background", 1)
    steps = check_int(steps, "steps", 1)
    lr = check_positive(lr, "lr")
    keep = _recorded_steps(record, steps)
    p = torch.zeros(n + 1, dtype=torch.float64, requires_grad=True)
    value = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    out = {"steps": [], "p": [], "value": []}
    bar = progress_bar(steps, desc="train_one_hot_joint")
    for k in range(steps + 1):
        if k in keep:
            out["steps"].append(k)
            out["p"].append(p.detach().numpy().copy())
            out["value"].append(float(value.detach()[0]))
        if k == steps:
            bar.close()
            break
        a = torch.softmax(p, dim=0)
        loss = torch.nn.functional.softplus(-a[0] * value[0])
        bar.update()
        show_loss(bar, loss)
        gp, gv = torch.autograd.grad(loss, (p, value))
        if not train_background:
            gp[1:] = 0.0
        with torch.no_grad():
            p -= lr * gp
            value -= lr * gv
    P = np.array(out["p"])
    return OneHotRun(
        np.array(out["steps"]), P, np.array(out["value"]), P[:, 0] - P[:, 1:].mean(axis=1)
    )
