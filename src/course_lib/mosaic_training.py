"""Training focus models and classifiers on mosaics (defined in chapter 4).

Minibatch SGD with momentum 0.9, batches in a fixed order, one optimizer for the focus and one
for the classifier at the same learning rate: the official code's optimizer (Vashisht and
Ramaswamy 2023).  Two engines with the same arithmetic:

* ``train_mosaic``: one run, the plain PyTorch loop (the mechanism, shown first in chapter 4);
* ``train_mosaic_runs``: many runs (seeds x losses) as ONE computation.  The parameters of all
  runs are stacked (``torch.func.stack_module_state``); one step of every run is one call of
  ``vmap(loss)`` over the run axis and one backward pass of the summed losses (the runs are
  independent, so that gives each run its own gradient); each run's loss is chosen by a one-hot
  selector, so soft, hard and LVML runs share the step.  These models are tiny, so the per-step overhead dominates and batching
  pays (``benchmarks/bench_mosaic.py``).

``train_fixed_focus`` freezes the attention at alpha on the foreground and trains only the
classifier (the fixed-focus experiment), recording L(alpha) and L(alpha + delta) each epoch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ._validate import check_fraction, check_int, check_positive
from .losses import (
    KERNELS,
    LOSS_NAMES,
    _check,
    _log_mixture,
    _true_class_log_prob,
    blend,
    per_segment_logits,
)
from .mosaic import Mosaics


class MosaicHistory(NamedTuple):
    """Per-epoch records: the mean training loss and the mean attention on the foreground
    (a_z over the training batches).  Shapes (T,) for one run, (R, T) for R runs."""

    loss: torch.Tensor
    mean_a_z: torch.Tensor


class FixedFocusHistory(NamedTuple):
    """Records of the fixed-focus experiment, each (R, T): the training loss at the frozen
    alpha, at alpha + delta (same classifier), and the focus incentive L(alpha) - L(alpha +
    delta), about delta * (-dL/dalpha); ``epochs`` (T,) the epochs they were taken after
    (0: before training).  How the losses are taken is ``train_fixed_focus``'s ``evaluation``."""

    loss: torch.Tensor
    loss_plus: torch.Tensor
    incentive: torch.Tensor
    epochs: torch.Tensor


def _check_data(data) -> Mosaics:
    if not isinstance(data, Mosaics):
        raise TypeError(f"data must be course_lib.mosaic.Mosaics, got {type(data).__name__}")
    return data


def _check_loss_name(name) -> str:
    if name not in LOSS_NAMES:
        raise ValueError(f"loss must be one of {LOSS_NAMES}, got {name!r}")
    return name


def _run_data(data, runs: int, device):
    """Shared data (one ``Mosaics``: vmap dimension None) or one per run (stacked: dimension 0)."""
    if isinstance(data, Mosaics):
        return None, tuple(t.to(device) for t in data)
    if not isinstance(data, (list, tuple)) or len(data) != runs:
        raise TypeError(f"data must be one Mosaics or a list of {runs} (one per run)")
    for item in data:
        _check_data(item)
        if item.segments.shape != data[0].segments.shape:
            raise ValueError("the per-run Mosaics must all have the same shape")
    return 0, tuple(torch.stack([d[k] for d in data]).to(device) for k in range(3))


