"""Training focus models and classifiers on mosaics (chapters 4 to 7).

Minibatch SGD with momentum 0.9, batches in a fixed order, one optimizer for the focus and one
for the classifier at the same learning rate: the official code's optimizer (Vashisht and
Ramaswamy 2023).  Two ways to run it, with the same arithmetic (the tests check it):

* ``train_mosaic``: one run, the plain PyTorch loop (the mechanism, shown first in chapter 4);
* :mod:`course_lib.engine`, the course's one loop: R runs as ONE computation.  The parameters
  of all runs are stacked (``engine.Stack``); one step of every run is one call of
  ``vmap(loss)`` over the run axis (:class:`RunLosses`) and one backward pass of the summed
  losses (the runs are independent, so that gives each run its own gradient).  Each run's
  loss at each step comes from an ``engine.Schedule`` (an index into soft, hard and LVML,
  made a one-hot selector), so runs of different losses share a step and a hybrid is a
  schedule whose loss changes once, at a given step or when a ``Plateau`` fires, with its
  optimizer state zeroed ("fresh") or kept.  :func:`train_epochs` runs epochs of minibatches
  on it and keeps the per-epoch records; chapters 6 and 7 train their text and law runs
  through it.  These models are tiny, so the per-step overhead dominates and batching pays
  (``benchmarks/bench_mosaic.py``).

The public batched trainers build runs for the engine: ``train_mosaic_runs`` (one loss per run),
``train_fixed_focus`` (no focus model: the attention is frozen at alpha on the foreground, and
the records are L(alpha) and L(alpha + delta)) and ``train_hybrid_runs`` (soft, hard, LVML and
hybrid runs).  ``train_hybrid`` is the hybrid as two plain loops (exercise 6.1).  The losses are
those of :mod:`course_lib.losses`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from ._validate import check_fraction, check_int, check_positive
from .engine import NEVER, History, Schedule, Stack, Step, minibatches, train
from .losses import KERNELS, LOSS_NAMES, check_loss_inputs, selected_loss
from .mosaic import Mosaics
from .progress import progress_bar, show_loss

TRAINING_METHODS = LOSS_NAMES + ("hybrid",)
OPTIMIZER_AT_SWITCH = ("fresh", "keep")
FIXED_FOCUS_EVALUATIONS = ("full_set", "running_mean")
FIXED_FOCUS_AT_ONE = ("extrapolate", "zero")


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


# ------------------------------------------------------------------------ arguments and data


def _check_data(data) -> Mosaics:
    if not isinstance(data, Mosaics):
        raise TypeError(f"data must be course_lib.mosaic.Mosaics, got {type(data).__name__}")
    return data


def _check_loss_name(name) -> str:
    if name not in LOSS_NAMES:
        raise ValueError(f"loss must be one of {LOSS_NAMES}, got {name!r}")
    return name


def _check_sgd(epochs, batch_size, momentum) -> tuple[int, int, float]:
    return (
        check_int(epochs, "epochs", minimum=1),
        check_int(batch_size, "batch_size", minimum=1),
        check_fraction(momentum, "momentum", allow_zero=True),
    )


def _per_run_list(value, runs: int, name: str) -> list:
    """One value for every run, or a list of one per run."""
    if isinstance(value, (list, tuple)):
        if len(value) != runs:
            raise ValueError(f"{name} must be one value or one per run ({runs})")
        return list(value)
    return [value] * runs


def _per_run(value, runs: int, name: str, device) -> torch.Tensor:
    values = [check_positive(v, name) for v in _per_run_list(value, runs, name)]
    return torch.tensor(values, device=device)


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


def _per_epoch(records: dict, epochs, steps_per_epoch: int, stacked: bool, **meta) -> History:
    """A :class:`~course_lib.engine.History` of per-epoch records: ``epochs`` (T,) the epochs
    they were taken after (0: before training), ``steps`` the optimizer steps ending them;
    ``switch_step`` in ``meta`` is per run."""
    epochs = torch.as_tensor(list(epochs), dtype=torch.long)
    per_run = tuple(k for k in meta if k == "switch_step")
    meta = {"epochs": epochs, **meta}
    return History(epochs * steps_per_epoch, records, meta, stacked, per_run)


# ----------------------------------------------------- the teaching loop (one run, torch.optim)


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
    ``(focus, classifier, history)``: an ``engine.History`` whose records ``loss`` and
    ``mean_a_z`` (T,) are the epochs' means over their batches; ``history.epochs`` 1..T.
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
        check_loss_inputs(focus.attention(segments[:2]), segments[:2], labels[:2], classifier)
    focus_opt = torch.optim.SGD(focus.parameters(), lr=lr, momentum=momentum)
    classifier_opt = torch.optim.SGD(classifier.parameters(), lr=lr, momentum=momentum)
    losses, a_z = torch.zeros(epochs), torch.zeros(epochs)
    batches = minibatches(len(labels), batch_size)
    with progress_bar(epochs * len(batches), desc=f"train_mosaic ({loss})") as bar:
        for epoch in range(epochs):
            for start, stop in batches:
                x, y = segments[start:stop], labels[start:stop]  # (b, m, *f), (b,)
                alpha = torch.softmax(focus(x), dim=1)  # (b, m)
                value = kernel(alpha, x, y, classifier)
                focus_opt.zero_grad()
                classifier_opt.zero_grad()
                value.backward()
                focus_opt.step()
                classifier_opt.step()
                weight = (stop - start) / len(labels)
                batch_loss = value.item()
                losses[epoch] += weight * batch_loss
                a_z[epoch] += (
                    weight
                    * alpha.detach()[
                        torch.arange(stop - start, device=device), foreground[start:stop]
                    ]
                    .mean()
                    .item()
                )
                bar.update()
                show_loss(bar, batch_loss)
    records = {"loss": losses, "mean_a_z": a_z}
    return focus, classifier, _per_epoch(records, range(1, epochs + 1), len(batches), False)


# ------------------------------------------------------------------------------------ the engine


def _learned_attention(stack: Stack, params, consts, x, z) -> torch.Tensor:
    return torch.softmax(stack.call("focus_models", params, x), dim=1)  # (b, m)


def _frozen_attention(stack: Stack, params, alpha_z, x, z) -> torch.Tensor:
    return _fixed_attention(alpha_z, z, x.shape[1])  # (b, m)


def pair_run(stack: Stack, frozen: bool = False) -> Callable:
    """One run's loss of a stacked focus and classifier, for :class:`RunLosses` (chapter 4).

    ``stack`` holds the groups "classifiers" and, unless ``frozen``, "focus_models".  The
    function returned, ``one_run(names, params, weights, consts, x, y, z)``, takes one run's
    parameters, its one-hot loss selector ``weights`` (3,) over ``names`` and its constant
    (with ``frozen``: its attention on the foreground, ``fixed_attention``) and a batch
    (segments (b, m, *f), labels (b,), foreground (b,)); it returns the run's loss and its
    records: the loss, the mean attention on the foreground a_z, the focus accuracy.
    """
    if not isinstance(stack, Stack):
        raise TypeError(f"stack must be an engine.Stack, got {type(stack).__name__}")
    attend = _frozen_attention if frozen else _learned_attention

    def one_run(names, params, weights, consts, x, y, z):
        alpha = attend(stack, params, consts, x, z)

        def classify(inputs):
            return stack.call("classifiers", params, inputs)

        value = selected_loss(weights, alpha, x, y, classify, names)
        alpha = alpha.detach()
        hit = (alpha.argmax(1) == z).float().mean()
        return value, (value.detach(), alpha.gather(1, z[:, None]).mean(), hit)

    return one_run


class RunLosses:
    """Every run's loss on a batch as ONE ``vmap`` call over the stacked runs (chapters 4 to 7):
    the loss function :func:`course_lib.engine.train` takes, run r's loss at a step being
    ``LOSS_NAMES[index[r]]`` (the schedule's index).

    ``one_run(names, params, weights, consts, *batch) -> (value, records)`` is one run's loss
    (:func:`pair_run`, or chapter 6's text runs), whose loss the one-hot ``weights`` select
    among ``names`` through ``losses.selected_loss`` (only the losses in use are computed);
    ``consts`` one constant per run (stacked, or None); ``data_dim`` None when the batch is
    shared by all runs, 0 when it holds one per run.  A call returns values (R,) and records.
    """

    def __init__(self, one_run: Callable, device, consts=None, data_dim=None):
        if not callable(one_run):
            raise TypeError("one_run must be a function")
        self.one_run, self.device, self.consts, self.data_dim = one_run, device, consts, data_dim
        self._vmapped, self._weights = {}, {}

    def __call__(self, params: dict, batch, index: torch.Tensor, consts=None):
        key = tuple(index.tolist())
        if key not in self._weights:
            self._weights[key] = F.one_hot(index, 3).float().to(self.device)
        names = tuple(LOSS_NAMES[i] for i in sorted(set(key)))
        if names not in self._vmapped:
            dims = (0, 0, None if self.consts is None else 0) + (self.data_dim,) * len(batch)
            self._vmapped[names] = vmap(lambda *a, n=names: self.one_run(n, *a), in_dims=dims)
        consts = self.consts if consts is None else consts
        return self._vmapped[names](params, self._weights[key], consts, *batch)


def _rows(data, data_dim, start: int, stop: int):
    """The batch of rows ``start:stop`` of shared data (``data_dim`` None) or per-run data."""
    if data_dim is None:
        return tuple(t[start:stop] for t in data)
    return tuple(t[:, start:stop] for t in data)


def _end_epoch(plateau, schedule: Schedule, epoch: int, step: int, history) -> None:
    """Fire the plateau on the epoch's records ``history`` (3, R, T): loss, a_z, focus; the
    runs it fires for switch at ``step``, the next one."""
    p = plateau
    if p is None or not bool(schedule.undecided.any()):
        return
    if epoch < max(p.patience, p.min_epochs - 1):
        return
    row, sign = (2, 1.0) if p.metric == "focus" else (0, -1.0)
    gain = sign * (history[row, :, epoch] - history[row, :, epoch - p.patience])
    schedule.decide(gain.cpu() < p.min_delta, step)


def train_epochs(
    params: dict,
    losses: Callable,
    data,
    schedule: Schedule,
    *,
    epochs: int,
    lr,
    batch_size: int,
    momentum: float,
    data_dim=None,
    batch: Callable | None = None,
    plateau: Plateau | None = None,
    held=(),
    on_step: Callable | None = None,
    on_epoch: Callable | None = None,
    desc: str | None = None,
) -> History:
    """Epochs of minibatch SGD with momentum for R stacked runs, on the engine (chapters 4-7).

    Parameters
    ----------
    params : the stacked parameters (``engine.Stack.params``), trained in place.
    losses : the loss function (a :class:`RunLosses`): values (R,) and records (loss, a_z,
        focus accuracy), each (R,).
    data : the data tensors, e.g. (segments, labels, foreground); ``data[1]`` the labels.
    schedule : each run's loss at each step (``engine.Schedule``), optimizer state at a change.
    epochs, lr, batch_size, momentum : the SGD settings (lr a number or (R,)).
    data_dim : None for data shared by all runs, 0 for one per run.
    batch : ``batch(start, stop)`` the batch of those rows (default: the rows of ``data``).
    plateau : a :class:`Plateau` that decides the undecided switches at the end of an epoch.
    held : names of parameters held fixed.
    on_step, on_epoch : ``on_step(epoch, *batch)`` after each step, ``on_epoch(epoch)``
        after each epoch.
    desc : the progress bar's label (default: "R mosaic runs").

    Returns
    -------
    An ``engine.History`` of (R, epochs) records on the parameters' device, ``loss``,
    ``mean_a_z`` and ``focus_accuracy`` (the three records of ``losses``), each the
    batch-size-weighted mean over the epoch's steps, recorded by the engine's ``on_step``
    hook; ``steps`` the optimizer step ending each epoch, ``epochs`` 1 .. epochs.
    """
    n = data[1].shape[-1]
    rows = minibatches(n, batch_size)
    cut = batch or (lambda start, stop: _rows(data, data_dim, start, stop))
    device = next(iter(params.values())).device
    history = torch.zeros(3, len(schedule.first), epochs, device=device)

    def after(step: Step) -> None:
        epoch, i = divmod(step.number, len(rows))
        start, stop = rows[i]
        history[:, :, epoch] += (stop - start) / n * torch.stack(list(step.aux))
        if on_step is not None:
            on_step(epoch, *step.batch)
        if i == len(rows) - 1:
            _end_epoch(plateau, schedule, epoch, step.number + 1, history)
            if on_epoch is not None:
                on_epoch(epoch)

    train(
        params,
        losses,
        steps=epochs * len(rows),
        lr=lr,
        momentum=momentum,
        schedule=schedule,
        batches=lambda s: cut(*rows[s % len(rows)]),
        held=held,
        on_step=after,
        desc=desc or f"{len(schedule.first)} mosaic runs",
    )
    records = dict(zip(("loss", "mean_a_z", "focus_accuracy"), history))
    return _per_epoch(records, range(1, epochs + 1), len(rows), True)


# --------------------------------------------------- the batched trainers: runs for the engine


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
    all runs is one ``vmap`` call over parameters stacked along a run axis and one backward:
    the engine with a schedule that never changes a run's loss.

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
    ``(focus_models, classifiers, history)``: an ``engine.History`` of (R, T) per-epoch
    records ``loss``, ``mean_a_z`` and ``focus_accuracy`` (a fraction).
    """
    if len(losses) != len(focus_models):
        raise ValueError(
            f"losses must name one loss per run ({len(focus_models)}), got {len(losses)}"
        )
    names = [_check_loss_name(name) for name in losses]
    schedule = Schedule.constant([LOSS_NAMES.index(name) for name in names])
    history = _train_pairs(
        focus_models,
        classifiers,
        data,
        schedule,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        momentum=momentum,
    )
    return focus_models, classifiers, history


def _train_pairs(
    focus_models, classifiers, data, schedule: Schedule, *, epochs, lr, batch_size, momentum, **more
) -> History:
    """Train R (focus, classifier) pairs by the engine under ``schedule``, in place; returns
    the per-epoch records (R, T) on the CPU, ``loss``, ``mean_a_z`` and ``focus_accuracy``
    (see :func:`train_epochs`, which ``more`` goes to)."""
    runs = len(focus_models)
    if len(classifiers) != runs:
        raise ValueError(
            f"classifiers must be one per focus model ({runs}), got {len(classifiers)}"
        )
    epochs, batch_size, momentum = _check_sgd(epochs, batch_size, momentum)
    stack = Stack({"focus_models": focus_models, "classifiers": classifiers})
    lrs = _per_run(lr, runs, "lr", stack.device)
    data_dim, tensors = _run_data(data, runs, stack.device)
    with torch.no_grad():  # validate the shapes once, on the first run's first batch
        x, y = (t[0, :2] if data_dim == 0 else t[:2] for t in tensors[:2])
        check_loss_inputs(focus_models[0].attention(x), x, y, classifiers[0])
    history = train_epochs(
        stack.params,
        RunLosses(pair_run(stack), stack.device, data_dim=data_dim),
        tensors,
        schedule,
        epochs=epochs,
        lr=lrs,
        batch_size=batch_size,
        momentum=momentum,
        data_dim=data_dim,
        **more,
    )
    stack.write_back()
    records = {name: value.cpu() for name, value in history.records.items()}
    return History(history.steps, records, history.meta, True)


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
    ``(classifiers, history)``: an ``engine.History`` of (R, T) records, the training loss
    at the frozen alpha (``loss``), at alpha + delta with the same classifier (``loss_plus``)
    and the focus incentive L(alpha) - L(alpha + delta), about delta * (-dL/dalpha)
    (``incentive``); ``history.epochs`` (T,) the epochs they were taken after (0: before
    training), ``history.steps`` the optimizer steps ending them.
    """
    data = _check_data(data)
    runs = len(classifiers)
    if len(losses) != runs:
        raise ValueError(f"losses must name one loss per run ({runs}), got {len(losses)}")
    names = [_check_loss_name(name) for name in losses]
    recorded = _check_fixed_focus(runs, alphas, delta, evaluation, at_one, epochs, record_epochs)
    epochs, batch_size, momentum = _check_sgd(epochs, batch_size, momentum)
    stack = Stack({"classifiers": classifiers})
    lrs = _per_run(lr, runs, "lr", stack.device)
    tensors = tuple(t.to(stack.device) for t in data)
    alpha = torch.tensor([float(a) for a in alphas], device=stack.device)  # (R,)
    alpha_plus = alpha + delta
    if at_one == "zero":
        alpha_plus = torch.where(alpha == 1, alpha, alpha_plus)
    losses = RunLosses(pair_run(stack, frozen=True), stack.device, consts=alpha)
    schedule = Schedule.constant([LOSS_NAMES.index(name) for name in names])
    recorder = _FixedFocusRecorder(
        losses,
        stack.params,
        tensors,
        schedule.first,
        (alpha, alpha_plus),
        recorded,
        evaluation,
        minibatches(len(tensors[1]), batch_size),
    )
    train_epochs(
        stack.params,
        losses,
        tensors,
        schedule,
        epochs=epochs,
        lr=lrs,
        batch_size=batch_size,
        momentum=momentum,
        on_step=recorder.on_step,
        on_epoch=recorder.on_epoch,
    )
    stack.write_back()
    loss, loss_plus = torch.stack(recorder.records, 2).cpu()
    records = {"loss": loss, "loss_plus": loss_plus, "incentive": loss - loss_plus}
    return classifiers, _per_epoch(records, recorded, len(recorder.batches), True)


def _check_fixed_focus(runs, alphas, delta, evaluation, at_one, epochs, record_epochs) -> list:
    """Validate the fixed-focus options; returns the recorded epochs, sorted."""
    check_positive(delta, "delta")
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
    if record_epochs is None:
        return list(range(1, epochs + 1))
    recorded = sorted({check_int(e, "record_epochs entries", 0, epochs) for e in record_epochs})
    if not recorded:
        raise ValueError("record_epochs must name at least one epoch")
    return recorded


class _FixedFocusRecorder:
    """The fixed-focus records, (2, R) per recorded epoch: L(alpha) and L(alpha + delta) with
    the same classifier, on the full set after the epoch or as the mean over the epoch's
    batches, each taken just after its step ("running_mean"; before training: the batches'
    mean).  The engine's epoch e is the experiment's epoch e + 1 (0: before training)."""

    def __init__(self, losses, params, data, index, alphas, recorded, evaluation, batches):
        self.losses, self.params, self.data = losses, params, data
        self.index, self.alphas = index, alphas
        self.recorded, self.evaluation, self.batches = recorded, evaluation, batches
        self.records, self.running = [], 0.0
        if 0 in recorded:
            self.records.append(
                self._full()
                if evaluation == "full_set"
                else sum(self._both(*_rows(data, None, a, b)) for a, b in batches) / len(batches)
            )

    def _both(self, x, y, z) -> torch.Tensor:  # (2, R) with the current classifier
        with torch.no_grad():
            return torch.stack(
                [self.losses(self.params, (x, y, z), self.index, consts=a)[0] for a in self.alphas]
            )

    def _full(self) -> torch.Tensor:
        return self._both(*self.data)

    def on_step(self, epoch: int, x, y, z) -> None:
        if self.evaluation == "running_mean" and epoch + 1 in self.recorded:
            self.running = self.running + self._both(x, y, z) / len(self.batches)

    def on_epoch(self, epoch: int) -> None:
        if epoch + 1 in self.recorded:
            full = self.evaluation == "full_set"
            self.records.append(self._full() if full else self.running)
        self.running = 0.0


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
    return _fixed_attention(alpha_z, foreground, m)


def _fixed_attention(alpha_z: torch.Tensor, foreground: torch.Tensor, m: int) -> torch.Tensor:
    """:func:`fixed_attention` without the checks (it runs inside ``vmap``)."""
    rest = (1 - alpha_z) / (m - 1)
    return rest + (alpha_z - rest) * F.one_hot(foreground, m).to(alpha_z.dtype)


# ---------------------------------------------------------------- the hybrid (chapter 6)


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
    ``(focus, classifier, history)``: an ``engine.History`` of (soft_epochs + hard_epochs,)
    records, the soft phase's epochs first (the two phases' histories joined by
    ``History.then``).
    """
    soft_epochs = check_int(soft_epochs, "soft_epochs", minimum=0)
    hard_epochs = check_int(hard_epochs, "hard_epochs", minimum=0)
    if soft_epochs + hard_epochs == 0:
        raise ValueError("soft_epochs + hard_epochs must be at least 1")
    parts = []
    for name, epochs in (("soft", soft_epochs), ("hard", hard_epochs)):
        if epochs:
            _, _, history = train_mosaic(
                focus,
                classifier,
                data,
                name,
                epochs=epochs,
                lr=lr,
                batch_size=batch_size,
                momentum=momentum,
            )
            parts.append(history)
    history = parts[0]
    for later in parts[1:]:
        history = history.then(later)
    return focus, classifier, history


def train_hybrid_runs(
    focus_models: Sequence[nn.Module],
    classifiers: Sequence[nn.Module],
    data: Mosaics,
    methods: Sequence[str],
    *,
    epochs: int,
    lr,
    switch_step=None,
    plateau: Plateau | None = None,
    batch_size: int = 256,
    momentum: float = 0.9,
    optimizer_at_switch="fresh",
):
    """Train R runs of soft, hard, LVML and hybrid schedules as ONE computation (chapter 6).

    The engine of :func:`train_mosaic_runs` (stacked parameters, one ``vmap`` and one backward
    per step for all runs) under a schedule whose loss can change during training: a "hybrid"
    run uses the soft loss until its switch point and the hard loss after it.  What happens to its
    optimizer state at the switch is ``optimizer_at_switch``: "fresh" (the official code's,
    the default) zeroes its momentum buffers, which is exactly a new ``torch.optim.SGD``
    (whose first step sets the buffer to the gradient); "keep" carries the soft phase's
    momentum buffers into the hard phase, as one optimizer kept across the loss change would.
    The switch point of a hybrid run is a step
    (``switch_step``: the number of soft steps; 0 is pure hard, at least the number of steps
    of training is pure soft) or, where its switch step is None, the first end of an epoch at
    which ``plateau`` fires on that run's own records.

    Parameters
    ----------
    focus_models, classifiers : R modules each, one architecture per list.
    data : the training ``Mosaics`` shared by all runs, or a list of R (one per run).
    methods : R names, "soft", "hard", "lvml" or "hybrid".
    epochs, batch_size, momentum : minibatch SGD settings (batches in a fixed order).
    lr : one learning rate, or one per run.
    switch_step : one int (or None), or one per run; used by the hybrid runs only.
    plateau : the :class:`Plateau` criterion for hybrid runs whose switch step is None.
    optimizer_at_switch : "fresh" or "keep", or one of them per run (used by hybrid runs).

    Returns
    -------
    ``(focus_models, classifiers, history)``: an ``engine.History`` of (R, T) per-epoch
    records over the epoch's batches, ``loss``, ``mean_a_z`` (the mean attention on the
    foreground) and ``focus_accuracy`` (the fraction of mosaics whose most-attended segment
    is the foreground), and ``history.switch_step`` (R,): the optimizer step at which each
    run switched from soft to hard (0 for pure hard and LVML runs, -1 for runs that never
    switched).
    """
    schedule = hybrid_schedule(
        methods, len(focus_models), switch_step, plateau, optimizer_at_switch
    )
    history = _train_pairs(
        focus_models,
        classifiers,
        data,
        schedule,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        momentum=momentum,
        plateau=plateau,
    )
    meta = dict(history.meta, switch_step=schedule.switched_at.clone())
    history = History(history.steps, history.records, meta, True, ("switch_step",))
    return focus_models, classifiers, history


def _check_plateau(plateau) -> Plateau:
    if not isinstance(plateau, Plateau):
        raise TypeError(f"plateau must be a mosaic_training.Plateau, got {type(plateau).__name__}")
    if plateau.metric not in ("focus", "loss"):
        raise ValueError(f"plateau.metric must be 'focus' or 'loss', got {plateau.metric!r}")
    check_int(plateau.patience, "plateau.patience", minimum=1)
    check_positive(plateau.min_delta, "plateau.min_delta", allow_zero=True)
    check_int(plateau.min_epochs, "plateau.min_epochs", minimum=0)
    return plateau


def hybrid_schedule(methods, runs: int, switch_step, plateau, optimizer_at_switch) -> Schedule:
    """The schedule of :func:`train_hybrid_runs` (chapter 6), an ``engine.Schedule`` over
    ``LOSS_NAMES``: a "hybrid" run is soft, then hard from its switch step (None: when
    ``plateau`` fires, which is then required), its optimizer state zeroed there ("fresh") or
    kept ("keep", ``optimizer_at_switch``, one or one per run); a pure run keeps its loss
    ("hard" and "lvml" from step 0 for the records; "soft" never switches)."""
    if len(methods) != runs:
        raise ValueError(f"methods must name one method per run ({runs}), got {len(methods)}")
    for name in methods:
        if name not in TRAINING_METHODS:
            raise ValueError(f"methods must be among {TRAINING_METHODS}, got {name!r}")
    switch = []
    for method, value in zip(methods, _per_run_list(switch_step, runs, "switch_step")):
        if method == "hybrid":
            switch.append(None if value is None else check_int(value, "switch_step", minimum=0))
        else:
            switch.append(NEVER if method == "soft" else 0)
    keep = _per_run_list(optimizer_at_switch, runs, "optimizer_at_switch")
    for value in keep:
        if value not in OPTIMIZER_AT_SWITCH:
            raise ValueError(
                f"optimizer_at_switch must be one of {OPTIMIZER_AT_SWITCH}, got {value!r}"
            )
    if any(s is None for s in switch):
        if plateau is None:
            raise ValueError("a hybrid run without a switch step needs a plateau criterion")
        plateau = _check_plateau(plateau)
    first = [LOSS_NAMES.index("soft" if name == "hybrid" else name) for name in methods]
    then = [LOSS_NAMES.index("hard" if name == "hybrid" else name) for name in methods]
    return Schedule(first, then, switch, [value == "fresh" for value in keep])
