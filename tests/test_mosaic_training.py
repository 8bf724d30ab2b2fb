"""The mosaic training engines (chapter 4): the batched engine does the plain loop's arithmetic."""

import ast
import copy
import inspect
import math

import matplotlib
import numpy as np
import pytest
import torch

from course_lib import mosaic_training, plotting
from course_lib.focus import LinearClassifier, LinearFocus, MLPClassifier, MLPFocus
from course_lib.law import LOSS_NAMES
from course_lib.losses import KERNELS, attention_loss
from course_lib.mosaic import make_linear_mosaics
from course_lib.mosaic_training import (
    fixed_attention,
    train_fixed_focus,
    train_mosaic,
    train_mosaic_runs,
)

LOSSES = list(LOSS_NAMES)


def make_runs(seeds=(0, 1), d=6, C=5):
    runs = []
    for seed in seeds:
        for loss in LOSSES:
            torch.manual_seed(seed)
            runs.append((MLPFocus(d, 8), MLPClassifier(d, C, 8), loss))
    return runs


def test_plain_loop_matches_torch_sgd_by_hand_and_lowers_the_loss():
    data = make_linear_mosaics(300, n_classes=5, m=4, seed=0)
    torch.manual_seed(0)
    focus, clf = MLPFocus(6, 8), MLPClassifier(6, 5, 8)
    start = attention_loss("hard")(focus.attention(data.segments), data.segments, data.labels, clf)
    _, _, history = train_mosaic(focus, clf, data, "hard", epochs=15, lr=0.1, batch_size=64)
    assert history.loss.shape == (15,) and history.mean_a_z.shape == (15,)
    end = attention_loss("hard")(focus.attention(data.segments), data.segments, data.labels, clf)
    assert end.item() < 0.8 * start.item()
    assert history.mean_a_z[-1] > history.mean_a_z[0] + 0.05  # the focus found the foreground


@pytest.mark.parametrize("shared_data", [True, False])
def test_batched_runs_equal_sequential_runs(shared_data):
    runs = make_runs()
    datasets = [make_linear_mosaics(200, n_classes=5, m=4, seed=s) for s in range(len(runs))]
    data = datasets[0] if shared_data else datasets
    lrs = [0.05, 0.1, 0.2, 0.05, 0.1, 0.2]
    sequential = []
    for r, (focus, clf, loss) in enumerate(runs):
        f, c = copy.deepcopy(focus), copy.deepcopy(clf)
        _, _, h = train_mosaic(
            f,
            c,
            datasets[0] if shared_data else datasets[r],
            loss,
            epochs=4,
            lr=lrs[r],
            batch_size=64,
        )
        sequential.append((f, c, h))
    focus_models = [copy.deepcopy(r[0]) for r in runs]
    classifiers = [copy.deepcopy(r[1]) for r in runs]
    _, _, batched = train_mosaic_runs(
        focus_models, classifiers, data, [r[2] for r in runs], epochs=4, lr=lrs, batch_size=64
    )
    assert batched.loss.shape == (6, 4)
    for r, (f, c, h) in enumerate(sequential):
        assert torch.allclose(batched.loss[r], h.loss, atol=1e-5)
        assert torch.allclose(batched.mean_a_z[r], h.mean_a_z, atol=1e-5)
        for p, q in zip(
            list(f.parameters()) + list(c.parameters()),
            list(focus_models[r].parameters()) + list(classifiers[r].parameters()),
        ):
            assert torch.allclose(p, q, atol=1e-5)
    # the runs really differ (a bug that trained one run R times would pass the loop above
    # only if all runs were equal)
    assert not torch.allclose(batched.loss[0], batched.loss[1], atol=1e-3)


def test_fixed_attention_weights():
    alpha = fixed_attention(0.6, torch.tensor([0, 3]), 5)
    assert torch.allclose(alpha.sum(1), torch.ones(2))
    assert alpha[0, 0] == pytest.approx(0.6) and alpha[1, 3] == pytest.approx(0.6)
    assert alpha[0, 1] == pytest.approx(0.1)