def _batches(n: int, batch_size: int):
    """The official code's fixed batch order (no shuffling), last batch kept."""
    return [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def train_mosaic(
    focus: nn.Module,
    classifier: nn.Module,
    data: Mosaics,
    loss: str,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 256,
    momentum: float = 0.9,
):
    """Train one focus model and classifier jointly with one loss (chapter 4), in place.

    Parameters
    ----------
    focus : maps segments (B, m, *features) to scores (B, m).
    classifier : maps (N, *features) to logits (N, C).
    data : the training ``Mosaics``.
    loss : "soft", "hard" or "lvml".
    epochs, lr, batch_size, momentum : minibatch SGD settings.

    Returns
    -------
    ``(focus, classifier, history)``; ``history.loss`` and ``history.mean_a_z`` have shape (T,).
    """
    data = _check_data(data)
    kernel = KERNELS[_check_loss_name(loss)]
    epochs = check_int(epochs, "epochs", minimum=1)
    lr = check_positive(lr, "lr")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    momentum = check_fraction(momentum, "momentum", allow_zero=True)
    device = next(classifier.parameters()).device
    segments, labels, foreground = (t.to(device) for t in data)
    with torch.no_grad():  # validate the shapes once, on the first batch
        _check(focus.attention(segments[:2]), segments[:2], labels[:2], classifier)
    focus_opt = torch.optim.SGD(focus.parameters(), lr=lr, momentum=momentum)
    classifier_opt = torch.optim.SGD(classifier.parameters(), lr=lr, momentum=momentum)
    losses, a_z = torch.zeros(epochs), torch.zeros(epochs)
    for epoch in range(epochs):
        for start, stop in _batches(len(labels), batch_size):
            x, y = segments[start:stop], labels[start:stop]  # (b, m, *f), (b,)
            alpha = torch.softmax(focus(x), dim=1)  # (b, m)
            value = kernel(alpha, x, y, classifier)
            focus_opt.zero_grad()
            classifier_opt.zero_grad()
            value.backward()
            focus_opt.step()
            classifier_opt.step()
            weight = (stop - start) / len(labels)
            losses[epoch] += weight * value.item()
            a_z[epoch] += weight * alpha.detach()[torch.arange(stop - start),
                                                   foreground[start:stop]].mean().item()
    return focus, classifier, MosaicHistory(losses, a_z)


def _selected_loss(kinds: tuple, selector, alpha, x, y, classify: Callable):
    """The loss of one run: selector (3,) one-hot over (soft, hard, lvml) picks its kind.

    Only the kinds present among the runs are computed (``kinds`` is fixed per call)."""
    parts = []
    if "soft" in kinds:
        parts.append(selector[0] * F.cross_entropy(classify(blend(alpha, x)), y))
    if "hard" in kinds or "lvml" in kinds:
        log_q = _true_class_log_prob(per_segment_logits(x, classify), y)  # (b, m)
        if "hard" in kinds:
            parts.append(selector[1] * -(alpha * log_q).sum(1).mean())
        if "lvml" in kinds:
            parts.append(selector[2] * -_log_mixture(alpha, log_q).mean())
    return sum(parts)


def _stack(modules: Sequence[nn.Module], name: str):
    if not modules or not all(isinstance(mod, nn.Module) for mod in modules):
        raise TypeError(f"{name} must be a non-empty list of torch modules")
    if len({type(mod) for mod in modules}) != 1:
        raise ValueError(f"{name} must all have the same architecture (one class)")
    shapes = [[p.shape for p in mod.parameters()] for mod in modules]
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"{name} must all have the same parameter shapes")
    params, buffers = stack_module_state(list(modules))
    base = copy.deepcopy(modules[0]).to("meta")
    return base, {k: v.detach().clone() for k, v in params.items()}, buffers


def _write_back(modules, stacked: dict) -> None:
    with torch.no_grad():
        for r, mod in enumerate(modules):
            for key, param in mod.named_parameters():
                param.copy_(stacked[key][r])


def _selectors(losses: Sequence[str], runs: int, device) -> tuple[torch.Tensor, tuple]:
    if len(losses) != runs:
        raise ValueError(f"losses must name one loss per run ({runs}), got {len(losses)}")
    names = [_check_loss_name(name) for name in losses]
    index = torch.tensor([LOSS_NAMES.index(name) for name in names], device=device)
    return F.one_hot(index, 3).float(), tuple(sorted(set(names)))


def _per_run(value, runs: int, name: str, device) -> torch.Tensor:
    if isinstance(value, (list, tuple)):
        if len(value) != runs:
            raise ValueError(f"{name} must be one number or one per run ({runs})")
        values = [check_positive(v, name) for v in value]
    else:
        values = [check_positive(value, name)] * runs
    return torch.tensor(values, device=device)


