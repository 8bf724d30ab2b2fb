"""The official code's fixed-focus curves, as run by the course (chapter 4).

Vashisht & Ramaswamy's fixed-focus scripts (official repository, folder
``Fixed Focus Setting/Linear orthogonal Setting``) train the classifier with the focus held at
alpha on the foreground, for soft attention, hard attention and LVML.  The course ran them on a
CPU with ``benchmarks/official_fixed_focus.py`` (which lists every change made to run them) and
ships what they printed, per loss, alpha and epoch, in ``files/official_fixed_focus.csv.gz``
(23 KB), so chapter 4 can compare its own run of their protocol with theirs anywhere, Colab
included, without their code or a download.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np

from ..law import LOSS_NAMES

OFFICIAL_FIXED_FOCUS = Path(__file__).resolve().parent / "files" / "official_fixed_focus.csv.gz"


def load_official_fixed_focus(path=None) -> dict[tuple[str, float], np.ndarray]:
    """The official fixed-focus runs: ``{(loss, alpha): array of shape (4, epochs + 1)}``.

    Rows of each array, per epoch 0..100: the epoch, the flow time
    ``t = epoch * batches_per_epoch * lr / (1 - momentum)``, the official running-mean loss
    ``L`` (the mean over the epoch's batches of each batch's loss right after its SGD step) and
    their ``diff``, ``L(alpha) - L(alpha + 0.01)`` measured the same way (0 at alpha = 1 by
    construction).  ``loss`` is "soft", "hard" or "lvml"; alpha is 0.2, 0.4, 0.6, 0.8 or 1.0.
    ``path`` (optional) reads another file written by ``benchmarks/official_fixed_focus.py``.
    Chapter 4, "The official protocol".

    >>> runs = load_official_fixed_focus()
    >>> runs["hard", 0.2].shape, float(runs["soft", 1.0][3].max())
    ((4, 101), 0.0)
    """
    path = OFFICIAL_FIXED_FOCUS if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"path: no file {path} (write one with benchmarks/official_fixed_focus.py)"
        )
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()
    rows: dict[tuple[str, float], list[tuple[float, ...]]] = {}
    for row in csv.DictReader(io.StringIO(text, newline="")):
        if row["loss"] not in LOSS_NAMES:
            raise ValueError(f"path: unknown loss {row['loss']!r} in {path}")
        key = (row["loss"], round(float(row["alpha"]), 6))
        rows.setdefault(key, []).append(
            (int(row["epoch"]), float(row["t"]), float(row["L"]), float(row["diff"]))
        )
    return {key: np.array(sorted(values), dtype=float).T for key, values in rows.items()}
