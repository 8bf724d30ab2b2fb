"""Checks for the exercises of chapter 6 (the hybrid): the soft-then-hard switch with a fresh
optimizer, the best switch time from the ODE, and per-class focus accuracy."""

from __future__ import annotations

import copy

import numpy as np
import torch

from .. import flow, metrics, mosaic_training
from ..focus import MLPClassifier, MLPFocus
from ..losses import KERNELS
from ..mosaic import make_linear_mosaics
from ._core import CheckFailed, run_check

_DATA = make_linear_mosaics(96, n_classes=3, m=4, seed=5)
_LR, _BATCH = 0.3, 32


def _pair(seed: int = 0):
    torch.manual_seed(seed)
    return MLPFocus(4, 6), MLPClassifier(4, 3, 6)


def _flat(module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def _one_optimizer(pair, phases):
    """Soft and hard phases with ONE optimizer pair kept across the switch (the mistake)."""
    focus, classifier = copy.deepcopy(pair[0]), copy.deepcopy(pair[1])
    opts = [torch.optim.SGD(m.parameters(), lr=_LR, momentum=0.9) for m in (focus, classifier)]
    for name, epochs in phases:
        for _ in range(epochs):
            for start in range(0, len(_DATA.labels), _BATCH):
                x = _DATA.segments[start:start + _BATCH]
                y = _DATA.labels[start:start + _BATCH]
                loss = KERNELS[name](focus.attention(x), x, y, classifier)
                for opt in opts:
                    opt.zero_grad()
                loss.backward()
                for opt in opts:
                    opt.step()
    return focus, classifier


def _reference(pair, soft, hard):
    focus, classifier = copy.deepcopy(pair[0]), copy.deepcopy(pair[1])
    mosaic_training.train_hybrid(focus, classifier, _DATA, soft, hard, _LR, batch_size=_BATCH)
    return focus, classifier


def _same(a, b) -> bool:
    return all(torch.allclose(_flat(x), _flat(y), atol=1e-5, rtol=1e-4) for x, y in zip(a, b))


@run_check("the hybrid: soft for soft_epochs, then hard with a fresh optimizer")
def check_train_hybrid(student_fn) -> None:
    """Check ``student_fn(focus, classifier, data, soft_epochs, hard_epochs, lr, batch_size,
    momentum) -> (focus, classifier, history)`` on small linear mosaics."""
    for soft, hard in ((2, 2), (0, 3), (3, 0)):
        pair = _pair(soft + 3 * hard)
        mine = copy.deepcopy(pair[0]), copy.deepcopy(pair[1])
        out = student_fn(mine[0], mine[1], _DATA, soft, hard, _LR, batch_size=_BATCH)
        if not isinstance(out, tuple) or len(out) != 3:
            raise CheckFailed("return (focus, classifier, history), as train_mosaic does.")
        history = out[2]
        loss = getattr(history, "loss", None)
        if not isinstance(loss, torch.Tensor) or loss.shape != (soft + hard,):
            raise CheckFailed(f"history.loss should hold one value per epoch, shape "
                              f"({soft + hard},): join the two phases' histories with torch.cat.")
        if _same(mine, _reference(pair, soft, hard)):
            continue
        if soft and hard:
            if _same(mine, _one_optimizer(pair, [("soft", soft), ("hard", hard)])):
                raise CheckFailed("the hard phase must start with a FRESH optimizer (zero "
                                  "momentum), as the official code does: call train_mosaic "
                                  "twice instead of keeping one optimizer.")
            if _same(mine, _hard_then_soft(pair, soft, hard)):
                raise CheckFailed("soft comes FIRST, then hard: the hybrid starts with the "
                                  "soft loss.")
            for name in ("soft", "hard"):
                if _same(mine, _only(pair, name, soft + hard)):
                    raise CheckFailed(f"your model was trained with the {name} loss only; "
                                      "use soft for soft_epochs, then hard for hard_epochs.")
        raise CheckFailed(f"with soft_epochs={soft}, hard_epochs={hard} the parameters differ "
                          "from the reference: train_mosaic(..., 'soft', epochs=soft_epochs) "
                          "then train_mosaic(..., 'hard', epochs=hard_epochs), same lr and "
                          "batch size; skip a phase with 0 epochs.")


def _hard_then_soft(pair, soft, hard):
    focus, classifier = copy.deepcopy(pair[0]), copy.deepcopy(pair[1])
    mosaic_training.train_mosaic(focus, classifier, _DATA, "hard", epochs=hard, lr=_LR,
                                 batch_size=_BATCH)
    mosaic_training.train_mosaic(focus, classifier, _DATA, "soft", epochs=soft, lr=_LR,
                                 batch_size=_BATCH)
    return focus, classifier


def _only(pair, name, epochs):
    focus, classifier = copy.deepcopy(pair[0]), copy.deepcopy(pair[1])
    mosaic_training.train_mosaic(focus, classifier, _DATA, name, epochs=epochs, lr=_LR,
                                 batch_size=_BATCH)
    return focus, classifier


# Exercise 6.2's own setting: (m, C) = (10, 10), where soft attention's lead over hard attention
# peaks near t = 168 in the ODE; a horizon of twice that (42 epochs of 4 steps at lr 0.2 with
# momentum 0.9, 8 time units each) is where the best switch (t = 168) beats both pure methods
# by 3e-3 in alpha.  At t = 800 it would gain only 2e-4, too little to tell a switch apart.
EXERCISE_HORIZON = 336.0
EXERCISE_CANDIDATES = tuple(8.0 * e for e in range(43))


def _same_time(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))  # float32 round-off is fine