def _momentum_step(params: dict, grads: dict, buffers: dict, lr: torch.Tensor, momentum: float):
    """SGD with momentum on stacked parameters (R, ...), PyTorch's convention:
    v <- momentum v + g;  p <- p - lr v, with lr (R,) one per run."""
    with torch.no_grad():
        for key, g in grads.items():
            buffers[key].mul_(momentum).add_(g)
            params[key].sub_(lr.view(-1, *[1] * (g.dim() - 1)) * buffers[key])


def train_mosaic_runs(
    focus_models: Sequence[nn.Module],
    classifiers: Sequence[nn.Module],
    data: Mosaics,
    losses: Sequence[str],
    *,
    epochs: int,
    lr,
    batch_size: int = 256,
    momentum: float = 0.9,
):
    """Train R (focus, classifier, loss) runs as one batched computation (chapter 4), in place.

    Same arithmetic as R calls of :func:`train_mosaic` (the tests check it), but every step of
    all runs is one ``vmap`` call over parameters stacked along a run axis and one backward.

    Parameters
    ----------
    focus_models, classifiers : R modules each, one architecture per list (e.g. one per seed).
    data : the training ``Mosaics`` shared by all runs, or a list of R (one per run, same shape:
        with zero initialisation the seed enters through the data).
    losses : R names, "soft", "hard" or "lvml".
    epochs, batch_size, momentum : minibatch SGD settings.
    lr : one learning rate, or one per run.

    Returns
    -------
    ``(focus_models, classifiers, history)`` with ``history.loss`` of shape (R, T).
    """
    runs = len(focus_models)
    if len(classifiers) != runs:
        raise ValueError(f"classifiers must be one per focus model ({runs}), got {len(classifiers)}")
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    momentum = check_fraction(momentum, "momentum", allow_zero=True)
    focus_base, focus_params, _ = _stack(focus_models, "focus_models")
    clf_base, clf_params, _ = _stack(classifiers, "classifiers")
    device = next(iter(clf_params.values())).device
    selectors, kinds = _selectors(losses, runs, device)
    lrs = _per_run(lr, runs, "lr", device)
    data_dim, (segments, labels, foreground) = _run_data(data, runs, device)
    with torch.no_grad():
        x, y = (t[0, :2] if data_dim == 0 else t[:2] for t in (segments, labels))
        _check(focus_models[0].attention(x), x, y, classifiers[0])

    def run_loss(f_params, c_params, selector, x, y, z):
        alpha = torch.softmax(functional_call(focus_base, f_params, (x,)), dim=1)  # (b, m)
        classify = lambda inputs: functional_call(clf_base, c_params, (inputs,))
        value = _selected_loss(kinds, selector, alpha, x, y, classify)
        return value, (value.detach(), alpha.detach().gather(1, z[:, None]).mean())

    batched_loss = vmap(run_loss, in_dims=(0, 0, 0) + (data_dim,) * 3)

    def step(f_params, c_params, selectors, x, y, z):
        # The runs are independent, so the gradient of the SUM of their losses with respect to
        # the stacked parameters is each run's own gradient: one backward pass for all runs.
        leaves = {**{"f" + k: v.requires_grad_() for k, v in f_params.items()},
                  **{"c" + k: v.requires_grad_() for k, v in c_params.items()}}
        values, (_, a_z) = batched_loss(f_params, c_params, selectors, x, y, z)  # (R,), (R,)
        grads = torch.autograd.grad(values.sum(), list(leaves.values()))
        named = dict(zip(leaves, grads))
        g_focus = {k: named["f" + k] for k in f_params}
        g_clf = {k: named["c" + k] for k in c_params}
        return (g_focus, g_clf), (values.detach(), a_z)
    focus_buf = {k: torch.zeros_like(v) for k, v in focus_params.items()}
    clf_buf = {k: torch.zeros_like(v) for k, v in clf_params.items()}
    history_loss = torch.zeros(runs, epochs, device=device)
    history_a_z = torch.zeros(runs, epochs, device=device)
    for epoch in range(epochs):
        for start, stop in _batches(labels.shape[-1], batch_size):
            x, y, z = (t[start:stop] if data_dim is None else t[:, start:stop]
                       for t in (segments, labels, foreground))
            (g_focus, g_clf), (value, a_z) = step(focus_params, clf_params, selectors, x, y, z)
            _momentum_step(focus_params, g_focus, focus_buf, lrs, momentum)
            _momentum_step(clf_params, g_clf, clf_buf, lrs, momentum)
            weight = (stop - start) / labels.shape[-1]
            history_loss[:, epoch] += weight * value
            history_a_z[:, epoch] += weight * a_z
    _write_back(focus_models, focus_params)
    _write_back(classifiers, clf_params)
    return focus_models, classifiers, MosaicHistory(history_loss.cpu(), history_a_z.cpu())


