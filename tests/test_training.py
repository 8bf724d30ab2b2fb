import math

import pytest
import torch

from course_lib import sst, training
from course_lib.data import sst as sst_data
from course_lib.engine import History
from course_lib.topic import TopicAttention, make_topic_corpus
from course_lib.training import (
    RECORDED_FIELDS,
    accuracy,
    gradient_step,
    snapshot_steps,
    train_full_batch,
    train_with_early_stopping,
)


@pytest.fixture(scope="module")
def corpus():
    return make_topic_corpus(n_background=200, n_sentences=300, seed=0)


def fresh(corpus, kind="fixed", seed=0, **kwargs):
    return TopicAttention(corpus.vocab_size, corpus.n_topics, classifier=kind, seed=seed, **kwargs)


def train(corpus, models, steps, **kwargs):
    tr = corpus.train
    kwargs.setdefault("topic_mask", corpus.topic_mask(tr.tokens))
    kwargs.setdefault("topic_word_ids", corpus.topic_word_ids)
    return train_full_batch(models, tr.tokens, tr.labels, steps, **kwargs)


def test_history_shapes(corpus):
    model, history = train(corpus, fresh(corpus), 30, record_every=10, record_all_scores=True)
    assert isinstance(model, TopicAttention)
    assert history.steps.tolist() == [0, 10, 20, 30]
    # one model: no replica axis
    assert not history.stacked and history.n_replicas == 1
    assert history.loss.shape == (4,)
    assert (
        history.topic_scores.shape
        == history.topic_norms.shape
        == history.scaled_norms.shape
        == (4, 8)
    )
    assert history.attention_on_topic.shape == history.query_norm.shape == (4,)
    assert history.scores.shape == (4, corpus.vocab_size)
    # the last record is the trained model's state
    assert torch.allclose(history.scores[-1], model.scores().detach(), atol=1e-6)
    expected = model.embedding.weight[corpus.topic_word_ids].norm(dim=1) * model.query.norm()
    assert torch.allclose(history.scaled_norms[-1], expected.detach(), rtol=1e-6)


def test_a_list_of_one_model_gives_a_stacked_history(corpus):
    models, history = train(corpus, [fresh(corpus)], 30, record_every=10, record_all_scores=True)
    assert isinstance(models, list) and history.stacked and history.n_replicas == 1
    assert history.loss.shape == (
        1,
        4,
    ) and history.topic_scores.shape == history.scaled_norms.shape == (1, 4, 8)
    assert history.scores.shape == (1, 4, corpus.vocab_size)
    _, single = train(corpus, fresh(corpus), 30, record_every=10, record_all_scores=True)
    for name in RECORDED_FIELDS:
        assert torch.equal(getattr(history, name)[0], getattr(single, name)), name
    assert torch.equal(history.replica(0).scores, single.scores)
    with pytest.raises(ValueError, match="replica"):
        single.replica(0)


def test_short_run_attention_on_topic_rises_and_loss_falls(corpus):
    model, history = train(corpus, fresh(corpus), 600, lr=0.1, record_every=50)
    att = history.attention_on_topic
    assert att[0] == pytest.approx(1 / 21, abs=1e-4)  # uniform at the start: all keys are zero
    assert att[-1] > 2 / 21
    assert torch.all(att[1:] >= att[:-1] - 1e-5)
    assert history.loss[-1] < history.loss[0] - 0.3
    assert history.background_attention_cv.max() < 0.02
    assert accuracy(model, corpus.test.tokens, corpus.test.labels) > 0.8  # chance is 0.25


def test_seeded_runs_are_identical_and_seeds_differ(corpus):
    _, a = train(corpus, fresh(corpus, seed=1), 40)
    _, b = train(corpus, fresh(corpus, seed=1), 40)
    _, c = train(corpus, fresh(corpus, seed=2), 40)
    assert torch.equal(a.loss, b.loss) and torch.equal(a.topic_scores, b.topic_scores)
    assert not torch.equal(a.topic_scores, c.topic_scores)


@pytest.mark.parametrize("kind", ["fixed", "linear", "mlp"])
def test_batched_equals_sequential(corpus, kind):
    batch, history = train(
        corpus, [fresh(corpus, kind, seed=s) for s in range(3)], 40, record_every=20
    )
    assert history.loss.shape == (3, 3)
    for s in range(3):
        single, h = train(corpus, fresh(corpus, kind, seed=s), 40, record_every=20)
        assert torch.allclose(h.loss, history.loss[s], atol=1e-5)
        assert torch.allclose(h.topic_scores, history.topic_scores[s], atol=1e-5)
        assert torch.allclose(single.embedding.weight, batch[s].embedding.weight, atol=1e-6)
        replica = history.replica(s)
        assert not replica.stacked and torch.equal(replica.loss, history.loss[s])
        assert torch.equal(replica.scaled_norms, history.scaled_norms[s])


