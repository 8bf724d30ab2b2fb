"""Checks for the exercises of chapter 1 (the task): the forward pass and the labelling."""

from __future__ import annotations

import math

import torch

from ..topic import attention_forward, label_sentences
from ._core import CheckFailed, close, expect_tensor, run_check


def _forward_case(seed: int, batch: int = 5, length: int = 7, vocab: int = 11, d: int = 3, dk: int = 4):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(vocab, (batch, length), generator=gen)
    embedding = torch.randn(vocab, d, generator=gen)
    keys = torch.randn(vocab, dk, generator=gen)
    query = torch.randn(dk, generator=gen)
    return tokens, embedding, keys, query


@run_check("attention forward pass (scores, attention, context)")
def check_attention_forward(student_fn) -> None:
    """Check ``student_fn(tokens, embedding, keys, query) -> (scores, attention, context)``."""
    for seed in range(3):
        tokens, embedding, keys, query = _forward_case(seed)
        batch, length = tokens.shape
        out = student_fn(tokens, embedding, keys, query)
        if not isinstance(out, tuple) or len(out) != 3:
            raise CheckFailed("return a tuple (scores, attention, context).")
        scores, attention, context = out
        ref_scores, ref_attention, ref_context = attention_forward(tokens, embedding, keys, query)
        expect_tensor(scores, "scores", (batch, length))
        expect_tensor(attention, "attention", (batch, length))
        expect_tensor(context, "context", (batch, embedding.shape[1]))
        if not close(scores, ref_scores):
            if close(scores, ref_scores / math.sqrt(keys.shape[1])):
                raise CheckFailed("scores are divided by sqrt(d): this model has no 1/sqrt(d) scaling, s_u = q . k_u.")
            emb_scores = embedding[tokens] @ query[: embedding.shape[1]] if embedding.shape[1] <= query.numel() else None
            if emb_scores is not None and close(scores, emb_scores):
                raise CheckFailed("scores use the embeddings; the score of word u is the query times its *key*, s_u = q . k_u.")
            raise CheckFailed("scores differ from s_u = q . k_u for each word of each sentence: look up keys[tokens] and take the dot product with the query.")
        if not close(attention, ref_attention):
            if close(attention, torch.softmax(ref_scores, dim=0)):
                raise CheckFailed("attention is a softmax over the batch (dim=0); it must be over the words of each sentence (dim=-1).")
            if close(attention, ref_scores / ref_scores.sum(-1, keepdim=True)):
                raise CheckFailed("attention divides raw scores by their sum; use the softmax, exp(s) normalised over the sentence.")
            if not torch.allclose(attention.sum(-1), torch.ones(batch), atol=1e-5):
                raise CheckFailed("attention rows should sum to 1 over the words of each sentence.")
            raise CheckFailed("attention differs from softmax(scores) over each sentence.")
        if not close(context, ref_context):
            if close(context, embedding[tokens].mean(1)):
                raise CheckFailed("context is the plain mean of the embeddings; weight each word's embedding by its attention.")
            if close(context, embedding[tokens].sum(1)):
                raise CheckFailed("context is the plain sum of the embeddings; weight each word's embedding by its attention.")
            raise CheckFailed("context differs from v = sum_i a_i w_{x_i}: weight each word's embedding by its attention and sum over the sentence.")
    # edge case: a word repeated in a sentence counts once per occurrence
    tokens = torch.tensor([[2, 2, 5]])
    _, embedding, keys, query = _forward_case(7, vocab=6)
    _, attention, _ = student_fn(tokens, embedding, keys, query)
    _, ref_attention, _ = attention_forward(tokens, embedding, keys, query)
    if not close(attention, ref_attention):
        raise CheckFailed("with a repeated word, each occurrence gets its own attention weight (the softmax runs over positions, not over distinct words).")


@run_check("labelling sentences by their topic word")
def check_label_sentences(student_fn) -> None:
    """Check ``student_fn(tokens, topic_of_word) -> labels``."""
    topic_of_word = torch.tensor([0, 0, 1, 1, 2, 2, -1, -1, -1, -1, -1])
    gen = torch.Generator().manual_seed(0)
    n, m = 12, 5
    background = torch.randint(6, 11, (n, m), generator=gen)
    topic_word = torch.randint(0, 6, (n,), generator=gen)
    position = torch.randint(0, m + 1, (n,), generator=gen)
    tokens = torch.empty(n, m + 1, dtype=torch.long)
    for i in range(n):
        row = background[i].tolist()
        row.insert(int(position[i]), int(topic_word[i]))
        tokens[i] = torch.tensor(row)
    expected = label_sentences(tokens, topic_of_word)
    labels = student_fn(tokens, topic_of_word)
    expect_tensor(labels, "labels", (n,))
    if labels.dtype != torch.long:
        raise CheckFailed(f"labels should be class ids of dtype torch.long, got {labels.dtype}.")
    if not torch.equal(labels, expected):
        if torch.equal(labels, topic_word):
            raise CheckFailed("labels are the topic words' ids; the label is the *topic* of that word, topic_of_word[word].")
        if torch.equal(labels, topic_of_word[tokens[:, 0]]):
            raise CheckFailed("labels come from the first word of each sentence; the topic word can sit anywhere in the sentence.")
        raise CheckFailed("some labels are wrong: find the one word of each sentence with topic_of_word >= 0 and return its topic.")
    bad = torch.tensor([[6, 7, 8]])  # no topic word at all
    try:
        student_fn(bad, topic_of_word)
    except ValueError:
        pass
    else:
        raise CheckFailed("a sentence with no topic word has no label: raise a ValueError for it (check that each sentence holds exactly one).")