def fixed_attention(alpha_z, foreground: torch.Tensor, m: int) -> torch.Tensor:
    """Attention (B, m) with weight alpha_z on the foreground and (1 - alpha_z)/(m - 1) on each
    other segment (chapter 4's fixed-focus experiment; the official code's fixed weights).

    >>> fixed_attention(0.4, torch.tensor([2, 0]), 3)
    tensor([[0.3000, 0.3000, 0.4000],
            [0.4000, 0.3000, 0.3000]])
    """
    m = check_int(m, "m", minimum=2)
    if not isinstance(foreground, torch.Tensor) or foreground.dim() != 1:
        raise ValueError("foreground must be a 1-D tensor of segment indices")
    alpha_z = torch.as_tensor(alpha_z, dtype=torch.float32, device=foreground.device)
    rest = (1 - alpha_z) / (m - 1)
    return rest + (alpha_z - rest) * F.one_hot(foreground, m).to(alpha_z.dtype)


FIXED_FOCUS_EVALUATIONS = ("full_set", "running_mean")
FIXED_FOCUS_AT_ONE = ("extrapolate", "zero")


def train_fixed_focus(
    classifiers: Sequence[nn.Module],
    data: Mosaics,
    alphas: Sequence[float],
    losses: Sequence[str],
    *,
    epochs: int,
    lr,
    batch_size: int = 256,
    momentum: float = 0.9,
    delta: float = 0.01,
    record_epochs: Sequence[int] | None = None,
    evaluation: str = "full_set",
    at_one: str = "extrapolate",
):
    """The fixed-focus experiment (chapter 4): attention frozen at alpha, classifier trained.

    Run r trains ``classifiers[r]`` with loss ``losses[r]`` while the attention is
    ``fixed_attention(alphas[r], ...)``; all runs are one batched computation.  It records
    L(alpha) and L(alpha + delta) with the same classifier (the official code records both),
    in one of two ways (``evaluation``):

    * ``"full_set"`` (the course's): after each recorded epoch, on the whole training set;
    * ``"running_mean"`` (the official fixed-focus scripts'): after each step, on the batch just
      trained on, with the updated classifier; the epoch's record is the plain (unweighted) mean
      of these batch losses.  Epoch 0 (before any step) is the mean over the batches.

    Parameters
    ----------
    classifiers : R modules of one architecture.
    data : the training ``Mosaics``.
    alphas : R attention weights on the foreground, each in (0, 1].
    losses : R loss names.
    epochs, lr, batch_size, momentum : minibatch SGD settings (lr: one, or one per run).
    delta : the focus improvement the incentive is measured for.
    record_epochs : the epochs (0 .. epochs; 0 is before training) after which to record;
        default every epoch 1 .. epochs.
    evaluation : "full_set" or "running_mean" (above).
    at_one : what L(alpha + delta) means at alpha = 1.  "extrapolate" (the course's): the same
        formula just outside the simplex (background weights -delta/(m - 1)), where the losses
        are smooth, so the difference still measures delta * (-dL/dalpha).  "zero" (the
        official scripts'): alpha + delta is replaced by alpha, so the difference is 0.

    Returns
    -------
    ``(classifiers, FixedFocusHistory)`` with (R, T) records; ``history.epochs`` (T,) says when.
    """
    data = _check_data(data)
    runs = len(classifiers)
    delta = check_positive(delta, "delta")
    if len(alphas) != runs:
        raise ValueError(f"alphas must be one per classifier ({runs}), got {len(alphas)}")
    for value in alphas:
        if not 0 < float(value) <= 1:
            raise ValueError(f"alphas must lie in (0, 1], got {value}")
    if evaluation not in FIXED_FOCUS_EVALUATIONS:
        raise ValueError(f"evaluation must be one of {FIXED_FOCUS_EVALUATIONS}, got {evaluation!r}")
    if at_one not in FIXED_FOCUS_AT_ONE:
        raise ValueError(f"at_one must be one of {FIXED_FOCUS_AT_ONE}, got {at_one!r}")
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    momentum = check_fraction(momentum, "momentum", allow_zero=True)
    if record_epochs is None:
        recorded = list(range(1, epochs + 1))
    else:
        recorded = sorted({check_int(e, "record_epochs entries", 0, epochs) for e in record_epochs})
        if not recorded:
            raise ValueError("record_epochs must name at least one epoch")
    clf_base, clf_params, _ = _stack(classifiers, "classifiers")
    device = next(iter(clf_params.values())).device
    selectors, kinds = _selectors(losses, runs, device)
    lrs = _per_run(lr, runs, "lr", device)
    segments, labels, foreground = (t.to(device) for t in data)
    m = segments.shape[1]
    alpha_runs = torch.tensor([float(a) for a in alphas], device=device)  # (R,)
    alpha_plus = alpha_runs + delta
    if at_one == "zero":
        alpha_plus = torch.where(alpha_runs == 1, alpha_runs, alpha_plus)

    def run_loss(c_params, selector, alpha_z, x, y, z):
        classify = lambda inputs: functional_call(clf_base, c_params, (inputs,))
        alpha = (1 - alpha_z) / (m - 1) + (alpha_z - (1 - alpha_z) / (m - 1)) * F.one_hot(z, m)
        return _selected_loss(kinds, selector, alpha, x, y, classify)

    evaluate = vmap(run_loss, in_dims=(0, 0, 0, None, None, None))

    def step(c_params, selectors, alpha_z, x, y, z):  # one backward pass for all runs
        values = evaluate({k: v.requires_grad_() for k, v in c_params.items()}, selectors,
                          alpha_z, x, y, z)  # (R,)
        return dict(zip(c_params, torch.autograd.grad(values.sum(), list(c_params.values()))))

    def both(x, y, z):  # (2, R): L(alpha), L(alpha + delta) with the current classifier
        with torch.no_grad():
            return torch.stack([evaluate(clf_params, selectors, a, x, y, z)
                                for a in (alpha_runs, alpha_plus)])

    batches = _batches(len(labels), batch_size)
    clf_buf = {k: torch.zeros_like(v) for k, v in clf_params.items()}
    records = []
    for epoch in range(epochs + 1):
        running = torch.zeros(2, runs, device=device)
        for start, stop in batches if epoch else ():
            x, y, z = segments[start:stop], labels[start:stop], foreground[start:stop]
            g_clf = step(clf_params, selectors, alpha_runs, x, y, z)
            _momentum_step(clf_params, g_clf, clf_buf, lrs, momentum)
            if evaluation == "running_mean" and epoch in recorded:
                running += both(x, y, z) / len(batches)
        if epoch not in recorded:
            continue
        if evaluation == "full_set":
            records.append(both(segments, labels, foreground))
        elif epoch:
            records.append(running)
        else:
            records.append(sum(both(segments[a:b], labels[a:b], foreground[a:b])
                               for a, b in batches) / len(batches))
    _write_back(classifiers, clf_params)
    loss, loss_plus = torch.stack(records, 2).cpu()
    return classifiers, FixedFocusHistory(loss, loss_plus, loss - loss_plus, torch.tensor(recorded))