def test_per_model_data(corpus):
    other = make_topic_corpus(n_background=200, n_sentences=300, seed=5)
    tokens = torch.stack([corpus.train.tokens, other.train.tokens])
    labels = torch.stack([corpus.train.labels, other.train.labels])
    models, history = train_full_batch(
        [fresh(corpus), fresh(corpus)], tokens, labels, 20, topic_mask=corpus.topic_mask(tokens)
    )
    _, h_other = train_full_batch(fresh(corpus), other.train.tokens, other.train.labels, 20)
    assert torch.allclose(history.loss[1], h_other.loss, atol=1e-5)


def test_fixed_parts_never_move(corpus):
    model = fresh(corpus)
    query, classifier = model.query.clone(), model.classifier.weight.clone()
    model, _ = train(corpus, model, 50)
    assert torch.equal(model.query, query) and torch.equal(model.classifier.weight, classifier)


def test_frozen_groups(corpus):
    model = fresh(corpus, "linear", embedding_std=0.1)
    keys, emb = model.keys.weight.clone(), model.embedding.weight.clone()
    model, history = train(corpus, model, 50, frozen=("keys",))
    assert torch.equal(model.keys.weight, keys) and not torch.equal(model.embedding.weight, emb)
    assert torch.all(history.topic_scores == 0)
    model = fresh(corpus, "linear", embedding_std=0.1)
    emb = model.embedding.weight.clone()
    model, _ = train(corpus, model, 50, frozen=("embedding",))
    assert torch.equal(model.embedding.weight, emb)


def test_frozen_word_ids(corpus):
    background = torch.arange(8, corpus.vocab_size)
    model = fresh(corpus)
    before = model.embedding.weight[background].clone()
    model, history = train(corpus, model, 50, frozen_word_ids=background)
    assert torch.equal(model.embedding.weight[background], before)
    assert torch.count_nonzero(model.keys.weight[background]) == 0
    assert history.topic_norms[-1].min() > history.topic_norms[0].max()


def test_trained_query_moves(corpus):
    model = fresh(corpus, train_query=True, embedding_std=0.1)
    with torch.no_grad():
        model.keys.weight.normal_(0, 0.1)
    q = model.query.detach().clone()
    model, history = train(corpus, model, 30)
    assert not torch.equal(model.query.detach(), q)
    assert not torch.allclose(history.query_norm[0], history.query_norm[-1])


def test_first_step_below(corpus):
    _, history = train(corpus, fresh(corpus), 20, lr=1.0)
    assert history.first_step_below(10.0).shape == () and int(history.first_step_below(10.0)) == 0
    assert int(history.first_step_below(0.0)) == -1
    threshold = float(history.loss[5]) + 1e-7  # the loss falls: step 5 is the first one below
    assert int(history.first_step_below(threshold)) == 5
    _, stacked = train(corpus, [fresh(corpus, seed=0), fresh(corpus, seed=1)], 20, lr=1.0)
    assert stacked.first_step_below(threshold).shape == (2,)
    assert (
        int(stacked.first_step_below(threshold)[0]) == 5
        and int(stacked.first_step_below(0.0)[1]) == -1
    )


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"steps": -1}, ValueError, "steps"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": "0.1"}, TypeError, "lr"),
        ({"record_every": 0}, ValueError, "record_every"),
        ({"frozen": "keys"}, ValueError, "frozen"),
        ({"frozen": ("values",)}, ValueError, "frozen"),
        ({"frozen_word_ids": torch.tensor([10_000])}, ValueError, "frozen_word_ids"),
        ({"topic_word_ids": torch.tensor([-1])}, ValueError, "topic_word_ids"),
        ({"topic_mask": torch.ones(3, 3, dtype=torch.bool)}, ValueError, "topic_mask"),
        ({"mask": torch.ones(1, dtype=torch.bool)}, ValueError, "mask"),
    ],
)
def test_argument_validation(corpus, kwargs, error, name):
    args = {"steps": 2}
    args.update(kwargs)
    steps = args.pop("steps")
    with pytest.raises(error, match=name):
        train_full_batch(fresh(corpus), corpus.train.tokens, corpus.train.labels, steps, **args)


