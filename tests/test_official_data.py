"""The official fixed-focus curves shipped with course_lib (chapter 4)."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest

from course_lib.data import official
from course_lib.law import LOSS_NAMES


def test_the_shipped_runs_cover_every_loss_alpha_and_epoch():
    runs = official.load_official_fixed_focus()
    assert set(runs) == {(n, a) for n in LOSS_NAMES for a in (0.2, 0.4, 0.6, 0.8, 1.0)}
    for (name, alpha), run in runs.items():
        assert run.shape == (4, 101)
        assert np.array_equal(run[0], np.arange(101))
        lr = 0.01 if name == "hard" else 0.05  # the official learning rates
        assert np.allclose(run[1], run[0] * 20 * lr / 0.1)  # the flow time
        assert np.all(np.isfinite(run[2])) and run[2][0] > 2.5  # about log 20 = 3.0 at start
        if alpha == 1.0:
            assert np.all(run[3] == 0)  # their diff at alpha = 1, by construction


def test_the_numbers_chapter_4_quotes():
    runs = official.load_official_fixed_focus()
    share = [runs["hard", a][3][100] / (0.01 * math.log(20)) for a in (0.2, 0.4, 0.6, 0.8)]
    assert np.allclose(share, [0.53, 0.79, 0.89, 0.93], atol=0.01)
    peaks = [int(np.argmax(runs["soft", a][3])) for a in (0.2, 0.4, 0.6, 0.8)]
    assert peaks == [100, 37, 17, 10]


def test_reads_a_plain_csv_and_refuses_bad_files(tmp_path):
    plain = tmp_path / "runs.csv"
    plain.write_bytes(gzip.decompress(official.OFFICIAL_FIXED_FOCUS.read_bytes()))
    runs = official.load_official_fixed_focus(plain)
    assert np.array_equal(runs["lvml", 0.6], official.load_official_fixed_focus()["lvml", 0.6])
    with pytest.raises(FileNotFoundError, match="path"):
        official.load_official_fixed_focus(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "loss,alpha,epoch,batches_per_epoch,lr,momentum,t,L,diff\n"
        "sparse,0.2,0,20,0.05,0.9,0,3.0,0.0\n"
    )
    with pytest.raises(ValueError, match="unknown loss"):
        official.load_official_fixed_focus(bad)
