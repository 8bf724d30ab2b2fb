"""Focus models and classifiers for segment-selection tasks (defined in chapter 4).

A **focus model** scores each segment on its own, s_j = f(x_j), and its attention is the softmax
of the scores over the m segments.  A **classifier** maps a segment, or a blend of segments, to
C logits.  The architectures follow the authors' official code (Vashisht and Ramaswamy 2023):

* ``LinearFocus``: s_j = u . x_j, no bias (a bias would cancel in the softmax anyway);
* ``MLPFocus``: one hidden ReLU layer, no biases (the official ``Focus_non_linear``);
* ``CNNFocus``: the official ``Focus_cnn`` for 3x32x32 CIFAR segments, bias-free;
* ``LinearClassifier`` (with bias), ``MLPClassifier``, ``CNNClassifier`` (the official LeNet-like
  ``Classification_cnn``).

Focus models take segments ``(B, m, *features)`` and return scores ``(B, m)``; ``attention``
returns the softmax.  Classifiers take ``(N, *features)`` and return logits ``(N, C)``.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from ._validate import check_int

INITS = ("zeros", "xavier")


def _check_init(init) -> str:
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return init


def _initialise(module: nn.Module, init: str) -> None:
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            if init == "zeros":
                nn.init.zeros_(layer.weight)
            else:
                nn.init.xavier_normal_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class _SegmentScorer(nn.Module):
    """Shared by the focus models: apply ``self.net`` to every segment separately."""

    feature_shape: tuple

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        if segments.dim() < 2 or tuple(segments.shape[2:]) != self.feature_shape:
            raise ValueError(
                f"segments must have shape (batch, m, {', '.join(map(str, self.feature_shape))}),"
                f" got {tuple(segments.shape)}"
            )
        batch, m = segments.shape[:2]
        scores = self.net(segments.reshape(batch * m, *self.feature_shape))  # (B*m, 1)
        return scores.reshape(batch, m)

    def attention(self, segments: torch.Tensor) -> torch.Tensor:
        """Attention weights alpha (B, m): the softmax of the scores over the segments."""
        return torch.softmax(self(segments), dim=1)


class LinearFocus(_SegmentScorer):
    """Linear focus without bias (chapter 4): s_j = u . x_j for segments of ``in_features``.

    ``init="zeros"`` (the official code's choice for the linear setting) starts from uniform
    attention; ``"xavier"`` draws the weights (Xavier normal).

    >>> import torch
    >>> LinearFocus(3).attention(torch.ones(2, 4, 3))
    tensor([[0.2500, 0.2500, 0.2500, 0.2500],
            [0.2500, 0.2500, 0.2500, 0.2500]], grad_fn=<SoftmaxBackward0>)
    """

    def __init__(self, in_features: int, init: str = "zeros"):
        super().__init__()
        in_features = check_int(in_features, "in_features", minimum=1)
        self.feature_shape = (in_features,)
        self.net = nn.Linear(in_features, 1, bias=False)
        _initialise(self, _check_init(init))

    @property
    def weight(self) -> torch.Tensor:
        """u, shape (in_features,)."""
        return self.net.weight[0]


class MLPFocus(_SegmentScorer):
    """Focus MLP (chapter 4): in_features -> hidden (ReLU) -> 1 score, no biases."""

    def __init__(self, in_features: int, hidden: int = 32, init: str = "xavier"):
        super().__init__()
        in_features = check_int(in_features, "in_features", minimum=1)
        hidden = check_int(hidden, "hidden", minimum=1)
        self.feature_shape = (in_features,)
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden, bias=False), nn.ReLU(), nn.Linear(hidden, 1, bias=False)
        )
        _initialise(self, _check_init(init))


def _conv_features(in_channels: int, image_size: int, widths: tuple, kernel: int, pools: int):
    layers, channels = [], in_channels
    for index, width in enumerate(widths):
        layers += [nn.Conv2d(channels, width, kernel), nn.ReLU()]
        if index < pools:
            layers.append(nn.MaxPool2d(2))
        channels = width
    body = nn.Sequential(*layers, nn.Flatten())
    with torch.no_grad():
        size = body(torch.zeros(1, in_channels, image_size, image_size)).shape[1]
    return body, size


def _check_image(in_channels, image_size, minimum: int):
    in_channels = check_int(in_channels, "in_channels", minimum=1)
    image_size = check_int(image_size, "image_size", minimum=minimum)
    return in_channels, image_size


class CNNFocus(_SegmentScorer):
    """The official ``Focus_cnn`` (chapter 4), bias-free: three 3x3 convolutions (32, 64, 64
    channels, max-pooling after the first two), then 512 -> 64 -> 10 -> 1 fully connected.

    Segments are ``(B, m, in_channels, image_size, image_size)``; CIFAR-10 is 3 x 32 x 32.
    """

    def __init__(self, in_channels: int = 3, image_size: int = 32, init: str = "xavier"):
        super().__init__()
        in_channels, image_size = _check_image(in_channels, image_size, minimum=18)
        self.feature_shape = (in_channels, image_size, image_size)
        body, size = _conv_features(in_channels, image_size, (32, 64, 64), 3, pools=2)
        for layer in body:
            if isinstance(layer, nn.Conv2d):
                layer.bias = None
        widths = (size, 512, 64, 10)
        head = []
        for a, b in itertools.pairwise(widths):
            head += [nn.Linear(a, b, bias=False), nn.ReLU()]
        self.net = nn.Sequential(body, *head, nn.Linear(10, 1, bias=False))
        _initialise(self, _check_init(init))


class _Classifier(nn.Module):
    feature_shape: tuple

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() < 1 or tuple(inputs.shape[1:]) != self.feature_shape:
            raise ValueError(
                f"inputs must have shape (N, {', '.join(map(str, self.feature_shape))}),"
                f" got {tuple(inputs.shape)}"
            )
        return self.net(inputs)  # (N, C)


class LinearClassifier(_Classifier):
    """Linear classifier with bias (chapter 4): g(x) = W x + b, logits (N, n_classes).

    >>> import torch
    >>> LinearClassifier(3, 2)(torch.ones(5, 3)).shape
    torch.Size([5, 2])
    """

    def __init__(self, in_features: int, n_classes: int, init: str = "zeros"):
        super().__init__()
        in_features = check_int(in_features, "in_features", minimum=1)
        self.n_classes = check_int(n_classes, "n_classes", minimum=2)
        self.feature_shape = (in_features,)
        self.net = nn.Linear(in_features, self.n_classes)
        _initialise(self, _check_init(init))


class MLPClassifier(_Classifier):
    """Classifier MLP (chapter 4): in_features -> hidden (ReLU) -> n_classes, with biases."""

    def __init__(self, in_features: int, n_classes: int, hidden: int = 32, init: str = "xavier"):
        super().__init__()
        in_features = check_int(in_features, "in_features", minimum=1)
        self.n_classes = check_int(n_classes, "n_classes", minimum=2)
        hidden = check_int(hidden, "hidden", minimum=1)
        self.feature_shape = (in_features,)
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, self.n_classes)
        )
        _initialise(self, _check_init(init))


class CNNClassifier(_Classifier):
    """The official LeNet-like ``Classification_cnn`` (chapter 4): two 5x5 convolutions
    (6, 16 channels, each followed by max-pooling), then 120 -> 84 -> 10 -> n_classes."""

    def __init__(
        self, n_classes: int, in_channels: int = 3, image_size: int = 32, init: str = "xavier"
    ):
        super().__init__()
        self.n_classes = check_int(n_classes, "n_classes", minimum=2)
        in_channels, image_size = _check_image(in_channels, image_size, minimum=16)
        self.feature_shape = (in_channels, image_size, image_size)
        body, size = _conv_features(in_channels, image_size, (6, 16), 5, pools=2)
        widths = (size, 120, 84, 10)
        head = []
        for a, b in itertools.pairwise(widths):
            head += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(body, *head, nn.Linear(10, self.n_classes))
        _initialise(self, _check_init(init))
