"""CPU/CUDA mixing, tested without a GPU (benchmarks/results/device_review.md).

Three kinds of test:

* **a simulated accelerator.**  ``simulated_device()`` makes tensors that report the ``meta``
  device but hold real CPU data (a wrapper tensor subclass and a dispatch mode).  Inside it a
  library function runs its real arithmetic, and what a CUDA device would refuse is an error
  here too: an operation mixing device tensors with CPU tensors of one or more dimensions (CUDA
  accepts CPU scalars and CPU index tensors, and so does the simulation), a CPU
  ``torch.Generator`` drawing device tensors, and ``.numpy()`` on a device tensor.  The main
  entry points run on it and must return results on the inputs' device (or on the CPU where
  the function says so), with the CPU's values;
* **the device-dependent branches** (``device.type == "cuda"``, ``torch.cuda.is_available()``),
  each run on the CPU with the device injected or ``torch.cuda.is_available`` patched;
* **a scan of the source** for ``.numpy()`` without ``.cpu()`` and tensor factories without
  ``device=``, every exception listed below with its reason.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import math
import pathlib
import warnings

import numpy as np
import pytest
import torch
import torch._dynamo  # noqa: F401  (the dispatch mode's first use imports it: once, here)
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

import course_lib
from course_lib import (
    _sparse_attention,
    config,
    conservation,
    flow,
    identity,
    later_models,
    law,
    losses,
    max_margin,
    metrics,
    sst,
    training,
)
from course_lib import mosaic_training as mt
from course_lib.data import hatexplain
from course_lib.focus import LinearClassifier, LinearFocus, MLPClassifier, MLPFocus
from course_lib.mosaic import make_linear_mosaics
from course_lib.topic import TopicAttention, make_topic_corpus, reduce_fixed_classifier

SRC = pathlib.Path(course_lib.__file__).parent

# ----------------------------------------------------------------- the simulated accelerator

DEVICE = torch.device("meta")  # what the simulated tensors report
_CPU = torch.device("cpu")
_aten = torch.ops.aten
# operations CUDA runs with CPU operands of any size: a copy between devices, CPU index tensors
_CPU_OPERANDS_ALLOWED = {
    _aten.copy_.default,
    _aten._to_copy.default,
    _aten.index.Tensor,
    _aten.index_put_.default,
    _aten.index_put.default,
    _aten._index_put_impl_.default,
}


class DeviceMixError(RuntimeError):
    """What the simulated device raises where CUDA would refuse the operation."""


class _OnDevice(torch.Tensor):
    """A tensor that reports the simulated device and holds its values in a CPU tensor."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        wrapper = torch.Tensor._make_wrapper_subclass(
            cls,
            elem.shape,
            strides=elem.stride(),
            storage_offset=elem.storage_offset(),
            dtype=elem.dtype,
            layout=elem.layout,
            device=DEVICE,
            requires_grad=elem.requires_grad,
        )
        wrapper.elem = elem
        return wrapper

    def __repr__(self):
        return f"OnDevice({self.elem!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _dispatch(func, args, kwargs or {})


def _dispatch(func, args, kwargs):
    first = args[0] if args else None
    on_device, cpu_operands = [False], []

    def unwrap(x):
        if isinstance(x, _OnDevice):
            on_device[0] = True
            return x.elem
        if isinstance(x, torch.Tensor) and x.device.type == "meta":
            raise DeviceMixError(f"{func}: a tensor made on the device outside the simulation")
        if isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.dim() > 0:
            cpu_operands.append(tuple(x.shape))
        return x

    args, kwargs = tree_map(unwrap, args), tree_map(unwrap, kwargs)
    target = kwargs.get("device")
    to_device = target is not None and torch.device(target).type == "meta"
    if to_device:
        kwargs["device"] = _CPU
    generator = kwargs.get("generator")
    if generator is not None and (on_device[0] or to_device) and generator.device.type == "cpu":
        raise DeviceMixError(f"{func}: a CPU torch.Generator drawing tensors on the device")
    if on_device[0] and cpu_operands and func not in _CPU_OPERANDS_ALLOWED:
        raise DeviceMixError(f"{func}: device tensors mixed with CPU tensors {cpu_operands}")
    out = func(*args, **kwargs)
    if func is _aten._to_copy.default and target is not None and not to_device:
        return out  # an explicit copy to the CPU
    if func._schema.name.endswith("_") and isinstance(first, torch.Tensor):
        return first  # an in-place operation returns its (simulated or CPU) first argument
    if on_device[0] or to_device:
        return tree_map(lambda x: _OnDevice(x) if isinstance(x, torch.Tensor) else x, out)
    return out


