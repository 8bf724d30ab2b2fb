"""Checks for the exercises of chapter 1 (the task): the forward pass, the labelling and the
full-batch gradient step."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from ..topic import TopicAttention, attention_forward, label_sentences
from ..training import gradient_step
from ._core import CheckFailed, close, expect_tensor, run_check

# ----------------------------------------------------------------------- the forward pass


def _forward_case(seed: int, batch: int = 5, length: int = 7, vocab: int = 11, d: int = 3,
                  dk: int = 4):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(vocab, (batch, length), generator=gen)
    embedding = torch.randn(vocab, d, generator=gen)
    keys = torch.randn(vocab, dk, generator=gen)
    query = torch.randn(dk, generator=gen)
    return tokens, embedding, keys, query


def _diagnose_scores(scores, ref_scores, tokens, embedding, keys, query) -> None:
    if close(scores, ref_scores / math.sqrt(keys.shape[1])):
        raise CheckFailed("scores are divided by sqrt(d): this model has no 1/sqrt(d) scaling, "
                          "s_u = q . k_u.")
    if embedding.shape[1] <= query.numel():
        if close(scores, embedding[tokens] @ query[: embedding.shape[1]]):
            raise CheckFailed("scores use the embeddings; the score of word u is the query "
                              "times its *key*, s_u = q . k_u.")
    raise CheckFailed("scores differ from s_u = q . k_u for each word of each sentence: look up "
                      "keys[tokens] and take the dot product with the query.")


def _diagnose_attention(attention, ref_scores, batch) -> None:
    if close(attention, torch.softmax(ref_scores, dim=0)):
        raise CheckFailed("attention is a softmax over the batch (dim=0); it must be over the "
                          "words of each sentence (dim=-1).")
    if close(attention, ref_scores / ref_scores.sum(-1, keepdim=True)):
        raise CheckFailed("attention divides raw scores by their sum; use the softmax, exp(s) "
                          "normalised over the sentence.")
    if not torch.allclose(attention.sum(-1), torch.ones(batch), atol=1e-5):
        raise CheckFailed("attention rows should sum to 1 over the words of each sentence.")
    raise CheckFailed("attention differs from softmax(scores) over each sentence.")


def _diagnose_context(context, tokens, embedding) -> None:
    if close(context, embedding[tokens].mean(1)):
        raise CheckFailed("context is the plain mean of the embeddings; weight each word's "
                          "embedding by its attention.")
    if close(context, embedding[tokens].sum(1)):
        raise CheckFailed("context is the plain sum of the embeddings; weight each word's "
                          "embedding by its attention.")
    raise CheckFailed("context differs from v = sum_i a_i w_{x_i}: weight each word's embedding "
                      "by its attention and sum over the sentence.")


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
        raise CheckFailed("with a repeated word, each occurrence gets its own attention weight "
                          "(the softmax runs over positions, not over distinct words).")


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
        raise CheckFailed("labels are the topic words' ids; the label is the *topic* of that "
                          "word, topic_of_word[word].")
    if torch.equal(labels, position):
        raise CheckFailed("labels are the positions of the topic words; the label is the topic "
                          "of the word at that position, topic_of_word[word].")
    if torch.equal(labels, topic_of_word[tokens[:, 0]]):
        raise CheckFailed("labels come from the first word of each sentence; the topic word "
                          "can sit anywhere in the sentence.")
    raise CheckFailed("some labels are wrong: find the one word of each sentence with "
                      "topic_of_word >= 0 and return its topic.")


# sentences that do not hold exactly one topic word, with the hint for a function that accepts them
_NOT_ONE = (
    ([[6, 7, 8]], "a sentence with no topic word has no label: raise a ValueError for it "
                  "(check that each sentence holds exactly one)."),
    ([[0, 7, 2]], "a sentence with two topic words (here of topics 0 and 1) has no single "
                  "label: raise a ValueError when a sentence holds more than one topic word, "
                  "not only when it holds none."),
    ([[0, 7, 2], [6, 7, 8], [9, 4, 10]],
     "count the topic words of *each* sentence: in this batch one sentence holds two and "
     "another none, so the batch's total (3 for 3 sentences) looks right while two sentences "
     "are wrong. Raise a ValueError unless every row's count is exactly 1."),
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
        raise CheckFailed(f"your function raised ValueError ({error}) on a batch in which every "
                          "sentence holds exactly one topic word: topic ids start at 0, and only "
                          "-1 marks a background word (topic_of_word >= 0).") from None
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


# --------------------------------------------------------------------- the full-batch step


def _step_case(kind: str, seed: int, n: int = 12, length: int = 5, vocab: int = 9):
    """A small model with random keys (so every gradient is non-trivial) and its data."""
    gen = torch.Generator().manual_seed(100 + seed)
    model = TopicAttention(vocab, 3, embed_dim=4, key_dim=3, classifier=kind,
                           embedding_std=0.5, seed=seed)
    with torch.no_grad():
        model.keys.weight.normal_(0.0, 0.7, generator=gen)
    tokens = torch.randint(vocab, (n, length), generator=gen)
    labels = torch.randint(3, (n,), generator=gen)
    return model, tokens, labels


def _flat(model: torch.nn.Module) -> torch.Tensor:
    """All of a model's parameters, trained or not, as one vector."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _as_loss(value) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise CheckFailed("return the loss before the step, a number (loss.item()), not "
                      f"{type(value).__name__}.")


