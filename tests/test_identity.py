"""Unit tests of course_lib.identity (chapter 2): the formulas, their argument checks, and the
identity itself against short training runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib import identity, law
from course_lib.topic import TopicAttention, attention_forward, make_topic_corpus
from course_lib.training import train_full_batch

torch.set_num_threads(1)


# --------------------------------------------------------------------------- formulas


def test_sen_invariant_values_and_types():
    c = identity.sen_invariant(1.0, 4.0, 0.5, 20)
    assert c == pytest.approx(0.5 * 4.0 - 2.0 - 0.1 * math.e)
    arr = identity.sen_invariant(np.array([0.0, 1.0]), np.array([1.0, 2.0]), 2.0, 10)
    assert isinstance(arr, np.ndarray) and arr.shape == (2,)
    t = identity.sen_invariant(
        torch.zeros(3, 2, dtype=torch.float64),
        torch.ones(3, 2, dtype=torch.float64),
        torch.tensor(2.0, dtype=torch.float64),
        4,
    )
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    assert torch.allclose(t, torch.full((3, 2), 2.0 - 0.5, dtype=torch.float64))


def test_sen_invariant_is_constant_on_the_curve():
    s = torch.linspace(-0.5, 6, 50, dtype=torch.float64)
    for m in (1, 5, 20, 80):
        curve = identity.sen_norm_curve(s, m, score0=-0.5, scaled_norm0=0.7)
        c = identity.sen_invariant(s, curve**2, 1.0, m)
        assert torch.allclose(c, c[0].expand_as(c), atol=1e-10)


def test_sen_invariant_rejects_bad_arguments():
    with pytest.raises(TypeError, match="score"):
        identity.sen_invariant("1", 1.0, 1.0, 20)
    with pytest.raises(TypeError, match="embed_norm_sq"):
        identity.sen_invariant(1.0, {1.0}, 1.0, 20)  # a set is no array
    with pytest.raises(ValueError, match="embed_norm_sq"):
        identity.sen_invariant(1.0, -1.0, 1.0, 20)
    with pytest.raises(ValueError, match="query_norm_sq"):
        identity.sen_invariant(1.0, 1.0, torch.tensor([-1.0]), 20)
    with pytest.raises(ValueError, match="m"):
        identity.sen_invariant(1.0, 1.0, 1.0, 0)
    with pytest.raises(TypeError, match="m"):
        identity.sen_invariant(1.0, 1.0, 1.0, "20")
    with pytest.raises(TypeError, match="score"):
        identity.sen_invariant(True, 1.0, 1.0, 20)


def test_sen_norm_curve_defaults_and_shape():
    assert identity.sen_norm_curve(0.0, 20) == 0.0
    s = np.linspace(0, 5, 11)
    expected = np.sqrt(2 * (s + (np.exp(s) - 1) / 20))
    assert np.allclose(identity.sen_norm_curve(s, 20), expected)
    # below the start the radicand is negative: clamped to 0, never nan
    assert identity.sen_norm_curve(-1.0, 20) == 0.0
    t = identity.sen_norm_curve(torch.tensor([1.0, 2.0]), 20)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    with pytest.raises(TypeError, match="score0"):
        identity.sen_norm_curve(1.0, 20, score0="0")
    with pytest.raises(ValueError, match="m"):
        identity.sen_norm_curve(1.0, -3)


def test_sen_score_from_norm_inverts_the_curve():
    for m in (1, 5, 20, 200):
        s = np.array([0.0, 0.01, 0.5, 2.0, 5.0, 12.0, 40.0])
        x = identity.sen_norm_curve(s, m)
        assert np.allclose(identity.sen_score_from_norm(x, m), s, atol=1e-9)
    s0, x0 = 0.3, 0.8
    s = np.array([0.5, 3.0])
    assert np.allclose(
        identity.sen_score_from_norm(identity.sen_norm_curve(s, 20, s0, x0), 20, s0, x0), s
    )
    with pytest.raises(ValueError, match="scaled_norm"):
        identity.sen_score_from_norm(-1.0, 20)


def test_relative_gap():
    s = np.array([1.0, 2.0])
    x = identity.sen_norm_curve(s, 20)
    assert np.allclose(identity.sen_relative_gap(s, 1.1 * x, 20), 0.1)
    t = identity.sen_relative_gap(torch.tensor([1.0]), torch.tensor([0.0]), 20)
    assert torch.allclose(t, torch.tensor([1.0]))
    with pytest.raises(TypeError, match="scaled_norm"):
        identity.sen_relative_gap(1.0, "x", 20)


def test_regimes():
    m = 20
    assert law.attention_weight(0.0, m) == pytest.approx(1 / (m + 1))
    s = np.array([1e-3, 1e-2])
    x2 = identity.sen_norm_curve(s, m) ** 2
    assert np.allclose(x2 / identity.small_score_norm_sq(s, m), 1, atol=1e-2)
    s = np.array([14.0, 20.0])
    x2 = identity.sen_norm_curve(s, m) ** 2
    assert np.allclose(
        (1 - law.attention_weight(s, m)) / identity.large_score_miss(x2), 1, atol=3e-3
    )
    with pytest.raises(ValueError, match="scaled_norm_sq"):
        identity.large_score_miss(0.0)
    # the missed attention at a given scaled norm hardly depends on m once scores are large
    x = 300.0
    misses = [
        1 - law.attention_weight(identity.sen_score_from_norm(x, mm), mm) for mm in (5, 20, 80)
    ]
    assert max(misses) / min(misses) < 1.1


def test_max_margin():
    gamma, u = identity.max_margin(torch.eye(2), 0)
    assert gamma == pytest.approx(math.sqrt(2), rel=1e-6)
    assert torch.allclose(u, torch.tensor([1.0, -1.0], dtype=torch.float64) / math.sqrt(2))
    gamma, _ = identity.max_margin(torch.tensor([[1.0, 1.0], [0.0, 0.0]]), 0)  # identical columns
    assert gamma == 0.0
    with pytest.raises(ValueError, match="label"):
        identity.max_margin(torch.eye(3), 3)
    with pytest.raises(TypeError, match="classifier_matrix"):
        identity.max_margin(np.eye(3), 0)


# --------------------------------------------------------------------------- gradients


def test_score_gradient_matches_autograd():
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(12, (5, 7), generator=gen)
    emb = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    keys = torch.randn(12, 4, generator=gen, dtype=torch.float64).requires_grad_()
    query = torch.randn(4, generator=gen, dtype=torch.float64)
    U = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    labels = torch.randint(2, (5,), generator=gen)
    scores, attention, context = attention_forward(tokens, emb, keys, query)
    scores.retain_grad()
    context.retain_grad()
    F.cross_entropy(context @ U, labels, reduction="sum").backward()
    ours = identity.score_gradient(attention, emb[tokens], context, context.grad)
    assert torch.allclose(ours, scores.grad, atol=1e-12)


def test_score_gradient_rejects_bad_shapes():
    a = torch.rand(2, 3)
    w = torch.rand(2, 3, 4)
    v = torch.rand(2, 4)
    with pytest.raises(TypeError, match="attention"):
        identity.score_gradient(a.numpy(), w, v, v)
    with pytest.raises(ValueError, match="word_embeddings"):
        identity.score_gradient(a, w[:, :2], v, v)
    with pytest.raises(ValueError, match="grad_context"):
        identity.score_gradient(a, w, v, v[:, :3])
    with pytest.raises(ValueError, match="context"):
        identity.score_gradient(a, w, v[None], v)


def test_sen_drift_shapes_and_errors():
    s = torch.linspace(0, 2, 6)[:, None].repeat(1, 3)
    w = identity.sen_norm_curve(s, 20)
    assert torch.allclose(identity.sen_drift(s, w, torch.ones(6), 20), torch.zeros(3), atol=1e-5)
    with pytest.raises(ValueError, match="query_norms"):
        identity.sen_drift(s, w, torch.ones(5), 20)
    with pytest.raises(ValueError, match="norms"):
        identity.sen_drift(s, w[:, :2], torch.ones(6), 20)
    with pytest.raises(TypeError, match="scores"):
        identity.sen_drift(s.numpy(), w, torch.ones(6), 20)


# ------------------------------------------------------------ the identity against simulation


@pytest.fixture(scope="module")
def tiny():
    return make_topic_corpus(n_background=60, n_sentences=100, seed=0)


def _frozen_run(corpus, lr, t_end=40.0, classifier="fixed", **model_kw):
    model = TopicAttention(
        corpus.vocab_size, corpus.n_topics, classifier=classifier, seed=0, **model_kw
    )
    steps = int(round(t_end / lr))
    background = torch.arange(corpus.n_topics * corpus.words_per_topic, corpus.vocab_size)
    return train_full_batch(
        model,
        corpus.train.tokens,
        corpus.train.labels,
        steps,
        lr,
        topic_word_ids=corpus.topic_word_ids,
        frozen_word_ids=background,
        record_every=max(1, steps // 50),
    )


def test_drift_is_proportional_to_lr(tiny):
    drifts = []
    for lr in (0.2, 0.1):
        _, h = _frozen_run(tiny, lr)
        drifts.append(
            float(identity.sen_drift(h.topic_scores, h.topic_norms, h.query_norm, tiny.m).max())
        )
        assert h.topic_scores[-1].max() > 1.0  # the run got somewhere
    assert 1.8 < drifts[0] / drifts[1] < 2.2
    assert drifts[1] < 1e-2


@pytest.mark.parametrize("classifier", ["fixed", "linear"])
def test_topic_words_follow_the_curve(tiny, classifier):
    model, h = _frozen_run(
        tiny, 0.1, t_end=60.0 if classifier == "fixed" else 150.0, classifier=classifier
    )
    gap = identity.history_sen_gap(h, tiny.m)
    assert (~gap.isnan()).sum() > 10
    assert torch.nan_to_num(gap, 0).max() < 0.01
    # keys move along the query only
    k = model.keys.weight[: len(tiny.topic_word_ids)].detach().double()
    q = model.query.double()
    cos = (k @ q) / (k.norm(dim=1) * q.norm())
    assert torch.allclose(cos.abs(), torch.ones_like(cos), atol=1e-5)
    # invariant from the history agrees with sen_invariant on the final parameters
    final_c = identity.sen_invariant(
        model.scores()[:8].double(),
        model.embedding.weight[:8].double().square().sum(1),
        q.square().sum(),
        tiny.m,
    )
    assert torch.allclose(identity.history_invariant(h, tiny.m)[-1], final_c.detach(), atol=1e-4)


def test_trained_query_breaks_the_identity(tiny):
    _, fixed = _frozen_run(tiny, 0.1)
    _, trained = _frozen_run(tiny, 0.1, train_query=True)
    d_fixed = identity.sen_drift(
        fixed.topic_scores, fixed.topic_norms, fixed.query_norm, tiny.m
    ).max()
    d_trained = identity.sen_drift(
        trained.topic_scores, trained.topic_norms, trained.query_norm, tiny.m
    ).max()
    assert trained.query_norm[-1] > trained.query_norm[0]
    assert d_trained > 20 * d_fixed


def test_history_helpers_validate(tiny):
    model = TopicAttention(tiny.vocab_size, tiny.n_topics, seed=0)
    _, h = train_full_batch(model, tiny.train.tokens, tiny.train.labels, 2, 0.1)
    with pytest.raises(ValueError, match="topic_word_ids"):
        identity.history_sen_gap(h, tiny.m)
    with pytest.raises(TypeError, match="history"):
        identity.history_invariant(object(), tiny.m)
    with pytest.raises(ValueError, match="min_scaled_norm"):
        _, h2 = train_full_batch(
            model, tiny.train.tokens, tiny.train.labels, 2, 0.1, topic_word_ids=tiny.topic_word_ids
        )
        identity.history_sen_gap(h2, tiny.m, min_scaled_norm=-1.0)