def test_fixed_focus_hard_loss_floor_and_incentive():
    # with the focus frozen, the hard loss cannot go below (1 - alpha) log C and its incentive
    # L(alpha) - L(alpha + 0.01) tends to 0.01 log C; soft's loss goes to 0
    C = 4
    data = make_linear_mosaics(400, n_classes=C, m=3, seed=0)
    classifiers = [LinearClassifier(C + 1, C) for _ in range(4)]
    _, history = train_fixed_focus(
        classifiers,
        data,
        [0.5, 0.5, 1.0, 0.5],
        ["hard", "soft", "hard", "lvml"],
        epochs=60,
        lr=0.5,
        batch_size=100,
        record_epochs=[1, 30, 60],
    )
    assert history.loss.shape == (4, 3) and history.epochs.tolist() == [1, 30, 60]
    assert abs(history.loss[0, -1] - 0.5 * math.log(C)) < 0.02
    assert abs(history.incentive[0, -1] - 0.01 * math.log(C)) < 0.001
    assert history.loss[1, -1] < 0.1
    assert history.loss[2, -1] < 0.02
    assert abs(history.loss[3, -1] + math.log(0.5 + 0.5 / C)) < 0.02
    # the last records, recomputed from the trained classifiers with the loss kernels (at
    # alpha = 1.01 the weights leave the simplex, which the public losses refuse)
    for r, (alpha, loss) in enumerate(zip([0.5, 0.5, 1.0, 0.5], ["hard", "soft", "hard", "lvml"])):
        with torch.no_grad():
            expected = [
                KERNELS[loss](
                    fixed_attention(alpha + shift, data.foreground, 3),
                    data.segments,
                    data.labels,
                    classifiers[r],
                ).item()
                for shift in (0.0, 0.01)
            ]
        assert history.loss[r, -1].item() == pytest.approx(expected[0], abs=1e-5)
        assert history.loss_plus[r, -1].item() == pytest.approx(expected[1], abs=1e-5)
        assert history.incentive[r, -1].item() == pytest.approx(expected[0] - expected[1], abs=1e-5)


def test_fixed_focus_equals_the_public_loss_on_a_manual_step():
    C, m = 3, 4
    data = make_linear_mosaics(50, n_classes=C, m=m, seed=1)
    for loss in LOSSES:
        torch.manual_seed(0)
        clf = LinearClassifier(C + 1, C, init="xavier")
        manual = copy.deepcopy(clf)
        alpha = fixed_attention(0.3, data.foreground, m)
        value = attention_loss(loss)(alpha, data.segments, data.labels, manual)
        value.backward()
        with torch.no_grad():
            for p in manual.parameters():
                p -= 0.1 * p.grad
        train_fixed_focus([clf], data, [0.3], [loss], epochs=1, lr=0.1, batch_size=50)
        for p, q in zip(clf.parameters(), manual.parameters()):
            assert torch.allclose(p, q, atol=1e-6)


def _official_loop(clf, data, alpha, loss, epochs, lr, batch):
    """The official fixed-focus scripts' loop, written out: SGD with momentum 0.9, and after
    each step the loss at alpha and alpha + 0.01 of the batch just trained on; the record of an
    epoch is the plain mean over its batches (epoch 0: before any step)."""
    opt = torch.optim.SGD(clf.parameters(), lr=lr, momentum=0.9)
    fn, m = attention_loss(loss), data.segments.shape[1]
    starts = range(0, len(data.labels), batch)

    def both(x, y, z):
        with torch.no_grad():
            return [fn(fixed_attention(a, z, m), x, y, clf).item() for a in (alpha, alpha + 0.01)]

    records = [np.mean([both(*(t[s : s + batch] for t in data)) for s in starts], 0)]
    for _ in range(epochs):
        rows = []
        for s in starts:
            x, y, z = (t[s : s + batch] for t in data)
            opt.zero_grad()
            fn(fixed_attention(alpha, z, m), x, y, clf).backward()
            opt.step()
            rows.append(both(x, y, z))
        records.append(np.mean(rows, 0))
    return torch.tensor(np.array(records), dtype=torch.float32)  # (epochs + 1, 2)


