"""The law at the bottom of the library: one logit against ``n`` logits at zero (chapter 7).

Every closed form of the course reduces to one softmax weight.  Let a logit ``theta`` compete
against ``n`` logits held at zero (chapter 2: a topic word's score against its ``m`` background
words; chapter 5: the focus logit against ``m - 1`` background segments, and the classifier's
margin against ``C - 1`` wrong classes).  Its weight and the weight it misses are

    a(theta) = e^theta / (e^theta + n),        1 / (1 - a(theta)) = 1 + e^theta / n
                                                                  (chapter 7, eq. (7.3)),

and the integral of the second is the potential

    Psi_n(theta) = theta + (e^theta - 1) / n                      (chapter 7, eq. (7.2)).

The lemma of chapter 7 (eq. (7.1)): if ``theta' = c (1 - a(theta)) S'`` for a constant ``c``,
then ``Psi_n(theta) - c S`` does not change in time.  Inverting ``Psi_n`` (the chapter-5 orbits,
chapter 2's SEN curve read backwards, the fixed-focus margins) means solving
``e^y + k y = c``, done once here by ``solve_exp_plus_linear``.

The modules above this one (``conservation`` for the two papers' corollaries, ``identity`` for
chapter 2, ``flow`` for chapters 5 and 6) import these functions instead of writing their own.
This module imports nothing else of the course but ``_validate``.

The kind rule
-------------
Every function of numbers in ``law``, ``conservation``, ``identity`` and ``flow`` follows one
rule for what it accepts and what kind of value comes back (``real_values`` reads an
argument, ``same_kind`` shapes the result):

* a real number (Python or NumPy; ``bool`` is refused) gives a Python ``float``;
* a NumPy array, list or tuple of real numbers is computed in float64 and gives a float64 NumPy
  array (a 0-d array counts as a number);
* a torch tensor gives a tensor on the same device; a floating dtype is kept (a float32 tensor is
  computed in float32), an integer one becomes float64; where the computation needs SciPy it is
  done in float64 on the CPU and comes back in the tensor's dtype and device;
* with several arguments the result is a tensor if any argument is one, else an array if any
  argument is one, else a float;
* complex numbers, strings and other objects raise ``TypeError`` naming the argument.

Reductions say in their docstring what they return (``lemma_drift`` gives a float for one
logit).

>>> attention_weight(0.0, 4)  # one logit at 0 among five
0.2
>>> miss_reciprocal(0.0, 4)  # a(0) = 1/5 misses 4/5
1.25
>>> round(attention_potential(1.0, 1), 6)  # 1 + (e - 1)
2.718282
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from scipy.special import expit, wrightomega

from ._validate import check_positive

__all__ = [
    "LOSS_NAMES",
    "METHODS",
    "real_values",
    "same_kind",
    "attention_weight",
    "miss_reciprocal",
    "attention_potential",
    "inverse_attention_potential",
    "solve_exp_plus_linear",
    "lemma_coupling",
    "lemma_invariant",
    "lemma_drift",
]

# The three losses of the course (chapter 4), each a case of the law (chapter 7), and the
# methods of the flow and the trainers: the losses and the soft-then-hard hybrid (chapter 6).
# Every module, notebook, test and benchmark imports these two instead of spelling them out.
LOSS_NAMES = ("soft", "hard", "lvml")
METHODS = LOSS_NAMES + ("hybrid",)


# --------------------------------------------------------------------------- the kind rule


def real_values(value, name: str):
    """Read one argument by the kind rule of this module (chapters 2, 5 and 7).

    Returns a Python float for a real number or a 0-d array, a float64 NumPy array for an array,
    list or tuple, and the tensor itself for a floating tensor (an integer tensor becomes
    float64).  Raises ``TypeError`` naming ``name`` for anything else.

    >>> real_values(3, "theta"), real_values([1, 2], "theta")
    (3.0, array([1., 2.]))
    """
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got a tensor of dtype {value.dtype}")
        return value if value.is_floating_point() else value.double()
    if isinstance(value, (np.ndarray, list, tuple)):
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{name} must be an array of real numbers") from error
        if (
            array.dtype == np.bool_
            or not np.issubdtype(array.dtype, np.number)
            or np.iscomplexobj(array)
        ):
            raise TypeError(f"{name} must hold real numbers, got an array of dtype {array.dtype}")
        array = array.astype(np.float64)
        return float(array) if array.ndim == 0 else array
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a number, a NumPy array or a torch tensor, got {type(value).__name__}"
        )
    return float(value)


def same_kind(result, *inputs):
    """Give ``result`` the kind the rule of this module asks for, given the ``inputs`` read by
    ``real_values`` (chapters 2, 5 and 7): a tensor if any input is one (its device; the
    promoted floating dtype of the tensor inputs), else a float64 array if any input is an
    array, else a float.

    >>> same_kind(np.float64(2.0), 1.0), same_kind(np.ones(2), 1.0, np.zeros(2))
    (2.0, array([1., 1.]))
    """
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    if tensors:
        dtype = tensors[0].dtype
        for tensor in tensors[1:]:
            dtype = torch.promote_types(dtype, tensor.dtype)
        if isinstance(result, torch.Tensor):
            return result.to(dtype=dtype, device=tensors[0].device)
        return torch.as_tensor(np.asarray(result), dtype=dtype, device=tensors[0].device)
    if isinstance(result, torch.Tensor):
        result = result.detach().cpu().numpy()
    if any(isinstance(x, np.ndarray) for x in inputs):
        return np.asarray(result, dtype=np.float64)
    return float(result)


def _numpy(value) -> np.ndarray | float:
    """A value read by ``real_values``, as float64 NumPy, for the computations that need SciPy."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    return value


