"""Reductions over dimensions (``sum mean var std max min logsumexp``), softmax, argmax.

``dim`` is ``None`` (all dimensions), an int or a tuple of ints; ``keepdim`` keeps reduced
dimensions with size 1, as in PyTorch.
"""

from __future__ import annotations

import builtins
from typing import Any, NamedTuple

from tensorlite.amp.autocast_mode import cast_inputs
from tensorlite.amp.autocast_mode import state as autocast
from tensorlite.autograd import Function
from tensorlite.errors import check_dim
from tensorlite.tensor import Tensor


class ValuesIndices(NamedTuple):
    """What ``max(dim=...)``/``min(dim=...)`` return: the values and where they were."""

    values: Tensor
    indices: Tensor


def normalize_dims(op: str, dim: Any, input: Tensor) -> tuple[int, ...] | None:
    """``dim`` as a tuple of non-negative axes of ``input``, checked; None (every axis) stays None."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(check_dim(op, d, input.ndim) for d in dims)


def kept_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> tuple[int, ...]:
    """``shape`` with the reduced axes set to 1 (the shape ``keepdim=True`` gives)."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _count(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> int:
    count = 1
    for i, n in enumerate(shape):
        if axes is None or i in axes:
            count *= n
    return count


class Sum(Function):
    def forward(self, x, axes, keepdim):
        self.shape, self.axes = x.shape, axes
        return x.sum(axis=axes, keepdims=keepdim)

    def backward(self, g):
        if self.axes is not None:  # (a full sum's one value broadcasts as it is)
            g = g.reshape(kept_shape(self.shape, self.axes))
        return (self.backend.broadcast_gradient(g, self.shape), None, None)


class Mean(Function):
    def forward(self, x, axes, keepdim):
        self.shape, self.axes = x.shape, axes
        return x.mean(axis=axes, keepdims=keepdim)

    def backward(self, g):
        g = g.reshape(kept_shape(self.shape, self.axes)) * (1.0 / _count(self.shape, self.axes))
        return (self.backend.broadcast_gradient(g, self.shape), None, None)


class Var(Function):
    """Variance with Bessel's ``correction`` (1: unbiased, as PyTorch's default)."""

    def forward(self, x, axes, correction, keepdim):
        self.axes, self.shape = axes, x.shape
        self.centered = x - x.mean(axis=axes, keepdims=True)
        self.denominator = builtins.max(_count(x.shape, axes) - correction, 0)
        return (self.centered * self.centered).sum(axis=axes, keepdims=keepdim) / self.denominator

    def backward(self, g):
        g = g.reshape(kept_shape(self.shape, self.axes))
        return (g * self.centered * (2.0 / self.denominator), None, None, None)


class MaxAll(Function):
    """Maximum (or minimum) over all elements; ties share the gradient evenly, as in PyTorch."""

    def forward(self, x, largest):
        self.x = x
        self.out = x.max() if largest else x.min()
        return self.out

    def backward(self, g):
        mask = self.x == self.out
        return (g * mask / mask.sum(), None)


class Logsumexp(Function):
    def forward(self, x, axes, keepdim):
        xp = self.xp
        shift = x.max(axis=axes, keepdims=True)
        shift = xp.where(xp.isfinite(shift), shift, 0)
        kept = xp.log(xp.exp(x - shift).sum(axis=axes, keepdims=True)) + shift
        self.x, self.kept, self.axes = x, kept, axes
        return kept if keepdim else kept.reshape(tuple(n for i, n in enumerate(kept.shape) if i not in axes))

    def backward(self, g):
        g = g.reshape(self.kept.shape)
        return (g * self.xp.exp(self.x - self.kept), None, None)


class Softmax(Function):
    """exp(x) / sum(exp(x)) along ``dim``, through the backend's softmax kernel on the last axis (other axes
    are moved there and back: views)."""

    def forward(self, x, dim):
        xp = self.xp
        self.dim = dim
        self.out = xp.moveaxis(self.backend.softmax(xp.moveaxis(x, dim, -1)), -1, dim)
        return self.out

    def backward(self, g):
        xp, dim = self.xp, self.dim
        grad = self.backend.softmax_backward(xp.moveaxis(g, dim, -1), xp.moveaxis(self.out, dim, -1))
        return (xp.moveaxis(grad, -1, dim), None)


class LogSoftmax(Function):
    def forward(self, x, dim):
        shifted = x - x.max(axis=dim, keepdims=True)
        self.out = shifted - self.xp.log(self.xp.exp(shifted).sum(axis=dim, keepdims=True))
        self.dim = dim
        return self.out

    def backward(self, g):
        return (g - self.xp.exp(self.out) * g.sum(axis=self.dim, keepdims=True), None)


