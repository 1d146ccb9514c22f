"""Indexing: ``x[key]`` (basic and advanced), ``gather``, ``masked_fill``, ``tril``/``triu``,
``one_hot``, and in-place ``x[key] = value`` outside the graph.

Advanced-index gradients accumulate with the backend's scatter-add, since an index may repeat.
"""

from __future__ import annotations

from typing import Any

from tensorlite import autograd
from tensorlite.autograd import Function, SliceGrad
from tensorlite.errors import check_dim, device_mismatch
from tensorlite.ops.elementwise import where
from tensorlite.tensor import Tensor

_BASIC = (int, slice, type(None), type(Ellipsis))


def _index_array(op: str, index: Any, device: Any) -> Any:
    """An index given as a Tensor, NumPy array or list, as an array on ``device``; checks its dtype."""
    backend = device.backend
    if isinstance(index, Tensor):
        if index._device is not device:
            raise device_mismatch(f"{op} (the index, the tensor)", index._device, device)
        array = index._data
    elif backend.is_array(index):
        array = index
    else:
        import numpy

        array = backend.from_host(numpy.asarray(index))
    if array.dtype.kind not in "iub":
        raise IndexError(f"{op}: indices must be integer (int32/int64) or bool tensors, got {array.dtype}")
    return array


def _device_key(key: Any, device: Any) -> tuple[Any, bool]:
    """Convert a user's key to one the backend understands; also say whether it is basic indexing."""
    parts = key if isinstance(key, tuple) else (key,)
    converted, basic = [], True
    for part in parts:
        if isinstance(part, _BASIC) and not isinstance(part, bool):
            converted.append(part)
        else:
            converted.append(_index_array("index", part, device))
            basic = False
    return tuple(converted), basic


class GetItem(Function):
    def forward(self, x, key, basic):
        self.shape, self.dtype, self.key, self.basic = x.shape, x.dtype, key, basic
        try:
            return x[key]
        except IndexError as exc:
            raise IndexError(f"index: {exc} (tensor shape {x.shape})") from exc

    def backward(self, g):
        if self.basic:  # a region of x (never an element twice): the engine adds the pieces of a split lazily
            return (SliceGrad(self.xp, self.shape, g.dtype, [(self.key, g)]), None, None)
        grad = self.xp.zeros(self.shape, dtype=g.dtype)
        self.backend.scatter_add(grad, self.key, g)
        return (grad, None, None)


class Gather(Function):
    def forward(self, x, dim, index):
        xp = self.xp
        lead = tuple(slice(0, n) for n in index.shape)  # PyTorch lets index be smaller off ``dim``
        lead = lead[:dim] + (slice(None),) + lead[dim + 1:]
        self.shape, self.dim, self.index, self.lead = x.shape, dim, index, lead
        return xp.take_along_axis(x[lead], index, axis=dim)

    def backward(self, g):
        xp = self.xp
        grad = xp.zeros(self.shape, dtype=g.dtype)
        coords = []
        for axis, n in enumerate(self.index.shape):
            if axis == self.dim:
                coords.append(self.index)
            else:
                shape = [1] * self.index.ndim
                shape[axis] = n
                coords.append(xp.arange(n).reshape(shape))
        self.backend.scatter_add(grad, tuple(coords), g)
        return (grad, None, None)


class Tril(Function):
    def forward(self, x, diagonal, upper):
        self.diagonal, self.upper = diagonal, upper
        return self.xp.triu(x, diagonal) if upper else self.xp.tril(x, diagonal)

    def backward(self, g):
        return ((self.xp.triu if self.upper else self.xp.tril)(g, self.diagonal), None, None)


