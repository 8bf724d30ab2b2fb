"""Checks for the exercises of chapter 1 (the task): the forward pass, the labelling and the
Jacobian of the two-layer classifier."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..topic import TopicAttention, attention_forward, label_sentences
from ._core import CheckFailed, close, expect_tensor, run_check
from .solutions import mlp_jacobian

# ----------------------------------------------------------------------- the forward pass


def _forward_case(
    seed: int, batch: int = 5, length: int = 7, vocab: int = 11, d: int = 3, dk: int = 4
):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(vocab, (batch, length), generator=gen)
    embedding = torch.randn(vocab, d, generator=gen)
    keys = torch.randn(vocab, dk, generator=gen)
    query = torch.randn(dk, generator=gen)
    return tokens, embedding, keys, query


def _diagnose_scores(scores, ref_scores, tokens, embedding, keys, query) -> None:
    if close(scores, ref_scores / math.sqrt(keys.shape[1])):
        raise CheckFailed(
            "scores are divided by sqrt(d): this model has no 1/sqrt(d) scaling, s_u = q . k_u."
        )
    if embedding.shape[1] <= query.numel():
        if close(scores, embedding[tokens] @ query[: embedding.shape[1]]):
            raise CheckFailed(
                "scores use the embeddings; the score of word u is the query "
                "times its *key*, s_u = q . k_u."
            )
    raise CheckFailed(
        "scores differ from s_u = q . k_u for each word of each sentence: look up "
        "keys[tokens] and take the dot product with the query."
    )


def _diagnose_attention(attention, ref_scores, batch) -> None:
    if close(attention, torch.softmax(ref_scores, dim=0)):
        raise CheckFailed(
            "attention is a softmax over the batch (dim=0); it must be over the "
            "words of each sentence (dim=-1)."
        )
    if close(attention, ref_scores / ref_scores.sum(-1, keepdim=True)):
        raise CheckFailed(
            "attention divides raw scores by their sum; use the softmax, exp(s) "
            "normalised over the sentence."
        )
    if not torch.allclose(attention.sum(-1), torch.ones(batch), atol=1e-5):
        raise CheckFailed("attention rows should sum to 1 over the words of each sentence.")
    raise CheckFailed("attention differs from softmax(scores) over each sentence.")


def _diagnose_context(context, tokens, embedding) -> None:
    if close(context, embedding[tokens].mean(1)):
        raise CheckFailed(
            "context is the plain mean of the embeddings; weight each word's "
            "embedding by its attention."
        )
    if close(context, embedding[tokens].sum(1)):
        raise CheckFailed(
            "context is the plain sum of the embeddings; weight each word's "
            "embedding by its attention."
        )
    raise CheckFailed(
        "context differs from v = sum_i a_i w_{x_i}: weight each word's embedding "
        "by its attention and sum over the sentence."
    )


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
            _diagnose_scores(scores, ref_scores, tokens, embedding, keys, query)
        if not close(attention, ref_attention):
            _diagnose_attention(attention, ref_scores, batch)
        if not close(context, ref_context):
            _diagnose_context(context, tokens, embedding)
    # edge case: a word repeated in a sentence counts once per occurrence
    tokens = torch.tensor([[2, 2, 5]])
    _, embedding, keys, query = _forward_case(7, vocab=6)
    _, attention, _ = student_fn(tokens, embedding, keys, query)
    _, ref_attention, _ = attention_forward(tokens, embedding, keys, query)
    if not close(attention, ref_attention):
        raise CheckFailed(
            "with a repeated word, each occurrence gets its own attention weight "
            "(the softmax runs over positions, not over distinct words)."
        )


# ---------------------------------------------------------------------------- the labelling


def _label_case():
    """Twelve sentences, each with one topic word (topic 0 among them) among background words."""
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
    return tokens, topic_of_word, topic_word, position


def _diagnose_labels(labels, expected, tokens, topic_of_word, topic_word, position) -> None:
    if torch.equal(labels, topic_word):
        raise CheckFailed(
            "labels are the topic words' ids; the label is the *topic* of that "
            "word, topic_of_word[word]."
        )
    if torch.equal(labels, position):
        raise CheckFailed(
            "labels are the positions of the topic words; the label is the topic "
            "of the word at that position, topic_of_word[word]."
        )
    if torch.equal(labels, topic_of_word[tokens[:, 0]]):
        raise CheckFailed(
            "labels come from the first word of each sentence; the topic word "
            "can sit anywhere in the sentence."
        )
    raise CheckFailed(
        "some labels are wrong: find the one word of each sentence with "
        "topic_of_word >= 0 and return its topic."
    )


# sentences that do not hold exactly one topic word, with the hint for a function that accepts them
_NOT_ONE = (
    (
        [[6, 7, 8]],
        "a sentence with no topic word has no label: raise a ValueError for it "
        "(check that each sentence holds exactly one).",
    ),
    (
        [[0, 7, 2]],
        "a sentence with two topic words (here of topics 0 and 1) has no single "
        "label: raise a ValueError when a sentence holds more than one topic word, "
        "not only when it holds none.",
    ),
    (
        [[0, 7, 2], [6, 7, 8], [9, 4, 10]],
        "count the topic words of *each* sentence: in this batch one sentence holds two and "
        "another none, so the batch's total (3 for 3 sentences) looks right while two sentences "
        "are wrong. Raise a ValueError unless every row's count is exactly 1.",
    ),
)


@run_check("labelling sentences by their topic word")
def check_label_sentences(student_fn) -> None:
    """Check ``student_fn(tokens, topic_of_word) -> labels``: the labels of a batch, and a
    ValueError for each batch holding a sentence without exactly one topic word."""
    tokens, topic_of_word, topic_word, position = _label_case()
    expected = label_sentences(tokens, topic_of_word)
    try:
        labels = student_fn(tokens.clone(), topic_of_word.clone())
    except ValueError as error:
        raise CheckFailed(
            f"your function raised ValueError ({error}) on a batch in which every "
            "sentence holds exactly one topic word: topic ids start at 0, and only "
            "-1 marks a background word (topic_of_word >= 0)."
        ) from None
    expect_tensor(labels, "labels", (len(tokens),))
    if labels.dtype != torch.long:
        raise CheckFailed(f"labels should be class ids of dtype torch.long, got {labels.dtype}.")
    if not torch.equal(labels, expected):
        _diagnose_labels(labels, expected, tokens, topic_of_word, topic_word, position)
    for rows, hint in _NOT_ONE:
        try:
            student_fn(torch.tensor(rows), topic_of_word.clone())
        except ValueError:
            continue
        raise CheckFailed(hint)


# ------------------------------------------------------------- the two-layer classifier's Jacobian


def _mlp_case(seed: int, n: int = 6, d: int = 5, hidden: int = 7, k: int = 3):
    """Attn-TL's classifier with spread-out weights, and contexts (the first one zero) at which
    the ReLU's pattern differs from the one at v = 0 and from the one without the bias."""
    model = TopicAttention(4, k, embed_dim=d, key_dim=2, classifier="mlp", hidden=hidden, seed=seed)
    gen = torch.Generator().manual_seed(200 + seed)
    with torch.no_grad():
        for layer in (model.classifier[0], model.classifier[2]):
            layer.weight.normal_(0.0, 1.0, generator=gen)
            layer.bias.normal_(0.0, 1.0, generator=gen)
    context = torch.randn(n, d, generator=gen) * 2.0
    context[0] = 0.0
    return model.classifier, context