def _align(*values):
    """With a tensor among ``values``, the NumPy arrays among them become tensors of its dtype and
    device, so that mixed arguments compute in torch (by the kind rule the result is a tensor)."""
    tensor = next((v for v in values if isinstance(v, torch.Tensor)), None)
    if tensor is None:
        return values
    return tuple(
        torch.as_tensor(v, dtype=tensor.dtype, device=tensor.device)
        if isinstance(v, np.ndarray)
        else v
        for v in values
    )


def _is_array(value) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor))


def _exp(value):
    return torch.exp(value) if isinstance(value, torch.Tensor) else np.exp(value)


def _check_others(n_others, name: str = "n_others"):
    """``n``: a positive number of logits at zero, or positive numbers elementwise."""
    if isinstance(n_others, (torch.Tensor, np.ndarray, list, tuple)):
        n_others = real_values(n_others, name)
        if not _is_array(n_others):
            return check_positive(n_others, name)
        bad = ~(n_others > 0)
        if bool(bad.any()):
            raise ValueError(f"{name} must be > 0 everywhere (the logits competing at zero)")
        return n_others
    if isinstance(n_others, (bool, np.bool_)) or not isinstance(n_others, numbers.Real):
        raise TypeError(
            f"{name} must be a positive number (the logits competing at zero), "
            f"got {type(n_others).__name__}"
        )
    return check_positive(n_others, name)


def _log(value):
    return torch.log(value) if isinstance(value, torch.Tensor) else np.log(value)


# --------------------------------------------------------------------------- the weight


def attention_weight(theta, n_others):
    """``a(theta) = e^theta / (e^theta + n)``: the softmax weight of a logit ``theta`` against
    ``n = n_others`` logits at zero (chapter 2, step 1 of the proof, with ``n = m``; chapter 5's
    ``alpha`` with ``n = m - 1`` and ``beta`` with ``n = C - 1``; chapter 7, eq. (7.3)).

    Computed as the logistic function of ``theta - log n``, so no exponential overflows at either
    end.  Elementwise, by the kind rule of this module.

    >>> attention_weight(0.0, 4), attention_weight(-1000.0, 4), attention_weight(1000.0, 4)
    (0.2, 0.0, 1.0)
    """
    theta, n_others = _align(real_values(theta, "theta"), _check_others(n_others))
    shifted = theta - (_log(n_others) if _is_array(n_others) else math.log(n_others))
    if isinstance(shifted, torch.Tensor):
        out = torch.sigmoid(shifted)
    else:
        out = expit(shifted)
    return same_kind(out, theta, n_others)