class Diag(Function):
    """A vector onto diagonal ``k`` of a square matrix, or diagonal ``k`` of a matrix out as a vector."""

    def forward(self, x, k):
        self.shape, self.k = x.shape, k
        return self.xp.diag(x, k).copy()

    def backward(self, g):
        xp, k = self.xp, self.k
        if len(self.shape) == 1:
            return (xp.diagonal(g, k).copy(), None)
        steps = xp.arange(g.shape[0])
        grad = xp.zeros(self.shape, dtype=g.dtype)
        grad[steps + max(-k, 0), steps + max(k, 0)] = g
        return (grad, None)


# -- the public functions --------------------------------------------------------------------------
def getitem(input: Tensor, key: Any) -> Tensor:
    """``input[key]``: integers, slices, None, ``...``, and integer or bool tensors index as NumPy."""
    key, basic = _device_key(key, input._device)
    return GetItem.apply(input, key, basic)


def setitem_(input: Tensor, key: Any, value: Any) -> None:
    """``input[key] = value`` in place. Not recorded by autograd, so refused on tensors in a graph."""
    if input._requires_grad and autograd.is_grad_enabled():
        raise RuntimeError(
            "setitem: in-place assignment to a tensor that requires grad is not supported; "
            "use tl.where / masked_fill, or assign under tl.no_grad()"
        )
    key, _ = _device_key(key, input._device)
    if isinstance(value, Tensor):
        if value._device is not input._device:
            raise device_mismatch("setitem (the value, the tensor)", value._device, input._device)
        value = value._data
    input._data[key] = value


def gather(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """``out[i][j] = input[index[i][j]][j]`` for ``dim=0`` (and likewise for other dims)."""
    dim = check_dim("gather", dim, input.ndim)
    array = _index_array("gather", index, input._device)
    if array.ndim != input.ndim:
        raise ValueError(f"gather: index has {array.ndim} dimensions but input has {input.ndim} "
                         f"(shapes {array.shape} and {input.shape})")
    for axis, (n, m) in enumerate(zip(array.shape, input.shape)):
        if axis != dim and n > m:
            raise ValueError(f"gather: index shape {array.shape} is larger than input shape {input.shape} "
                             f"in dimension {axis}")
    return Gather.apply(input, dim, array)



def masked_fill(input: Tensor, mask: Tensor, value: float) -> Tensor:
    """``value`` where ``mask`` is True, ``input`` elsewhere (``mask`` broadcasts)."""
    if not isinstance(mask, Tensor) or mask.dtype.kind != "b":
        raise TypeError(f"masked_fill: mask must be a bool tensor, got {getattr(mask, 'dtype', type(mask).__name__)}")
    return where(mask, value, input)


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """Keep the lower triangle (on and below ``diagonal``) of the last two dimensions."""
    return Tril.apply(input, diagonal, False)


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """Keep the upper triangle (on and above ``diagonal``) of the last two dimensions."""
    return Tril.apply(input, diagonal, True)


def diag(input: Tensor, diagonal: int = 0) -> Tensor:
    """A vector (n,) becomes the square matrix with it on diagonal ``diagonal`` (0: the main one, > 0
    above, < 0 below); a matrix gives that diagonal as a vector, as ``torch.diag``."""
    if input.ndim not in (1, 2):
        raise ValueError(f"diag: expected a vector or a matrix, got shape {input.shape}")
    if isinstance(diagonal, bool) or not isinstance(diagonal, int):
        raise TypeError(f"diag: diagonal must be an int, got {type(diagonal).__name__}")
    return Diag.apply(input, diagonal)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding: shape ``tensor.shape + (num_classes,)``."""
    if tensor.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expected an integer tensor of class indices, got {tensor.dtype}")
    xp = tensor._device.backend.xp
    data = tensor._data
    if num_classes < 0:
        num_classes = int(data.max()) + 1 if data.size else 0
    if data.size and (int(data.min()) < 0 or int(data.max()) >= num_classes):
        raise ValueError(f"one_hot: class values must be in [0, {num_classes}), "
                         f"got values from {int(data.min())} to {int(data.max())}")
    out = (data[..., None] == xp.arange(num_classes)).astype("int64")
    return Tensor._make(out, tensor._device, False, None)
