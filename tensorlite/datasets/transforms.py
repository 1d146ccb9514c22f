"""Sample transforms, as ``torchvision.transforms``: callables applied to inputs as they are read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")  # a host array or a Tensor: the transform returns the same kind


@dataclass(frozen=True)
class Normalize:
    """``(x - mean) / std`` with one mean and std for every channel; works on arrays and tensors alike.

    ``Normalize(0.1307, 0.3081)`` maps MNIST's [0, 1] pixels to mean 0, std 1 over the training set.
    """

    mean: float
    std: float

    def __post_init__(self) -> None:
        if not self.std > 0:
            raise ValueError(f"Normalize: std must be positive, got {self.std}")

    def __call__(self, x: T) -> T:
        return (x - self.mean) / self.std
