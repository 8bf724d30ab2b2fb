"""Argument checks shared by the library from chapter 1 on: each error names the argument and
what was expected."""

from __future__ import annotations

import numbers

import torch


def check_int(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def check_positive(value, name: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_fraction(value, name: str, allow_zero: bool = False) -> float:
    value = check_positive(value, name, allow_zero=allow_zero)
    if value >= 1:
        raise ValueError(f"{name} must be < 1, got {value}")
    return value


def check_tokens(tokens, name: str, vocab_size: int | None = None) -> torch.Tensor:
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of word ids, got {type(tokens).__name__}")
    if tokens.dtype != torch.long:
        raise TypeError(f"{name} must have dtype torch.long (word ids), got {tokens.dtype}")
    if tokens.dim() != 2:
        raise ValueError(f"{name} must have shape (batch, length), got {tuple(tokens.shape)}")
    if tokens.numel() and vocab_size is not None:
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= vocab_size:
            raise ValueError(
                f"{name} must hold word ids in [0, {vocab_size - 1}], found ids in [{low}, {high}]"
            )
    return tokens
