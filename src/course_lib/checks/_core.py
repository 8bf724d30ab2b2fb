"""The machinery every exercise check shares (defined in chapter 1)."""

from __future__ import annotations

import functools
import traceback
from typing import Callable

import numpy as np
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


def expect_number(value, what: str) -> float:
    """One real number from a Python or NumPy scalar, or a 0-d or one-element array or tensor;
    fail with a hint naming ``what`` otherwise (a string, several values, no number)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise CheckFailed(
                f"{what} should be one number, got a tensor of shape {tuple(value.shape)}."
            )
        return float(value.detach().cpu().reshape(()))
    if isinstance(value, (str, bytes, dict)):
        raise CheckFailed(f"{what} should be a number, got {type(value).__name__}.")
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} should be a number, got {type(value).__name__}.")
    if array.size != 1:
        raise CheckFailed(f"{what} should be one number, got {array.size} values.")
    return float(array.reshape(()))


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=tol, rtol=tol))


def yours_or_reference(yours: Callable, reference: Callable, *example) -> Callable:
    """The student's function if it runs on ``example``, else the course's ``reference``
    (exercises 7 and 8: a later cell builds on the exercise's function, and a stub or a bug
    must not stop the notebook).  Prints which one is used when it is the reference."""
    try:
        yours(*example)
        return yours
    except NotImplementedError:
        print(f"({yours.__name__} is not implemented yet: using the reference)")
    except Exception as error:  # a bug in the student's function should not stop the notebook
        print(f"({yours.__name__} raised {error!r}: using the course's reference)")
    return reference
