"""Two laws of later models beside the course's one (chapter 7, "the law in later models").

* JoMA (Tian et al. 2024): ``joma_run`` re-implements, in the course's words, the setting of the
  official figure script ``ssl/real-dataset/joma/draw_figure_2_3.py`` (facebookresearch/
  luckmatters): contextual tokens drawn by class from ``X`` (``joma_tokens``), attention
  ``b_l ~ x_l exp(z_l / T)``, a residual token, a linear read-out ``W`` trained with
  cross-entropy by SGD, and the script's predicted logits
  ``z_hat = (||W_l||^2 - xbar_l ||W||^2) / (2T) + const``; ``normalised_correlation`` and
  ``least_squares_slope`` compare the two.
* The special case that matches chapter 2's geometry (the course's construction and
  derivation): class ``k`` holds its own token ``k`` with mass ``x_k`` and one common token
  whose logit stays 0 and whose feature is 0 (``joma_special_case``).  Then
  ``z_k' = (1 - b_k) d(||W_k||^2)/dt / (2T)`` with ``b_k = a(z_k / T)`` against
  ``n_k = (1 - x_k) / x_k``, and the lemma gives ``T Psi_{n_k}(z_k / T) - ||W_k||^2 / (2T)``
  conserved.
* A law for any data (Kunin et al. 2021; Du et al. 2018): in a two-layer ReLU net without
  biases, each hidden unit's ``||w_in||^2 - ||w_out||^2`` is conserved by gradient flow
  (``unit_balance``, ``train_two_layer_relu``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._validate import check_int, check_positive
from .progress import progress_bar, show_loss

__all__ = [
    "normalised_correlation",
    "least_squares_slope",
    "joma_tokens",
    "JomaRun",
    "joma_run",
    "JomaSpecialRun",
    "joma_special_case",
    "unit_balance",
    "TwoLayerRun",
    "train_two_layer_relu",
]


def _vector(value, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() != 1 or value.numel() < 2:
        raise TypeError(f"{name} must be a 1-D torch.Tensor of at least 2 values")
    return value.double()


def normalised_correlation(actual, predicted) -> float:
    """Cosine of the two centred vectors (the official script's ``norm_corr``; chapter 7).

    >>> normalised_correlation(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 7.0]))
    0.9933...
    """
    a = _vector(actual, "actual")
    b = _vector(predicted, "predicted")
    if a.shape != b.shape:
        raise ValueError(f"actual and predicted must have one shape, got {a.shape} and {b.shape}")
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (a.norm() * b.norm()))


def least_squares_slope(actual, predicted) -> float:
    """Slope of the least-squares line of ``actual`` on ``predicted`` (chapter 7): 1 when the
    prediction has the right scale, whatever its offset.

    >>> least_squares_slope(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 2.0, 4.0]))
    0.5
    """
    a = _vector(actual, "actual")
    b = _vector(predicted, "predicted")
    if a.shape != b.shape:
        raise ValueError(f"actual and predicted must have one shape, got {a.shape} and {b.shape}")
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (b @ b))


def joma_tokens(n_distinct: int = 10, n_common: int = 10, n_classes: int = 20, seed: int = 0):
    """``X`` ``(n_distinct + n_common, n_classes)``: column ``k`` is the distribution of
    contextual tokens given class ``k`` (chapter 7).  As in the official script: uniform noise
    in ``[0, 1/2)``, the distinct tokens replaced by a Gaussian bump that moves with ``k``
    (width 30 in squared index), each column normalised to sum 1.

    >>> joma_tokens().sum(0).allclose(torch.ones(20, dtype=torch.float64))
    True
    """
    n_distinct = check_int(n_distinct, "n_distinct", minimum=1)
    n_common = check_int(n_common, "n_common", minimum=0)
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    X = torch.rand(n_distinct + n_common, n_classes, generator=gen, dtype=torch.float64) / 2
    idx = torch.arange(n_distinct, dtype=torch.float64)
    for k in range(n_classes):
        X[:n_distinct, k] = (-((idx - k / n_classes * n_distinct) ** 2) / 30).exp()
    return X / X.sum(0, keepdim=True)


def _check_joma_run_args(X, steps, lr, temperature, width, every, seed):
    # joma_run's arguments, checked in this order; returns them converted (X in float64)
    if not isinstance(X, torch.Tensor) or X.dim() != 2:
        raise TypeError("X must be a 2-D torch.Tensor (tokens, classes)")
    X = X.double()
    steps = check_int(steps, "steps", minimum=1)
    lr = check_positive(lr, "lr")
    T = check_positive(temperature, "temperature")
    width = check_int(width, "width", minimum=X.shape[0] + 1)
    every = check_int(every, "every", minimum=1)
    return X, steps, lr, T, width, every, check_int(seed, "seed", minimum=0)


def _check_joma_special_args(masses, steps, lr, temperature, every, seed):
    # joma_special_case's arguments, checked in this order; returns them converted
    if not isinstance(masses, torch.Tensor) or masses.dim() != 1 or masses.numel() < 2:
        raise TypeError("masses must be a 1-D torch.Tensor of at least 2 values")
    x = masses.double()
    if not bool(((x > 0) & (x < 1)).all()):
        raise ValueError("masses must lie in (0, 1)")
    steps = check_int(steps, "steps", minimum=1)
    lr = check_positive(lr, "lr")
    T = check_positive(temperature, "temperature")
    every = check_int(every, "every", minimum=1)
    return x, steps, lr, T, every, check_int(seed, "seed", minimum=0)


def _joma_start(rows: int, n_classes: int, n_logits: int, seed: int):
    """The JoMA runs' start, drawn in this order from ``seed``: the read-out ``W``
    ``(rows, n_classes)`` and the logits ``z`` ``(n_logits,)``, float64 ``N(0, 1) / 100`` each,
    both trained (chapter 7)."""
    gen = torch.Generator().manual_seed(seed)
    W = (torch.randn(rows, n_classes, generator=gen, dtype=torch.float64) / 100).requires_grad_()
    z = (torch.randn(n_logits, generator=gen, dtype=torch.float64) / 100).requires_grad_()
    return W, z


def _joma_prediction(W: torch.Tensor, xbar: torch.Tensor, T: float) -> torch.Tensor:
    """The official script's predicted logits without their constant (chapter 7):
    ``(||W_l||^2 - xbar_l ||W||^2) / (2T)`` for the ``len(xbar)`` tokens ``l``, ``(len(xbar),)``."""
    return ((W[: len(xbar)] ** 2).sum(1) - xbar * (W**2).sum()) / (2 * T)


def _joma_descend(params, lr, steps, every, desc, attend, loss_of, record) -> dict:
    """Full-batch SGD of step ``lr`` on ``loss_of(attend())`` for ``steps`` steps (chapter 7's
    JoMA runs), with a progress bar named ``desc``.  Every ``every`` steps and at the last,
    ``record(weights)`` (a dict of tensors, computed without gradients) is kept; returns
    ``{"steps": (R,) tensor, name: (R, ...) stacked records}``."""
    opt = torch.optim.SGD(params, lr=lr)
    rec = {"steps": []}
    bar = progress_bar(steps, desc=desc)
    for t in range(steps + 1):
        weights = attend()
        if t % every == 0 or t == steps:
            with torch.no_grad():
                rec["steps"].append(t)
                for name, value in record(weights).items():
                    rec.setdefault(name, []).append(value)
        if t == steps:
            bar.close()
            break
        loss = loss_of(weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.update()
        show_loss(bar, loss)
    return {k: torch.stack(v) if k != "steps" else torch.tensor(v) for k, v in rec.items()}


class JomaRun(NamedTuple):
    """What ``joma_run`` returns (chapter 7): per recorded step ``steps`` ``(R,)``, the logits
    ``z`` and the predictions ``z_hat`` ``(R, M)``, and ``top_weight`` ``(R,)``, the mean over
    classes of the largest attention weight (how sharp attention is)."""

    steps: torch.Tensor
    z: torch.Tensor
    z_hat: torch.Tensor
    top_weight: torch.Tensor


def joma_run(
    X: torch.Tensor,
    steps: int = 2000,
    lr: float = 0.1,
    temperature: float = 0.5,
    width: int = 30,
    every: int = 50,
    seed: int = 0,
) -> JomaRun:
    """The official JoMA figure script's training, re-implemented (chapter 7).

    Parameters
    ----------
    X : (M, K) tensor, column ``k`` the token distribution of class ``k`` (``joma_tokens``).
    steps, lr : full-batch SGD steps and step size (the script's 2000 and 0.1).
    temperature : ``T`` in ``b_l ~ x_l exp(z_l / T)`` (the script's 0.5).
    width : the embedding dimension ``d`` (> M; token ``l`` is ``e_l``, the residual ``e_M``).
    every : record every ``every`` steps (and the last).
    seed : seeds the start ``W, z ~ N(0, 1) / 100``.

    Returns
    -------
    JomaRun
        ``z_hat = (||W_l||^2 - xbar_l ||W||^2) / (2T) + const`` with ``xbar`` the row means of
        ``X`` and the constant fixing ``z_hat = z`` at the start, as in the script.
    """
    X, steps, lr, T, width, every, seed = _check_joma_run_args(
        X, steps, lr, temperature, width, every, seed
    )
    M, K = X.shape
    W, z = _joma_start(width, K, M, seed)
    xbar = X.mean(1)
    labels = torch.arange(K)
    with torch.no_grad():
        offset = z - _joma_prediction(W, xbar, T)

    def attend():  # (M, K): b_l ~ x_l e^{z_l / T}
        return torch.softmax(z / T + X.log().T, dim=1).T

    def loss_of(weights):
        features = torch.cat([weights, torch.zeros(width - M, K, dtype=torch.float64)])
        features = (
            features + torch.nn.functional.one_hot(torch.tensor(M), width).double()[:, None]
        )  # the residual token
        return torch.nn.functional.cross_entropy(features.T @ W, labels)

    def record(weights):
        return {
            "z": z.detach().clone(),
            "z_hat": _joma_prediction(W, xbar, T) + offset,
            "top_weight": weights.max(0).values.mean(),
        }

    rec = _joma_descend([W, z], lr, steps, every, "joma_run", attend, loss_of, record)
    return JomaRun(**rec)


class JomaSpecialRun(NamedTuple):
    """What ``joma_special_case`` returns (chapter 7): recorded ``steps`` ``(R,)``, the logits
    ``z`` and strengths ``||W_k||^2`` ``(R, K)``, the script's predictions ``z_hat`` ``(R, K)``
    (its formula on this ``X``) and the competitor counts ``n`` ``(K,)``."""

    steps: torch.Tensor
    z: torch.Tensor
    strength: torch.Tensor
    z_hat: torch.Tensor
    n: torch.Tensor


def joma_special_case(
    masses: torch.Tensor,
    steps: int = 2000,
    lr: float = 0.1,
    temperature: float = 0.5,
    every: int = 50,
    seed: int = 0,
) -> JomaSpecialRun:
    """The JoMA script's training in chapter 2's geometry (chapter 7; the course's construction).

    Parameters
    ----------
    masses : (K,) tensor in (0, 1): ``x_k``, the mass of class ``k``'s own token; the rest,
        ``1 - x_k``, is one common token whose logit is held at 0 and whose feature is 0.
    steps, lr, temperature, every, seed : as in ``joma_run`` (width ``K + 1``: the ``K`` own
        tokens and the residual token).

    Returns
    -------
    JomaSpecialRun
        with ``n = (1 - x) / x``, the number of zero-logit competitors the lemma sees.
    """
    x, steps, lr, T, every, seed = _check_joma_special_args(
        masses, steps, lr, temperature, every, seed
    )
    K = x.numel()
    W, z = _joma_start(K + 1, K, K, seed)
    xbar = x / K  # the script's row means of X for the own tokens (X[k, k] = x_k, else 0)
    labels = torch.arange(K)
    with torch.no_grad():
        offset = z - _joma_prediction(W, xbar, T)

    def attend():
        own = x * (z / T).exp()
        return own / (own + 1 - x)  # the common token: logit 0, feature 0

    def loss_of(weights):
        outputs = weights[:, None] * W[:K] + W[K]  # class k reads its own row and the residual
        return torch.nn.functional.cross_entropy(outputs, labels)

    def record(weights):
        return {
            "z": z.detach().clone(),
            "strength": (W[:K] ** 2).sum(1),
            "z_hat": _joma_prediction(W, xbar, T) + offset,
        }

    rec = _joma_descend([W, z], lr, steps, every, "joma_special_case", attend, loss_of, record)
    return JomaSpecialRun(n=(1 - x) / x, **rec)


def unit_balance(w_in: torch.Tensor, w_out: torch.Tensor) -> torch.Tensor:
    """Per hidden unit ``j``: ``||w_in[j]||^2 - ||w_out[:, j]||^2`` (chapter 7).

    ``w_in`` ``(H, D)`` feeds unit ``j`` (row ``j``), ``w_out`` ``(C, H)`` reads it (column ``j``).

    >>> unit_balance(torch.ones(2, 3), torch.ones(1, 2)).tolist()
    [2.0, 2.0]
    """
    if not isinstance(w_in, torch.Tensor) or not isinstance(w_out, torch.Tensor):
        raise TypeError("w_in and w_out must be torch.Tensors")
    if w_in.dim() != 2 or w_out.dim() != 2 or w_in.shape[0] != w_out.shape[1]:
        raise ValueError(
            f"w_in must be (H, D) and w_out (C, H) with one H, got {tuple(w_in.shape)} "
            f"and {tuple(w_out.shape)}"
        )
    return (w_in**2).sum(1) - (w_out**2).sum(0)


class TwoLayerRun(NamedTuple):
    """What ``train_two_layer_relu`` returns (chapter 7), ``(steps + 1, hidden)`` each: per unit
    the balance ``||w_in||^2 - ||w_out||^2`` and the size ``||w_in||^2 + ||w_out||^2``."""

    balance: torch.Tensor
    size: torch.Tensor


def train_two_layer_relu(
    inputs: torch.Tensor, targets: torch.Tensor, hidden: int, lr: float, steps: int, seed: int = 0
) -> TwoLayerRun:
    """Full-batch gradient descent on ``f(x) = W2 relu(W1 x)`` (no biases) with the squared loss
    (chapter 7).  Returns ``unit_balance(W1, W2)`` and each unit's size at every step;
    gradient flow conserves it for any data (rescaling ``W1[j] -> s W1[j]``,
    ``W2[:, j] -> W2[:, j] / s`` leaves ``f`` unchanged), and each step of size ``lr`` changes it
    by ``lr^2 (||g_in||^2 - ||g_out||^2)``.

    Parameters
    ----------
    inputs : (N, D) tensor; targets : (N, C) tensor (or (N,), read as one output).
    hidden : the number of hidden units H.
    lr, steps : the step size and the number of full-batch steps.
    seed : seeds the start ``W1, W2 ~ N(0, 1)``.

    Returns
    -------
    TwoLayerRun
        ``balance`` and ``size``, ``(steps + 1, H)`` each.

    >>> x = torch.randn(8, 3, dtype=torch.float64)
    >>> train_two_layer_relu(x, x[:, :1], 4, 0.01, 5).balance.shape
    torch.Size([6, 4])
    """
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 2:
        raise TypeError("inputs must be a 2-D torch.Tensor (samples, features)")
    if not isinstance(targets, torch.Tensor) or targets.shape[:1] != inputs.shape[:1]:
        raise TypeError("targets must be a torch.Tensor (samples, outputs) matching inputs")
    hidden = check_int(hidden, "hidden", minimum=1)
    lr = check_positive(lr, "lr")
    steps = check_int(steps, "steps", minimum=0)
    x, y = inputs.double(), targets.double().reshape(len(inputs), -1)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    # drawn on the CPU (the generator's device, the same start everywhere), then moved to x's
    W1 = torch.randn(hidden, x.shape[1], generator=gen, dtype=torch.float64)
    W2 = torch.randn(y.shape[1], hidden, generator=gen, dtype=torch.float64)
    W1, W2 = W1.to(x.device).requires_grad_(), W2.to(x.device).requires_grad_()
    y = y.to(x.device)

    def size():
        return ((W1**2).sum(1) + (W2**2).sum(0)).detach()

    balances, sizes = [unit_balance(W1, W2).detach()], [size()]
    for _ in range(steps):
        loss = 0.5 * ((torch.relu(x @ W1.T) @ W2.T - y) ** 2).sum(1).mean()
        g1, g2 = torch.autograd.grad(loss, (W1, W2))
        with torch.no_grad():
            W1 -= lr * g1
            W2 -= lr * g2
        balances.append(unit_balance(W1, W2).detach())
        sizes.append(size())
    return TwoLayerRun(torch.stack(balances), torch.stack(sizes))
