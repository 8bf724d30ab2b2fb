"""The fast training engine of ``train_full_batch`` for ``TopicAttention`` (chapter 1).

The model is the one of ``topic.attention_forward`` (equations (1.1)-(1.3)):
``s_u = q . k_u``, ``a = softmax(s_{x_1}, ..., s_{x_L})``, ``v = sum_i a_i w_{x_i}``, then the
classifier.  Full-batch training sees the same sentences at every step, so the word ids are turned
once into two fixed sparsity patterns, and each step is two sparse-dense products:

* forward: ``v = P @ W`` with ``P`` ``(R n, R V)``, row ``b`` holding sentence ``b``'s words with
  their attention as values;
* backward: with ``g_b = dLoss/dv_b`` and ``c_b = v_b . g_b``, one product ``P^T @ [g, c]`` (``P^T``
  stored as compressed rows sorted by word, built once) gives the embedding gradient
  ``dW = P^T g`` and, through the softmax, every word score's gradient
  ``ds_u = w_u . dW_u - (P^T c)_u``; no scatter of ``n L d`` numbers, no softmax backward.

R models (seeds) are trained as one computation by giving replica ``r`` the word ids
``x + r V`` in the stacked ``(R V, d)`` tables: one sparse product serves all of them, without
``vmap``.  The word scores ``K q``, the classifier and the cross-entropy are plain autograd.
``tests/test_sparse_engine.py`` checks loss and gradients against autograd of
``attention_forward`` (float64), and whole training runs against the autograd engine.
"""

from __future__ import annotations

import warnings

import torch
from torch.func import functional_call, vmap


def supported(device: torch.device) -> bool:
    """The sparse CSR products used here exist on CPU and CUDA devices."""
    return device.type in ("cpu", "cuda")


def preferred(device: torch.device) -> bool:
    """Where ``engine="auto"`` picks this engine: the CPU, where it is measured to be faster
    (``benchmarks/``).  On CUDA it is available as ``engine="sparse"``; the benchmarks compare
    both engines there when a GPU is present."""
    return device.type == "cpu"


def _csr(crow, col, values, size):
    with warnings.catch_warnings():  # "sparse CSR support is in beta": not for the reader's eyes
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow, col, values, size=size, check_invariants=False)


class SparsePlan:
    """The fixed sparsity patterns of R replicas' sentences (built once per training run).

    ``tokens``: ``(R, n, L)`` long word ids in ``[0, vocab)``.
    """

    def __init__(self, tokens: torch.Tensor, vocab: int):
        n_rep, n, length = tokens.shape
        device = tokens.device
        offset = torch.arange(n_rep, device=device).view(-1, 1, 1) * vocab
        flat = (tokens + offset).reshape(-1)  # (R n L,) ids in the stacked tables
        self.flat = flat
        self.length = length
        self.rows, self.cols = n_rep * n, n_rep * vocab
        # 32-bit indices when they fit: the sparse kernels would otherwise convert them every call
        index = torch.int32 if max(flat.numel(), self.cols) < 2**31 - 1 else torch.long
        self.p_crow = torch.arange(0, flat.numel() + 1, length, device=device).to(index)
        self.p_col = flat.to(index)
        self.perm = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=self.cols)
        self.q_crow = torch.zeros(self.cols + 1, dtype=torch.long, device=device)
        self.q_crow[1:] = torch.cumsum(counts, 0)
        self.q_crow = self.q_crow.to(index)
        sentence = torch.arange(flat.numel(), device=device) // length
        self.q_col = sentence[self.perm].to(index)  # (R n L,) each entry's sentence, sorted by word

    def p(self, values):
        return _csr(self.p_crow, self.p_col, values, (self.rows, self.cols))


