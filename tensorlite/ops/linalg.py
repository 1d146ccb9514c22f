"""Matrix products. ``matmul`` follows NumPy/PyTorch: 1-D operands, batched and broadcast."""

from __future__ import annotations

from tensorlite.amp.autocast_mode import cast_inputs
from tensorlite.amp.autocast_mode import state as autocast
from tensorlite.autograd import Function
from tensorlite.errors import broadcast_error
from tensorlite.ops.elementwise import unbroadcast
from tensorlite.tensor import Tensor


class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b, xp = self.a, self.b, self.xp
        if a.ndim == 1 and b.ndim == 1:  # dot product
            return (g * b if self.needs_grad(0) else None), (g * a if self.needs_grad(1) else None)
        a2 = a[None, :] if a.ndim == 1 else a  # promote vectors to matrices, as matmul does
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        ga = gb = None
        if self.needs_grad(0):
            ga = unbroadcast(g2 @ xp.swapaxes(b2, -1, -2), a2.shape)
        if self.needs_grad(1):
            gb = unbroadcast(xp.swapaxes(a2, -1, -2) @ g2, b2.shape)
        # Back to vector shapes where a vector was promoted (no reshape otherwise: it would make a view).
        return (ga.reshape(a.shape) if ga is not None and a.ndim == 1 else ga,
                gb.reshape(b.shape) if gb is not None and b.ndim == 1 else gb)


def matmul(input: Tensor, other: Tensor) -> Tensor:
    """Matrix product; leading (batch) dimensions broadcast."""
    if not isinstance(input, Tensor) or not isinstance(other, Tensor):
        raise TypeError(f"matmul: expected two tensors, got {type(input).__name__} and {type(other).__name__}")
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, other = cast_inputs("matmul", input, other)
    a, b = input.shape, other.shape
    if not a or not b:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a} and {b}")
    inner_b = b[0] if len(b) == 1 else b[-2]
    if a[-1] != inner_b:
        raise ValueError(f"matmul: {a} @ {b}: inner dimensions {a[-1]} and {inner_b} differ")
    if len(a) > 2 and len(b) > 2:
        try:
            input._device.backend.xp.broadcast_shapes(a[:-2], b[:-2])
        except ValueError as exc:
            raise broadcast_error(f"matmul: {a} @ {b}: batch dimensions", a[:-2], b[:-2]) from exc
    return MatMul.apply(input, other)