# ---------------------------------------------------------------- the hybrid schedule (chapter 6)

TRAINING_METHODS = LOSS_NAMES + ("hybrid",)
OPTIMIZER_AT_SWITCH = ("fresh", "keep")


def train_hybrid(
    focus: nn.Module,
    classifier: nn.Module,
    data: Mosaics,
    soft_epochs: int,
    hard_epochs: int,
    lr: float,
    batch_size: int = 256,
    momentum: float = 0.9,
):
    """The hybrid as the official code runs it (chapter 6): soft, then hard, in place.

    Train with the soft loss for ``soft_epochs``, then continue from those parameters with the
    hard loss for ``hard_epochs`` and *fresh* optimizers (the official code reloads the soft
    model into a new optimizer): two calls of :func:`train_mosaic`.  Either phase may have 0
    epochs (pure hard, pure soft).

    Parameters
    ----------
    focus, classifier : the models, trained in place (as in :func:`train_mosaic`).
    data : the training ``Mosaics``.
    soft_epochs, hard_epochs : the lengths of the two phases (>= 0, not both 0).
    lr, batch_size, momentum : minibatch SGD settings, the same in both phases.

    Returns
    -------
    ``(focus, classifier, history)``: a ``MosaicHistory`` with (soft_epochs + hard_epochs,)
    records, the soft phase's epochs first.
    """
    soft_epochs = check_int(soft_epochs, "soft_epochs", minimum=0)
    hard_epochs = check_int(hard_epochs, "hard_epochs", minimum=0)
    if soft_epochs + hard_epochs == 0:
        raise ValueError("soft_epochs + hard_epochs must be at least 1")
    parts = []
    for name, epochs in (("soft", soft_epochs), ("hard", hard_epochs)):
        if epochs:
            _, _, history = train_mosaic(focus, classifier, data, name, epochs=epochs, lr=lr,
                                         batch_size=batch_size, momentum=momentum)
            parts.append(history)
    return focus, classifier, MosaicHistory(*(torch.cat(column) for column in zip(*parts)))


