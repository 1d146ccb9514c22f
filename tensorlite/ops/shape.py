"""Shape ops: reshape/view, flatten, permute/transpose, expand, squeeze/unsqueeze, cat, stack,
split, chunk, roll. Gradients just undo the rearrangement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tensorlite.autograd import Function
from tensorlite.errors import check_dim
from tensorlite.ops.elementwise import unbroadcast
from tensorlite.tensor import Tensor


def _sizes(op: str, sizes: tuple) -> tuple[int, ...]:
    """Accept ``f(2, 3)`` and ``f((2, 3))`` alike, as PyTorch does."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    if not all(isinstance(n, int) for n in sizes):
        raise TypeError(f"{op}: sizes must be integers, got {sizes}")
    return tuple(sizes)


class Reshape(Function):
    def forward(self, x, shape):
        self.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError as exc:
            raise ValueError(
                f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {shape}"
            ) from exc

    def backward(self, g):
        return (g.reshape(self.in_shape), None)


class Permute(Function):
    def forward(self, x, dims):
        self.inverse = tuple(sorted(range(len(dims)), key=dims.__getitem__))
        return x.transpose(dims)

    def backward(self, g):
        return (g.transpose(self.inverse), None)


class Expand(Function):
    def forward(self, x, shape):
        self.in_shape = x.shape
        return self.backend.broadcast_to(x, shape)

    def backward(self, g):
        return (unbroadcast(g, self.in_shape), None)


class Roll(Function):
    """Shift entries along ``axes`` by ``shifts`` (``axes=None``: over the flattened tensor), wrapping around."""

    def forward(self, x, shifts, axes):
        self.shifts, self.axes = shifts, axes
        return self.xp.roll(x, shifts, axis=axes)

    def backward(self, g):
        back = -self.shifts if self.axes is None else tuple(-s for s in self.shifts)
        return (self.xp.roll(g, back, axis=self.axes), None, None)


class Cat(Function):
    def forward(self, *arrays, dim):
        self.dim = dim
        self.bounds = [0]
        for a in arrays:
            self.bounds.append(self.bounds[-1] + a.shape[dim])
        return self.xp.concatenate(arrays, axis=dim)

    def backward(self, g):
        lead = (slice(None),) * self.dim
        return tuple(g[lead + (slice(lo, hi),)] for lo, hi in zip(self.bounds, self.bounds[1:]))


class Stack(Function):
    def forward(self, *arrays, dim):
        self.dim = dim
        return self.xp.stack(arrays, axis=dim)

    def backward(self, g):
        lead = (slice(None),) * self.dim
        return tuple(g[lead + (i,)] for i in range(g.shape[self.dim]))


# -- the public functions --------------------------------------------------------------------------
def reshape(input: Tensor, *shape: int | Sequence[int]) -> Tensor:
    """The same elements in a new shape; one size may be -1 (inferred)."""
    shape = _sizes("reshape", shape)
    return input if shape == input.shape else Reshape.apply(input, shape)


view = reshape


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions ``start_dim`` to ``end_dim`` (inclusive) into one."""
    if input.ndim == 0:
        return reshape(input, (1,))
    start, end = check_dim("flatten", start_dim, input.ndim), check_dim("flatten", end_dim, input.ndim)
    shape = input.shape
    return reshape(input, shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:])


def permute(input: Tensor, *dims: int | Sequence[int]) -> Tensor:
    """Reorder the dimensions: output dimension i is input dimension ``dims[i]``."""
    dims = tuple(check_dim("permute", d, input.ndim) for d in _sizes("permute", dims))
    if sorted(dims) != list(range(input.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of the {input.ndim} dimensions of {input.shape}")
    return Permute.apply(input, dims)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions."""
    dims = list(range(input.ndim))
    d0, d1 = check_dim("transpose", dim0, input.ndim), check_dim("transpose", dim1, input.ndim)
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(input, tuple(dims))


def t(input: Tensor) -> Tensor:
    """Transpose a matrix (``input.T`` for ndim <= 2)."""
    if input.ndim > 2:
        raise ValueError(f"t: expects a tensor with at most 2 dimensions, got shape {input.shape}; use transpose")
    return input if input.ndim < 2 else transpose(input, 0, 1)