def miss_reciprocal(theta, n_others):
    """``1 / (1 - a(theta)) = 1 + e^theta / n_others``: the reciprocal of the weight a logit
    misses (chapter 7, eq. (7.3), the key step of the lemma's proof).

    ``a(theta) = e^theta / (e^theta + n_others)`` (``attention_weight``), so
    ``1 - a = n_others / (e^theta + n_others)``.  Written without the subtraction ``1 - a``,
    which rounds to 0 (and its reciprocal to ``inf``) from ``theta = 40`` in float64 and
    ``theta = 20`` in float32.  Integrating it from 0 to ``theta`` gives
    ``attention_potential``.  Elementwise, by the kind rule of this module.

    >>> miss_reciprocal(0.0, 4)  # a(0) = 1/5 misses 4/5
    1.25
    """
    theta, n_others = _align(real_values(theta, "theta"), _check_others(n_others))
    return same_kind(1.0 + _exp(theta) / n_others, theta, n_others)


# --------------------------------------------------------------------------- the potential


def attention_potential(theta, n_others):
    """``Psi_n(theta) = theta + (e^theta - 1)/n``: the integral of ``1 / (1 - a)`` from 0 to
    ``theta`` (chapter 7, eq. (7.2); ``n = n_others``).

    With ``n = m - 1`` this is the potential ``Phi(nu)`` of the chapter-5 orbits
    (``flow.orbit``); with ``n = m`` it is chapter 2's identity (``identity.sen_norm_curve`` is
    ``sqrt(2 Psi_m(s))`` from a zero start).  Uses ``expm1``, exact near 0.  Elementwise, by the
    kind rule of this module.

    >>> attention_potential(0.0, 4)
    0.0
    >>> round(attention_potential(1.0, 1), 6)  # 1 + (e - 1)
    2.718282
    """
    theta, n_others = _align(real_values(theta, "theta"), _check_others(n_others))
    expm1 = torch.expm1(theta) if isinstance(theta, torch.Tensor) else np.expm1(theta)
    return same_kind(theta + expm1 / n_others, theta, n_others)


def solve_exp_plus_linear(c, k):
    """The real ``y`` with ``e^y + k y = c`` (``k > 0``; one root, since the left side
    increases): the equation behind every inverse of ``attention_potential`` (chapter 5's
    fixed-focus margins and orbits, chapter 2's score from a norm, chapter 7).

    With ``w = W_0(e^{c/k} / k)`` (Lambert W, taken as the Wright omega function of
    ``c/k - log k`` so that no ``e^{c/k}`` is formed), ``y = log(k w)``; where ``w`` underflows
    (``c`` very negative), ``y = c/k - w``.  One Newton step polishes the last bit.  Relative
    error below 1e-15 against 50-digit arithmetic for ``c`` from -1e4 to 1e30 and ``k`` from
    1e-3 to 1e5 (tests/test_law.py).  Elementwise over broadcastable ``c`` and ``k``, by the kind
    rule of this module (SciPy computes in float64).

    >>> solve_exp_plus_linear(1.0, 3.0)  # e^0 + 3 * 0 = 1
    0.0
    >>> round(solve_exp_plus_linear(math.e + 2.0, 2.0), 12)  # e^1 + 2 * 1
    1.0
    """
    c_in = real_values(c, "c")
    k_in = _check_others(k, "k")
    c, k = _numpy(c_in), _numpy(k_in)
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        x = c / k
        w = np.real(wrightomega(np.asarray(x - np.log(k), dtype=np.float64)))
        y = np.where(w > 1e-300, np.log(k * np.maximum(w, 1e-300)), x - w)
        ey = np.exp(y)
        y = y - (ey + k * y - c) / (ey + k)
    return same_kind(y, c_in, k_in)


def inverse_attention_potential(value, n_others):
    """The ``theta`` with ``Psi_n(theta) = value`` (chapter 7, eq. (7.2); ``n = n_others``):
    ``Psi_n`` increases from ``-inf`` to ``inf``, so every real ``value`` has one.

    ``theta + (e^theta - 1)/n = value`` is ``e^theta + n theta = n value + 1``, solved by
    ``solve_exp_plus_linear``.  Chapter 5's orbits are ``nu = Psi_{m-1}^{-1}(G(mu))``; chapter 2's
    score at a given norm is ``Psi_m^{-1}(||q||^2 ||w||^2 / 2)``.  Elementwise, by the kind rule.

    >>> round(inverse_attention_potential(attention_potential(2.5, 4), 4), 12)
    2.5
    """
    value = real_values(value, "value")
    n_others = _check_others(n_others)
    return solve_exp_plus_linear(n_others * value + 1.0, n_others)


# --------------------------------------------------------------------------- the lemma


