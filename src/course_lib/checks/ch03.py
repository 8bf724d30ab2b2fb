"""Checks for the exercises of chapter 3 (real text): the official Attn-FC from its reduction,
the early scores with the neighbours' term, the word of a sentence that the model attends to
most, and the early-time law behind "frequency first"."""

from __future__ import annotations

import math
import numbers
import random

import numpy as np
import torch

from ..sst import (
    PAD,
    build_vocabulary,
    most_attended_word,
    word_frequency,
    word_purity,
)
from ..topic import TopicAttention, make_topic_corpus, reduce_fixed_classifier
from ..training import train_full_batch
from ._core import CheckFailed, run_check
from .solutions import early_score_law, early_score_with_context, lift_embeddings

_FIXED = [
    (["a", "powerful", "sequel", "and", "one", "of", "the", "best", "films"], 1),
    (["the", "worst", "film", "and", "stupid", "too"], 0),
    (["the", "best", "film", "of", "the", "year"], 1),
    (["a", "mess", "a", "stupid", "mess"], 0),
    (["the", "film", "is", "not", "the", "best"], 0),
]


def _random_corpus(seed: int, n: int = 40):
    rng = random.Random(seed)
    words = ["w%d" % i for i in range(15)]
    data = []
    for _ in range(n):
        sentence = [rng.choice(words) for _ in range(rng.randint(1, 8))]
        data.append((sentence, rng.randint(0, 1)))
    return data


def _as_dict(result, name: str) -> dict:
    if not isinstance(result, dict):
        raise CheckFailed(
            f"return a dict mapping each word to its {name}, got {type(result).__name__}."
        )
    return result


# ----------------------------------------------------------- exercise 3.1: lifting the reduction


def _lift_case(seed: int, vocab: int = 7, embed_dim: int = 6, n_classes: int = 3):
    """A fixed classifier U, its Cholesky factor L, initial embeddings that are not small (so
    that the part outside U's span shows) and reduced embeddings after some training."""
    gen = torch.Generator().manual_seed(300 + seed)
    U = torch.randn(embed_dim, n_classes, generator=gen, dtype=torch.float64)
    L = torch.linalg.cholesky(U.T @ U)
    initial = torch.randn(vocab, embed_dim, generator=gen, dtype=torch.float64) * 0.5
    reduced = torch.randn(vocab, n_classes, generator=gen, dtype=torch.float64)
    return reduced, initial, U, L


def _as_matrix(value, shape: tuple) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(
            "return the embeddings as a tensor (or NumPy array) of shape "
            f"(V, d_e), not {type(value).__name__}."
        )
    if tuple(value.shape) == shape[::-1]:
        raise CheckFailed(
            f"the result has shape {tuple(value.shape)}: one row per word is "
            f"expected, (V, d_e) = {shape}."
        )
    if tuple(value.shape) != shape:
        raise CheckFailed(
            f"the result should have shape (V, d_e) = {shape}, got {tuple(value.shape)}."
        )
    return value.detach().double()


def _diagnose_lift(got, reduced, initial, U, L) -> None:
    inv = torch.linalg.inv(L)
    e0 = initial @ U @ inv.T  # rows: L^{-1} U^T w(0)

    def close(a, b) -> bool:
        return bool(torch.allclose(a, b, rtol=1e-6, atol=1e-8))

    if close(got, reduced @ inv @ U.T):
        raise CheckFailed(
            "U L^{-T} e(t) alone drops the part of w(0) outside the span of U's "
            "columns: gradient steps never move it, but it is there. Start from "
            "w(0) and add what the reduced model's embedding moved, mapped back."
        )
    if close(got, initial + reduced @ inv @ U.T):
        raise CheckFailed(
            "you added U L^{-T} e(t) to w(0), but e(0) = L^{-1} U^T w(0) is not "
            "zero: map back only what e moved, e(t) - e(0)."
        )
    if close(got, initial + (reduced - e0) @ inv.T @ U.T) or close(
        got, initial + (reduced - initial @ U @ inv) @ inv.T @ U.T
    ):
        raise CheckFailed(
            "L^{-1} stands where L^{-T} belongs: a step U c of w moves e by "
            "L^{-1} U^T U c = L^T c, so c = L^{-T} times the step of e."
        )
    pinv = torch.linalg.pinv(U.T)  # (d_e, C): undoes U^T only
    if close(got, initial + (reduced - e0) @ pinv.T) or close(got, reduced @ pinv.T):
        raise CheckFailed(
            "pinv(U^T) undoes U^T but not L: the reduced embedding is "
            "e = L^{-1} U^T w, so a step of e is L^T c for a step U c of w."
        )
    raise CheckFailed(
        "the embeddings differ from w(0) plus the step that moved e(0) to e(t), "
        "mapped back to d_e dimensions: a step of w lies in the span of U's "
        "columns, U c; find c from the step of e."
    )


