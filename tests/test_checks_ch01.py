"""The chapter-1 checks pass the reference, fail plausible wrong answers with the right hint."""

import math

import torch
import torch.nn.functional as F

from course_lib import checks
from course_lib.topic import attention_forward, label_sentences
from course_lib.training import gradient_step


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


def _topics(tokens, topic_of_word):
    topic = topic_of_word[tokens]
    return topic, topic >= 0


def test_labels_only_rejecting_sentences_without_a_topic_word(run_check):
    def only_none(tokens, topic_of_word):
        topic, is_topic = _topics(tokens, topic_of_word)
        if not bool(is_topic.any(1).all()):
            raise ValueError("a sentence without a topic word")
        return topic.max(1).values

    ok, out = run_check(checks.check_label_sentences, only_none)
    assert not ok and "[wrong]" in out and "more than one topic word" in out


def test_labels_counting_the_batch_instead_of_each_sentence(run_check):
    def batch_total(tokens, topic_of_word):
        topic, is_topic = _topics(tokens, topic_of_word)
        if int(is_topic.sum()) != len(tokens):
            raise ValueError("not one topic word per sentence")
        return topic.max(1).values

    ok, out = run_check(checks.check_label_sentences, batch_total)
    assert not ok and "[wrong]" in out and "*each* sentence" in out and "total" in out


def test_labels_topic_zero_taken_for_background(run_check):
    def strict(tokens, topic_of_word):
        topic = topic_of_word[tokens]
        if not bool(((topic > 0).sum(1) == 1).all()):
            raise ValueError("not one topic word")
        return topic.max(1).values

    ok, out = run_check(checks.check_label_sentences, strict)
    assert not ok and "[wrong]" in out and "topic ids start at 0" in out


def test_labels_position_float_and_list(run_check):
    def position(tokens, topic_of_word):
        label_sentences(tokens, topic_of_word)  # raises where it should
        return (topic_of_word[tokens] >= 0).long().argmax(1)

    ok, out = run_check(checks.check_label_sentences, position)
    assert not ok and "positions of the topic words" in out
    ok, out = run_check(checks.check_label_sentences,
                        lambda tokens, t: label_sentences(tokens, t).float())
    assert not ok and "torch.long" in out
    ok, out = run_check(checks.check_label_sentences,
                        lambda tokens, t: label_sentences(tokens, t).tolist())
    assert not ok and "torch.Tensor" in out


def test_labels_other_correct_forms_pass(run_check):
    def loop(tokens, topic_of_word):
        labels = []
        for sentence in tokens.tolist():
            topics = [int(topic_of_word[w]) for w in sentence if topic_of_word[w] >= 0]
            if len(topics) != 1:
                raise ValueError(f"{len(topics)} topic words in {sentence}")
            labels.append(topics[0])
        return torch.tensor(labels)

    def maximum(tokens, topic_of_word):
        topic, is_topic = _topics(tokens, topic_of_word)
        if not bool((is_topic.sum(1) == 1).all()):
            raise ValueError("every sentence needs exactly one topic word")
        return topic.max(dim=1).values

    for right in (loop, maximum):
        ok, out = run_check(checks.check_label_sentences, right)
        assert ok and "[passed]" in out, out


# ------------------------------------------------------------------ the full-batch step


def _trained(model):
    return [p for p in model.parameters() if p.requires_grad]


def test_step_reference_passes(run_check):
    ok, out = run_check(checks.check_gradient_step, gradient_step)
    assert ok and "[passed]" in out


def test_step_a_correct_backward_version_passes(run_check):
    def mine(model, tokens, labels, lr, *, mask=None):
        model.zero_grad()
        loss = F.cross_entropy(model(tokens, mask), labels)
        loss.backward()
        with torch.no_grad():
            for p in _trained(model):
                p -= lr * p.grad
        return loss.item()

    ok, out = run_check(checks.check_gradient_step, mine)
    assert ok and "[passed]" in out


def test_step_stub_is_to_do(run_check):
    def gradient_step(model, tokens, labels, lr, *, mask=None):
        raise NotImplementedError

    ok, out = run_check(checks.check_gradient_step, gradient_step)
    assert not ok and "[to do]" in out


def test_step_gradients_not_zeroed(run_check):
    def leaky(model, tokens, labels, lr, *, mask=None):
        loss = F.cross_entropy(model(tokens, mask), labels)
        loss.backward()  # accumulates into .grad across calls
        with torch.no_grad():
            for p in _trained(model):
                p -= lr * p.grad
        return loss.item()

    ok, out = run_check(checks.check_gradient_step, leaky)
    assert not ok and "zero_grad" in out


def test_step_summed_loss(run_check):
    def summed(model, tokens, labels, lr, *, mask=None):
        loss = F.cross_entropy(model(tokens, mask), labels, reduction="sum")
        grads = torch.autograd.grad(loss, _trained(model))
        with torch.no_grad():
            for p, g in zip(_trained(model), grads):
                p -= lr * g
        return loss.item() / len(labels)  # the returned loss is right, the step is not

    ok, out = run_check(checks.check_gradient_step, summed)
    assert not ok and "mean" in out and "times too large" in out


