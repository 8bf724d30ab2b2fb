"""The topic-word task and the one-layer attention classifier (defined in chapter 1).

Lu, Mao and Nayak (2021) study sentences that are bags of words: exactly one *topic word*, which
decides the label, among ``m`` *background* words drawn uniformly from a large vocabulary.  The
model gives every word ``u`` an embedding ``w_u`` and a key ``k_u`` (free lookup tables), scores it
against one fixed query, ``s_u = q . k_u``, and classifies the attention-weighted average of the
embeddings (chapter 1, equations (1.1)-(1.4)).

Tensor names used throughout the course:

* ``tokens``: ``(batch, length)`` long, word ids;
* ``mask``: ``(batch, length)`` bool, ``True`` for real words (``None``: every position is real);
* ``attention``: ``(batch, length)``, rows sum to one over the real words;
* ``context``: ``(batch, embed_dim)``;  ``logits``: ``(batch, n_classes)``.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ._validate import check_fraction, check_int, check_positive, check_tokens

CLASSIFIERS = ("fixed", "linear", "mlp")


# --------------------------------------------------------------------------- the corpus


class Split(NamedTuple):
    """One split of a corpus: ``tokens`` ``(n, m + 1)`` long and ``labels`` ``(n,)`` long."""

    tokens: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class TopicCorpus:
    """A generated topic-word corpus (chapter 1, section "The task").

    Word ids ``0 .. n_topics * words_per_topic - 1`` are the topic words, topic ``k`` owning ids
    ``k * words_per_topic ... (k + 1) * words_per_topic - 1``; the remaining ids are background
    words.  ``topic_of_word[u]`` is the topic of word ``u``, or ``-1`` for a background word.
    """

    tokens: torch.Tensor  # (n_sentences, m + 1) long
    labels: torch.Tensor  # (n_sentences,) long
    topic_of_word: torch.Tensor  # (vocab_size,) long, -1 for background words
    words: tuple[str, ...]  # the vocabulary, words[u] is word u
    n_topics: int
    words_per_topic: int
    m: int
    n_train: int
    n_valid: int

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @property
    def topic_word_ids(self) -> torch.Tensor:
        """``(n_topics * words_per_topic,)`` long: the ids of all topic words, topic by topic."""
        return torch.arange(self.n_topics * self.words_per_topic)

    def _split(self, start: int, stop: int) -> Split:
        return Split(self.tokens[start:stop], self.labels[start:stop])

    @property
    def train(self) -> Split:
        return self._split(0, self.n_train)

    @property
    def valid(self) -> Split:
        return self._split(self.n_train, self.n_train + self.n_valid)

    @property
    def test(self) -> Split:
        return self._split(self.n_train + self.n_valid, len(self.labels))

    def topic_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(batch, length)`` bool: where the topic words sit in ``tokens``."""
        return self.topic_of_word.to(tokens.device)[tokens] >= 0

    def decode(self, sentence: torch.Tensor) -> str:
        """The words of one sentence (a ``(length,)`` tensor of ids) as a string."""
        return " ".join(self.words[int(u)] for u in sentence)


def topic_of_word_table(n_topics: int, words_per_topic: int, vocab_size: int) -> torch.Tensor:
    """``(vocab_size,)`` long: the topic of each word id in the course's vocabulary layout (topic
    words first, ``words_per_topic`` per topic, then ``-1`` for every other word) (chapter 1)."""
    n_topic_words = n_topics * words_per_topic
    table = torch.full((vocab_size,), -1, dtype=torch.long)
    table[:n_topic_words] = torch.arange(n_topic_words) // words_per_topic
    return table