@run_check("the official Attn-FC's embeddings from its reduction's")
def check_lift_embeddings(student_fn) -> None:
    """Check ``student_fn(reduced, initial, U, L) -> (V, d_e)`` against
    ``solutions.lift_embeddings`` on three random cases (initial embeddings not small, so every
    term counts), then on a real Attn-FC trained for a few steps next to its reduction."""
    for seed in range(3):
        reduced, initial, U, L = _lift_case(seed)
        expected = lift_embeddings(reduced, initial, U, L)
        got = _as_matrix(
            student_fn(reduced.clone(), initial.clone(), U.clone(), L.clone()),
            tuple(expected.shape),
        )
        if not torch.allclose(got, expected, rtol=1e-6, atol=1e-8):
            _diagnose_lift(got, reduced, initial, U, L)
    corpus = make_topic_corpus(n_background=20, n_sentences=30, seed=0)
    official = TopicAttention(corpus.vocab_size, 4, embed_dim=8, embedding_std=0.3, seed=1).double()
    small = reduce_fixed_classifier(official).double()
    initial = official.embedding.weight.detach().clone()
    for model in (official, small):
        train_full_batch(model, *corpus.train, 20, 0.5, engine="autograd")
    got = _as_matrix(
        student_fn(
            small.embedding.weight.detach().clone(),
            initial,
            official.classifier.weight.detach().T.clone(),
            small.classifier.weight.detach().clone(),
        ),
        tuple(initial.shape),
    )
    if not torch.allclose(got, official.embedding.weight.detach(), rtol=1e-5, atol=1e-6):
        raise CheckFailed(
            "right on the random cases but not on a trained Attn-FC and its "
            "reduction: does your function assume something about U or L, such "
            "as float32 inputs?"
        )


# ------------------------------------------------ exercise 3.2: the early scores, neighbours in


def _early_law(
    data,
    *,
    dedupe=False,
    dedupe_length=False,
    length=None,
    v_distinct=False,
    v_without_self=False,
    sign=-1.0,
    own=True,
) -> dict:
    """``B_u^2 + sign * sum_i sigma_i c_ui V_i / n_i`` with the variations of the usual mistakes
    (the right law: every option at its default)."""
    rows = []
    for tokens, label in data:
        words = list(dict.fromkeys(tokens)) if dedupe else list(tokens)
        n = len(words) if dedupe_length else len(tokens)
        rows.append((words, (1.0 if label == 1 else -1.0), float(n if length is None else length)))
    b: dict = {}
    for words, sigma, n in rows:
        for w in words:
            b[w] = b.get(w, 0.0) + sigma / n
    law = {w: (v * v if own else 0.0) for w, v in b.items()}
    for words, sigma, n in rows:
        present = list(dict.fromkeys(words)) if v_distinct else words
        total = sum(b[w] for w in present)
        size = len(present) if v_distinct else n
        for w in words:
            context = (total - words.count(w) * b[w]) / n if v_without_self else total / size
            law[w] += sign * sigma * context / n
    return law


def _scale_of(got: dict, expected: dict) -> float | None:
    """``lam`` if ``got = lam * expected`` for every word (to 1e-6), else None."""
    words = sorted(expected)
    x = np.array([float(got[w]) for w in words])
    y = np.array([expected[w] for w in words])
    lam = float(x @ y / (y @ y))
    return lam if np.linalg.norm(x - lam * y) <= 1e-6 * max(np.linalg.norm(x), 1e-300) else None


