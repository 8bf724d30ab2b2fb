"""HateXplain, the real-text task of chapter 6 in full mode (Mathew et al. 2021).

Posts from Twitter and Gab, each labelled by three annotators as "hatespeech", "normal" or
"offensive"; annotators who did not call a post normal also marked the tokens that justify
their label (a *rationale*: one 0/1 per token).  Vashisht and Ramaswamy's official code reads
the HuggingFace copy and takes, for every post, the **first annotator's label** and the **first
rationale** as the gold segments (all zeros when the post has none); this module does the same
from the dataset's own public files, with no dependency beyond the standard library:

* ``Data/dataset.json`` (post_id -> {post_id, annotators [{label, annotator_id, target}],
  rationales [[0/1 per token] per rationale], post_tokens}), verified by its git blob id (the
  SHA-1 git computes over ``b"blob <size>\\0" + content``), the one checksum published for it;
* ``Data/post_id_divisions.json`` ({"train", "val", "test"} -> post ids, 8:1:1), verified by
  SHA-256;

both through :func:`course_lib.data.download.fetch_verified`.

Both are downloaded once into the data cache.  Quick mode never calls this module (chapter 6
uses the bundled SST there); the tests run it on small files they write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import torch

from .download import DataError, cache_dir, fetch_verified

BASE_URL = "https://raw.githubusercontent.com/hate-alert/HateXplain/master/Data/"
DATASET = "dataset.json"
DATASET_URL = BASE_URL + DATASET
DATASET_GIT_BLOB = "741bc082c38f4f8ee45cebdc868b3768e3901089"
DIVISIONS = "post_id_divisions.json"
DIVISIONS_URL = BASE_URL + DIVISIONS
DIVISIONS_SHA256 = "c2fb0d89862e7897b11ea3e9380753f15a793482b4b70ad0532dfb1212212835"
DIVISIONS_SIZE = 591_921
CLASSES = ("hatespeech", "normal", "offensive")  # label ids 0, 1, 2 (the HuggingFace order)
SPLITS = ("train", "val", "test")


class Post(NamedTuple):
    """One HateXplain post: its id, tokens, label id (first annotator) and rationale (one 0/1
    per token, the first rationale, zeros when there is none)."""

    post_id: str
    tokens: list
    label: int
    rationale: list


def parse_hatexplain(dataset: dict, divisions: dict, split: str) -> list[Post]:
    """The posts of one split (in the order of ``divisions[split]``) as :class:`Post`.

    ``dataset`` and ``divisions`` are the parsed JSON files.  Raises :class:`DataError` naming
    the post when a label is unknown or a rationale's length differs from the post's.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(dataset, dict) or not isinstance(divisions, dict) or split not in divisions:
        raise DataError(f"the HateXplain files do not have the expected layout (split {split!r})")
    posts = []
    for post_id in divisions[split]:
        if post_id not in dataset:
            raise DataError(f"post {post_id!r} of split {split!r} is not in {DATASET}")
        entry = dataset[post_id]
        try:
            tokens = [str(t) for t in entry["post_tokens"]]
            label_name = entry["annotators"][0]["label"]
            rationales = entry.get("rationales") or []
        except (KeyError, IndexError, TypeError) as error:
            raise DataError(f"post {post_id!r} lacks {error} in {DATASET}") from error
        if label_name not in CLASSES:
            raise DataError(f"post {post_id!r} has label {label_name!r}, expected one of {CLASSES}")
        rationale = [int(v) for v in rationales[0]] if rationales else [0] * len(tokens)
        if len(rationale) != len(tokens):
            raise DataError(
                f"post {post_id!r}: its rationale has {len(rationale)} entries for "
                f"{len(tokens)} tokens"
            )
        posts.append(Post(str(post_id), tokens, CLASSES.index(label_name), rationale))
    return posts


def read_hatexplain(dataset_path, divisions_path, split: str) -> list[Post]:
    """:func:`parse_hatexplain` on the two files at these paths."""
    try:
        dataset = json.loads(Path(dataset_path).read_text(encoding="utf-8"))
        divisions = json.loads(Path(divisions_path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(
            f"could not read the HateXplain files ({error}); delete them and load again"
        ) from error
    return parse_hatexplain(dataset, divisions, split)


def load_hatexplain(split: str = "train", data_dir: str | os.PathLike | None = None):
    """The posts of ``split`` ("train", "val" or "test"), downloading and verifying the two
    files once into ``data_dir`` (default: the course's data cache)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = Path(data_dir) if data_dir is not None else cache_dir()
    dataset = fetch_verified(
        DATASET_URL,
        folder / "hatexplain" / DATASET,
        git_blob=DATASET_GIT_BLOB,
        what="HateXplain posts (dataset.json)",
    )
    divisions = fetch_verified(
        DIVISIONS_URL,
        folder / "hatexplain" / DIVISIONS,
        DIVISIONS_SHA256,
        size_bytes=DIVISIONS_SIZE,
        what="HateXplain splits (post_id_divisions.json)",
    )
    return read_hatexplain(dataset, divisions, split)


def rationale_focus_accuracy(
    alpha: torch.Tensor, rationale: torch.Tensor, with_rationale_only: bool = False
) -> float:
    """Focus accuracy against rationales, as the official code measures it (chapter 6): the
    percentage of posts whose most-attended token is a rationale token.

    ``alpha`` (B, L) attention (zero on padding), ``rationale`` (B, L) 0/1 or bool.  Posts with
    no rationale token count as misses unless ``with_rationale_only``, which restricts the
    average to posts with at least one.

    >>> alpha = torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])
    >>> gold = torch.tensor([[1, 0], [1, 0], [0, 0]])
    >>> rationale_focus_accuracy(alpha, gold), rationale_focus_accuracy(alpha, gold, True)
    (33.33333333333333, 50.0)
    """
    if not isinstance(alpha, torch.Tensor) or alpha.dim() != 2:
        raise ValueError("alpha must be a (posts, tokens) tensor of attention weights")
    if not isinstance(rationale, torch.Tensor) or rationale.shape != alpha.shape:
        raise ValueError(f"rationale must be a tensor of alpha's shape {tuple(alpha.shape)}")
    gold = rationale.bool()
    hit = gold.gather(1, alpha.argmax(1, keepdim=True)).squeeze(1)  # (B,)
    if with_rationale_only:
        keep = gold.any(1)
        if not bool(keep.any()):
            raise ValueError("no post has a rationale token")
        hit = hit[keep]
    return 100.0 * hit.double().mean().item()