def _as_jacobian(value, n: int, k: int, d: int) -> torch.Tensor:
    """The returned Jacobians as a float64 tensor of shape (n, k, d), or a hint."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(
            "return the Jacobians as one tensor (or NumPy array) of shape "
            f"(N, K, d_e), not {type(value).__name__}."
        )
    shape = tuple(value.shape)
    if shape == (n, d, k):
        raise CheckFailed(
            f"the result has shape {shape}: that is the transpose of each "
            "Jacobian. d logits / d v has one row per logit (K) and one column per "
            "coordinate of v (d_e): (N, K, d_e)."
        )
    if shape == (k, d):
        raise CheckFailed(
            f"the result has shape {shape}: one Jacobian for all contexts. The "
            "ReLU's pattern depends on v, so return one (K, d_e) Jacobian per "
            "context vector, (N, K, d_e) in all."
        )
    if shape != (n, k, d):
        raise CheckFailed(f"the result should have shape (N, K, d_e) = {(n, k, d)}, got {shape}.")
    return value.detach().double()


def _diagnose_jacobian(jac, classifier, context) -> None:
    first, _, second = classifier
    w1, b1 = first.weight.detach().double(), first.bias.detach().double()
    w2 = second.weight.detach().double()
    v = context.double()

    def through(mask):  # (N, h) -> (N, K, d_e)
        return torch.einsum("kh,nh,hd->nkd", w2, mask.double(), w1)

    pre = v @ w1.T + b1  # (N, h)
    n = len(v)
    if close(jac, (w2 @ w1).expand(n, -1, -1)):
        raise CheckFailed(
            "the Jacobian is W2 W1 at every context: that ignores the ReLU. A "
            "hidden unit passes a change of v only where it is active, where its "
            "pre-activation W1 v + b1 is positive."
        )
    if close(jac, through(v @ w1.T > 0)):
        raise CheckFailed(
            "the ReLU's mask is taken from W1 v alone: the pre-activation of the "
            "hidden layer is W1 v + b1, bias included."
        )
    if close(jac, through((b1 > 0).expand(n, -1))):
        raise CheckFailed(
            "every context gets the mask of v = 0 (b1 > 0): the hidden units that "
            "are active depend on v, through W1 v + b1."
        )
    if close(jac, through(pre <= 0)):
        raise CheckFailed(
            "the mask is inverted: ReLU passes the units whose pre-activation is "
            "positive and blocks the others."
        )
    hidden = torch.relu(pre)
    logits = hidden @ w2.T + second.bias.detach().double()
    probs = torch.softmax(logits, -1)  # (N, K)
    jac_probs = (torch.diag_embed(probs) - probs[:, :, None] * probs[:, None, :]) @ through(pre > 0)
    if close(jac, jac_probs):
        raise CheckFailed(
            "this is the Jacobian of the softmax probabilities; the exercise asks "
            "for that of the logits, the classifier's output."
        )
    raise CheckFailed(
        "the Jacobians differ from d logits / d v: chain the two linear layers "
        "through the ReLU's derivative at the pre-activation W1 v + b1."
    )


@run_check("Attn-TL's classifier: the Jacobian d logits / d v")
def check_mlp_jacobian(student_fn) -> None:
    """Check ``student_fn(classifier, context) -> (N, K, d_e)`` Jacobians of Attn-TL's
    classifier, against ``solutions.mlp_jacobian`` on three classifiers, at contexts (one of them
    zero) where the ReLU's pattern varies; then that the classifier was left as it was."""
    for seed in range(3):
        classifier, context = _mlp_case(seed)
        before = [p.detach().clone() for p in classifier.parameters()]
        expected = mlp_jacobian(classifier, context).double()
        n, k, d = expected.shape
        jac = _as_jacobian(student_fn(classifier, context.clone()), n, k, d)
        if not all(torch.equal(a, b.detach()) for a, b in zip(before, classifier.parameters())):
            raise CheckFailed(
                "the classifier's weights changed: computing a Jacobian must not modify the model."
            )
        if not close(jac, expected, tol=1e-5):
            _diagnose_jacobian(jac, classifier, context)