class Plateau(NamedTuple):
    """A switch criterion for the hybrid (chapter 6): switch at the end of the first epoch at
    which ``metric`` ("focus": the training focus accuracy, "loss": the training loss) has
    improved by less than ``min_delta`` over the last ``patience`` epochs (focus accuracy as
    a fraction in [0, 1]; an improvement is a rise of the focus, a fall of the loss), and not
    before ``min_epochs`` epochs (a flat start of training is not the plateau meant)."""

    metric: str = "focus"
    patience: int = 3
    min_delta: float = 0.005
    min_epochs: int = 0


class HybridHistory(NamedTuple):
    """Per-epoch records of :func:`train_hybrid_runs`, each (R, T): the mean training loss, the
    mean attention on the foreground a_z and the training focus accuracy (fraction of
    mosaics whose most-attended segment is the foreground), over the epoch's batches;
    ``switch_step`` (R,): the optimizer step at which each run switched from soft to hard
    (0 for pure hard and LVML runs, -1 for runs that never switched)."""

    loss: torch.Tensor
    mean_a_z: torch.Tensor
    focus_accuracy: torch.Tensor
    switch_step: torch.Tensor


def _check_plateau(plateau) -> Plateau:
    if not isinstance(plateau, Plateau):
        raise TypeError(f"plateau must be a mosaic_training.Plateau, got {type(plateau).__name__}")
    if plateau.metric not in ("focus", "loss"):
        raise ValueError(f"plateau.metric must be 'focus' or 'loss', got {plateau.metric!r}")
    check_int(plateau.patience, "plateau.patience", minimum=1)
    check_positive(plateau.min_delta, "plateau.min_delta", allow_zero=True)
    check_int(plateau.min_epochs, "plateau.min_epochs", minimum=0)
    return plateau


def _switch_steps(methods, switch_steps, runs: int):
    """Per run: the soft-phase length in steps (None = decided by the plateau, -1 = never)."""
    if isinstance(switch_steps, (list, tuple)):
        if len(switch_steps) != runs:
            raise ValueError(f"switch_steps must be one value or one per run ({runs})")
        given = list(switch_steps)
    else:
        given = [switch_steps] * runs
    out = []
    for method, value in zip(methods, given):
        if method == "hybrid":
            out.append(None if value is None else check_int(value, "switch_steps", minimum=0))
        elif method == "soft":
            out.append(-1)
        else:
            out.append(0)
    return out


