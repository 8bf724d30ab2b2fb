"""Tests of course_lib.sst (chapter 3): vocabulary, padding, the word statistics and the
training helpers.  The files, checksums and downloads (course_lib.data.sst) are tested in
tests/test_data.py."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import sst

FIXTURE_BINARY = (
    "1 a powerful sequel and one of the best films of the year .\n"
    "0 the worst film , and stupid too .\n"
    "1 the best film of the year !\n"
    "0 a mess , a stupid mess\n"
)


# --------------------------------------------------------------------------- tensors


def test_tokenize_matches_the_paper():
    assert sst.tokenize("it 's not a bad film , is it ?") == ["it", "s", "not", "a", "bad", "film", "is", "it"]
    assert sst.tokenize("wo n't re-imagining") == ["wo", "nt", "reimagining"]
    assert sst.tokenize(" , . ") == []
    with pytest.raises(TypeError, match="sentence"):
        sst.tokenize(["a"])


def small_corpus():
    return sst.parse_sst(FIXTURE_BINARY, 2)


def test_vocabulary_pad_first_then_by_frequency():
    vocab = sst.build_vocabulary(small_corpus())
    assert vocab.words[0] == sst.PAD and vocab.pad_id == 0
    assert vocab.words[1] == "the"  # 5 occurrences, the most frequent word
    assert len(vocab) == 1 + len({w for t, _ in small_corpus() for w in t})
    assert vocab.decode(vocab.ids(["a", "mess"])) == ["a", "mess"]
    with pytest.raises(KeyError, match="zebra"):
        vocab["zebra"]
    with pytest.raises(ValueError):
        sst.build_vocabulary()
    with pytest.raises(TypeError, match="datasets"):
        sst.build_vocabulary("not a corpus")


def test_pad_batch_shapes_and_mask():
    data = small_corpus()
    vocab = sst.build_vocabulary(data)
    batch = sst.pad_batch(data, vocab)
    lengths = [len(t) for t, _ in data]
    assert batch.tokens.shape == (4, max(lengths)) and batch.tokens.dtype == torch.long
    assert batch.mask.dtype == torch.bool
    assert batch.mask.sum(1).tolist() == lengths
    assert bool((batch.tokens[~batch.mask] == vocab.pad_id).all())
    assert batch.labels.tolist() == [1, 0, 1, 0]
    assert vocab.decode(batch.tokens[3, : lengths[3]]) == data[3][0]
    wide = sst.pad_batch(data, vocab, length=20)
    assert wide.tokens.shape == (4, 20)
    with pytest.raises(ValueError, match="length"):
        sst.pad_batch(data, vocab, length=3)
    with pytest.raises(TypeError, match="vocab"):
        sst.pad_batch(data, {"a": 1})


def test_masked_model_ignores_padding_unmasked_does_not():
    from course_lib.topic import TopicAttention

    data = small_corpus()
    vocab = sst.build_vocabulary(data)
    short, wide = sst.pad_batch(data, vocab), sst.pad_batch(data, vocab, length=30)
    model = TopicAttention(len(vocab), 2, embed_dim=4, embedding_std=1.0, seed=1)
    with torch.no_grad():
        model.keys.weight.normal_()
    assert torch.allclose(model(short.tokens, short.mask), model(wide.tokens, wide.mask), atol=1e-6)
    assert not torch.allclose(model(short.tokens), model(wide.tokens), atol=1e-4)


def test_word_frequency_and_purity():
    data = small_corpus()
    freq, purity = sst.word_frequency(data), sst.word_purity(data)
    assert freq["mess"] == 1  # twice in one sentence: counts once
    assert freq["the"] == 3 and freq["stupid"] == 2
    assert purity["stupid"] == 1.0 and purity["powerful"] == 1.0
    assert purity["the"] == pytest.approx(1 / 3)  # 2 positive, 1 negative sentence
    assert purity["film"] == pytest.approx(0.0)  # "films" differs from "film"
    lengths = sst.mean_length_containing(data)
    assert lengths["stupid"] == pytest.approx((6 + 5) / 2)
    with pytest.raises(ValueError, match="binary"):
        sst.word_purity([(["a"], 3)])
    with pytest.raises(TypeError, match="data"):
        sst.word_frequency("text")


def test_most_attended_word_and_stats():
    data = small_corpus()
    vocab = sst.build_vocabulary(data)
    scores = torch.zeros(len(vocab))
    scores[vocab["stupid"]] = 2.0
    scores[vocab["mess"]] = 1.0
    assert sst.most_attended_word(scores, ["a", "mess", "a", "stupid", "mess"], vocab) == "stupid"
    assert sst.most_attended_word(scores, ["a", "mess"], vocab) == "mess"
    assert sst.most_attended_word(torch.zeros(len(vocab)), ["the", "year"], vocab) == "the"  # ties: first
    freq, purity = sst.word_frequency(data), sst.word_purity(data)
    p, f = sst.attended_word_stats(scores, data, "stupid", vocab, purity, freq)
    assert (p, f) == (1.0, 2.0)
    with pytest.raises(ValueError, match="scores has"):
        sst.most_attended_word(torch.zeros(3), ["a"], vocab)
    with pytest.raises(ValueError, match="sentence"):
        sst.most_attended_word(scores, [], vocab)
    with pytest.raises(ValueError, match="occurs in no sentence"):
        sst.attended_word_stats(scores, data, "zebra", vocab, purity, freq)


# --------------------------------------------------------------------------- training helpers


def tiny_setup(seed=0):
    from course_lib.topic import TopicAttention

    data = small_corpus() * 3
    vocab = sst.build_vocabulary(data)
    batch = sst.pad_batch(data, vocab)
    model = TopicAttention(len(vocab), 2, embed_dim=4, key_dim=3, seed=seed)
    return data, vocab, batch, model


def test_train_sst_snapshots_and_restores_best():
    data, vocab, batch, model = tiny_setup()
    run = sst.train_sst(model, batch, batch, 20, lr=0.5, snapshot_every=10, dense_until=4, dense_every=2, track=[vocab["stupid"]])
    assert run.steps.tolist() == [0, 2, 4, 10, 20]
    assert run.scores.shape == (5, len(vocab)) and run.norms.shape == (5, 1)
    assert run.train_loss[0] == pytest.approx(math.log(2), abs=1e-4)
    assert run.train_loss[-1] < run.train_loss[0]
    assert run.last_step == 20 and run.best_step == int(run.steps[run.dev_loss.argmin()])
    # the model is the best-dev snapshot: its scores are the recorded ones at best_step
    best = int((run.steps == run.best_step).nonzero()[0, 0])
    assert torch.allclose(model.scores().detach(), run.scores[best])
    assert run.scores[-1, vocab.pad_id] == 0  # masked: the pad never moves


def test_train_sst_matches_one_uninterrupted_run():
    from course_lib.training import train_full_batch

    _, _, batch, model_a = tiny_setup()
    _, _, _, model_b = tiny_setup()
    sst.train_sst(model_a, batch, batch, 12, lr=0.5, snapshot_every=5)
    train_full_batch(model_b, batch.tokens, batch.labels, steps=12, lr=0.5, mask=batch.mask)
    # dev loss keeps falling on this tiny corpus, so the best snapshot is the last one
    assert torch.allclose(model_a.scores(), model_b.scores(), atol=1e-6)


def test_train_sst_early_stopping():
    data, vocab, batch, model = tiny_setup()
    flipped = sst.Batch(batch.tokens, 1 - batch.labels, batch.mask)  # dev loss rises as train loss falls
    run = sst.train_sst(model, batch, flipped, 200, lr=0.5, snapshot_every=5, patience=10)
    assert run.best_step == 0 and run.last_step == 10
    assert float(model.scores().detach().abs().max()) == 0.0  # restored to the initial model


def test_train_sst_unmasked_moves_the_pad():
    data, vocab, batch, model = tiny_setup()
    run = sst.train_sst(model, batch, batch, 10, lr=1.0, masked=False, snapshot_every=10)
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
def test_train_sst_bad_arguments(kwargs, error):
    data, vocab, batch, model = tiny_setup()
    args = {"max_steps": 5, **kwargs}
    with pytest.raises(error):
        sst.train_sst(model, batch, batch, **args)
    with pytest.raises(TypeError, match="model"):
        sst.train_sst("model", batch, batch, 5)
    with pytest.raises(TypeError, match="dev"):
        sst.train_sst(model, batch, (batch.tokens, batch.labels), 5)


def test_real_word_sen_is_zero_on_the_curve():
    data, vocab, batch, model = tiny_setup()
    lengths = sst.mean_length_containing(data)
    q = model.query
    with torch.no_grad():
        model.keys.weight.zero_()
        model.embedding.weight.zero_()
        for w, s in (("stupid", 0.5), ("mess", 0.3), ("powerful", 0.1)):
            m = lengths[w] - 1
            model.keys.weight[vocab[w]] = s * q / q.norm() ** 2
            target = math.sqrt(2 * (s + math.expm1(s) / m)) / float(q.norm())
            model.embedding.weight[vocab[w], 0] = target
    sen = sst.real_word_sen(model, data, vocab, top=3)
    assert sen.words == ["stupid", "mess", "powerful"]
    assert torch.allclose(sen.score, torch.tensor([0.5, 0.3, 0.1], dtype=torch.float64), atol=1e-6)
    assert float(sen.gap.max()) < 1e-5
    assert sen.m[0] == pytest.approx(lengths["stupid"] - 1)
    with pytest.raises(ValueError, match="top"):
        sst.real_word_sen(model, data, vocab, top=0)
