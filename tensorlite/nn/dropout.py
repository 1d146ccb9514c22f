"""``Dropout`` (elements) and ``Dropout2d`` (whole channels): random zeroing in training, the identity in evaluation."""

from __future__ import annotations

from tensorlite.nn import functional as F
from tensorlite.nn.module import Module
from tensorlite.tensor import Tensor


class Dropout(Module):
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p) while ``training``.

    ``inplace`` is accepted so that PyTorch code ports unchanged; the result is always a new tensor.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: probability p must be between 0 and 1, got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout2d(Dropout):
    """Zero whole channels of (N, C, H, W) with probability ``p`` and scale the rest by 1 / (1 - p) while
    ``training`` (for feature maps, whose neighbouring pixels are too alike for element-wise dropout)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout2d(input, self.p, self.training)
