"""course_lib.chapters.ch02: the restricted flow and the ablation runs of chapter 2."""

from __future__ import annotations

import pytest
import torch

from course_lib import identity
from course_lib.chapters import ch02
from course_lib.topic import TopicAttention, make_topic_corpus


@pytest.fixture(scope="module")
def corpus():
    return make_topic_corpus(n_background=30, m=5, n_sentences=40, seed=0)


def test_background_word_ids(corpus):
    background = ch02.background_word_ids(corpus)
    assert background[0] == corpus.n_topics * corpus.words_per_topic
    assert background[-1] == corpus.vocab_size - 1
    assert not set(background.tolist()) & set(corpus.topic_word_ids.tolist())


def test_train_restricted_holds_the_background_and_keeps_the_identity(corpus):
    model, history = ch02.train_restricted(corpus, 200, 0.05, record_every=20)
    background = ch02.background_word_ids(corpus)
    assert torch.equal(
        model.embedding.weight[background], torch.zeros_like(model.embedding.weight[background])
    )
    assert torch.equal(
        model.keys.weight[background], torch.zeros_like(model.keys.weight[background])
    )
    assert list(history.steps) == list(range(0, 201, 20))
    invariant = identity.history_invariant(history, corpus.m)  # (T, n_topic_words)
    assert (invariant - invariant[:1]).abs().max() < 0.05  # O(lr) drift only
    assert history.topic_scores[-1].min() > 0


def test_train_restricted_takes_a_subclass_and_model_options(corpus):
    class Marked(TopicAttention):
        pass

    model, history = ch02.train_restricted(
        corpus, 5, 0.1, model_class=Marked, train_query=True, record_every=5
    )
    assert isinstance(model, Marked) and model.query.requires_grad
    assert history.query_norm[-1] != history.query_norm[0]


def test_train_restricted_rejects_bad_arguments(corpus):
    with pytest.raises(TypeError, match="corpus"):
        ch02.train_restricted(corpus.train, 5, 0.1)
    with pytest.raises(ValueError, match="lr"):
        ch02.train_restricted(corpus, 5, -0.1)
    with pytest.raises(TypeError, match="steps"):
        ch02.train_restricted(corpus, 5.0, 0.1)
    with pytest.raises(TypeError, match="model_class"):
        ch02.train_restricted(corpus, 5, 0.1, model_class=torch.nn.Linear)


def test_train_ablation_freezes_the_named_group(corpus):
    models, history = ch02.train_ablation(corpus, "linear", ("keys",), steps=20, lr=0.3, seeds=2)
    assert len(models) == 2 and history.loss.shape == (2, 3)
    assert torch.all(history.topic_scores == 0)  # frozen keys at 0: uniform attention
    assert not torch.equal(models[0].embedding.weight, models[1].embedding.weight)  # seeds
    same = TopicAttention(
        corpus.vocab_size, corpus.n_topics, classifier="linear", embedding_std=0.1, seed=1
    )
    assert torch.equal(models[1].keys.weight, same.keys.weight)
    assert history.loss[:, -1].max() < history.loss[:, 0].min()


def test_train_ablation_rejects_bad_arguments(corpus):
    with pytest.raises(ValueError, match="frozen"):
        ch02.train_ablation(corpus, "fixed", "keys", steps=2, lr=0.1, seeds=1)
    with pytest.raises(ValueError, match="classifier"):
        ch02.train_ablation(corpus, "cnn", (), steps=2, lr=0.1, seeds=1)
    with pytest.raises(ValueError, match="seeds"):
        ch02.train_ablation(corpus, "fixed", (), steps=2, lr=0.1, seeds=0)
