"""Inverted dropout: zero each element with probability ``p``, scale the rest by 1 / (1 - p).

Scaling at training time keeps the expected activation unchanged, so evaluation is the identity.
The mask comes from the device's seeded generator (``tl.manual_seed`` makes it reproducible).
"""

from __future__ import annotations

from tensorlite.autograd import Function
from tensorlite.tensor import Tensor


class Dropout(Function):
    def forward(self, x, p):
        keep = self.backend.uniform(x.shape, x.dtype) >= p
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
    return Dropout.apply(input, p)
