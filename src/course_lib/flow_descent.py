"""Gradient descent on the real model that chapter 5's flow describes (chapter 5, section 6;
chapter 6 for the hybrid).

``course_lib.flow`` solves the two-scalar ODE in ``(mu, nu)``; this module trains the actual
chapter-4 linear focus and classifier by plain full-batch gradient descent on the population of
mosaics (``population_mosaics``) and reads the same two scalars off the weights, so that the
chapters can lay the runs over the closed forms.  ``gradient_descent_path`` trains focus and
classifier together (or the soft-then-hard hybrid), ``fixed_focus_gradient_descent`` only the
classifier with the focus frozen.
"""

from __future__ import annotations

import numpy as np
import torch

from . import focus as focus_models
from . import losses
from ._validate import check_int, check_positive
from .engine import Schedule, Step, train
from .flow import _check_alpha, _check_method, _check_sizes
from .law import LOSS_NAMES, METHODS

__all__ = ["population_mosaics", "gradient_descent_path", "fixed_focus_gradient_descent"]


class _one_torch_thread:
    """Run tiny tensor work on one thread: OpenMP wake-ups cost more than the work itself, and on
    a busy machine they can make a loop of small steps many times slower."""

    def __enter__(self):
        self.previous = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.previous)


def _schedule(method: str, switch_step) -> Schedule | None:
    """The hybrid's schedule: soft until ``switch_step``, hard from it on (plain gradient
    descent: no state to reset); None for one loss throughout (no per-step bookkeeping)."""
    if method != "hybrid":
        return None
    soft, hard = LOSS_NAMES.index("soft"), LOSS_NAMES.index("hard")
    return Schedule([soft], [hard], [switch_step], [True])


def population_mosaics(m, C, dtype=torch.float64):
    """Every (class, position) mosaic once: the dataset whose mean loss IS the population loss.

    Returns ``segments (C*m, m, C)`` and ``labels (C*m,)``: mosaic ``(y, z)`` holds the class
    vector e_y at position z and zero vectors elsewhere (chapter 5, section 1).  The label is
    uniform over the C classes, and the loss of one mosaic does not depend on where its
    foreground sits (the focus and the classifier see each segment on its own), so the mean
    over these C*m mosaics equals the expectation over classes and positions exactly.
    """
    m, C = _check_sizes(m, C)
    labels = torch.arange(C).repeat_interleave(m)  # (C*m,)
    positions = torch.arange(m).repeat(C)  # (C*m,)
    segments = torch.zeros(C * m, m, C, dtype=dtype)
    segments[torch.arange(C * m), positions, labels] = 1.0
    return segments, labels


def gradient_descent_path(method, n_steps, *, m, C, lr, record_every=1, switch_step=None):
    """Plain full-batch gradient descent on the chapter-4 linear focus and classifier.

    The models are ``focus.LinearFocus(C)`` and ``focus.LinearClassifier(C, C)`` (with its
    bias), zero-initialised, in float64, trained on ``population_mosaics(m, C)`` with the
    chapter-4 losses; step k is at time k * lr.  ``method`` "hybrid" uses the soft loss for
    the first ``switch_step`` steps and the hard loss after (plain gradient descent has no
    optimizer state to reset).  The reduced coordinates are read off the trained weights:
    nu = mean_y u_y, mu = mean diagonal of W minus mean off-diagonal entry.

    Parameters
    ----------
    method : "soft", "hard", "lvml" or "hybrid"
    n_steps : number of gradient steps (>= 0)
    m, C : number of segments and of classes (>= 2), keyword-only
    lr : learning rate (> 0)
    record_every : record the state every this many steps (and at step 0)
    switch_step : for "hybrid", the step at which the loss changes to hard

    Returns
    -------
    times (R,), mu (R,), nu (R,), asymmetry (R,): NumPy arrays; ``asymmetry`` is the largest
    deviation of the weights from the two-scalar form (zero up to rounding if the symmetry
    reduction is exact).
    """
    method = _check_method(method, METHODS)
    m, C = _check_sizes(m, C)
    lr = check_positive(lr, "lr")
    n_steps = check_int(n_steps, "n_steps", minimum=0)
    record_every = check_int(record_every, "record_every", minimum=1)
    if method == "hybrid":
        switch_step = check_int(switch_step, "switch_step", minimum=0)
    elif switch_step is not None:
        raise ValueError(f"switch_step is only used by method 'hybrid', got it with {method!r}")
    segments, labels = population_mosaics(m, C)
    focus = focus_models.LinearFocus(C, init="zeros").double()
    classifier = focus_models.LinearClassifier(C, C, init="zeros").double()
    parameters = {f"focus.{k}": p for k, p in focus.named_parameters()}
    parameters.update({f"classifier.{k}": p for k, p in classifier.named_parameters()})
    off_diagonal = ~torch.eye(C, dtype=torch.bool)

    def reduced_state():
        u = focus.weight.detach()
        W = classifier.net.weight.detach()
        nu = float(u.mean())
        mu = float(W.diagonal().mean() - W[off_diagonal].mean())
        asym = max(
            float((u - u.mean()).abs().max()),
            float((W.diagonal() - W.diagonal().mean()).abs().max()),
            float((W[off_diagonal] - W[off_diagonal].mean()).abs().max()),
            float(classifier.net.bias.detach().abs().max()),
        )
        return mu, nu, asym

    records = [(0.0, *reduced_state())]

    def loss(params, batch, index):
        # the unchecked kernel: the arguments were built right here, and checks cost a sync
        kernel = losses.KERNELS[method if index is None else LOSS_NAMES[int(index[0])]]
        return kernel(focus.attention(segments), segments, labels, classifier).reshape(1), None

    def on_step(step: Step) -> None:
        if (step.number + 1) % record_every == 0:
            records.append(((step.number + 1) * lr, *reduced_state()))

    with _one_torch_thread():
        train(
            parameters,
            loss,
            steps=n_steps,
            lr=lr,
            schedule=_schedule(method, switch_step),
            on_step=on_step,
            desc=f"gradient_descent_path ({method})",
        )
    times, mu, nu, asym = (np.array(column) for column in zip(*records))
    return times, mu, nu, asym


