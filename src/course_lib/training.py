"""Full-batch gradient descent for the chapter-1 model, recording what the chapters plot.

``train_full_batch`` trains one ``TopicAttention`` or a list of them that share an architecture
(several seeds or configurations) as **one batched computation**.  Two engines compute a step,
with the same numbers up to float rounding (chapter 1; both measured in ``benchmarks/``):

* ``"sparse"`` (the default for ``TopicAttention`` on a CPU): the fixed training sentences become
  sparse matrices once, and a step is a few sparse products with a hand-written backward pass
  (``course_lib._sparse_attention``); several models are batched by offsetting their word ids;
* ``"autograd"``: autograd through the model's own ``forward``, the models' parameters stacked
  along a leading "replica" axis and run together by ``torch.func.vmap``; it is the reference,
  and the engine for subclasses of the model and for CUDA.

The update is plain gradient descent, ``theta <- theta - lr * grad``, exactly the paper's
``torch.optim.SGD`` without momentum.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from . import _sparse_attention
from ._validate import check_int, check_positive, check_tokens
from .topic import TopicAttention

PARAMETER_GROUPS = ("embedding", "keys", "classifier", "query")


@dataclass
class TrainingHistory:
    """What a run recorded, one row per recorded step (chapter 1).

    Every tensor has a leading replica axis ``R`` (1 for a single model) and a step axis ``T``
    (the recorded steps, ``steps`` holds their indices; the last one is the state after training).

    * ``loss``: ``(R, T)`` mean training cross-entropy;
    * ``topic_scores``: ``(R, T, n_topic_words)`` ``s_tau = q . k_tau``;
    * ``topic_norms``: ``(R, T, n_topic_words)`` ``||w_tau||``;
    * ``query_norm``: ``(R, T)`` ``||q||`` (constant unless the query is trained);
    * ``attention_on_topic``: ``(R, T)`` mean attention on the topic word over training sentences;
    * ``background_attention_cv``: ``(R, T)`` spread of the attention on the background words of a
      sentence (standard deviation over mean, averaged over sentences; 0 means uniform).
    """

    steps: torch.Tensor
    loss: torch.Tensor
    topic_scores: torch.Tensor
    topic_norms: torch.Tensor
    query_norm: torch.Tensor
    attention_on_topic: torch.Tensor
    background_attention_cv: torch.Tensor
    topic_word_ids: torch.Tensor
    lr: float
    extra: dict = field(default_factory=dict)

    def first_step_below(self, threshold: float) -> torch.Tensor:
        """``(R,)`` long: first recorded step whose loss is below ``threshold`` (-1 if never)."""
        below = self.loss < threshold
        first = torch.where(below.any(dim=1), below.float().argmax(dim=1), torch.full_like(below[:, 0], -1, dtype=torch.long))
        return torch.where(first >= 0, self.steps[first.clamp(min=0)], first)

    def replica(self, r: int) -> "TrainingHistory":
        """The history of replica ``r`` alone (still with a replica axis of size 1)."""
        pick = lambda t: t[r : r + 1]  # noqa: E731
        return TrainingHistory(
            steps=self.steps,
            loss=pick(self.loss),
            topic_scores=pick(self.topic_scores),
            topic_norms=pick(self.topic_norms),
            query_norm=pick(self.query_norm),
            attention_on_topic=pick(self.attention_on_topic),
            background_attention_cv=pick(self.background_attention_cv),
            topic_word_ids=self.topic_word_ids,
            lr=self.lr,
            extra={k: v[r : r + 1] for k, v in self.extra.items()},
        )


def _group_of(name: str) -> str:
    return name.split(".", 1)[0]


def _check_models(models) -> list[TopicAttention]:
    single = isinstance(models, TopicAttention)
    models = [models] if single else list(models)
    if not models or not all(isinstance(m, TopicAttention) for m in models):
        raise TypeError("models must be a TopicAttention or a non-empty list of them")
    shapes = {k: v.shape for k, v in models[0].state_dict().items()}
    for i, model in enumerate(models[1:], start=1):
        other = {k: v.shape for k, v in model.state_dict().items()}
        if other != shapes or model.classifier_kind != models[0].classifier_kind:
            raise ValueError(f"models[{i}] has a different architecture from models[0]; batch only like with like")
    return models


def train_full_batch(
    models,
    tokens: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    lr: float = 0.1,
    *,
    topic_mask: torch.Tensor | None = None,
    topic_word_ids: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    frozen: Sequence[str] = (),
    frozen_word_ids: torch.Tensor | None = None,
    record_every: int = 1,
    record_all_scores: bool = False,
    device: torch.device | str | None = None,
    engine: str = "auto",
):
    """Train by full-batch gradient descent; return ``(models, history)`` (chapter 1).

    ``models``: one ``TopicAttention`` or a list of R models of one architecture, trained together
    as one batched computation.  ``tokens`` ``(n, length)`` and ``labels`` ``(n,)`` are shared by
    all models, or ``(R, n, length)`` and ``(R, n)`` to give each its own data.  ``topic_mask``
    (same shape as ``tokens``, bool) marks the topic words, for the attention records;
    ``topic_word_ids`` the words whose score and norm are recorded.  ``mask`` marks real (not
    padding) positions.  ``frozen`` names parameter groups not to train (``"embedding"``,
    ``"keys"``, ``"classifier"``, ``"query"``); ``frozen_word_ids`` rows of the embedding and key
    tables kept at their initial values (chapter 2 freezes the background words this way).
    Parameters that do not require a gradient (the fixed classifier, a fixed query) never move.
    ``record_all_scores`` also keeps every word's score at each recorded step, in
    ``history.extra["scores"]`` ``(R, T, vocab_size)``.

    ``engine`` picks how a step is computed, with the same results up to float rounding:
    ``"sparse"`` (sparse products over the fixed sentences, ``course_lib._sparse_attention``; several
    times faster on a CPU, see ``benchmarks/``), ``"autograd"`` (autograd through the model's
    ``forward``, ``vmap`` over models), or ``"auto"``: sparse for ``TopicAttention`` itself on the
    CPU, autograd otherwise (a subclass, a GPU; ``"sparse"`` also runs on CUDA).

    The models are updated in place and returned (a list if a list was given).
    """
    single = isinstance(models, TopicAttention)
    models = _check_models(models)
    n_models = len(models)
    check_int(steps, "steps", minimum=0)
    check_int(record_every, "record_every", minimum=1)
    lr = check_positive(lr, "lr")
    unknown = set(frozen) - set(PARAMETER_GROUPS)
    if isinstance(frozen, str) or unknown:
        raise ValueError(f"frozen must be a sequence of names from {PARAMETER_GROUPS}, got {frozen!r}")
    if engine not in ("auto", "sparse", "autograd"):
        raise ValueError(f"engine must be 'auto', 'sparse' or 'autograd', got {engine!r}")

    vocab = models[0].vocab_size
    per_model_data = tokens.dim() == 3 if isinstance(tokens, torch.Tensor) else False
    flat_tokens = tokens.reshape(-1, tokens.shape[-1]) if per_model_data else tokens
    check_tokens(flat_tokens, "tokens", vocab_size=vocab)
    expected_batch = tuple(tokens.shape[:-1])
    if per_model_data and tokens.shape[0] != n_models:
        raise ValueError(f"tokens has {tokens.shape[0]} per-model datasets but there are {n_models} models")
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != expected_batch:
        raise ValueError(f"labels must have shape {expected_batch} to match tokens, got {tuple(getattr(labels, 'shape', ()))}")
    n_classes = models[0].n_classes
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"labels must be class ids in [0, {n_classes - 1}]")
    for name, extra in (("topic_mask", topic_mask), ("mask", mask)):
        if extra is not None and (not isinstance(extra, torch.Tensor) or extra.shape != tokens.shape or extra.dtype != torch.bool):
            raise ValueError(f"{name} must be a bool tensor of the same shape as tokens {tuple(tokens.shape)}")
    if topic_word_ids is None:
        topic_word_ids = torch.zeros(0, dtype=torch.long)
    topic_word_ids = torch.as_tensor(topic_word_ids, dtype=torch.long).reshape(-1)
    if topic_word_ids.numel() and (int(topic_word_ids.min()) < 0 or int(topic_word_ids.max()) >= vocab):
        raise ValueError(f"topic_word_ids must be word ids in [0, {vocab - 1}]")

    device = torch.device(device) if device is not None else models[0].embedding.weight.device
    base = copy.deepcopy(models[0]).to("meta")
    params, buffers = stack_module_state([m.to(device) for m in models])
    trainable = {
        name: p
        for name, p in params.items()
        if models[0].get_parameter(name).requires_grad and _group_of(name) not in frozen
    }
    params = {name: p.detach().requires_grad_(name in trainable) for name, p in params.items()}

    row_keep = None
    if frozen_word_ids is not None:
        frozen_word_ids = torch.as_tensor(frozen_word_ids, dtype=torch.long).reshape(-1)
        if frozen_word_ids.numel() and (int(frozen_word_ids.min()) < 0 or int(frozen_word_ids.max()) >= vocab):
            raise ValueError(f"frozen_word_ids must be word ids in [0, {vocab - 1}]")
        row_keep = torch.ones(vocab, 1, device=device)
        row_keep[frozen_word_ids.to(device)] = 0.0

    tokens, labels = tokens.to(device), labels.to(device)
    topic_mask = topic_mask.to(device) if topic_mask is not None else None
    mask = mask.to(device) if mask is not None else None
    data_dim = 0 if per_model_data else None
    topic_weight = background_weight = background_count = None
    if topic_mask is not None:  # float weights made once, so recording a step stays cheap
        topic_weight = topic_mask.float()
        background = ~topic_mask if mask is None else (~topic_mask & mask)
        background_weight = background.float()
        background_count = background_weight.sum(-1).clamp(min=1)
        both_weights = torch.stack([topic_weight, background_weight], dim=-3)  # (..., 2, n, length)

    def one_model(p, b, toks, labs, msk):
        logits, attention = functional_call(base, (p, b), (toks, msk, True))
        return F.cross_entropy(logits, labs), attention

    if n_models == 1 and not per_model_data:
        # one model: skip vmap's per-operation overhead, keep the replica axis of size 1
        def batched(p, b, toks, labs, msk):
            loss, attention = one_model({k: v[0] for k, v in p.items()}, {k: v[0] for k, v in b.items()}, toks, labs, msk)
            return loss.unsqueeze(0), attention.unsqueeze(0)
    else:
        batched = vmap(one_model, in_dims=(0, 0, data_dim, data_dim, data_dim if mask is not None else None))
    if engine == "auto":
        plain = all(type(m) is TopicAttention for m in models)
        engine = "sparse" if plain and _sparse_attention.preferred(device) else "autograd"
    if engine == "sparse":
        if not _sparse_attention.supported(device):
            raise ValueError(f"engine='sparse' needs a CPU or CUDA device, got {device}; use engine='autograd'")
        loss_fn = _sparse_attention.make_loss_fn(base, n_models, tokens, labels, mask, per_model_data)

        def batched(p, b, toks, labs, msk):  # the data are fixed in loss_fn's sparsity patterns
            return loss_fn(p, b)

    names = list(trainable)

    # The records are written into tensors allocated once, (R, T, ...): appending thousands of
    # small tensors instead fragmented the heap (about 0.1 MB of peak memory per recorded step).
    recorded_steps = list(range(0, steps, record_every)) + [steps]
    records: dict[str, torch.Tensor] = {}
    slot = [0]

    def keep(key, value):  # value (R, ...) goes to records[key][:, slot]
        if key not in records:
            records[key] = value.new_empty((value.shape[0], len(recorded_steps), *value.shape[1:]))
        records[key][:, slot[0]] = value

    @torch.no_grad()  # recording builds no autograd graph (it ran at every step: keep it cheap)
    def record(step, loss, attention):
        query = params["query"] if "query" in params else buffers["query"]  # (R, key_dim)
        keys = params["keys.weight"][:, topic_word_ids]  # (R, n_topic, key_dim)
        keep("loss", loss.detach())
        keep("scores", torch.einsum("rtk,rk->rt", keys, query))
        keep("norms", params["embedding.weight"][:, topic_word_ids].norm(dim=-1))
        keep("qnorm", query.norm(dim=-1))
        attention = attention.detach()
        if topic_weight is not None:
            # one product for both weightings (the weights are 0/1, so (a g) a == a^2 g exactly)
            weighted = attention.unsqueeze(-3) * both_weights  # (R, 2, n, length)
            sums = weighted.sum(-1)  # (R, 2, n)
            on_topic = sums[:, 0].mean(-1)
            mean = sums[:, 1] / background_count
            second = (weighted[:, 1] * attention).sum(-1) / background_count
            std = (second - mean.square()).clamp(min=0).sqrt()
            cv = (std / mean.clamp(min=1e-30)).mean(-1)
        else:
            on_topic = cv = torch.full_like(loss, float("nan"))
        keep("att", on_topic)
        keep("cv", cv)
        if record_all_scores:
            keep("all_scores", torch.einsum("rvk,rk->rv", params["keys.weight"], query))
        slot[0] += 1

    for step in range(steps + 1):
        want_record = step % record_every == 0 or step == steps
        if step == steps:
            with torch.no_grad():
                losses, attention = batched(params, buffers, tokens, labels, mask)
            record(step, losses, attention)
            break
        losses, attention = batched(params, buffers, tokens, labels, mask)  # (R,), (R, n, length)
        if want_record:
            record(step, losses, attention)
        grads = torch.autograd.grad(losses.sum(), [trainable_p for trainable_p in (params[n] for n in names)])
        with torch.no_grad():
            for name, grad in zip(names, grads):
                if row_keep is not None and name in ("embedding.weight", "keys.weight"):
                    grad = grad * row_keep
                params[name].sub_(lr * grad)

    with torch.no_grad():
        for r, model in enumerate(models):
            for name, value in params.items():
                model.get_parameter(name).copy_(value[r])
            for name, value in buffers.items():
                model.get_buffer(name).copy_(value[r])

    assert slot[0] == len(recorded_steps)
    history = TrainingHistory(
        steps=torch.tensor(recorded_steps),
        loss=records["loss"].cpu(),
        topic_scores=records["scores"].cpu(),
        topic_norms=records["norms"].cpu(),
        query_norm=records["qnorm"].cpu(),
        attention_on_topic=records["att"].cpu(),
        background_attention_cv=records["cv"].cpu(),
        topic_word_ids=topic_word_ids.cpu(),
        lr=lr,
    )
    if record_all_scores:
        history.extra["scores"] = records["all_scores"].cpu()
    return (models[0] if single else models), history


@torch.no_grad()
def accuracy(model: TopicAttention, tokens: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Fraction of sentences whose arg-max logit is the label (chapter 1)."""
    check_tokens(tokens, "tokens", vocab_size=model.vocab_size)
    device = model.embedding.weight.device
    logits = model(tokens.to(device), None if mask is None else mask.to(device))
    return float((logits.argmax(-1).cpu() == labels.cpu()).float().mean())
