"""The machinery every exercise check shares (defined in chapter 1)."""

from __future__ import annotations

import functools
import traceback
from typing import Callable

import torch


class CheckFailed(AssertionError):
    """Raised inside a check with a hint that says what is wrong and where to look."""


def run_check(title: str) -> Callable:
    """Decorator turning ``body(student_fn)`` into a check that prints and returns a bool."""

    def wrap(body: Callable) -> Callable:
        @functools.wraps(body)
        def check(student_fn: Callable) -> bool:
            name = getattr(student_fn, "__name__", "your function")
            if not callable(student_fn):
                print(
                    f"[not run] {title}: pass the function itself, e.g. check(my_function), "
                    f"not {type(student_fn).__name__}."
                )
                return False
            try:
                body(student_fn)
            except NotImplementedError:
                print(
                    f"[to do] {title}: `{name}` is not implemented yet. Replace the "
                    "`raise NotImplementedError` line with your code and run the cell again."
                )
                return False
            except CheckFailed as failure:
                print(f"[wrong] {title}: {failure}")
                return False
            # a crash in student code is a hint too, not a notebook error
            except Exception as error:
                where = traceback.extract_tb(error.__traceback__)[-1]
                print(
                    f"[error] {title}: `{name}` raised {type(error).__name__}: {error} "
                    f"(line {where.lineno}: {where.line})"
                )
                return False
            print(f"[passed] {title}: all checks passed.")
            return True

        return check

    return wrap


def expect_tensor(value, name: str, shape: tuple, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Fail with a hint unless ``value`` is a tensor of ``shape`` (and ``dtype``)."""
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{name} should be a torch.Tensor, got {type(value).__name__}.")
    if tuple(value.shape) != tuple(shape):
        raise CheckFailed(f"{name} should have shape {tuple(shape)}, got {tuple(value.shape)}.")
    if dtype is not None and value.dtype != dtype:
        raise CheckFailed(f"{name} should have dtype {dtype}, got {value.dtype}.")
    return value


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=tol, rtol=tol))
