"""Segment-selection tasks: mosaics with one foreground segment among m (defined in chapter 4).

Each input is m segments; exactly one, at a uniformly random index z (the *foreground*), carries
the label, and the other m - 1 (the *background*) carry no information about it.  Two sources:

* ``make_linear_mosaics``: the official code's synthetic "linear orthogonal" setting (C classes,
  segments in R^{C+1}; the foreground of class k is e_k, the background is near zero);
* ``make_image_mosaics``: foreground images of chosen classes among background images of other
  classes, from any image array: scikit-learn's bundled digits (``load_digit_images``, quick
  mode, offline) or CIFAR-10 (``course_lib.data.cifar10``, full mode, the paper's setting).

Segments are stacked, not tiled: a mosaic of images has shape (m, *image_shape).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from ._validate import check_int, check_positive


class Mosaics(NamedTuple):
    """A set of n mosaics: segments (n, m, *features) float32, labels (n,) int64 in
    [0, n_classes), foreground (n,) int64: the index z of the segment that carries the label."""

    segments: torch.Tensor
    labels: torch.Tensor
    foreground: torch.Tensor

    @property
    def n_classes(self) -> int:
        return int(self.labels.max()) + 1

    def to(self, device) -> Mosaics:
        return Mosaics(*(t.to(device) for t in self))


def make_linear_mosaics(
    n: int,
    n_classes: int = 20,
    m: int = 20,
    seed: int = 0,
    background_std: float = 0.1,
    foreground_std: float = 1e-5,
) -> Mosaics:
    """The linear orthogonal setting (chapter 4): n mosaics of m segments in R^{C+1}.

    The label y is uniform over the C = ``n_classes`` classes; the foreground segment, at a
    uniformly random index, is e_y plus N(0, foreground_std^2) noise on coordinate y; every
    background segment is zero plus N(0, background_std^2) noise on the last coordinate (the
    official code's values: variances 1e-10 and 1e-2).

    Parameters
    ----------
    n, n_classes, m : number of mosaics, classes C >= 2, segments per mosaic m >= 2.
    seed : the random seed (the same seed gives the same mosaics).
    background_std, foreground_std : noise levels (>= 0).

    Returns
    -------
    Mosaics with segments (n, m, C + 1).

    >>> data = make_linear_mosaics(4, n_classes=3, m=5, seed=1)
    >>> data.segments.shape, data.labels.shape
    (torch.Size([4, 5, 4]), torch.Size([4]))
    >>> bool((data.segments[range(4), data.foreground].argmax(1) == data.labels).all())
    True
    """
    n = check_int(n, "n", minimum=1)
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    m = check_int(m, "m", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    background_std = check_positive(background_std, "background_std", allow_zero=True)
    foreground_std = check_positive(foreground_std, "foreground_std", allow_zero=True)
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, n_classes, (n,), generator=g)
    foreground = torch.randint(0, m, (n,), generator=g)
    segments = torch.zeros(n, m, n_classes + 1)
    segments[:, :, -1] = background_std * torch.randn(n, m, generator=g)
    rows = torch.arange(n)
    segments[rows, foreground] = 0.0
    segments[rows, foreground, labels] = 1.0 + foreground_std * torch.randn(n, generator=g)
    return Mosaics(segments, labels, foreground)


def make_image_mosaics(
    images,
    labels,
    fg_classes: Sequence[int],
    m: int,
    n: int,
    seed: int,
    bg_classes: Sequence[int] | None = None,
) -> Mosaics:
    """Mosaics of images (chapter 4): one foreground image among m - 1 background images.

    For each mosaic a foreground image is drawn uniformly from the images whose class is in
    ``fg_classes`` and placed at a uniformly random index; the other m - 1 segments are drawn
    uniformly (with replacement) from the images whose class is in ``bg_classes`` (default: every
    class not in ``fg_classes``).  The mosaic's label is the position of the foreground image's
    class in ``fg_classes`` (so labels run over 0 .. len(fg_classes) - 1).

    Parameters
    ----------
    images : array or tensor (N, *image_shape), e.g. (1797, 64) digits or (N, 3, 32, 32) CIFAR.
    labels : array or tensor (N,) of integer classes.
    fg_classes : the foreground classes (at least 2, distinct).
    m : segments per mosaic (>= 2).
    n : number of mosaics.
    seed : random seed.
    bg_classes : the background classes (disjoint from ``fg_classes``).

    Returns
    -------
    Mosaics with segments (n, m, *image_shape) float32.
    """
    images = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    labels = torch.as_tensor(np.asarray(labels))
    if images.dim() < 2:
        raise ValueError(f"images must have shape (N, *image_shape), got {tuple(images.shape)}")
    if labels.shape != (images.shape[0],) or labels.is_floating_point():
        raise ValueError(
            f"labels must be {images.shape[0]} integer classes, got shape {tuple(labels.shape)}"
        )
    m = check_int(m, "m", minimum=2)
    n = check_int(n, "n", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    fg = [check_int(c, "fg_classes entries") for c in fg_classes]
    if len(fg) < 2 or len(set(fg)) != len(fg):
        raise ValueError(f"fg_classes must hold at least 2 distinct classes, got {fg}")
    present = set(labels.tolist())
    if bg_classes is None:
        bg = sorted(present - set(fg))
    else:
        bg = [check_int(c, "bg_classes entries") for c in bg_classes]
    if not bg or set(bg) & set(fg):
        raise ValueError(
            f"bg_classes must be non-empty and disjoint from fg_classes {fg}, got {bg}"
        )
    missing = [c for c in fg + bg if c not in present]
    if missing:
        raise ValueError(f"classes {missing} have no images in labels")
    fg_pool = torch.nonzero(torch.isin(labels, torch.tensor(fg))).squeeze(1)
    bg_pool = torch.nonzero(torch.isin(labels, torch.tensor(bg))).squeeze(1)
    g = torch.Generator().manual_seed(seed)
    chosen_fg = fg_pool[torch.randint(0, len(fg_pool), (n,), generator=g)]  # (n,)
    index = bg_pool[torch.randint(0, len(bg_pool), (n, m), generator=g)]  # (n, m)
    foreground = torch.randint(0, m, (n,), generator=g)
    index[torch.arange(n), foreground] = chosen_fg
    remap = {c: k for k, c in enumerate(fg)}
    mosaic_labels = torch.tensor([remap[int(c)] for c in labels[chosen_fg]], dtype=torch.long)
    return Mosaics(images[index], mosaic_labels, foreground)


def load_digit_images(split: str = "train", test_fraction: float = 0.3, seed: int = 0):
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1] (chapter 4; offline, quick mode).

    Returns ``(images (N, 64) float32, labels (N,) int64)`` for one side of a stratified split
    (``test_fraction`` of each class in "test"), so train and test mosaics never share an image.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    digits = load_digits()
    parts = train_test_split(
        digits.data,
        digits.target,
        test_size=test_fraction,
        random_state=seed,
        stratify=digits.target,
    )
    images, labels = (parts[0], parts[2]) if split == "train" else (parts[1], parts[3])
    return (
        torch.tensor(images / 16.0, dtype=torch.float32),
        torch.tensor(labels, dtype=torch.long),
    )
