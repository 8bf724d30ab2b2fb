"""Chapter 6 (the hybrid): the recipes of its notebook and its exercise notebook.

* :class:`Settings`: the chapter's sizes (one instance per mode, built in the notebook);
* section 1 (the ODE): :func:`alpha_of`;
* sections 2 and 3 (mosaics): :func:`steps_per_epoch`, :func:`build_runs` and
  :func:`train_plan` (a plan of methods and switch epochs, every seed, trained by
  ``mosaic_training.train_hybrid_runs``), :func:`first_epoch_above`, :func:`crossing`,
  :func:`gain_over_pure`, :func:`envelope_row`, :func:`envelope_table`,
  :func:`evaluations`, :func:`load_images`, :func:`shortcut_report`;
* section 5 (text): :func:`train_text_runs`, the models on text trained by the engine of
  :mod:`course_lib.mosaic_training` (the words are the segments);
* exercise 6.2: :func:`measured_momentum_lag`, ``torch.optim.SGD``'s fresh-optimizer lag.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import flow, sst
from .._validate import check_fraction, check_int, check_positive
from ..engine import History, Stack
from ..focus import CNNClassifier, CNNFocus, MLPClassifier, MLPFocus
from ..law import METHODS
from ..losses import selected_loss
from ..metrics import evaluate_mosaics, per_class_focus_accuracy
from ..mosaic import Mosaics
from ..mosaic_training import (
    RunLosses,
    hybrid_schedule,
    train_epochs,
    train_hybrid_runs,
)
from ..plotting import NATURAL_RULE
from ..topic import TopicAttention
from . import ch04

__all__ = [
    "Settings",
    "alpha_of",
    "steps_per_epoch",
    "build_runs",
    "train_plan",
    "first_epoch_above",
    "crossing",
    "gain_over_pure",
    "envelope_row",
    "envelope_table",
    "evaluations",
    "load_images",
    "shortcut_report",
    "train_text_runs",
    "measured_momentum_lag",
]


@dataclass(frozen=True)
class Settings:
    """The sizes of chapter 6 (section "Settings"), one instance per mode.

    ``ode_late_end``: last time of the late-time rate check (m = 5, C = 3).
    ``linear_*``: the linear mosaics: ``classes`` C (segments in R^{C+1}), ``m`` segments,
    ``train`` mosaics per seed, ``epochs``, ``lr`` (SGD, momentum 0.9).
    ``seeds`` per method; the hybrid switches after ``switch_fraction`` of the epochs;
    ``sweep_fractions``: the switch points of the sweep (fractions of the epochs).
    ``images``: "digits" (scikit-learn, offline) or "cifar10" (downloaded once), with
    ``image_train``/``image_test`` mosaics (m = 5), ``image_epochs``, ``image_lr`` (the
    official 0.05); ``digits20_train``/``digits20_epochs``: digit mosaics with m = 20.
    ``text``: "sst2" (bundled) or "hatexplain" (downloaded once), with ``text_embed_dim``
    (the chapter-1 model), ``text_epochs``, ``text_lr`` (momentum 0.9), ``text_batch``.
    ``batch_size``: the minibatch size on mosaics (the official 256).
    """

    ode_late_end: float
    linear_classes: int
    linear_m: int
    linear_train: int
    linear_epochs: int
    linear_lr: float
    seeds: int
    switch_fraction: float
    sweep_fractions: tuple
    images: str
    image_train: int
    image_test: int
    image_epochs: int
    image_lr: float
    digits20_train: int
    digits20_epochs: int
    text: str
    text_embed_dim: int
    text_epochs: int
    text_lr: float
    text_batch: int
    batch_size: int


# ------------------------------------------------------------------ section 1: the ODE


def alpha_of(method: str, t, *, m: int, C: int, switch_time: float | None = None) -> np.ndarray:
    """alpha(t), the attention on the foreground, of chapter 5's ODE for ``method`` (section 1).

    ``t`` (T,) times; ``m`` segments, ``C`` classes; ``switch_time`` the hybrid's switch.
    Returns (T,): ``e^nu / (e^nu + m - 1)`` with nu from ``flow.solve_flow``."""
    m = check_int(m, "m", minimum=2)
    nu = flow.solve_flow(method, t, m=m, C=C, switch_time=switch_time)[1]
    return np.exp(nu) / (np.exp(nu) + m - 1)


# ------------------------------------------------------- sections 2 and 3: the mosaics


def steps_per_epoch(n: int, batch_size: int) -> int:
    """The optimizer steps of one epoch of ``n`` mosaics (the last batch kept).

    >>> steps_per_epoch(1000, 250), steps_per_epoch(1001, 250)
    (4, 5)
    """
    n = check_int(n, "n", minimum=1)
    return math.ceil(n / check_int(batch_size, "batch_size", minimum=1))


def _check_plan(plan) -> list:
    if not plan or not all(isinstance(e, tuple) and len(e) >= 2 for e in plan):
        raise ValueError("plan must be a non-empty list of (method, switch epoch, ...) tuples")
    for method, *_ in plan:
        if method not in METHODS:
            raise ValueError(f"plan's methods must be among {METHODS}, got {method!r}")
    return list(plan)


def build_runs(
    make_focus: Callable[[], nn.Module],
    make_classifier: Callable[[], nn.Module],
    plan: Sequence[tuple],
    seeds: int,
    device=None,
):
    """The runs of a plan for every seed (sections 2 and 3), seed-major.

    ``plan``: entries ``(method, switch epoch, ...)``; run ``s * len(plan) + k`` is entry k
    with seed s (``torch.manual_seed(s)`` before building its models).  Returns
    ``(focus_models, classifiers, methods, switches)``, lists of ``seeds * len(plan)``."""
    plan = _check_plan(plan)
    seeds = check_int(seeds, "seeds", minimum=1)
    focus_models, classifiers, methods, switches = [], [], [], []
    for seed in range(seeds):
        for method, switch, *_ in plan:
            torch.manual_seed(seed)
            focus_models.append(make_focus().to(device))
            classifiers.append(make_classifier().to(device))
            methods.append(method)
            switches.append(switch)
    return focus_models, classifiers, methods, switches


def train_plan(
    make_focus: Callable[[], nn.Module],
    make_classifier: Callable[[], nn.Module],
    plan: Sequence[tuple],
    data,
    *,
    seeds: int,
    epochs: int,
    lr: float,
    batch_size: int,
    device=None,
    **options,
) -> tuple[list, list, History]:
    """Build a plan's runs (:func:`build_runs`) and train them as one computation (sections 2
    and 3), through ``mosaic_training.train_hybrid_runs``.

    Parameters
    ----------
    make_focus, make_classifier : build one focus model and one classifier.
    plan : entries ``(method, switch epoch)`` or ``(method, switch epoch, optimizer at
        switch)`` ("fresh" or "keep"); a switch epoch None switches on the ``plateau`` given
        in ``options``.
    data : one ``Mosaics`` for all runs, or a list of one per seed.
    seeds : the seeds 0 .. seeds - 1 of every entry.
    epochs, lr, batch_size : the SGD settings (momentum 0.9).
    device : where the models are built (None: the default device).
    options : further arguments of ``train_hybrid_runs`` (``plateau``).

    Returns
    -------
    ``(focus_models, classifiers, history)``, run ``s * len(plan) + k`` being entry k with
    seed s; ``history`` the ``engine.History`` of ``train_hybrid_runs``, (seeds * len(plan), T)
    records.
    """
    plan = _check_plan(plan)
    seeds = check_int(seeds, "seeds", minimum=1)
    if isinstance(data, Mosaics):
        run_data, n = data.to(device), len(data.labels)
    elif isinstance(data, (list, tuple)) and len(data) == seeds:
        run_data = [item for item in data for _ in plan]
        n = len(data[0].labels)
    else:
        raise TypeError(f"data must be one Mosaics or a list of {seeds} (one per seed)")
    focus, classifiers, methods, switches = build_runs(
        make_focus, make_classifier, plan, seeds, device
    )
    spe = steps_per_epoch(n, batch_size)
    if any(len(entry) > 2 for entry in plan):
        options["optimizer_at_switch"] = [entry[2] for entry in plan] * seeds
    _, _, history = train_hybrid_runs(
        focus,
        classifiers,
        run_data,
        methods,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        switch_step=[None if e is None else e * spe for e in switches],
        **options,
    )
    return focus, classifiers, history


def first_epoch_above(curve, level: float) -> int | None:
    """The first epoch (1-based) at which a curve (T,) exceeds ``level`` (None if never).

    >>> first_epoch_above([0.1, 0.4, 0.6, 0.9], 0.5)
    3
    """
    curve = np.asarray(curve)
    if curve.ndim != 1:
        raise ValueError(f"curve must be 1-D (one value per epoch), got shape {curve.shape}")
    above = np.nonzero(curve > level)[0]
    return int(above[0]) + 1 if above.size else None


def crossing(curve, level: float) -> float:
    """The fractional epoch (1-based, as in :func:`first_epoch_above`) at which a curve (T,)
    first crosses ``level``: chapter 4's ``first_time`` on the epoch axis (section 2).

    >>> float(crossing([0.0, 0.4, 0.8], 0.6))  # halfway between epochs 2 and 3
    2.5
    """
    curve = np.asarray(curve, dtype=float)
    above = np.nonzero(curve > level)[0]
    if above.size == 0 or above[0] == 0:
        raise ValueError(f"curve must start at or below level {level} and cross it")
    return ch04.first_time(curve, np.arange(1, len(curve) + 1), level)


def gain_over_pure(curves, soft, hard) -> np.ndarray:
    """(seeds, T) curves minus the better pure method (``soft``, ``hard``: (seeds, T)) at each
    epoch, per seed (section 2)."""
    curves, soft, hard = (np.asarray(c) for c in (curves, soft, hard))
    if not curves.shape == soft.shape == hard.shape:
        raise ValueError(
            f"curves, soft and hard must have one shape, got {curves.shape}, {soft.shape}, "
            f"{hard.shape}"
        )
    return curves - np.maximum(soft, hard)


def envelope_row(curves, soft, hard, switch: int) -> tuple:
    """The mean gain over the better pure method (section 2): its largest value and epoch, and
    the largest shortfall at or after epoch ``switch`` + 1 and its epoch (1-based).  Curves as
    in :func:`gain_over_pure`."""
    gain = gain_over_pure(curves, soft, hard).mean(0)
    switch = check_int(switch, "switch", 0, len(gain) - 1)
    after = gain[switch:]
    return (
        float(gain.max()),
        int(np.argmax(gain)) + 1,
        float(after.min()),
        switch + int(np.argmin(after)) + 1,
    )


ENVELOPE_HEADER = (
    "method",
    "switch epoch",
    "optimizer at switch",
    "largest gain over max(soft, hard)",
    "largest shortfall after switch",
    "epoch a_z > 0.5",
    "epoch a_z > 0.9",
    "final a_z",
)


def envelope_table(a_z, plan, *, plateau_epoch: int, names: Mapping[str, str]):
    """Section 2's table: every plan entry's :func:`envelope_row` against pure soft and hard.

    ``a_z`` (seeds, len(plan), T) training curves; ``plan`` entries ``(method, switch epoch,
    optimizer)`` with pure soft and hard first; a switch None (the plateau) counts from
    ``plateau_epoch``; ``names`` the methods' names.  Rows: pure methods first, then the
    hybrids by optimizer and switch.  Returns ``(envelope, markdown)``: ``envelope[k]`` the
    envelope row of entry k, ``markdown`` the table."""
    a_z, plan = np.asarray(a_z), _check_plan(plan)
    if a_z.ndim != 3 or a_z.shape[1] != len(plan):
        raise ValueError(f"a_z must have shape (seeds, {len(plan)}, T), got {a_z.shape}")
    pure = [method for method, *_ in plan]
    if "soft" not in pure or "hard" not in pure:
        raise ValueError("plan must have a pure soft and a pure hard entry")
    soft, hard = a_z[:, pure.index("soft")], a_z[:, pure.index("hard")]
    order = sorted(
        range(len(plan)),
        key=lambda k: (plan[k][0] == "hybrid", plan[k][2], plan[k][1] is None, plan[k][1] or 0),
    )
    envelope, rows = {}, [ENVELOPE_HEADER, ["---"] * len(ENVELOPE_HEADER)]
    for k in order:
        method, switch, optimizer = plan[k]
        curve = a_z[:, k].mean(0)
        first = plateau_epoch if switch is None else switch
        envelope[k] = envelope_row(a_z[:, k], soft, hard, first if method == "hybrid" else 0)
        hybrid = method == "hybrid"
        rows.append(
            [
                names[method],
                ("plateau" if switch is None else switch) if hybrid else "-",
                optimizer if hybrid else "-",
                f"{envelope[k][0]:+.4f} (epoch {envelope[k][1]})",
                f"{envelope[k][2]:+.4f} (epoch {envelope[k][3]})",
                first_epoch_above(curve, 0.5),
                first_epoch_above(curve, 0.9),
                f"{curve[-1]:.4f}",
            ]
        )
    return envelope, "\n".join("| " + " | ".join(map(str, row)) + " |" for row in rows)


def evaluations(
    focus_models, classifiers, data: Mosaics, plan_size: int, entries, seeds, device=None
):
    """Evaluate chosen plan entries on test mosaics, every seed (sections 2 and 3).

    Parameters
    ----------
    focus_models, classifiers : the trained runs, seed-major as in :func:`build_runs`.
    data : the test ``Mosaics``.
    plan_size : the number of entries of the plan.
    entries : ``{name: index of the entry in the plan}``.
    seeds : the number of seeds.
    device : where to move ``data`` (None: leave it).

    Returns
    -------
    ``{name: [metrics.evaluate_mosaics of the entry, one per seed]}``.
    """
    plan_size = check_int(plan_size, "plan_size", minimum=1)
    seeds = check_int(seeds, "seeds", minimum=1)
    if len(focus_models) != plan_size * seeds or len(classifiers) != plan_size * seeds:
        raise ValueError(f"focus_models and classifiers must be {plan_size * seeds} runs")
    data = data.to(device)
    out = {}
    for name, k in entries.items():
        k = check_int(k, "entries' indices", 0, plan_size - 1)
        out[name] = [
            evaluate_mosaics(focus_models[s * plan_size + k], classifiers[s * plan_size + k], data)
            for s in range(seeds)
        ]
    return out


def load_images(name: str):
    """Section 3's image data: ``(train_images, train_classes, test_images, test_classes,
    make_focus, make_classifier)`` for "digits" (scikit-learn's 8x8, MLP models) or
    "cifar10" (downloaded once, scaled to [-1, 1] as the official code does, CNN models); the
    images are chapter 4's (:func:`course_lib.chapters.ch04.load_images`)."""
    if name not in ("digits", "cifar10"):
        raise ValueError(f"name must be 'digits' or 'cifar10', got {name!r}")
    images = (*ch04.load_images(name, "train"), *ch04.load_images(name, "test"))
    if name == "digits":
        return (*images, lambda: MLPFocus(64, 32), lambda: MLPClassifier(64, 3, 32))
    return (*images, CNNFocus, lambda: CNNClassifier(3))


def shortcut_report(results, test: Mosaics, label: str, natural=NATURAL_RULE) -> list:
    """Print, per run, its accuracy, FFPT and per-class focus accuracy, marking the runs with
    the elimination shortcut (section 4): one of three classes found in under 50 % of its
    mosaics, the other two in over 85 %, accuracy over 85 %.

    ``results``: ``{method: [MosaicEvaluation per seed]}`` (:func:`evaluations`) on ``test``;
    each method is read with its ``natural`` prediction rule.  Returns one tuple per shortcut
    run: ``(method, seed, eliminated class, accuracy, FFPT, share of the focus misses in the
    eliminated class, focus accuracy of that class)``."""
    if not isinstance(test, Mosaics):
        raise TypeError(f"test must be course_lib.mosaic.Mosaics, got {type(test).__name__}")
    found = []
    for method, evals in results.items():
        for seed, e in enumerate(evals):
            per_class = per_class_focus_accuracy(
                e.alpha.cpu(), test.foreground, test.labels, 3
            ).tolist()
            accuracy, ffpt = e.accuracy[natural[method]], e.table[natural[method]]["FFPT"]
            low = [c for c in range(3) if per_class[c] < 50]
            took = (
                len(low) == 1
                and accuracy > 85
                and all(per_class[c] > 85 for c in range(3) if c not in low)
            )
            print(
                f"{label} {method:6s} seed {seed}: accuracy {accuracy:5.1f} %, FFPT "
                f"{ffpt:4.1f} %, focus per class "
                + " / ".join(f"{v:5.1f}" for v in per_class)
                + (f"  <- shortcut: class {low[0]} by elimination" if took else "")
            )
            if took:
                wrong = e.alpha.argmax(1).cpu() != test.foreground
                share = (test.labels[wrong] == low[0]).double().mean().item()
                found.append((method, seed, low[0], accuracy, ffpt, share, per_class[low[0]]))
    return found


# ------------------------------------------------------------------------- exercise 6.2


def measured_momentum_lag(beta: float, steps: int, warmup: int = 500) -> float:
    """How far a fresh ``torch.optim.SGD`` is behind a kept one, measured (exercise 6.2).

    Two optimizers with momentum ``beta`` and learning rate 1 run on a loss with the constant
    gradient 1: the kept one for ``warmup + steps`` steps, the fresh one for the last
    ``steps`` only.  Returns the fresh run's shortfall over those ``steps`` steps in kept steps
    (one kept step moves ``1 / (1 - beta)``); compare ``flow.fresh_momentum_lag``."""
    beta = check_fraction(beta, "beta", allow_zero=True)
    if beta >= 1:
        raise ValueError(f"beta must lie in [0, 1), got {beta}")
    steps = check_int(steps, "steps", minimum=0)
    warmup = check_int(warmup, "warmup", minimum=0)
    kept = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    fresh = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizers = [torch.optim.SGD([p], lr=1.0, momentum=beta) for p in (kept, fresh)]
    at_switch = kept.detach().clone()
    for step in range(warmup + steps):
        for p, optimizer in zip((kept, fresh), optimizers):
            if p is fresh and step < warmup:
                continue  # the fresh optimizer starts at the switch
            optimizer.zero_grad()
            p.sum().backward()  # a constant gradient g = 1
            optimizer.step()
            if step == warmup - 1 and p is kept:
                at_switch = kept.detach().clone()
    behind = (at_switch - kept.detach()) + fresh.detach()
    return float(behind) * (1 - beta)


# ------------------------------------------------------------------ section 5: real text


def _text_run(stack: Stack):
    """One text run's loss for ``mosaic_training.RunLosses`` (chapter 6, section 5).

    Run r is a ``TopicAttention`` with a linear classifier, stacked as three groups
    ("embeddings", "keys", "classifiers"); its constant is its query (k,).  The words are the
    segments: the loss is a chapter-4 loss of the attention over the words (b, L) and their
    embeddings (b, L, d); the records are the loss, the mean largest attention weight and 0
    (text has no foreground)."""

    def one_run(names, params, weights, query, tokens, labels, mask):
        scores = (params["keys.weight"] @ query).index_select(0, tokens.reshape(-1))
        scores = scores.view(tokens.shape).masked_fill(~mask, float("-inf"))
        alpha = torch.softmax(scores, dim=-1)  # (b, L), zero on padding
        words = stack.call("embeddings", params, tokens)  # (b, L, d)

        def classify(inputs):
            return stack.call("classifiers", params, inputs)

        value = selected_loss(weights, alpha, words, labels, classify, names)
        largest = alpha.detach().max(1).values.mean()
        return value, (value.detach(), largest, torch.zeros_like(largest))

    return one_run


def _trimmed(data):
    """The batch of rows ``start:stop`` of (tokens, labels, mask), trimmed to its longest text."""

    def batch(start: int, stop: int):
        tokens, labels, mask = (t[start:stop] for t in data)
        length = int(mask.sum(1).max())  # trim the padding
        return tokens[:, :length], labels, mask[:, :length]

    return batch


def train_text_runs(
    models: Sequence[TopicAttention],
    batch: sst.Batch,
    methods: Sequence[str],
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    switch_epoch: int,
    momentum: float = 0.9,
) -> History:
    """Train R ``TopicAttention`` models on text as ONE computation, in place (section 5).

    Minibatch SGD with momentum in the fixed batch order of the mosaics; run r uses the loss
    ``methods[r]`` ("soft", "hard", "lvml"), or soft until epoch ``switch_epoch`` and hard
    from it on with a fresh optimizer state ("hybrid"): the engine and the schedule of
    :func:`course_lib.mosaic_training.train_hybrid_runs`, with the words as the segments.

    Parameters
    ----------
    models : R ``TopicAttention`` with ``classifier="linear"``, one vocabulary and size.
    batch : the padded training texts, ``sst.Batch`` (tokens (N, L), mask (N, L), labels (N,)).
    methods : R names among ``law.METHODS``.
    epochs, lr, batch_size, momentum : the SGD settings; switch_epoch : the hybrid's switch.

    Returns
    -------
    An ``engine.History`` of (R, epochs) per-epoch records on the CPU: ``loss`` and
    ``largest_attention`` (the mean largest attention weight of a text); ``steps`` the
    optimizer step ending each epoch, ``epochs`` 1 .. epochs.
    """
    if not models or not all(isinstance(m, TopicAttention) for m in models):
        raise TypeError("models must be a non-empty list of topic.TopicAttention")
    if any(m.classifier_kind != "linear" for m in models):
        raise ValueError("models must have classifier='linear'")
    if not isinstance(batch, sst.Batch):
        raise TypeError(f"batch must be an sst.Batch, got {type(batch).__name__}")
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    switch_epoch = check_int(switch_epoch, "switch_epoch", minimum=0)
    steps = math.ceil(len(batch.labels) / batch_size)
    schedule = hybrid_schedule(methods, len(models), switch_epoch * steps, None, "fresh")
    stack = Stack(
        {
            "embeddings": [m.embedding for m in models],
            "keys": [m.keys for m in models],
            "classifiers": [m.classifier for m in models],
        }
    )
    queries = torch.stack([m.query.detach() for m in models]).to(stack.device)
    data = tuple(t.to(stack.device) for t in (batch.tokens, batch.labels, batch.mask))
    lrs = torch.tensor([check_positive(lr, "lr")] * len(models), device=stack.device)
    history = train_epochs(
        stack.params,
        RunLosses(_text_run(stack), stack.device, consts=queries),
        data,
        schedule,
        epochs=epochs,
        lr=lrs,
        batch_size=batch_size,
        momentum=momentum,
        batch=_trimmed(data),
        desc=f"{len(models)} text runs",
    )
    stack.write_back()
    records = {"loss": history.loss.cpu(), "largest_attention": history.mean_a_z.cpu()}
    return History(history.steps, records, history.meta, True)
