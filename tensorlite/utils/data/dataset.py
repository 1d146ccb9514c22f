"""Map-style datasets, as ``torch.utils.data``: ``Dataset``, ``TensorDataset``, ``Subset`` and
``random_split``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy

from tensorlite.random import GeneratorLike, host_generator
from tensorlite.tensor import Tensor


class Dataset:
    """A map-style dataset: subclass it and define ``__getitem__(i)`` (sample ``i``) and ``__len__``."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index)")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__()")


class TensorDataset(Dataset):
    """Samples are rows: ``dataset[i] == (t[i] for t in tensors)``; all tensors share dimension 0 and a device."""

    def __init__(self, *tensors: Tensor) -> None:
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor) or t.ndim == 0:
                what = "a 0-d tensor" if isinstance(t, Tensor) else type(t).__name__
                raise TypeError(f"TensorDataset: argument {i} must be a tensor with at least one dimension, got {what}")
        sizes = [t.shape[0] for t in tensors]
        if len(set(sizes)) > 1:
            shapes = ", ".join(str(t.shape) for t in tensors)
            raise ValueError(f"TensorDataset: all tensors must have the same size in dimension 0, got sizes "
                             f"{sizes} (shapes {shapes})")
        devices = {str(t.device) for t in tensors}
        if len(devices) > 1:
            raise ValueError(f"TensorDataset: all tensors must be on one device, got {', '.join(sorted(devices))}")
        self.tensors = tensors

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset: Dataset, lengths: Sequence[int | float], generator: GeneratorLike = None) -> list[Subset]:
    """Split into disjoint random subsets of the given sizes, or fractions summing to 1 (remainders go
    one each to the first subsets, as PyTorch)."""
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        if any(not 0 <= f <= 1 for f in lengths):
            raise ValueError(f"random_split: fractions must be between 0 and 1, got {list(lengths)}")
        sizes = [math.floor(n * f) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
    else:
        sizes = list(lengths)
    if any(not isinstance(s, int) or s < 0 for s in sizes) or sum(sizes) != n:
        raise ValueError(f"random_split: lengths {list(lengths)} must be non-negative ints summing to the dataset's "
                         f"{n} samples, or fractions summing to 1")
    order = host_generator("random_split", generator).permutation(n).tolist()
    bounds = numpy.cumsum([0, *sizes]).tolist()
    return [Subset(dataset, order[lo:hi]) for lo, hi in zip(bounds, bounds[1:])]

__all__ = ["Dataset", "Subset", "TensorDataset", "random_split"]
