"""course_lib.chapters.ch01: chapter 1's measurements of how fast the logits start to move."""

from __future__ import annotations

import pytest
import torch

from course_lib.chapters import ch01
from course_lib.topic import TopicAttention, make_topic_corpus
from course_lib.training import gradient_step


@pytest.fixture(scope="module")
def corpus():
    return make_topic_corpus(n_background=30, m=5, n_sentences=40, seed=0)


def fresh(corpus, kind):
    return TopicAttention(corpus.vocab_size, corpus.n_topics, classifier=kind, seed=0)


def test_classifier_jacobian_is_the_fixed_and_the_linear_weight(corpus):
    fixed, linear = fresh(corpus, "fixed"), fresh(corpus, "linear")
    assert torch.allclose(ch01.classifier_jacobian(fixed), fixed.classifier.weight)
    assert torch.allclose(ch01.classifier_jacobian(linear), linear.classifier.weight)
    mlp = ch01.classifier_jacobian(fresh(corpus, "mlp"))
    assert mlp.shape == (corpus.n_topics, 10) and not mlp.requires_grad


def test_logit_speed_matches_the_hand_written_steps(corpus):
    tokens, labels = corpus.train
    measured = ch01.logit_speed(fresh(corpus, "fixed"), tokens, labels, steps=3, lr=0.1)
    by_hand = fresh(corpus, "fixed")
    with torch.no_grad():
        before = by_hand(tokens)
    for _ in range(3):
        gradient_step(by_hand, tokens, labels, 0.1)
    with torch.no_grad():
        moved = by_hand(tokens) - before
    expected = float((moved - moved.mean(0)).norm(dim=1).mean())
    assert measured == pytest.approx(expected, rel=1e-4)


def test_predicted_speed_predicts_how_much_more_slowly_tc_moves(corpus):
    # chapter 1's claim: the ratio of the logits' speeds is that of J J^T's pushes
    tokens, labels = corpus.train
    speed = {
        kind: ch01.logit_speed(fresh(corpus, kind), tokens, labels, steps=5, lr=0.1)
        for kind in ("fixed", "linear")
    }
    push = {
        kind: ch01.predicted_speed(fresh(corpus, kind), tokens, labels)
        for kind in ("fixed", "linear")
    }
    measured, predicted = (d["fixed"] / d["linear"] for d in (speed, push))
    assert measured > 5 and measured == pytest.approx(predicted, rel=0.2)


def test_first_embedding_step_moves_only_by_one_step(corpus):
    tokens, labels = corpus.train
    model = fresh(corpus, "linear")
    step = ch01.first_embedding_step(model, tokens, labels, lr=0.1, word_ids=corpus.topic_word_ids)
    assert step > 0
    doubled = ch01.first_embedding_step(
        fresh(corpus, "linear"), tokens, labels, lr=0.2, word_ids=corpus.topic_word_ids
    )
    assert doubled == pytest.approx(2 * step, rel=1e-3)


def test_bad_arguments_are_named(corpus):
    tokens, labels = corpus.train
    with pytest.raises(TypeError, match="model"):
        ch01.classifier_jacobian(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="labels"):
        ch01.predicted_speed(fresh(corpus, "fixed"), tokens, labels[:-1])
    with pytest.raises(ValueError, match="steps"):
        ch01.logit_speed(fresh(corpus, "fixed"), tokens, labels, steps=0, lr=0.1)
    with pytest.raises(ValueError, match="word_ids"):
        ch01.first_embedding_step(
            fresh(corpus, "fixed"), tokens, labels, lr=0.1, word_ids=[corpus.vocab_size]
        )