class ArgExtreme(Function):
    differentiable = False

    def forward(self, x, dim, keepdim, largest):
        find = self.xp.argmax if largest else self.xp.argmin
        if dim is None:
            out = find(x)
            return out.reshape((1,) * x.ndim) if keepdim else out
        return find(x, axis=dim, keepdims=keepdim).astype("int64", copy=False)


# -- the public functions --------------------------------------------------------------------------
def sum(input: Tensor, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
    """The sum over ``dim`` (all elements when None); ``keepdim`` keeps the reduced dimensions as size 1."""
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, = cast_inputs("sum", input)
    axes = None if dim is None else normalize_dims("sum", dim, input)  # (a full sum, the usual loss, skips a call)
    return Sum.apply(input, axes, keepdim)


def mean(input: Tensor, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
    """The mean over ``dim`` (all elements when None); ``keepdim`` keeps the reduced dimensions as size 1."""
    if input.dtype.kind != "f":
        raise TypeError(f"mean: expected a floating-point tensor, got {input.dtype}; cast it with .float()")
    return Mean.apply(input, normalize_dims("mean", dim, input), keepdim)


def var(input: Tensor, dim: int | tuple[int, ...] | None = None, *, correction: int = 1,
        keepdim: bool = False, unbiased: bool | None = None) -> Tensor:
    """Variance; ``correction=1`` (or ``unbiased=True``) divides by N - 1, ``0`` by N."""
    if unbiased is not None:
        correction = int(unbiased)
    return Var.apply(input, normalize_dims("var", dim, input), correction, keepdim)


def std(input: Tensor, dim: int | tuple[int, ...] | None = None, *, correction: int = 1,
        keepdim: bool = False, unbiased: bool | None = None) -> Tensor:
    """Standard deviation, the square root of ``var`` (same ``dim``, ``correction``, ``keepdim``)."""
    return var(input, dim, correction=correction, keepdim=keepdim, unbiased=unbiased).sqrt()


def _extreme(op: str, input: Tensor, dim: Any, keepdim: bool, largest: bool) -> Tensor | ValuesIndices:
    if isinstance(dim, Tensor):  # tl.max(a, b) is the elementwise maximum, as in PyTorch
        from tensorlite.ops.elementwise import maximum, minimum

        return maximum(input, dim) if largest else minimum(input, dim)
    if input.numel() == 0:
        raise RuntimeError(f"{op}: cannot reduce an empty tensor of shape {input.shape}")
    if dim is None:
        return MaxAll.apply(input, largest)
    from tensorlite.ops.indexing import gather

    dim = check_dim(op, dim, input.ndim)
    indices = ArgExtreme.apply(input, dim, True, largest)
    values = gather(input, dim, indices)
    if not keepdim:
        values, indices = values.squeeze(dim), indices.squeeze(dim)
    return ValuesIndices(values, indices)


def max(input: Tensor, dim: int | Tensor | None = None, keepdim: bool = False) -> Tensor | ValuesIndices:
    """The largest value; with ``dim``, ``(values, indices)`` along it; with a tensor, ``maximum``."""
    return _extreme("max", input, dim, keepdim, True)


def min(input: Tensor, dim: int | Tensor | None = None, keepdim: bool = False) -> Tensor | ValuesIndices:
    """The smallest value; with ``dim``, ``(values, indices)`` along it; with a tensor, ``minimum``."""
    return _extreme("min", input, dim, keepdim, False)


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the largest value along ``dim`` (of the flattened tensor when None), int64."""
    dim = None if dim is None else check_dim("argmax", dim, input.ndim)
    return ArgExtreme.apply(input, dim, keepdim, True)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the smallest value along ``dim`` (of the flattened tensor when None), int64."""
    dim = None if dim is None else check_dim("argmin", dim, input.ndim)
    return ArgExtreme.apply(input, dim, keepdim, False)


def logsumexp(input: Tensor, dim: int | tuple[int, ...], keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) along ``dim``, computed without overflow."""
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, = cast_inputs("logsumexp", input)
    return Logsumexp.apply(input, normalize_dims("logsumexp", dim, input), keepdim)


def softmax(input: Tensor, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, shifted by the maximum so it never overflows."""
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, = cast_inputs("softmax", input)
    return Softmax.apply(input, check_dim("softmax", dim, input.ndim))


def log_softmax(input: Tensor, dim: int = -1) -> Tensor:
    """log(softmax(x)) along ``dim``, computed directly (stable for very negative logits)."""
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, = cast_inputs("log_softmax", input)
    return LogSoftmax.apply(input, check_dim("log_softmax", dim, input.ndim))
