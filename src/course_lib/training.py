"""Full-batch gradient descent for the chapter-1 model, recording what the chapters plot.

Chapter 1 writes the update first as :func:`gradient_step`, a few lines of plain autograd:
``theta <- theta - lr * grad`` (the paper's ``torch.optim.SGD`` without momentum).
:func:`train_full_batch` computes the same steps, faster, and records the quantities the chapters
plot.  It trains one ``TopicAttention`` or a list of them that share an architecture (several seeds
or configurations) as **one batched computation**, in four parts:

* the arguments are checked (``_check_models``, ``_check_data``, ``_check_word_ids``);
* the models' parameters are stacked along a leading "replica" axis (``_StackedModels``);
* a loss function ``loss(params, buffers) -> (losses (R,), attention (R, n, L))`` is built for
  one of two engines, with the same numbers up to float rounding (both measured in
  ``benchmarks/``):

  - ``"sparse"`` (the default for ``TopicAttention`` on a CPU): the fixed training sentences
    become sparse matrices once, and a step is a few sparse products with a hand-written
    backward pass (``course_lib._sparse_attention``); several models are batched by offsetting
    their word ids;
  - ``"autograd"``: autograd through the model's own ``forward``, run for all replicas together
    by ``torch.func.vmap``; it is the reference, and the engine for subclasses of the model and
    for CUDA;

* the loop is the course's one engine, :func:`course_lib.engine.train` (``_fit`` builds the
  run: full batch, plain gradient descent, the frozen groups held fixed and the frozen word
  rows masked); its ``record`` hook hands the recorded steps to a ``_Recorder``, whose buffers
  are the named records of the returned ``engine.History``; a hook, ``on_record``, sees each
  record and may stop the run; a progress bar (:mod:`course_lib.progress`) shows runs that
  last more than a few seconds.

:func:`train_with_early_stopping` (chapter 3) uses that hook to take snapshots, keep the best
state on a dev set and stop early, inside one run.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from . import _sparse_attention
from ._validate import check_int, check_positive, check_tokens
from .engine import History, Step, train
from .topic import TopicAttention, make_topic_corpus

PARAMETER_GROUPS = ("embedding", "keys", "classifier", "query")
ENGINES = ("auto", "sparse", "autograd")
# the per-step records of train_full_batch's History, in the order the recorder writes them
RECORDED_FIELDS = (
    "loss",
    "topic_scores",
    "topic_norms",
    "query_norm",
    "attention_on_topic",
    "background_attention_cv",
)


# --------------------------------------------------------------------------- the plain step


def gradient_step(
    model, tokens: torch.Tensor, labels: torch.Tensor, lr: float, *, mask=None
) -> float:
    """One step of full-batch gradient descent on ``model``, in place (chapter 1).

    The loss is the mean cross-entropy of ``model(tokens, mask)`` against ``labels``; every
    parameter that requires a gradient moves by ``-lr`` times its gradient.  Returns the loss
    before the step.  ``train_full_batch`` takes the same steps, batched and faster.

    >>> from course_lib.topic import make_topic_corpus
    >>> corpus = make_topic_corpus(n_background=20, m=3, n_sentences=10)
    >>> model = TopicAttention(corpus.vocab_size, corpus.n_topics)
    >>> before = gradient_step(model, *corpus.train, lr=0.1)
    >>> after = gradient_step(model, *corpus.train, lr=0.1)
    >>> after < before
    True
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    lr = check_positive(lr, "lr")
    check_tokens(tokens, "tokens")
    if not isinstance(labels, torch.Tensor) or labels.shape != tokens.shape[:1]:
        raise ValueError(f"labels must be a tensor of shape ({tokens.shape[0]},) to match tokens")
    loss = F.cross_entropy(model(tokens, mask), labels)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, grad in zip(params, grads):
            p.sub_(lr * grad)
    return float(loss.detach())


# --------------------------------------------------------------------------- argument checks


