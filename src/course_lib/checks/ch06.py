"""Checks for the exercises of chapter 6 (the hybrid): the soft-then-hard switch with a fresh
optimizer, the momentum cost of that fresh optimizer, and the table of a perfect eliminator."""

from __future__ import annotations

import copy

import numpy as np
import torch

from .. import flow, mosaic_training
from ..focus import MLPClassifier, MLPFocus
from ..losses import KERNELS
from ..mosaic import make_linear_mosaics
from ._core import CheckFailed, expect_number, run_check
from .solutions import shortcut_table

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
                x = _DATA.segments[start : start + _BATCH]
                y = _DATA.labels[start : start + _BATCH]
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
            raise CheckFailed(
                f"history.loss should hold one value per epoch, shape "
                f"({soft + hard},): join the two phases' histories with torch.cat."
            )
        if _same(mine, _reference(pair, soft, hard)):
            continue
        if soft and hard:
            if _same(mine, _one_optimizer(pair, [("soft", soft), ("hard", hard)])):
                raise CheckFailed(
                    "the hard phase must start with a FRESH optimizer (zero "
                    "momentum), as the official code does: call train_mosaic "
                    "twice instead of keeping one optimizer."
                )
            if _same(mine, _hard_then_soft(pair, soft, hard)):
                raise CheckFailed(
                    "soft comes FIRST, then hard: the hybrid starts with the soft loss."
                )
            for name in ("soft", "hard"):
                if _same(mine, _only(pair, name, soft + hard)):
                    raise CheckFailed(
                        f"your model was trained with the {name} loss only; "
                        "use soft for soft_epochs, then hard for hard_epochs."
                    )
        raise CheckFailed(
            f"with soft_epochs={soft}, hard_epochs={hard} the parameters differ "
            "from the reference: train_mosaic(..., 'soft', epochs=soft_epochs) "
            "then train_mosaic(..., 'hard', epochs=hard_epochs), same lr and "
            "batch size; skip a phase with 0 epochs."
        )


def _hard_then_soft(pair, soft, hard):
    focus, classifier = copy.deepcopy(pair[0]), copy.deepcopy(pair[1])
    mosaic_training.train_mosaic(
        focus, classifier, _DATA, "hard", epochs=hard, lr=_LR, batch_size=_BATCH
    )
    mosaic_training.train_mosaic(
        focus, classifier, _DATA, "soft", epochs=soft, lr=_LR, batch_size=_BATCH
    )
    return focus, classifier


def _only(pair, name, epochs):
    focus, classifier = copy.deepcopy(pair[0]), copy.deepcopy(pair[1])
    mosaic_training.train_mosaic(
        focus, classifier, _DATA, name, epochs=epochs, lr=_LR, batch_size=_BATCH
    )
    return focus, classifier


# Exercise 6.2's follow-up trains at exercise 6's old setting: (m, C) = (10, 10), where soft
# attention's lead over hard attention peaks near t = 168 in the ODE; a horizon of twice that
# (42 epochs of 4 steps at lr 0.2 with momentum 0.9, 8 time units each) is where the best
# switch (t = 168) beats both pure methods by 3e-3 in alpha.
EXERCISE_HORIZON = 336.0
EXERCISE_CANDIDATES = tuple(8.0 * e for e in range(43))

# (beta, steps) at which exercise 6.2's answer is read, all at once
_LAG_CASES = ((0.9, 4), (0.9, 1), (0.9, 40), (0.5, 3), (0.99, 20), (0.8, 0), (0.0, 5))


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
            "run, each lr g/(1 - beta): divide by 1/(1 - beta).": beta
            * (1 - beta**k)
            / (1 - beta) ** 2,
            "beta^k is what the k-th step alone misses; the lag adds the misses of all k "
            "steps.": beta**k,
            "beta^k/(1 - beta) is the k-th step's shortfall of the buffer; the lag adds the "
            "misses of all k steps, in kept steps.": beta**k / (1 - beta),
            "the fresh run is BEHIND the kept one: return a positive lag.": -beta
            * (1 - beta**k)
            / (1 - beta),
        }


