"""Mosaic data (chapter 4)."""

import pytest
import torch

from course_lib.mosaic import (
    Mosaics,
    load_digit_images,
    make_image_mosaics,
    make_linear_mosaics,
)


def test_linear_mosaics_structure():
    data = make_linear_mosaics(2000, n_classes=5, m=4, seed=3)
    assert isinstance(data, Mosaics) and data.segments.shape == (2000, 4, 6)
    rows = torch.arange(2000)
    fg = data.segments[rows, data.foreground]
    assert torch.allclose(fg[rows, data.labels], torch.ones(2000), atol=1e-4)
    assert fg[:, -1].abs().max() == 0
    background = data.segments.clone()
    background[rows, data.foreground] = 0
    assert background[:, :, :-1].abs().max() == 0  # background only on the last coordinate
    std = background[:, :, -1].sum() / (2000 * 3)
    assert abs(float(std)) < 0.01
    assert 0.09 < float(background[:, :, -1].pow(2).sum().div(2000 * 3).sqrt()) < 0.11
    # label and position uniform: each of 5 labels and 4 positions near 1/5 and 1/4
    assert (torch.bincount(data.labels, minlength=5).float() / 2000 - 0.2).abs().max() < 0.04
    assert (torch.bincount(data.foreground, minlength=4).float() / 2000 - 0.25).abs().max() < 0.04


def test_linear_mosaics_are_seeded():
    a, b = make_linear_mosaics(10, seed=1), make_linear_mosaics(10, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.segments, make_linear_mosaics(10, seed=2).segments)


def test_image_mosaics_place_one_foreground_among_background():
    images = torch.arange(30, dtype=torch.float32).reshape(30, 1) * torch.ones(30, 3)
    labels = torch.arange(30) % 6  # six classes, five images each
    data = make_image_mosaics(images, labels, [4, 1], m=5, n=400, seed=0)
    assert data.segments.shape == (400, 5, 3) and data.labels.max() == 1
    ids = data.segments[:, :, 0].long()  # which image each segment is
    classes = labels[ids]
    rows = torch.arange(400)
    fg_class = classes[rows, data.foreground]
    assert torch.equal(fg_class, torch.tensor([4, 1])[data.labels])  # labels index fg_classes
    others = classes.clone()
    others[rows, data.foreground] = -1
    assert not torch.isin(others, torch.tensor([4, 1])).any()
    assert (torch.bincount(data.foreground, minlength=5).float() / 400 - 0.2).abs().max() < 0.07
    again = make_image_mosaics(images, labels, [4, 1], m=5, n=400, seed=0)
    assert torch.equal(again.segments, data.segments)


def test_image_mosaics_with_chosen_background_classes():
    images, labels = torch.randn(60, 2), torch.arange(60) % 6
    data = make_image_mosaics(images, labels, [0, 1], 3, 50, 0, bg_classes=[5])
    bg = data.segments.clone()
    keep = torch.ones(50, 3, dtype=torch.bool)
    keep[torch.arange(50), data.foreground] = False
    assert torch.isin(bg[keep][:, 0], images[labels == 5][:, 0]).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fg_classes": [1]}, "fg_classes"),
        ({"fg_classes": [1, 1]}, "fg_classes"),
        ({"fg_classes": [0, 1], "bg_classes": [1, 2]}, "bg_classes"),
        ({"fg_classes": [0, 9]}, "no images"),
        ({"fg_classes": [0, 1], "m": 1}, "m must"),
    ],
)
def test_image_mosaic_errors(kwargs, match):
    images, labels = torch.randn(12, 2), torch.arange(12) % 3
    args = {"m": 3, "n": 5, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_image_mosaics(images, labels, **args)


def test_linear_mosaic_errors():
    with pytest.raises(ValueError, match="n_classes"):
        make_linear_mosaics(5, n_classes=1)
    with pytest.raises(TypeError, match="m"):
        make_linear_mosaics(5, m=2.0)
    with pytest.raises(ValueError, match="background_std"):
        make_linear_mosaics(5, background_std=-1.0)


def test_digits_split_is_stratified_and_disjoint():
    train, _ = load_digit_images("train")
    test, test_labels = load_digit_images("test")
    assert train.shape[1] == 64 and len(train) + len(test) == 1797
    assert 0 <= float(train.min()) and float(train.max()) <= 1
    assert abs(len(test) / 1797 - 0.3) < 0.01
    counts = torch.bincount(test_labels, minlength=10).float() / len(test)
    assert (counts - 0.1).abs().max() < 0.015
    with pytest.raises(ValueError, match="split"):
        load_digit_images("validation")
