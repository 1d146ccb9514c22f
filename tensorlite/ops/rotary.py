"""Rotary position embedding (RoPE; Su et al., "RoFormer", 2021) as one op, and its tables.

Each position's query and key are rotated by angles proportional to the position, so their dot product
depends on how far apart two positions are, not where they are: no position embedding is learned. With
``x = [x1, x2]`` (the two halves of the last dimension, as GPT-NeoX and LLaMA split them)::

    rotary_embedding(x) = [x1 * cos - x2 * sin,  x2 * cos + x1 * sin]

and, a rotation being orthogonal, the gradient is the rotation back: ``[g1 * cos + g2 * sin, g2 * cos -
g1 * sin]``. Not in PyTorch (torchtune's ``RotaryPositionalEmbeddings`` pairs neighbouring channels
instead of halves; the two differ by a fixed permutation of the channels, so they train alike).
"""

from __future__ import annotations

from typing import Any

import numpy

from tensorlite.autograd import Function
from tensorlite.creation import tensor
from tensorlite.tensor import Tensor


def rotary_tables(length: int, dim: int, base: float = 10000.0, device: Any = None, dtype: Any = None
                  ) -> tuple[Tensor, Tensor]:
    """cos and sin (length, dim / 2) of the angles ``position * base ** (-2i / dim)``, for positions
    0..length-1 and channel pairs i (computed in float64, then cast to ``dtype``, default float32)."""
    if dim <= 0 or dim % 2:
        raise ValueError(f"rotary_tables: dim must be a positive even number (channels rotate in pairs), got {dim}")
    inverse_frequency = base ** (-numpy.arange(0, dim, 2, dtype=numpy.float64) / dim)  # (dim / 2,)
    angles = numpy.outer(numpy.arange(length, dtype=numpy.float64), inverse_frequency)  # (length, dim / 2)
    dtype = dtype or "float32"
    return tensor(numpy.cos(angles), dtype=dtype, device=device), tensor(numpy.sin(angles), dtype=dtype, device=device)


class RotaryEmbedding(Function):
    """x (..., D), cos and sin broadcastable to (..., D / 2) -> (..., D)."""

    def forward(self, x, cos, sin):
        self.cos, self.sin = cos, sin
        return self.backend.rotary(x, cos, sin)

    def backward(self, grad):
        return self.backend.rotary(grad, self.cos, self.sin, inverse=True), None, None


def rotary_embedding(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x (..., D) rotated pairwise, channel i with channel i + D/2, by the angles whose ``cos`` and ``sin``
    broadcast to (..., D / 2) (``rotary_tables``, sliced to x's positions). The tables are constants: only
    x gets a gradient. A tensorlite extension, not in PyTorch."""
    op = "rotary_embedding"
    for name, t in (("x", x), ("cos", cos), ("sin", sin)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a tensor, got {type(t).__name__}")
    if x.ndim < 1 or x.shape[-1] % 2 or x.dtype.kind != "f":
        raise ValueError(f"{op}: x must be a floating tensor whose last dimension is even, got shape {x.shape}, "
                         f"dtype {x.dtype}")
    half = (*x.shape[:-1], x.shape[-1] // 2)
    xp = x.device.backend.xp
    for name, t in (("cos", cos), ("sin", sin)):
        try:
            fits = xp.broadcast_shapes(t.shape, half) == half
        except ValueError:
            fits = False
        if not fits or t.dtype != x.dtype:
            raise ValueError(f"{op}: {name} must be a {x.dtype} tensor that broadcasts to {half} (x's shape with "
                             f"half its last dimension), got {t.dtype} {t.shape}")
        if t.requires_grad:
            raise ValueError(f"{op}: {name} is a fixed table and gets no gradient, but it requires grad; detach it")
    return RotaryEmbedding.apply(x, cos, sin)