def label_sentences(tokens: torch.Tensor, topic_of_word: torch.Tensor) -> torch.Tensor:
    """Label each sentence by the topic of its one topic word (chapter 1, exercise 1.2).

    ``tokens`` is ``(n, length)`` long, ``topic_of_word`` is ``(vocab_size,)`` long with ``-1`` for
    background words.  Returns ``(n,)`` long.  A sentence without exactly one topic word is an
    error: the task is defined only for sentences that hold one.
    """
    if not isinstance(topic_of_word, torch.Tensor) or topic_of_word.dim() != 1:
        raise TypeError("topic_of_word must be a 1-D tensor of topic ids (-1 for background)")
    check_tokens(tokens, "tokens", vocab_size=topic_of_word.numel())
    topic = topic_of_word.to(tokens.device)[tokens]  # (n, length)
    is_topic = topic >= 0
    count = is_topic.sum(dim=1)
    if not bool((count == 1).all()):
        bad = int(torch.nonzero(count != 1)[0, 0])
        raise ValueError(
            f"tokens: every sentence must hold exactly one topic word; sentence {bad} holds "
            f"{int(count[bad])}"
        )
    # exactly one position is a topic word, so summing picks its topic out
    return torch.where(is_topic, topic, torch.zeros_like(topic)).sum(dim=1)


