import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import topic
from course_lib.topic import (
    TopicAttention,
    attention_forward,
    fixed_classifier_matrix,
    label_sentences,
    make_topic_corpus,
)


@pytest.fixture(scope="module")
def corpus():
    return make_topic_corpus(n_background=300, n_sentences=400, seed=0)


def test_corpus_shapes_and_split(corpus):
    assert corpus.tokens.shape == (400, 21) and corpus.tokens.dtype == torch.long
    assert corpus.vocab_size == 8 + 300
    assert (
        len(corpus.train.labels) == 320
        and len(corpus.valid.labels) == 4
        and len(corpus.test.labels) == 76
    )
    assert torch.equal(corpus.topic_word_ids, torch.arange(8))


def test_paper_defaults():
    full = make_topic_corpus()
    assert full.n_topics == 4 and full.words_per_topic == 2 and full.m == 20
    assert full.vocab_size == 5008 and len(full.labels) == 5000
    assert (len(full.train.labels), len(full.valid.labels), len(full.test.labels)) == (
        4000,
        50,
        950,
    )


def test_one_topic_word_per_sentence_and_labels(corpus):
    topic = corpus.topic_of_word[corpus.tokens]
    assert torch.equal((topic >= 0).sum(1), torch.ones(400, dtype=torch.long))
    assert torch.equal(topic[topic >= 0], corpus.labels)
    # the topic word is not always at the same position
    assert len(set(torch.nonzero(topic >= 0)[:, 1].tolist())) > 5


def test_seeding(corpus):
    again = make_topic_corpus(n_background=300, n_sentences=400, seed=0)
    other = make_topic_corpus(n_background=300, n_sentences=400, seed=1)
    assert torch.equal(again.tokens, corpus.tokens) and again.words == corpus.words
    assert not torch.equal(other.tokens, corpus.tokens)


def test_decode_and_masks(corpus):
    words = corpus.decode(corpus.tokens[0]).split()
    assert len(words) == 21 and sum(w.startswith("topic") for w in words) == 1
    assert corpus.topic_mask(corpus.tokens).sum() == 400


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"n_topics": 1}, ValueError, "n_topics"),
        ({"n_topics": 2.0}, TypeError, "n_topics"),
        ({"words_per_topic": 0}, ValueError, "words_per_topic"),
        ({"n_background": 0}, ValueError, "n_background"),
        ({"m": 0}, ValueError, "m"),
        ({"n_sentences": 2}, ValueError, "n_sentences"),
        ({"seed": -1}, ValueError, "seed"),
        ({"split": (0.8,)}, ValueError, "split"),
        ({"split": (0.9, 0.2)}, ValueError, "split"),
        ({"split": (0.0, 0.1)}, ValueError, "split"),
        ({"n_sentences": 3, "split": (0.1, 0.0)}, ValueError, "n_sentences"),
    ],
)
def test_corpus_validation(kwargs, error, name):
    with pytest.raises(error, match=name):
        make_topic_corpus(**kwargs)


def test_label_sentences_errors():
    topic_of_word = torch.tensor([0, 1, -1, -1])
    assert torch.equal(
        label_sentences(torch.tensor([[2, 1, 3], [0, 2, 2]]), topic_of_word), torch.tensor([1, 0])
    )
    with pytest.raises(ValueError, match="exactly one topic word"):
        label_sentences(torch.tensor([[2, 3, 3]]), topic_of_word)
    with pytest.raises(ValueError, match="exactly one topic word"):
        label_sentences(torch.tensor([[0, 1, 3]]), topic_of_word)
    with pytest.raises(TypeError, match="tokens"):
        label_sentences(torch.tensor([[0.0, 1.0]]), topic_of_word)
    with pytest.raises(ValueError, match="tokens"):
        label_sentences(torch.tensor([[0, 9]]), topic_of_word)
    with pytest.raises(TypeError, match="topic_of_word"):
        label_sentences(torch.tensor([[0, 2]]), [0, 1, -1])