def _check_models(models) -> list[TopicAttention]:
    models = [models] if isinstance(models, TopicAttention) else list(models)
    if not models or not all(isinstance(m, TopicAttention) for m in models):
        raise TypeError("models must be a TopicAttention or a non-empty list of them")
    shapes = {k: v.shape for k, v in models[0].state_dict().items()}
    for i, model in enumerate(models[1:], start=1):
        other = {k: v.shape for k, v in model.state_dict().items()}
        if other != shapes or model.classifier_kind != models[0].classifier_kind:
            raise ValueError(
                f"models[{i}] has a different architecture from models[0]; "
                "batch only like with like"
            )
    return models


def _check_options(steps, lr, record_every, frozen, engine) -> float:
    check_int(steps, "steps", minimum=0)
    check_int(record_every, "record_every", minimum=1)
    if isinstance(frozen, str) or set(frozen) - set(PARAMETER_GROUPS):
        raise ValueError(
            f"frozen must be a sequence of names from {PARAMETER_GROUPS}, got {frozen!r}"
        )
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return check_positive(lr, "lr")


def _check_data(models, tokens, labels, topic_mask, mask) -> bool:
    """Check the training data; return whether each model has its own (``tokens`` ``(R, n, L)``)."""
    per_model_data = isinstance(tokens, torch.Tensor) and tokens.dim() == 3
    flat_tokens = tokens.reshape(-1, tokens.shape[-1]) if per_model_data else tokens
    check_tokens(flat_tokens, "tokens", vocab_size=models[0].vocab_size)
    if per_model_data and tokens.shape[0] != len(models):
        raise ValueError(
            f"tokens has {tokens.shape[0]} per-model datasets but there are {len(models)} models"
        )
    expected = tuple(tokens.shape[:-1])
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != expected:
        got = tuple(getattr(labels, "shape", ()))
        raise ValueError(f"labels must have shape {expected} to match tokens, got {got}")
    n_classes = models[0].n_classes
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"labels must be class ids in [0, {n_classes - 1}]")
    for name, value in (("topic_mask", topic_mask), ("mask", mask)):
        if value is None:
            continue
        if (
            not isinstance(value, torch.Tensor)
            or value.shape != tokens.shape
            or value.dtype != torch.bool
        ):
            raise ValueError(
                f"{name} must be a bool tensor of the same shape as tokens {tuple(tokens.shape)}"
            )
    return per_model_data


def _check_word_ids(ids, name: str, vocab: int) -> torch.Tensor:
    ids = torch.as_tensor([] if ids is None else ids, dtype=torch.long).reshape(-1)
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise ValueError(f"{name} must be word ids in [0, {vocab - 1}]")
    return ids


# --------------------------------------------------------------------------- stacked parameters


class _StackedModels:
    """The parameters and buffers of R models stacked along a leading replica axis
    (``torch.func.stack_module_state``), the ones to train, and how to copy them back."""

    def __init__(self, models, device, frozen, frozen_word_ids):
        self.models = models
        self.base = copy.deepcopy(models[0]).to("meta")  # the architecture, without storage
        params, self.buffers = stack_module_state([m.to(device) for m in models])
        self.trainable = [
            name
            for name in params
            if models[0].get_parameter(name).requires_grad and name.split(".", 1)[0] not in frozen
        ]
        self.params = {n: p.detach().requires_grad_(n in self.trainable) for n, p in params.items()}
        self.masks = {}  # gradient masks: (V, 1), 0 on the rows of frozen words, 1 elsewhere
        if frozen_word_ids.numel():
            row_keep = torch.ones(models[0].vocab_size, 1, device=device)
            row_keep[frozen_word_ids.to(device)] = 0.0
            self.masks = {n: row_keep for n in ("embedding.weight", "keys.weight") if n in params}

    @torch.no_grad()
    def copy_back(self) -> None:
        """Write the stacked values into the models."""
        for r, model in enumerate(self.models):
            for name, value in self.params.items():
                model.get_parameter(name).copy_(value[r])
            for name, value in self.buffers.items():
                model.get_buffer(name).copy_(value[r])


