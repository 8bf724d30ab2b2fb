"""The sparse training engine (course_lib._sparse_attention) against autograd of the plain
reference ``attention_forward`` of chapter 1, and against the autograd engine of
train_full_batch."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import stack_module_state

from course_lib import _sparse_attention
from course_lib.topic import TopicAttention, attention_forward, make_topic_corpus
from course_lib.training import train_full_batch


def _corpus():
    return make_topic_corpus(
        n_topics=3, words_per_topic=2, n_background=30, m=5, n_sentences=40, seed=1
    )


def _reference_loss(model, tokens, labels, mask):
    """Autograd of the plain forward pass (equations (1.1)-(1.3)) and F.cross_entropy."""
    if mask is None:
        _, _, context = attention_forward(
            tokens, model.embedding.weight, model.keys.weight, model.query
        )
    else:  # attention_forward has no mask: do the same computation with masked scores
        scores = (model.keys.weight[tokens] @ model.query).masked_fill(~mask, float("-inf"))
        attention = torch.softmax(scores, dim=-1)
        context = torch.einsum("bl,bld->bd", attention, model.embedding.weight[tokens])
    return F.cross_entropy(model.classifier(context), labels)


@pytest.mark.parametrize("classifier", ["fixed", "linear", "mlp"])
@pytest.mark.parametrize("train_query", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("per_model_data", [False, True])
def test_loss_and_gradients_match_autograd_of_attention_forward(
    classifier, train_query, masked, per_model_data
):
    corpus = _corpus()
    tokens, labels = corpus.train
    n_models = 3
    models = [
        TopicAttention(
            corpus.vocab_size,
            corpus.n_topics,
            classifier=classifier,
            train_query=train_query,
            embedding_std=0.5,
            seed=s,
        ).double()
        for s in range(n_models)
    ]
    with torch.no_grad():  # keys start at zero: move them so the attention is not uniform
        for m in models:
            m.keys.weight.normal_(0, 1.0)
    if per_model_data:
        data = [(tokens.roll(r, 0), labels.roll(r, 0)) for r in range(n_models)]
    else:
        data = [(tokens, labels)] * n_models
    masks = [None] * n_models
    if masked:
        masks = []
        for toks, _ in data:
            mask = torch.ones_like(toks, dtype=torch.bool)
            mask[::2, -2:] = False  # padding in every other sentence
            masks.append(mask)

    # reference: each model alone, autograd through attention_forward
    ref_losses, ref_grads = [], []
    for model, (toks, labs), mask in zip(models, data, masks):
        loss = _reference_loss(model, toks, labs, mask)
        params = [p for p in model.parameters() if p.requires_grad]
        ref_losses.append(loss.detach())
        ref_grads.append(
            dict(
                zip(
                    [n for n, p in model.named_parameters() if p.requires_grad],
                    torch.autograd.grad(loss, params),
                )
            )
        )

    # the sparse engine: all models at once
    params, buffers = stack_module_state(models)
    trainable = [n for n, p in models[0].named_parameters() if p.requires_grad]
    params = {n: p.detach().requires_grad_(n in trainable) for n, p in params.items()}
    if per_model_data:
        toks_in = torch.stack([d[0] for d in data])
        labs_in = torch.stack([d[1] for d in data])
        mask_in = torch.stack(masks) if masked else None
    else:
        toks_in, labs_in, mask_in = tokens, labels, masks[0]
    base = copy.deepcopy(models[0]).to("meta")
    loss_fn = _sparse_attention.make_loss_fn(
        base, n_models, toks_in, labs_in, mask_in, per_model_data
    )
    losses, attention = loss_fn(params, buffers)
    grads = dict(zip(trainable, torch.autograd.grad(losses.sum(), [params[n] for n in trainable])))

    assert attention.shape == (n_models, *tokens.shape)
    torch.testing.assert_close(losses.detach(), torch.stack(ref_losses), rtol=1e-10, atol=1e-12)
    for r in range(n_models):
        for name in trainable:
            torch.testing.assert_close(
                grads[name][r], ref_grads[r][name], rtol=1e-8, atol=1e-12, msg=name
            )
        if masked:
            assert float(attention[r][~masks[r]].abs().max()) == 0.0


@pytest.mark.parametrize("classifier", ["fixed", "mlp"])
def test_sparse_and_autograd_engines_train_alike(classifier):
    corpus = _corpus()
    tokens, labels = corpus.train
    results = {}
    for engine in ("autograd", "sparse"):
        models = [
            TopicAttention(
                corpus.vocab_size, corpus.n_topics, classifier=classifier, seed=s, embedding_std=0.1
            )
            for s in range(2)
        ]
        models, history = train_full_batch(
            models,
            tokens,
            labels,
            40,
            lr=0.5,
            topic_mask=corpus.topic_mask(tokens),
            topic_word_ids=corpus.topic_word_ids,
            frozen_word_ids=torch.tensor([10, 11]),
            engine=engine,
            record_every=3,
        )
        results[engine] = (models, history)
    (m_a, h_a), (m_s, h_s) = results["autograd"], results["sparse"]
    torch.testing.assert_close(h_s.steps, h_a.steps)
    for field in ("loss", "topic_scores", "topic_norms", "query_norm", "attention_on_topic"):
        torch.testing.assert_close(
            getattr(h_s, field), getattr(h_a, field), rtol=1e-4, atol=1e-6, msg=field
        )
    for a, s in zip(m_a, m_s):
        for (name, pa), ps in zip(a.state_dict().items(), s.state_dict().values()):
            torch.testing.assert_close(ps, pa, rtol=1e-4, atol=1e-6, msg=name)
        # the frozen rows did not move
        torch.testing.assert_close(s.keys.weight[10:12], torch.zeros(2, s.keys.weight.shape[1]))


def test_engine_argument_is_checked():
    corpus = _corpus()
    model = TopicAttention(corpus.vocab_size, corpus.n_topics)
    with pytest.raises(ValueError, match="engine"):
        train_full_batch(model, *corpus.train, 1, engine="fast")


def test_auto_engine_leaves_subclasses_to_autograd():
    class Doubled(TopicAttention):
        def forward(self, tokens, mask=None, return_attention=False):
            logits, attention = super().forward(tokens, mask, True)
            return (2 * logits, attention) if return_attention else 2 * logits

    corpus = _corpus()
    _, h_auto = train_full_batch(
        Doubled(corpus.vocab_size, corpus.n_topics, seed=3), *corpus.train, 5, engine="auto"
    )
    _, h_grad = train_full_batch(
        Doubled(corpus.vocab_size, corpus.n_topics, seed=3), *corpus.train, 5, engine="autograd"
    )
    torch.testing.assert_close(h_auto.loss, h_grad.loss, rtol=0, atol=0)


@pytest.mark.parametrize("engine", ["sparse", "autograd"])
@pytest.mark.parametrize(
    "steps, record_every, expected",
    [(7, 3, [0, 3, 6, 7]), (6, 3, [0, 3, 6]), (0, 5, [0]), (3, 1, [0, 1, 2, 3])],
)
def test_history_records_the_requested_steps(engine, steps, record_every, expected):
    corpus = _corpus()
    tokens, labels = corpus.train
    models = [TopicAttention(corpus.vocab_size, corpus.n_topics, seed=s).double() for s in range(2)]
    _, history = train_full_batch(
        models,
        tokens,
        labels,
        steps,
        topic_mask=corpus.topic_mask(tokens),
        topic_word_ids=corpus.topic_word_ids,
        record_every=record_every,
        record_all_scores=True,
        engine=engine,
    )
    t = len(expected)
    assert history.steps.tolist() == expected and history.steps.dtype == torch.long
    assert (
        history.loss.shape == history.query_norm.shape == history.attention_on_topic.shape == (2, t)
    )
    assert (
        history.topic_scores.shape
        == history.topic_norms.shape
        == (2, t, len(corpus.topic_word_ids))
    )
    assert history.scores.shape == (2, t, corpus.vocab_size)
    assert history.loss.dtype == torch.float64 and bool(torch.isfinite(history.loss).all())
    # the first record is the initial state: keys start at zero, so every score is zero
    assert float(history.topic_scores[:, 0].abs().max()) == 0.0
    assert float(history.scores[:, 0].abs().max()) == 0.0


def test_history_without_topic_mask_has_nan_attention_records():
    corpus = _corpus()
    _, history = train_full_batch(
        TopicAttention(corpus.vocab_size, corpus.n_topics), *corpus.train, 2
    )
    assert history.attention_on_topic.shape == (3,) and bool(
        torch.isnan(history.attention_on_topic).all()
    )
    assert bool(torch.isnan(history.background_attention_cv).all())