def _early_values(student_fn, data) -> dict:
    got = _as_dict(student_fn(list(data)), "early score")
    expected = early_score_with_context(data)
    if set(got) != set(expected):
        missing = sorted(set(expected) - set(got))[:3]
        extra = sorted(set(got) - set(expected))[:3]
        raise CheckFailed(
            "the dict should have one key per word of the corpus; missing "
            f"{missing}, unexpected {extra}."
        )
    for w, v in got.items():
        if not isinstance(v, (numbers.Real, np.generic, torch.Tensor)) or isinstance(v, bool):
            raise CheckFailed(f"the value for {w!r} should be a number, got {type(v).__name__}.")
        if not math.isfinite(float(v)):
            raise CheckFailed(f"the value for {w!r} is not a finite number.")
    return got


_EARLY_MISTAKES = (
    (
        dict(sign=+1.0),
        "the neighbours' term has the wrong sign: the score gradient holds (w_u - v_i), so the "
        "context vector's growth is *subtracted* from the word's own.",
    ),
    (
        dict(sign=0.0),
        "every value is the squared own term B_u^2, never negative: you dropped the context "
        "vector v_i from (w_u - v_i). It grows too, and in sentences that already lean the label's "
        "way it pushes the word's score down.",
    ),
    (
        dict(dedupe=True),
        "a word twice in a sentence takes two positions: it gets attention 1/n_i at each, so both "
        "its push and its share of the context count its occurrences, not just the sentences.",
    ),
    (
        dict(dedupe=True, dedupe_length=True),
        "a word twice in a sentence takes two positions: count occurrences, and n_i is the "
        "sentence's number of positions, repeats included.",
    ),
    (
        dict(length=1.0),
        "the attention 1/n_i is missing: each sentence spreads its attention over its n_i "
        "positions, so a sentence's push on a word is 1/n_i per occurrence, and v_i averages "
        "over n_i positions.",
    ),
    (
        dict(v_without_self=True),
        "v_i is the average over *all* positions of sentence i, the word's own included.",
    ),
    (
        dict(v_distinct=True),
        "v_i averages the embeddings over the sentence's positions, so a repeated word counts "
        "each time; you averaged over distinct words.",
    ),
)


@run_check("early scores of Attn-FC, neighbours included")
def check_early_score_with_context(student_fn) -> None:
    """Check ``student_fn(data) -> {word: number}``, proportional (positive factor) to every
    word's early score ``B_u^2 - sum_i sigma_i c_ui V_i / n_i``
    (``solutions.early_score_with_context``), on corpora with repeated words and sentences of
    different lengths; a failing answer is compared with the usual wrong derivations to name the
    mistake."""
    corpora = [_FIXED, _random_corpus(4), _random_corpus(5)]
    for data in corpora:
        got = _early_values(student_fn, data)
        expected = early_score_with_context(data)
        lam = _scale_of(got, expected)
        if lam is not None and lam > 0:
            continue
        if lam is not None:
            raise CheckFailed(
                "your values are the early scores times a negative number: the "
                "gradient-flow step is -grad, and the score grows along "
                "-||q||^2 d loss / d s."
            )
        for options, hint in _EARLY_MISTAKES:
            wrong_lam = _scale_of(got, _early_law(data, **options))
            if wrong_lam is not None and wrong_lam != 0:
                raise CheckFailed(hint)
        mean_length = sum(len(t) for t, _ in data) / len(data)
        if _scale_of(got, _early_law(data, length=mean_length)) is not None:
            raise CheckFailed(
                "you treat every sentence as having the mean length; the law "
                "holds with each sentence's own n_i, and the check's sentences "
                "have different lengths."
            )
        if _scale_of(got, early_score_law(data)) is not None:
            raise CheckFailed(
                "that is exercise 3.4's simplified law; here keep the sentence "
                "lengths, the occurrences and the neighbours' term."
            )
        raise CheckFailed(
            "the values are not proportional to the early scores: follow w_u(t), "
            "then v_i(t), then chapter 2's score gradient a_u (w_u - v_i) . g_i, "
            "summed over the positions of u."
        )


def _attention_case(seed: int):
    gen = torch.Generator().manual_seed(seed)
    vocab = build_vocabulary(_FIXED)
    scores = torch.randn(len(vocab), generator=gen) * 0.1
    sentence = list(_FIXED[seed % len(_FIXED)][0])
    return vocab, scores, sentence