class _DispatchMode(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _dispatch(func, args, kwargs or {})


class _FactoryMode(TorchFunctionMode):
    """``torch.tensor`` and friends do not pass their device through the dispatcher: build on the
    CPU, then move."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in (torch.tensor, torch.as_tensor, torch.asarray):
            device = kwargs.get("device")
            if device is not None and torch.device(device).type == "meta":
                kwargs["device"] = _CPU
                return func(*args, **kwargs).to(DEVICE)
        return func(*args, **kwargs)


@contextlib.contextmanager
def simulated_device():
    """Inside: ``.to(DEVICE)``, ``device=DEVICE`` and the results of operations on device tensors
    are simulated device tensors (see the module docstring)."""
    with _FactoryMode(), _DispatchMode():
        yield DEVICE


def on_device(value) -> bool:
    """Whether ``value`` is a simulated device tensor (with its values, not an empty meta one)."""
    return isinstance(value, _OnDevice) and value.device == DEVICE


def values(value: torch.Tensor) -> torch.Tensor:
    """The CPU values of a simulated device tensor (or the tensor itself)."""
    return value.elem.detach() if isinstance(value, _OnDevice) else value.detach()


# ------------------------------------------------------------- the simulation rejects mixing


def test_the_simulated_device_rejects_what_cuda_rejects_and_runs_what_it_runs():
    with simulated_device() as device:
        x = torch.ones(3, device=device)
        assert on_device(x) and on_device(x + torch.tensor(2.0))  # a CPU scalar is fine
        with pytest.raises(DeviceMixError, match="mixed"):
            x + torch.ones(3)
        with pytest.raises(DeviceMixError, match="Generator"):
            torch.randn(3, generator=torch.Generator(), device=device)
        with pytest.raises(RuntimeError, match="numpy"):
            x.numpy()
        assert x.cpu().numpy().tolist() == [1.0, 1.0, 1.0]
        assert float(x.sum()) == 3.0 and not on_device(x.cpu())
        rows = torch.ones(4, 3, device=device)[torch.arange(4), torch.zeros(4, dtype=torch.long)]
        assert on_device(rows)  # CPU index tensors are allowed, as on CUDA
        layer = torch.nn.Linear(3, 2).to(device)
        assert on_device(layer.weight)
        (grad,) = torch.autograd.grad(layer(x).sum(), [layer.bias])
        assert on_device(grad) and values(grad).tolist() == [1.0, 1.0]
        doubled = torch.func.vmap(lambda row: 2 * row)(torch.ones(2, 3, device=device))
        assert on_device(doubled) and values(doubled).sum() == 12
        buffer = torch.zeros(2, device=device)
        buffer.add_(1.0)
        assert on_device(buffer) and values(buffer).tolist() == [1.0, 1.0]
        assert on_device(torch.tensor([1.0, 2.0], device=device))


# ------------------------------------------------------------------------ chapter 1's trainer


@pytest.fixture(scope="module")
def corpus():
    return make_topic_corpus(n_background=20, m=3, n_sentences=12, seed=0)


def _records(history):
    return {name: getattr(history, name) for name in training.RECORDED_FIELDS}


@pytest.mark.parametrize("classifier", ["fixed", "mlp"])
def test_train_full_batch_runs_on_the_models_device_with_the_cpus_numbers(corpus, classifier):
    train = corpus.train
    options = dict(
        topic_mask=corpus.topic_mask(train.tokens),
        topic_word_ids=corpus.topic_word_ids,
        frozen_word_ids=[7, 8],
        record_all_scores=True,
        engine="autograd",
    )
    reference, history_cpu = training.train_full_batch(
        TopicAttention(corpus.vocab_size, corpus.n_topics, classifier=classifier),
        train.tokens,
        train.labels,
        4,
        **options,
    )
    seen = []
    with simulated_device() as device:
        model = TopicAttention(corpus.vocab_size, corpus.n_topics, classifier=classifier)
        model, history = training.train_full_batch(
            model.to(device),
            train.tokens,
            train.labels,
            4,
            on_record=lambda step, h: seen.append(step),
            **options,
        )
        assert all(on_device(p) for p in model.parameters())
    assert seen == [0, 1, 2, 3, 4]
    # the history is on the CPU by design (engine.History), the model stays on its device
    for name, value in {**_records(history), "steps": history.steps}.items():
        assert value.device == _CPU and not isinstance(value, _OnDevice), name
    assert torch.allclose(history.loss, history_cpu.loss, atol=1e-6)
    assert torch.allclose(values(model.embedding.weight), reference.embedding.weight, atol=1e-6)


def test_several_models_and_early_stopping_run_on_the_device(corpus):
    train = corpus.train
    with simulated_device() as device:
        models = [
            TopicAttention(corpus.vocab_size, corpus.n_topics, seed=s).to(device) for s in range(2)
        ]
        models, history = training.train_full_batch(models, *train, 3, engine="autograd")
        assert all(on_device(m.embedding.weight) for m in models)
        assert history.loss.shape == (2, 4) and history.loss.device == _CPU
        model = TopicAttention(corpus.vocab_size, corpus.n_topics, classifier="linear")
        model = model.to(device)
        mask = torch.ones_like(train.tokens, dtype=torch.bool)
        batch = sst.Batch(train.tokens, train.labels, mask)
        run = training.train_with_early_stopping(
            model, batch, batch, 4, snapshot_every=2, track=[0, 1]
        )
        assert on_device(model.embedding.weight)
        assert run.scores.device == _CPU and run.norms.shape == (3, 2)
        before = training.gradient_step(
            model, train.tokens.to(device), train.labels.to(device), 0.1
        )
        assert isinstance(before, float) and math.isfinite(before)
        assert 0.0 <= training.accuracy(model, train.tokens, train.labels) <= 1.0
        small = reduce_fixed_classifier(TopicAttention(corpus.vocab_size, 4).to(device))
        assert on_device(small.embedding.weight) and on_device(small.classifier.weight)


def test_train_full_batch_refuses_the_sparse_engine_where_it_has_no_kernels(corpus):
    with simulated_device() as device:
        model = TopicAttention(corpus.vocab_size, corpus.n_topics).to(device)
        with pytest.raises(ValueError, match="engine='sparse'"):
            training.train_full_batch(model, *corpus.train, 1, engine="sparse")


# --------------------------------------------------------- the device-dependent branches


def _model(corpus, cls=TopicAttention):
    return cls(corpus.vocab_size, corpus.n_topics)


class _Subclass(TopicAttention):
    pass


@pytest.mark.parametrize(
    ("device", "plain", "expected"),
    [
        ("cpu", True, "sparse"),
        ("cuda", True, "autograd"),
        ("meta", True, "autograd"),
        ("cpu", False, "autograd"),
        ("cuda", False, "autograd"),
    ],
)
def test_engine_auto_picks_sparse_on_the_cpu_only(corpus, device, plain, expected):
    model = _model(corpus, TopicAttention if plain else _Subclass)
    assert training._pick_engine("auto", [model], torch.device(device)) == expected


def test_the_sparse_engine_is_offered_on_cpu_and_cuda_and_refused_elsewhere(corpus):
    model = _model(corpus)
    assert training._pick_engine("sparse", [model], torch.device("cuda")) == "sparse"
    assert training._pick_engine("sparse", [model], torch.device("cpu")) == "sparse"
    assert training._pick_engine("autograd", [model], torch.device("cuda")) == "autograd"
    with pytest.raises(ValueError, match="needs a CPU or CUDA device, got meta"):
        training._pick_engine("sparse", [model], torch.device("meta"))
    assert _sparse_attention.supported(torch.device("cuda", 1))
    assert not _sparse_attention.preferred(torch.device("cuda", 0))
    assert _sparse_attention.preferred(torch.device("cpu"))


@pytest.mark.parametrize("cuda", [True, False])
def test_the_device_and_the_default_mode_follow_cuda(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert config.get_device() == torch.device("cuda" if cuda else "cpu")
    assert config._read_mode(None) == ("full" if cuda else "quick")
    assert config._read_mode("  ") == ("full" if cuda else "quick")
    assert config._read_mode("quick") == "quick"  # the environment variable wins either way
    assert config.get_device("cpu") == torch.device("cpu")
    if cuda:
        assert config.get_device("cuda") == torch.device("cuda")
    else:
        with pytest.raises(ValueError, match="no CUDA device"):
            config.get_device("cuda")


@pytest.mark.parametrize("cuda", [True, False])
def test_describe_names_the_gpu_only_when_there_is_one(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Simulated H200")
    line = config.describe()
    assert ("device: cuda (Simulated H200)" in line) is cuda
    assert ("device: cpu" in line) is not cuda


def test_seed_everything_returns_a_cpu_generator_the_library_draws_on_the_cpu():
    # the library draws initial weights on the CPU and then moves them, so the same seed gives
    # the same model on every device; a CPU generator must never draw device tensors
    assert config.seed_everything(0).device == _CPU


# ----------------------------------------------------------------- chapters 4 to 6: mosaics


@pytest.fixture(scope="module")
def mosaics():
    return make_linear_mosaics(32, n_classes=3, m=4, seed=0)


def _pairs(n, d=4, C=3):
    torch.manual_seed(0)
    return [MLPFocus(d, 5) for _ in range(n)], [MLPClassifier(d, C, 5) for _ in range(n)]


def test_train_mosaic_runs_on_the_device_with_the_cpus_numbers(mosaics):
    torch.manual_seed(0)
    focus, classifier = LinearFocus(4, init="xavier"), LinearClassifier(4, 3, init="xavier")
    cpu_focus, cpu_classifier = copy.deepcopy(focus), copy.deepcopy(classifier)
    _, _, expected = mt.train_mosaic(
        cpu_focus, cpu_classifier, mosaics, "lvml", epochs=2, lr=0.1, batch_size=16
    )
    with simulated_device() as device:
        focus, classifier = focus.to(device), classifier.to(device)
        _, _, history = mt.train_mosaic(
            focus, classifier, mosaics.to(device), "lvml", epochs=2, lr=0.1, batch_size=16
        )
        assert on_device(focus.weight) and on_device(classifier.net.weight)
    assert history.loss.device == _CPU and torch.allclose(history.loss, expected.loss)
    assert torch.allclose(history.mean_a_z, expected.mean_a_z)


def _on_device_pairs(device, n):
    focus, classifiers = _pairs(n)
    return [f.to(device) for f in focus], [c.to(device) for c in classifiers]


def _all_on_the_cpu(*histories):
    for history in histories:
        for record in (history.steps, *history.records.values()):
            assert record.device == _CPU and not isinstance(record, _OnDevice)


def test_the_batched_mosaic_trainers_run_on_the_device(mosaics):
    with simulated_device() as device:
        focus, classifiers = _on_device_pairs(device, 3)
        data = mosaics.to(device)
        _, _, runs = mt.train_mosaic_runs(
            focus,
            classifiers,
            data,
            ["soft", "hard", "lvml"],
            epochs=2,
            lr=[0.1, 0.1, 0.05],
            batch_size=16,
        )
        _, fixed = mt.train_fixed_focus(
            classifiers,
            data,
            [0.5, 1.0, 0.3],
            ["soft", "hard", "lvml"],
            epochs=2,
            lr=0.1,
            batch_size=16,
            record_epochs=[0, 2],
            evaluation="running_mean",
        )
        _, full = mt.train_fixed_focus(
            classifiers[:1], data, [1.0], ["lvml"], epochs=1, lr=0.1, batch_size=16, at_one="zero"
        )
        assert all(on_device(f.net[0].weight) for f in focus)
        assert all(on_device(c.net[0].weight) for c in classifiers)
        attention = mt.fixed_attention(0.4, data.foreground, 4)
        assert on_device(attention)
        assert torch.allclose(values(attention).sum(1), torch.ones(32))
    _all_on_the_cpu(runs, fixed, full)
    assert runs.loss.shape == (3, 2) and fixed.incentive.shape == (3, 2)
    assert float(full.incentive[0, -1]) == 0.0  # at alpha = 1 with at_one="zero"


def test_the_hybrid_trainers_run_on_the_device(mosaics):
    with simulated_device() as device:
        focus, classifiers = _on_device_pairs(device, 2)
        data = mosaics.to(device)
        _, _, hybrid = mt.train_hybrid_runs(
            focus,
            classifiers,
            [data] * 2,
            ["hybrid", "hybrid"],
            epochs=3,
            lr=0.1,
            batch_size=16,
            switch_step=[None, 2],
            plateau=mt.Plateau(patience=1),
            optimizer_at_switch=["fresh", "keep"],
        )
        _, _, two_phase = mt.train_hybrid(focus[0], classifiers[0], data, 1, 1, 0.1, 16)
        assert all(on_device(f.net[0].weight) for f in focus)
    _all_on_the_cpu(hybrid, two_phase)
    assert bool(torch.isfinite(hybrid.loss).all()) and hybrid.switch_step[1] == 2


# ------------------------------------------------------------------------- losses, metrics


def _segments_case(device=None, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    segments = torch.randn(6, 4, 5, generator=gen, dtype=dtype)
    alpha = torch.softmax(torch.randn(6, 4, generator=gen, dtype=dtype), 1)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    foreground = torch.tensor([0, 1, 2, 3, 0, 1])
    torch.manual_seed(0)
    classifier = LinearClassifier(5, 3, init="xavier").to(dtype)
    if device is None:
        return alpha, segments, labels, foreground, classifier
    return (
        alpha.to(device),
        segments.to(device),
        labels.to(device),
        foreground.to(device),
        classifier.to(device),
    )


@pytest.mark.parametrize("name", losses.LOSS_NAMES)
def test_the_losses_and_their_alpha_gradients_keep_the_device_and_the_values(name):
    alpha, segments, labels, _, classifier = _segments_case()
    expected = losses.attention_loss(name)(alpha, segments, labels, classifier)
    expected_grad = losses.alpha_gradient(name, alpha, segments, labels, classifier)
    with simulated_device() as device:
        case = _segments_case(device)
        value = losses.attention_loss(name)(*case[:3], case[4])
        grad = losses.alpha_gradient(name, *case[:3], case[4])
        picked = losses.selected_loss(
            torch.tensor([1.0, 1.0, 1.0], device=device), *case[:3], case[4]
        )
        assert on_device(value) and on_device(grad) and on_device(picked)
    assert torch.allclose(values(value), expected) and torch.allclose(values(grad), expected_grad)


def test_the_losses_keep_float64():
    alpha, segments, labels, _, classifier = _segments_case(dtype=torch.float64)
    for name in losses.LOSS_NAMES:
        assert (
            losses.attention_loss(name)(alpha, segments, labels, classifier).dtype == torch.float64
        )
        assert (
            losses.alpha_gradient(name, alpha, segments, labels, classifier).dtype == torch.float64
        )


def test_reinforce_samples_on_the_device_and_names_a_generator_on_another_one():
    with simulated_device() as device:
        alpha, segments, labels, _, classifier = _segments_case(device)
        value = losses.reinforce_hard_attention_loss(
            alpha, segments, labels, classifier, 3, baseline=True
        )
        assert on_device(value)
        with pytest.raises(ValueError, match="generator is on cpu but alpha is on meta"):
            losses.reinforce_hard_attention_loss(
                alpha, segments, labels, classifier, 2, generator=torch.Generator()
            )
    alpha, segments, labels, _, classifier = _segments_case()
    draw = losses.reinforce_hard_attention_loss(  # a generator on alpha's device is accepted
        alpha, segments, labels, classifier, 2, generator=torch.Generator().manual_seed(1)
    )
    assert draw.device == _CPU


def test_the_metrics_keep_the_device_and_the_values():
    alpha, segments, labels, foreground, classifier = _segments_case()
    expected = {
        rule: metrics.class_probabilities(alpha, segments, classifier, rule)
        for rule in metrics.RULES
    }
    expected_hist = metrics.signature_histogram(alpha[:, 0], alpha[:, 1], bins=3)
    expected_per_class = metrics.per_class_focus_accuracy(alpha, foreground, labels, 3)
    with simulated_device() as device:
        alpha, segments, labels, foreground, classifier = _segments_case(device)
        for rule in metrics.RULES:
            probs = metrics.class_probabilities(alpha, segments, classifier, rule)
            assert on_device(probs) and torch.allclose(values(probs), expected[rule]), rule
        hist = metrics.signature_histogram(alpha[:, 0], alpha[:, 1], bins=3)
        per_class = metrics.per_class_focus_accuracy(alpha, foreground, labels, 3)
        mixed = metrics.per_class_focus_accuracy(alpha, foreground.cpu(), labels.cpu(), 3)
        assert on_device(hist) and torch.equal(values(hist), expected_hist)
        assert on_device(per_class) and torch.equal(values(per_class), expected_per_class)
        assert torch.equal(values(mixed), expected_per_class)
        a_z = metrics.foreground_attention(alpha, foreground)
        table = metrics.focus_prediction_table(alpha, foreground, labels, labels)
        assert on_device(a_z) and table["FTPT"] + table["FTPF"] <= 100.0
        focus = LinearFocus(5).to(device)
        data = make_linear_mosaics(10, n_classes=4, m=3, seed=1).to(device)
        evaluation = metrics.evaluate_mosaics(focus, LinearClassifier(5, 4).to(device), data)
        assert on_device(evaluation.alpha) and on_device(evaluation.a_z)
        assert all(on_device(s) for s in evaluation.s_y.values())
        assert isinstance(evaluation.focus_accuracy, float)
        score = hatexplain.rationale_focus_accuracy(alpha, alpha > 0.3)
        assert 0.0 <= score <= 100.0


# ------------------------------------------------- laws, identities, flows: the kind rule


def test_the_closed_forms_return_tensors_on_the_inputs_device():
    score = torch.linspace(0.0, 2.0, 5, dtype=torch.float64)
    expected = {
        "curve": identity.sen_norm_curve(score, 4),
        "gap": identity.sen_relative_gap(score, score + 1, 4),
        "weight": law.attention_weight(score, 4),
        "potential": law.attention_potential(score, 4),
        "loss": flow.reduced_loss("lvml", torch.full((5,), 0.5), score, C=3),
        "incentive": flow.focus_incentive("hard", torch.full((5,), 0.5), score, C=3),
    }
    with simulated_device() as device:
        s = score.to(device)
        got = {
            "curve": identity.sen_norm_curve(s, 4),
            "gap": identity.sen_relative_gap(s, s + 1, 4),
            "weight": law.attention_weight(s, 4),
            "potential": law.attention_potential(s, 4),
            "loss": flow.reduced_loss("lvml", torch.full((5,), 0.5, device=device), s, C=3),
            "incentive": flow.focus_incentive("hard", torch.full((5,), 0.5, device=device), s, C=3),
        }
        logits = torch.randn(4, 3, device=device)
        margin = conservation.class_margin(logits, torch.tensor([0, 1, 2, 0]))  # CPU labels
        assert on_device(margin)
    for name, value in got.items():
        assert on_device(value), name
        assert torch.allclose(values(value), expected[name].to(values(value).dtype)), name
    # a float32 input stays float32
    assert law.attention_weight(score.float(), 4).dtype == torch.float32


def test_the_max_margin_direction_comes_back_on_the_classifiers_device():
    U = torch.eye(4, 3)
    gamma, u = identity.max_margin(U, 0)
    with simulated_device() as device:
        gamma_dev, u_dev = identity.max_margin(U.to(device), 0)
    assert on_device(u_dev) and gamma_dev == pytest.approx(gamma)
    assert torch.allclose(values(u_dev), u)


def test_the_later_models_train_on_the_inputs_device():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, generator=gen), torch.randn(8, 2, generator=gen)
    expected = later_models.train_two_layer_relu(x, y, 4, 0.01, 3)
    with simulated_device() as device:
        run = later_models.train_two_layer_relu(x.to(device), y.to(device), 4, 0.01, 3)
        balance = later_models.unit_balance(
            torch.ones(2, 3, device=device), torch.ones(1, 2, device=device)
        )
    assert on_device(run.balance) and on_device(run.size) and on_device(balance)
    assert torch.allclose(values(run.balance), expected.balance)


def test_max_margin_computes_on_the_cpu_whatever_the_inputs_device():
    X = torch.randn(2, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    v, y, p = torch.ones(2, dtype=torch.float64), torch.tensor([1.0, -1.0]), torch.ones(2)
    expected = max_margin.prompt_attention(X, v, None, p)
    with simulated_device() as device:
        a = max_margin.prompt_attention(X.to(device), v.to(device), None, p.to(device))
        scores = max_margin.token_scores(X.to(device), v.to(device), y.to(device))
    assert a.device == _CPU and not isinstance(a, _OnDevice) and torch.allclose(a, expected)
    assert scores.device == _CPU and scores.dtype == torch.float64


def test_the_sst_helpers_read_scores_from_the_device():
    vocab = sst.build_vocabulary([(["good", "film"], 1), (["bad", "film"], 0)])
    scores = torch.arange(len(vocab), dtype=torch.float32)
    with simulated_device() as device:
        word = sst.most_attended_word(scores.to(device), ["good", "film"], vocab)
    assert word == max(["good", "film"], key=lambda w: vocab[w])


# ------------------------------------------------------------------------ the source scan

FACTORIES = {
    "zeros",
    "ones",
    "arange",
    "eye",
    "tensor",
    "randn",
    "rand",
    "randint",
    "empty",
    "full",
    "linspace",
    "logspace",
    "randperm",
    "as_tensor",
    "normal",
}

# module (prefix) or "module::function": why its tensor factories need no device=
FACTORY_ALLOWED = {
    "checks/": "exercise checks build their own small CPU cases and call the student's function "
    "on them; nothing comes from a device",
    "flow_descent.py": "chapter 5's gradient descent on the population of mosaics: tiny float64 "
    "CPU problems built inside, no tensor argument",
    "mosaic.py": "data set builders: CPU data, moved with Mosaics.to(device) by the caller",
    "sst.py::pad_batch": "builds the CPU batch from strings; the caller moves it",
    "sst.py::most_attended_word": "indexes a .cpu() copy of the scores",
    "sst.py::attended_word_stats": "indexes a .cpu() copy of the scores",
    "sst.py::real_word_sen": "works on .cpu() copies of the model's scores and norms",
    "topic.py::TopicAttention.__init__": "the model is built on the CPU from a CPU generator "
    "(the same start on every device) and moved by .to()",
    "topic.py::fixed_classifier_matrix": "part of the CPU construction of the model",
    "topic.py::TopicCorpus.topic_word_ids": "word ids of a CPU corpus",
    "topic.py::topic_of_word_table": "a CPU corpus table",
    "topic.py::make_repeated_topic_corpus": "a CPU corpus builder",
    "focus.py::_conv_features": "a shape probe at construction, on the CPU",
    "later_models.py::joma_tokens": "self-contained CPU float64 experiments (chapter 7)",
    "later_models.py::_joma_start": "self-contained CPU float64 experiments (chapter 7)",
    "later_models.py::_joma_descend": "self-contained CPU float64 experiments (chapter 7)",
    "later_models.py::joma_run": "self-contained CPU float64 experiments (chapter 7)",
    "later_models.py::joma_run.loss_of": "self-contained CPU float64 experiments (chapter 7)",
    "later_models.py::joma_special_case": "self-contained CPU float64 experiments (chapter 7)",
    "later_models.py::train_two_layer_relu": "draws the start on the CPU generator, then moves "
    "it to the inputs' device",
    "chapters/ch02.py::background_word_ids": "word ids of a CPU corpus; the trainer moves them",
    "chapters/ch06.py::measured_momentum_lag": "a self-contained one-parameter CPU experiment "
    "on PyTorch's own SGD (exercise 6.2)",
    "chapters/ch07.py::LawRun.drift": "as_tensor of law.lemma_drift's value, which is already "
    "on the run's device (or a float)",
    "chapters/ch07.py::class_vectors": "data set builder: CPU float64 data (chapter 7's "
    "Part II runs are CPU float64 by design)",
    "chapters/ch07.py::mosaics": "data set builder: CPU float64 data, as class_vectors",
    "chapters/ch07.py::_LawRecorder.record": "class indices for a CPU float64 run",
    "chapters/ch07.py::train_mosaics": "a CPU float64 run built inside; the record times are "
    "CPU bookkeeping",
    "chapters/ch07.py::record_fits": "Python floats from later_models' fits, collected in a "
    "CPU tensor",
    "max_margin.py": "computes on the CPU by design: _tensor copies every input there (the SVMs "
    "are solved by SciPy)",
    "metrics.py::signature_histogram": "torch.as_tensor(a_z) keeps a tensor's device (a list "
    "is read on the CPU); s_y and the counts follow a_z",
    "identity.py::max_margin": "solves on a CPU float64 copy, returns u on the input's device",
    "training.py::_check_word_ids": "word ids from a list; the trainer moves them to the device",
    "training.py::_Recorder.history": "its History is on the CPU by design",
    "training.py::_Snapshots.run": "its History is on the CPU by design",
    "mosaic_training.py::train_mosaic": "the per-epoch records are CPU floats (history on CPU)",
    "mosaic_training.py::_per_epoch": "a history's epochs and steps, CPU bookkeeping",
}
NUMPY_ALLOWED = {
    "max_margin.py": "every tensor there is a CPU copy made by _tensor (module docstring)",
}


def _calls_by_function(tree):
    """(qualified function name, call node) for every call, by the innermost def/class."""
    found = []

    def visit(node, names):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, names + [child.name])
                continue
            if isinstance(child, ast.Call):
                found.append((".".join(names), child))
            visit(child, names)

    visit(tree, [])
    return found


def _goes_through_cpu(node) -> bool:
    """Whether the receiver chain of a ``.numpy()`` call holds a ``.cpu()`` call."""
    while True:
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr == "cpu":
                return True
            node = node.func
        elif isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        else:
            return False


def scan(source: str) -> tuple[list[str], list[str]]:
    """The functions of ``source`` with a tensor factory without ``device=``, and with a
    ``.numpy()`` whose receiver never goes through ``.cpu()`` (one entry per occurrence)."""
    factories, numpys = [], []
    for function, call in _calls_by_function(ast.parse(source)):
        f = call.func
        if not isinstance(f, ast.Attribute):
            continue
        if (
            isinstance(f.value, ast.Name)
            and f.value.id == "torch"
            and f.attr in FACTORIES
            and not any(k.arg == "device" for k in call.keywords)
        ):
            factories.append(function)
        if f.attr == "numpy" and not call.args and not _goes_through_cpu(f.value):
            numpys.append(function)
    return factories, numpys


def _library_findings():
    factories, numpys = [], []
    for path in sorted(SRC.rglob("*.py")):
        module = path.relative_to(SRC).as_posix()
        found_factories, found_numpys = scan(path.read_text())
        factories += [f"{module}::{name}" for name in found_factories]
        numpys += [f"{module}::{name}" for name in found_numpys]
    return factories, numpys


def _allowed(site: str, allowed: dict) -> str | None:
    module = site.split("::")[0]
    return next(
        (
            key
            for key in allowed
            if site == key or module == key or (key.endswith("/") and site.startswith(key))
        ),
        None,
    )


def test_the_scan_finds_device_less_factories_and_numpy_without_cpu():
    source = (
        "import torch\n"
        "def bad(x):\n    return torch.zeros(3) + x, x.numpy(), (x * 2).numpy()\n"
        "def good(x):\n    return torch.zeros(3, device=x.device), x.detach().cpu().numpy()\n"
        "class C:\n    def m(self, x):\n        return x[0].cpu().numpy(), torch.arange(2)\n"
    )
    assert scan(source) == (["bad", "C.m"], ["bad", "bad"])


def test_every_device_less_factory_and_numpy_call_in_the_library_is_justified():
    factories, numpys = _library_findings()
    assert factories and numpys  # the scan sees the library
    unexplained = [s for s in factories if _allowed(s, FACTORY_ALLOWED) is None]
    unexplained += [s for s in numpys if _allowed(s, NUMPY_ALLOWED) is None]
    assert not unexplained, (
        "tensor factories without device= / .numpy() without .cpu(): pass the device of the "
        f"input (or .cpu() first), or add a reason to the allow-list: {sorted(set(unexplained))}"
    )
    # no stale entries: each reason still covers something
    for allowed, sites in ((FACTORY_ALLOWED, factories), (NUMPY_ALLOWED, numpys)):
        used = {_allowed(s, allowed) for s in sites}
        assert set(allowed) <= used, sorted(set(allowed) - used)


def test_no_library_code_sets_the_default_dtype_or_device_or_pins_memory():
    offending = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        for needle in (
            "set_default_dtype",
            "set_default_device",
            "pin_memory",
            "set_default_tensor_type",
        ):
            if needle in text:
                offending.append((path.name, needle))
    assert not offending, offending


def test_the_sparse_plan_builds_its_indices_on_the_tokens_device():
    # the CSR products themselves need a real CPU or CUDA tensor: on the CPU here, the plan's
    # index tensors follow tokens.device (a factory without device= would fail the scan above)
    tokens = torch.tensor([[0, 1, 2], [2, 2, 3]])
    plan = _sparse_attention.SparsePlan(tokens.unsqueeze(0), 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        product = plan.p(torch.full((6,), 1 / 3)) @ torch.eye(5)
    for index in (plan.p_crow, plan.p_col, plan.q_crow, plan.q_col, plan.perm):
        assert index.device == tokens.device
    assert np.allclose(product.sum(1).numpy(), 1.0)