# --------------------------------------------------------------------------- the loss, per engine


def _pick_engine(engine: str, models, device: torch.device) -> str:
    if engine == "auto":
        plain = all(type(m) is TopicAttention for m in models)
        return "sparse" if plain and _sparse_attention.preferred(device) else "autograd"
    if engine == "sparse" and not _sparse_attention.supported(device):
        raise ValueError(
            f"engine='sparse' needs a CPU or CUDA device, got {device}; use engine='autograd'"
        )
    return engine


def _autograd_loss_fn(base, n_models, tokens, labels, mask, per_model_data) -> Callable:
    """``loss(params, buffers) -> (losses (R,), attention (R, n, L))`` by autograd through the
    model's ``forward``, ``vmap``-ed over the replicas."""

    def one_model(p, b, toks, labs, msk):
        logits, attention = functional_call(base, (p, b), (toks, msk, True))
        return F.cross_entropy(logits, labs), attention

    if n_models == 1 and not per_model_data:  # skip vmap's per-operation overhead

        def first(stacked):
            return {k: v[0] for k, v in stacked.items()}

        def loss(params, buffers):
            value, attention = one_model(first(params), first(buffers), tokens, labels, mask)
            return value.unsqueeze(0), attention.unsqueeze(0)

        return loss
    data_dim = 0 if per_model_data else None
    mask_dim = data_dim if mask is not None else None
    batched = vmap(one_model, in_dims=(0, 0, data_dim, data_dim, mask_dim))
    return lambda params, buffers: batched(params, buffers, tokens, labels, mask)


def _make_loss_fn(engine, base, n_models, tokens, labels, mask, per_model_data) -> Callable:
    """One signature for both engines: ``loss(params, buffers) -> (losses (R,), attention)``."""
    make = _sparse_attention.make_loss_fn if engine == "sparse" else _autograd_loss_fn
    return make(base, n_models, tokens, labels, mask, per_model_data)


# --------------------------------------------------------------------------- recording


class _Recorder:
    """Writes the records of each recorded step into tensors allocated once, ``(R, T, ...)``,
    the named records of :func:`train_full_batch`'s history."""

    def __init__(self, n_steps, topic_word_ids, topic_mask, mask, record_all_scores):
        self.n_steps = n_steps  # the number of recorded steps planned
        self.steps: list[int] = []
        self.buffers: dict[str, torch.Tensor] = {}
        self.topic_word_ids = topic_word_ids
        self.record_all_scores = record_all_scores
        self.weights = None
        if topic_mask is not None:  # float weights made once, so recording a step stays cheap
            background = ~topic_mask if mask is None else (~topic_mask & mask)
            self.background_count = background.float().sum(-1).clamp(min=1)  # ([R,] n)
            weights = [topic_mask.float(), background.float()]
            self.weights = torch.stack(weights, dim=-3)  # ([R,] 2, n, L)

    def _keep(self, name: str, value: torch.Tensor) -> None:
        """Write ``value`` ``(R, ...)`` into ``buffers[name][:, t]`` (allocated on first use)."""
        if name not in self.buffers:
            shape = (value.shape[0], self.n_steps, *value.shape[1:])
            self.buffers[name] = value.new_empty(shape)
        self.buffers[name][:, len(self.steps)] = value

    def _attention_records(self, attention, like):
        """Mean attention on the topic word and spread of the background attention, ``(R,)``."""
        if self.weights is None:
            nan = torch.full_like(like, float("nan"))
            return nan, nan
        # one product for both weightings (the weights are 0/1, so (a g) a == a^2 g exactly)
        weighted = attention.unsqueeze(-3) * self.weights  # (R, 2, n, L)
        sums = weighted.sum(-1)  # (R, 2, n)
        mean = sums[:, 1] / self.background_count
        second = (weighted[:, 1] * attention).sum(-1) / self.background_count
        std = (second - mean.square()).clamp(min=0).sqrt()
        return sums[:, 0].mean(-1), (std / mean.clamp(min=1e-30)).mean(-1)

    @torch.no_grad()
    def record(self, step: int, params, buffers, losses, attention) -> None:
        query = params["query"] if "query" in params else buffers["query"]  # (R, key_dim)
        keys = params["keys.weight"]  # (R, V, key_dim)
        ids = self.topic_word_ids
        self._keep("loss", losses.detach())
        self._keep("topic_scores", torch.einsum("rtk,rk->rt", keys[:, ids], query))
        self._keep("topic_norms", params["embedding.weight"][:, ids].norm(dim=-1))
        self._keep("query_norm", query.norm(dim=-1))
        on_topic, spread = self._attention_records(attention.detach(), losses.detach())
        self._keep("attention_on_topic", on_topic)
        self._keep("background_attention_cv", spread)
        if self.record_all_scores:
            self._keep("scores", torch.einsum("rvk,rk->rv", keys, query))
        self.steps.append(step)

    def history(self, lr: float, single: bool) -> History:
        """The records so far (views: no copy on the CPU), without the replica axis if
        ``single``."""
        t = len(self.steps)
        names = RECORDED_FIELDS + (("scores",) if self.record_all_scores else ())
        records = {
            name: self.buffers[name][:, :t][0 if single else slice(None)].cpu() for name in names
        }
        meta = {"topic_word_ids": self.topic_word_ids.cpu(), "lr": lr}
        return History(torch.tensor(self.steps, dtype=torch.long), records, meta, not single)


