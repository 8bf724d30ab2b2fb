"""Run mode, device and seeding, shared by every chapter (defined in chapter 1).

`MODE` is "quick" (small sizes: CI, laptops, the website) or "full" (the papers' sizes: a GPU on
Colab).  It is read once from the environment variable ``COURSE_MODE``; when that is unset the
course runs in full mode if a CUDA device is present and in quick mode otherwise, and a chapter
whose full mode takes long calls :func:`default_mode` to stay in quick mode on a GPU.

`THREADS` is torch's CPU thread count, set once when this module is imported (every notebook
imports it first, so notebooks, nbval and the book build all run with it): ``COURSE_THREADS``
when set, else ``OMP_NUM_THREADS`` when set, else 1.  The course's per-step work is small: on a
2-core machine one thread was about as fast as PyTorch's default when idle and 2 to 25 times
faster when the other core was busy (README, "Quick and full mode").
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

ALLOWED_MODES = ("quick", "full")


def _read_mode(value: str | None) -> str:
    if value is None or value.strip() == "":
        return "full" if torch.cuda.is_available() else "quick"
    mode = value.strip().lower()
    if mode not in ALLOWED_MODES:
        raise ValueError(f"COURSE_MODE must be one of {ALLOWED_MODES} (or unset), got {value!r}")
    return mode


MODE: str = _read_mode(os.environ.get("COURSE_MODE"))


def default_mode(*, on_gpu: str) -> str:
    """Set this notebook's mode when ``COURSE_MODE`` is unset: ``on_gpu`` ("full" or "quick")
    when a CUDA device is present, quick mode otherwise; return the mode (chapter 1).

    Each chapter calls it first, with full mode on a GPU only where full mode was measured to
    finish within about 15 minutes (its opening cost paragraph); ``COURSE_MODE``, when set,
    always wins.

    >>> default_mode(on_gpu="fast")
    Traceback (most recent call last):
    ...
    ValueError: on_gpu must be one of ('quick', 'full'), got 'fast'
    """
    global MODE
    if on_gpu not in ALLOWED_MODES:
        raise ValueError(f"on_gpu must be one of {ALLOWED_MODES}, got {on_gpu!r}")
    if os.environ.get("COURSE_MODE", "").strip() == "":
        MODE = on_gpu if torch.cuda.is_available() else "quick"
    return MODE


def _read_threads(course: str | None, omp: str | None) -> int:
    """The thread count from ``COURSE_THREADS`` (``course``), else ``OMP_NUM_THREADS`` (``omp``),
    else 1; a value that is not a positive integer is an error naming its variable."""
    for name, value in (("COURSE_THREADS", course), ("OMP_NUM_THREADS", omp)):
        if value is None or value.strip() == "":
            continue
        try:
            threads = int(value.strip())
        except ValueError:
            threads = 0
        if threads < 1:
            raise ValueError(f"{name} must be a positive integer (or unset), got {value!r}")
        return threads
    return 1


THREADS: int = _read_threads(os.environ.get("COURSE_THREADS"), os.environ.get("OMP_NUM_THREADS"))
torch.set_num_threads(THREADS)


def _read_downloads(value: str | None) -> bool:
    """``COURSE_DOWNLOADS`` (``value``): "on" (the default) or "off"; anything else is an error
    naming the variable."""
    if value is None or value.strip() == "":
        return True
    flag = value.strip().lower()
    if flag not in ("on", "off"):
        raise ValueError(f"COURSE_DOWNLOADS must be 'on' or 'off' (or unset), got {value!r}")
    return flag == "on"


DOWNLOADS: bool = _read_downloads(os.environ.get("COURSE_DOWNLOADS"))


def full_mode_data(*, download: str, offline: str) -> str:
    """The dataset a full-mode run uses (chapters 4 and 6): ``download`` (fetched once into the
    cache and checksummed) unless ``COURSE_DOWNLOADS=off``, then ``offline`` (shipped or in a
    package), so that full mode also runs where nothing can be downloaded.

    >>> full_mode_data(download="cifar10", offline="digits") in ("cifar10", "digits")
    True
    """
    for name, value in (("download", download), ("offline", offline)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a dataset name, got {value!r}")
    return download if DOWNLOADS else offline


def get_device(prefer: str | None = None) -> torch.device:
    """The device experiments run on: CUDA when present, else the CPU.

    ``prefer`` ("cpu" or "cuda") overrides the choice; asking for CUDA without one is an error.
    """
    if prefer is not None:
        if not isinstance(prefer, str) or prefer not in ("cpu", "cuda"):
            raise ValueError(f"prefer must be 'cpu', 'cuda' or None, got {prefer!r}")
        if prefer == "cuda" and not torch.cuda.is_available():
            raise ValueError("prefer='cuda' but no CUDA device is available")
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` seeded the same way."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def by_mode(*, quick, full, mode: str | None = None):
    """The value for the current run mode: ``quick`` in quick mode, ``full`` in full mode
    (chapter 1).  Any values: sizes, learning rates, tolerances, a whole settings object.

    >>> by_mode(quick=200, full=5000, mode="quick")
    200
    >>> by_mode(quick=200, full=5000, mode="full")
    5000
    """
    mode = MODE if mode is None else mode
    if mode not in ALLOWED_MODES:
        raise ValueError(f"mode must be one of {ALLOWED_MODES}, got {mode!r}")
    return quick if mode == "quick" else full


def describe() -> str:
    """One line saying the mode, how to change it, the device and the CPU threads, printed once
    at the top of each notebook."""
    device = get_device()
    extra = f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""
    other = "full" if MODE == "quick" else "quick"
    # %env works in Jupyter and Colab; MODE is read once, at import, hence the restart
    change = f"for {other} mode: restart the kernel and run %env COURSE_MODE={other} first"
    return (
        f"course mode: {MODE} ({change}) | device: {device}{extra} | "
        f"torch {torch.__version__}, {THREADS} CPU thread{'s' if THREADS > 1 else ''}"
    )