@run_check("the most-attended word of a sentence")
def check_most_attended_word(student_fn) -> None:
    """Check ``student_fn(scores, sentence, vocab) -> word``."""
    for seed in range(6):
        vocab, scores, sentence = _attention_case(seed)
        scores[vocab.pad_id] = 5.0  # the pad has the largest score of all but is in no sentence
        outside = [w for w in vocab.words if w not in sentence and w != PAD]
        # and a word outside the sentence scores above every word in it
        scores[vocab[outside[0]]] = 4.0
        expected = most_attended_word(scores, sentence, vocab)
        got = student_fn(scores.clone(), list(sentence), vocab)
        if isinstance(got, (int, torch.Tensor)) and not isinstance(got, bool):
            raise CheckFailed(
                "return the word itself (a str), not its id or position: e.g. sentence[i] or "
                "vocab.words[u]."
            )
        if not isinstance(got, str):
            raise CheckFailed(f"return a word (str), got {type(got).__name__}.")
        if got == expected:
            continue
        if got == PAD:
            raise CheckFailed(
                "you returned the pad token: look only at the words of the sentence, not at the "
                "whole vocabulary."
            )
        if got not in sentence:
            raise CheckFailed(
                f"{got!r} is not in the sentence: take the largest score among the sentence's "
                "own words (scores[vocab[w]] for w in sentence)."
            )
        ids = torch.tensor(vocab.ids(sentence))
        if got == sentence[int(torch.argmin(scores[ids]))]:
            raise CheckFailed(
                "you picked the word with the *smallest* score; attention is largest where the "
                "score is largest."
            )
        raise CheckFailed(
            f"in {' '.join(sentence)!r} the largest score belongs to {expected!r}, you returned "
            f"{got!r}."
        )
    # the same score for every word: the softmax is uniform, and the first word is the convention
    vocab = build_vocabulary(_FIXED)
    got = student_fn(torch.zeros(len(vocab)), ["the", "best", "film"], vocab)
    if got != "the":
        raise CheckFailed(
            "with equal scores every word gets the same attention; return the first of them "
            f"('the'), got {got!r}."
        )


def _law_corpus(seed: int, n: int = 60, repeats: bool = False):
    """A random binary corpus with words of very different frequencies and purities (so that no
    wrong law fits by accident); with ``repeats``, about half the sentences hold a word twice."""
    rng = random.Random(seed)
    common = ["c%d" % i for i in range(4)]  # in most sentences, both labels
    leaning = ["p%d" % i for i in range(4)]  # mostly positive or mostly negative
    rare = ["r%d" % i for i in range(8)]  # a few sentences, one label
    data = []
    for i in range(n):
        label = rng.randint(0, 1)
        words = [w for w in common if rng.random() < 0.8]
        words += [
            w for j, w in enumerate(leaning) if rng.random() < (0.7 if (j % 2) == label else 0.2)
        ]
        words += [w for j, w in enumerate(rare) if (j % 2) == label and rng.random() < 0.15]
        words = words or ["c0"]
        if repeats and rng.random() < 0.5:
            words.append(rng.choice(words))
        data.append((words, label))
    return data