def _call_step(student_fn, model, tokens, labels, lr, mask=None):
    try:
        if mask is None:
            return student_fn(model, tokens, labels, lr)
        return student_fn(model, tokens, labels, lr, mask=mask)
    except TypeError as error:
        if "NoneType" in str(error):
            raise CheckFailed("a parameter has no gradient (its .grad is None): the fixed "
                              "classifier and the query are not trained, so update only the "
                              "parameters with requires_grad=True.") from None
        raise


def _same_step(model, ref, start) -> bool:
    """Whether ``model`` and ``ref`` moved from ``start`` alike (to 1e-4 of the step)."""
    step = (_flat(ref) - _flat(start)).abs().max()
    return close(_flat(model), _flat(ref), tol=1e-4 * float(step))


def _diagnose_step(mine, ref, start, n: int, lr: float) -> None:
    """Fail with a hint if the student's parameters after one step differ from the reference's."""
    if mine.classifier_kind == "fixed" and not torch.equal(mine.classifier.weight,
                                                           start.classifier.weight):
        raise CheckFailed("the fixed classifier U moved: it is not trained (requires_grad is "
                          "False); leave it alone.")
    if not torch.equal(mine.query, start.query):
        raise CheckFailed("the query moved: it is fixed in this model; update only the "
                          "parameters with requires_grad=True.")
    moved, ref_moved = _flat(mine) - _flat(start), _flat(ref) - _flat(start)
    size = float(ref_moved.abs().max())

    def like(factor: float) -> bool:
        return close(moved, factor * ref_moved, tol=1e-4 * abs(factor) * size)

    if like(1.0):
        return
    if float(moved.abs().max()) == 0.0:
        raise CheckFailed("no parameter moved: update them in place, e.g. "
                          "`with torch.no_grad(): p -= lr * p.grad`.")
    if like(-1.0):
        raise CheckFailed("the parameters moved up the gradient: gradient descent subtracts it, "
                          "theta <- theta - lr * grad.")
    if like(float(n)):
        raise CheckFailed(f"the step is {n} times too large: the loss is the *mean* "
                          "cross-entropy over the sentences, not the sum.")
    if like(1.0 / n):
        raise CheckFailed(f"the step is {n} times too small: the loss is the mean over the "
                          "sentences; do not divide by n again.")
    if like(1.0 / lr):
        raise CheckFailed("the step is the gradient itself: multiply it by the step size lr.")
    if like(0.1 / lr):
        raise CheckFailed("the step uses lr = 0.1 whatever lr is passed: use the argument lr.")
    raise CheckFailed("the parameters after the step differ from theta - lr * grad of the mean "
                      "cross-entropy.")


def _diagnose_loss(returned: float, ref_loss: float, start, ref, tokens, labels) -> None:
    """Fail with a hint if the returned loss is not the mean loss before the step."""
    if math.isclose(returned, ref_loss, rel_tol=1e-4, abs_tol=1e-6):
        return
    with torch.no_grad():
        before = float(F.cross_entropy(start(tokens), labels))
        after = float(F.cross_entropy(ref(tokens), labels))
    if math.isclose(returned, after, rel_tol=1e-4):
        raise CheckFailed("the returned loss is the one *after* the step; return the loss before "
                          "updating.")
    if math.isclose(returned, len(labels) * before, rel_tol=1e-4):
        raise CheckFailed("the returned loss is the sum over sentences; the loss is the mean "
                          "cross-entropy.")
    raise CheckFailed(f"the returned loss {returned:.5f} should be the mean cross-entropy before "
                      f"the step, {ref_loss:.5f}.")


@run_check("one full-batch gradient-descent step")
def check_gradient_step(student_fn) -> None:
    """Check ``student_fn(model, tokens, labels, lr, *, mask=None) -> loss before the step``.

    On each classifier (fixed, linear, two-layer) and several step sizes: the returned loss, the
    parameters after one step, and after a second step on the same model (gradients left over
    from the first must not leak into it); then with a padding mask.
    """
    for seed, (kind, lr) in enumerate((("fixed", 0.5), ("linear", 0.05), ("mlp", 0.3))):
        start, tokens, labels = _step_case(kind, seed)
        mine, ref = copy.deepcopy(start), copy.deepcopy(start)
        returned = _as_loss(_call_step(student_fn, mine, tokens, labels, lr))
        ref_loss = gradient_step(ref, tokens, labels, lr)
        _diagnose_loss(returned, ref_loss, start, ref, tokens, labels)
        _diagnose_step(mine, ref, start, len(labels), lr)
        previous = copy.deepcopy(ref)
        _call_step(student_fn, mine, tokens, labels, lr)
        gradient_step(ref, tokens, labels, lr)
        if not _same_step(mine, ref, previous):
            raise CheckFailed("the first step is right but the second is not: the gradients of "
                              "the first step were added to the second's. Zero them before "
                              "backward (model.zero_grad()), or use torch.autograd.grad.")
    # padding: with a mask the loss is that of model(tokens, mask)
    start, tokens, labels = _step_case("linear", 3)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[:, -2:] = False
    mine, ref = copy.deepcopy(start), copy.deepcopy(start)
    returned = _as_loss(_call_step(student_fn, mine, tokens, labels, 0.5, mask=mask))
    ref_loss = gradient_step(ref, tokens, labels, 0.5, mask=mask)
    if not math.isclose(returned, ref_loss, rel_tol=1e-4) or not _same_step(mine, ref, start):
        raise CheckFailed("with a mask, the loss is that of model(tokens, mask): pass the mask "
                          "to the model.")