def attention_forward(
    tokens: torch.Tensor, embedding: torch.Tensor, keys: torch.Tensor, query: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The forward pass of chapter 1, equations (1.1)-(1.3), written plainly (exercise 1.1).

    ``tokens`` ``(batch, length)`` long; ``embedding`` ``(vocab, embed_dim)``; ``keys``
    ``(vocab, key_dim)``; ``query`` ``(key_dim,)``.  Returns ``scores`` ``(batch, length)`` with
    ``s = q . k_x``, ``attention`` ``(batch, length)``, the softmax of the scores over each
    sentence,
    and ``context`` ``(batch, embed_dim)``, ``v = sum_i a_i w_{x_i}``.  ``TopicAttention`` computes
    the same numbers with a memory layout that trains faster.
    """
    for name, table in (("embedding", embedding), ("keys", keys)):
        if not isinstance(table, torch.Tensor) or table.dim() != 2:
            raise ValueError(f"{name} must be a (vocab, dim) tensor")
    if not isinstance(query, torch.Tensor) or query.shape != (keys.shape[1],):
        raise ValueError(f"query must have shape ({keys.shape[1]},) to match keys")
    if embedding.shape[0] != keys.shape[0]:
        raise ValueError("embedding and keys must have the same number of rows (the vocabulary)")
    check_tokens(tokens, "tokens", vocab_size=keys.shape[0])
    scores = keys[tokens] @ query  # (batch, length)
    attention = torch.softmax(scores, dim=-1)  # (batch, length)
    context = torch.einsum("bl,bld->bd", attention, embedding[tokens])  # (batch, embed_dim)
    return scores, attention, context


def _random_words(n: int, rng: np.random.Generator, length: int = 10) -> list[str]:
    letters = np.array(list(string.ascii_lowercase))
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < n:
        word = "".join(rng.choice(letters, size=length))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _check_corpus_sizes(n_topics, words_per_topic, n_background, n_sentences, seed, min_sentences):
    check_int(n_topics, "n_topics", minimum=2)
    check_int(words_per_topic, "words_per_topic", minimum=1)
    check_int(n_background, "n_background", minimum=1)
    check_int(n_sentences, "n_sentences", minimum=min_sentences)
    check_int(seed, "seed", minimum=0)


def _sample_sentences(
    rng, n_sentences, n_topics, words_per_topic, n_background, m, topic_words=1, pad=-1
):
    """The one sentence sampler of every topic corpus (chapters 1 and 2).

    Each sentence draws its topic (the label), ``topic_words`` of that topic's words
    (independently, so a word may repeat) and ``m`` background words uniformly with replacement,
    in a random order.  ``m`` is an int, or a pair ``(m_min, m_max)``: then each sentence draws its
    own ``m`` uniformly in it and is padded with the word id ``pad`` to ``topic_words + m_max``
    positions.  Returns ``(topic (n,), tokens (n, topic_words + m_max))``, NumPy int64.
    """
    topic = rng.integers(n_topics, size=n_sentences)
    chosen = [
        topic * words_per_topic + rng.integers(words_per_topic, size=n_sentences)
        for _ in range(topic_words)
    ]
    first_background = n_topics * words_per_topic
    if isinstance(m, int):
        background = first_background + rng.integers(n_background, size=(n_sentences, m))
        # the model ignores order; shuffle so that nothing relies on it
        columns = np.concatenate([c[:, None] for c in chosen] + [background], axis=1)
        return topic, rng.permuted(columns, axis=1)
    m_min, m_max = m
    lengths = rng.integers(m_min, m_max + 1, size=n_sentences)
    tokens = np.full((n_sentences, topic_words + m_max), pad, dtype=np.int64)
    for i in range(n_sentences):
        words = [c[i] for c in chosen]
        sentence = np.concatenate(
            [words, first_background + rng.integers(n_background, size=lengths[i])]
        )
        tokens[i, : topic_words + lengths[i]] = rng.permutation(sentence)
    return topic, tokens


def make_topic_corpus(
    n_topics: int = 4,
    words_per_topic: int = 2,
    n_background: int = 5000,
    m: int = 20,
    n_sentences: int = 5000,
    split: tuple[float, float] = (0.8, 0.01),
    seed: int = 0,
) -> TopicCorpus:
    """Generate the synthetic topic-word corpus of Lu et al. (2021) (chapter 1).

    Each sentence holds one topic word (its topic is the label, classes uniform) and ``m``
    background words drawn uniformly with replacement, in a random order.  The defaults are the
    paper's.

    Parameters
    ----------
    n_topics, words_per_topic
        The classes, and how many topic words each owns (paper: 4 topics, 2 words each).
    n_background
        The background vocabulary (paper: 5000 words, random strings of ten letters).
    m
        Background words per sentence (paper: 20).
    n_sentences, split
        The corpus size (paper: 5000) and the train and valid fractions (paper: 80 % and 1 %;
        the rest, 19 %, is the test set).
    seed
        Everything random comes from ``numpy.random.default_rng(seed)``.

    Returns
    -------
    TopicCorpus
        With ``tokens`` ``(n_sentences, m + 1)``; ``.train``, ``.valid``, ``.test`` split it.
    """
    _check_corpus_sizes(n_topics, words_per_topic, n_background, n_sentences, seed, min_sentences=3)
    check_int(m, "m", minimum=1)
    if not isinstance(split, (tuple, list)) or len(split) != 2:
        raise ValueError(f"split must be a pair (train_fraction, valid_fraction), got {split!r}")
    train_frac, valid_frac = split
    check_fraction(train_frac, "split[0] (train fraction)")
    check_fraction(valid_frac, "split[1] (valid fraction)", allow_zero=True)
    if train_frac + valid_frac >= 1:
        raise ValueError(f"split fractions must leave room for a test set, got {split!r}")
    n_train = int(n_sentences * train_frac)
    n_valid = int(n_sentences * valid_frac)
    if n_train < 1 or n_sentences - n_train - n_valid < 1:
        raise ValueError(
            f"n_sentences={n_sentences} with split={split!r} leaves an empty train or test set"
        )

    rng = np.random.default_rng(seed)
    words = _topic_words(n_topics, words_per_topic) + _random_words(n_background, rng)
    topic_of_word = topic_of_word_table(n_topics, words_per_topic, len(words))
    _, tokens = _sample_sentences(rng, n_sentences, n_topics, words_per_topic, n_background, m)
    tokens = torch.from_numpy(tokens).long()
    return TopicCorpus(
        tokens=tokens,
        labels=label_sentences(tokens, topic_of_word),
        topic_of_word=topic_of_word,
        words=tuple(words),
        n_topics=n_topics,
        words_per_topic=words_per_topic,
        m=m,
        n_train=n_train,
        n_valid=n_valid,
    )


def _topic_words(n_topics: int, words_per_topic: int) -> list[str]:
    return [f"topic{k}.{i}" for k in range(n_topics) for i in range(words_per_topic)]


def make_two_topic_corpus(
    n_topics: int = 4,
    words_per_topic: int = 2,
    n_background: int = 5000,
    m: int = 20,
    n_sentences: int = 5000,
    seed: int = 0,
) -> TopicCorpus:
    """A corpus whose sentences hold **two** topic words of their topic (chapter 2, "where the
    identity breaks").

    Each sentence draws its topic, then two of the topic's words independently (so sometimes one
    word twice), plus ``m`` background words, shuffled.  The vocabulary layout is that of
    ``make_topic_corpus``; the background words are named ``bg0, bg1, ...``.

    Parameters
    ----------
    n_topics, words_per_topic, n_background, m, n_sentences, seed
        As for :func:`make_topic_corpus`.

    Returns
    -------
    TopicCorpus
        With ``tokens`` ``(n_sentences, m + 2)``; all sentences but the last are training
        sentences (``n_valid = 0``, no test split is needed here).
    """
    _check_corpus_sizes(n_topics, words_per_topic, n_background, n_sentences, seed, min_sentences=2)
    check_int(m, "m", minimum=1)
    rng = np.random.default_rng(seed)
    words = _topic_words(n_topics, words_per_topic) + [f"bg{i}" for i in range(n_background)]
    topic, tokens = _sample_sentences(
        rng, n_sentences, n_topics, words_per_topic, n_background, m, topic_words=2
    )
    return TopicCorpus(
        tokens=torch.from_numpy(tokens).long(),
        labels=torch.from_numpy(topic).long(),
        topic_of_word=topic_of_word_table(n_topics, words_per_topic, len(words)),
        words=tuple(words),
        n_topics=n_topics,
        words_per_topic=words_per_topic,
        m=m,
        n_train=n_sentences - 1,
        n_valid=0,
    )


def make_variable_length_corpus(
    n_topics: int = 4,
    words_per_topic: int = 2,
    n_background: int = 5000,
    m_range: tuple[int, int] = (5, 35),
    n_sentences: int = 5000,
    seed: int = 0,
) -> tuple[TopicCorpus, torch.Tensor]:
    """A corpus whose sentences have different numbers of background words (chapter 2, "where the
    identity breaks").

    Sentence ``i`` holds one topic word and ``m_i`` background words, ``m_i`` uniform in
    ``m_range`` (inclusive), padded to ``max(m_range) + 1`` positions with a padding word (the
    last vocabulary id, ``"<pad>"``).

    Parameters
    ----------
    n_topics, words_per_topic, n_background, n_sentences, seed
        As for :func:`make_topic_corpus`.
    m_range
        ``(smallest m, largest m)``.

    Returns
    -------
    (corpus, mask)
        ``corpus.m`` is the largest ``m``; ``mask`` ``(n, max m + 1)`` bool is ``True`` on real
        words: pass it to the model and to ``train_full_batch`` so that padding gets no
        attention (``mask.sum(1) - 1`` gives each ``m_i``).  All sentences but the last are
        training sentences.
    """
    if not isinstance(m_range, (tuple, list)) or len(m_range) != 2:
        raise ValueError(f"m_range must be a pair (smallest m, largest m), got {m_range!r}")
    m_min = check_int(m_range[0], "m_range[0]", minimum=1)
    m_max = check_int(m_range[1], "m_range[1]", minimum=m_min)
    _check_corpus_sizes(n_topics, words_per_topic, n_background, n_sentences, seed, min_sentences=2)
    rng = np.random.default_rng(seed)
    words = (
        _topic_words(n_topics, words_per_topic)
        + [f"bg{i}" for i in range(n_background)]
        + ["<pad>"]
    )
    pad = len(words) - 1
    _, tokens = _sample_sentences(
        rng, n_sentences, n_topics, words_per_topic, n_background, (m_min, m_max), pad=pad
    )
    topic_of_word = topic_of_word_table(n_topics, words_per_topic, len(words))
    tokens = torch.from_numpy(tokens).long()
    corpus = TopicCorpus(
        tokens=tokens,
        labels=label_sentences(tokens, topic_of_word),
        topic_of_word=topic_of_word,
        words=tuple(words),
        n_topics=n_topics,
        words_per_topic=words_per_topic,
        m=m_max,
        n_train=n_sentences - 1,
        n_valid=0,
    )
    return corpus, tokens != pad


def make_repeated_topic_corpus(
    copies: int,
    n_topics: int = 4,
    words_per_topic: int = 2,
    n_background: int = 200,
    m: int = 20,
    n_sentences: int = 250,
    seed: int = 0,
) -> TopicCorpus:
    """The chapter-1 corpus with each sentence's topic word occurring ``copies`` times (chapter 7).

    Each sentence holds its topic word ``k = copies`` times and ``m`` background words (length
    ``m + k``, shuffled); everything else is ``make_topic_corpus(n_topics, words_per_topic,
    n_background, m, n_sentences, seed=seed)``, with the same labels and splits.  Every topic
    word then has the same count in each of its sentences, the setting where chapter 7 predicts
    the law with ``n = m / k``.  ``corpus.m`` is the number of background words.

    Parameters
    ----------
    copies
        How often each sentence holds its topic word (k >= 1).
    n_topics, words_per_topic, n_background, m, n_sentences, seed
        As in ``topic.make_topic_corpus``.

    Returns
    -------
    TopicCorpus
        Sentences of length ``m + copies``, with ``make_topic_corpus``'s labels and splits.
    """
    copies = check_int(copies, "copies", minimum=1)
    base = make_topic_corpus(n_topics, words_per_topic, n_background, m, n_sentences, seed=seed)
    is_topic = base.topic_mask(base.tokens)  # (n, m + 1), one True per row
    topic_word = torch.where(is_topic, base.tokens, torch.zeros_like(base.tokens)).sum(1)  # (n,)
    extra = topic_word[:, None].expand(-1, copies - 1)  # (n, copies - 1)
    tokens = torch.cat([base.tokens, extra], dim=1)  # (n, m + copies)
    gen = torch.Generator().manual_seed(seed)
    order = torch.argsort(torch.rand(tokens.shape, generator=gen), dim=1)
    tokens = tokens.gather(1, order)  # order plays no role in the model; shuffle anyway
    return TopicCorpus(
        tokens=tokens,
        labels=base.labels,
        topic_of_word=base.topic_of_word,
        words=base.words,
        n_topics=base.n_topics,
        words_per_topic=base.words_per_topic,
        m=base.m,
        n_train=base.n_train,
        n_valid=base.n_valid,
    )


# --------------------------------------------------------------------------- the model


def sentence_attention_at(scores: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
    """The attention of one sentence given every word's scores (chapter 1, eq. (1.2)):
    ``softmax(s_{x_1}, ..., s_{x_L})``.

    ``scores`` ``(vocab,)`` (``TopicAttention.scores()``, or a snapshot of it) or ``(T, vocab)``
    for several snapshots; ``sentence`` ``(length,)`` word ids.  Returns ``(length,)`` or
    ``(T, length)``.

    >>> sentence_attention_at(torch.tensor([0.0, 0.0, 2.0]), torch.tensor([0, 1]))
    tensor([0.5000, 0.5000])
    """
    if not isinstance(scores, torch.Tensor) or scores.dim() not in (1, 2):
        raise ValueError("scores must be a (vocab,) or (T, vocab) tensor of word scores")
    check_tokens(sentence.reshape(1, -1), "sentence", vocab_size=scores.shape[-1])
    return torch.softmax(scores[..., sentence], dim=-1)


def fixed_classifier_matrix(
    embed_dim: int, n_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """The fixed classifier ``U`` of Attn-FC: ``(embed_dim, n_classes)`` standard normal with
    ``U[i, i] = 1`` (Lu et al. 2021, official code)."""
    matrix = torch.randn(embed_dim, n_classes, generator=generator)
    idx = torch.arange(min(embed_dim, n_classes))
    matrix[idx, idx] = 1.0
    return matrix


def _default_linear(layer: nn.Linear, generator: torch.Generator) -> nn.Linear:
    # PyTorch's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from our own generator
    bound = 1.0 / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        if layer.bias is not None:
            layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


def _check_topic_sizes(vocab_size, n_classes, embed_dim, key_dim, hidden, seed) -> None:
    # TopicAttention's sizes and seed, checked first and in this order (the first bad one is named)
    check_int(vocab_size, "vocab_size", minimum=2)
    check_int(n_classes, "n_classes", minimum=2)
    check_int(embed_dim, "embed_dim", minimum=1)
    check_int(key_dim, "key_dim", minimum=1)
    check_int(hidden, "hidden", minimum=1)
    check_int(seed, "seed", minimum=0)


def _check_topic_options(classifier, query_std, embedding_std, train_query) -> None:
    # TopicAttention's other arguments, checked after the sizes and in this order
    check_positive(query_std, "query_std")
    check_positive(embedding_std, "embedding_std", allow_zero=True)
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}")
    if not isinstance(train_query, bool):
        raise TypeError(f"train_query must be a bool, got {type(train_query).__name__}")


def _topic_classifier(
    kind: str, embed_dim: int, n_classes: int, hidden: int, generator: torch.Generator
) -> nn.Module:
    """TopicAttention's classifier ``f``, drawn from ``generator``: ``"fixed"`` (Attn-FC, the
    frozen ``fixed_classifier_matrix``), ``"linear"`` (Attn-TC, no bias) or ``"mlp"`` (Attn-TL,
    ``Linear(embed_dim, hidden) -> ReLU -> Linear(hidden, n_classes)``)."""
    if kind == "fixed":
        classifier = nn.Linear(embed_dim, n_classes, bias=False)
        with torch.no_grad():
            classifier.weight.copy_(fixed_classifier_matrix(embed_dim, n_classes, generator).T)
        classifier.weight.requires_grad_(False)
        return classifier
    if kind == "linear":
        return _default_linear(nn.Linear(embed_dim, n_classes, bias=False), generator)
    return nn.Sequential(
        _default_linear(nn.Linear(embed_dim, hidden), generator),
        nn.ReLU(),
        _default_linear(nn.Linear(hidden, n_classes), generator),
    )


class TopicAttention(nn.Module):
    """One attention layer with a single fixed query, then a classifier (chapter 1).

    ``s_u = q . k_u``, ``a_i = softmax_i(s_{x_i})``, ``v = sum_i a_i w_{x_i}``, ``logits = f(v)``.

    Parameters follow the paper's code: keys start at zero, embeddings ``N(0, embedding_std^2)``,
    the query ``N(0, query_std^2)`` per coordinate and fixed unless ``train_query``; there is no
    ``1/sqrt(d)`` scaling.  ``classifier`` is ``"fixed"`` (Attn-FC: random ``U`` with unit
    diagonal, never trained), ``"linear"`` (Attn-TC: trainable, no bias) or ``"mlp"`` (Attn-TL:
    ``Linear(embed_dim, hidden) -> ReLU -> Linear(hidden, n_classes)``).  All randomness comes
    from ``seed``, so two models built with the same arguments are identical.

    Parameters
    ----------
    vocab_size, n_classes
        The number of words and of classes.
    embed_dim, key_dim
        The sizes of the embeddings ``w_u`` and of the keys ``k_u`` and the query.
    classifier, hidden
        ``"fixed"``, ``"linear"`` or ``"mlp"``, and the width of the MLP's hidden layer.
    query_std, embedding_std
        The initial scales of the query and of the embeddings (the keys start at zero).
    train_query
        Whether the query is a trained parameter (chapter 2: it breaks the identity).
    seed
        Seeds the initialisation.
    """

    def __init__(
        self,
        vocab_size: int,
        n_classes: int,
        embed_dim: int = 10,
        key_dim: int = 10,
        classifier: str = "fixed",
        query_std: float = 0.3,
        embedding_std: float = 1e-6,
        hidden: int = 10,
        train_query: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        _check_topic_sizes(vocab_size, n_classes, embed_dim, key_dim, hidden, seed)
        _check_topic_options(classifier, query_std, embedding_std, train_query)
        self.classifier_kind = classifier
        self.n_classes = n_classes
        gen = torch.Generator().manual_seed(seed)

        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.keys = nn.Embedding(vocab_size, key_dim)
        with torch.no_grad():
            self.embedding.weight.normal_(0.0, embedding_std, generator=gen)
            self.keys.weight.zero_()
        query = torch.randn(key_dim, generator=gen) * query_std
        if train_query:
            self.query = nn.Parameter(query)
        else:
            self.register_buffer("query", query)
        self.classifier = _topic_classifier(classifier, embed_dim, n_classes, hidden, gen)

    @property
    def vocab_size(self) -> int:
        return self.embedding.num_embeddings

    def scores(self) -> torch.Tensor:
        """``(vocab_size,)``: every word's score ``s_u = q . k_u``."""
        return self.keys.weight @ self.query

    @torch.no_grad()
    def scaled_norms(self) -> torch.Tensor:
        """``(vocab_size,)``: every word's scaled embedding norm ``||q|| ||w_u||`` (chapter 2's
        identity compares it with the score); a measurement, outside autograd."""
        return self.embedding.weight.norm(dim=-1) * self.query.norm()

    def attention(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, length)``: softmax of the scores over each sentence's real words."""
        check_tokens(tokens, "tokens", vocab_size=self.vocab_size)
        return self._attention(tokens, mask)

    def _attention(self, tokens, mask):
        # score every vocabulary word once, then look scores up: cheaper than gathering keys
        scores = (self.keys.weight @ self.query).index_select(0, tokens.reshape(-1))
        scores = scores.view(tokens.shape)  # (batch, length)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=-1)

    def _context(self, tokens, attention):
        # Gathering columns of the (embed_dim, vocab) view makes the backward scatter run along
        # contiguous memory (benchmarks/README.md, context_layout, compares it with gathering rows).
        gathered = self.embedding.weight.t().index_select(1, tokens.reshape(-1))
        gathered = gathered.view(-1, *tokens.shape)  # (embed_dim, batch, length)
        return (gathered * attention).sum(-1).t()  # (batch, embed_dim)

    def context(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, embed_dim)``: the attention-weighted average of the sentence's embeddings."""
        check_tokens(tokens, "tokens", vocab_size=self.vocab_size)
        return self._context(tokens, self._attention(tokens, mask))

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor | None = None, return_attention: bool = False
    ):
        """``(batch, n_classes)`` logits; with ``return_attention`` also the ``(batch, length)``
        attention.  (No argument checks here: this is the hot path of training.)"""
        attention = self._attention(tokens, mask)  # (batch, length)
        logits = self.classifier(self._context(tokens, attention))  # (batch, n_classes)
        return (logits, attention) if return_attention else logits


