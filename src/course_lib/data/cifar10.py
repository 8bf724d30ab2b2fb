"""CIFAR-10 for the full-mode image mosaics (chapter 4; the paper's semi-synthetic setting).

The official python tarball (Krizhevsky 2009) is downloaded once into the data cache by
:func:`course_lib.data.download.fetch_verified` (size and SHA-256 checked) and parsed here with
numpy, without torchvision.  Quick mode never calls this module: it uses scikit-learn's digits.

The tarball holds ``cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` (training) and
``test_batch``, each a pickled dict with ``b"data"`` (N, 3072) uint8 rows (1024 red, 1024 green,
1024 blue values, row-major 32 x 32) and ``b"labels"`` (N,) class ids.  The file is opened only
after its checksum matches, so unpickling it is unpickling a known file.
"""

from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from .download import DataError, cache_dir, fetch_verified

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
SIZE_BYTES = 170_498_071
ARCHIVE = "cifar-10-python.tar.gz"
CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
MEMBERS = {
    "train": [f"cifar-10-batches-py/data_batch_{k}" for k in range(1, 6)],
    "test": ["cifar-10-batches-py/test_batch"],
}


def read_archive(path: str | os.PathLike, split: str = "train"):
    """Parse a CIFAR-10 python tarball: ``(images (N, 3, 32, 32) uint8, labels (N,) int64)``."""
    if split not in MEMBERS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, labels = [], []
    try:
        with tarfile.open(path, "r:gz") as archive:
            for name in MEMBERS[split]:
                handle = archive.extractfile(name)
                if handle is None:
                    raise KeyError(name)
                batch = pickle.load(handle, encoding="bytes")
                data = np.asarray(batch[b"data"], dtype=np.uint8)
                if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                    raise DataError(
                        f"{path}: {name} holds data of shape {data.shape}, expected (N, 3072)"
                    )
                images.append(data.reshape(-1, 3, 32, 32))
                labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    except (KeyError, tarfile.TarError, pickle.UnpicklingError, EOFError) as error:
        raise DataError(
            f"{path} is not a CIFAR-10 python archive ({error}); delete it and load again"
        ) from error
    images, labels = np.concatenate(images), np.concatenate(labels)
    if len(images) != len(labels) or labels.min() < 0 or labels.max() >= len(CLASSES):
        raise DataError(f"{path}: labels do not match the images or lie outside 0..9")
    return images, labels


def load_cifar10(split: str = "train", data_dir: str | os.PathLike | None = None):
    """CIFAR-10 images as float32 in [0, 1], shape (N, 3, 32, 32), and labels (N,) int64.

    The tarball is looked for (and downloaded to, once, with its SHA-256 checked) in
    ``data_dir``, else the course's data cache (``course_lib.data.download.cache_dir``).
    """
    if split not in MEMBERS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = Path(data_dir) if data_dir is not None else cache_dir()
    path = fetch_verified(
        URL, folder / ARCHIVE, SHA256, size_bytes=SIZE_BYTES, what="CIFAR-10 (python version)"
    )
    images, labels = read_archive(path, split)
    return torch.from_numpy(images).float().div_(255.0), torch.from_numpy(labels)
