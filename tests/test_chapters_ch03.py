"""course_lib.chapters.ch03: chapter 3's settings objects, the padding's share of the attention
and the early scores of exercise 3."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from course_lib.chapters import ch03
from course_lib.sst import build_vocabulary, pad_batch
from course_lib.topic import TopicAttention, reduce_fixed_classifier
from course_lib.training import train_full_batch

DATA = [
    (["a", "good", "film"], 1),
    (["bad"], 0),
    (["a", "bad", "bad", "film"], 0),
    (["good", "good"], 1),
]


@pytest.fixture(scope="module")
def vocab():
    return build_vocabulary(DATA)


def sizes(**changes):
    values = dict(
        fc_embed_dim=200, fc_step_factor=10, tc_embed_dim=10, tc_step_factor=20,
        patience=None, fc_steps=7, tc_steps=5, unmasked_steps=20, sst5_fc_steps=3,
        sst5_tc_steps=4, snapshot_every=2, dense_until=5, dense_every=1,
        unmasked_snapshot_every=10, sst5_snapshot_every=5, short_run=True,
    )  # fmt: skip
    return ch03.RealTextSettings(**{**values, **changes})


def test_settings_give_the_learning_rates_and_are_frozen():
    settings = sizes()
    assert settings.fc_lr == pytest.approx(1.0) and settings.tc_lr == pytest.approx(2.0)
    assert settings.unmasked_lr == ch03.OFFICIAL_LR == 0.1
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.fc_steps = 1
    bounds = ch03.RealTextBounds(
        best_leads_at=100, fc_floor=0.74, tc_floor=0.72, sst5_fc_floor=0.33,
        sst5_tc_floor=0.3, identity_median_gap=0.09, identity_p90_gap=0.2,
    )  # fmt: skip
    assert not set(f.name for f in dataclasses.fields(bounds)) & set(
        f.name for f in dataclasses.fields(settings)
    )


def test_pad_share_is_the_softmax_mass_on_the_padding(vocab):
    batch = pad_batch(DATA, vocab)  # length 4: 1, 3, 0 and 2 pads
    uniform = ch03.pad_share(torch.zeros(len(vocab)), batch)
    assert uniform == pytest.approx((1 / 4 + 3 / 4 + 0 + 2 / 4) / 4)
    scores = torch.zeros(len(vocab))
    scores[vocab.pad_id] = -50.0  # the pad scored far below: no attention on it
    assert ch03.pad_share(scores, batch) < 1e-12
    scores[vocab.pad_id] = 2.0  # in "bad" + 3 pads: 3 e^2 / (3 e^2 + 1)
    expected = 3 * torch.e**2 / (3 * torch.e**2 + 1)
    assert ch03.pad_share(scores, batch) > expected / 4


def test_pad_share_rejects_bad_arguments(vocab):
    batch = pad_batch(DATA, vocab)
    with pytest.raises(TypeError, match="batch"):
        ch03.pad_share(torch.zeros(len(vocab)), batch.tokens)
    with pytest.raises(ValueError, match="scores"):
        ch03.pad_share(torch.zeros(2), batch)
    with pytest.raises(ValueError, match="scores"):
        ch03.pad_share(torch.zeros(len(vocab), 2), batch)


def test_early_fc_scores_are_those_of_the_reduced_official_model(vocab):
    batch = pad_batch(DATA, vocab)
    scores = ch03.early_fc_scores(len(vocab), batch, steps=3, lr=0.5)
    assert scores.shape == (len(vocab),) and scores.dtype == torch.float64
    model = reduce_fixed_classifier(TopicAttention(len(vocab), 2, embed_dim=200))
    train_full_batch(model, batch.tokens, batch.labels, 3, lr=0.5, mask=batch.mask)
    assert torch.allclose(scores, model.scores().detach().double())
    assert scores[vocab["good"]] != 0


def test_early_fc_scores_rejects_bad_arguments(vocab):
    batch = pad_batch(DATA, vocab)
    with pytest.raises(ValueError, match="steps"):
        ch03.early_fc_scores(len(vocab), batch, steps=0)
    with pytest.raises(TypeError, match="batch"):
        ch03.early_fc_scores(len(vocab), DATA)
    with pytest.raises(ValueError, match="lr"):
        ch03.early_fc_scores(len(vocab), batch, lr=-1.0)
