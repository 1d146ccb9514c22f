"""Inverted dropout: zero each element (``dropout``) or each whole channel (``dropout2d``) with
probability ``p``, scale the rest by 1 / (1 - p).

Scaling at training time keeps the expected activation unchanged, so evaluation is the identity.
The mask comes from the device's seeded generator (``tl.manual_seed`` makes it reproducible).
"""

from __future__ import annotations

from tensorlite.autograd import Function
from tensorlite.tensor import Tensor


class Dropout(Function):
    """``mask_shape``: the mask's shape, broadcast against x (x's own shape, or (N, C, 1, 1) for whole channels)."""

    def forward(self, x, p, mask_shape):
        keep = self.backend.uniform(mask_shape, x.dtype) >= p
        self.mask = keep.astype(x.dtype)
        self.mask *= 0.0 if p == 1 else 1.0 / (1.0 - p)
        return x * self.mask

    def backward(self, g):
        return (g * self.mask, None)


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Randomly zero elements with probability ``p`` and scale the others by 1 / (1 - p) when ``training``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return input
    return Dropout.apply(input, p, mask_shape=input.shape)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Randomly zero whole channels of (N, C, H, W) (or (N, C, L), as PyTorch) with probability ``p``.

    The kept channels are scaled by 1 / (1 - p) when ``training``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout2d: probability p must be between 0 and 1, got {p}")
    if input.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected a 3-D (N, C, L) or 4-D (N, C, H, W) input, got shape {input.shape}")
    if not training or p == 0.0:
        return input
    return Dropout.apply(input, p, mask_shape=input.shape[:2] + (1,) * (input.ndim - 2))
