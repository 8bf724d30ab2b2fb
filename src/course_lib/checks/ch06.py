"""Checks for the exercises of chapter 6 (the hybrid): the soft-then-hard switch with a fresh
optimizer, the momentum cost of that fresh optimizer, and per-class focus accuracy."""

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


# Exercise 6.2's follow-up trains at exercise 6's old setting: (m, C) = (10, 10), where soft
# attention's lead over hard attention peaks near t = 168 in the ODE; a horizon of twice that
# (42 epochs of 4 steps at lr 0.2 with momentum 0.9, 8 time units each) is where the best
# switch (t = 168) beats both pure methods by 3e-3 in alpha.
EXERCISE_HORIZON = 336.0
EXERCISE_CANDIDATES = tuple(8.0 * e for e in range(43))

# (beta, steps) at which exercise 6.2's answer is read, all at once
_LAG_CASES = ((0.9, 4), (0.9, 1), (0.9, 40), (0.5, 3), (0.99, 20), (0.8, 0), (0.0, 5))


def _scalar(value, what: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise CheckFailed(f"{what} should be one number, got a tensor of shape "
                              f"{tuple(value.shape)}.")
        return float(value.detach().cpu().reshape(()))
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} should be a number, got {type(value).__name__}.")
    if array.size != 1:
        raise CheckFailed(f"{what} should be one number, got {array.size} values.")
    return float(array.reshape(()))


def _lag_mistakes(beta: float, k: int) -> dict:
    """The usual wrong derivations of the momentum lag, each with its hint."""
    geometric = (1 - beta**k) / (1 - beta)  # 1 + beta + ... + beta^(k-1)
    with np.errstate(divide="ignore"):
        return {
            "that is the lag after infinitely many steps, beta/(1 - beta); after `steps` "
            "steps the fresh buffer has not caught up yet: sum the deficits of steps "
            "1..steps only.": beta / (1 - beta),
            "1/(1 - beta) is the time constant of the buffer (how fast it fills), not the "
            "lag: add up what each step of the fresh run misses.": 1 / (1 - beta),
            "off by one: you summed beta^0 + ... + beta^(k-1). A fresh optimizer's first step "
            "already sets the buffer to g, short of the kept g/(1 - beta) by beta g/(1 - beta), "
            "so the n-th step misses beta^n kept steps, n = 1..k.": geometric,
            "off by one: the n-th step misses beta^n kept steps for n = 1..k (you stopped at "
            "k - 1).": beta * (1 - beta ** max(k - 1, 0)) / (1 - beta),
            "that is measured in plain SGD steps lr g; the lag is asked in steps of the kept "
            "run, each lr g/(1 - beta): divide by 1/(1 - beta).":
                beta * (1 - beta**k) / (1 - beta) ** 2,
            "beta^k is what the k-th step alone misses; the lag adds the misses of all k "
            "steps.": beta**k,
            "beta^k/(1 - beta) is the k-th step's shortfall of the buffer; the lag adds the "
            "misses of all k steps, in kept steps.": beta**k / (1 - beta),
            "the fresh run is BEHIND the kept one: return a positive lag.":
                -beta * (1 - beta**k) / (1 - beta),
        }


@run_check("the momentum cost of a fresh optimizer")
def check_fresh_momentum_lag(student_fn) -> None:
    """Check ``student_fn(beta, steps) -> lag`` (any real scalar: Python or NumPy number, 0-d
    array or tensor).  The answers at all cases are read together, so that a formula wrong in
    the same way everywhere is named, even where it happens to agree with the right one."""
    outs = np.array([_scalar(student_fn(beta, k), "the lag") for beta, k in _LAG_CASES])
    refs = np.array([flow.fresh_momentum_lag(beta, k) for beta, k in _LAG_CASES])
    if np.allclose(outs, refs, rtol=1e-6, atol=1e-9):
        return
    hints = {}
    for beta, k in _LAG_CASES:
        for hint, value in _lag_mistakes(beta, k).items():
            hints.setdefault(hint, []).append(value)
    for hint, values in hints.items():
        if np.allclose(outs, np.array(values), rtol=1e-6, atol=1e-9):
            raise CheckFailed(hint)
    for (beta, k), out, ref in zip(_LAG_CASES, outs, refs):
        if not np.isclose(out, ref, rtol=1e-6, atol=1e-9):
            if k == 0 and out != 0:
                raise CheckFailed(f"after 0 steps nothing has moved yet: the lag is 0, you "
                                  f"returned {out:g}.")
            if beta == 0 and out != 0:
                raise CheckFailed(f"with beta = 0 there is no buffer to restart, so no lag; "
                                  f"you returned {out:g}.")
            raise CheckFailed(f"at beta = {beta}, steps = {k} the lag is {ref:.6g} kept "
                              f"steps, you returned {out:.6g}: write the fresh buffer after "
                              "n steps, compare it with the kept one, and add up.")


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
