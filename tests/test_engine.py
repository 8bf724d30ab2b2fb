"""course_lib.engine: the one training loop, against the plain loops the chapters show first."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import engine
from course_lib.engine import History
from course_lib.focus import LinearClassifier, LinearFocus
from course_lib.mosaic import make_linear_mosaics
from course_lib.mosaic_training import train_mosaic, train_mosaic_runs
from course_lib.topic import TopicAttention, make_topic_corpus
from course_lib.training import gradient_step


def scalar_runs(values):
    """R one-parameter runs whose loss k * p (index k) has the constant gradient k."""
    params = {"p": torch.tensor(values, dtype=torch.float64)}

    def loss(params, batch, index):
        return index.to(torch.float64) * params["p"], None

    return params, loss


def test_gradient_descent_equals_the_teaching_gradient_step():
    corpus = make_topic_corpus(n_background=20, m=3, n_sentences=30, seed=2)
    model = TopicAttention(corpus.vocab_size, corpus.n_topics, seed=1)
    reference = copy.deepcopy(model)
    tokens, labels = corpus.train
    for _ in range(5):
        gradient_step(reference, tokens, labels, lr=0.3)
    params = {k: p for k, p in model.named_parameters() if p.requires_grad}

    def loss(params, batch, index):
        return F.cross_entropy(model(tokens), labels).reshape(1), None

    assert engine.train(params, loss, steps=5, lr=0.3) == 5
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name  # bitwise: the same two operations per step


def test_momentum_equals_torch_sgd():
    torch.manual_seed(0)
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, dtype=torch.float64)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    for _ in range(7):
        optimizer.zero_grad()
        ((x @ w - y) ** 2).mean().backward()
        optimizer.step()
    params = {"w": torch.zeros(1, 3, dtype=torch.float64)}

    def loss(params, batch, index):
        return ((x @ params["w"][0] - y) ** 2).mean().reshape(1), None

    engine.train(params, loss, steps=7, lr=0.1, momentum=0.9)
    torch.testing.assert_close(params["w"][0], w.detach(), rtol=1e-12, atol=1e-12)


def test_teaching_train_mosaic_equals_the_engine_runs():
    data = make_linear_mosaics(40, n_classes=3, m=4, seed=1)
    torch.manual_seed(3)
    focus, classifier = LinearFocus(4).double(), LinearClassifier(4, 3).double()
    pair = [copy.deepcopy(focus)], [copy.deepcopy(classifier)]
    data64 = type(data)(data.segments.double(), data.labels, data.foreground)
    options = dict(epochs=3, lr=0.25, batch_size=16, momentum=0.9)  # lr exact in float32
    _, _, plain = train_mosaic(focus, classifier, data64, "hard", **options)
    _, _, runs = train_mosaic_runs(*pair, data64, ["hard"], **options)
    torch.testing.assert_close(runs.loss[0], plain.loss.to(runs.loss.dtype), rtol=1e-6, atol=1e-7)
    for a, b in zip(pair[1][0].parameters(), classifier.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fresh", [True, False])
def test_schedule_fresh_or_kept_momentum_at_the_loss_change(fresh):
    params, loss = scalar_runs([0.0])
    schedule = engine.Schedule([1], [2], [2], [fresh])
    engine.train(params, loss, steps=4, lr=1.0, momentum=0.5, schedule=schedule)
    # buffers: 1, 1.5, then 2 (fresh) or 2.75, then 3 or 3.375
    expected = 1 + 1.5 + (2 + 3 if fresh else 2.75 + 3.375)
    assert float(params["p"][0].detach()) == -expected
    assert schedule.switched_at.tolist() == [2]


def test_schedule_decide_and_constant():
    schedule = engine.Schedule([0, 0], [1, 1], [None, None], [True, True])
    assert schedule(3).tolist() == [0, 0]
    schedule.decide(torch.tensor([True, False]), 4)
    assert schedule(4).tolist() == [1, 0] and schedule.switched_at.tolist() == [4, -1]
    assert engine.Schedule.constant([2, 0])(10**6).tolist() == [2, 0]


def test_held_and_masked_parameters_stay():
    params = {"a": torch.ones(2, 3), "b": torch.ones(2, 3)}

    def loss(params, batch, index):
        return (params["a"] + params["b"]).sum(1), None

    mask = torch.tensor([[1.0, 0.0, 1.0]])
    engine.train(params, loss, steps=2, lr=0.5, held=["b"], masks={"a": mask})
    assert torch.equal(params["b"], torch.ones(2, 3))
    assert params["a"][:, 1].tolist() == [1.0, 1.0] and params["a"][:, 0].tolist() == [0.0, 0.0]


def test_hooks_batches_stop_and_final():
    params, loss = scalar_runs([0.0, 0.0])
    seen, batches = [], engine.minibatches(5, 2)
    taken = engine.train(
        params,
        lambda p, batch, index: (p["p"] * (batch[1] - batch[0]), None),
        steps=10,
        lr=1.0,
        batches=lambda step: batches[step % len(batches)],
        on_step=lambda step: seen.append(step.batch) or step.number == 3,
    )
    assert taken == 4 and seen == [(0, 2), (2, 4), (4, 5), (0, 2)]
    assert params["p"].tolist() == [-7.0, -7.0]
    params, loss = scalar_runs([0.0])
    recorded = []
    index = torch.tensor([1])

    def record(step):
        recorded.append((step.number, float(step.values[0].detach())))

    engine.train(params, lambda p, b, i: loss(p, b, index), steps=3, lr=1.0, record=record)
    assert [n for n, _ in recorded] == [0, 1, 2]
    recorded.clear()
    taken = engine.train(
        params, lambda p, b, i: loss(p, b, index), steps=2, lr=1.0, record=record, final=True
    )
    assert taken == 2 and recorded == [(0, -3.0), (1, -4.0), (2, -5.0)]  # values before steps
    stop = engine.train(params, lambda p, b, i: loss(p, b, index), steps=9, lr=1.0,
                        record=lambda step: step.number == 1)  # fmt: skip
    assert stop == 1 and float(params["p"][0].detach()) == -6.0


def test_stack_trains_modules_in_place():
    modules = [nn.Linear(2, 1) for _ in range(3)]
    stack = engine.Stack({"net": modules})
    x = torch.randn(4, 2)

    def loss(params, batch, index):
        out = torch.einsum("bi,roi->rbo", x, params["net.weight"]) + params["net.bias"][:, None]
        return out.square().mean((1, 2)), None

    engine.train(stack.params, loss, steps=2, lr=torch.tensor([0.1, 0.2, 0.3]))
    stack.write_back()
    for r, module in enumerate(modules):
        assert torch.equal(module.weight.detach(), stack.params["net.weight"][r])
    with pytest.raises(TypeError, match="groups"):
        engine.Stack([])
    with pytest.raises(ValueError, match="same architecture"):
        engine.Stack({"net": [nn.Linear(2, 1), nn.Identity()]})


def test_train_refuses_bad_arguments():
    params, loss = scalar_runs([0.0])
    with pytest.raises(TypeError, match="params"):
        engine.train([], loss, steps=1, lr=1.0)
    with pytest.raises(ValueError, match="held"):
        engine.train(params, loss, steps=1, lr=1.0, held=["q"])
    with pytest.raises(ValueError, match="lr"):
        engine.train(params, loss, steps=1, lr=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        engine.train(params, loss, steps=1, lr=1.0, momentum=1.5)
    with pytest.raises(ValueError, match="steps"):
        engine.train(params, loss, steps=-1, lr=1.0)
    with pytest.raises(TypeError, match="schedule"):
        engine.train(params, loss, steps=1, lr=1.0, schedule=[0])
    with pytest.raises(ValueError, match="one entry per run"):
        engine.Schedule([0, 1], [1], [0, 0], [True, True])
    with pytest.raises(ValueError, match="batch_size"):
        engine.minibatches(4, 0)


# ------------------------------------------------------------------------ History


def _history(stacked=True):
    loss = torch.tensor([[1.0, 0.5, 0.2], [1.0, 0.9, 0.8]])
    a_z = torch.rand(2, 3, 4)
    records = {"loss": loss, "a_z": a_z} if stacked else {"loss": loss[0], "a_z": a_z[0]}
    meta = {"lr": 0.1, "switch_step": torch.tensor([4, -1]), "epochs": torch.tensor([0, 1, 2])}
    per_run = ("switch_step",) if stacked else ()
    if not stacked:
        meta.pop("switch_step")
    return History(torch.tensor([0, 4, 8]), records, meta, stacked, per_run)


def test_history_fields_read_as_attributes():
    h = _history()
    assert h.loss is h.records["loss"] and h.lr == 0.1 and h.names == ["loss", "a_z"]
    assert h.stacked and h.n_replicas == 2 and torch.equal(h.epochs, torch.tensor([0, 1, 2]))
    one = h.replica(1)
    assert not one.stacked and one.n_replicas == 1 and int(one.switch_step) == -1
    assert torch.equal(one.loss, h.loss[1]) and torch.equal(one.steps, h.steps)
    assert h.first_step_below(0.6).tolist() == [4, -1]
    assert int(one.first_step_below(0.95)) == 4
    assert copy.deepcopy(h).lr == 0.1  # copies and pickles despite __getattr__


def test_history_then_joins_two_phases():
    first = History(
        torch.tensor([2, 4]), {"loss": torch.tensor([3.0, 2.0])}, {"epochs": torch.tensor([1, 2])}
    )
    later = History(torch.tensor([2]), {"loss": torch.tensor([1.0])}, {"epochs": torch.tensor([1])})
    joined = first.then(later)
    assert joined.steps.tolist() == [2, 4, 6] and joined.epochs.tolist() == [1, 2, 3]
    assert joined.loss.tolist() == [3.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="later"):
        first.then(History(torch.tensor([1]), {"other": torch.tensor([1.0])}))


def test_history_unknown_field_names_it():
    with pytest.raises(AttributeError, match="'focus_accuracy'"):
        _history().focus_accuracy
    with pytest.raises(AttributeError, match="'loss'"):
        History(torch.tensor([0]), {"dev_loss": torch.tensor([1.0])}).first_step_below(0.5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": [0, 1]}, "steps"),
        ({"records": {}}, "records"),
        ({"records": {"loss": torch.zeros(3)}}, "loss"),  # 3 rows, 2 steps
        (
            {"records": {"loss": torch.zeros(2, 2), "b": torch.zeros(3, 2)}, "stacked": True},
            "run axis",
        ),
        ({"meta": {"loss": 1.0}}, "unique"),
        ({"records": {"replica": torch.zeros(2)}}, "replica"),
        ({"meta": {"lr": 0.1}, "per_run": ("switch_step",)}, "per_run"),
    ],
)
def test_history_rejects_bad_arguments(kwargs, match):
    args = {"steps": torch.tensor([0, 1]), "records": {"loss": torch.zeros(2)}, **kwargs}
    with pytest.raises((TypeError, ValueError), match=match):
        History(**args)


def test_history_replica_needs_a_run_axis_and_a_valid_index():
    with pytest.raises(ValueError, match="replica"):
        _history(stacked=False).replica(0)
    with pytest.raises(ValueError, match="r"):
        _history().replica(2)