def lemma_coupling(theta_rate, strength_rate, theta, n_others):
    """The lemma's hypothesis, measured (chapter 7, eq. (7.1)):
    ``c = theta' / ((1 - a(theta)) S')``.

    ``theta_rate`` and ``strength_rate`` are the velocities ``d theta/dt`` and ``dS/dt`` (or two
    increments over one small step) at the logit values ``theta``; all three broadcast.  The
    lemma applies exactly when the result is the same constant at every time and every state.
    Where ``strength_rate`` is 0 the ratio is ``inf`` or ``nan``: measure where S moves.

    >>> lemma_coupling(0.4, 1.0, 0.0, 4)  # theta' = c (1 - a) S' with 1 - a(0) = 4/5
    0.5
    """
    theta_rate = real_values(theta_rate, "theta_rate")
    strength_rate = real_values(strength_rate, "strength_rate")
    theta_rate, strength_rate, reciprocal = _align(
        theta_rate, strength_rate, miss_reciprocal(theta, n_others)
    )
    if not isinstance(strength_rate, (torch.Tensor, np.ndarray)):
        strength_rate = np.float64(strength_rate)  # divides by 0 as an array does, to inf or nan
    with np.errstate(divide="ignore", invalid="ignore"):
        out = theta_rate * reciprocal / strength_rate
    return same_kind(out, theta_rate, strength_rate, reciprocal)


def lemma_invariant(theta, strength, coupling, n_others):
    """The conserved quantity of the lemma (chapter 7, eq. (7.2)): ``Psi_n(theta) - c S``.

    ``Psi_n`` is ``attention_potential(theta, n_others)``.  When
    ``theta' = c (1 - a(theta)) S'`` (eq. (7.1)) this does not change in time, whatever else the
    dynamics do.  Elementwise over broadcastable ``theta`` (the logit), ``strength`` (S) and
    ``coupling`` (c, non-zero), by the kind rule of this module.

    >>> lemma_invariant(0.0, 0.0, 0.5, 20)
    0.0
    >>> round(lemma_invariant(1.0, 2.0, 0.5, 1), 6)  # 1 + (e - 1) - 0.5 * 2
    1.718282
    """
    theta = real_values(theta, "theta")
    strength = real_values(strength, "strength")
    coupling = real_values(coupling, "coupling")
    if not _is_array(coupling) and coupling == 0.0:
        raise ValueError(
            "coupling must be non-zero: with c = 0 the logit does not move and the law says nothing"
        )
    theta, strength, coupling = _align(theta, strength, coupling)
    out = attention_potential(theta, n_others) - coupling * strength
    return same_kind(out, theta, strength, coupling)


def lemma_drift(theta, strength, coupling, n_others):
    """Largest change of the lemma's invariant (eq. (7.2)) along a run (chapter 7):
    ``max_t |I(t) - I(0)|`` with ``I = Psi_n(theta) - c S``.

    ``theta`` and ``strength`` have the time axis first, ``(T, ...)``; ``coupling`` broadcasts
    against them.  Returns shape ``(...)``, one drift per logit, as an array or tensor; a float
    when there is one logit (1-D inputs).  Under gradient descent with step ``lr`` the drift of a
    law that holds for the flow is ``O(lr)``; a drift that does not shrink with ``lr`` means the
    law's hypothesis fails.

    >>> lemma_drift(np.array([0.0, 1.0]), np.array([0.0, 2 * math.e]), 0.5, 1.0) < 1e-15
    True
    """
    theta = real_values(theta, "theta")
    strength = real_values(strength, "strength")
    for name, value in (("theta", theta), ("strength", strength)):
        if not _is_array(value) or value.ndim < 1 or value.shape[0] < 1:
            raise ValueError(f"{name} must be an array or tensor with a time axis first, (T, ...)")
    if tuple(theta.shape) != tuple(strength.shape):
        raise ValueError(
            "theta and strength must have the same shape, "
            f"got {tuple(theta.shape)} and {tuple(strength.shape)}"
        )
    invariant = lemma_invariant(theta, strength, coupling, n_others)
    if isinstance(invariant, torch.Tensor):
        out = (invariant - invariant[:1]).abs().amax(dim=0)
        return float(out) if out.dim() == 0 else out
    out = np.abs(invariant - invariant[:1]).max(axis=0)
    return float(out) if np.ndim(out) == 0 else out