def test_fixed_focus_running_mean_is_the_official_loop():
    C, m = 3, 4
    data = make_linear_mosaics(70, n_classes=C, m=m, seed=2)  # 3 batches, the last of 6
    for loss in LOSSES:
        torch.manual_seed(12)
        clf = LinearClassifier(C + 1, C, init="xavier")
        expected = _official_loop(copy.deepcopy(clf), data, 0.4, loss, 2, 0.1, 32)
        runs = {}
        for evaluation in ("running_mean", "full_set"):
            _, runs[evaluation] = train_fixed_focus(
                [copy.deepcopy(clf)],
                data,
                [0.4],
                [loss],
                epochs=2,
                lr=0.1,
                batch_size=32,
                record_epochs=[0, 1, 2],
                evaluation=evaluation,
            )
        history = runs["running_mean"]
        assert history.epochs.tolist() == [0, 1, 2]
        assert torch.allclose(history.loss[0], expected[:, 0], atol=1e-6)
        assert torch.allclose(history.loss_plus[0], expected[:, 1], atol=1e-6)
        # the full-set evaluation is a different record after training (same at epoch 0 up to
        # the unequal last batch), so this test tells the two apart
        assert not torch.allclose(runs["full_set"].loss[0, 1:], expected[1:, 0], atol=1e-3)


def test_fixed_focus_difference_at_alpha_one():
    data = make_linear_mosaics(60, n_classes=3, m=4, seed=3)
    histories = {}
    for at_one in ("zero", "extrapolate"):
        classifiers = [LinearClassifier(4, 3) for _ in range(3)]
        _, histories[at_one] = train_fixed_focus(
            classifiers,
            data,
            [1.0, 1.0, 0.5],
            ["lvml", "soft", "hard"],
            epochs=3,
            lr=0.5,
            batch_size=20,
            at_one=at_one,
        )
    assert (histories["zero"].incentive[:2] == 0).all()  # the official diff: 0 by construction
    assert (histories["extrapolate"].incentive[:2] > 1e-4).all()  # L(1) - L(1.01) > 0
    assert torch.equal(histories["zero"].incentive[2], histories["extrapolate"].incentive[2])


def test_fixed_focus_flow_time_figure():
    matplotlib.use("Agg")
    times = {"soft": np.arange(3.0), "hard": np.arange(3.0) / 5}
    curves = {name: {0.2: np.ones(3), 0.8: np.zeros(3)} for name in times}
    fig = plotting.fixed_focus_flow_time(times, curves, curves, reference=(times, curves, curves))
    assert len(fig.axes) == 4
    assert len(fig.axes[0].lines) == 4 and len(fig.axes[3].lines) == 4  # 2 alphas x (run, ref)
    matplotlib.pyplot.close(fig)