def test_step_returns_summed_loss(run_check):
    def summed_return(model, tokens, labels, lr, *, mask=None):
        return gradient_step(model, tokens, labels, lr, mask=mask) * len(labels)

    ok, out = run_check(checks.check_gradient_step, summed_return)
    assert not ok and "sum over sentences" in out


def test_step_up_the_gradient(run_check):
    def ascent(model, tokens, labels, lr, *, mask=None):
        return _ascend(model, tokens, labels, lr, mask)

    ok, out = run_check(checks.check_gradient_step, ascent)
    assert not ok and "subtracts" in out


def _ascend(model, tokens, labels, lr, mask):
    loss = F.cross_entropy(model(tokens, mask), labels)
    grads = torch.autograd.grad(loss, _trained(model))
    with torch.no_grad():
        for p, g in zip(_trained(model), grads):
            p += lr * g
    return loss.item()


def test_step_updates_the_fixed_classifier(run_check):
    def everything(model, tokens, labels, lr, *, mask=None):
        for p in model.parameters():
            p.requires_grad_(True)
        loss = F.cross_entropy(model(tokens, mask), labels)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= lr * g
        return loss.item()

    ok, out = run_check(checks.check_gradient_step, everything)
    assert not ok and "fixed classifier U moved" in out


def test_step_over_all_parameters_hits_none_grad(run_check):
    def all_params(model, tokens, labels, lr, *, mask=None):
        model.zero_grad()
        loss = F.cross_entropy(model(tokens, mask), labels)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        return loss.item()

    ok, out = run_check(checks.check_gradient_step, all_params)
    assert not ok and "requires_grad=True" in out


def test_step_returns_loss_after(run_check):
    def after(model, tokens, labels, lr, *, mask=None):
        gradient_step(model, tokens, labels, lr, mask=mask)
        with torch.no_grad():
            return F.cross_entropy(model(tokens, mask), labels).item()

    ok, out = run_check(checks.check_gradient_step, after)
    assert not ok and "*after* the step" in out


def test_step_not_in_place(run_check):
    def rebinds(model, tokens, labels, lr, *, mask=None):
        loss = F.cross_entropy(model(tokens, mask), labels)
        grads = torch.autograd.grad(loss, _trained(model))
        for p, g in zip(_trained(model), grads):
            p = p - lr * g  # noqa: F841 (rebinds a local name; the model is unchanged)
        return loss.item()

    ok, out = run_check(checks.check_gradient_step, rebinds)
    assert not ok and "no parameter moved" in out


def test_step_hard_coded_lr(run_check):
    def fixed_lr(model, tokens, labels, lr, *, mask=None):
        return gradient_step(model, tokens, labels, 0.1, mask=mask)

    ok, out = run_check(checks.check_gradient_step, fixed_lr)
    assert not ok and "argument lr" in out


def test_step_ignores_the_mask(run_check):
    def no_mask(model, tokens, labels, lr, *, mask=None):
        return gradient_step(model, tokens, labels, lr)

    ok, out = run_check(checks.check_gradient_step, no_mask)
    assert not ok and "pass the mask" in out


def test_step_returns_nothing(run_check):
    def silent(model, tokens, labels, lr, *, mask=None):
        gradient_step(model, tokens, labels, lr, mask=mask)

    ok, out = run_check(checks.check_gradient_step, silent)
    assert not ok and "loss.item()" in out


def test_chapter_links_its_exercise_notebook_on_the_configured_repository():
    """Besides the exercise page on the website and Colab, the chapter links its exercise
    notebook on GitHub, at the repository and branch that _config.yml names."""
    import re
    from pathlib import Path

    import nbformat

    root = Path(__file__).resolve().parents[1]
    config = (root / "_config.yml").read_text()
    url = re.search(r"^\s+url:\s*(\S+)", config, re.M).group(1)
    branch = re.search(r"^\s+branch:\s*(\S+)", config, re.M).group(1)
    repo = url.removeprefix("https://github.com/")
    text = "\n".join(
        cell.source for cell in nbformat.read(root / "chapters/01_the_task.ipynb", 4).cells
        if cell.cell_type == "markdown"
    )
    target = f"{repo}/blob/{branch}/exercises/01_the_task.ipynb"
    assert f"(https://github.com/{target})" in text
    assert (root / "exercises/01_the_task.ipynb").exists()


def test_forward_and_labels_stubs_are_to_do(run_check):
    def attention_forward(tokens, embedding, keys, query):
        raise NotImplementedError

    def label_sentences(tokens, topic_of_word):
        raise NotImplementedError

    for check, stub in ((checks.check_attention_forward, attention_forward),
                        (checks.check_label_sentences, label_sentences)):
        ok, out = run_check(check, stub)
        assert not ok and "[to do]" in out
