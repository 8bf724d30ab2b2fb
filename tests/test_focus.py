"""Focus models and classifiers (chapter 4)."""

import pytest
import torch

from course_lib.focus import (
    CNNClassifier,
    CNNFocus,
    LinearClassifier,
    LinearFocus,
    MLPClassifier,
    MLPFocus,
)


def test_linear_focus_scores_each_segment_with_no_bias():
    focus = LinearFocus(3, init="xavier")
    segments = torch.randn(4, 5, 3)
    scores = focus(segments)
    assert scores.shape == (4, 5)
    assert torch.allclose(scores, segments @ focus.weight, atol=1e-6)
    assert focus(torch.zeros(1, 2, 3)).abs().max() == 0  # no bias
    alpha = focus.attention(segments)
    assert torch.allclose(alpha.sum(1), torch.ones(4)) and (alpha > 0).all()


def test_zero_init_gives_uniform_attention_and_uniform_predictions():
    alpha = LinearFocus(6).attention(torch.randn(2, 4, 6))
    assert torch.allclose(alpha, torch.full((2, 4), 0.25))
    logits = LinearClassifier(6, 3)(torch.randn(7, 6))
    assert logits.abs().max() == 0


def test_linear_classifier_has_a_bias():
    clf = LinearClassifier(2, 3)
    with torch.no_grad():
        clf.net.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(clf(torch.zeros(1, 2)), torch.tensor([[1.0, 2.0, 3.0]]))


def test_mlp_models_shapes_and_bias_free_focus():
    focus = MLPFocus(64, hidden=8)
    assert focus(torch.randn(3, 5, 64)).shape == (3, 5)
    assert focus(torch.zeros(1, 2, 64)).abs().max() == 0
    assert MLPClassifier(64, 3, hidden=8)(torch.randn(10, 64)).shape == (10, 3)


def test_cnn_models_on_cifar_shaped_segments():
    torch.manual_seed(0)
    focus = CNNFocus()
    assert all(p.dim() > 1 for p in focus.parameters())  # bias-free, as the official Focus_cnn
    assert focus(torch.randn(2, 5, 3, 32, 32)).shape == (2, 5)
    clf = CNNClassifier(3)
    assert clf(torch.randn(4, 3, 32, 32)).shape == (4, 3)


def test_focus_rejects_wrong_segment_shapes():
    with pytest.raises(ValueError, match="segments"):
        LinearFocus(3)(torch.randn(4, 5, 2))
    with pytest.raises(ValueError, match="inputs"):
        LinearClassifier(3, 2)(torch.randn(4, 5, 3))


@pytest.mark.parametrize(
    "make, match, error",
    [
        (lambda: LinearFocus(0), "in_features", ValueError),
        (lambda: LinearFocus(2.5), "in_features", TypeError),
        (lambda: LinearFocus(3, init="ones"), "init", ValueError),
        (lambda: LinearClassifier(3, 1), "n_classes", ValueError),
        (lambda: MLPFocus(3, hidden=0), "hidden", ValueError),
        (lambda: CNNFocus(image_size=8), "image_size", ValueError),
        (lambda: CNNClassifier(3, in_channels=0), "in_channels", ValueError),
    ],
)
def test_bad_arguments(make, match, error):
    with pytest.raises(error, match=match):
        make()
