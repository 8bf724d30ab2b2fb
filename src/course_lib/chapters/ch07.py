"""Chapter 7 (one structure behind both papers' laws): the recipes of its notebook and exercises.

The chapter tests the lemma's law ``Psi_n(theta) - c S`` on training runs of both papers'
models.  This module builds those runs and the measurements its cells print:

* ``LawRun``: one run seen through the lemma (logits, strengths, the law's ``c`` and ``n``);
* ``train_topic``: Part I's run in chapter 2's exact setting, by ``training.train_full_batch``
  (sections "Part I as a corollary", "Reach" and "Where the law stops holding");
* ``class_vectors``, ``mosaics`` and ``train_mosaics``: Part II's linear focus model trained by
  full-batch gradient descent, through ``mosaic_training``'s engine (section "Part II as a
  corollary" and the sections after it), and ``margin_orbit_error``;
* ``flow_strength``, ``origin_strength`` and ``first_integral_change``: the strengths of
  chapter 5's flows (section "The hard and LVML orbits");
* ``record_fits``: the JoMA script's prediction fitted at each record (section "JoMA");
* ``one_step_coupling``: exercise 7.1's measured constant of the law.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import nn

from .. import config, conservation, later_models, law
from .._validate import check_int, check_positive
from ..engine import History, Schedule, Stack
from ..flow import flow_rhs, solve_flow
from ..focus import LinearClassifier, LinearFocus
from ..mosaic import Mosaics
from ..mosaic_training import RunLosses, pair_run, train_epochs
from ..topic import TopicAttention, TopicCorpus
from ..training import train_full_batch
from .ch02 import background_word_ids

# -------------------------------------------------------------------------- one run, one law


class LawRun(NamedTuple):
    """One training run seen through the lemma (chapter 7): logits, strengths, c and n.

    ``time`` (T,) training time (learning rate x step); ``theta`` (T, k) the k logits (scores
    or focus logits); ``strength`` (T, k) their strengths S; ``coupling`` the law's c, a float
    or (T, 1) when it changes along the run; ``n_others`` the law's n.
    """

    time: torch.Tensor
    theta: torch.Tensor
    strength: torch.Tensor
    coupling: object
    n_others: float

    def invariant(self, n_others=None) -> torch.Tensor:
        """(T, k): the lemma's I = Psi_n(theta) - c S along the run (n: the run's, or given)."""
        n = self.n_others if n_others is None else n_others
        return law.lemma_invariant(self.theta, self.strength, self.coupling, n)

    def gains(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(T, k) each: Psi_n(theta) - Psi_n(theta(0)) and c (S - S(0))."""
        psi = law.attention_potential(self.theta, self.n_others)
        return psi - psi[:1], self.coupling * (self.strength - self.strength[:1])

    def error(self) -> torch.Tensor:
        """(T,): the law's largest error |I(t) - I(0)| over the k logits."""
        inv = self.invariant()
        return (inv - inv[:1]).abs().amax(dim=1)

    def drift(self, n_others=None) -> float:
        """max_t |I(t) - I(0)| over the run and the k logits (n: the run's, or given)."""
        n = self.n_others if n_others is None else n_others
        drift = law.lemma_drift(self.theta, self.strength, self.coupling, n)
        return float(torch.as_tensor(drift).max())


# ------------------------------------------------------------------------------ Part I's runs