@run_check("the momentum cost of a fresh optimizer")
def check_fresh_momentum_lag(student_fn) -> None:
    """Check ``student_fn(beta, steps) -> lag`` (any real scalar: Python or NumPy number, 0-d
    array or tensor).  The answers at all cases are read together, so that a formula wrong in
    the same way everywhere is named, even where it happens to agree with the right one."""
    outs = np.array([expect_number(student_fn(beta, k), "the lag") for beta, k in _LAG_CASES])
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
                raise CheckFailed(
                    f"after 0 steps nothing has moved yet: the lag is 0, you returned {out:g}."
                )
            if beta == 0 and out != 0:
                raise CheckFailed(
                    f"with beta = 0 there is no buffer to restart, so no lag; you returned {out:g}."
                )
            raise CheckFailed(
                f"at beta = {beta}, steps = {k} the lag is {ref:.6g} kept "
                f"steps, you returned {out:.6g}: write the fresh buffer after "
                "n steps, compare it with the kept one, and add up."
            )


_SHORTCUT_CASES = ((3, 20), (3, 5), (10, 2), (2, 10))
_CELLS = ("FTPT", "FFPT", "FTPF", "FFPF")


def _table(FTPT, FFPT, FTPF=0.0, FFPF=0.0) -> dict:
    return {"FTPT": FTPT, "FFPT": FFPT, "FTPF": FTPF, "FFPF": FFPF}


_SHORTCUT_MISTAKES = {
    "on a mosaic of the eliminated class the most-attended segment is a random one of the m, "
    "and by chance it is sometimes the foreground: then the focus is true, so FFPT is less "
    "than 100/C.": lambda C, m: _table(100 * (1 - 1 / C), 100 / C),
    "the random segment is one of ALL m segments, the foreground included: count the "
    "chance of hitting it out of m, not m - 1.": lambda C, m: _table(
        100 - 100 * (1 - 1 / (m - 1)) / C, 100 * (1 - 1 / (m - 1)) / C
    ),
    "give percentages (0 to 100), not fractions.": lambda C, m: {
        k: v / 100 for k, v in shortcut_table(C, m).items()
    },
    "the eliminator predicts the eliminated class RIGHT (it answers it whenever it finds no "
    "other foreground): those mosaics are prediction true, FFPT, not FFPF.": lambda C, m: _table(
        shortcut_table(C, m)["FTPT"], 0.0, 0.0, shortcut_table(C, m)["FFPT"]
    ),
    "FFPT is focus False, prediction True; FTPF is focus True, prediction False: yours are "
    "swapped.": lambda C, m: _table(
        shortcut_table(C, m)["FTPT"], 0.0, shortcut_table(C, m)["FFPT"]
    ),
    "the C - 1 classes it finds are C - 1 of C equally frequent classes; the eliminated one "
    "is 1/C of the mosaics, not 1/(C - 1).": lambda C, m: _table(
        100 - 100 * (1 - 1 / m) / (C - 1), 100 * (1 - 1 / m) / (C - 1)
    ),
}


@run_check("the FTPT/FFPT table of a perfect eliminator")
def check_shortcut_table(student_fn) -> None:
    """Check ``student_fn(n_classes, m) -> dict`` of the four percentages (numbers of any real
    kind), at several sizes read together, so that a derivation wrong the same way everywhere is
    named."""
    outs = []
    for C, m in _SHORTCUT_CASES:
        out = student_fn(C, m)
        if not isinstance(out, dict) or set(out) != set(_CELLS):
            raise CheckFailed(f"return a dict with the keys {list(_CELLS)}.")
        outs.append({k: expect_number(v, k) for k, v in out.items()})

    def same(tables) -> bool:
        return all(
            abs(o[k] - t[k]) <= 1e-6 * max(1.0, abs(t[k]))
            for o, t in zip(outs, tables)
            for k in _CELLS
        )

    if same([shortcut_table(C, m) for C, m in _SHORTCUT_CASES]):
        return
    for hint, formula in _SHORTCUT_MISTAKES.items():
        if same([formula(C, m) for C, m in _SHORTCUT_CASES]):
            raise CheckFailed(hint)
    for (C, m), out in zip(_SHORTCUT_CASES, outs):
        if abs(sum(out.values()) - 100) > 1e-6:
            raise CheckFailed(
                f"the four cells split the mosaics, so they sum to 100; at "
                f"n_classes = {C}, m = {m} yours sum to {sum(out.values()):.6g}."
            )
        if out["FTPF"] or out["FFPF"]:
            raise CheckFailed("the eliminator classifies every mosaic right: FTPF and FFPF are 0.")
    C, m = _SHORTCUT_CASES[0]
    raise CheckFailed(
        f"at n_classes = {C}, m = {m} the table is "
        f"{ {k: round(v, 4) for k, v in shortcut_table(C, m).items()} }, "
        f"yours is { {k: round(v, 4) for k, v in outs[0].items()} }: split the "
        "mosaics by class first, then by where the most-attended segment is."
    )
