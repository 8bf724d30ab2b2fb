"""The Stanford Sentiment Treebank, as the model reads it (chapter 3).

The files (what they hold, where they are read from, the copies bundled with the package, their
checksums and the download of last resort) and the tokenisation live in
:mod:`course_lib.data.sst` (``load_sst``, ``load_sst_splits``, ``tokenize``, ``SPLITS``).

This module turns sentences into what the model eats (chapter 3, "From text to
tensors"): a vocabulary with a padding token, padded ``(n, length)``
tensors with a mask, and the two word statistics of the chapter, *frequency* (how many training
sentences contain a word) and *purity* (how one-sided its label distribution is), and the
measurement of chapter 2's identity on real words (``real_word_sen``).  Training on SST is
``training.train_with_early_stopping``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

import torch

from ._validate import check_int
from .identity import sen_norm_curve

PAD = "$PAD$"


# --------------------------------------------------------------------------- tensors


def _check_data(data, name: str = "data") -> None:
    if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
        raise TypeError(
            f"{name} must be a list of (tokens, label) pairs, got {type(data).__name__}"
        )
    for i, item in enumerate(data[:3]):
        if not (
            isinstance(item, (tuple, list))
            and len(item) == 2
            and isinstance(item[0], (list, tuple))
        ):
            raise TypeError(
                f"{name}[{i}] must be a (tokens, label) pair with tokens a list of str, "
                f"got {item!r}"
            )


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
        raise TypeError(
            f"vocab must be a Vocabulary (build_vocabulary), got {type(vocab).__name__}"
        )
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
        raise ValueError(
            f"scores has {scores.numel()} entries but the vocabulary has {len(vocab)} words"
        )
    if isinstance(sentence, str) or not isinstance(sentence, Sequence) or len(sentence) == 0:
        raise ValueError("sentence must be a non-empty list of words")
    ids = torch.tensor(vocab.ids(sentence), dtype=torch.long)
    return sentence[int(torch.argmax(scores.detach().cpu()[ids]))]


def attended_word_stats(
    scores: torch.Tensor, data, word: str, vocab: Vocabulary, purity: dict, frequency: dict
) -> tuple[float, float]:
    """Chapter 3, "frequency first, purity later": over the sentences of ``data`` containing
    ``word``, find the most attended word of each (:func:`most_attended_word`) and return the
    mean purity and frequency of those words (the paper's set ``A_u(t)``).

    Parameters
    ----------
    scores
        ``(vocab_size,)`` every word's score at one moment of training.
    data, vocab
        The sentences (a list of ``(tokens, label)``) and their vocabulary.
    word
        The word whose sentences are looked at.
    purity, frequency
        ``word_purity(data)`` and ``word_frequency(data)``.

    Returns
    -------
    (mean purity, mean frequency)
        Floats, over the most attended words of the sentences containing ``word``.
    """
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


# ------------------------------------------------------------------ the identity on real words


class RealWordSEN(NamedTuple):
    """The identity on real words (chapter 3): for each of the chosen words, its ``score``
    ``s_u``, the measured ``scaled_norm`` ``||q|| ||w_u||``, ``m`` (``m_u``, the mean length of
    the training sentences containing it, minus one), the ``theory`` value
    ``sqrt(2 (s_u + (e^{s_u} - 1) / m_u))`` and the relative ``gap``
    ``|measured - theory| / theory``."""

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
    lengths = mean_length_containing(data)  # checks data
    scores = model.scores().detach().cpu().double()
    candidates = [
        (float(scores[vocab[w]]), w)
        for w, n in lengths.items()
        if n > 1 and w in vocab and w != PAD
    ]
    chosen = [w for _, w in sorted(candidates, key=lambda t: (-t[0], t[1]))[:top]]
    ids = torch.tensor(vocab.ids(chosen), dtype=torch.long)
    s = scores[ids]
    m = torch.tensor([lengths[w] - 1 for w in chosen], dtype=torch.float64)
    measured = model.scaled_norms().cpu().double()[ids]
    theory = sen_norm_curve(s, m)
    gap = (measured - theory).abs() / theory.clamp(min=1e-12)
    return RealWordSEN(chosen, s, measured, m, theory, gap)
