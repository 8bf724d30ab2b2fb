"""Each chapter-3 check passes the reference, says "to do" for an unimplemented stub, and fails a
plausible wrong answer with a hint that points at the mistake; none of them raises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import checks, sst, topic
from course_lib.checks import solutions

# ----------------------------------------------------------- exercise 3.1: lifting the reduction


def _inv(L):
    return torch.linalg.inv(L)


def test_lift_reference_and_other_correct_forms_pass(run_check):
    def outside_plus_span(reduced, initial, U, L):  # (I - P) w(0) + U L^{-T} e(t)
        projector = U @ torch.linalg.solve(U.T @ U, U.T)
        return initial @ (torch.eye(len(U), dtype=U.dtype) - projector) + reduced @ _inv(L) @ U.T

    def with_pinv(reduced, initial, U, L):  # U L^{-T} = pinv(U^T) L
        e0 = initial @ U @ _inv(L).T
        return initial + (reduced - e0) @ (torch.linalg.pinv(U.T) @ L).T

    def in_numpy(reduced, initial, U, L):
        r, w0, u, lower = (t.numpy() for t in (reduced, initial, U, L))
        e0 = np.linalg.solve(lower, (w0 @ u).T).T
        return w0 + np.linalg.solve(lower.T, (r - e0).T).T @ u.T

    for fn in (solutions.lift_embeddings, outside_plus_span, with_pinv, in_numpy):
        ok, out = run_check(checks.check_lift_embeddings, fn)
        assert ok and "[passed]" in out, (fn, out)


def test_lift_stub_is_to_do(run_check):
    def lift_embeddings(reduced, initial, U, L):
        raise NotImplementedError

    ok, out = run_check(checks.check_lift_embeddings, lift_embeddings)
    assert not ok and "[to do]" in out


def test_lift_wrong_derivations(run_check):
    def span_only(reduced, initial, U, L):
        return reduced @ _inv(L) @ U.T

    def e0_not_subtracted(reduced, initial, U, L):
        return initial + reduced @ _inv(L) @ U.T

    def transpose_mixed(reduced, initial, U, L):
        e0 = initial @ U @ _inv(L).T
        return initial + (reduced - e0) @ _inv(L).T @ U.T

    def pinv_only(reduced, initial, U, L):
        e0 = initial @ U @ _inv(L).T
        return initial + (reduced - e0) @ torch.linalg.pinv(U.T).T

    def times_l(reduced, initial, U, L):
        e0 = initial @ U @ _inv(L).T
        return initial + (reduced - e0) @ L.T @ U.T

    cases = {
        "drops the part of w(0) outside": span_only,
        "e(0) = L^{-1} U^T w(0) is not zero": e0_not_subtracted,
        "L^{-1} stands where L^{-T} belongs": transpose_mixed,
        "pinv(U^T) undoes U^T but not L": pinv_only,
        "find c from the step of e": times_l,
    }
    for hint, wrong in cases.items():
        ok, out = run_check(checks.check_lift_embeddings, wrong)
        assert not ok and "[wrong]" in out and hint in out, (hint, out)


def test_lift_shapes_and_types(run_check):
    ok, out = run_check(
        checks.check_lift_embeddings, lambda r, w, U, L: solutions.lift_embeddings(r, w, U, L).T
    )
    assert not ok and "one row per word" in out
    ok, out = run_check(
        checks.check_lift_embeddings,
        lambda r, w, U, L: solutions.lift_embeddings(r, w, U, L).tolist(),
    )
    assert not ok and "return the embeddings as a tensor" in out


def test_lift_embeddings_matches_a_trained_official_model_and_validates():
    from course_lib.training import train_full_batch

    corpus = topic.make_topic_corpus(n_background=20, n_sentences=30, seed=1)
    official = topic.TopicAttention(
        corpus.vocab_size, 4, embed_dim=7, embedding_std=0.2, seed=3
    ).double()
    small = topic.reduce_fixed_classifier(official).double()
    initial = official.embedding.weight.detach().clone()
    for model in (official, small):
        train_full_batch(model, *corpus.train, 15, 0.5, engine="autograd")
    U, L = official.classifier.weight.detach().T, small.classifier.weight.detach()
    lifted = solutions.lift_embeddings(small.embedding.weight.detach(), initial, U, L)
    moved = (official.embedding.weight.detach() - initial).abs().max()
    assert moved > 0.05
    assert (lifted - official.embedding.weight.detach()).abs().max() < 1e-6 * moved
    with pytest.raises(ValueError, match="L must be"):
        solutions.lift_embeddings(small.embedding.weight, initial, U, torch.eye(2))
    with pytest.raises(ValueError, match="reduced must be"):
        solutions.lift_embeddings(initial, initial, U, L)
    with pytest.raises(ValueError, match="initial must be a 2-D"):
        solutions.lift_embeddings(small.embedding.weight, initial[0], U, L)


# ------------------------------------------------ exercise 3.2: the early scores, neighbours in


def _by_hand(data, *, own_sign=1.0, neighbour_sign=-1.0, distinct=False, n_of=len):
    """B_u^2 - sum_i sigma_i c_ui V_i / n_i written another way (or with one mistake)."""
    sentences = [
        (list(dict.fromkeys(t)) if distinct else list(t), 1 if y else -1, n_of(t)) for t, y in data
    ]
    b = {}
    for words, sigma, n in sentences:
        for w in words:
            b[w] = b.get(w, 0.0) + sigma / n
    law = {w: own_sign * v * v for w, v in b.items()}
    for words, sigma, n in sentences:
        v = sum(b[w] for w in words) / n
        for w in words:
            law[w] += neighbour_sign * sigma * v / n
    return law


def test_early_with_context_reference_and_other_forms_pass(run_check):
    def per_sentence_sum(data):  # sum_i sigma_i (c_ui / n_i) (B_u - V_i), scaled by 1000
        b = {}
        for tokens, y in data:
            for w in tokens:
                b[w] = b.get(w, 0.0) + (1 if y else -1) / len(tokens)
        law = dict.fromkeys(b, 0.0)
        for tokens, y in data:
            v = sum(b[w] for w in tokens) / len(tokens)
            for w in set(tokens):
                law[w] += (1 if y else -1) * tokens.count(w) / len(tokens) * (b[w] - v)
        return {w: 1000 * x for w, x in law.items()}

    def numpy_values(data):
        law = solutions.early_score_with_context(data)
        return {w: np.float64(v) * 3 for w, v in law.items()}

    def tensor_values(data):
        return {
            w: torch.tensor(v, dtype=torch.float64)
            for w, v in solutions.early_score_with_context(data).items()
        }

    for fn in (
        solutions.early_score_with_context,
        per_sentence_sum,
        _by_hand,
        numpy_values,
        tensor_values,
    ):
        ok, out = run_check(checks.check_early_score_with_context, fn)
        assert ok and "[passed]" in out, (fn, out)


def test_early_with_context_stub_is_to_do(run_check):
    def early_score_with_context(data):
        raise NotImplementedError

    ok, out = run_check(checks.check_early_score_with_context, early_score_with_context)
    assert not ok and "[to do]" in out


def test_early_with_context_wrong_derivations(run_check):
    cases = {
        "wrong sign": lambda d: _by_hand(d, neighbour_sign=1.0),
        "dropped the context vector": lambda d: _by_hand(d, neighbour_sign=0.0),
        "count occurrences": lambda d: _by_hand(d, distinct=True, n_of=lambda t: len(set(t))),
        "two positions": lambda d: _by_hand(d, distinct=True),
        "attention 1/n_i is missing": lambda d: _by_hand(d, n_of=lambda t: 1),
        "times a negative number": lambda d: {w: -v for w, v in _by_hand(d).items()},
        "exercise 3.4's simplified law": solutions.early_score_law,
    }

    def mean_length(data):
        n = sum(len(t) for t, _ in data) / len(data)
        return _by_hand(data, n_of=lambda t: n)

    def without_self(data):
        b = {}
        for tokens, y in data:
            for w in tokens:
                b[w] = b.get(w, 0.0) + (1 if y else -1) / len(tokens)
        law = {w: v * v for w, v in b.items()}
        for tokens, y in data:
            for w in tokens:
                others = sum(b[x] for x in tokens if x != w) / len(tokens)
                law[w] -= (1 if y else -1) * others / len(tokens)
        return law

    def distinct_context(data):
        b = {}
        for tokens, y in data:
            for w in tokens:
                b[w] = b.get(w, 0.0) + (1 if y else -1) / len(tokens)
        law = {w: v * v for w, v in b.items()}
        for tokens, y in data:
            v = sum(b[w] for w in set(tokens)) / len(set(tokens))
            for w in tokens:
                law[w] -= (1 if y else -1) * v / len(tokens)
        return law

    cases["the mean length"] = mean_length
    cases["the word's own included"] = without_self
    cases["averaged over distinct words"] = distinct_context
    for hint, wrong in cases.items():
        ok, out = run_check(checks.check_early_score_with_context, wrong)
        assert not ok and "[wrong]" in out and hint in out, (hint, out)
        # no hint of 3.2 states exercise 3.4's law
        assert "net label" not in out, (hint, out)


def test_early_with_context_bad_returns(run_check):
    ok, out = run_check(checks.check_early_score_with_context, lambda data: [1.0])
    assert not ok and "dict" in out
    ok, out = run_check(checks.check_early_score_with_context, lambda data: {"x": 1.0})
    assert not ok and "one key per word" in out
    ok, out = run_check(
        checks.check_early_score_with_context,
        lambda data: dict.fromkeys(solutions.early_score_with_context(data), "1"),
    )
    assert not ok and "should be a number" in out
    ok, out = run_check(
        checks.check_early_score_with_context,
        lambda data: dict.fromkeys(solutions.early_score_with_context(data), np.inf),
    )
    assert not ok and "not a finite number" in out


def test_early_score_with_context_predicts_a_short_run():
    """Two small steps of a reduced Attn-FC on a toy corpus with repeats and different lengths:
    the scores are proportional to the law (and not to the law without the neighbours)."""
    from course_lib.topic import TopicAttention, reduce_fixed_classifier
    from course_lib.training import train_full_batch

    data = [
        (["good", "film", "good"], 1),
        (["bad", "film"], 0),
        (["a", "good", "plot"], 1),
        (["a", "bad", "bad", "film", "plot"], 0),
        (["film"], 1),
        (["a", "plot"], 0),
    ]
    vocab = sst.build_vocabulary(data)
    batch = sst.pad_batch(data, vocab)
    official = TopicAttention(len(vocab), 2, embed_dim=20, embedding_std=0.0)
    model = reduce_fixed_classifier(official).double()
    train_full_batch(
        model, batch.tokens, batch.labels, steps=2, lr=1e-3, mask=batch.mask, engine="autograd"
    )
    scores = model.scores().detach()
    law = solutions.early_score_with_context(data)
    words = sorted(law)
    x = torch.tensor([float(scores[vocab[w]]) for w in words], dtype=torch.float64)
    y = torch.tensor([law[w] for w in words], dtype=torch.float64)
    lam = float(x @ y / (y @ y))
    assert lam > 0 and float((x - lam * y).norm()) < 1e-3 * float(x.norm())
    own = torch.tensor([_by_hand(data, neighbour_sign=0.0)[w] for w in words], dtype=torch.float64)
    lam_own = float(x @ own / (own @ own))
    assert float((x - lam_own * own).norm()) > 0.1 * float(x.norm())
    with pytest.raises(ValueError, match="labels 0/1"):
        solutions.early_score_with_context([(["a"], 2)])
    with pytest.raises(ValueError, match="at least one word"):
        solutions.early_score_with_context([([], 1)])


def test_most_attended_word_check(run_check):
    ok, out = run_check(checks.check_most_attended_word, sst.most_attended_word)
    assert ok and "[passed]" in out

    def stub(scores, sentence, vocab):
        raise NotImplementedError

    ok, out = run_check(checks.check_most_attended_word, stub)
    assert not ok and "[to do]" in out

    def whole_vocab(scores, sentence, vocab):
        return vocab.words[int(torch.argmax(scores))]

    ok, out = run_check(checks.check_most_attended_word, whole_vocab)
    assert not ok and "pad token" in out

    def outside(scores, sentence, vocab):
        scores = scores.clone()
        scores[vocab.pad_id] = -1e9
        return vocab.words[int(torch.argmax(scores))]

    ok, out = run_check(checks.check_most_attended_word, outside)
    assert not ok and "not in the sentence" in out

    def smallest(scores, sentence, vocab):
        return min(sentence, key=lambda w: float(scores[vocab[w]]))

    ok, out = run_check(checks.check_most_attended_word, smallest)
    assert not ok and "*smallest*" in out

    def position(scores, sentence, vocab):
        return int(torch.argmax(scores[torch.tensor(vocab.ids(sentence))]))

    ok, out = run_check(checks.check_most_attended_word, position)
    assert not ok and "the word itself" in out

    def last_of_ties(scores, sentence, vocab):
        values = [float(scores[vocab[w]]) for w in sentence]
        best = max(values)
        return [w for w, v in zip(sentence, values) if v == best][-1]

    ok, out = run_check(checks.check_most_attended_word, last_of_ties)
    assert not ok and "first" in out

    ok, out = run_check(checks.check_most_attended_word, "not a function")
    assert not ok and "[not run]" in out


def test_early_score_law_check(run_check):
    ok, out = run_check(checks.check_early_score_law, solutions.early_score_law)
    assert ok and "[passed]" in out

    ok, out = run_check(
        checks.check_early_score_law,
        lambda data: {w: 3.5 * v for w, v in solutions.early_score_law(data).items()},
    )
    assert ok, "the law fixes the scores only up to a positive constant"

    def stub(data):
        raise NotImplementedError

    ok, out = run_check(checks.check_early_score_law, stub)
    assert not ok and "[to do]" in out
    # the title, printed on every run, must not state the law exercise 3.4 asks for
    assert "^2" not in out and "net label" not in out and "squar" not in out, out

    def counts(data):
        frequency = sst.word_frequency(data)
        positive = {w: sum(1 for t, y in data if w in t and y == 1) for w in frequency}
        return frequency, positive

    def frequency_only(data):
        return {w: float(n) for w, n in sst.word_frequency(data).items()}

    ok, out = run_check(checks.check_early_score_law, frequency_only)
    assert not ok and "[wrong]" in out and "follow the frequency" in out
    assert "opposite directions" in out

    def frequency_squared(data):
        return {w: float(n) ** 2 for w, n in sst.word_frequency(data).items()}

    ok, out = run_check(checks.check_early_score_law, frequency_squared)
    assert not ok and "square the frequency" in out

    def linear(data):
        frequency, positive = counts(data)
        return {w: float(abs(2 * positive[w] - n)) for w, n in frequency.items()}

    ok, out = run_check(checks.check_early_score_law, linear)
    assert not ok and "*embedding*" in out and "square" in out

    def signed(data):
        frequency, positive = counts(data)
        return {w: float(2 * positive[w] - n) for w, n in frequency.items()}

    ok, out = run_check(checks.check_early_score_law, signed)
    assert not ok and "square it" in out

    def positives_squared(data):
        frequency, positive = counts(data)
        return {w: float(positive[w]) ** 2 for w in frequency}

    ok, out = run_check(checks.check_early_score_law, positives_squared)
    assert not ok and "-1" in out

    ok, out = run_check(checks.check_early_score_law, sst.word_purity)
    assert not ok and "seen once is perfectly pure" in out

    def purity_squared(data):
        return {w: p**2 for w, p in sst.word_purity(data).items()}

    ok, out = run_check(checks.check_early_score_law, purity_squared)
    assert not ok and "multiply purity by the frequency" in out

    def cubed(data):
        return {w: v**1.5 for w, v in solutions.early_score_law(data).items()}

    ok, out = run_check(checks.check_early_score_law, cubed)
    assert not ok and "not proportional to the early scores" in out
    # the catch-all hint guides through the steps without stating the law
    assert "^2" not in out and "net label" not in out and "squar" not in out, out

    ok, out = run_check(checks.check_early_score_law, lambda data: [1.0])
    assert not ok and "dict" in out


def _net_counts(data, *, per_occurrence=False):
    net: dict = {}
    for tokens, label in data:
        for w in tokens if per_occurrence else set(tokens):
            net[w] = net.get(w, 0) + (1 if label == 1 else -1)
    return net


def test_early_score_law_occurrences_instead_of_sentences(run_check):
    def occurrences(data):
        return {w: float(n) ** 2 for w, n in _net_counts(data, per_occurrence=True).items()}

    ok, out = run_check(checks.check_early_score_law, occurrences)
    assert not ok and "[wrong]" in out and "you count occurrences" in out and "set(tokens)" in out


def test_early_score_law_other_wrong_laws(run_check):
    def by_length(data):
        net: dict = {}
        for tokens, label in data:
            for w in set(tokens):
                net[w] = net.get(w, 0.0) + (1 if label == 1 else -1) / len(tokens)
        return {w: v**2 for w, v in net.items()}

    ok, out = run_check(checks.check_early_score_law, by_length)
    assert not ok and "1/n_i" in out

    def negative(data):
        return {w: -(float(n) ** 2) for w, n in _net_counts(data).items()}

    ok, out = run_check(checks.check_early_score_law, negative)
    assert not ok and "negative number" in out

    def over_frequency(data):
        frequency = sst.word_frequency(data)
        return {w: float(n) ** 2 / frequency[w] for w, n in _net_counts(data).items()}

    ok, out = run_check(checks.check_early_score_law, over_frequency)
    assert not ok and "divide the squared net label count by the frequency" in out

    ok, out = run_check(
        checks.check_early_score_law,
        lambda data: {w: str(v) for w, v in solutions.early_score_law(data).items()},
    )
    assert not ok and "finite number" in out and "str" in out
    ok, out = run_check(
        checks.check_early_score_law,
        lambda data: {w: float("nan") for w in sst.word_frequency(data)},
    )
    assert not ok and "finite number" in out


def test_early_score_law_numpy_torch_and_int_values_pass(run_check):
    import numpy as np

    forms = {
        "numpy int": lambda data: {w: np.int64(n) ** 2 for w, n in _net_counts(data).items()},
        "python int": lambda data: {w: n * n for w, n in _net_counts(data).items()},
        "numpy float": lambda data: {w: np.float32(n * n) for w, n in _net_counts(data).items()},
        "tensor": lambda data: {w: torch.tensor(n) ** 2 for w, n in _net_counts(data).items()},
        "one-element array": lambda data: {
            w: np.array([n * n / 7]) for w, n in _net_counts(data).items()
        },
    }
    for name, right in forms.items():
        ok, out = run_check(checks.check_early_score_law, right)
        assert ok and "[passed]" in out, (name, out)
