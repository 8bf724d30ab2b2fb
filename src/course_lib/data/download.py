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
from pathlib import Path

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


def fetch_verified(
    url: str,
    destination: str | os.PathLike,
    sha256: str,
    *,
    size_bytes: int | None = None,
    what: str = "",
) -> Path:
    """Return ``destination`` holding the genuine file (``sha256``), downloading it if needed.

    If ``destination`` exists and matches ``sha256``, it is returned untouched.  Otherwise
    ``url`` is downloaded to a temporary file beside ``destination`` (one line printed: what is
    fetched, from where, and how large it is), its size (when ``size_bytes`` is given) and its
    SHA-256 are checked, and only then is it moved into place.  Any failure raises
    :class:`DataError` naming the file, the expected and actual checksum or size, and what to
    do; nothing is left behind.
    """
    if not isinstance(url, str) or not url:
        raise TypeError(f"url must be a non-empty str, got {url!r}")
    if not isinstance(destination, (str, os.PathLike)):
        raise TypeError(f"destination must be a path, got {type(destination).__name__}")
    if not (isinstance(sha256, str) and len(sha256) == 64):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    if size_bytes is not None and (isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes < 0):
        raise ValueError(f"size_bytes must be a non-negative int or None, got {size_bytes!r}")
    destination = Path(destination)
    label = what or destination.name
    advice = (
        f"Delete any partial file and try again, or download {url} yourself, check its SHA-256 "
        f"({sha256}) and put it at {destination}."
    )
    if destination.exists() and sha256_of(destination) == sha256:
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    try:
        digest, written = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as handle:
            try:
                with _urlopen(url) as response:
                    announced = size_bytes
                    if announced is None:
                        length = getattr(response, "headers", {}).get("Content-Length")
                        announced = int(length) if length and str(length).isdigit() else None
                    print(f"Downloading {label} ({_megabytes(announced)}) from {url} to {destination}")
                    for block in iter(lambda: response.read(CHUNK), b""):
                        digest.update(block)
                        handle.write(block)
                        written += len(block)
            except DataError:
                raise
            except Exception as error:  # network errors of every kind get the same advice
                raise DataError(f"could not download {label} from {url}: {error}. {advice}") from error
        if size_bytes is not None and written != size_bytes:
            problem = "truncated" if written < size_bytes else "too long"
            raise DataError(
                f"the download of {label} ({url}) is {problem}: {written} bytes, expected "
                f"{size_bytes}; nothing was written to {destination}. {advice}"
            )
        actual = digest.hexdigest()
        if actual != sha256:
            raise DataError(
                f"the download of {label} ({url}) fails its SHA-256 check (got {actual}, expected "
                f"{sha256}); nothing was written to {destination}. {advice}"
            )
        os.replace(tmp, destination)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return destination