def reduce_fixed_classifier(model: TopicAttention) -> TopicAttention:
    """Chapter 3: an Attn-FC with embeddings of size ``C`` (the number of classes) that trains
    exactly like ``model``, an Attn-FC of any embedding size ``d_e >= C``.

    With the classifier ``U`` (``d_e x C``) fixed and no bias, every gradient step moves an
    embedding inside the span of ``U``'s columns, and the logits and the score gradients see an
    embedding ``w_u`` only through ``U^T w_u``.  Write ``U^T U = L L^T`` (Cholesky).  The model
    with embeddings ``e_u = L^{-1} U^T w_u``, the same keys and query, and the fixed classifier
    ``L`` has the same logits and scores, and under gradient descent with the same step size it
    keeps them equal at every step, because its embedding steps are ``L^{-1} U^T`` times the big
    model's.  Norms follow from ``||w_u(t)||^2 = ||e_u(t)||^2 + ||w_u(0)||^2 - ||e_u(0)||^2``.
    """
    if not isinstance(model, TopicAttention):
        raise TypeError(f"model must be a TopicAttention, got {type(model).__name__}")
    if model.classifier_kind != "fixed":
        raise ValueError(
            f"model must have a fixed classifier (Attn-FC), got {model.classifier_kind!r}"
        )
    weight = model.classifier.weight.detach()  # (C, d_e)
    n_classes, embed_dim = weight.shape
    if embed_dim < n_classes:
        raise ValueError(
            f"model's embed_dim ({embed_dim}) must be at least its number of classes ({n_classes})"
        )
    U = weight.T.double()  # (d_e, C)
    L = torch.linalg.cholesky(U.T @ U)  # (C, C), U^T U = L L^T
    small = TopicAttention(
        model.vocab_size, n_classes, embed_dim=n_classes, key_dim=model.keys.embedding_dim
    )
    dtype = model.embedding.weight.dtype
    with torch.no_grad():
        projected = model.embedding.weight.detach().double() @ U  # (vocab, C): rows U^T w_u
        small.embedding.weight.copy_(
            torch.linalg.solve_triangular(L, projected.T, upper=False).T.to(dtype)
        )
        small.classifier.weight.copy_(L.to(dtype))  # logits = L e
        small.keys.weight.copy_(model.keys.weight.detach())
        small.query.copy_(model.query.detach())
    return small.to(model.embedding.weight.device)