def fixed_focus_gradient_descent(method, alpha, n_steps, *, m, C, lr, record_every=1):
    """Chapter 5, section 3 on the real model: train only the classifier, the focus frozen.

    The attention is alpha on the foreground and (1 - alpha)/(m - 1) on each background
    segment; ``focus.LinearClassifier(C, C)`` (zero init, float64) takes plain gradient steps
    on the chapter-4 loss over ``population_mosaics(m, C)``.  Recorded every ``record_every``
    steps: the time (steps x lr), the margin mu, the loss, and the focus incentive
    -dL/dalpha measured by autograd on the model.

    Parameters
    ----------
    method
        "soft", "hard" or "lvml".
    alpha
        The frozen attention on the foreground, in (0, 1].
    n_steps
        Number of gradient steps.
    m, C
        Number of segments and of classes (keyword-only).
    lr
        Learning rate.
    record_every
        Record every ``record_every`` steps.

    Returns
    -------
    times, mu, loss, incentive
        NumPy arrays, one entry per recorded step.
    """
    method = _check_method(method)
    m, C = _check_sizes(m, C)
    alpha = float(_check_alpha(alpha))
    lr = check_positive(lr, "lr")
    n_steps = check_int(n_steps, "n_steps", minimum=0)
    record_every = check_int(record_every, "record_every", minimum=1)
    segments, labels = population_mosaics(m, C)
    is_foreground = segments.sum(-1)  # (C*m, m): 1 at the foreground, 0 elsewhere
    classifier = focus_models.LinearClassifier(C, C, init="zeros").double()
    loss_fn = losses.attention_loss(method)
    off_diagonal = ~torch.eye(C, dtype=torch.bool)

    def attention(a):
        return a * is_foreground + (1 - a) / (m - 1) * (1 - is_foreground)

    records = []

    def record(step: Step) -> None:  # before the step's update: the state at step.number
        if step.number % record_every == 0:
            a = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
            loss = loss_fn(attention(a), segments, labels, classifier)
            (d_alpha,) = torch.autograd.grad(loss, a)
            W = classifier.net.weight.detach()
            mu = float(W.diagonal().mean() - W[off_diagonal].mean())
            records.append((step.number * lr, mu, float(loss.detach()), -float(d_alpha)))

    def loss(params, batch, index):
        frozen = attention(torch.tensor(alpha, dtype=torch.float64))
        return losses.KERNELS[method](frozen, segments, labels, classifier).reshape(1), None

    with _one_torch_thread():
        train(
            dict(classifier.named_parameters()),
            loss,
            steps=n_steps,
            lr=lr,
            record=record,
            final=True,
            desc=f"fixed_focus_gradient_descent ({method})",
        )
    return tuple(np.array(column) for column in zip(*records))
