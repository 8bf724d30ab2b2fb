"""Tests of course_lib.sst (chapter 3): vocabulary, padding, the word statistics and the identity
on real words (training on SST is tested in tests/test_training.py).
The files, checksums and downloads (course_lib.data.sst) are tested in tests/test_data.py."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import sst
from course_lib.data import sst as sst_data
from course_lib.topic import TopicAttention

FIXTURE_BINARY = (
    "1 a powerful sequel and one of the best films of the year .\n"
    "0 the worst film , and stupid too .\n"
    "1 the best film of the year !\n"
    "0 a mess , a stupid mess\n"
)


# --------------------------------------------------------------------------- tensors


def test_tokenize_matches_the_paper():
    assert sst_data.tokenize("it 's not a bad film , is it ?") == [
        "it",
        "s",
        "not",
        "a",
        "bad",
        "film",
        "is",
        "it",
    ]
    assert sst_data.tokenize("wo n't re-imagining") == ["wo", "nt", "reimagining"]
    assert sst_data.tokenize(" , . ") == []
    with pytest.raises(TypeError, match="sentence"):
        sst_data.tokenize(["a"])


def small_corpus():
    return sst_data.parse_sst(FIXTURE_BINARY, 2)


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
    assert (
        sst.most_attended_word(torch.zeros(len(vocab)), ["the", "year"], vocab) == "the"
    )  # ties: first
    freq, purity = sst.word_frequency(data), sst.word_purity(data)
    p, f = sst.attended_word_stats(scores, data, "stupid", vocab, purity, freq)
    assert (p, f) == (1.0, 2.0)
    with pytest.raises(ValueError, match="scores has"):
        sst.most_attended_word(torch.zeros(3), ["a"], vocab)
    with pytest.raises(ValueError, match="sentence"):
        sst.most_attended_word(scores, [], vocab)
    with pytest.raises(ValueError, match="occurs in no sentence"):
        sst.attended_word_stats(scores, data, "zebra", vocab, purity, freq)


def test_real_word_sen_is_zero_on_the_curve():
    data = (
        sst_data.parse_sst(
            "1 a powerful sequel and one of the best films of the year .\n"
            "0 the worst film , and stupid too .\n"
            "1 the best film of the year !\n0 a mess , a stupid mess\n",
            2,
        )
        * 3
    )
    vocab = sst.build_vocabulary(data)
    model = TopicAttention(len(vocab), 2, embed_dim=4, key_dim=3, seed=0)
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
    # off the curve by 10 %: the gap says so
    with torch.no_grad():
        model.embedding.weight[vocab["mess"]] *= 1.1
    assert sst.real_word_sen(model, data, vocab, top=3).gap[1] == pytest.approx(0.1, rel=1e-4)
