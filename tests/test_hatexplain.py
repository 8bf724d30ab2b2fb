"""HateXplain's parser and checksummed download (chapter 6, full mode), on files the test
writes: nothing is downloaded."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess

import pytest
import torch

from course_lib.data import download, hatexplain
from course_lib.data.download import DataError, git_blob_sha1

DATASET = {
    "p1": {
        "post_id": "p1",
        "post_tokens": ["you", "are", "vile"],
        "annotators": [
            {"label": "offensive", "annotator_id": 1, "target": ["None"]},
            {"label": "hatespeech", "annotator_id": 2, "target": ["None"]},
        ],
        "rationales": [[0, 0, 1], [0, 1, 1]],
    },
    "p2": {
        "post_id": "p2",
        "post_tokens": ["nice", "day"],
        "annotators": [{"label": "normal", "annotator_id": 3, "target": ["None"]}],
        "rationales": [],
    },
    "p3": {
        "post_id": "p3",
        "post_tokens": ["a", "b", "c", "d"],
        "annotators": [{"label": "hatespeech", "annotator_id": 4, "target": ["x"]}],
        "rationales": [[1, 0, 0, 1]],
    },
}
DIVISIONS = {"train": ["p3", "p1"], "val": ["p2"], "test": []}


@pytest.fixture
def files(tmp_path):
    dataset = tmp_path / "dataset.json"
    divisions = tmp_path / "post_id_divisions.json"
    dataset.write_text(json.dumps(DATASET))
    divisions.write_text(json.dumps(DIVISIONS))
    return dataset, divisions


def test_parser_takes_the_first_label_and_the_first_rationale(files):
    train = hatexplain.read_hatexplain(*files, "train")
    assert [p.post_id for p in train] == ["p3", "p1"]  # the divisions' order
    assert train[1] == hatexplain.Post("p1", ["you", "are", "vile"], 2, [0, 0, 1])
    assert train[0].label == 0 and train[0].rationale == [1, 0, 0, 1]
    (val,) = hatexplain.read_hatexplain(*files, "val")
    assert val.label == 1 and val.rationale == [0, 0]  # no rationale: zeros
    assert hatexplain.read_hatexplain(*files, "test") == []


def test_parser_refuses_bad_files(files, tmp_path):
    with pytest.raises(ValueError, match="split"):
        hatexplain.read_hatexplain(*files, "dev")
    broken = json.loads(json.dumps(DATASET))
    broken["p1"]["rationales"][0] = [0, 1]
    with pytest.raises(DataError, match="p1.*2 entries for 3 tokens"):
        hatexplain.parse_hatexplain(broken, DIVISIONS, "train")
    broken["p1"]["annotators"][0]["label"] = "rude"
    with pytest.raises(DataError, match="rude"):
        hatexplain.parse_hatexplain(broken, DIVISIONS, "train")
    with pytest.raises(DataError, match="p9"):
        hatexplain.parse_hatexplain(DATASET, {"train": ["p9"]}, "train")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="delete them"):
        hatexplain.read_hatexplain(bad, files[1], "train")


def test_git_blob_sha1_is_gits_hash(files):
    content = files[0].read_bytes()
    expected = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    assert git_blob_sha1(files[0]) == expected
    try:
        out = subprocess.run(
            ["git", "hash-object", str(files[0])], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    assert out == expected


class FakeResponse(io.BytesIO):
    headers: dict = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def serve(monkeypatch, payloads, calls):
    def fake(url, timeout=60):
        calls.append(url)
        return FakeResponse(payloads[url])

    monkeypatch.setattr(download, "_urlopen", fake)


def test_load_downloads_verifies_and_reuses(files, tmp_path, monkeypatch, capsys):
    dataset_bytes, divisions_bytes = files[0].read_bytes(), files[1].read_bytes()
    monkeypatch.setattr(hatexplain, "DATASET_GIT_BLOB", git_blob_sha1(files[0]))
    monkeypatch.setattr(hatexplain, "DIVISIONS_SHA256", hashlib.sha256(divisions_bytes).hexdigest())
    monkeypatch.setattr(hatexplain, "DIVISIONS_SIZE", len(divisions_bytes))
    calls = []
    serve(
        monkeypatch,
        {hatexplain.DATASET_URL: dataset_bytes, hatexplain.DIVISIONS_URL: divisions_bytes},
        calls,
    )
    cache = tmp_path / "cache"
    train = hatexplain.load_hatexplain("train", data_dir=cache)
    assert [p.post_id for p in train] == ["p3", "p1"] and len(calls) == 2
    assert "Downloading HateXplain posts" in capsys.readouterr().out
    assert hatexplain.load_hatexplain("val", data_dir=cache)[0].post_id == "p2"
    assert len(calls) == 2  # verified copies are reused, nothing fetched again


def test_a_download_that_fails_its_blob_check_leaves_nothing(files, tmp_path, monkeypatch):
    calls = []
    serve(monkeypatch, {hatexplain.DATASET_URL: b"tampered"}, calls)
    target = tmp_path / "d" / "dataset.json"
    with pytest.raises(DataError, match="git blob check"):
        download.fetch_verified(hatexplain.DATASET_URL, target, git_blob=git_blob_sha1(files[0]))
    assert not target.exists() and list(target.parent.iterdir()) == []
    with pytest.raises(ValueError, match="40 hex"):
        download.fetch_verified(hatexplain.DATASET_URL, target, git_blob="abc")


def test_rationale_focus_accuracy():
    alpha = torch.tensor([[0.1, 0.9, 0.0], [0.6, 0.2, 0.2], [0.3, 0.3, 0.4], [0.5, 0.5, 0.0]])
    gold = torch.tensor([[0, 1, 0], [0, 1, 1], [1, 0, 1], [0, 0, 0]])
    assert hatexplain.rationale_focus_accuracy(alpha, gold) == 50.0
    assert abs(hatexplain.rationale_focus_accuracy(alpha, gold, True) - 200 / 3) < 1e-12
    with pytest.raises(ValueError, match="shape"):
        hatexplain.rationale_focus_accuracy(alpha, gold[:2])
    with pytest.raises(ValueError, match="no post"):
        hatexplain.rationale_focus_accuracy(alpha, torch.zeros(4, 3), True)