def test_forward_against_hand_computation():
    """Two-word vocabulary plus one background word, computed by hand."""
    model = TopicAttention(3, 2, embed_dim=2, key_dim=2, classifier="fixed", seed=0)
    with torch.no_grad():
        model.query.copy_(torch.tensor([1.0, 0.0]))
        model.keys.weight.copy_(torch.tensor([[math.log(3.0), 0.0], [0.0, 5.0], [0.0, 0.0]]))
        model.embedding.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]))
        model.classifier.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    tokens = torch.tensor([[0, 2, 1]])
    # scores: log 3, 0, 0 -> attention 3/5, 1/5, 1/5
    assert torch.allclose(model.scores(), torch.tensor([math.log(3.0), 0.0, 0.0]))
    assert torch.allclose(model.attention(tokens), torch.tensor([[0.6, 0.2, 0.2]]))
    expected_context = torch.tensor([[0.6 * 1 + 0.2 * 2 + 0.0, 0.0 + 0.2 * 2 + 0.2 * 1]])
    assert torch.allclose(model.context(tokens), expected_context)
    assert torch.allclose(model(tokens), expected_context)  # U is the identity here


@pytest.mark.parametrize("kind", ["fixed", "linear", "mlp"])
def test_model_matches_plain_forward_and_shapes(kind):
    torch.manual_seed(0)
    model = TopicAttention(50, 4, classifier=kind, embedding_std=0.5, seed=1)
    with torch.no_grad():
        model.keys.weight.normal_()
    tokens = torch.randint(50, (6, 9))
    scores, attention, context = attention_forward(
        tokens, model.embedding.weight, model.keys.weight, model.query
    )
    assert torch.allclose(model.attention(tokens), attention, atol=1e-6)
    assert torch.allclose(model.context(tokens), context, atol=1e-6)
    logits, att = model(tokens, return_attention=True)
    assert logits.shape == (6, 4) and att.shape == (6, 9)
    # gradients through the fast layout equal those of the plain forward
    target = torch.randint(4, (6,))
    F.cross_entropy(model(tokens), target).backward()
    fast = model.embedding.weight.grad.clone(), model.keys.weight.grad.clone()
    e = model.embedding.weight.detach().clone().requires_grad_()
    k = model.keys.weight.detach().clone().requires_grad_()
    _, _, ctx = attention_forward(tokens, e, k, model.query)
    F.cross_entropy(model.classifier(ctx), target).backward()
    assert torch.allclose(fast[0], e.grad, atol=1e-6) and torch.allclose(fast[1], k.grad, atol=1e-6)


def test_mask_excludes_padding():
    model = TopicAttention(10, 2, seed=0)
    with torch.no_grad():
        model.keys.weight.normal_()
    tokens = torch.tensor([[1, 2, 3, 0]])
    mask = torch.tensor([[True, True, True, False]])
    att = model.attention(tokens, mask)
    assert att[0, 3] == 0 and torch.allclose(
        att[0, :3], model.attention(tokens[:, :3])[0], atol=1e-6
    )


def test_initialisation_follows_paper():
    model = TopicAttention(1000, 4, classifier="fixed", seed=0)
    assert torch.count_nonzero(model.keys.weight) == 0
    assert model.embedding.weight.std() < 1e-5
    assert "query" in dict(model.named_buffers()) and not any(
        n == "query" for n, _ in model.named_parameters()
    )
    assert not model.classifier.weight.requires_grad
    assert torch.equal(torch.diagonal(model.classifier.weight), torch.ones(4))
    assert 0.15 < float(model.query.std()) < 0.6
    trained_q = TopicAttention(1000, 4, train_query=True, seed=0)
    assert any(n == "query" for n, _ in trained_q.named_parameters())
    assert torch.equal(trained_q.query.detach(), model.query)


def test_same_seed_same_model():
    a, b = (
        TopicAttention(30, 3, classifier="mlp", seed=4),
        TopicAttention(30, 3, classifier="mlp", seed=4),
    )
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)
    c = TopicAttention(30, 3, classifier="mlp", seed=5)
    assert not torch.equal(a.query, c.query)


