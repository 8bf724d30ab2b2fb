"""course_lib.chapters.ch07: chapter 7's run builders and measurements."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import conservation, law
from course_lib.chapters import ch07
from course_lib.flow import flow_rhs
from course_lib.focus import LinearClassifier, LinearFocus, MLPClassifier
from course_lib.losses import hard_attention_loss, soft_attention_loss
from course_lib.topic import make_repeated_topic_corpus, make_topic_corpus

LABELS = torch.tensor([0, 1, 2, 0, 1, 2, 2, 1, 0, 0, 1, 2])


def _exact_run(coupling=0.5, n_others=4.0):
    """A run on the law: theta from Psi_n(theta) = c S, two logits."""
    strength = torch.linspace(0, 3, 7, dtype=torch.float64)[:, None] * torch.tensor([1.0, 2.0])
    theta = law.inverse_attention_potential(coupling * strength, n_others)
    return ch07.LawRun(strength[:, 0], theta, strength, coupling, n_others)


def test_law_run_on_the_law_has_no_drift_and_equal_gains():
    run = _exact_run()
    psi_gain, strength_gain = run.gains()
    assert torch.allclose(psi_gain, strength_gain, atol=1e-10)
    assert run.drift() < 1e-10 and float(run.error().max()) < 1e-10
    assert run.error().shape == (7,) and run.invariant().shape == (7, 2)
    assert run.drift(8.0) > 0.1  # a wrong n breaks it


def _reference_descent(loss_fn, lr, steps, labels, classifier=None, record_every=1):
    """The loop chapter 7's notebook had: plain gradient descent, bias held at zero."""
    data = ch07.mosaics(labels, 5)
    focus = LinearFocus(4).double()
    if classifier is None:
        torch.manual_seed(0)
        classifier = LinearClassifier(4, 3).double()
        classifier.net.bias.requires_grad_(False).zero_()
    params = [p for p in (*focus.parameters(), *classifier.parameters()) if p.requires_grad]
    nu = []
    for step in range(steps + 1):
        if step % record_every == 0:
            nu.append(ch07.class_vectors(3) @ focus.weight.detach())
        loss = loss_fn(focus.attention(data.segments), data.segments, labels, classifier)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= lr * g
    return torch.stack(nu)


@pytest.mark.parametrize(
    "loss, loss_fn", [("soft", soft_attention_loss), ("hard", hard_attention_loss)]
)
def test_train_mosaics_is_plain_gradient_descent_through_the_engine(loss, loss_fn):
    run = ch07.train_mosaics(loss, 0.5, 10.0, LABELS, m=5, record=20)
    times, nu, logit_sq, margin = run.time, run.nu, run.logit_sq, run.margin
    assert torch.allclose(times, torch.arange(21, dtype=torch.float64) * 0.5)
    assert run.steps.tolist() == list(range(21)) and run.lr == 0.5
    assert nu.shape == logit_sq.shape == margin.shape == (21, 3)
    expected = _reference_descent(loss_fn, 0.5, 20, LABELS)
    assert torch.allclose(nu, expected, rtol=1e-10, atol=1e-12)
    assert float(nu[-1].min()) > 0  # the focus learned something


def test_train_mosaics_with_a_given_classifier_records_its_first_layer():
    torch.manual_seed(0)
    mlp = MLPClassifier(4, 3, hidden=5).double()
    torch.manual_seed(0)
    same = MLPClassifier(4, 3, hidden=5).double()
    first = same.net[0].weight.detach().clone()
    run = ch07.train_mosaics("soft", 0.5, 5.0, LABELS, m=5, classifier=mlp, record=5)
    nu, first_sq = run.nu, run.logit_sq
    assert "margin" not in run.records and first_sq.shape == (6, 3)
    assert run.steps.tolist() == [0, 2, 4, 6, 8, 10]
    assert torch.allclose(first_sq[0], (ch07.class_vectors(3) @ first.T).square().sum(1))
    expected = _reference_descent(soft_attention_loss, 0.5, 10, LABELS, same, record_every=2)
    assert torch.allclose(nu, expected, rtol=1e-10, atol=1e-12)


def test_train_mosaics_rejects_bad_arguments():
    with pytest.raises(ValueError, match="loss"):
        ch07.train_mosaics("cross-entropy", 0.5, 1.0, LABELS, m=5)
    with pytest.raises(ValueError, match="lr"):
        ch07.train_mosaics("soft", -0.5, 1.0, LABELS, m=5)
    with pytest.raises(TypeError, match="classifier"):
        ch07.train_mosaics("soft", 0.5, 1.0, LABELS, m=5, classifier="mlp")