# --------------------------------------------------------------------------- the loop


def _fit(stack, loss_fn, recorder, steps, lr, record_every, on_record, single) -> None:
    """Take ``steps`` gradient steps on the engine (:func:`course_lib.engine.train`),
    recording every ``record_every`` steps and after the last; stop early when ``on_record``
    returns True."""

    def record(step: Step) -> bool:
        if step.number % record_every and step.number != steps:
            return False
        recorder.record(step.number, stack.params, stack.buffers, step.values, step.aux)
        if on_record is None:
            return False
        stack.copy_back()  # the callback may look at the models
        return bool(on_record(step.number, recorder.history(lr, single)))

    train(
        stack.params,
        lambda params, batch, index: loss_fn(params, stack.buffers),  # (R,), (R, n, L)
        steps=steps,
        lr=lr,
        held=[name for name in stack.params if name not in stack.trainable],
        masks=stack.masks,
        record=record,
        final=True,
        desc="train_full_batch",
    )


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
    on_record: Callable[[int, History], bool | None] | None = None,
):
    """Train by full-batch gradient descent; return ``(models, history)`` (chapter 1).

    Parameters
    ----------
    models
        One ``TopicAttention``, or a list of R models of one architecture trained together as one
        batched computation.  They are updated in place and returned (a list if a list was given).
    tokens, labels
        ``(n, length)`` long and ``(n,)`` long, shared by all models, or ``(R, n, length)`` and
        ``(R, n)`` to give each model its own data.
    steps, lr
        The number of gradient steps and the learning rate.
    topic_mask
        Same shape as ``tokens``, bool: where the topic words are (for the attention records).
    topic_word_ids
        The words whose score and norm are recorded.
    mask
        Same shape as ``tokens``, bool: the real (not padding) positions.
    frozen
        Parameter groups not to train (``"embedding"``, ``"keys"``, ``"classifier"``,
        ``"query"``).  Parameters that do not require a gradient (the fixed classifier, a fixed
        query) never move.
    frozen_word_ids
        Rows of the embedding and key tables kept at their initial values (chapter 2 freezes the
        background words this way).
    record_every, record_all_scores
        Record every ``record_every`` steps (and after the last step); with
        ``record_all_scores`` also every word's score, the record ``history.scores``.
    device
        Where to train (default: where the first model's parameters are).
    engine
        How a step is computed, with the same results up to float rounding: ``"sparse"`` (sparse
        products over the fixed sentences, ``course_lib._sparse_attention``; several times faster
        on a CPU, see ``benchmarks/``), ``"autograd"`` (autograd through the model's ``forward``,
        ``vmap`` over models), or ``"auto"``: sparse for ``TopicAttention`` itself on the CPU,
        autograd otherwise (a subclass, a GPU; ``"sparse"`` also runs on CUDA).
    on_record
        Called as ``on_record(step, history_so_far)`` at each recorded step, after the models
        have been given the current parameters (so it may evaluate them); returning True stops
        training there (early stopping): the models keep that step's parameters and the
        history ends with it.

    Returns
    -------
    (models, history)
        ``history`` is an :class:`~course_lib.engine.History` (one row per recorded step;
        ``steps`` ``(T,)``, the last one the state after training), without a run axis for
        one model, stacked ``(R, T, ...)`` for a list.  Its records:

        * ``loss``: ``([R,] T)`` mean training cross-entropy;
        * ``topic_scores``: ``([R,] T, n_topic_words)`` ``s_tau = q . k_tau``;
        * ``topic_norms``: ``([R,] T, n_topic_words)`` ``||w_tau||``;
        * ``query_norm``: ``([R,] T)`` ``||q||`` (constant unless the query is trained);
        * ``attention_on_topic``: ``([R,] T)`` mean attention on the topic word over the
          training sentences (nan without ``topic_mask``);
        * ``background_attention_cv``: ``([R,] T)`` spread of the attention on the background
          words of a sentence (standard deviation over mean, averaged over sentences; 0 means
          uniform);
        * ``scores`` (with ``record_all_scores``): ``([R,] T, vocab_size)`` every word's score;

        its metadata ``topic_word_ids`` and ``lr``; ``history.scaled_norms`` is
        ``||q|| ||w_tau||``.
    """
    single = isinstance(models, TopicAttention)
    models = _check_models(models)
    lr = _check_options(steps, lr, record_every, frozen, engine)
    per_model_data = _check_data(models, tokens, labels, topic_mask, mask)
    vocab = models[0].vocab_size
    topic_word_ids = _check_word_ids(topic_word_ids, "topic_word_ids", vocab)
    frozen_word_ids = _check_word_ids(frozen_word_ids, "frozen_word_ids", vocab)

    device = torch.device(device) if device is not None else models[0].embedding.weight.device
    stack = _StackedModels(models, device, frozen, frozen_word_ids)
    tokens, labels = tokens.to(device), labels.to(device)
    topic_mask = topic_mask.to(device) if topic_mask is not None else None
    mask = mask.to(device) if mask is not None else None
    engine = _pick_engine(engine, models, device)
    loss_fn = _make_loss_fn(engine, stack.base, len(models), tokens, labels, mask, per_model_data)
    n_records = len(range(0, steps, record_every)) + 1
    recorder = _Recorder(n_records, topic_word_ids.to(device), topic_mask, mask, record_all_scores)

    _fit(stack, loss_fn, recorder, steps, lr, record_every, on_record, single)
    stack.copy_back()
    return (models[0] if single else models), recorder.history(lr, single)