def train_topic(
    corpus: TopicCorpus,
    lr: float,
    t_end: float,
    *,
    classifier: str = "fixed",
    train_query: bool = False,
    mask: torch.Tensor | None = None,
    background_score: float = 0.0,
    device=None,
) -> LawRun:
    """Attn-FC trained in chapter 2's exact setting, seen through the law (chapter 7, 7.4).

    The background words' embeddings are set to 0 and their keys to ``background_score``
    q / ||q||^2 (every background word then scores ``background_score``), their rows frozen;
    full-batch gradient descent (``training.train_full_batch``) for ``round(t_end / lr)``
    steps, recorded about 200 times.

    Parameters
    ----------
    corpus : a ``topic.TopicCorpus`` (its training split is trained on).
    lr, t_end : the learning rate and the training time (learning rate x steps).
    classifier, train_query : as in ``topic.TopicAttention``.
    mask : (n_train, length) bool, the real positions of a variable-length corpus, or None.
    background_score : the background words' common score b.
    device : where to train (default ``config.get_device()``).

    Returns
    -------
    A ``LawRun`` with theta the topic words' scores (T, k), S their squared embedding norms,
    c = ||q||^2 / 2 (a float; (T, 1) with a trained query) and n = ``corpus.m``.
    """
    if not isinstance(corpus, TopicCorpus):
        raise TypeError(f"corpus must be a topic.TopicCorpus, got {type(corpus).__name__}")
    lr, t_end = check_positive(lr, "lr"), check_positive(t_end, "t_end")
    background_score = float(background_score)
    background = background_word_ids(corpus)
    model = TopicAttention(
        corpus.vocab_size, corpus.n_topics, classifier=classifier, seed=0, train_query=train_query
    ).to(config.get_device() if device is None else device)
    with torch.no_grad():
        model.embedding.weight[background] = 0.0
        q = model.query.detach()
        model.keys.weight[background] = background_score * q / q.square().sum()
    steps = int(round(t_end / lr))
    _, history = train_full_batch(
        [model],
        corpus.train.tokens,
        corpus.train.labels,
        steps,
        lr,
        topic_word_ids=corpus.topic_word_ids,
        frozen_word_ids=background,
        record_every=max(1, steps // 200),
        mask=mask,
    )
    q2 = history.query_norm[0].double().square()  # (T,)
    return LawRun(
        time=history.steps.double() * lr,
        theta=history.topic_scores[0].double(),
        strength=history.topic_norms[0].double().square(),
        coupling=(q2 / 2)[:, None] if train_query else float(q2[0]) / 2,
        n_others=float(corpus.m),
    )


# ----------------------------------------------------------------------------- Part II's runs


def class_vectors(n_classes: int, overlap: float = 0.0) -> torch.Tensor:
    """(C, C + 1) float64: row y is the foreground x_y = e_y, plus ``overlap`` on the last
    coordinate (chapter 7, "Classes that share a direction").

    >>> class_vectors(2, overlap=0.5)
    tensor([[1.0000, 0.0000, 0.5000],
            [0.0000, 1.0000, 0.5000]], dtype=torch.float64)
    """
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    vectors = torch.eye(n_classes, n_classes + 1, dtype=torch.float64)
    vectors[:, -1] = float(overlap)
    return vectors


def _check_labels(labels) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.dtype != torch.long:
        raise TypeError("labels must be a 1-D torch.long tensor of classes")
    if labels.numel() == 0 or int(labels.min()) < 0:
        raise ValueError("labels must be non-empty class indices >= 0")
    return labels


def mosaics(
    labels: torch.Tensor,
    m: int,
    background_std: float = 0.0,
    overlap: float = 0.0,
    seed: int = 0,
) -> Mosaics:
    """Chapter 5's mosaics in float64 (chapter 7, "Part II as a corollary").

    Each mosaic holds m segments in R^(C + 1): the foreground x_y of its label (see
    ``class_vectors``) at a random position, the background 0 plus noise of standard deviation
    ``background_std`` on the last coordinate (the official code's noise level is 0.1).  The
    positions depend on ``seed`` only, not on the noise level.

    Parameters
    ----------
    labels : (N,) long, the classes y (C = labels.max() + 1).
    m : segments per mosaic.
    background_std, overlap : the background noise and the class vectors' common component.
    seed : the generator's seed.

    Returns
    -------
    ``mosaic.Mosaics``: segments (N, m, C + 1) float64, the labels, the foreground positions.
    """
    labels = _check_labels(labels)
    m = check_int(m, "m", minimum=2)
    background_std = check_positive(background_std, "background_std", allow_zero=True)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    n, n_classes = labels.numel(), max(2, int(labels.max()) + 1)
    segments = torch.zeros(n, m, n_classes + 1, dtype=torch.float64)
    segments[..., -1] = background_std * torch.randn(n, m, generator=gen, dtype=torch.float64)
    where = torch.randint(m, (n,), generator=gen)
    segments[torch.arange(n), where] = class_vectors(n_classes, overlap)[labels]
    return Mosaics(segments, labels, where)


class _LawRecorder:
    """``train_mosaics``' records, taken from the engine's stacked parameters (run 0) before
    training and after every ``every``-th step."""

    def __init__(self, params: dict, foreground, first_layer, every, linear):
        self.params, self.foreground, self.first = params, foreground, first_layer
        self.every, self.linear = every, linear
        self.nu, self.logit_sq, self.margin = [], [], []
        self.record()

    def record(self) -> None:
        with torch.no_grad():
            logits = self.foreground @ self.params[self.first][0].T  # row y is W x_y
            self.nu.append(self.foreground @ self.params["focus_models.net.weight"][0, 0])
            self.logit_sq.append(logits.square().sum(1))
            if self.linear:
                classes = torch.arange(len(self.foreground))
                self.margin.append(conservation.class_margin(logits, classes))

    def on_step(self, epoch: int, x, y, z) -> None:
        if (epoch + 1) % self.every == 0:  # the engine's epoch e ends optimizer step e + 1
            self.record()


def train_mosaics(
    loss: str,
    lr: float,
    t_end: float,
    labels: torch.Tensor,
    *,
    m: int,
    init: str = "zeros",
    train_bias: bool = False,
    background_std: float = 0.0,
    overlap: float = 0.0,
    classifier: nn.Module | None = None,
    record: int = 200,
) -> History:
    """Chapter 7's Part II runs: the linear focus and a classifier, full-batch gradient descent.

    The data are ``mosaics(labels, m, background_std, overlap)`` (seed 0); the focus is a
    zero-initialised ``LinearFocus``; the classifier a ``LinearClassifier`` (drawn after
    ``torch.manual_seed(0)`` with ``init``; its bias held at 0 unless ``train_bias``) or the
    float64 module given.  Training is ``mosaic_training``'s engine with one batch of all the
    mosaics and momentum 0, i.e. plain gradient descent, for ``round(t_end / lr)`` steps.

    Parameters
    ----------
    loss : "soft", "hard" or "lvml" (``law.LOSS_NAMES``).
    lr, t_end : the learning rate and the training time (learning rate x steps).
    labels : (N,) long, the mosaics' classes; C = labels.max() + 1.
    m : segments per mosaic.
    init, train_bias : the linear classifier's initialisation ("zeros" or "xavier") and
        whether its bias is trained (ignored when ``classifier`` is given).
    background_std, overlap : see ``mosaics``.
    classifier : a classifier module (float64) whose first layer is its first weight, or None.
    record : about how many records to take.

    Returns
    -------
    An ``engine.History`` recorded before training and after every ``every``-th step
    (``steps`` (T,)): records ``time`` (T,) float64 (learning rate x step), ``nu`` (T, C) the
    focus logits u . x_y, ``logit_sq`` (T, C) the squared norms ||W x_y||^2 of the
    classifier's first layer W and, for the linear classifier only, ``margin`` (T, C) its
    margins mu_y; metadata ``lr``.
    """
    if loss not in law.LOSS_NAMES:
        raise ValueError(f"loss must be one of {law.LOSS_NAMES}, got {loss!r}")
    lr, t_end = check_positive(lr, "lr"), check_positive(t_end, "t_end")
    record = check_int(record, "record", minimum=1)
    data = mosaics(labels, m, background_std, overlap)
    n_classes = data.n_classes
    focus = LinearFocus(n_classes + 1).double()
    linear = classifier is None
    if linear:
        torch.manual_seed(0)  # a random init="xavier" is then the same in every run
        classifier = LinearClassifier(n_classes + 1, n_classes, init=init).double()
        if not train_bias:
            with torch.no_grad():
                classifier.net.bias.zero_()
    elif not isinstance(classifier, nn.Module):
        raise TypeError(f"classifier must be a torch module or None, got {type(classifier)}")
    first = next(k for k, _ in classifier.named_parameters() if k.endswith("weight"))
    steps = int(round(t_end / lr))
    every = max(1, steps // record)
    stack = Stack({"focus_models": [focus], "classifiers": [classifier]})
    recorder = _LawRecorder(
        stack.params, class_vectors(n_classes, overlap), f"classifiers.{first}", every, linear
    )
    train_epochs(  # full batch, momentum 0: plain gradient descent, one epoch a step
        stack.params,
        RunLosses(pair_run(stack), stack.device),
        tuple(data),
        Schedule.constant([law.LOSS_NAMES.index(loss)]),
        epochs=steps,
        lr=torch.tensor([lr], dtype=torch.float64),
        batch_size=len(labels),
        momentum=0.0,
        held=["classifiers.net.bias"] if linear and not train_bias else [],
        on_step=recorder.on_step,
    )
    stack.write_back()
    steps = torch.arange(len(recorder.nu)) * every
    records = {
        "time": torch.arange(len(recorder.nu), dtype=torch.float64) * every * lr,
        "nu": torch.stack(recorder.nu),
        "logit_sq": torch.stack(recorder.logit_sq),
    }
    if linear:
        records["margin"] = torch.stack(recorder.margin)
    return History(steps, records, {"lr": lr})


def margin_orbit_error(run: LawRun, margin: torch.Tensor, n_classes: int) -> float:
    """max |Psi gained - (C - 1)/(2C) mu^2 gained| over a run (chapter 7, "Beyond chapter 5's
    symmetric manifold"): the soft orbit's error when written with the margins mu (T, C)."""
    if not isinstance(run, LawRun):
        raise TypeError(f"run must be a LawRun, got {type(run).__name__}")
    soft = conservation.soft_orbit_strength(margin, check_int(n_classes, "n_classes", 2))
    return float((run.gains()[0] - (soft - soft[:1])).abs().max())


# -------------------------------------------------------------- the strengths of chapter 5's flows


class FlowStrength(NamedTuple):
    """The strength G(mu) of one of chapter 5's flows, measured from its rates (chapter 7):
    ``strength`` on the grid of mu; ``spread`` how much h = G' depends on nu (0 when the lemma
    applies); ``increasing`` whether mu increases along the flow from (0, 0) (then some G
    exists); ``flow_gap`` max |Psi(nu) - G(mu)| / max Psi along that flow."""

    strength: np.ndarray
    spread: float
    increasing: bool
    flow_gap: float


def flow_strength(method: str, mu_grid, t, *, m: int, C: int) -> FlowStrength:
    """Measure a flow's strength with ``conservation.strength_from_rates`` and follow
    Psi_(m-1)(nu) - G(mu) along ``flow.solve_flow(method, t)`` (chapter 7, "The hard and LVML
    orbits"); ``mu_grid`` (K,) increasing from 0, ``t`` (T,) the times of the flow."""
    m, C = check_int(m, "m", minimum=2), check_int(C, "C", minimum=2)
    mu_grid = np.asarray(mu_grid, dtype=float)
    rhs = flow_rhs(method, m=m, C=C)
    out = conservation.strength_from_rates(
        lambda mu, nu: tuple(rhs(0.0, np.stack([mu, nu]))), mu_grid, m - 1
    )
    mu_t, nu_t = solve_flow(method, t, m=m, C=C)
    psi_t = law.attention_potential(nu_t, m - 1)
    gap = np.abs(psi_t - np.interp(mu_t, mu_grid, out.strength)).max() / psi_t.max()
    increasing = bool(np.all(np.diff(mu_t) > 0))
    return FlowStrength(out.strength, float(out.spread), increasing, float(gap))


def origin_strength(rhs: Callable, mu_grid, n_others: float) -> np.ndarray:
    """G(mu) = Psi_n(nu(mu)) on ``mu_grid`` (K,) along the orbit of ``rhs`` from (0, 0), solved
    with mu as the clock (chapter 7, the first-integral check); ``rhs(t, [mu, nu])`` gives
    (dmu/dt, dnu/dt) and dmu/dt must stay positive."""
    if not callable(rhs):
        raise TypeError("rhs must be callable as rhs(t, [mu, nu])")
    mu_grid = np.asarray(mu_grid, dtype=float)

    def slope(mu, nu):
        dmu, dnu = rhs(0.0, [mu, nu[0]])
        return [dnu / dmu]

    sol = solve_ivp(slope, (0, mu_grid[-1]), [0.0], t_eval=mu_grid, rtol=1e-11, atol=1e-12)
    return law.attention_potential(sol.y[0], check_positive(n_others, "n_others"))


def first_integral_change(
    rhs: Callable, starts: Sequence, t, mu_grid, n_others: float
) -> tuple[float, float]:
    """How far Psi_n(nu) - G(mu), with G from the orbit through (0, 0), changes along paths of
    ``rhs`` from other ``starts`` (mu0, nu0) over the times ``t`` (chapter 7): the largest
    change over max Psi, worst start; and the largest mu the paths reach (G is known up to
    ``mu_grid[-1]``)."""
    if not starts:
        raise ValueError("starts must name at least one start (mu0, nu0)")
    t = np.asarray(t, dtype=float)
    G_origin = origin_strength(rhs, mu_grid, n_others)
    worst, mu_reached = 0.0, 0.0
    for start in starts:
        path = solve_ivp(
            rhs, (t[0], t[-1]), list(start), t_eval=t, method="LSODA", rtol=1e-10, atol=1e-12
        )
        mu_p, nu_p = path.y
        mu_reached = max(mu_reached, float(mu_p.max()))
        psi_p = law.attention_potential(nu_p, n_others)
        integral = psi_p - np.interp(mu_p, np.asarray(mu_grid, dtype=float), G_origin)
        worst = max(worst, float(np.abs(integral - integral[0]).max() / psi_p.max()))
    return worst, mu_reached


# -------------------------------------------------------------------------------------- JoMA


class RecordFits(NamedTuple):
    """Per record (T,): the least-squares slope of z on the prediction and their normalised
    correlation (``later_models``' fits, chapter 7's JoMA section)."""

    slope: torch.Tensor
    correlation: torch.Tensor


def record_fits(z: torch.Tensor, z_hat: torch.Tensor) -> RecordFits:
    """Fit each record's logits z (T, K) on its prediction z_hat (T, K) (chapter 7, "JoMA")."""
    if not isinstance(z, torch.Tensor) or not isinstance(z_hat, torch.Tensor):
        raise TypeError("z and z_hat must be torch tensors (T, K)")
    if z.shape != z_hat.shape or z.dim() != 2:
        raise ValueError(f"z and z_hat must have one shape (T, K), got {z.shape}, {z_hat.shape}")
    pairs = list(zip(z, z_hat))
    return RecordFits(
        torch.tensor([later_models.least_squares_slope(a, b) for a, b in pairs]),
        torch.tensor([later_models.normalised_correlation(a, b) for a, b in pairs]),
    )


# ---------------------------------------------------------------------------- exercise 7.1


def one_step_coupling(
    corpus: TopicCorpus,
    *,
    temperature: float,
    lr_key: float,
    lr_embedding: float,
    warmup_steps: int = 300,
    warmup_lr: float = 0.2,
) -> tuple[float, torch.Tensor]:
    """Exercise 7.1's measurement: the law's c after one gradient step with a temperature and
    two learning rates.

    Attn-FC (fixed classifier, seed 0, float64) is trained ``warmup_steps`` steps in chapter
    2's exact setting (background embeddings at 0, their rows frozen) so that the topic words
    have embeddings; then the query is divided by the temperature (theta = q . k / T) and ONE
    step of gradient descent moves the topic words' keys at ``lr_key`` and their embeddings
    at ``lr_embedding``.

    Parameters
    ----------
    corpus : a ``topic.TopicCorpus`` with one topic word per sentence.
    temperature, lr_key, lr_embedding : T, eta_k and eta_w of the step.
    warmup_steps, warmup_lr : the training before the step.

    Returns
    -------
    ``(query_norm_sq, measured)``: ||q||^2 before the division by T, and (k,) the measured
    c = d theta / ((1 - a(theta)) d||w||^2) of each topic word (``law.lemma_coupling``).
    """
    if not isinstance(corpus, TopicCorpus):
        raise TypeError(f"corpus must be a topic.TopicCorpus, got {type(corpus).__name__}")
    temperature = check_positive(temperature, "temperature")
    lr_key = check_positive(lr_key, "lr_key")
    lr_embedding = check_positive(lr_embedding, "lr_embedding")
    steps = check_int(warmup_steps, "warmup_steps", minimum=0)
    topic_words = corpus.topic_word_ids
    background = background_word_ids(corpus)
    model = TopicAttention(corpus.vocab_size, corpus.n_topics, classifier="fixed", seed=0)
    model = model.double()  # one tiny step: double precision keeps its increments exact
    with torch.no_grad():
        model.embedding.weight[background] = 0.0
    train = corpus.train
    if steps:
        [model], _ = train_full_batch(
            [model], train.tokens, train.labels, steps, warmup_lr, frozen_word_ids=background
        )
    query_norm_sq = float(model.query.square().sum())
    with torch.no_grad():
        model.query /= temperature  # theta = (q / T) . k
    theta = model.scores().detach()[topic_words]
    norm_sq = model.embedding.weight.detach()[topic_words].square().sum(-1)
    loss = nn.functional.cross_entropy(model(train.tokens), train.labels)
    grad_keys, grad_embedding = torch.autograd.grad(
        loss, [model.keys.weight, model.embedding.weight]
    )
    with torch.no_grad():  # background rows stay frozen: update the topic words only
        model.keys.weight[topic_words] -= lr_key * grad_keys[topic_words]
        model.embedding.weight[topic_words] -= lr_embedding * grad_embedding[topic_words]
    d_theta = model.scores().detach()[topic_words] - theta
    d_norm_sq = model.embedding.weight.detach()[topic_words].square().sum(-1) - norm_sq
    return query_norm_sq, law.lemma_coupling(d_theta, d_norm_sq, theta, corpus.m)
