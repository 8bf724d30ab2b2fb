"""The chapter-1 checks pass the reference, fail plausible wrong answers with the right hint."""

import math

import torch

from course_lib import checks
from course_lib.topic import attention_forward, label_sentences



def test_forward_reference_passes(run_check):
    ok, out = run_check(checks.check_attention_forward, attention_forward)
    assert ok and "[passed]" in out


def test_forward_softmax_over_batch(run_check):
    def wrong(tokens, embedding, keys, query):
        s = keys[tokens] @ query
        a = torch.softmax(s, dim=0)
        return s, a, torch.einsum("bl,bld->bd", a, embedding[tokens])

    ok, out = run_check(checks.check_attention_forward, wrong)
    assert not ok and "dim=-1" in out


def test_forward_scaled_scores(run_check):
    def wrong(tokens, embedding, keys, query):
        s = keys[tokens] @ query / math.sqrt(keys.shape[1])
        a = torch.softmax(s, dim=-1)
        return s, a, torch.einsum("bl,bld->bd", a, embedding[tokens])

    ok, out = run_check(checks.check_attention_forward, wrong)
    assert not ok and "sqrt" in out


def test_forward_unweighted_context(run_check):
    def wrong(tokens, embedding, keys, query):
        s = keys[tokens] @ query
        return s, torch.softmax(s, -1), embedding[tokens].mean(1)

    ok, out = run_check(checks.check_attention_forward, wrong)
    assert not ok and "plain mean" in out


def test_forward_wrong_return_and_crash(run_check):
    ok, out = run_check(checks.check_attention_forward, lambda t, e, k, q: (1, 2))
    assert not ok and "tuple" in out
    ok, out = run_check(checks.check_attention_forward, lambda t, e, k, q: 1 / 0)
    assert not ok and "ZeroDivisionError" in out


def test_check_of_non_callable(run_check):
    ok, out = run_check(checks.check_attention_forward, 3)
    assert not ok and "not run" in out


def test_labels_reference_passes(run_check):
    ok, out = run_check(checks.check_label_sentences, label_sentences)
    assert ok and "[passed]" in out


def test_labels_word_id_instead_of_topic(run_check):
    def wrong(tokens, topic_of_word):
        is_topic = topic_of_word[tokens] >= 0
        return (tokens * is_topic).sum(1)

    ok, out = run_check(checks.check_label_sentences, wrong)
    assert not ok and "topic_of_word[word]" in out


def test_labels_first_position(run_check):
    ok, out = run_check(checks.check_label_sentences, lambda tokens, t: t[tokens[:, 0]])
    assert not ok and "first word" in out


def test_labels_no_error_for_missing_topic_word(run_check):
    def lenient(tokens, topic_of_word):
        topic = topic_of_word[tokens]
        return topic.max(1).values.clamp(min=0)

    ok, out = run_check(checks.check_label_sentences, lenient)
    assert not ok and "ValueError" in out
