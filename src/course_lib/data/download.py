"""Checksummed downloads and the course's data cache (used from chapter 3 on).

Every file the course downloads goes through :func:`fetch_verified`: it is written to a
temporary file beside its destination, its size and SHA-256 are checked, and only then is it
moved into place, so a broken download never leaves a file that looks genuine.  The folder
downloads land in is :func:`cache_dir`: ``$COURSE_DATA_DIR`` when set, else the per-user cache
``~/.cache/how-attention-learns`` (``$XDG_CACHE_HOME`` respected).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CHUNK = 1 << 20


class DataError(RuntimeError):
    """A data file is missing, truncated or corrupt, or could not be downloaded; the message
    names the file and says what to do."""


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/how-attention-learns`` (``~/.cache/how-attention-learns`` when
    ``XDG_CACHE_HOME`` is unset), not created."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "how-attention-learns"


def cache_dir() -> Path:
    """The folder downloads land in: ``$COURSE_DATA_DIR`` if set, else :func:`user_cache_dir`;
    created on demand."""
    env = os.environ.get("COURSE_DATA_DIR", "").strip()
    folder = Path(env) if env else user_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, as 64 hex digits, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _urlopen(url: str, timeout: float = 60):
    """Open ``url`` for reading (the one place the course touches the network; tests replace
    it).  Returns a context manager with ``read(n)`` and ``headers``."""
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (fixed URLs of the course)


def _megabytes(size: int | None) -> str:
    return "size unknown" if size is None else f"{size / 1e6:.1f} MB"


def git_blob_sha1(path: str | os.PathLike) -> str:
    """The id git gives a file's content: SHA-1 of ``b"blob <size>\\0" + content`` (40 hex).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> _ = p.write_bytes(b"hello\\n")
    >>> git_blob_sha1(p)  # what `git hash-object hello.txt` prints
    'ce013625030ba8dba906f756967f9e9ca394464a'
    """
    path = Path(path)
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _checksum(sha256: str | None, git_blob: str | None):
    """(name, expected value, function of a path) of the one checksum given."""
    if (sha256 is None) == (git_blob is None):
        raise ValueError("give exactly one checksum: sha256 (64 hex digits) or git_blob (40)")
    if sha256 is not None:
        if not (isinstance(sha256, str) and len(sha256) == 64):
            raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
        return "SHA-256", sha256, sha256_of
    if not (isinstance(git_blob, str) and len(git_blob) == 40):
        raise ValueError(f"git_blob must be 40 hex digits, got {git_blob!r}")
    return "git blob", git_blob, git_blob_sha1


def fetch_verified(
    url: str,
    destination: str | os.PathLike,
    sha256: str | None = None,
    *,
    git_blob: str | None = None,
    size_bytes: int | None = None,
    what: str = "",
) -> Path:
    """Return ``destination`` holding the genuine file, downloading it if needed.

    The file is identified by its SHA-256 (``sha256``) or, for a file whose only published
    checksum is the id git gives it (HateXplain's posts, chapter 6), by that ``git_blob`` id;
    give exactly one.  If ``destination`` exists and matches, it is returned untouched.
    Otherwise ``url`` is downloaded to a temporary file beside ``destination`` (one line
    printed: what is fetched, from where, and how large it is), its size (when ``size_bytes``
    is given) and its checksum are checked, and only then is it moved into place.  Any failure
    raises :class:`DataError` naming the file, the expected and actual checksum or size, and
    what to do; nothing is left behind.

    Parameters
    ----------
    url, destination
        Where the file comes from, and the path it must end up at.
    sha256, git_blob
        Its checksum: 64 hex digits of SHA-256, or git's 40-hex blob id (exactly one).
    size_bytes
        Its size, when known (a download of another size is refused).
    what
        A few words naming the file, for the printed line and the messages.

    Returns
    -------
    pathlib.Path
        ``destination``.
    """
    request = _request(url, destination, sha256, git_blob, size_bytes, what)
    destination = request.destination
    if destination.exists() and request.checksum_of(destination) == request.expected:
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".part", dir=destination.parent
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            written = _download(request, handle)
        _verify(request, tmp, written)
        os.replace(tmp, destination)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return destination


@dataclass(frozen=True)
class _Request:
    """One call of :func:`fetch_verified`, its arguments checked: where the file comes from and
    goes, how it is named in messages, its checksum (``kind``, ``expected``, ``checksum_of``)
    and its size when known."""

    url: str
    destination: Path
    label: str
    kind: str
    expected: str
    checksum_of: Callable[[str | os.PathLike], str]
    size_bytes: int | None

    @property
    def advice(self) -> str:
        """What to do after a failed download (the end of every message)."""
        return (
            f"Delete any partial file and try again, or download {self.url} yourself, check its "
            f"{self.kind} ({self.expected}) and put it at {self.destination}."
        )


def _request(url, destination, sha256, git_blob, size_bytes, what) -> _Request:
    """:func:`fetch_verified`'s arguments checked (in their order) and gathered."""
    if not isinstance(url, str) or not url:
        raise TypeError(f"url must be a non-empty str, got {url!r}")
    if not isinstance(destination, (str, os.PathLike)):
        raise TypeError(f"destination must be a path, got {type(destination).__name__}")
    kind, expected, checksum_of = _checksum(sha256, git_blob)
    if size_bytes is not None and (
        isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes < 0
    ):
        raise ValueError(f"size_bytes must be a non-negative int or None, got {size_bytes!r}")
    destination = Path(destination)
    label = what or destination.name
    return _Request(url, destination, label, kind, expected, checksum_of, size_bytes)


def _download(request: _Request, handle) -> int:
    """Copy ``request.url`` into the open file ``handle`` (one line printed first); the number
    of bytes written.  A network error of any kind becomes a :class:`DataError` with advice."""
    written = 0
    try:
        with _urlopen(request.url) as response:
            announced = request.size_bytes
            if announced is None:
                length = getattr(response, "headers", {}).get("Content-Length")
                announced = int(length) if length and str(length).isdigit() else None
            print(
                f"Downloading {request.label} ({_megabytes(announced)}) from {request.url} to "
                f"{request.destination}"
            )
            for block in iter(lambda: response.read(CHUNK), b""):
                handle.write(block)
                written += len(block)
    except DataError:
        raise
    except Exception as error:  # network errors of every kind get the same advice
        raise DataError(
            f"could not download {request.label} from {request.url}: {error}. {request.advice}"
        ) from error
    return written


def _verify(request: _Request, tmp: str, written: int) -> None:
    """Raise :class:`DataError` unless the download at ``tmp`` (``written`` bytes) has the
    expected size (when known) and checksum."""
    label, url, destination = request.label, request.url, request.destination
    if request.size_bytes is not None and written != request.size_bytes:
        problem = "truncated" if written < request.size_bytes else "too long"
        raise DataError(
            f"the download of {label} ({url}) is {problem}: {written} bytes, expected "
            f"{request.size_bytes}; nothing was written to {destination}. {request.advice}"
        )
    actual = request.checksum_of(tmp)
    if actual != request.expected:
        raise DataError(
            f"the download of {label} ({url}) fails its {request.kind} check (got {actual}, "
            f"expected {request.expected}); nothing was written to {destination}. "
            f"{request.advice}"
        )
