"""The one training loop of the course (chapters 1 to 7).

Every trainer of the course is R runs trained together by one loop, :func:`train`:

* the parameters of the R runs are one dict of stacked tensors, a leading run axis R
  (:class:`Stack` builds it from R modules of one architecture; one run of a module's own
  parameters works too);
* a step is: the batch (``batches(step)``, or None for full-batch training), each run's loss
  at this step (``schedule(step)``, an index the loss function understands), the loss
  function ``loss(params, batch, index) -> (values (R,), aux)``, one backward pass of the
  summed values (the runs are independent, so that gives each run its own gradient) and an
  update with one learning rate per run: plain gradient descent ``p <- p - lr g``, or SGD
  with momentum in PyTorch's convention ``v <- momentum v + g; p <- p - lr v``;
* a :class:`Schedule` changes a run's loss at a step (a hybrid is a schedule), and says what
  happens to its optimizer state then: zeroed ("fresh", a new optimizer) or kept;
* parameters may be held fixed (not trained), or some of their entries (a mask multiplies
  their gradient);
* two hooks see each step as a :class:`Step` and may stop the run by returning True:
  ``record`` before the update (it sees the parameters the loss was taken at) and
  ``on_step`` after it; with ``final`` the loss is taken once more after the last step and
  handed to ``record``;
* a progress bar (:mod:`course_lib.progress`) counts the steps.

What a trainer records comes back as one type, :class:`History`: the optimizer steps the
records were taken after, and the records by name (fractions, never percentages).

The trainers build runs for it: ``training.train_full_batch`` (Part I, full batch, plain
gradient descent), ``mosaic_training`` (Part II: minibatches, momentum, the hybrid's
schedule; chapters 6 and 7 train their text and law runs through it) and ``flow_descent``
(chapters 5 and 6, one run in float64).  The plain loops shown first in the chapters
(``training.gradient_step``, ``mosaic_training.train_mosaic``) stay, tested equal to it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.func import functional_call, stack_module_state

from ._validate import check_fraction, check_int
from .progress import progress_bar, show_loss

__all__ = ["NEVER", "History", "Stack", "Schedule", "Step", "minibatches", "train"]

NEVER = 2**62  # a switch step no training reaches


_HISTORY_FIELDS = ("steps", "records", "meta", "stacked", "per_run")


@dataclass(frozen=True)
class History:
    """What a trainer recorded: the one history type of the course (chapters 1 to 7).

    ``steps`` (T,) long: the optimizer step after which each record was taken (0: before
    training; a per-epoch record is taken at the step that ends its epoch).  ``records``:
    name -> tensor ``([R,] T, ...)``, one row per entry of ``steps``, with a leading run axis R
    when ``stacked``.  ``meta``: name -> what describes the run(s) rather than a step (the
    learning rate, the topic words, ``epochs`` (T,) of per-epoch records, chapter 6's
    ``switch_step`` (R,), ...); ``per_run`` names the metadata with a run axis.  Every field
    reads as an attribute: ``history.loss`` is ``history.records["loss"]``, ``history.lr`` is
    ``history.meta["lr"]``.  Rates and accuracies are fractions in [0, 1], never percentages.

    >>> h = History(torch.tensor([0, 5]), {"loss": torch.tensor([[1.0, 0.5], [1.0, 2.0]])},
    ...             {"lr": 0.1}, stacked=True)
    >>> h.n_replicas, h.lr, h.replica(0).loss.tolist(), h.first_step_below(0.8).tolist()
    (2, 0.1, [1.0, 0.5], [5, -1])
    """

    steps: torch.Tensor
    records: dict
    meta: dict = field(default_factory=dict)
    stacked: bool = False
    per_run: tuple = ()

    def __post_init__(self):
        steps = self.steps
        if not isinstance(steps, torch.Tensor) or steps.dim() != 1:
            raise ValueError("steps must be a 1-D tensor of optimizer steps")
        if not isinstance(self.records, dict) or not self.records:
            raise TypeError("records must be a non-empty dict of name -> tensor")
        if not isinstance(self.meta, dict):
            raise TypeError(f"meta must be a dict, got {type(self.meta).__name__}")
        axis, runs = (1 if self.stacked else 0), set()
        for name, value in self.records.items():
            if not isinstance(value, torch.Tensor) or value.dim() <= axis:
                raise ValueError(f"records[{name!r}] must be a tensor ([R,] T, ...)")
            if value.shape[axis] != len(steps):
                raise ValueError(
                    f"records[{name!r}] has {value.shape[axis]} rows, steps has {len(steps)}"
                )
            runs.add(value.shape[0])
        if self.stacked and len(runs) != 1:
            raise ValueError(f"stacked records must share one run axis, got sizes {runs}")
        clash = (set(self.records) & set(self.meta)) | (
            (set(self.records) | set(self.meta)) & set(dir(type(self)))
        )
        if clash:
            raise ValueError(f"field names must be unique and not History's own: {sorted(clash)}")
        if set(self.per_run) - set(self.meta):
            raise ValueError(f"per_run must name metadata, got {self.per_run!r}")

    def __getattr__(self, name: str):
        if name.startswith("__") or name in _HISTORY_FIELDS:
            raise AttributeError(name)
        records, meta = self.__dict__.get("records", {}), self.__dict__.get("meta", {})
        if name in records:
            return records[name]
        if name in meta:
            return meta[name]
        raise AttributeError(
            f"this History has no field {name!r}: records {sorted(records)}, "
            f"metadata {sorted(meta)}"
        )

    @property
    def names(self) -> list[str]:
        """The names of the records."""
        return list(self.records)

    @property
    def n_replicas(self) -> int:
        """How many runs the history holds (1 without a run axis)."""
        return next(iter(self.records.values())).shape[0] if self.stacked else 1

    def replica(self, r: int) -> "History":
        """Run ``r`` of a stacked history alone, without the run axis."""
        if not self.stacked:
            raise ValueError("replica: this is the history of one run; it has no run axis")
        n = self.n_replicas
        r = check_int(r, "r", minimum=-n, maximum=n - 1)
        meta = {k: (v[r] if k in self.per_run else v) for k, v in self.meta.items()}
        return History(self.steps, {k: v[r] for k, v in self.records.items()}, meta)

    def first_step_below(self, threshold: float) -> torch.Tensor:
        """The first recorded step whose ``loss`` is below ``threshold`` (-1 if none): a 0-d
        long tensor, or (R,) for a stacked history."""
        below = self.loss < threshold  # ([R,] T)
        first = below.long().argmax(dim=-1)
        return torch.where(below.any(dim=-1), self.steps[first], torch.full_like(first, -1))

    @property
    def scaled_norms(self) -> torch.Tensor:
        """Part I (chapter 2's identity): ``||q|| ||w_tau||`` from the records ``topic_norms``
        and ``query_norm``, shaped like ``topic_norms``."""
        return self.topic_norms * self.query_norm.unsqueeze(-1)

    def then(self, later: "History") -> "History":
        """This run continued by ``later``, a run that started where this one ended (chapter
        6's two phases): the records joined along time, ``later``'s steps (and ``epochs``, if
        both have them) counted on from this history's last; the rest of ``meta`` is this
        history's."""
        if not isinstance(later, History) or later.names != self.names:
            raise ValueError(f"later must be a History with the records {self.names}")
        if later.stacked != self.stacked:
            raise ValueError("later must be stacked if and only if this history is")
        axis, last = (1 if self.stacked else 0), self.steps[-1] if len(self.steps) else 0
        records = {k: torch.cat([v, later.records[k]], axis) for k, v in self.records.items()}
        meta = dict(self.meta)
        if "epochs" in self.meta and "epochs" in later.meta:
            epochs = self.meta["epochs"]
            meta["epochs"] = torch.cat([epochs, later.meta["epochs"] + epochs[-1]])
        steps = torch.cat([self.steps, later.steps + last])
        return History(steps, records, meta, self.stacked, self.per_run)


def _stack(modules: Sequence[nn.Module], name: str):
    if not modules or not all(isinstance(mod, nn.Module) for mod in modules):
        raise TypeError(f"{name} must be a non-empty list of torch modules")
    if len({type(mod) for mod in modules}) != 1:
        raise ValueError(f"{name} must all have the same architecture (one class)")
    shapes = [[p.shape for p in mod.parameters()] for mod in modules]
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"{name} must all have the same parameter shapes")
    params, _ = stack_module_state(list(modules))
    base = copy.deepcopy(modules[0]).to("meta")
    return base, {k: v.detach().clone() for k, v in params.items()}


class Stack:
    """The modules of R runs, stacked (chapters 4 to 7): ``groups`` maps a name to R modules
    of one architecture; ``params`` holds every group's parameters (R, ...) under
    "group.parameter" names, the dict :func:`train` trains.

    >>> s = Stack({"net": [nn.Linear(2, 1), nn.Linear(2, 1)]})
    >>> sorted(s.params), tuple(s.params["net.weight"].shape)
    (['net.bias', 'net.weight'], (2, 1, 2))
    """

    def __init__(self, groups: dict[str, Sequence[nn.Module]]):
        if not isinstance(groups, dict) or not groups:
            raise TypeError("groups must be a non-empty dict of name -> list of modules")
        self.modules, self.bases, self.keys, self.params = {}, {}, {}, {}
        for group, modules in groups.items():
            self.bases[group], params = _stack(modules, group)
            self.modules[group], self.keys[group] = list(modules), list(params)
            self.params.update({f"{group}.{k}": v for k, v in params.items()})
        self.device = next(iter(self.params.values())).device

    def call(self, group: str, params: dict, inputs: torch.Tensor) -> torch.Tensor:
        """Module ``group`` of one run (``params``: that run's slice) applied to ``inputs``."""
        own = {k: params[f"{group}.{k}"] for k in self.keys[group]}
        return functional_call(self.bases[group], own, (inputs,))

    def write_back(self) -> None:
        """Copy the trained parameters into the modules given (training is in place)."""
        with torch.no_grad():
            for group, modules in self.modules.items():
                for r, mod in enumerate(modules):
                    for key, param in mod.named_parameters():
                        param.copy_(self.params[f"{group}.{key}"][r])


class Schedule:
    """Each run's loss at each step (chapter 6's hybrid is a schedule).

    Run r uses loss ``first[r]`` before its switch step and ``then[r]`` from it on (indices
    the loss function understands, e.g. into ``law.LOSS_NAMES``).  A switch step is a step
    number (0: ``then`` throughout; ``NEVER``: ``first`` throughout) or None: undecided, until
    :meth:`decide` sets it (chapter 6's plateau).  ``fresh[r]``: whether run r's optimizer
    state is zeroed when its loss changes (a new optimizer) or kept.  ``switched_at`` (R,)
    records the step at which each run switched (-1: never).

    >>> s = Schedule([0, 0], [1, 1], [2, None], [True, False])
    >>> s(1).tolist(), s(2).tolist(), s.switched_at.tolist()
    ([0, 0], [1, 0], [2, -1])
    """

    def __init__(self, first, then, switch, fresh):
        cpu = "cpu"  # the schedule is CPU bookkeeping: no device sync at a step
        self.first = torch.as_tensor(first, dtype=torch.long, device=cpu)
        self.then = torch.as_tensor(then, dtype=torch.long, device=cpu)
        runs = len(self.first)
        if not (len(self.then) == len(switch) == len(fresh) == runs):
            raise ValueError("first, then, switch and fresh must have one entry per run")
        self.undecided = torch.tensor([s is None for s in switch], device=cpu)
        self.switch = torch.tensor([NEVER if s is None else s for s in switch], device=cpu)
        self.fresh = torch.tensor([bool(f) for f in fresh], device=cpu)
        self.switched_at = torch.full((runs,), -1, device=cpu)

    @classmethod
    def constant(cls, index) -> "Schedule":
        """Each run keeps one loss, ``index[r]``, throughout."""
        index = list(index)
        return cls(index, index, [NEVER] * len(index), [False] * len(index))

    def __call__(self, step: int) -> torch.Tensor:
        """(R,) each run's loss at ``step``; notes the runs that switch at it."""
        decided = ~self.undecided
        self.switched_at[decided & (self.switch == step)] = step
        return torch.where(decided & (self.switch <= step), self.then, self.first)

    def decide(self, fires: torch.Tensor, step: int) -> None:
        """The undecided runs where ``fires`` (R,) switch at ``step``."""
        fires = self.undecided & fires.cpu()
        self.switch = torch.where(fires, step, self.switch)
        self.undecided = self.undecided & ~fires


class Step(NamedTuple):
    """What the hooks of :func:`train` see of a step: its number, its batch, each run's loss
    index (None without a schedule), the loss values (R,) at the parameters before the step's
    update, and what else the loss function returned (``aux``)."""

    number: int
    batch: Any
    index: torch.Tensor | None
    values: torch.Tensor
    aux: Any


def minibatches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """The (start, stop) rows of each batch of an epoch: the official code's fixed order (no
    shuffling), the last batch kept (chapter 4).

    >>> minibatches(5, 2)
    [(0, 2), (2, 4), (4, 5)]
    """
    n, batch_size = check_int(n, "n", minimum=1), check_int(batch_size, "batch_size", minimum=1)
    return [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def _check_train(params, steps, momentum, held, schedule) -> list[str]:
    """Validate :func:`train`'s arguments; returns the names of the trained parameters."""
    if not isinstance(params, dict) or not params:
        raise TypeError("params must be a non-empty dict of name -> tensor")
    if not all(isinstance(v, torch.Tensor) for v in params.values()):
        raise TypeError("params must map names to tensors")
    check_int(steps, "steps", minimum=0)
    if momentum is not None:
        check_fraction(momentum, "momentum", allow_zero=True)
    if isinstance(held, str) or set(held) - set(params):
        raise ValueError(f"held must be a sequence of names in params, got {held!r}")
    if schedule is not None and not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be an engine.Schedule, got {type(schedule).__name__}")
    return [k for k in params if k not in held]


def _learning_rates(lr, params: dict) -> torch.Tensor:
    """(R,) or (1,) learning rates; a number becomes a tensor of the parameters' dtype."""
    if isinstance(lr, torch.Tensor):
        if lr.dim() != 1 or not bool((lr > 0).all()):
            raise ValueError("lr must be a positive number or a 1-D tensor of them, one per run")
        return lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number or a 1-D tensor, got {lr!r}")
    first = next(iter(params.values()))
    return torch.tensor([float(lr)], dtype=first.dtype, device=first.device)


def _restart(buffers: dict, index, previous, fresh) -> None:
    """Zero the momentum of the runs whose loss changes now and whose state starts afresh."""
    now = (index != previous) & fresh
    if bool(now.any()):
        kept = (~now).float().to(next(iter(buffers.values())).device)
        for buf in buffers.values():
            buf.mul_(kept.view(-1, *[1] * (buf.dim() - 1)))


@torch.no_grad()
def _update(params: dict, grads: dict, buffers, lr, momentum, masks) -> None:
    """One step of every run: p <- p - lr g (gradient descent) or, with momentum buffers,
    v <- momentum v + g; p <- p - lr v.  ``masks[name]`` multiplies that gradient first."""
    for key, g in grads.items():
        if key in masks:
            g = g * masks[key]
        if buffers is not None:
            g = buffers[key].mul_(momentum).add_(g)
        params[key].sub_(lr.view(-1, *[1] * (g.dim() - 1)) * g)


def train(
    params: dict,
    loss: Callable,
    *,
    steps: int,
    lr,
    momentum: float | None = None,
    schedule: Schedule | None = None,
    batches: Callable[[int], Any] | None = None,
    held: Sequence[str] = (),
    masks: dict | None = None,
    record: Callable[[Step], bool | None] | None = None,
    on_step: Callable[[Step], bool | None] | None = None,
    final: bool = False,
    desc: str = "training",
) -> int:
    """Train R stacked runs in place: the one loop of the course (chapters 1 to 7).

    Parameters
    ----------
    params : name -> tensor (R, ...), updated in place (e.g. ``Stack.params``).
    loss : ``loss(params, batch, index) -> (values (R,), aux)``: each run's loss.
    steps : the number of updates.
    lr : a number, or (R,) one per run (a number takes the parameters' dtype).
    momentum : None for plain gradient descent, else SGD's momentum in [0, 1).
    schedule : each run's loss index at each step and its optimizer state at a change.
    batches : ``batches(step)``, the step's batch (None: full batch, ``batch`` is None).
    held : names of parameters held fixed (not trained).
    masks : name -> tensor multiplying that parameter's gradient (0 holds entries fixed).
    record, on_step : hooks called with a :class:`Step` before and after each update;
        returning True stops training there (``record``: before that step's update).
    final : take the loss once more after the last step (no gradient) and ``record`` it.
    desc : the progress bar's label.

    Returns
    -------
    The number of updates taken (less than ``steps`` when a hook stopped the run).
    """
    trained = _check_train(params, steps, momentum, held, schedule)
    lr, masks = _learning_rates(lr, params), masks or {}
    for key in trained:
        params[key].requires_grad_()
    buffers = None if momentum is None else {k: torch.zeros_like(params[k]) for k in trained}
    previous = None
    with progress_bar(steps, desc=desc) as bar:
        for number in range(steps):
            batch = None if batches is None else batches(number)
            index = None if schedule is None else schedule(number)
            if buffers is not None and previous is not None:
                _restart(buffers, index, previous, schedule.fresh)
            previous = index
            values, aux = loss(params, batch, index)
            if record is not None and record(Step(number, batch, index, values, aux)):
                bar.total = bar.n  # stopped early: a finished run, not a failed one
                return number
            grads = torch.autograd.grad(values.sum(), [params[k] for k in trained])
            _update(params, dict(zip(trained, grads)), buffers, lr, momentum, masks)
            bar.update()
            show_loss(bar, values)
            if on_step is not None and on_step(Step(number, batch, index, values, aux)):
                bar.total = bar.n
                return number + 1
        if final and record is not None:
            batch = None if batches is None else batches(steps)
            with torch.no_grad():
                values, aux = loss(params, batch, previous)
            record(Step(steps, batch, previous, values, aux))
    return steps