@run_check("the best switch time for a horizon, from the hybrid ODE")
def check_best_switch_time(student_fn) -> None:
    """Check ``student_fn(m, C, horizon, candidates) -> float`` (any real scalar: a Python or
    NumPy float or int, a 0-d array or tensor) on cases where the best switch is a hybrid, pure
    soft (tied with every later candidate: the first must be returned), and on exercise 6.2's
    own horizon.  The answers to all cases are read together, so that a rule that is wrong in
    the same way everywhere (the largest margin, the smallest attention) is named as such."""
    cases = [(5, 3, 40.0, [0.0, 10.0, 20.0, 30.0, 40.0]),  # hybrid best, largest margin at 40
             (5, 3, 30.0, [0.0, 10.0, 20.0, 30.0, 45.0, 60.0]),  # 30, 45, 60 tie: pure soft
             (5, 3, 100.0, [0.0, 35.0, 100.0]),
             (5, 3, 200.0, list(np.linspace(0.0, 200.0, 9))), (10, 10, 400.0, [0.0, 80.0, 400.0]),
             (10, 10, EXERCISE_HORIZON, list(EXERCISE_CANDIDATES))]
    answers, failed = [], None
    for m, C, horizon, candidates in cases:
        try:
            out = float(student_fn(m, C, horizon, np.array(candidates)))
        except (TypeError, ValueError):
            raise CheckFailed("return one switch time, a float (one of the candidates).")
        finals = [flow.solve_flow("hybrid", m, C, [horizon], switch_time=T) for T in candidates]
        nu = np.array([f[1][0] for f in finals])
        margin = np.array([f[0][0] for f in finals])
        case = dict(m=m, C=C, horizon=horizon, candidates=candidates, out=out,
                    ref=flow.best_switch_time(m, C, horizon, candidates),
                    best_index=int(np.argmax(nu)), worst=candidates[int(np.argmin(nu))],
                    tied=[T for T, v in zip(candidates, nu) if np.isclose(v, nu.max(), rtol=1e-12)],
                    largest_margin=candidates[int(np.argmax(margin))])
        answers.append(case)
        if failed is None and not _same_time(out, case["ref"]):
            failed = case
    if failed is None:
        return
    m, C, horizon, candidates, out, ref = (failed[k] for k in
                                           ("m", "C", "horizon", "candidates", "out", "ref"))
    is_candidate = any(_same_time(out, T) for T in candidates)
    if _same_time(out, float(failed["best_index"])) and not is_candidate:
        raise CheckFailed("you returned the index of the best candidate; return the "
                          "candidate itself, candidates[index].")
    if any(_same_time(out, T) for T in failed["tied"]):
        raise CheckFailed(f"for horizon {horizon:g} the candidates {failed['tied']} tie (a "
                          "switch at or after the horizon is pure soft attention) and you "
                          f"returned {out:g}: return the first of them, as the text asks "
                          "(np.argmax returns the first maximum).")
    if all(_same_time(a["out"], a["largest_margin"]) for a in answers):
        raise CheckFailed("you picked the switch with the largest classifier margin mu at "
                          "the horizon; the best switch is the one whose FOCUS ends largest: "
                          "compare nu (or alpha), the second row of solve_flow's output.")
    if _same_time(out, failed["worst"]):
        raise CheckFailed("that is the WORST switch time: take the largest attention "
                          "at the horizon (argmax), not the smallest, and compare every "
                          "hybrid at the horizon, not at its switch time.")
    if out == 0.0:
        raise CheckFailed(f"for m={m}, C={C}, horizon {horizon:g} you returned T = 0, pure "
                          f"hard attention, but a switch at {ref:g} ends more focused: "
                          "solve the hybrid flow for every candidate and keep the best.")
    shown = (candidates if len(candidates) <= 9 else
             f"[{candidates[0]:g}, {candidates[1]:g}, ..., {candidates[-1]:g}]")
    raise CheckFailed(f"for m={m}, C={C}, horizon {horizon:g} and candidates {shown} "
                      f"the best switch is {ref:g}, you returned {out:g}: compare "
                      "alpha (or nu) of solve_flow('hybrid', ..., [horizon], switch_time=T).")


@run_check("focus accuracy per class")
def check_per_class_focus_accuracy(student_fn) -> None:
    """Check ``student_fn(alpha, foreground, labels, n_classes) -> (n_classes,) tensor``."""
    g = torch.Generator().manual_seed(3)
    alpha = torch.softmax(3 * torch.randn(40, 5, generator=g), 1)
    foreground = torch.randint(0, 5, (40,), generator=g)
    labels = torch.randint(0, 3, (40,), generator=g)
    for n_classes in (3, 4):  # with 4 classes, class 3 has no mosaics: NaN
        out = student_fn(alpha, foreground, labels, n_classes)
        if not isinstance(out, torch.Tensor) or out.shape != (n_classes,):
            raise CheckFailed(f"return a tensor with one value per class, shape ({n_classes},).")
        ref = metrics.per_class_focus_accuracy(alpha, foreground, labels, n_classes)
        out = out.double()
        if torch.allclose(out, ref, equal_nan=True):
            continue
        if torch.allclose(100 * out, ref, equal_nan=True):
            raise CheckFailed("give percentages (0 to 100), not fractions.")
        if n_classes == 4 and torch.allclose(out[:3], ref[:3]):
            raise CheckFailed("a class with no mosaics has no focus accuracy: return NaN for "
                              "it (0/0), not 0.")
        overall = 100 * (alpha.argmax(1) == foreground).double().mean()
        if torch.allclose(out[:3], overall.expand(3)):
            raise CheckFailed("every class got the overall focus accuracy: average only over "
                              "the mosaics of each class.")
        raise CheckFailed("entry c should be 100 x the fraction of class-c mosaics whose "
                          "most-attended segment (alpha.argmax(1)) is the foreground.")