def expand(input: Tensor, *sizes: int | Sequence[int]) -> Tensor:
    """A broadcast view with larger sizes; -1 keeps a dimension's size. No copy."""
    sizes = _sizes("expand", sizes)
    lead = len(sizes) - input.ndim
    if lead < 0:
        raise ValueError(f"expand: target {sizes} has fewer dimensions than the tensor's shape {input.shape}")
    shape = tuple(input.shape[i - lead] if n == -1 else n for i, n in enumerate(sizes))
    for i, n in enumerate(input.shape):
        if n != 1 and n != shape[lead + i]:
            raise ValueError(f"expand: cannot expand shape {input.shape} to {sizes}: dimension {i} has size {n}, "
                             "only size-1 dimensions can be expanded")
    return Expand.apply(input, shape)


def expand_as(input: Tensor, other: Tensor) -> Tensor:
    """``input.expand(*other.shape)``: broadcast to another tensor's shape, without a copy."""
    return expand(input, other.shape)


def squeeze(input: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Remove size-1 dimensions (all, or those in ``dim``; others are left alone)."""
    if dim is None:
        dims = {i for i, n in enumerate(input.shape) if n == 1}
    else:
        dims = {check_dim("squeeze", d, input.ndim) for d in ((dim,) if isinstance(dim, int) else dim)}
    return reshape(input, tuple(n for i, n in enumerate(input.shape) if not (i in dims and n == 1)))


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    """Insert a size-1 dimension at ``dim`` (negative counts from the end of the result)."""
    dim = check_dim("unsqueeze", dim, input.ndim + 1)
    return reshape(input, input.shape[:dim] + (1,) + input.shape[dim:])


def _check_same_shapes(op: str, tensors: Sequence[Tensor], dim: int | None) -> None:
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    first = tensors[0].shape
    for i, t in enumerate(tensors[1:], start=1):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected tensors, item {i} is {type(t).__name__}")
        shape = t.shape
        same = len(shape) == len(first) and all(a == b for k, (a, b) in enumerate(zip(shape, first)) if k != dim)
        if not same:
            where = "except in the concatenated dimension " + str(dim) if dim is not None else ""
            raise ValueError(f"{op}: tensor 0 has shape {first} but tensor {i} has shape {shape}; "
                             f"all shapes must match {where}".rstrip())


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension."""
    tensors = list(tensors)
    dim = check_dim("cat", dim, tensors[0].ndim) if tensors else 0
    _check_same_shapes("cat", tensors, dim)
    return Cat.apply(*tensors, dim=dim)


concat = concatenate = cat


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join same-shaped tensors along a new dimension."""
    tensors = list(tensors)
    dim = check_dim("stack", dim, tensors[0].ndim + 1) if tensors else 0
    _check_same_shapes("stack", tensors, None)
    return Stack.apply(*tensors, dim=dim)


def split(input: Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces of size ``split_size`` (the last may be smaller), or of the listed sizes."""
    dim = check_dim("split", dim, input.ndim)
    n = input.shape[dim]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split size must be positive, got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, n - lo) for lo in range(0, n, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} add up to {sum(sizes)}, but dimension {dim} has size {n}")
    lead = (slice(None),) * dim
    pieces, lo = [], 0
    for size in sizes:
        pieces.append(input[lead + (slice(lo, lo + size),)])
        lo += size
    return tuple(pieces)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """Split into ``chunks`` pieces of equal size (the last may be smaller), as PyTorch does."""
    if chunks <= 0:
        raise ValueError(f"chunk: number of chunks must be positive, got {chunks}")
    n = input.shape[check_dim("chunk", dim, input.ndim)]
    return split(input, max(math.ceil(n / chunks), 1), dim)


def _ints(op: str, name: str, value: object) -> list[int]:
    """An int or a sequence of ints as a list, or a TypeError naming the argument."""
    items = [value] if isinstance(value, int) else list(value) if isinstance(value, (tuple, list)) else None
    if not items or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise TypeError(f"{op}: {name} must be an int or a sequence of ints, got {value!r}")
    return items


def roll(input: Tensor, shifts: int | Sequence[int], dims: int | Sequence[int] | None = None) -> Tensor:
    """Shift entries by ``shifts`` along ``dims`` (one shift per dim), wrapping around the end;
    without ``dims``, along the flattened tensor, shape kept."""
    shift_list = _ints("roll", "shifts", shifts)
    if dims is None:
        if len(shift_list) != 1:
            raise ValueError(f"roll: without dims, shifts must be one int (the flattened tensor), got {shifts!r}")
        return Roll.apply(input, shift_list[0], None)
    dim_list = _ints("roll", "dims", dims)
    if len(dim_list) != len(shift_list):
        raise ValueError(f"roll: shifts and dims must have the same length, got shifts={shifts!r} and dims={dims!r}")
    axes = tuple(check_dim("roll", d, input.ndim) for d in dim_list)
    return Roll.apply(input, tuple(shift_list), axes)