def test_mosaics_put_the_class_vector_at_the_same_positions_for_every_noise():
    clean = ch07.mosaics(LABELS, 4)
    noisy = ch07.mosaics(LABELS, 4, background_std=0.1, overlap=0.5)
    assert clean.segments.shape == (12, 4, 4) and clean.segments.dtype == torch.float64
    assert torch.equal(clean.foreground, noisy.foreground)
    picked = clean.segments[torch.arange(12), clean.foreground]
    assert torch.equal(picked, ch07.class_vectors(3)[LABELS])
    assert float(clean.segments.abs().sum()) == 12.0  # the background is zero
    with pytest.raises(ValueError, match="m must be"):
        ch07.mosaics(LABELS, 1)
    with pytest.raises(TypeError, match="labels"):
        ch07.mosaics(LABELS.float(), 4)
    with pytest.raises(ValueError, match="n_classes"):
        ch07.class_vectors(1)


def test_train_topic_runs_chapter_2s_setting():
    corpus = make_topic_corpus(n_background=30, n_sentences=40, m=6, seed=0)
    run = ch07.train_topic(corpus, 0.2, 4.0, device="cpu")
    assert run.theta.shape == run.strength.shape == (21, 8)
    assert run.n_others == 6.0 and isinstance(run.coupling, float)
    assert float((run.theta[-1] - run.theta[0]).min()) > 0  # every topic word's score grew
    assert torch.allclose(run.time[-1], torch.tensor(4.0, dtype=torch.float64))
    trained = ch07.train_topic(corpus, 0.2, 1.0, train_query=True, device="cpu")
    assert trained.coupling.shape == (6, 1)
    with pytest.raises(TypeError, match="corpus"):
        ch07.train_topic("corpus", 0.2, 1.0)
    with pytest.raises(ValueError, match="t_end"):
        ch07.train_topic(corpus, 0.2, 0.0)


def test_margin_orbit_error_is_zero_on_the_soft_orbit():
    mu = torch.linspace(0, 2, 5, dtype=torch.float64)[:, None].repeat(1, 3)
    strength = conservation.soft_orbit_strength(mu, 3)
    theta = law.inverse_attention_potential(strength, 4.0)
    run = ch07.LawRun(mu[:, 0], theta, strength, 1.0, 4.0)
    assert ch07.margin_orbit_error(run, mu, 3) < 1e-10
    assert ch07.margin_orbit_error(run, 2 * mu, 3) > 0.1
    with pytest.raises(TypeError, match="run"):
        ch07.margin_orbit_error((mu, theta), mu, 3)


def test_flow_strength_of_chapter_5s_soft_flow():
    mu_grid = np.linspace(0, 6, 601)
    out = ch07.flow_strength("soft", mu_grid, np.linspace(0, 50, 51), m=5, C=3)
    assert out.spread < 1e-9 and out.increasing and out.flow_gap < 1e-4
    assert np.allclose(out.strength, mu_grid**2 / 3, rtol=1e-6, atol=1e-8)  # (C - 1)/(2C) mu^2
    with pytest.raises(ValueError, match="m must be"):
        ch07.flow_strength("soft", mu_grid, np.linspace(0, 1, 3), m=1, C=3)


def test_first_integral_holds_for_soft_and_fails_for_an_extra_factor():
    mu_grid, t = np.linspace(0, 8, 801), np.linspace(0, 50, 51)
    soft = flow_rhs("soft", m=5, C=3)

    def extra(t, y):
        dmu, dnu = soft(t, y)
        return [dmu, dnu * 4 / (np.exp(y[1]) + 4)]

    G = ch07.origin_strength(soft, mu_grid, 4)
    assert np.allclose(G, mu_grid**2 / 3, rtol=1e-6, atol=1e-8)
    change, reached = ch07.first_integral_change(soft, [(1.0, 2.0)], t, mu_grid, 4)
    assert change < 1e-5 and 1.0 < reached < 8
    assert ch07.first_integral_change(extra, [(1.0, 2.0)], t, mu_grid, 4)[0] > 0.05
    with pytest.raises(ValueError, match="starts"):
        ch07.first_integral_change(soft, [], t, mu_grid, 4)
    with pytest.raises(TypeError, match="rhs"):
        ch07.origin_strength("soft", mu_grid, 4)


def test_record_fits_per_record():
    z_hat = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0]])
    slope, correlation = ch07.record_fits(2 * z_hat + 1, z_hat)
    assert torch.allclose(slope, torch.tensor([2.0, 2.0]))
    assert torch.allclose(correlation, torch.ones(2))
    with pytest.raises(ValueError, match="one shape"):
        ch07.record_fits(z_hat, z_hat[:, :2])


def test_one_step_coupling_matches_exercise_7_1s_constant():
    corpus = make_repeated_topic_corpus(1, n_background=40, n_sentences=60)
    q2, measured = ch07.one_step_coupling(
        corpus, temperature=2.0, lr_key=2e-4, lr_embedding=1e-4, warmup_steps=50
    )
    expected = conservation.temperature_law_constant(q2, 2.0, 2e-4, 1e-4)
    assert measured.shape == (8,)
    assert torch.allclose(measured, torch.full_like(measured, expected), rtol=1e-2)
    with pytest.raises(ValueError, match="temperature"):
        ch07.one_step_coupling(corpus, temperature=0.0, lr_key=1e-4, lr_embedding=1e-4)
