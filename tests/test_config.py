import subprocess
import sys

import numpy as np
import pytest
import torch

from course_lib import config


def test_mode_is_valid():
    assert config.MODE in config.ALLOWED_MODES


@pytest.mark.parametrize(
    "value, expected", [("quick", "quick"), ("FULL", "full"), (" quick ", "quick")]
)
def test_read_mode(value, expected):
    assert config._read_mode(value) == expected


def test_unset_mode_depends_on_cuda():
    assert config._read_mode(None) == ("full" if torch.cuda.is_available() else "quick")
    assert config._read_mode("") == config._read_mode(None)


def test_bad_mode_names_allowed_values():
    with pytest.raises(ValueError, match=r"COURSE_MODE.*quick.*full"):
        config._read_mode("fast")


def test_bad_mode_fails_at_import():
    result = subprocess.run(
        [sys.executable, "-c", "import course_lib.config"],
        env={"COURSE_MODE": "turbo", "PATH": ""},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "COURSE_MODE must be one of" in result.stderr


def test_by_mode():
    assert config.by_mode(quick=1, full=2, mode="quick") == 1
    assert config.by_mode(quick=1, full=2, mode="full") == 2
    assert config.by_mode(quick=1, full=2) == (1 if config.MODE == "quick" else 2)
    with pytest.raises(ValueError, match="mode"):
        config.by_mode(quick=1, full=2, mode="medium")


def test_seed_everything_is_reproducible():
    config.seed_everything(3)
    a = (torch.rand(3), np.random.rand(3))
    gen = config.seed_everything(3)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert isinstance(gen, torch.Generator)


@pytest.mark.parametrize(
    "bad, error", [(-1, ValueError), (1.5, TypeError), ("1", TypeError), (True, TypeError)]
)
def test_seed_everything_validates(bad, error):
    with pytest.raises(error, match="seed"):
        config.seed_everything(bad)


def test_get_device():
    assert config.get_device().type in ("cpu", "cuda")
    assert config.get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="prefer"):
        config.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            config.get_device("cuda")


def test_describe_mentions_mode_how_to_change_it_device_and_threads():
    line = config.describe()
    other = "full" if config.MODE == "quick" else "quick"
    assert line.startswith(f"course mode: {config.MODE} ") and "device" in line
    assert f"%env COURSE_MODE={other}" in line and "restart" in line
    assert f"{config.THREADS} CPU thread" in line


@pytest.mark.parametrize(
    "course, omp, expected",
    [(None, None, 1), ("", "", 1), (None, "4", 4), ("3", "4", 3), (" 2 ", None, 2), ("", "2", 2)],
)
def test_read_threads(course, omp, expected):
    assert config._read_threads(course, omp) == expected


@pytest.mark.parametrize(
    "course, omp, name",
    [
        ("0", None, "COURSE_THREADS"),
        ("two", None, "COURSE_THREADS"),
        (None, "-1", "OMP_NUM_THREADS"),
        (None, "1.5", "OMP_NUM_THREADS"),
    ],
)
def test_bad_threads_name_the_variable(course, omp, name):
    with pytest.raises(ValueError, match=name):
        config._read_threads(course, omp)


@pytest.mark.parametrize(
    "env, expected",
    [({}, 1), ({"OMP_NUM_THREADS": "2"}, 2), ({"COURSE_THREADS": "2", "OMP_NUM_THREADS": "1"}, 2)],
)
def test_importing_config_sets_torch_threads(env, expected):
    """One thread unless the user says otherwise, set by importing course_lib.config (every
    notebook does), whatever PyTorch's own default on this machine."""
    code = (
        "import torch; from course_lib import config; "
        "print(torch.get_num_threads(), config.THREADS)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"COURSE_MODE": "quick", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == [str(expected)] * 2


@pytest.mark.parametrize(
    "value, expected", [(None, True), ("", True), ("on", True), (" OFF ", False), ("off", False)]
)
def test_read_downloads(value, expected):
    assert config._read_downloads(value) is expected


def test_bad_downloads_names_the_variable():
    with pytest.raises(ValueError, match="COURSE_DOWNLOADS"):
        config._read_downloads("no")


def test_full_mode_data_follows_downloads(monkeypatch):
    monkeypatch.setattr(config, "DOWNLOADS", True)
    assert config.full_mode_data(download="cifar10", offline="digits") == "cifar10"
    monkeypatch.setattr(config, "DOWNLOADS", False)
    assert config.full_mode_data(download="cifar10", offline="digits") == "digits"
    with pytest.raises(ValueError, match="offline"):
        config.full_mode_data(download="cifar10", offline="")


def test_default_mode_per_chapter(monkeypatch):
    monkeypatch.setattr(config, "MODE", config.MODE)  # restored after the test
    monkeypatch.delenv("COURSE_MODE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.default_mode(on_gpu="quick") == "quick" and config.MODE == "quick"
    assert config.default_mode(on_gpu="full") == "full" and config.MODE == "full"
    assert config.by_mode(quick=1, full=2) == 2  # by_mode follows the chapter's default
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config.default_mode(on_gpu="full") == "quick"  # no GPU: quick
    monkeypatch.setenv("COURSE_MODE", "quick")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(config, "MODE", "quick")
    assert config.default_mode(on_gpu="full") == "quick"  # the variable wins
    with pytest.raises(ValueError, match="on_gpu"):
        config.default_mode(on_gpu="fast")