class _AttentionContext(torch.autograd.Function):
    """Word scores ``(R V,)`` and stacked table ``W`` ``(R V, d)`` to the contexts ``(R n, d)``
    (and the attention ``(R, n, L)``, not differentiated), with a hand-written backward.

    With ``g_b = dLoss/dv_b`` and ``c_b = v_b . g_b``, the softmax backward
    ``ds_bi = a_bi (w_{x_bi} . g_b - c_b)`` summed over the occurrences of word ``u`` is
    ``dW_u . w_u - (Q c)_u`` where ``dW = Q g`` is the embedding gradient: one sparse product
    ``Q @ [g, c]`` gives both gradients.
    """

    @staticmethod
    def forward(word_scores, table, plan, shape, fill):
        scores = word_scores.index_select(0, plan.flat).view(shape)  # (R, n, L)
        if fill is not None:
            scores = scores.masked_fill(fill, float("-inf"))
        attention = torch.softmax(scores, dim=-1)
        context = plan.p(attention.reshape(-1)) @ table  # (R n, d)
        return context, attention

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, table, plan, _, _ = inputs
        context, attention = output
        ctx.mark_non_differentiable(attention)
        ctx.save_for_backward(table, context, attention)
        ctx.plan = plan

    @staticmethod
    def backward(ctx, grad, _grad_attention):
        table, context, attention = ctx.saved_tensors
        plan = ctx.plan
        need_scores, need_table = ctx.needs_input_grad[:2]
        if not (need_scores or need_table):
            return None, None, None, None, None
        grad = grad.contiguous()
        rhs = (
            torch.cat([grad, (context * grad).sum(-1, keepdim=True)], dim=1)
            if need_scores
            else grad
        )
        values = attention.reshape(-1).index_select(0, plan.perm)
        product = (
            _csr(plan.q_crow, plan.q_col, values, (plan.cols, plan.rows)) @ rhs
        )  # (R V, d [+1])
        d_table = product[:, : table.shape[1]]
        d_scores = (table * d_table).sum(-1) - product[:, -1] if need_scores else None
        return d_scores, (d_table if need_table else None), None, None, None


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(R,)`` mean cross-entropy of ``logits`` ``(R, n, C)`` against ``labels`` ``(R, n)``: what
    ``F.cross_entropy`` computes, with the log-softmax taken over the classes laid out along the
    slow axis (on a CPU about 10x faster than along a short last axis)."""
    log_p = torch.log_softmax(logits.transpose(1, 2).contiguous(), dim=1)  # (R, C, n)
    return -log_p.gather(1, labels.unsqueeze(1)).squeeze(1).mean(-1)


def make_loss_fn(
    base, n_models: int, tokens: torch.Tensor, labels: torch.Tensor, mask, per_model_data: bool
):
    """The loss function of R stacked ``TopicAttention`` models on fixed sentences: what ``vmap``
    of the model's forward and ``F.cross_entropy`` compute (chapter 1).

    Parameters
    ----------
    base
        The models' architecture (a ``TopicAttention``, possibly on the meta device).
    n_models
        R, the number of stacked models.
    tokens, labels, mask
        ``(n, L)``, ``(n,)``, ``(n, L)`` bool or ``None`` shared by the models, or with a leading
        ``R`` axis when ``per_model_data``.
    per_model_data
        Whether each model has its own sentences.

    Returns
    -------
    loss(params, buffers) -> (losses (R,), attention (R, n, L))
        For parameters in the ``torch.func.stack_module_state`` layout; the signature of every
        engine's loss in ``training``.
    """
    vocab = base.embedding.num_embeddings
    if not per_model_data:
        tokens = tokens.unsqueeze(0).expand(n_models, *tokens.shape)
        labels = labels.unsqueeze(0).expand(n_models, *labels.shape)
        mask = None if mask is None else mask.unsqueeze(0).expand(n_models, *mask.shape)
    shape = tuple(tokens.shape)  # (R, n, L)
    plan = SparsePlan(tokens, vocab)
    fill = None if mask is None else ~mask
    classifier = base.classifier
    prefix = "classifier."

    def apply_classifier(p, x):
        return functional_call(classifier, p, (x,))

    batched_classifier = vmap(apply_classifier)

    def loss_fn(params, buffers):
        both = {**buffers, **params}
        query = both["query"]  # (R, key_dim)
        keys = both["keys.weight"]  # (R, V, key_dim)
        table = both["embedding.weight"]  # (R, V, d)
        scores = torch.bmm(keys, query.unsqueeze(-1)).reshape(-1)  # (R V,) every word's score
        flat_table = table.reshape(-1, table.shape[-1])  # (R V, d)
        context, attention = _AttentionContext.apply(scores, flat_table, plan, shape, fill)
        context = context.view(shape[0], shape[1], -1)  # (R, n, d)
        cls = {k[len(prefix) :]: v for k, v in both.items() if k.startswith(prefix)}
        if shape[0] == 1:
            logits = apply_classifier({k: v[0] for k, v in cls.items()}, context[0]).unsqueeze(0)
        else:
            logits = batched_classifier(cls, context)  # (R, n, C)
        return cross_entropy(logits, labels), attention

    return loss_fn