# --------------------------------------------------------------------------- early stopping


def snapshot_steps(
    max_steps: int, snapshot_every: int, dense_until: int = 0, dense_every: int = 1
) -> list[int]:
    """The steps :func:`train_with_early_stopping` takes snapshots at, after step 0: every
    ``dense_every`` steps up to ``dense_until``, then every ``snapshot_every`` steps, and the last
    step (chapter 3).

    >>> snapshot_steps(25, snapshot_every=10, dense_until=4, dense_every=2)
    [2, 4, 10, 20, 25]
    """
    dense = range(dense_every, min(dense_until, max_steps) + 1, dense_every)
    return sorted(
        set(dense) | set(range(snapshot_every, max_steps + 1, snapshot_every)) | {max_steps}
    )


def _check_batch(batch, name: str) -> None:
    for attr in ("tokens", "labels", "mask"):
        if not isinstance(getattr(batch, attr, None), torch.Tensor):
            raise TypeError(
                f"{name} must be a Batch (sst.pad_batch) with tokens, labels and mask, "
                f"got {type(batch).__name__}"
            )


@torch.no_grad()
def _mean_loss(model, batch, masked: bool) -> float:
    device = model.embedding.weight.device
    logits = model(batch.tokens.to(device), batch.mask.to(device) if masked else None)
    return float(F.cross_entropy(logits, batch.labels.to(device)))


