"""The CIFAR-10 loader on a small fixture tarball that the test writes (nothing is downloaded)."""

import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from course_lib.data import cifar10, download
from course_lib.data.download import DataError


def write_fixture(path, per_batch=4, seed=0):
    """A tarball in the official layout: five training batches and a test batch."""
    rng = np.random.default_rng(seed)
    batches = {}
    with tarfile.open(path, "w:gz") as archive:
        for name in cifar10.MEMBERS["train"] + cifar10.MEMBERS["test"]:
            data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
            labels = rng.integers(0, 10, size=per_batch).tolist()
            batches[name] = (data, labels)
            blob = pickle.dumps({b"data": data, b"labels": labels, b"batch_label": b"x"})
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))
    return batches


def test_parser_reads_channels_rows_and_labels(tmp_path):
    path = tmp_path / cifar10.ARCHIVE
    batches = write_fixture(path)
    images, labels = cifar10.read_archive(path, "train")
    assert images.shape == (20, 3, 32, 32) and images.dtype == np.uint8
    data, first_labels = batches[cifar10.MEMBERS["train"][0]]
    # row layout: 1024 red values, then green, then blue, each row-major 32 x 32
    assert images[0, 1, 2, 5] == data[0, 1024 + 2 * 32 + 5]
    assert images[3, 2, 31, 31] == data[3, 3071]
    assert labels[:4].tolist() == first_labels
    test_images, test_labels = cifar10.read_archive(path, "test")
    assert test_images.shape == (4, 3, 32, 32)
    assert test_labels.tolist() == batches[cifar10.MEMBERS["test"][0]][1]


def test_load_verifies_the_checksum_and_never_downloads_a_good_file(tmp_path, monkeypatch):
    path = tmp_path / cifar10.ARCHIVE
    write_fixture(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(cifar10, "SHA256", digest)
    monkeypatch.setattr(cifar10, "SIZE_BYTES", path.stat().st_size)

    def no_network(url, timeout=60):
        raise AssertionError("the test tried to download")

    monkeypatch.setattr(download, "_urlopen", no_network)
    images, labels = cifar10.load_cifar10("test", data_dir=tmp_path)
    assert images.dtype == torch.float32 and images.shape == (4, 3, 32, 32)
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert labels.dtype == torch.int64


def test_a_corrupt_cached_file_is_replaced_by_a_verified_download(tmp_path, monkeypatch):
    good = tmp_path / "good.tar.gz"
    write_fixture(good)
    blob = good.read_bytes()
    monkeypatch.setattr(cifar10, "SHA256", hashlib.sha256(blob).hexdigest())
    monkeypatch.setattr(cifar10, "SIZE_BYTES", len(blob))
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / cifar10.ARCHIVE).write_bytes(b"not the archive")
    calls = []

    def fake_urlopen(url, timeout=60):
        calls.append(url)
        return io.BytesIO(blob)

    monkeypatch.setattr(download, "_urlopen", fake_urlopen)
    monkeypatch.setenv("COURSE_DATA_DIR", str(cache))
    images, _ = cifar10.load_cifar10("train")
    assert calls == [cifar10.URL] and images.shape == (20, 3, 32, 32)


def test_a_download_with_the_wrong_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "_urlopen", lambda url, timeout=60: io.BytesIO(b"x" * 10))
    monkeypatch.setattr(cifar10, "SIZE_BYTES", 10)
    with pytest.raises(DataError, match="SHA-256"):
        cifar10.load_cifar10("train", data_dir=tmp_path)
    assert not (tmp_path / cifar10.ARCHIVE).exists()


def test_a_file_that_is_not_the_archive_gives_a_clear_error(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as archive:
        info = tarfile.TarInfo("something_else")
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(DataError, match="not a CIFAR-10"):
        cifar10.read_archive(bad, "train")
    with pytest.raises(ValueError, match="split"):
        cifar10.read_archive(bad, "validation")


def test_the_official_constants():
    assert cifar10.URL == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert len(cifar10.SHA256) == 64 and cifar10.SIZE_BYTES == 170_498_071
    assert len(cifar10.CLASSES) == 10