def test_argument_errors():
    data = make_linear_mosaics(20, n_classes=3, m=2)
    focus, clf = LinearFocus(4), LinearClassifier(4, 3)
    with pytest.raises(ValueError, match="loss"):
        train_mosaic(focus, clf, data, "sparse", epochs=1, lr=0.1)
    with pytest.raises(TypeError, match="data"):
        train_mosaic(focus, clf, data.segments, "soft", epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        train_mosaic(focus, clf, data, "soft", epochs=1, lr=-1.0)
    with pytest.raises(ValueError, match="one loss per run"):
        train_mosaic_runs([focus], [clf], data, ["soft", "hard"], epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="same architecture"):
        train_mosaic_runs([focus, MLPFocus(4)], [clf, clf], data, ["soft"] * 2, epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="alphas"):
        train_fixed_focus([clf], data, [1.5], ["hard"], epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="evaluation"):
        train_fixed_focus([clf], data, [0.5], ["hard"], epochs=1, lr=0.1, evaluation="test")
    with pytest.raises(ValueError, match="at_one"):
        train_fixed_focus([clf], data, [0.5], ["hard"], epochs=1, lr=0.1, at_one="one")
    with pytest.raises(ValueError, match="record_epochs"):
        train_fixed_focus([clf], data, [0.5], ["hard"], epochs=1, lr=0.1, record_epochs=[-1])
    with pytest.raises(ValueError, match="segments"):
        train_mosaic(LinearFocus(5), LinearClassifier(5, 3), data, "soft", epochs=1, lr=0.1)


def test_batched_cnn_runs_equal_sequential_runs():
    # the full-mode models (CIFAR-10 CNNs) go through vmap too
    from course_lib.focus import CNNClassifier, CNNFocus
    from course_lib.mosaic import make_image_mosaics

    g = torch.Generator().manual_seed(0)
    images, classes = torch.rand(40, 3, 32, 32, generator=g), torch.arange(40) % 5
    data = make_image_mosaics(images, classes, [0, 1, 2], m=3, n=12, seed=0)
    runs = []
    for loss in LOSSES:
        torch.manual_seed(0)
        runs.append((CNNFocus(), CNNClassifier(3), loss))
    sequential = []
    for focus, clf, loss in runs:
        f, c = copy.deepcopy(focus), copy.deepcopy(clf)
        _, _, h = train_mosaic(f, c, data, loss, epochs=1, lr=0.05, batch_size=6)
        sequential.append(h)
    _, _, batched = train_mosaic_runs(
        [copy.deepcopy(r[0]) for r in runs],
        [copy.deepcopy(r[1]) for r in runs],
        data,
        LOSSES,
        epochs=1,
        lr=0.05,
        batch_size=6,
    )
    for r, h in enumerate(sequential):
        assert torch.allclose(batched.loss[r], h.loss, atol=1e-5)


@pytest.mark.parametrize("loss", LOSSES)
def test_the_teaching_loop_equals_the_engine_with_one_run(loss):
    # train_mosaic (torch.optim.SGD, one run) and the engine (stacked parameters, vmap, the
    # engine's own momentum step) with R = 1: the same parameters and records after 3 epochs
    # of 4 batches, the last one short
    data = make_linear_mosaics(230, n_classes=5, m=4, seed=5)
    torch.manual_seed(3)
    focus, clf = MLPFocus(6, 8), MLPClassifier(6, 5, 8)
    plain = copy.deepcopy(focus), copy.deepcopy(clf)
    _, _, expected = train_mosaic(*plain, data, loss, epochs=3, lr=0.2, batch_size=64)
    engine = [copy.deepcopy(focus)], [copy.deepcopy(clf)]
    _, _, got = train_mosaic_runs(*engine, data, [loss], epochs=3, lr=0.2, batch_size=64)
    assert got.loss.shape == (1, 3)
    torch.testing.assert_close(got.loss[0], expected.loss, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got.mean_a_z[0], expected.mean_a_z, atol=1e-6, rtol=1e-5)
    moved = 0.0
    for p, q, start in zip(
        [*plain[0].parameters(), *plain[1].parameters()],
        [*engine[0][0].parameters(), *engine[1][0].parameters()],
        [*focus.parameters(), *clf.parameters()],
    ):
        torch.testing.assert_close(q, p, atol=1e-6, rtol=1e-5)
        moved = max(moved, (p - start).abs().max().item())
    assert moved > 1e-2  # the runs trained: equal parameters are not the untouched start


def test_the_engine_takes_the_losses_from_losses_public_api():
    # one source for the losses: mosaic_training imports no private name of course_lib.losses
    tree = ast.parse(inspect.getsource(mosaic_training))
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "losses"
        for alias in node.names
    ]
    assert "selected_loss" in imported
    assert not [name for name in imported if name.startswith("_")]
