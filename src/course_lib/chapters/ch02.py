"""Chapter 2 (the SEN identity): the recipes its notebook and its exercise notebook share.

* :func:`train_restricted`: Attn-FC trained in the restricted flow of the identity's assumption
  (section "The restricted flow"), used by the chapter and by exercise 2;
* :func:`train_ablation`: the seeds of one ablation variant (section "Ablations": the full
  model, frozen keys "KF", frozen embeddings "EF"), trained together.
"""

from __future__ import annotations

import torch

from .._validate import check_int, check_positive
from ..engine import History
from ..topic import TopicAttention, TopicCorpus
from ..training import PARAMETER_GROUPS, train_full_batch

__all__ = ["background_word_ids", "train_restricted", "train_ablation"]


def _check_corpus(corpus) -> TopicCorpus:
    if not isinstance(corpus, TopicCorpus):
        raise TypeError(f"corpus must be a topic.TopicCorpus, got {type(corpus).__name__}")
    return corpus


def background_word_ids(corpus: TopicCorpus) -> torch.Tensor:
    """``(vocab_size - n_topic_words,)`` long: the ids of every word after the topic words
    (a padding word included), the rows the restricted flow holds at zero (chapter 2)."""
    corpus = _check_corpus(corpus)
    n_topic_words = corpus.n_topics * corpus.words_per_topic
    return torch.arange(n_topic_words, corpus.vocab_size)


def train_restricted(
    corpus: TopicCorpus,
    steps: int,
    lr: float,
    *,
    model_class: type = TopicAttention,
    mask: torch.Tensor | None = None,
    record_every: int = 10,
    device: torch.device | str | None = None,
    **model_options,
) -> tuple[TopicAttention, History]:
    """Attn-FC in the restricted flow of chapter 2's assumption: background rows held at 0.

    The background words (:func:`background_word_ids`) get zero embeddings and are frozen;
    their keys start at zero, so they keep the score ``c = 0``.  Chapter 2 and its exercise
    notebook both train this way.

    Parameters
    ----------
    corpus
        A ``topic.TopicCorpus``; the model is trained on ``corpus.train``.
    steps, lr
        The number of full-batch gradient steps and their size.
    model_class
        ``TopicAttention`` or a subclass (exercise 2's sigmoid attention), built as
        ``model_class(corpus.vocab_size, corpus.n_topics, classifier="fixed", seed=0,
        **model_options)``.
    mask
        ``(n, L)`` bool, the real words of variable-length sentences (``None``: all).
    record_every
        Steps between two recordings of the topic words' scores and norms.
    device
        Where to train (``None``: where the model is built, the CPU).
    **model_options
        More keyword arguments of the model, e.g. ``train_query=True``, ``embedding_std``.

    Returns
    -------
    ``(model, history)`` of :func:`course_lib.training.train_full_batch`.
    """
    corpus = _check_corpus(corpus)
    check_int(steps, "steps", minimum=0)
    lr = check_positive(lr, "lr")
    check_int(record_every, "record_every", minimum=1)
    if not (isinstance(model_class, type) and issubclass(model_class, TopicAttention)):
        raise TypeError(f"model_class must be TopicAttention or a subclass, got {model_class!r}")
    background = background_word_ids(corpus)
    model = model_class(
        corpus.vocab_size, corpus.n_topics, classifier="fixed", seed=0, **model_options
    )
    with torch.no_grad():
        model.embedding.weight[background] = 0.0
    if device is not None:
        model = model.to(device)
    return train_full_batch(
        model,
        *corpus.train,
        steps,
        lr,
        mask=mask,
        topic_word_ids=corpus.topic_word_ids,
        frozen_word_ids=background,
        record_every=record_every,
    )


def train_ablation(
    corpus: TopicCorpus,
    classifier: str,
    frozen: tuple[str, ...],
    *,
    steps: int,
    lr: float,
    seeds: int,
    embedding_std: float = 0.1,
    record_every: int = 10,
    device: torch.device | str | None = None,
) -> tuple[list[TopicAttention], History]:
    """One variant of chapter 2's ablation (section "Ablation: what the keys are for").

    ``seeds`` models (seeds ``0 .. seeds - 1``) trained together as one batched computation
    by :func:`course_lib.training.train_full_batch` on ``corpus.train``.

    Parameters
    ----------
    corpus
        A ``topic.TopicCorpus``.
    classifier
        ``"fixed"`` (Attn-FC), ``"linear"`` (Attn-TC) or ``"mlp"`` (Attn-TL).
    frozen
        The parameter groups held fixed: ``()`` for the full model, ``("keys",)`` for KF,
        ``("embedding",)`` for EF.
    steps, lr
        The number of full-batch gradient steps and their size.
    seeds
        How many models, one per seed.
    embedding_std
        The embeddings' initial standard deviation (0.1: a frozen embedding is random).
    record_every
        Steps between two recordings.
    device
        Where to train (``None``: the CPU).

    Returns
    -------
    ``(models, history)``: the trained models and their stacked history, whose records are
    ``(seeds, T, ...)``.
    """
    corpus = _check_corpus(corpus)
    if classifier not in ("fixed", "linear", "mlp"):
        raise ValueError(f"classifier must be 'fixed', 'linear' or 'mlp', got {classifier!r}")
    if isinstance(frozen, str) or set(frozen) - set(PARAMETER_GROUPS):
        raise ValueError(f"frozen must be a tuple of names from {PARAMETER_GROUPS}, got {frozen!r}")
    check_int(steps, "steps", minimum=0)
    lr = check_positive(lr, "lr")
    check_int(seeds, "seeds", minimum=1)
    embedding_std = check_positive(embedding_std, "embedding_std")
    models = [
        TopicAttention(
            corpus.vocab_size,
            corpus.n_topics,
            classifier=classifier,
            embedding_std=embedding_std,
            seed=seed,
        )
        for seed in range(seeds)
    ]
    if device is not None:
        models = [model.to(device) for model in models]
    train = corpus.train
    return train_full_batch(
        models,
        *train,
        steps,
        lr,
        frozen=frozen,
        topic_mask=corpus.topic_mask(train.tokens),
        topic_word_ids=corpus.topic_word_ids,
        record_every=record_every,
    )
