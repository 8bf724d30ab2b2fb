"""topic.reduce_fixed_classifier (chapter 3): an Attn-FC of size d_e trains exactly like its
C-dimensional reduction (same scores, logits and losses at every step, norms from the formula)."""

from __future__ import annotations

import pytest
import torch

from course_lib.topic import TopicAttention, make_topic_corpus, reduce_fixed_classifier
from course_lib.training import train_full_batch


@pytest.mark.parametrize("embed_dim", [4, 10, 200])
def test_reduction_trains_exactly_like_the_full_model(embed_dim):
    corpus = make_topic_corpus(n_background=200, n_sentences=300, seed=0)
    train = corpus.train
    big = TopicAttention(corpus.vocab_size, 4, embed_dim=embed_dim, key_dim=10, seed=3)
    small = reduce_fixed_classifier(big)
    assert small.embedding.weight.shape == (corpus.vocab_size, 4)
    start_big = big.embedding.weight.detach().norm(dim=1) ** 2
    start_small = small.embedding.weight.detach().norm(dim=1) ** 2
    _, big_history = train_full_batch(big, train.tokens, train.labels, steps=200, lr=0.1)
    _, small_history = train_full_batch(small, train.tokens, train.labels, steps=200, lr=0.1)
    big_scores, small_scores = big.scores().detach(), small.scores().detach()
    assert big_scores.abs().max() > 0.01  # the scores did move
    atol = 1e-6 * float(big_scores.abs().max()) + 1e-9
    assert torch.allclose(small_scores, big_scores, atol=atol, rtol=0)
    assert torch.allclose(small_history.loss, big_history.loss, atol=1e-6, rtol=0)
    with torch.no_grad():
        assert torch.allclose(small(train.tokens), big(train.tokens), atol=1e-5, rtol=0)
    big_norms = big.embedding.weight.detach().norm(dim=1) ** 2
    from_formula = small.embedding.weight.detach().norm(dim=1) ** 2 + start_big - start_small
    assert big_norms.max() > 0.05
    assert torch.allclose(from_formula, big_norms, atol=1e-5 * float(big_norms.max()), rtol=0)


def test_a_different_classifier_is_not_equivalent():
    """The test above can fail: reducing with another U gives other scores."""
    corpus = make_topic_corpus(n_background=200, n_sentences=300, seed=0)
    train = corpus.train
    big = TopicAttention(corpus.vocab_size, 4, embed_dim=10, key_dim=10, seed=3)
    other = reduce_fixed_classifier(
        TopicAttention(corpus.vocab_size, 4, embed_dim=10, key_dim=10, seed=4)
    )
    train_full_batch(big, train.tokens, train.labels, steps=200, lr=0.1)
    train_full_batch(other, train.tokens, train.labels, steps=200, lr=0.1)
    gap = (other.scores() - big.scores()).abs().max().item()
    assert gap > 1e-3 * big.scores().abs().max().item()


def test_bad_input():
    with pytest.raises(TypeError, match="TopicAttention"):
        reduce_fixed_classifier("model")
    with pytest.raises(ValueError, match="fixed classifier"):
        reduce_fixed_classifier(TopicAttention(20, 2, classifier="linear"))
    with pytest.raises(ValueError, match="at least its number of classes"):
        reduce_fixed_classifier(TopicAttention(20, 5, embed_dim=3))
