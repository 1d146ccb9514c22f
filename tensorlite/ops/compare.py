"""Comparisons and logical ops: elementwise, bool results, no gradient."""

from __future__ import annotations

from typing import Any

from tensorlite.autograd import Function
from tensorlite.errors import broadcast_error
from tensorlite.tensor import Tensor


class Elementwise(Function):
    """Applies the namespace's ufunc ``name``; outputs never require grad."""

    differentiable = False

    def forward(self, *arrays, name):
        try:
            return getattr(self.xp, name)(*arrays)
        except ValueError as exc:
            raise broadcast_error(name, *(getattr(a, "shape", ()) for a in arrays)) from exc


def _apply(name: str, *args: Any) -> Tensor:
    return Elementwise.apply(*args, name=name)


def eq(input: Tensor, other: Tensor | Any) -> Tensor:
    """``input == other`` elementwise, broadcast: a bool tensor (no gradient)."""
    return _apply("equal", input, other)


def ne(input: Tensor, other: Tensor | Any) -> Tensor:
    """``input != other`` elementwise, broadcast: a bool tensor."""
    return _apply("not_equal", input, other)


def lt(input: Tensor, other: Tensor | Any) -> Tensor:
    """``input < other`` elementwise, broadcast: a bool tensor."""
    return _apply("less", input, other)


def le(input: Tensor, other: Tensor | Any) -> Tensor:
    """``input <= other`` elementwise, broadcast: a bool tensor."""
    return _apply("less_equal", input, other)


def gt(input: Tensor, other: Tensor | Any) -> Tensor:
    """``input > other`` elementwise, broadcast: a bool tensor."""
    return _apply("greater", input, other)


def ge(input: Tensor, other: Tensor | Any) -> Tensor:
    """``input >= other`` elementwise, broadcast: a bool tensor."""
    return _apply("greater_equal", input, other)


def logical_not(input: Tensor) -> Tensor:
    """``~input`` for a bool tensor (nonzero counts as True)."""
    return _apply("logical_not", input)


def logical_and(input: Tensor, other: Tensor | Any) -> Tensor:
    """``input & other`` elementwise, broadcast (nonzero counts as True)."""
    return _apply("logical_and", input, other)


def logical_or(input: Tensor, other: Tensor | Any) -> Tensor:
    """``input | other`` elementwise, broadcast (nonzero counts as True)."""
    return _apply("logical_or", input, other)


def isfinite(input: Tensor) -> Tensor:
    """True where the element is neither infinite nor NaN."""
    return _apply("isfinite", input)


def equal(input: Tensor, other: Tensor) -> bool:
    """True if both tensors have the same shape and elements."""
    return input.shape == other.shape and bool(eq(input, other)._data.all())


def allclose(input: Tensor, other: Tensor, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    """True if ``|input - other| <= atol + rtol * |other|`` everywhere (shapes broadcast), as NumPy."""
    diff = (input - other).abs()._data
    return bool((diff <= atol + rtol * other.abs()._data).all())