def _as_number(value):
    """``value`` as a float if it is a real number: Python, NumPy, or a one-element array or
    tensor; else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if (
        isinstance(value, torch.Tensor)
        and value.numel() == 1
        and value.dtype != torch.bool
        and not value.is_complex()
    ):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
        return float(value.reshape(()))
    return None


def _proportional(got: dict, expected: dict) -> bool:
    """got = c * expected for one constant c > 0 (the law fixes the scores up to a constant)."""
    scale = sum(v * v for v in expected.values())
    c = sum(float(got[w]) * expected[w] for w in expected) / scale
    return c > 0 and all(
        abs(float(got[w]) - c * expected[w]) <= 1e-9 * max(1.0, c * max(expected.values()))
        for w in expected
    )


def _count_guesses(data, freq, pos, net):
    """Plausible wrong laws that count sentences or words wrongly, each with its hint."""
    occ_net: dict = {}
    weighted: dict = {}
    for tokens, y in data:
        for w in tokens:
            occ_net[w] = occ_net.get(w, 0) + (1 if y == 1 else -1)
        for w in set(tokens):
            weighted[w] = weighted.get(w, 0.0) + (1 if y == 1 else -1) / len(tokens)
    return [
        (
            {w: float(occ_net[w]) ** 2 for w in freq},
            "you count occurrences; count *sentences*: a word twice in one sentence counts once "
            "in its net label count (use set(tokens)).",
        ),
        (
            {w: weighted[w] ** 2 for w in freq},
            "you weight each sentence by 1/n_i; this exercise treats every sentence length as "
            "equal, so count each sentence +1 or -1.",
        ),
        (
            {w: float(freq[w]) for w in freq},
            "your values follow the frequency; but a positive and a negative sentence push a "
            "word's embedding in opposite directions: which count of its sentences is left once "
            "they cancel?",
        ),
        (
            {w: float(freq[w]) ** 2 for w in freq},
            "you square the frequency; but a positive and a negative sentence push a word's "
            "embedding in opposite directions, so the frequency is not what grows: which count "
            "of its sentences is?",
        ),
        (
            {w: float(abs(net[w])) for w in freq},
            "|net label count| is how the *embedding* grows; the score's speed is the embedding "
            "times the same push, so the score grows with its square.",
        ),
        (
            {w: float(net[w]) for w in freq},
            "the net label count is how the embedding grows (with a sign); the score grows with "
            "the embedding times the same push: square it (negative words gain attention too).",
        ),
        (
            {w: float(pos[w]) ** 2 for w in freq},
            "you count only positive sentences; a negative sentence pushes the other way, so "
            "count it with -1 (positives minus negatives) before squaring.",
        ),
    ]


def _purity_guesses(data, freq, net):
    """Plausible wrong laws built on the purity, each with its hint."""
    pure = word_purity(data)
    return [
        (
            {w: pure[w] for w in freq},
            "purity alone forgets how many sentences push: a word seen once is perfectly pure. "
            "Use the net label count, frequency times purity in size, and square it.",
        ),
        (
            {w: pure[w] ** 2 for w in freq},
            "purity squared forgets how many sentences push: multiply purity by the frequency "
            "(the net label count) before squaring.",
        ),
        (
            {w: float(net[w]) ** 2 / freq[w] for w in freq},
            "you divide the squared net label count by the frequency (that is frequency times "
            "purity squared); square the net label count itself.",
        ),
    ]


def _law_guesses(data, freq, pos, net):
    """Plausible wrong laws, each with the hint it earns."""
    return _count_guesses(data, freq, pos, net) + _purity_guesses(data, freq, net)


@run_check("the early-time law behind 'frequency first'")
def check_early_score_law(student_fn) -> None:
    """Check ``student_fn(data) -> {word: value proportional to its early Attn-FC score}``;
    the values may be Python, NumPy or one-element torch numbers."""
    for data in (_law_corpus(0), _law_corpus(1), _law_corpus(2), _law_corpus(3, repeats=True)):
        expected = early_score_law(data)
        got = _as_dict(student_fn(list(data)), "predicted early score")
        if set(got) != set(expected):
            missing = sorted(set(expected) - set(got))[:3]
            raise CheckFailed(
                "the dict should have one key per word of the corpus; missing for example "
                f"{missing}."
            )
        values = {w: _as_number(v) for w, v in got.items()}
        odd = next((w for w, v in values.items() if v is None or not math.isfinite(v)), None)
        if odd is not None:
            raise CheckFailed(
                f"every value should be a finite number; {odd!r} maps to {got[odd]!r} "
                f"({type(got[odd]).__name__})."
            )
        got = values
        if _proportional(got, expected):
            continue
        if _proportional({w: -v for w, v in got.items()}, expected):
            raise CheckFailed(
                "your values are the law times a negative number: the early score *grows* "
                "(attention rises on every word with a nonzero net label count), so the "
                "constant is positive."
            )
        freq = word_frequency(data)
        pos = {w: sum(1 for t, y in data if w in t and y == 1) for w in freq}
        net = {w: 2 * pos[w] - freq[w] for w in freq}
        for guess, hint in _law_guesses(data, freq, pos, net):
            if _proportional(got, guess) and not _proportional(guess, expected):
                raise CheckFailed(hint)
        bad = max(expected, key=lambda w: expected[w])
        raise CheckFailed(
            f"your values are not proportional to the early scores: for example {bad!r}, in "
            f"{pos[bad]} positive and {freq[bad] - pos[bad]} negative sentences, gets "
            f"{float(got[bad]):.3g}. Follow the steps: how one sentence pushes an embedding, "
            "what the pushes of a word's sentences add up to, and how fast the score grows with "
            "that embedding."
        )
