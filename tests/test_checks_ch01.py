"""The chapter-1 checks pass the reference, fail plausible wrong answers with the right hint."""

import math

import numpy as np
import pytest
import torch

from course_lib import checks
from course_lib.checks.solutions import mlp_jacobian
from course_lib.topic import TopicAttention, attention_forward, label_sentences


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
    ok, out = run_check(
        checks.check_label_sentences, lambda tokens, t: label_sentences(tokens, t).float()
    )
    assert not ok and "torch.long" in out
    ok, out = run_check(
        checks.check_label_sentences, lambda tokens, t: label_sentences(tokens, t).tolist()
    )
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


# ------------------------------------------------------- the two-layer classifier's Jacobian


def _layers(classifier):
    first, _, second = classifier
    return first.weight, first.bias, second.weight


def _through(classifier, mask):
    w1, _, w2 = _layers(classifier)
    return torch.einsum("kh,nh,hd->nkd", w2, mask.to(w1.dtype), w1).detach()


def test_jacobian_reference_passes(run_check):
    ok, out = run_check(checks.check_mlp_jacobian, mlp_jacobian)
    assert ok and "[passed]" in out


def test_jacobian_autograd_and_numpy_forms_pass(run_check):
    def by_jacrev(classifier, context):
        return torch.stack([torch.func.jacrev(classifier)(v) for v in context]).detach()

    def in_numpy(classifier, context):
        w1, b1, w2 = (t.detach().numpy() for t in _layers(classifier))
        active = (context.numpy() @ w1.T + b1 > 0).astype(float)  # (N, h)
        return np.einsum("kh,nh,hd->nkd", w2, active, w1)

    def with_grad(classifier, context):  # a tensor that still requires grad is fine
        w1, b1, w2 = _layers(classifier)
        return torch.einsum("kh,nh,hd->nkd", w2, ((context @ w1.T + b1) > 0).float(), w1)

    for fn in (by_jacrev, in_numpy, with_grad):
        ok, out = run_check(checks.check_mlp_jacobian, fn)
        assert ok and "[passed]" in out, (fn.__name__, out)


def test_jacobian_stub_is_to_do(run_check):
    def mlp_jacobian(classifier, context):
        raise NotImplementedError

    ok, out = run_check(checks.check_mlp_jacobian, mlp_jacobian)
    assert not ok and "[to do]" in out


def test_jacobian_without_the_relu(run_check):
    def linear(classifier, context):
        w1, _, w2 = _layers(classifier)
        return (w2 @ w1).detach().expand(len(context), -1, -1)

    ok, out = run_check(checks.check_mlp_jacobian, linear)
    assert not ok and "ignores the ReLU" in out


def test_jacobian_mask_without_the_bias(run_check):
    def no_bias(classifier, context):
        w1, _, _ = _layers(classifier)
        return _through(classifier, context @ w1.T > 0)

    ok, out = run_check(checks.check_mlp_jacobian, no_bias)
    assert not ok and "bias included" in out


def test_jacobian_mask_of_zero_context_everywhere(run_check):
    def at_zero(classifier, context):
        _, b1, _ = _layers(classifier)
        return _through(classifier, (b1 > 0).expand(len(context), -1))

    ok, out = run_check(checks.check_mlp_jacobian, at_zero)
    assert not ok and "mask of v = 0" in out


def test_jacobian_inverted_mask(run_check):
    def inverted(classifier, context):
        w1, b1, _ = _layers(classifier)
        return _through(classifier, context @ w1.T + b1 <= 0)

    ok, out = run_check(checks.check_mlp_jacobian, inverted)
    assert not ok and "inverted" in out


def test_jacobian_of_the_probabilities(run_check):
    def of_probs(classifier, context):
        return torch.stack(
            [torch.func.jacrev(lambda v: torch.softmax(classifier(v), -1))(v) for v in context]
        ).detach()

    ok, out = run_check(checks.check_mlp_jacobian, of_probs)
    assert not ok and "softmax probabilities" in out


def test_jacobian_transposed_and_single(run_check):
    ok, out = run_check(checks.check_mlp_jacobian, lambda c, v: mlp_jacobian(c, v).transpose(1, 2))
    assert not ok and "transpose" in out
    ok, out = run_check(checks.check_mlp_jacobian, lambda c, v: mlp_jacobian(c, v)[0])
    assert not ok and "one Jacobian for all contexts" in out
    ok, out = run_check(checks.check_mlp_jacobian, lambda c, v: mlp_jacobian(c, v).tolist())
    assert not ok and "one tensor" in out


def test_jacobian_that_modifies_the_classifier(run_check):
    def clobbers(classifier, context):
        result = mlp_jacobian(classifier, context)
        with torch.no_grad():
            classifier[0].bias.zero_()
        return result

    ok, out = run_check(checks.check_mlp_jacobian, clobbers)
    assert not ok and "must not modify" in out


def test_jacobian_other_mistake_gets_the_general_hint(run_check):
    ok, out = run_check(checks.check_mlp_jacobian, lambda c, v: 2 * mlp_jacobian(c, v))
    assert not ok and "chain the two linear layers" in out


def test_mlp_jacobian_reference_matches_autograd_and_validates():
    model = TopicAttention(5, 3, embed_dim=4, classifier="mlp", seed=2)
    context = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    expected = torch.stack([torch.func.jacrev(model.classifier)(v) for v in context])
    assert torch.allclose(mlp_jacobian(model.classifier, context), expected, atol=1e-6)
    with pytest.raises(TypeError, match="classifier"):
        mlp_jacobian(TopicAttention(5, 3, classifier="linear").classifier, context)
    with pytest.raises(ValueError, match="context"):
        mlp_jacobian(model.classifier, context[0])
    with pytest.raises(ValueError, match="features"):
        mlp_jacobian(model.classifier, torch.zeros(2, 7))


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
        cell.source
        for cell in nbformat.read(root / "chapters/01_the_task.ipynb", 4).cells
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

    for check, stub in (
        (checks.check_attention_forward, attention_forward),
        (checks.check_label_sentences, label_sentences),
    ):
        ok, out = run_check(check, stub)
        assert not ok and "[to do]" in out