def test_fixed_classifier_matrix():
    u = fixed_classifier_matrix(10, 4, torch.Generator().manual_seed(0))
    assert u.shape == (10, 4) and torch.equal(torch.diagonal(u), torch.ones(4))


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"vocab_size": 1}, ValueError, "vocab_size"),
        ({"n_classes": 1}, ValueError, "n_classes"),
        ({"embed_dim": 0}, ValueError, "embed_dim"),
        ({"key_dim": 2.5}, TypeError, "key_dim"),
        ({"classifier": "cnn"}, ValueError, "classifier"),
        ({"query_std": 0}, ValueError, "query_std"),
        ({"embedding_std": -1}, ValueError, "embedding_std"),
        ({"embedding_std": float("nan")}, ValueError, "embedding_std"),
        ({"train_query": 1}, TypeError, "train_query"),
        ({"seed": -2}, ValueError, "seed"),
        ({"hidden": 0}, ValueError, "hidden"),
    ],
)
def test_model_validation(kwargs, error, name):
    args = {"vocab_size": 20, "n_classes": 4}
    args.update(kwargs)
    with pytest.raises(error, match=name):
        TopicAttention(**args)


def test_token_validation():
    model = TopicAttention(10, 2)
    with pytest.raises(ValueError, match=r"tokens.*\[0, 9\]"):
        model.attention(torch.tensor([[1, 10]]))
    with pytest.raises(TypeError, match="tokens"):
        model.context(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="tokens"):
        model.attention(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="query"):
        attention_forward(torch.tensor([[0]]), torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3))


def test_scaled_norms_is_query_norm_times_embedding_norm():
    model = TopicAttention(7, 2, embed_dim=3, key_dim=4, embedding_std=0.5, seed=1)
    expected = torch.stack(
        [model.embedding.weight[u].norm() * model.query.norm() for u in range(7)]
    )
    assert model.scaled_norms().shape == (7,)
    assert torch.allclose(model.scaled_norms(), expected, rtol=1e-6)
    assert float(model.scaled_norms().min()) > 0  # a wrong product (e.g. the squared norms) differs
    assert not torch.allclose(model.scaled_norms(), model.embedding.weight.norm(dim=-1))


# --------------------------------------------------------------------------- corpora


def test_two_topic_corpus():
    c = topic.make_two_topic_corpus(n_background=30, m=6, n_sentences=40, seed=1)
    assert c.tokens.shape == (40, 8)
    topics = c.topic_of_word[c.tokens]
    assert torch.equal((topics >= 0).sum(1), torch.full((40,), 2))
    own = torch.where(topics >= 0, topics, c.labels[:, None])
    assert torch.equal(own, c.labels[:, None].expand_as(own))
    with pytest.raises(ValueError, match="n_topics"):
        topic.make_two_topic_corpus(n_topics=1)


def test_variable_length_corpus():
    c, mask = topic.make_variable_length_corpus(
        n_background=30, m_range=(2, 9), n_sentences=60, seed=2
    )
    assert c.tokens.shape == mask.shape == (60, 10)
    lengths = mask.sum(1) - 1
    assert lengths.min() >= 2 and lengths.max() <= 9 and len(set(lengths.tolist())) > 3
    pad = c.vocab_size - 1
    assert c.words[pad] == "<pad>" and torch.equal(c.tokens == pad, ~mask)
    assert torch.equal((c.topic_mask(c.tokens)).sum(1), torch.ones(60, dtype=torch.long))
    with pytest.raises(ValueError, match="m_range"):
        topic.make_variable_length_corpus(m_range=(5,))
    with pytest.raises(ValueError, match=r"m_range\[1\]"):
        topic.make_variable_length_corpus(m_range=(5, 3))


def test_the_corpora_share_one_sentence_sampler():
    """The sampler draws each sentence's topic first: corpora of one seed share their labels."""
    two = topic.make_two_topic_corpus(n_background=30, m=6, n_sentences=40, seed=3)
    var, _ = topic.make_variable_length_corpus(
        n_background=30, m_range=(6, 6), n_sentences=40, seed=3
    )
    assert torch.equal(var.labels, two.labels)


def test_repeated_topic_corpus_layout():
    corpus = topic.make_repeated_topic_corpus(4, n_background=50, n_sentences=30, seed=2)
    base = make_topic_corpus(n_background=50, n_sentences=30, seed=2)
    assert corpus.tokens.shape == (30, base.m + 4)
    assert torch.equal(corpus.labels, base.labels)
    counts = corpus.topic_mask(corpus.tokens).sum(1)
    assert torch.all(counts == 4)
    word_topic = corpus.topic_of_word[corpus.tokens]
    # the copies are of the sentence's own topic
    assert torch.all((word_topic == corpus.labels[:, None]) | (word_topic < 0))
    with pytest.raises(ValueError, match="copies"):
        topic.make_repeated_topic_corpus(0)