def _keeps_momentum(optimizer_at_switch, runs: int) -> list:
    """Per run: True where the momentum buffers are kept across the switch."""
    if isinstance(optimizer_at_switch, (list, tuple)):
        if len(optimizer_at_switch) != runs:
            raise ValueError(f"optimizer_at_switch must be one value or one per run ({runs})")
        given = list(optimizer_at_switch)
    else:
        given = [optimizer_at_switch] * runs
    for value in given:
        if value not in OPTIMIZER_AT_SWITCH:
            raise ValueError(f"optimizer_at_switch must be one of {OPTIMIZER_AT_SWITCH}, "
                             f"got {value!r}")
    return [value == "keep" for value in given]


def train_hybrid_runs(
    focus_models: Sequence[nn.Module],
    classifiers: Sequence[nn.Module],
    data: Mosaics,
    methods: Sequence[str],
    *,
    epochs: int,
    lr,
    switch_steps=None,
    plateau: Plateau | None = None,
    batch_size: int = 256,
    momentum: float = 0.9,
    optimizer_at_switch="fresh",
):
    """Train R runs of soft, hard, LVML and hybrid schedules as ONE computation (chapter 6).

    The engine of :func:`train_mosaic_runs` (stacked parameters, one ``vmap`` and one backward
    per step for all runs) with a loss that can change during training: a "hybrid" run uses
    the soft loss until its switch point and the hard loss after it.  What happens to its
    optimizer state at the switch is ``optimizer_at_switch``: "fresh" (the official code's,
    the default) zeroes its momentum buffers, which is exactly a new ``torch.optim.SGD``
    (whose first step sets the buffer to the gradient); "keep" carries the soft phase's
    momentum buffers into the hard phase, as one optimizer kept across the loss change would.
    The switch point of a hybrid run is a step
    (``switch_steps``: the number of soft steps; 0 is pure hard, at least the number of steps
    of training is pure soft) or, where its switch step is None, the first end of an epoch at
    which ``plateau`` fires on that run's own records.

    Parameters
    ----------
    focus_models, classifiers : R modules each, one architecture per list.
    data : the training ``Mosaics`` shared by all runs, or a list of R (one per run).
    methods : R names, "soft", "hard", "lvml" or "hybrid".
    epochs, batch_size, momentum : minibatch SGD settings (batches in a fixed order).
    lr : one learning rate, or one per run.
    switch_steps : one int (or None), or one per run; used by the hybrid runs only.
    plateau : the :class:`Plateau` criterion for hybrid runs whose switch step is None.
    optimizer_at_switch : "fresh" or "keep", or one of them per run (used by hybrid runs).

    Returns
    -------
    ``(focus_models, classifiers, history)``, a :class:`HybridHistory` of (R, T) records.
    """
    runs = len(focus_models)
    if len(classifiers) != runs:
        raise ValueError(f"classifiers must be one per focus model ({runs}), got {len(classifiers)}")
    if len(methods) != runs:
        raise ValueError(f"methods must name one method per run ({runs}), got {len(methods)}")
    for name in methods:
        if name not in TRAINING_METHODS:
            raise ValueError(f"methods must be among {TRAINING_METHODS}, got {name!r}")
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    momentum = check_fraction(momentum, "momentum", allow_zero=True)
    switch = _switch_steps(methods, switch_steps, runs)
    keeps = _keeps_momentum(optimizer_at_switch, runs)
    if any(s is None for s in switch):
        if plateau is None:
            raise ValueError("a hybrid run without a switch step needs a plateau criterion")
        plateau = _check_plateau(plateau)
    focus_base, focus_params, _ = _stack(focus_models, "focus_models")
    clf_base, clf_params, _ = _stack(classifiers, "classifiers")
    device = next(iter(clf_params.values())).device
    lrs = _per_run(lr, runs, "lr", device)
    data_dim, (segments, labels, foreground) = _run_data(data, runs, device)
    with torch.no_grad():
        x, y = (t[0, :2] if data_dim == 0 else t[:2] for t in (segments, labels))
        _check(focus_models[0].attention(x), x, y, classifiers[0])
    fixed_index = torch.tensor([LOSS_NAMES.index(n) if n != "hybrid" else 0 for n in methods],
                               device=device)
    is_hybrid = torch.tensor([n == "hybrid" for n in methods], device=device)
    keeps = torch.tensor(keeps, device=device)

    def run_loss(kinds_now, f_params, c_params, selector, x, y, z):
        alpha = torch.softmax(functional_call(focus_base, f_params, (x,)), dim=1)  # (b, m)
        classify = lambda inputs: functional_call(clf_base, c_params, (inputs,))
        value = _selected_loss(kinds_now, selector, alpha, x, y, classify)
        alpha = alpha.detach()
        a_z = alpha.gather(1, z[:, None]).mean()
        hit = (alpha.argmax(1) == z).float().mean()
        return value, (value.detach(), a_z, hit)

    # one vmapped function per set of losses in use at a step: a step where every run is in
    # its soft phase computes no per-segment (hard) loss
    batched = {}
    names = list(focus_params), list(clf_params)

    def gradients(index, x, y, z):
        kinds_now = tuple(LOSS_NAMES[i] for i in sorted(set(index.tolist())))
        if kinds_now not in batched:
            batched[kinds_now] = vmap(lambda *a, k=kinds_now: run_loss(k, *a),
                                      in_dims=(0, 0, 0) + (data_dim,) * 3)
        selectors = F.one_hot(index, 3).float()
        leaves = [v.requires_grad_() for v in (*focus_params.values(), *clf_params.values())]
        values, records = batched[kinds_now](focus_params, clf_params, selectors, x, y, z)
        grads = torch.autograd.grad(values.sum(), leaves)  # the runs are independent
        n_focus = len(names[0])
        return (dict(zip(names[0], grads[:n_focus])), dict(zip(names[1], grads[n_focus:])),
                records)

    focus_buf = {k: torch.zeros_like(v) for k, v in focus_params.items()}
    clf_buf = {k: torch.zeros_like(v) for k, v in clf_params.items()}
    soft_left = torch.tensor([-1 if s is None else s for s in switch], device=device)
    undecided = torch.tensor([s is None for s in switch], device=device)
    switched_at = torch.tensor([0 if n in ("hard", "lvml") else -1 for n in methods])
    history = torch.zeros(3, runs, epochs, device=device)
    step = 0
    for epoch in range(epochs):
        for start, stop in _batches(labels.shape[-1], batch_size):
            x, y, z = (t[start:stop] if data_dim is None else t[:, start:stop]
                       for t in (segments, labels, foreground))
            # a hybrid run is soft while it has soft steps left (or is waiting for its plateau)
            soft_now = is_hybrid & (undecided | (soft_left > step))
            starts_hard = is_hybrid & ~undecided & (soft_left == step) & (step > 0)
            if bool(starts_hard.any()):  # a fresh optimizer for the runs that switch now
                keep = (~starts_hard | keeps).float()  # unless they keep their momentum
                for buf in (*focus_buf.values(), *clf_buf.values()):
                    buf.mul_(keep.view(-1, *[1] * (buf.dim() - 1)))
                switched_at[starts_hard.cpu()] = step
            switched_at[(is_hybrid & ~undecided & (soft_left == 0)).cpu()] = 0
            index = torch.where(is_hybrid, torch.where(soft_now, 0, 1), fixed_index)
            g_focus, g_clf, (value, a_z, hit) = gradients(index, x, y, z)
            _momentum_step(focus_params, g_focus, focus_buf, lrs, momentum)
            _momentum_step(clf_params, g_clf, clf_buf, lrs, momentum)
            weight = (stop - start) / labels.shape[-1]
            history[:, :, epoch] += weight * torch.stack([value, a_z, hit])
            step += 1
        if bool(undecided.any()) and epoch >= max(plateau.patience, plateau.min_epochs - 1):
            row = 2 if plateau.metric == "focus" else 0
            sign = 1.0 if plateau.metric == "focus" else -1.0
            gain = sign * (history[row, :, epoch] - history[row, :, epoch - plateau.patience])
            fires = undecided & (gain < plateau.min_delta)
            soft_left = torch.where(fires, step, soft_left)
            undecided = undecided & ~fires
    _write_back(focus_models, focus_params)
    _write_back(classifiers, clf_params)
    history = history.cpu()
    return focus_models, classifiers, HybridHistory(history[0], history[1], history[2],
                                                    switched_at)