class _Snapshots:
    """The ``on_record`` hook of :func:`train_with_early_stopping`: at each snapshot step, keep
    the losses, the scores and the tracked norms, remember the best state on the dev set, and
    stop once the dev loss has not improved for ``patience`` steps."""

    def __init__(self, model, dev, masked, marks, patience, track):
        self.model, self.dev, self.masked, self.marks = model, dev, masked, set(marks) | {0}
        self.patience, self.track = patience, track
        self.rows = {"steps": [], "train_loss": [], "dev_loss": [], "scores": [], "norms": []}
        self.best_step, self.best_dev, self.best_state = 0, float("inf"), None

    def __call__(self, step: int, history: History) -> bool:
        if step not in self.marks:
            return False
        model = self.model
        dev_loss = _mean_loss(model, self.dev, self.masked)
        for name, value in (
            ("steps", step),
            ("train_loss", float(history.loss[-1])),  # the loss of this step's parameters
            ("dev_loss", dev_loss),
            ("scores", model.scores().detach().cpu().clone()),
            (
                "norms",
                model.embedding.weight.detach()[self.track.to(model.embedding.weight.device)]
                .norm(dim=-1)
                .cpu(),
            ),
        ):
            self.rows[name].append(value)
        if dev_loss < self.best_dev:
            self.best_step, self.best_dev = step, dev_loss
            self.best_state = copy.deepcopy(model.state_dict())
        return self.patience is not None and step - self.best_step >= self.patience

    def run(self, seconds: float) -> History:
        rows = self.rows
        records = {
            "train_loss": torch.tensor(rows["train_loss"]),
            "dev_loss": torch.tensor(rows["dev_loss"]),
            "scores": torch.stack(rows["scores"]),
            "norms": torch.stack(rows["norms"]),
        }
        meta = {
            "track": self.track,
            "query_norm": float(self.model.query.norm()),
            "best_step": self.best_step,
            "last_step": rows["steps"][-1],
            "seconds": seconds,
        }
        return History(torch.tensor(rows["steps"]), records, meta)


