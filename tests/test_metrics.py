"""Prediction rules and focus metrics (chapter 4)."""

import pytest
import torch

from course_lib.focus import LinearClassifier, LinearFocus
from course_lib.metrics import (
    class_probabilities,
    evaluate_mosaics,
    focus_prediction_table,
    foreground_attention,
    signature_histogram,
)
from course_lib.mosaic import make_linear_mosaics


def identity(x):
    return x


def test_the_three_rules_on_a_hand_case():
    # two segments, two classes: segment 0 says class 0 strongly, segment 1 says class 1 mildly
    segments = torch.tensor([[[4.0, 0.0], [0.0, 1.0]]])
    alpha = torch.tensor([[0.3, 0.7]])
    argmax = class_probabilities(alpha, segments, identity, "argmax_segment")
    assert torch.allclose(argmax, torch.softmax(torch.tensor([[0.0, 1.0]]), -1))
    out = class_probabilities(alpha, segments, identity, "average_output")
    expected = 0.3 * torch.softmax(segments[0, 0], 0) + 0.7 * torch.softmax(segments[0, 1], 0)
    assert torch.allclose(out[0], expected)
    inp = class_probabilities(alpha, segments, identity, "average_input")
    assert torch.allclose(inp[0], torch.softmax(torch.tensor([1.2, 0.7]), 0))
    # the rules disagree here: argmax and average-output say class 1... average-input class 0
    assert argmax.argmax().item() == 1 and inp.argmax().item() == 0
    with pytest.raises(ValueError, match="rule"):
        class_probabilities(alpha, segments, identity, "vote")


def test_table_cells_partition_the_examples():
    g = torch.Generator().manual_seed(0)
    alpha = torch.softmax(torch.randn(500, 4, generator=g), 1)
    foreground = torch.randint(0, 4, (500,), generator=g)
    labels = torch.randint(0, 3, (500,), generator=g)
    predictions = torch.randint(0, 3, (500,), generator=g)
    table = focus_prediction_table(alpha, foreground, predictions, labels)
    assert abs(sum(table.values()) - 100) < 1e-9
    accuracy = 100 * (predictions == labels).double().mean().item()
    focus = 100 * (alpha.argmax(1) == foreground).double().mean().item()
    assert abs(table["FTPT"] + table["FFPT"] - accuracy) < 1e-9
    assert abs(table["FTPT"] + table["FTPF"] - focus) < 1e-9
    ftpt = 100 * ((alpha.argmax(1) == foreground) & (predictions == labels)).double().mean()
    assert abs(table["FTPT"] - ftpt.item()) < 1e-9


def test_foreground_attention_and_histogram():
    alpha = torch.tensor([[0.05, 0.95], [0.5, 0.5], [0.9, 0.1], [0.3, 0.7]])
    a_z = foreground_attention(alpha, torch.tensor([1, 0, 1, 1]))
    assert torch.equal(a_z, torch.tensor([0.95, 0.5, 0.1, 0.7]))
    s_y = torch.tensor([1.0, 0.0, 0.5, 0.5])
    hist = signature_histogram(a_z, s_y, bins=5)
    assert hist.shape == (5, 5) and abs(hist.sum().item() - 100) < 1e-9
    assert hist[4, 4] == 25 and hist[0, 2] == 25 and hist[2, 0] == 25 and hist[2, 3] == 25
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        signature_histogram(torch.tensor([1.5]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="1-D"):
        signature_histogram(torch.zeros(2), torch.zeros(3))
    # a float32 rounding error above 1 (seen in chapter 4's full mode) lands in the top bin
    rounded = signature_histogram(torch.tensor([1.0000001]), torch.tensor([1 + 5e-6]), bins=5)
    assert rounded[4, 4] == 100
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        signature_histogram(torch.tensor([1.001]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="foreground"):
        foreground_attention(alpha, torch.tensor([0, 1]))


def test_evaluate_a_perfect_and_a_blind_focus():
    data = make_linear_mosaics(300, n_classes=4, m=5, seed=0)
    focus, clf = LinearFocus(5), LinearClassifier(5, 4)
    with torch.no_grad():
        focus.net.weight.copy_(torch.tensor([[20.0, 20, 20, 20, 0]]))
        clf.net.weight.copy_(10 * torch.eye(5)[:4])
    ev = evaluate_mosaics(focus, clf, data)
    assert ev.focus_accuracy == 100 and ev.mean_a_z > 0.99
    for rule in ev.accuracy:
        assert ev.accuracy[rule] == 100 and ev.table[rule]["FTPT"] == 100
    with torch.no_grad():
        focus.net.weight.zero_()  # uniform attention: argmax picks segment 0
    ev = evaluate_mosaics(focus, clf, data)
    assert abs(ev.mean_a_z - 0.2) < 1e-6
    chance = 100 * (data.foreground == 0).double().mean().item()
    assert abs(ev.focus_accuracy - chance) < 1e-9
    assert ev.accuracy["average_input"] == 100  # the blend still shows e_y / 5: a shortcut
    assert abs(ev.table["argmax_segment"]["FTPT"] - chance) < 1e-9
