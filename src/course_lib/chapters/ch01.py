"""Chapter 1 (the task): the measurements of section "Why a trainable classifier waits".

How fast a model's logits move at the start of training, measured and as the classifier's
Jacobian ``J`` predicts it (the logits move by about ``-lr J J^T (p - e_y)`` per step when the
context is near 0), and how far the topic words' embeddings move in the first step.
Each function takes a fresh ``TopicAttention`` and the training sentences ``tokens`` ``(n, L)``
with their ``labels`` ``(n,)``; the ones that train do it in place.
"""

from __future__ import annotations

import torch

from .._validate import check_int, check_positive, check_tokens
from ..topic import TopicAttention
from ..training import gradient_step, train_full_batch

__all__ = ["classifier_jacobian", "logit_speed", "predicted_speed", "first_embedding_step"]


def _check_model(model) -> TopicAttention:
    if not isinstance(model, TopicAttention):
        raise TypeError(f"model must be a TopicAttention, got {type(model).__name__}")
    return model


def _check_data(model, tokens, labels) -> None:
    check_tokens(tokens, "tokens", vocab_size=model.vocab_size)
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != tuple(tokens.shape[:1]):
        raise ValueError(f"labels must be a tensor of shape ({tokens.shape[0]},) to match tokens")


def classifier_jacobian(model: TopicAttention) -> torch.Tensor:
    """``(K, d_e)``: the classifier's Jacobian ``d logits / d v`` at the context ``v = 0``
    (chapter 1): ``U^T`` for Attn-FC, ``W`` for Attn-TC, the MLP's Jacobian for Attn-TL."""
    model = _check_model(model)
    device = model.embedding.weight.device
    zero = torch.zeros(model.embedding.embedding_dim, device=device)
    return torch.func.jacrev(model.classifier)(zero).detach()


def _centred_size(moves: torch.Tensor) -> float:
    """Mean over sentences of the norm of ``moves`` ``(n, K)`` less its mean over sentences."""
    return float((moves - moves.mean(0)).norm(dim=1).mean())


def logit_speed(
    model: TopicAttention, tokens: torch.Tensor, labels: torch.Tensor, *, steps: int, lr: float
) -> float:
    """Mean distance a sentence's logits move in ``steps`` steps of full-batch gradient
    descent of size ``lr`` (by :func:`course_lib.training.train_full_batch`, on ``model`` in
    place), with the shift common to all sentences removed (chapter 1)."""
    model = _check_model(model)
    _check_data(model, tokens, labels)
    check_int(steps, "steps", minimum=1)
    lr = check_positive(lr, "lr")
    with torch.no_grad():
        before = model(tokens)  # (n, K)
    train_full_batch(model, tokens, labels, steps, lr=lr, record_every=steps)
    with torch.no_grad():
        moved = model(tokens) - before  # (n, K)
    return _centred_size(moved)


def predicted_speed(model: TopicAttention, tokens: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean size over the sentences of ``J J^T (p - e_y)``, common shift removed: the first
    step's logit move per unit step size that the classifier's Jacobian ``J``
    (:func:`classifier_jacobian`) predicts near ``v = 0`` (chapter 1)."""
    model = _check_model(model)
    _check_data(model, tokens, labels)
    jacobian = classifier_jacobian(model)  # (K, d_e)
    with torch.no_grad():
        error = torch.softmax(model(tokens), -1)  # (n, K): p - e_y after the next line
        error[torch.arange(len(labels), device=labels.device), labels] -= 1
    push = error @ (jacobian @ jacobian.T)  # (n, K), J J^T is symmetric
    return _centred_size(push)


def first_embedding_step(
    model: TopicAttention,
    tokens: torch.Tensor,
    labels: torch.Tensor,
    *,
    lr: float,
    word_ids: torch.Tensor,
) -> float:
    """How far the embeddings of ``word_ids`` (the topic words) move in one gradient step of
    size ``lr`` (:func:`course_lib.training.gradient_step`, on ``model`` in place): the norm
    over all of them of the change (chapter 1)."""
    model = _check_model(model)
    _check_data(model, tokens, labels)
    lr = check_positive(lr, "lr")
    word_ids = torch.as_tensor(word_ids, dtype=torch.long, device=model.query.device)
    check_tokens(word_ids.reshape(1, -1), "word_ids", vocab_size=model.vocab_size)
    start = model.embedding.weight[word_ids].detach().clone()
    gradient_step(model, tokens, labels, lr)
    moved = model.embedding.weight[word_ids].detach() - start
    return float(moved.norm())