def test_data_validation(corpus):
    tr = corpus.train
    with pytest.raises(ValueError, match="labels"):
        train_full_batch(fresh(corpus), tr.tokens, tr.labels[:-1], 1)
    with pytest.raises(ValueError, match="labels"):
        train_full_batch(fresh(corpus), tr.tokens, tr.labels + 10, 1)
    with pytest.raises(ValueError, match="tokens"):
        train_full_batch(fresh(corpus), tr.tokens + 10_000, tr.labels, 1)
    with pytest.raises(TypeError, match="models"):
        train_full_batch("model", tr.tokens, tr.labels, 1)
    with pytest.raises(ValueError, match="architecture"):
        train_full_batch([fresh(corpus, "fixed"), fresh(corpus, "linear")], tr.tokens, tr.labels, 1)


@pytest.mark.parametrize("kind", ["fixed", "mlp"])
@pytest.mark.parametrize("engine", ["sparse", "autograd"])
def test_gradient_step_is_what_train_full_batch_computes(corpus, kind, engine):
    """A few hundred plain steps agree with train_full_batch (float32: the engines round
    differently)."""
    steps, lr = 300, 0.5
    tokens, labels = corpus.train
    plain = fresh(corpus, kind, seed=4)
    losses = [gradient_step(plain, tokens, labels, lr) for _ in range(steps)]
    trained, history = train_full_batch(
        fresh(corpus, kind, seed=4), tokens, labels, steps, lr, engine=engine
    )
    assert losses[-1] < losses[0] - 0.02  # the run went somewhere
    torch.testing.assert_close(
        torch.tensor(losses), history.loss[:-1].float(), rtol=1e-4, atol=1e-5
    )
    for (name, p), q in zip(plain.state_dict().items(), trained.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_gradient_step_validates(corpus):
    tokens, labels = corpus.train
    with pytest.raises(ValueError, match="lr"):
        gradient_step(fresh(corpus), tokens, labels, 0.0)
    with pytest.raises(ValueError, match="labels"):
        gradient_step(fresh(corpus), tokens, labels[:-1], 0.1)
    with pytest.raises(TypeError, match="model"):
        gradient_step("model", tokens, labels, 0.1)


def test_on_record_sees_each_record_and_the_current_model(corpus):
    seen = []
    model = fresh(corpus)

    def hook(step, history):
        assert isinstance(history, History) and not history.stacked
        assert history.steps[-1] == step and history.loss.shape == (len(seen) + 1,)
        # the model already holds this step's parameters
        assert torch.allclose(history.scores[-1], model.scores().detach(), atol=1e-6)
        seen.append(step)

    _, history = train(corpus, model, 25, record_every=10, on_record=hook, record_all_scores=True)
    assert seen == [0, 10, 20, 25] and history.steps.tolist() == seen
    _, plain = train(corpus, fresh(corpus), 25, record_every=10, record_all_scores=True)
    assert torch.equal(history.loss, plain.loss)  # watching changes nothing


@pytest.mark.parametrize("models", ["one", "two"])
def test_on_record_returning_true_stops_training(corpus, models):
    make = (
        (lambda: fresh(corpus))
        if models == "one"
        else (lambda: [fresh(corpus, seed=0), fresh(corpus, seed=1)])
    )
    stopped, history = train(
        corpus, make(), 100, record_every=5, on_record=lambda step, h: step >= 15
    )
    assert history.steps.tolist() == [0, 5, 10, 15]
    reference, _ = train(corpus, make(), 15)
    for a, b in zip(
        stopped if isinstance(stopped, list) else [stopped],
        reference if isinstance(reference, list) else [reference],
    ):
        assert torch.equal(a.embedding.weight, b.embedding.weight) and torch.equal(
            a.keys.weight, b.keys.weight
        )


# ------------------------------------------------------------------ early stopping (chapter 3)


SST_LINES = (
    "1 a powerful sequel and one of the best films of the year .\n"
    "0 the worst film , and stupid too .\n"
    "1 the best film of the year !\n"
    "0 a mess , a stupid mess\n"
)


def small_corpus():
    return sst_data.parse_sst(SST_LINES, 2)


def tiny_setup(seed=0):
    data = small_corpus() * 3
    vocab = sst.build_vocabulary(data)
    batch = sst.pad_batch(data, vocab)
    model = TopicAttention(len(vocab), 2, embed_dim=4, key_dim=3, seed=seed)
    return data, vocab, batch, model


def test_early_stopping_snapshots_and_restores_best():
    data, vocab, batch, model = tiny_setup()
    run = train_with_early_stopping(
        model,
        batch,
        batch,
        20,
        lr=0.5,
        snapshot_every=10,
        dense_until=4,
        dense_every=2,
        track=[vocab["stupid"]],
    )
    assert run.steps.tolist() == [0, 2, 4, 10, 20]
    assert run.scores.shape == (5, len(vocab)) and run.norms.shape == (5, 1)
    assert run.train_loss[0] == pytest.approx(math.log(2), abs=1e-4)
    assert run.train_loss[-1] < run.train_loss[0]
    assert run.last_step == 20 and run.best_step == int(run.steps[run.dev_loss.argmin()])
    # the model is the best-dev snapshot: its scores are the recorded ones at best_step
    best = int((run.steps == run.best_step).nonzero()[0, 0])
    assert torch.allclose(model.scores().detach(), run.scores[best])
    assert run.scores[-1, vocab.pad_id] == 0  # masked: the pad never moves


def test_snapshots_do_not_change_the_run():
    _, _, batch, model_a = tiny_setup()
    _, _, _, model_b = tiny_setup()
    train_with_early_stopping(model_a, batch, batch, 12, lr=0.5, snapshot_every=5)
    train_full_batch(model_b, batch.tokens, batch.labels, steps=12, lr=0.5, mask=batch.mask)
    # dev loss keeps falling on this tiny corpus, so the best snapshot is the last one
    assert torch.equal(model_a.embedding.weight, model_b.embedding.weight)
    assert torch.equal(model_a.keys.weight, model_b.keys.weight)


def test_early_stopping_stops_and_restores_the_best():
    data, vocab, batch, model = tiny_setup()
    flipped = sst.Batch(
        batch.tokens, 1 - batch.labels, batch.mask
    )  # dev loss rises as train loss falls
    run = train_with_early_stopping(
        model, batch, flipped, 200, lr=0.5, snapshot_every=5, patience=10
    )
    assert run.best_step == 0 and run.last_step == 10
    assert float(model.scores().detach().abs().max()) == 0.0  # restored to the initial model


def test_early_stopping_unmasked_moves_the_pad():
    data, vocab, batch, model = tiny_setup()
    run = train_with_early_stopping(
        model, batch, batch, 10, lr=1.0, masked=False, snapshot_every=10
    )
    assert run.scores[-1, vocab.pad_id] != 0


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"max_steps": 0}, ValueError),
        ({"snapshot_every": 0}, ValueError),
        ({"patience": 0}, ValueError),
        ({"masked": 1}, TypeError),
        ({"track": [10**6]}, ValueError),
    ],
)
def test_early_stopping_bad_arguments(kwargs, error):
    data, vocab, batch, model = tiny_setup()
    args = {"max_steps": 5, **kwargs}
    with pytest.raises(error):
        train_with_early_stopping(model, batch, batch, **args)
    with pytest.raises(TypeError, match="model"):
        train_with_early_stopping("model", batch, batch, 5)
    with pytest.raises(TypeError, match="dev"):
        train_with_early_stopping(model, batch, (batch.tokens, batch.labels), 5)


