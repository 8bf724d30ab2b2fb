"""Chapter 6's full-mode paths on fixtures the tests write (nothing is downloaded): CIFAR-10
mosaics trained with the four methods by the batched hybrid engine, and HateXplain posts fed
to the chapter-1 model with words as segments and scored against their rationales."""

from __future__ import annotations

import hashlib
import json

import torch
from test_cifar10 import write_fixture

from course_lib import sst
from course_lib.data import cifar10, download, hatexplain
from course_lib.data.download import git_blob_sha1
from course_lib.focus import CNNClassifier, CNNFocus
from course_lib.losses import attention_loss
from course_lib.metrics import evaluate_mosaics, per_class_focus_accuracy
from course_lib.mosaic import make_image_mosaics
from course_lib.mosaic_training import train_hybrid_runs
from course_lib.topic import TopicAttention


def no_network(url, timeout=60):
    raise AssertionError("the test tried to download")


def test_cifar10_mosaics_with_the_four_methods(tmp_path, monkeypatch):
    path = tmp_path / cifar10.ARCHIVE
    write_fixture(path, per_batch=30)
    monkeypatch.setattr(cifar10, "SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    monkeypatch.setattr(cifar10, "SIZE_BYTES", path.stat().st_size)
    monkeypatch.setattr(download, "_urlopen", no_network)
    train_images, train_classes = cifar10.load_cifar10("train", data_dir=tmp_path)
    test_images, test_classes = cifar10.load_cifar10("test", data_dir=tmp_path)
    train = make_image_mosaics(2 * train_images - 1, train_classes, [0, 1, 2], 5, 24, seed=0)
    test = make_image_mosaics(2 * test_images - 1, test_classes, [0, 1, 2], 5, 8, seed=1)
    assert train.segments.shape == (24, 5, 3, 32, 32)
    methods = ["soft", "hard", "lvml", "hybrid"]
    torch.manual_seed(0)
    focus = [CNNFocus() for _ in methods]
    classifiers = [CNNClassifier(3) for _ in methods]
    _, _, history = train_hybrid_runs(
        focus, classifiers, train, methods, epochs=2, lr=0.05, batch_size=8, switch_step=3
    )
    assert history.loss.shape == (4, 2) and bool(torch.isfinite(history.loss).all())
    assert history.switch_step.tolist() == [-1, 0, 0, 3]
    for f, c in zip(focus, classifiers):
        result = evaluate_mosaics(f, c, test)
        assert abs(sum(result.table["average_output"].values()) - 100) < 1e-9
        per_class = per_class_focus_accuracy(result.alpha, test.foreground, test.labels, 3)
        assert per_class.shape == (3,)


def test_hatexplain_posts_through_the_chapter_one_model(tmp_path, monkeypatch):
    dataset = {
        "a": {
            "post_id": "a",
            "post_tokens": ["you", "vile", "person"],
            "annotators": [{"label": "offensive"}],
            "rationales": [[0, 1, 0]],
        },
        "b": {
            "post_id": "b",
            "post_tokens": ["nice", "day"],
            "annotators": [{"label": "normal"}],
            "rationales": [],
        },
    }
    divisions = {"train": ["a", "b"], "val": [], "test": ["a", "b"]}
    folder = tmp_path / "hatexplain"
    folder.mkdir()
    (folder / hatexplain.DATASET).write_text(json.dumps(dataset))
    (folder / hatexplain.DIVISIONS).write_text(json.dumps(divisions))
    monkeypatch.setattr(hatexplain, "DATASET_GIT_BLOB", git_blob_sha1(folder / hatexplain.DATASET))
    raw = (folder / hatexplain.DIVISIONS).read_bytes()
    monkeypatch.setattr(hatexplain, "DIVISIONS_SHA256", hashlib.sha256(raw).hexdigest())
    monkeypatch.setattr(hatexplain, "DIVISIONS_SIZE", len(raw))
    monkeypatch.setattr(download, "_urlopen", no_network)
    posts = hatexplain.load_hatexplain("test", data_dir=tmp_path)
    texts = [(p.tokens, p.label) for p in posts]
    vocab = sst.build_vocabulary(texts)
    batch = sst.pad_batch(texts, vocab)
    rationale = torch.zeros(batch.tokens.shape, dtype=torch.bool)
    for i, p in enumerate(posts):
        rationale[i, : len(p.rationale)] = torch.tensor(p.rationale, dtype=torch.bool)
    model = TopicAttention(len(vocab), 3, embed_dim=4, classifier="linear", seed=0)
    with torch.no_grad():  # make "vile" the most-attended word of post a
        model.keys.weight[vocab["vile"]] = 5 * model.query / model.query.norm() ** 2
    alpha = model.attention(batch.tokens, batch.mask).detach()
    assert float(alpha[1, 2]) == 0.0  # padding gets no attention
    assert hatexplain.rationale_focus_accuracy(alpha, rationale) == 50.0  # b has none
    assert hatexplain.rationale_focus_accuracy(alpha, rationale, True) == 100.0
    # padding drops out of every loss: the padded post b has the loss of b alone
    for name in ("soft", "hard", "lvml"):
        padded = attention_loss(name)(
            alpha[1:], model.embedding(batch.tokens[1:]), batch.labels[1:], model.classifier
        )
        alone = sst.pad_batch(texts[1:], vocab)
        single = attention_loss(name)(
            model.attention(alone.tokens, alone.mask),
            model.embedding(alone.tokens),
            alone.labels,
            model.classifier,
        )
        assert alone.tokens.shape[1] == 2 and batch.tokens.shape[1] == 3
        torch.testing.assert_close(padded, single)
