"""``Flatten``: merge a range of dimensions into one (by default all but the batch dimension)."""

from __future__ import annotations

from tensorlite.nn.module import Module
from tensorlite.tensor import Tensor


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...) with the defaults; ``start_dim``/``end_dim`` are inclusive."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