def test_snapshot_steps():
    assert snapshot_steps(20, 10, dense_until=4, dense_every=2) == [2, 4, 10, 20]
    assert snapshot_steps(7, 5) == [5, 7]
    assert snapshot_steps(30, 100, dense_until=9, dense_every=3) == [3, 6, 9, 30]


def test_early_stopping_takes_each_snapshot_from_one_run():
    """The snapshot values are those of the model at that step (here, against a plain run)."""
    data, vocab, batch, model = tiny_setup(seed=2)
    run = train_with_early_stopping(
        model, batch, batch, 9, lr=0.5, snapshot_every=3, track=[vocab["stupid"]]
    )
    _, _, _, plain = tiny_setup(seed=2)
    for step in range(10):
        if step in run.steps.tolist():
            k = run.steps.tolist().index(step)
            assert torch.allclose(run.scores[k], plain.scores().detach(), atol=1e-6)
            assert torch.allclose(
                run.norms[k], plain.embedding.weight[vocab["stupid"]].norm().detach(), atol=1e-6
            )
        if step < 9:
            gradient_step(plain, batch.tokens, batch.labels, 0.5, mask=batch.mask)


def test_sen_curve_run_shapes():
    scores, scaled = training.sen_curve_run(
        5, 0.5, n_sentences=40, n_background=30, steps=20, record_every=5
    )
    assert scores.shape == scaled.shape == (5, 8)
    with pytest.raises(ValueError, match="query_std"):
        training.sen_curve_run(5, 0.0)
    with pytest.raises(ValueError, match="m"):
        training.sen_curve_run(0, 0.3)
