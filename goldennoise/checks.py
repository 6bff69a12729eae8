"""Argument checks shared by goldennoise's public entry points: bad input fails at once, with the argument's name.

This module imports nothing from goldennoise, so every subpackage (``sampling/`` included) may use it. A tensor
check costs one reduction, ``torch.isfinite(x).all()``, per call; it reads a detached view, so it never enters
the autograd graph of a caller that differentiates through the checked function.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence

import torch

Shape = Sequence[int | str]
"""An expected shape: one entry per dimension, a size or a name for a free size, e.g. ``("B", 4, "h", "w")``."""


def _shape_text(shape: Shape) -> str:
    return "(" + ", ".join(str(size) for size in shape) + ")"


def _matches(actual: torch.Size, expected: Shape) -> bool:
    if len(actual) != len(expected):
        return False
    return all(isinstance(size, str) or got == size for got, size in zip(actual, expected, strict=True))


def _non_finite_summary(tensor: torch.Tensor) -> str:
    nan = int(torch.isnan(tensor).sum())
    inf = int(torch.isinf(tensor).sum())
    return f"{nan} NaN and {inf} infinite of {tensor.numel()} values"


def check_tensor(
    name: str,
    tensor: object,
    floating: bool = True,
    finite: bool = True,
    shape: Shape | None = None,
) -> torch.Tensor:
    """Check one tensor argument and return it unchanged.

    Args:
        name: the argument's name, as the caller knows it (it starts every error message).
        tensor: the value to check.
        floating: require a floating-point dtype (integer and bool tensors are refused).
        finite: require every value to be finite (no NaN, no ±inf).
        shape: the expected shape (see :data:`Shape`); ``None`` accepts any shape.

    Returns:
        ``tensor``.

    Raises:
        TypeError: ``tensor`` is not a tensor, or not floating-point when ``floating``.
        ValueError: its shape differs from ``shape``, or it holds NaN or infinite values when ``finite``.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}.")
    if floating and not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}.")
    if shape is not None and not _matches(tensor.shape, shape):
        raise ValueError(f"{name} must have shape {_shape_text(shape)}, got {tuple(tensor.shape)}.")
    if finite and not bool(torch.isfinite(tensor.detach()).all()):
        raise ValueError(f"{name} holds non-finite values ({_non_finite_summary(tensor.detach())}).")
    return tensor


def _bounds_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"between {minimum} and {maximum}"
    return f"at least {minimum}" if minimum is not None else f"at most {maximum}"


def check_int(name: str, value: object, minimum: int | None = None, maximum: int | None = None) -> int:
    """Check that ``value`` is an integer (not a bool or a float) within ``[minimum, maximum]``; return it as int.

    Raises:
        ValueError: ``value`` is not an integer or lies outside the bounds.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}.") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ValueError(f"{name} must be {_bounds_text(minimum, maximum)}, got {number}.")
    return number


def check_finite(name: str, value: object) -> float:
    """Check that ``value`` is a finite real number (not a bool); return it as float.

    Raises:
        ValueError: ``value`` is not a number, or is NaN or infinite.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    return float(value)


def check_prompts(name: str, prompts: Sequence[str]) -> list[str]:
    """Check that every entry of ``prompts`` is a string with some non-whitespace text; return them as a list.

    Raises:
        ValueError: an entry is not a string or is empty or whitespace only (the message gives its position).
    """
    if isinstance(prompts, str):
        raise ValueError(f"{name} must be a list of prompts, got the single string {prompts!r}.")
    prompts = list(prompts)
    for position, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{name}[{position}] is {prompt!r}; every prompt needs some text.")
    return prompts
