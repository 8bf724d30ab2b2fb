"""The hybrid schedule on mosaics (chapter 6): soft until a switch point, then hard with a
fresh optimizer or with the soft phase's momentum kept; the batched engine against the plain
loops and against pure soft / hard."""

from __future__ import annotations

import copy

import pytest
import torch

from course_lib.engine import History
from course_lib.focus import LinearClassifier, LinearFocus, MLPClassifier, MLPFocus
from course_lib.losses import KERNELS
from course_lib.mosaic import make_linear_mosaics
from course_lib.mosaic_training import (
    Plateau,
    train_hybrid,
    train_hybrid_runs,
    train_mosaic,
    train_mosaic_runs,
)

DATA = make_linear_mosaics(120, n_classes=4, m=5, seed=3)
EPOCHS, BATCH, LR = 6, 40, 0.3
STEPS = EPOCHS * 3  # 120 mosaics in batches of 40


def mlp_pair(seed):
    torch.manual_seed(seed)
    return MLPFocus(5, 8), MLPClassifier(5, 4, 8)


def copies(pair, n):
    return [copy.deepcopy(pair[0]) for _ in range(n)], [copy.deepcopy(pair[1]) for _ in range(n)]


def params(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def one_optimizer_loop(pair, soft_epochs):
    """The hybrid with ONE pair of SGD optimizers across the switch: momentum kept."""
    focus, clf = copy.deepcopy(pair[0]), copy.deepcopy(pair[1])
    opts = [torch.optim.SGD(m.parameters(), lr=LR, momentum=0.9) for m in (focus, clf)]
    for epoch in range(EPOCHS):
        name = "soft" if epoch < soft_epochs else "hard"
        for start in range(0, 120, BATCH):
            x, y = DATA.segments[start : start + BATCH], DATA.labels[start : start + BATCH]
            loss = KERNELS[name](focus.attention(x), x, y, clf)
            for opt in opts:
                opt.zero_grad()
            loss.backward()
            for opt in opts:
                opt.step()
    return focus, clf


def test_switch_at_zero_is_hard_and_past_the_end_is_soft():
    pair = mlp_pair(0)
    focus, clf = copies(pair, 4)
    _, _, hist = train_hybrid_runs(
        focus,
        clf,
        DATA,
        ["hybrid", "hybrid", "hard", "soft"],
        epochs=EPOCHS,
        lr=LR,
        batch_size=BATCH,
        switch_step=[0, STEPS, 0, 0],
    )
    ref_focus, ref_clf = copies(pair, 2)
    _, _, ref = train_mosaic_runs(
        ref_focus, ref_clf, DATA, ["hard", "soft"], epochs=EPOCHS, lr=LR, batch_size=BATCH
    )
    for run, other in ((0, 0), (1, 1), (2, 0), (3, 1)):
        torch.testing.assert_close(params(focus[run]), params(ref_focus[other]))
        torch.testing.assert_close(params(clf[run]), params(ref_clf[other]))
        torch.testing.assert_close(hist.loss[run], ref.loss[other])
        torch.testing.assert_close(hist.mean_a_z[run], ref.mean_a_z[other])
    assert hist.switch_step.tolist() == [0, -1, 0, -1]
    # and not by accident: soft and hard really end apart
    assert (params(focus[0]) - params(focus[1])).abs().max() > 1e-2


@pytest.mark.parametrize("soft_epochs", [2, 4])
def test_batched_switch_equals_the_plain_loop_with_a_fresh_optimizer(soft_epochs):
    pair = mlp_pair(1)
    focus, clf = copies(pair, 1)
    _, _, hist = train_hybrid_runs(
        focus,
        clf,
        DATA,
        ["hybrid"],
        epochs=EPOCHS,
        lr=LR,
        batch_size=BATCH,
        switch_step=soft_epochs * 3,
    )
    plain_focus, plain_clf = copies(pair, 1)
    _, _, plain = train_hybrid(
        plain_focus[0],
        plain_clf[0],
        DATA,
        soft_epochs=soft_epochs,
        hard_epochs=EPOCHS - soft_epochs,
        lr=LR,
        batch_size=BATCH,
    )
    torch.testing.assert_close(params(focus[0]), params(plain_focus[0]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(params(clf[0]), params(plain_clf[0]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hist.loss[0], plain.loss, atol=1e-5, rtol=1e-5)
    assert int(hist.switch_step[0]) == soft_epochs * 3
    # keeping the soft phase's momentum instead gives a different model: the reset matters
    kept_focus, _ = one_optimizer_loop(pair, soft_epochs)
    assert (params(kept_focus) - params(focus[0])).abs().max() > 1e-4


@pytest.mark.parametrize("soft_epochs", [2, 4])
def test_kept_momentum_equals_one_optimizer_across_the_switch(soft_epochs):
    pair = mlp_pair(1)
    focus, clf = copies(pair, 2)
    _, _, hist = train_hybrid_runs(
        focus,
        clf,
        DATA,
        ["hybrid", "hybrid"],
        epochs=EPOCHS,
        lr=LR,
        batch_size=BATCH,
        switch_step=soft_epochs * 3,
        optimizer_at_switch=["keep", "fresh"],
    )
    kept_focus, kept_clf = one_optimizer_loop(pair, soft_epochs)
    torch.testing.assert_close(params(focus[0]), params(kept_focus), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(params(clf[0]), params(kept_clf), atol=1e-5, rtol=1e-5)
    assert hist.switch_step.tolist() == [soft_epochs * 3] * 2
    # a "keep" that silently reset would equal the fresh run; a "fresh" that kept, the kept one
    assert (params(focus[0]) - params(focus[1])).abs().max() > 1e-4
    plain_focus, plain_clf = copies(pair, 1)
    train_hybrid(
        plain_focus[0],
        plain_clf[0],
        DATA,
        soft_epochs=soft_epochs,
        hard_epochs=EPOCHS - soft_epochs,
        lr=LR,
        batch_size=BATCH,
    )
    torch.testing.assert_close(params(focus[1]), params(plain_focus[0]), atol=1e-5, rtol=1e-5)
    # the soft phase is the same for both: the records agree until the switch
    torch.testing.assert_close(hist.loss[0, :soft_epochs], hist.loss[1, :soft_epochs])
    assert (hist.loss[0, soft_epochs:] - hist.loss[1, soft_epochs:]).abs().max() > 1e-5


def test_kept_momentum_changes_nothing_for_pure_runs_and_plateau_switches():
    pair = mlp_pair(4)
    runs = {}
    for choice in ("fresh", "keep"):
        focus, clf = copies(pair, 3)
        train_hybrid_runs(
            focus,
            clf,
            DATA,
            ["soft", "hard", "lvml"],
            epochs=EPOCHS,
            lr=LR,
            batch_size=BATCH,
            optimizer_at_switch=choice,
        )
        runs[choice] = focus
    for a, b in zip(runs["fresh"], runs["keep"]):
        torch.testing.assert_close(params(a), params(b), atol=0, rtol=0)
    torch.manual_seed(0)  # a plateau switch keeps the momentum too, when asked
    data = make_linear_mosaics(200, n_classes=4, m=5, seed=1)
    focus = [LinearFocus(5) for _ in range(2)]
    clf = [LinearClassifier(5, 4) for _ in range(2)]
    _, _, hist = train_hybrid_runs(
        focus,
        clf,
        data,
        ["hybrid", "hybrid"],
        epochs=30,
        lr=0.5,
        batch_size=50,
        switch_step=None,
        plateau=Plateau("loss", patience=2, min_delta=0.02),
        optimizer_at_switch=["fresh", "keep"],
    )
    assert hist.switch_step[0] == hist.switch_step[1] > 0
    assert (params(focus[0]) - params(focus[1])).abs().max() > 1e-4


def test_plain_hybrid_with_zero_phases_is_pure_soft_or_hard():
    for soft_epochs, name in ((0, "hard"), (EPOCHS, "soft")):
        pair = mlp_pair(2)
        a, b = copies(pair, 1), copies(pair, 1)
        train_hybrid(
            a[0][0],
            a[1][0],
            DATA,
            soft_epochs=soft_epochs,
            hard_epochs=EPOCHS - soft_epochs,
            lr=LR,
            batch_size=BATCH,
        )
        train_mosaic(b[0][0], b[1][0], DATA, name, epochs=EPOCHS, lr=LR, batch_size=BATCH)
        torch.testing.assert_close(params(a[0][0]), params(b[0][0]))


def test_plateau_switch_equals_the_same_switch_given_as_a_step():
    torch.manual_seed(0)
    data = make_linear_mosaics(200, n_classes=4, m=5, seed=1)
    focus = [LinearFocus(5) for _ in range(2)]
    clf = [LinearClassifier(5, 4) for _ in range(2)]
    _, _, hist = train_hybrid_runs(
        focus,
        clf,
        data,
        ["hybrid", "hybrid"],
        epochs=30,
        lr=0.5,
        batch_size=50,
        switch_step=[None, None],
        plateau=Plateau("loss", patience=2, min_delta=0.02),
    )
    assert isinstance(hist, History) and hist.loss.shape == (2, 30)
    assert hist.steps.tolist() == [4 * e for e in range(1, 31)]
    step = int(hist.switch_step[0])
    assert 0 < step < 30 * 4 and step % 4 == 0  # at the end of an epoch, during training
    epoch = step // 4 - 1
    assert hist.loss[0, epoch - 2] - hist.loss[0, epoch] < 0.02  # the criterion held there
    assert all(hist.loss[0, e - 2] - hist.loss[0, e] >= 0.02 for e in range(2, epoch))
    again_f, again_c = [LinearFocus(5)], [LinearClassifier(5, 4)]
    _, _, again = train_hybrid_runs(
        again_f, again_c, data, ["hybrid"], epochs=30, lr=0.5, batch_size=50, switch_step=step
    )
    torch.testing.assert_close(params(again_f[0]), params(focus[0]))
    torch.testing.assert_close(again.loss[0], hist.loss[0])


def test_plateau_waits_for_min_epochs():
    torch.manual_seed(0)
    data = make_linear_mosaics(200, n_classes=4, m=5, seed=1)
    steps = []
    for min_epochs in (0, 20):
        focus, clf = [LinearFocus(5)], [LinearClassifier(5, 4)]
        _, _, hist = train_hybrid_runs(
            focus,
            clf,
            data,
            ["hybrid"],
            epochs=30,
            lr=0.5,
            batch_size=50,
            plateau=Plateau("loss", 2, 0.02, min_epochs=min_epochs),
        )
        steps.append(int(hist.switch_step[0]))
    assert steps[0] < 20 * 4  # without a minimum it fires earlier ...
    assert steps[1] == 20 * 4  # ... with one, at the end of epoch 20 (the loss is flat there)


def test_focus_plateau_and_records():
    torch.manual_seed(0)
    focus, clf = [LinearFocus(5)], [LinearClassifier(5, 4)]
    _, _, hist = train_hybrid_runs(
        focus,
        clf,
        DATA,
        ["hybrid"],
        epochs=20,
        lr=0.5,
        batch_size=BATCH,
        plateau=Plateau("focus", 2, 0.01),
    )
    assert 0 < int(hist.switch_step[0]) < 20 * 3
    assert torch.all((hist.focus_accuracy >= 0) & (hist.focus_accuracy <= 1))
    assert torch.all((hist.mean_a_z > 0) & (hist.mean_a_z < 1))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"methods": ["hybrid", "mix"]}, ValueError, "methods"),
        ({"methods": ["hybrid"]}, ValueError, "one method per run"),
        ({"switch_step": None}, ValueError, "plateau"),
        ({"switch_step": -1}, ValueError, "switch_step"),
        ({"switch_step": [1, 2, 3]}, ValueError, "one per run"),
        ({"switch_step": None, "plateau": ("loss", 2, 0.1)}, TypeError, "Plateau"),
        ({"switch_step": None, "plateau": Plateau("accuracy")}, ValueError, "metric"),
        (
            {"switch_step": None, "plateau": Plateau("loss", min_epochs=-1)},
            ValueError,
            "min_epochs",
        ),
        ({"epochs": 0}, ValueError, "epochs"),
        ({"optimizer_at_switch": "reset"}, ValueError, "optimizer_at_switch"),
        ({"optimizer_at_switch": None}, ValueError, "optimizer_at_switch"),
        ({"optimizer_at_switch": ["keep"]}, ValueError, "optimizer_at_switch.*one per run"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match):
    pair = mlp_pair(0)
    focus, clf = copies(pair, 2)
    args = {"methods": ["hybrid", "soft"], "switch_step": 3, "epochs": 2, **kwargs}
    with pytest.raises(error, match=match):
        train_hybrid_runs(focus, clf, DATA, args.pop("methods"), lr=LR, batch_size=BATCH, **args)


def test_plain_hybrid_refuses_empty_training():
    pair = mlp_pair(0)
    with pytest.raises(ValueError, match="at least 1"):
        train_hybrid(pair[0], pair[1], DATA, soft_epochs=0, hard_epochs=0, lr=LR)


def step_loop(pair, switch, choice):
    """The hybrid written step by step: soft for ``switch`` steps, then hard; at the switch a
    fresh pair of torch.optim.SGD optimizers ("fresh") or the same pair ("keep")."""
    focus, clf = copy.deepcopy(pair[0]), copy.deepcopy(pair[1])

    def optimizers():
        return [torch.optim.SGD(m.parameters(), lr=LR, momentum=0.9) for m in (focus, clf)]

    opts, step = optimizers(), 0
    for _ in range(EPOCHS):
        for start in range(0, 120, BATCH):
            if step == switch and choice == "fresh":
                opts = optimizers()
            x, y = DATA.segments[start : start + BATCH], DATA.labels[start : start + BATCH]
            name = "soft" if step < switch else "hard"
            loss = KERNELS[name](focus.attention(x), x, y, clf)
            for opt in opts:
                opt.zero_grad()
            loss.backward()
            for opt in opts:
                opt.step()
            step += 1
    return focus, clf


@pytest.mark.parametrize("choice", ["fresh", "keep"])
def test_a_switch_inside_an_epoch_equals_the_step_by_step_hybrid(choice):
    # switch steps 7 and 11 fall inside epochs 3 and 4 (3 steps an epoch): the schedule acts
    # per step, not per epoch; each run against its own hand-written loop
    pair = mlp_pair(5)
    focus, clf = copies(pair, 2)
    _, _, hist = train_hybrid_runs(
        focus,
        clf,
        DATA,
        ["hybrid", "hybrid"],
        epochs=EPOCHS,
        lr=LR,
        batch_size=BATCH,
        switch_step=[7, 11],
        optimizer_at_switch=choice,
    )
    assert hist.switch_step.tolist() == [7, 11]
    for run, switch in enumerate((7, 11)):
        by_hand = step_loop(pair, switch, choice)
        torch.testing.assert_close(params(focus[run]), params(by_hand[0]), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(params(clf[run]), params(by_hand[1]), atol=1e-5, rtol=1e-5)
    other = step_loop(pair, 7, "keep" if choice == "fresh" else "fresh")
    assert (params(other[0]) - params(focus[0])).abs().max() > 1e-4  # the choice matters
