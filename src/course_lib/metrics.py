"""Prediction rules and focus metrics for segment-selection models (defined in chapter 4).

Three ways to turn attention alpha (B, m) and a classifier into a prediction (the official
code's ``evaluation_method_1/2/3``):

* ``"argmax_segment"``: classify the most-attended segment alone;
* ``"average_output"``: average the per-segment class probabilities with weights alpha (the
  natural rule for LVML and hard attention);
* ``"average_input"``: classify the blended input sum_j alpha_j x_j (the natural rule for soft).

"Focus true" means the most-attended segment is the foreground.  FTPT, FFPT, FTPF and FFPF are
the percentages of examples with focus true/false and prediction true/false; a_z is the attention
on the foreground and s_y the probability the rule gives the true class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from ._validate import check_int
from .losses import blend, per_segment_logits

RULES = ("argmax_segment", "average_output", "average_input")
OUTCOMES = ("FTPT", "FFPT", "FTPF", "FFPF")


# How far outside [0, 1] a probability computed in float32 may fall by rounding alone.
ROUNDING_SLACK = 1e-5


def _check_rule(rule) -> str:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    return rule


def _check_alpha_index(alpha, index, name: str) -> None:
    if not isinstance(alpha, torch.Tensor) or alpha.dim() != 2:
        raise ValueError("alpha must be a (batch, m) tensor of attention weights")
    if not isinstance(index, torch.Tensor) or index.shape != (alpha.shape[0],):
        raise ValueError(f"{name} must be a ({alpha.shape[0]},) tensor")
    if index.is_floating_point():
        raise TypeError(f"{name} must hold integers")


def class_probabilities(alpha, segments, classifier: Callable, rule: str) -> torch.Tensor:
    """The class distribution (B, C) a prediction rule gives (chapter 4).

    alpha (B, m); segments (B, m, *features); classifier maps (N, *features) to (N, C) logits.
    """
    rule = _check_rule(rule)
    if segments.shape[:2] != alpha.shape:
        raise ValueError(
            f"segments must have shape (batch, m, ...) matching alpha {tuple(alpha.shape)}"
        )
    with torch.no_grad():
        if rule == "average_input":
            return torch.softmax(classifier(blend(alpha, segments)), -1)
        probs = torch.softmax(per_segment_logits(segments, classifier), -1)  # (B, m, C)
        if rule == "average_output":
            return (alpha.unsqueeze(-1) * probs).sum(1)
        return probs[torch.arange(len(alpha), device=probs.device), alpha.argmax(1)]


def foreground_attention(alpha: torch.Tensor, foreground: torch.Tensor) -> torch.Tensor:
    """a_z (chapter 4): the attention on each example's foreground segment, shape (B,).

    >>> import torch
    >>> foreground_attention(torch.tensor([[0.1, 0.9], [0.7, 0.3]]), torch.tensor([1, 1]))
    tensor([0.9000, 0.3000])
    """
    _check_alpha_index(alpha, foreground, "foreground")
    return alpha.gather(1, foreground.long().unsqueeze(1)).squeeze(1)


def focus_prediction_table(alpha, foreground, predictions, labels) -> dict:
    """FTPT, FFPT, FTPF, FFPF (chapter 4): percentages of examples, summing to 100.

    Focus is true when ``alpha.argmax(1) == foreground``; prediction is true when
    ``predictions == labels``.  Accuracy is FTPT + FFPT, focus accuracy FTPT + FTPF.

    >>> import torch
    >>> alpha = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    >>> table = focus_prediction_table(alpha, torch.tensor([0, 0, 0, 1]),
    ...                                torch.tensor([2, 1, 0, 0]), torch.tensor([2, 1, 1, 1]))
    >>> table == {"FTPT": 25.0, "FFPT": 25.0, "FTPF": 50.0, "FFPF": 0.0}
    True
    """
    _check_alpha_index(alpha, foreground, "foreground")
    _check_alpha_index(alpha, predictions, "predictions")
    _check_alpha_index(alpha, labels, "labels")
    focus_true = alpha.argmax(1) == foreground
    prediction_true = predictions == labels
    cells = {
        "FTPT": focus_true & prediction_true,
        "FFPT": ~focus_true & prediction_true,
        "FTPF": focus_true & ~prediction_true,
        "FFPF": ~focus_true & ~prediction_true,
    }
    return {key: 100.0 * cell.double().mean().item() for key, cell in cells.items()}


def signature_histogram(a_z, s_y, bins: int = 5) -> torch.Tensor:
    """The (a_z, s_y) 2-D histogram (chapter 4), in percent of examples, shape (bins, bins).

    Row i holds s_y in [i/bins, (i+1)/bins), column j holds a_z in [j/bins, (j+1)/bins); the value
    1.0 falls in the last bin.  Row 0 is the lowest s_y (flip it to draw s_y upwards).

    >>> signature_histogram(torch.tensor([0.1, 0.95]), torch.tensor([0.9, 0.9]), bins=2)
    tensor([[ 0.,  0.],
            [50., 50.]], dtype=torch.float64)
    """
    bins = check_int(bins, "bins", minimum=1)
    a_z = torch.as_tensor(a_z)
    s_y = torch.as_tensor(s_y, device=a_z.device)  # the histogram lives on a_z's device
    if a_z.dim() != 1 or a_z.shape != s_y.shape or len(a_z) == 0:
        raise ValueError(
            f"a_z and s_y must be non-empty 1-D tensors of one length, got "
            f"{tuple(a_z.shape)} and {tuple(s_y.shape)}"
        )
    # a float32 probability may exceed 1 by a rounding error (full mode, chapter 4); clamp that
    low, high = float(torch.minimum(a_z, s_y).min()), float(torch.maximum(a_z, s_y).max())
    if low < -ROUNDING_SLACK or high > 1 + ROUNDING_SLACK:
        raise ValueError(f"a_z and s_y must lie in [0, 1], got values in [{low}, {high}]")
    a_z, s_y = a_z.clamp(0, 1), s_y.clamp(0, 1)
    col = (a_z.double() * bins).long().clamp(max=bins - 1)
    row = (s_y.double() * bins).long().clamp(max=bins - 1)
    counts = torch.zeros(bins * bins, dtype=torch.float64, device=a_z.device)
    counts.index_add_(0, row * bins + col, torch.ones_like(a_z, dtype=torch.float64))
    return 100.0 * counts.reshape(bins, bins) / len(a_z)


class MosaicEvaluation(NamedTuple):
    """Everything chapter 4 reports about one trained (focus, classifier) pair on a data set.

    ``table[rule]`` is the FTPT/FFPT/FTPF/FFPF dict for each prediction rule; ``accuracy[rule]``
    its FTPT + FFPT; ``a_z`` (n,) and ``s_y[rule]`` (n,) feed :func:`signature_histogram`.
    """

    alpha: torch.Tensor
    a_z: torch.Tensor
    s_y: dict
    table: dict
    accuracy: dict
    focus_accuracy: float
    mean_a_z: float


def evaluate_mosaics(focus, classifier, data) -> MosaicEvaluation:
    """Evaluate a focus model and classifier on ``data`` (a ``mosaic.Mosaics``), every rule."""
    with torch.no_grad():
        alpha = torch.softmax(focus(data.segments), 1)  # (n, m)
        a_z = foreground_attention(alpha, data.foreground)
        s_y, table, accuracy = {}, {}, {}
        for rule in RULES:
            probs = class_probabilities(alpha, data.segments, classifier, rule)
            s_y[rule] = probs.gather(1, data.labels.unsqueeze(1)).squeeze(1)
            table[rule] = focus_prediction_table(
                alpha, data.foreground, probs.argmax(1), data.labels
            )
            accuracy[rule] = table[rule]["FTPT"] + table[rule]["FFPT"]
        focus_accuracy = 100.0 * (alpha.argmax(1) == data.foreground).double().mean().item()
    return MosaicEvaluation(alpha, a_z, s_y, table, accuracy, focus_accuracy, a_z.mean().item())


def per_class_focus_accuracy(alpha, foreground, labels, n_classes: int) -> torch.Tensor:
    """Focus accuracy of each class (chapter 6): entry c is the percentage of the mosaics of
    class c whose most-attended segment is the foreground, shape (n_classes,), NaN for a class
    with no mosaics.  A class far below the others while accuracy stays high is the shortcut
    focus: the model finds the other classes and predicts this one by elimination.

    >>> import torch
    >>> alpha = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    >>> per_class_focus_accuracy(alpha, torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]), 2)
    tensor([100.,  50.], dtype=torch.float64)
    """
    _check_alpha_index(alpha, foreground, "foreground")
    _check_alpha_index(alpha, labels, "labels")
    n_classes = check_int(n_classes, "n_classes", minimum=1)
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(
            f"labels must lie in [0, {n_classes}), got values up to {int(labels.max())}"
        )
    hit = (alpha.argmax(1) == foreground.to(alpha.device)).double()  # (B,) on alpha's device
    labels = labels.to(alpha.device)
    totals = hit.new_zeros(n_classes).index_add_(0, labels, torch.ones_like(hit))
    found = hit.new_zeros(n_classes).index_add_(0, labels, hit)
    return 100.0 * found / totals
