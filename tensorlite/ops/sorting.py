"""Ordering along a dimension: ``topk`` (the k largest or smallest values and where they are).

The indices come from a stable sort along ``dim`` (ties in index order, NaN larger than any number,
as in PyTorch); the values are gathered through them, so their gradient flows back to the places
they came from.
"""

from __future__ import annotations

from typing import Any

from tensorlite.autograd import Function
from tensorlite.errors import check_dim
from tensorlite.ops.indexing import gather
from tensorlite.ops.reduction import ValuesIndices
from tensorlite.tensor import Tensor


def topk_indices(xp: Any, x: Any, k: int, axis: int, largest: bool) -> Any:
    """int64 indices of the ``k`` largest (or smallest) entries of ``x`` along ``axis``, best first; tied
    entries in index order (PyTorch leaves their order unspecified)."""
    if largest:  # stable and descending: sort the reversed row ascending (NaN last), then flip it back
        order = xp.argsort(xp.flip(x, axis=axis), axis=axis, kind="stable")
        order = (x.shape[axis] - 1) - xp.flip(order, axis=axis)
    else:
        order = xp.argsort(x, axis=axis, kind="stable")
    return order[(slice(None),) * axis + (slice(0, k),)].astype("int64")


class TopkIndices(Function):
    differentiable = False

    def forward(self, x, k, axis, largest):
        return topk_indices(self.xp, x, k, axis, largest)


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> ValuesIndices:
    """The ``k`` largest (``largest=False``: smallest) entries along ``dim`` and their indices, each of
    ``input``'s shape with ``dim`` cut to ``k``. They always come sorted, best first (``sorted=False``
    allows any order, as in PyTorch); the values are differentiable, the indices int64."""
    if not isinstance(input, Tensor):
        raise TypeError(f"topk: expected a tensor, got {type(input).__name__}")
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"topk: k must be an int, got {type(k).__name__}")
    axis = check_dim("topk", dim, input.ndim)
    size = input.shape[axis] if input.ndim else 1
    if not 0 <= k <= size:
        raise IndexError(f"topk: k={k} is out of range for dimension {dim} of size {size} (shape {input.shape})")
    if input.ndim == 0:  # a scalar is one entry
        values, indices = topk(input.reshape(1), k, 0, largest, sorted)
        return ValuesIndices(values.reshape(()) if k else values, indices.reshape(()) if k else indices)
    indices = TopkIndices.apply(input, k, axis, largest)
    return ValuesIndices(gather(input, axis, indices), indices)


__all__ = ["topk"]
