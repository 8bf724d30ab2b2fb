"""The two corollaries of chapter 7's lemma (course_lib.conservation), checked against simulation
and against both papers' special cases: Lu et al.'s identity (chapter 2) and the chapter-5 orbits.
The lemma itself is tested in tests/test_law.py."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.integrate import solve_ivp

from course_lib import conservation as cons
from course_lib import identity, law, topic
from course_lib.flow import flow_rhs, orbit_potential, solve_flow
from course_lib.law import attention_potential
from course_lib.topic import TopicAttention, make_topic_corpus
from course_lib.training import train_full_batch


def test_docstring_examples_run():
    failures, tried = doctest.testmod(cons, optionflags=doctest.ELLIPSIS)
    assert tried >= 8 and failures == 0


# --------------------------------------------------------------------------- Part I


def test_topic_invariant_is_lu_et_al_identity_rescaled():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(6, 4, generator=gen, dtype=torch.float64) * 2
    w2 = torch.rand(6, 4, generator=gen, dtype=torch.float64) * 5
    for m in (20, 3):
        ours = cons.topic_invariant(s, w2, 1.7, m)
        theirs = identity.sen_invariant(s, w2, 1.7, m)
        assert torch.allclose(theirs, -2 * ours - 2 / m, rtol=1e-12, atol=1e-12)
    # copies k: the same as copies 1 with m / k background words
    copied = cons.topic_invariant(s, w2, 1.7, 20, copies=4)
    assert torch.allclose(copied, cons.topic_invariant(s, w2, 1.7, 5), rtol=1e-12)


def _frozen_background_run(corpus, lr, t_end, classifier="fixed", mask=None):
    background = torch.arange(corpus.n_topics * corpus.words_per_topic, corpus.vocab_size)
    model = TopicAttention(corpus.vocab_size, corpus.n_topics, classifier=classifier, seed=0)
    with torch.no_grad():
        model.embedding.weight[background] = 0.0
    _, history = train_full_batch(
        [model],
        corpus.train.tokens,
        corpus.train.labels,
        round(t_end / lr),
        lr,
        topic_word_ids=corpus.topic_word_ids,
        frozen_word_ids=background,
        record_every=5,
        mask=None if mask is None else mask[: corpus.n_train],
    )
    return (
        history.topic_scores[0].double(),
        history.topic_norms[0].double().square(),
        float(history.query_norm[0, 0]) ** 2,
    )


def test_part_one_law_on_training_drifts_like_lr():
    corpus = make_topic_corpus(n_background=100, n_sentences=120, seed=0)
    drifts = []
    for lr in (0.2, 0.1):
        s, w2, q2 = _frozen_background_run(corpus, lr, 100.0)
        assert float(s.max()) > 2.0  # the scores really grew
        drifts.append(law.lemma_drift(s, w2, q2 / 2, corpus.m).max().item())
    assert 1.8 < drifts[0] / drifts[1] < 2.2  # O(lr): the flow conserves it exactly
    assert drifts[1] < 5e-3


def test_repeated_topic_word_obeys_the_law_with_m_over_k():
    corpus = topic.make_repeated_topic_corpus(3, n_background=100, n_sentences=120, seed=0)
    drift = {}
    for lr in (0.2, 0.1):
        s, w2, q2 = _frozen_background_run(corpus, lr, 60.0)
        drift[lr] = float(torch.as_tensor(law.lemma_drift(s, w2, q2 / 2, corpus.m / 3)).max())
        wrong = float(torch.as_tensor(law.lemma_drift(s, w2, q2 / 2, corpus.m)).max())
        assert wrong > 30 * drift[lr]  # n = m (one copy) is not the law here
        as_topic = cons.topic_invariant(s, w2, q2, corpus.m, copies=3)
        assert float((as_topic - as_topic[:1]).abs().max()) == pytest.approx(drift[lr], rel=1e-9)
    assert 1.8 < drift[0.2] / drift[0.1] < 2.2


# --------------------------------------------------------------------------- Part II


def test_soft_orbit_is_the_segment_law_on_the_symmetric_manifold():
    for m, C, t_end in ((5, 3, 400.0), (20, 20, 1000.0)):
        mu, nu = solve_flow("soft", np.linspace(0, t_end, 201), m=m, C=C)
        assert nu[-1] > 2
        lhs = attention_potential(nu, m - 1)
        assert np.allclose(lhs, cons.soft_orbit_strength(mu, C), rtol=1e-6, atol=1e-9)
        inv = cons.segment_invariant(nu, cons.symmetric_logit_norm_sq(mu, C), m)
        assert np.abs(inv).max() < 1e-6 * lhs.max()
        # a different orbit (e.g. c = (C - 1)/C, no 1/2) is far off
        assert np.abs(lhs - 2 * cons.soft_orbit_strength(mu, C)).max() > 0.3 * lhs.max()


def _linear_run(method, lr, t_end, labels, m, C, W0=None, record_every=10):
    """Full-batch GD on the linear focus / linear classifier (bias-free) of chapter 5, data with
    foreground e_y and zero background; returns per-class (nu, ||W e_y||^2, mu) over time."""
    N = labels.numel()
    gen = torch.Generator().manual_seed(1)
    pos = torch.randint(m, (N,), generator=gen)
    X = torch.zeros(N, m, C, dtype=torch.float64)
    X[torch.arange(N), pos, labels] = 1.0
    u = torch.zeros(C, dtype=torch.float64, requires_grad=True)
    W = (torch.zeros(C, C, dtype=torch.float64) if W0 is None else W0.clone()).requires_grad_()
    out = []
    for step in range(round(t_end / lr) + 1):
        if step % record_every == 0:
            with torch.no_grad():
                cols = W.detach().T  # row y = logits of e_y
                margin = cons.class_margin(cols, torch.arange(C))
                out.append((u.detach().clone(), cols.square().sum(1), margin))
        a = torch.softmax(X @ u, 1)  # (N, m)
        if method == "soft":
            loss = F.cross_entropy(torch.einsum("nm,nmc->nc", a, X) @ W.T, labels)
        else:
            index = labels[:, None, None].expand(N, m, 1)
            logq = torch.log_softmax(X @ W.T, -1).gather(-1, index).squeeze(-1)
            if method == "hard":
                loss = -(a * logq).sum(1).mean()
            else:
                loss = -torch.logsumexp(torch.log(a) + logq, 1).mean()
        gu, gW = torch.autograd.grad(loss, [u, W])
        with torch.no_grad():
            u -= lr * gu
            W -= lr * gW
    return [torch.stack([o[i] for o in out]) for i in range(3)]


def test_segment_law_holds_per_class_for_unbalanced_data_and_random_classifier():
    m, C = 5, 3
    labels = torch.tensor([0] * 30 + [1] * 20 + [2] * 10)  # unbalanced: not the population flow
    W0 = torch.randn(C, C, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    drifts = []
    for lr in (0.4, 0.2):
        nu, logit_sq, _ = _linear_run("soft", lr, 200.0, labels, m, C, W0=W0)
        assert float(nu[-1].min()) > 1.0
        inv = cons.segment_invariant(nu, logit_sq, m)
        drifts.append(float((inv - inv[:1]).abs().max()))
    assert 1.7 < drifts[0] / drifts[1] < 2.3
    # a relative error well below 1 % of the potential the logits reached
    assert drifts[1] < 2e-3 * float(attention_potential(nu, m - 1).max())


def _rates(method, m, C):
    f = flow_rhs(method, m=m, C=C)
    return lambda mu, nu: tuple(f(0.0, np.stack([mu, nu])))


@pytest.mark.parametrize("m, C", [(5, 3), (20, 10)])
def test_strength_from_rates_recovers_all_three_orbits(m, C):
    mu = np.linspace(0, 8, 4001)
    assert np.allclose(
        cons.soft_orbit_strength(mu, C), orbit_potential("soft", mu, C=C), rtol=1e-12
    )
    for method in ("soft", "hard", "lvml"):
        expected = orbit_potential(method, mu, C=C)  # chapter 5's closed forms
        out = cons.strength_from_rates(_rates(method, m, C), mu, m - 1)
        assert out.spread < 1e-9, method  # the coupling does not depend on nu: the lemma applies
        assert np.allclose(out.strength, expected, rtol=1e-5, atol=1e-7), method
        # and the solver's path lies on that orbit
        t = np.linspace(0, 300, 61)
        mu_t, nu_t = solve_flow(method, t, m=m, C=C)
        G_t = np.interp(mu_t, mu, out.strength)
        assert np.allclose(attention_potential(nu_t, m - 1), G_t, rtol=1e-4, atol=1e-6), method


def test_strength_from_rates_detects_a_broken_hypothesis():
    # theta' = (1 - a)^2 mu': the coupling depends on theta, so no orbit of this form exists
    rates = lambda mu, th: (np.ones_like(mu), (4 / (np.exp(th) + 4)) ** 2 * np.ones_like(mu))  # noqa: E731
    out = cons.strength_from_rates(rates, np.linspace(0, 1, 11), 4)
    assert out.spread > 0.5


def _origin_orbit_strength(rhs, mu, n_others):
    """G(mu) = Psi_n(theta(mu)) along the path of ``rhs`` from (0, 0), with mu as the clock."""
    sol = solve_ivp(
        lambda x, th: [rhs(0.0, [x, th[0]])[1] / rhs(0.0, [x, th[0]])[0]],
        (mu[0], mu[-1]),
        [0.0],
        t_eval=mu,
        rtol=1e-11,
        atol=1e-12,
    )
    return attention_potential(sol.y[0], n_others)


def _first_integral_change(rhs, mu, G, n_others, start):
    """max |Psi_n(theta) - G(mu) - its start value| / max Psi_n along the path from ``start``."""
    t = np.linspace(0, 300, 301)
    path = solve_ivp(rhs, (0, 300), start, t_eval=t, method="LSODA", rtol=1e-10, atol=1e-12)
    assert path.y[0].max() < mu[-1]
    psi = attention_potential(path.y[1], n_others)
    integral = psi - np.interp(path.y[0], mu, G)
    return float(np.abs(integral - integral[0]).max() / psi.max())


def test_h_of_mu_alone_gives_a_first_integral_from_every_start():
    # chapter 7: with h = h(mu), Psi(nu) - G(mu) is conserved from any start, not only from (0, 0);
    # a flow whose h depends on nu has an orbit from (0, 0) too, but no such first integral
    m, C = 5, 3
    mu = np.linspace(0, 12, 6001)
    soft = flow_rhs("soft", m=m, C=C)

    def extra(t, y):  # one more factor (1 - alpha) in the focus's speed: h depends on nu
        dmu, dnu = soft(t, y)
        return [dmu, dnu * (m - 1) / (np.exp(y[1]) + m - 1)]

    starts = ([1.0, 2.0], [2.0, -1.0])
    for method in ("soft", "hard", "lvml"):
        rhs = flow_rhs(method, m=m, C=C)
        out = cons.strength_from_rates(_rates(method, m, C), mu, m - 1)
        for start in starts:
            assert _first_integral_change(rhs, mu, out.strength, m - 1, start) < 1e-5, method
    rates = lambda x, th: tuple(np.asarray(v) for v in extra(0.0, np.stack([x, th])))  # noqa: E731
    assert cons.strength_from_rates(rates, mu, m - 1).spread > 0.1
    G_origin = _origin_orbit_strength(extra, mu, m - 1)
    assert _first_integral_change(extra, mu, G_origin, m - 1, [0.0, 0.0]) < 1e-5  # its own orbit
    assert min(_first_integral_change(extra, mu, G_origin, m - 1, s) for s in starts) > 0.05


def test_hard_and_lvml_orbits_hold_per_class_in_gradient_descent():
    m, C = 5, 3
    labels = torch.tensor([0] * 30 + [1] * 20 + [2] * 10)
    for method in ("hard", "lvml"):
        gaps = []
        for lr in (0.5, 0.25):
            nu, _, mu = _linear_run(method, lr, 200.0, labels, m, C)
            assert float(nu[-1].min()) > 2.0
            gap = attention_potential(nu.numpy(), m - 1) - orbit_potential(method, mu.numpy(), C=C)
            gaps.append(float(np.abs(gap).max()))
        assert 1.7 < gaps[0] / gaps[1] < 2.3, method
        assert gaps[1] < 0.02 * float(attention_potential(nu.numpy(), m - 1).max()), method


def test_class_margin_and_symmetric_norm():
    logits = torch.tensor([[2.0, -1.0, -1.0], [0.5, 1.5, -2.0]])
    expected = torch.tensor([3.0, 1.5 - (-1.5) / 2])
    assert torch.allclose(cons.class_margin(logits, torch.tensor([0, 1])), expected)
    mu = 3.0
    a, b = 2 * mu / 3, -mu / 3
    assert cons.symmetric_logit_norm_sq(mu, 3) == pytest.approx(a * a + 2 * b * b)
    with pytest.raises(ValueError, match="labels must have shape"):
        cons.class_margin(logits, torch.tensor([0]))
    with pytest.raises(ValueError, match="class ids"):
        cons.class_margin(logits, torch.tensor([0, 3]))


# --------------------------------------------------------------------------- bad input


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="embed_norm_sq"):
        cons.topic_invariant(0.0, -1.0, 1.0, 20)
    with pytest.raises(ValueError, match="copies"):
        cons.topic_invariant(0.0, 1.0, 1.0, 20, copies=0)
    with pytest.raises(ValueError, match="m must be >= 2"):
        cons.segment_invariant(0.0, 1.0, 1)
    with pytest.raises(TypeError, match="rates"):
        cons.strength_from_rates(3, np.linspace(0, 1, 5), 4)
    with pytest.raises(ValueError, match="increasing"):
        cons.strength_from_rates(lambda mu, th: (mu, mu), np.array([0.0, 0.0, 1.0]), 4)
    with pytest.raises(ValueError, match="grid's shape"):
        cons.strength_from_rates(lambda mu, th: (1.0, 1.0), np.linspace(0, 1, 5), 4)
    with pytest.raises(ValueError, match="dmu/dt = 0"):
        cons.strength_from_rates(lambda mu, th: (0 * mu, mu), np.linspace(0, 1, 5), 4)


def test_the_kind_rule_of_the_law():
    theta = torch.linspace(0, 1, 5, dtype=torch.float32)
    out = cons.topic_invariant(theta, theta, 1.0, 4)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert isinstance(cons.topic_invariant(np.zeros(3), np.zeros(3), 1.0, 20), np.ndarray)
    assert type(cons.topic_invariant(0.5, 1.0, 1.0, 20)) is float
    assert type(cons.segment_invariant(np.float32(0.5), 1.0, 5)) is float


def _two_layer_soft_run(lr, t_end, scale, background_std, m=4, C=3, hidden=6, record_every=10):
    """Soft attention, foreground scale * e_y, a two-layer classifier with biases after a linear
    first layer W: the segment law is about ||W x_y||^2, whatever follows W."""
    gen = torch.Generator().manual_seed(5)
    labels = torch.tensor([0] * 20 + [1] * 14 + [2] * 8)
    N = labels.numel()
    pos = torch.randint(m, (N,), generator=gen)
    X = torch.zeros(N, m, C + 1, dtype=torch.float64)
    X[..., -1] = background_std * torch.randn(N, m, generator=gen, dtype=torch.float64)
    X[torch.arange(N), pos] = 0.0
    X[torch.arange(N), pos, labels] = scale
    u = torch.zeros(C + 1, dtype=torch.float64, requires_grad=True)
    W = (0.5 * torch.randn(hidden, C + 1, generator=gen, dtype=torch.float64)).requires_grad_()
    b1 = torch.zeros(hidden, dtype=torch.float64, requires_grad=True)
    V = (0.5 * torch.randn(C, hidden, generator=gen, dtype=torch.float64)).requires_grad_()
    b2 = torch.zeros(C, dtype=torch.float64, requires_grad=True)
    params = [u, W, b1, V, b2]
    nus, sq = [], []
    for step in range(round(t_end / lr) + 1):
        if step % record_every == 0:
            with torch.no_grad():
                fg = scale * torch.eye(C, C + 1, dtype=torch.float64)  # (C, d): x_y
                nus.append(fg @ u)
                sq.append((fg @ W.T).square().sum(1))
        a = torch.softmax(X @ u, 1)
        context = torch.einsum("nm,nmd->nd", a, X)
        loss = F.cross_entropy(torch.relu(context @ W.T + b1) @ V.T + b2, labels)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= lr * g
    return torch.stack(nus), torch.stack(sq), m


def test_segment_law_needs_no_unit_segments_and_no_linear_head():
    drifts = []
    for lr in (0.2, 0.1):
        nu, sq, m = _two_layer_soft_run(lr, 60.0, scale=1.7, background_std=0.0)
        assert float(nu[-1].max()) > 1.5
        inv = cons.segment_invariant(nu, sq, m)
        drifts.append(float((inv - inv[:1]).abs().max()))
        wrong = attention_potential(nu, m - 1) - 0.5 * 1.7**2 * sq  # a coupling ||x||^2 / 2
        assert float((wrong - wrong[:1]).abs().max()) > 30 * drifts[-1]
    assert 1.7 < drifts[0] / drifts[1] < 2.3


def test_segment_law_fails_with_a_noisy_background():
    drifts = []
    for lr in (0.2, 0.1):
        nu, sq, m = _two_layer_soft_run(lr, 60.0, scale=1.0, background_std=0.5)
        inv = cons.segment_invariant(nu, sq, m)
        drifts.append(float((inv - inv[:1]).abs().max()))
    exact = []
    for lr in (0.2, 0.1):
        nu, sq, m = _two_layer_soft_run(lr, 60.0, scale=1.0, background_std=0.0)
        inv = cons.segment_invariant(nu, sq, m)
        exact.append(float((inv - inv[:1]).abs().max()))
    assert drifts[0] / drifts[1] < 1.3  # halving the step does not remove it: the law is false here
    assert drifts[1] > 10 * exact[1]


def _noisy_linear_invariant(background_std, noise_column, lr=0.4, t_end=100.0, m=5, C=3):
    """Soft attention, linear focus and bias-free linear classifier started at 0 except the
    classifier's column that reads the noise coordinate (``noise_column`` times a fixed vector);
    background segments carry noise of std ``background_std`` there.  Returns the change of the
    segment invariant per class over time, (T, C)."""
    gen = torch.Generator().manual_seed(2)
    labels = torch.tensor([0] * 30 + [1] * 20 + [2] * 10)
    N = labels.numel()
    X = torch.zeros(N, m, C + 1, dtype=torch.float64)
    X[..., -1] = background_std * torch.randn(N, m, generator=gen, dtype=torch.float64)
    pos = torch.randint(m, (N,), generator=gen)
    X[torch.arange(N), pos] = torch.eye(C, C + 1, dtype=torch.float64)[labels]
    u = torch.zeros(C + 1, dtype=torch.float64, requires_grad=True)
    W = torch.zeros(C, C + 1, dtype=torch.float64)
    W[:, -1] = noise_column * torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64)
    W.requires_grad_()
    inv = []
    for step in range(round(t_end / lr) + 1):
        if step % 10 == 0:
            with torch.no_grad():
                inv.append(cons.segment_invariant(u[:C], W[:, :C].T.square().sum(1), m))
        a = torch.softmax(X @ u, 1)
        loss = F.cross_entropy(torch.einsum("nm,nmd->nd", a, X) @ W.T, labels)
        gu, gW = torch.autograd.grad(loss, [u, W])
        with torch.no_grad():
            u -= lr * gu
            W -= lr * gW
    inv = torch.stack(inv)
    return inv - inv[:1]


def test_background_noise_breaks_the_segment_law_at_second_order_from_a_zero_start():
    # chapter 7: the noise coordinate is orthogonal to every class vector and the weights that
    # read it start at 0, so the violation is O(sigma^2); started away from 0 it is O(sigma)
    ratios = {}
    for column in (0.0, 1.0):
        exact = _noisy_linear_invariant(0.0, column)
        small, large = (
            float((_noisy_linear_invariant(s, column) - exact).abs().max()) for s in (0.05, 0.1)
        )
        assert small > 0
        ratios[column] = large / small
    assert 3.4 < ratios[0.0] < 4.6  # halving sigma quarters it
    assert ratios[1.0] < 2.5  # first order: a quadratic law would give about 4


def test_chapter_7_figures():
    import matplotlib

    matplotlib.use("Agg")
    from course_lib import plotting

    t = torch.linspace(0, 10, 11)
    gain = torch.linspace(0, 2, 11)[:, None].repeat(1, 3)
    fig = plotting.one_law(
        {"Part I: a": (t, gain, gain), "Part II: b": (t, gain, gain)},
        {"Part I, lr 0.2": (t, gain[:, 0] * 1e-3), "Part I, lr 0.1": (t, gain[:, 0] * 5e-4)},
        colours={"Part I, lr 0.2": "r", "Part I, lr 0.1": "r"},
    )
    left, right = fig.axes
    assert len(left.lines) == 1 + 2 * 3  # the diagonal, then one marker line per logit
    styles = [line.get_linestyle() for line in right.lines]
    assert styles == ["--", "-"]  # the larger step dashed, in the same colour
    assert right.get_yscale() == "log"
    s = torch.linspace(0, 2, 20)[:, None]
    fig = plotting.repeated_word_curves({2: (s, identity.sen_norm_curve(s, 10.0))}, 20)
    assert len(fig.axes[0].lines) == 3  # the run, its predicted curve, the paper's curve
    matplotlib.pyplot.close("all")


# --------------------------------------------------------------------------- a third corollary


def test_gate_invariant_is_conserved_by_the_flow_and_not_with_a_wrong_coupling():
    sol = solve_ivp(
        lambda t, y: list(cons.gate_rates(y[0], y[1])),
        (0, 12),
        [0.5, -2.0],
        rtol=1e-11,
        atol=1e-12,
        t_eval=np.linspace(0, 12, 121),
    )
    theta, gap = sol.y
    inv = cons.gate_invariant(theta, gap)
    assert np.abs(inv - inv[0]).max() < 1e-8
    assert theta.min() < 0.5 - 0.1 and theta[-1] > 0.5 + 0.1  # falls, then rises
    wrong = law.lemma_invariant(theta, gap**2, 0.5, 1.0)  # c = 1/2 instead of 1/4
    assert np.abs(wrong - wrong[0]).max() > 0.1


def test_gate_descent_drift_is_first_order_in_the_step():
    drifts = []
    for lr, steps in ((0.1, 100), (0.05, 200)):
        theta, gap = cons.gate_descent(0.0, -2.0, lr, steps)
        inv = cons.gate_invariant(theta, gap)
        drifts.append(np.abs(inv - inv[0]).max())
    assert 1.8 < drifts[0] / drifts[1] < 2.2


def test_gate_rates_and_descent_check_arguments():
    with pytest.raises(ValueError, match="lr"):
        cons.gate_descent(0.0, 1.0, -0.1, 3)
    with pytest.raises(TypeError, match="steps"):
        cons.gate_descent(0.0, 1.0, 0.1, 2.5)
    d_theta, d_gap = cons.gate_rates(np.array([0.0, 1.0]), np.array([1.0, 0.0]))
    assert np.allclose(d_theta, [0.25, 0.0]) and np.allclose(d_gap[0], 1.0)
