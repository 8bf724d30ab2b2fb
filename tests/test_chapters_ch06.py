"""course_lib.chapters.ch06: chapter 6's recipes (the plan of mosaic runs and its measures, the
shortcut report, the models on text trained by the mosaics' engine, exercise 6.2's measured
lag)."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch

from course_lib import flow, sst
from course_lib.chapters import ch06
from course_lib.focus import LinearClassifier, LinearFocus
from course_lib.losses import attention_loss
from course_lib.mosaic import Mosaics, make_linear_mosaics
from course_lib.mosaic_training import train_hybrid_runs
from course_lib.topic import TopicAttention

DATA = make_linear_mosaics(120, n_classes=4, m=5, seed=3)


def linear_pair():
    return (lambda: LinearFocus(5)), (lambda: LinearClassifier(5, 4))


def flat(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_settings_are_frozen_and_built_by_keyword():
    fields = [f.name for f in dataclasses.fields(ch06.Settings)]
    assert fields[0] == "ode_late_end" and fields[-1] == "batch_size" and len(fields) == 22
    values = dict.fromkeys(fields, 1)
    settings = ch06.Settings(**values)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.seeds = 2
    assert repr(settings).startswith("Settings(ode_late_end=1, ")


def test_alpha_of_is_the_attention_of_the_flow():
    t = np.linspace(0.0, 50.0, 11)
    nu = flow.solve_flow("hybrid", t, m=5, C=3, switch_time=20.0)[1]
    alpha = ch06.alpha_of("hybrid", t, m=5, C=3, switch_time=20.0)
    np.testing.assert_allclose(alpha, np.exp(nu) / (np.exp(nu) + 4))
    assert alpha[0] == pytest.approx(1 / 5)  # nu = 0: uniform over the m = 5 segments
    with pytest.raises(ValueError, match="m"):
        ch06.alpha_of("soft", t, m=1, C=3)


def test_steps_per_epoch_keeps_the_last_batch():
    assert ch06.steps_per_epoch(1000, 250) == 4 and ch06.steps_per_epoch(1001, 250) == 5
    with pytest.raises(ValueError, match="batch_size"):
        ch06.steps_per_epoch(10, 0)


def test_build_runs_is_seed_major_and_seeded():
    plan = [("soft", 0), ("hybrid", 2)]
    focus, clf, methods, switches = ch06.build_runs(
        lambda: torch.nn.Linear(3, 2), lambda: torch.nn.Linear(2, 2), plan, 2
    )
    assert methods == ["soft", "hybrid"] * 2 and switches == [0, 2] * 2
    assert torch.equal(flat(focus[0]), flat(focus[1]))  # one seed, one initialisation
    assert not torch.equal(flat(focus[0]), flat(focus[2]))  # the next seed differs
    with pytest.raises(ValueError, match="plan's methods"):
        ch06.build_runs(lambda: None, lambda: None, [("sharp", 0)], 1)
    with pytest.raises(ValueError, match="plan must"):
        ch06.build_runs(lambda: None, lambda: None, [], 1)


def test_train_plan_equals_train_hybrid_runs_on_the_built_runs():
    make_focus, make_clf = linear_pair()
    plan = [("soft", 0, "fresh"), ("hard", 0, "fresh"), ("hybrid", 1, "keep")]
    per_seed = [DATA, make_linear_mosaics(120, n_classes=4, m=5, seed=4)]
    focus, clf, hist = ch06.train_plan(
        make_focus, make_clf, plan, per_seed, seeds=2, epochs=3, lr=0.3, batch_size=40
    )
    ref_focus, ref_clf, methods, switches = ch06.build_runs(make_focus, make_clf, plan, 2)
    _, _, ref = train_hybrid_runs(
        ref_focus,
        ref_clf,
        [d for d in per_seed for _ in plan],
        methods,
        epochs=3,
        lr=0.3,
        batch_size=40,
        switch_step=[3 * e for e in switches],  # 120 mosaics: 3 steps an epoch
        optimizer_at_switch=["fresh", "fresh", "keep"] * 2,
    )
    assert torch.equal(hist.mean_a_z, ref.mean_a_z) and len(focus) == 6
    assert hist.switch_step.tolist() == [-1, 0, 3] * 2
    for a, b in zip(clf, ref_clf):
        assert torch.equal(flat(a), flat(b))
    with pytest.raises(TypeError, match="one per seed"):
        ch06.train_plan(
            make_focus, make_clf, plan, [DATA], seeds=2, epochs=1, lr=0.1, batch_size=40
        )


def test_first_epoch_above_and_crossing():
    curve = [0.1, 0.4, 0.8, 0.95]
    assert ch06.first_epoch_above(curve, 0.5) == 3
    assert ch06.first_epoch_above(curve, 0.99) is None
    with pytest.raises(ValueError, match="1-D"):
        ch06.first_epoch_above(np.zeros((2, 3)), 0.5)
    assert ch06.crossing(curve, 0.6) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="cross"):
        ch06.crossing(curve, 0.99)


def test_gain_envelope_and_table():
    soft = np.array([[0.2, 0.5, 0.6, 0.6]] * 2)
    hard = np.array([[0.1, 0.3, 0.6, 0.9]] * 2)
    hybrid = np.array([[0.2, 0.55, 0.5, 0.92]] * 2)
    gain = ch06.gain_over_pure(hybrid, soft, hard)
    np.testing.assert_allclose(gain[0], [0.0, 0.05, -0.1, 0.02], atol=1e-12)
    largest, at, shortfall, when = ch06.envelope_row(hybrid, soft, hard, 2)
    assert (at, when) == (2, 3) and largest == pytest.approx(0.05)
    assert shortfall == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="switch"):
        ch06.envelope_row(hybrid, soft, hard, 4)  # after the last epoch
    with pytest.raises(ValueError, match="one shape"):
        ch06.gain_over_pure(hybrid[:, :3], soft, hard)
    plan = [("soft", 0, "fresh"), ("hard", 0, "fresh"), ("hybrid", 1, "keep")]
    a_z = np.stack([soft, hard, hybrid], axis=1)  # (seeds, plan, T)
    envelope, table = ch06.envelope_table(
        a_z, plan, plateau_epoch=0, names=dict.fromkeys(("soft", "hard", "hybrid"), "x")
    )
    assert envelope[2] == ch06.envelope_row(hybrid, soft, hard, 1)
    lines = table.splitlines()
    assert len(lines) == 5 and "largest gain" in lines[0] and "| keep |" in lines[-1]
    with pytest.raises(ValueError, match="a_z must have shape"):
        ch06.envelope_table(a_z[:, :2], plan, plateau_epoch=0, names={})


def test_evaluations_pick_each_seed_of_an_entry():
    make_focus, make_clf = linear_pair()
    plan = [("soft", 0), ("hard", 0)]
    focus, clf, _ = ch06.train_plan(
        make_focus, make_clf, plan, DATA, seeds=2, epochs=1, lr=0.3, batch_size=40
    )
    results = ch06.evaluations(focus, clf, DATA, len(plan), {"hard": 1}, 2)
    assert list(results) == ["hard"] and len(results["hard"]) == 2
    with torch.no_grad():
        alpha = torch.softmax(focus[3](DATA.segments), 1)  # seed 1, entry 1
    torch.testing.assert_close(results["hard"][1].alpha, alpha)
    with pytest.raises(ValueError, match="runs"):
        ch06.evaluations(focus, clf, DATA, 3, {"hard": 1}, 2)


def test_load_images_digits():
    train_x, train_y, test_x, test_y, make_focus, make_clf = ch06.load_images("digits")
    assert train_x.shape[1] == 64 and len(train_x) == len(train_y) and len(test_x) == len(test_y)
    assert make_focus()(torch.zeros(2, 5, 64)).shape == (2, 5)
    assert make_clf()(torch.zeros(2, 64)).shape == (2, 3)
    with pytest.raises(ValueError, match="name"):
        ch06.load_images("mnist")


def eliminator_results():
    """A perfect eliminator on 3-class mosaics: the foreground found for classes 0 and 1,
    never for class 2 (which it predicts by elimination)."""
    n, m = 60, 4
    labels = torch.arange(n) % 3
    foreground = torch.arange(n) % m
    segments = torch.zeros(n, m, 2)
    attended = torch.where(labels == 2, (foreground + 1) % m, foreground)
    alpha = torch.nn.functional.one_hot(attended, m).float()
    table = {"average_output": {"FTPT": 66.7, "FFPT": 33.3, "FTPF": 0.0, "FFPF": 0.0}}
    evaluation = type("E", (), {})()
    evaluation.alpha, evaluation.table = alpha, table
    evaluation.accuracy = {"average_output": 100.0}
    return {"hard": [evaluation]}, Mosaics(segments, labels, foreground)


def test_shortcut_report_finds_the_eliminated_class(capsys):
    results, test = eliminator_results()
    found = ch06.shortcut_report(results, test, "toy")
    assert found == [("hard", 0, 2, 100.0, 33.3, 1.0, 0.0)]
    assert "<- shortcut: class 2 by elimination" in capsys.readouterr().out
    with pytest.raises(TypeError, match="test must be"):
        ch06.shortcut_report(results, test.segments, "toy")


def test_measured_momentum_lag_matches_the_formula():
    for steps in (0, 4, 40):
        measured = ch06.measured_momentum_lag(0.9, steps)
        assert measured == pytest.approx(flow.fresh_momentum_lag(0.9, steps), abs=1e-9)
    assert ch06.measured_momentum_lag(0.5, 3) == pytest.approx(0.875)  # 1/2 + 1/4 + 1/8
    assert ch06.measured_momentum_lag(0.5, 3, warmup=0) == 0.0  # both start afresh
    with pytest.raises(ValueError, match="beta"):
        ch06.measured_momentum_lag(1.0, 4)


# ------------------------------------------------------------------------------------- text

TEXTS = [
    (["good", "film", "a"], 1),
    (["bad", "plot"], 0),
    (["a", "good", "good", "story", "film"], 1),
    (["bad"], 0),
    (["plot", "a", "bad", "film"], 0),
    (["story", "good"], 1),
    (["a", "a", "bad", "plot", "story", "film", "good"], 0),
]
TEXT_EPOCHS, TEXT_BATCH, TEXT_LR = 4, 3, 0.5  # 7 texts: 3 steps an epoch


def text_models(n):
    vocab = sst.build_vocabulary(TEXTS)
    batch = sst.Batch(*sst.pad_batch(TEXTS, vocab))
    model = TopicAttention(len(vocab), 2, embed_dim=4, classifier="linear", embedding_std=0.3)
    return [copy.deepcopy(model) for _ in range(n)], batch


def plain_text_loop(model, batch, method, switch_epoch):
    """Chapter 6's former notebook loop: torch.optim.SGD, a fresh one at the hybrid's switch."""
    params = [p for p in model.parameters() if p.requires_grad]
    n, optimizer = len(batch.labels), None
    for epoch in range(TEXT_EPOCHS):
        loss = method if method != "hybrid" else ("soft" if epoch < switch_epoch else "hard")
        if optimizer is None or (method == "hybrid" and epoch == switch_epoch):
            optimizer = torch.optim.SGD(params, lr=TEXT_LR, momentum=0.9)
        for start in range(0, n, TEXT_BATCH):
            rows = slice(start, start + TEXT_BATCH)
            length = int(batch.mask[rows].sum(1).max())
            tokens, mask = batch.tokens[rows, :length], batch.mask[rows, :length]
            alpha = model.attention(tokens, mask)
            value = attention_loss(loss)(
                alpha, model.embedding(tokens), batch.labels[rows], model.classifier
            )
            optimizer.zero_grad()
            value.backward()
            optimizer.step()


def test_text_runs_equal_the_plain_loop():
    methods = ["soft", "hard", "lvml", "hybrid"]
    models, batch = text_models(len(methods))
    reference = copy.deepcopy(models)
    records = ch06.train_text_runs(
        models,
        batch,
        methods,
        epochs=TEXT_EPOCHS,
        lr=TEXT_LR,
        batch_size=TEXT_BATCH,
        switch_epoch=2,
    )
    largest = records.largest_attention
    assert records.loss.shape == largest.shape == (len(methods), TEXT_EPOCHS)
    assert bool((largest > 0).all()) and bool((largest <= 1).all())
    for model, ref, method in zip(models, reference, methods):
        plain_text_loop(ref, batch, method, switch_epoch=2)
        torch.testing.assert_close(flat(model), flat(ref), atol=1e-5, rtol=1e-5)
    # and training moved the models: the hybrid ends away from pure soft
    assert (flat(models[3]) - flat(models[0])).abs().max() > 1e-3
    assert math.isfinite(float(records.loss.sum()))


def test_text_runs_refuse_bad_arguments():
    models, batch = text_models(2)
    options = dict(epochs=1, lr=0.1, batch_size=3, switch_epoch=0)
    with pytest.raises(TypeError, match="batch must be"):
        ch06.train_text_runs(models, tuple(batch), ["soft", "hard"], **options)
    with pytest.raises(ValueError, match="methods must"):
        ch06.train_text_runs(models, batch, ["soft"], **options)
    fixed = [TopicAttention(len(models[0].embedding.weight), 2, embed_dim=4)]
    with pytest.raises(ValueError, match="linear"):
        ch06.train_text_runs(fixed, batch, ["soft"], **options)
    with pytest.raises(ValueError, match="epochs"):
        ch06.train_text_runs(models, batch, ["soft", "hard"], **{**options, "epochs": 0})