def train_with_early_stopping(
    model: TopicAttention,
    train,
    dev,
    max_steps: int,
    lr: float = 0.1,
    *,
    masked: bool = True,
    snapshot_every: int = 100,
    dense_until: int = 0,
    dense_every: int = 1,
    patience: int | None = None,
    track: Sequence[int] = (),
) -> History:
    """Full-batch gradient descent with snapshots, early stopping on a dev set and a restore of
    the best snapshot (chapter 3).

    One :func:`train_full_batch` run, whose ``on_record`` hook takes the snapshots and decides
    when to stop.

    Parameters
    ----------
    model
        A ``TopicAttention``, trained in place.
    train, dev
        ``sst.Batch`` es (``tokens``, ``labels``, ``mask``): the training sentences and the ones
        that choose the best snapshot.
    max_steps, lr
        The most gradient steps and the learning rate.
    masked
        Pass each batch's mask to the model; ``False`` reproduces the paper's unmasked padding.
    snapshot_every, dense_until, dense_every
        Snapshots every ``dense_every`` steps up to ``dense_until``, then every
        ``snapshot_every`` steps (:func:`snapshot_steps`), and at step 0.
    patience
        In steps: stop once the dev loss has not improved for that long (checked at each
        snapshot; the paper's code uses 2000 epochs).  ``None``: run ``max_steps``.
    track
        Word ids whose embedding norms are recorded.

    Returns
    -------
    History
        The snapshots, an :class:`~course_lib.engine.History`: ``steps`` ``(T,)`` (step 0 is
        the initial state); records ``train_loss`` and ``dev_loss`` ``(T,)``, ``scores``
        ``(T, vocab_size)`` every word's score ``q . k_u``, ``norms`` ``(T, len(track))`` the
        embedding norms ``||w_u||`` of the tracked words; metadata ``track`` (ids),
        ``query_norm``, ``best_step`` (lowest dev loss), ``last_step`` (where training
        stopped: ``max_steps``, or earlier by early stopping) and ``seconds``.  In every case
        the model is left at the snapshot with the lowest dev loss, as the paper does before
        testing.
    """
    if not isinstance(model, TopicAttention):
        raise TypeError(f"model must be a TopicAttention, got {type(model).__name__}")
    _check_batch(train, "train")
    _check_batch(dev, "dev")
    check_int(max_steps, "max_steps", minimum=1)
    check_int(snapshot_every, "snapshot_every", minimum=1)
    check_int(dense_until, "dense_until", minimum=0)
    check_int(dense_every, "dense_every", minimum=1)
    if patience is not None:
        check_int(patience, "patience", minimum=1)
    if not isinstance(masked, bool):
        raise TypeError(f"masked must be a bool, got {type(masked).__name__}")
    track = _check_word_ids(list(track), "track", model.vocab_size)

    marks = snapshot_steps(max_steps, snapshot_every, dense_until, dense_every)
    record_every = math.gcd(*marks)  # every snapshot step is a recorded step
    snapshots = _Snapshots(model, dev, masked, marks, patience, track)
    start = time.perf_counter()
    train_full_batch(
        model,
        train.tokens,
        train.labels,
        max_steps,
        lr,
        mask=train.mask if masked else None,
        record_every=record_every,
        on_record=snapshots,
    )
    model.load_state_dict(snapshots.best_state)
    return snapshots.run(time.perf_counter() - start)


@torch.no_grad()
def accuracy(
    model: TopicAttention,
    tokens: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> float:
    """Fraction of sentences whose arg-max logit is the label (chapter 1)."""
    check_tokens(tokens, "tokens", vocab_size=model.vocab_size)
    device = model.embedding.weight.device
    logits = model(tokens.to(device), None if mask is None else mask.to(device))
    return float((logits.argmax(-1).cpu() == labels.cpu()).float().mean())


# --------------------------------------------------------------- a small run for chapter 2's figure


def sen_curve_run(
    m: int,
    query_std: float,
    *,
    n_sentences: int = 200,
    n_background: int = 200,
    steps: int = 500,
    lr: float = 0.3,
    classifier: str = "fixed",
    seed: int = 0,
    record_every: int = 5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train one small model on a fresh topic corpus and return the SEN curves of all its topic
    words (chapter 2, "the curve depends on m only"; used by the static figure and by
    ``widgets.sen_explorer``).  Nothing is frozen: this is the unrestricted model; compare the
    curves with ``identity.sen_norm_curve``.

    Parameters
    ----------
    m, query_std
        Background words per sentence, and the standard deviation of the query's coordinates.
    n_sentences, n_background, seed
        The corpus (``topic.make_topic_corpus``); ``seed`` also seeds the model.
    steps, lr, record_every, classifier
        The run (:func:`train_full_batch`) and the model's classifier.

    Returns
    -------
    (scores, scaled_norms)
        Each ``(T, n_topic_words)``: ``s_tau`` and ``||q|| ||w_tau||`` at the recorded steps.
    """
    check_int(m, "m", minimum=1)
    check_positive(query_std, "query_std")
    check_int(steps, "steps", minimum=1)
    corpus = make_topic_corpus(n_background=n_background, m=m, n_sentences=n_sentences, seed=seed)
    model = TopicAttention(
        corpus.vocab_size, corpus.n_topics, classifier=classifier, query_std=query_std, seed=seed
    )
    train = corpus.train
    _, history = train_full_batch(
        model,
        train.tokens,
        train.labels,
        steps,
        lr,
        topic_word_ids=corpus.topic_word_ids,
        record_every=record_every,
    )
    return history.topic_scores, history.scaled_norms
