"""Datasets and batching, as ``torch.utils.data``: ``Dataset``, ``TensorDataset``, ``Subset``,
``random_split``, ``DataLoader`` and ``default_collate``.

A ``DataLoader`` over a ``TensorDataset`` (or a ``Subset`` of one, as ``random_split`` makes)
builds each batch with one fancy index per tensor, on the tensors' device; other datasets are read
one sample at a time and collated.

    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=0)
    for xb, yb in loader:  # xb: (64, *x.shape[1:]), yb: (64, *y.shape[1:])
        ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy

from tensorlite.creation import tensor
from tensorlite.device import device as as_device
from tensorlite.ops import stack
from tensorlite.tensor import Tensor

GeneratorLike = int | numpy.random.Generator | None


def _rng(op: str, generator: GeneratorLike) -> numpy.random.Generator:
    """A NumPy generator from a seed or a generator; ``None``: the CPU stream that ``tl.manual_seed`` seeds."""
    if generator is None:
        return as_device("cpu").backend.rng
    if isinstance(generator, numpy.random.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return numpy.random.default_rng(generator)
    raise TypeError(f"{op}: generator must be an int seed or a numpy.random.Generator, got {type(generator).__name__}")


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
    order = _rng("random_split", generator).permutation(n).tolist()
    bounds = numpy.cumsum([0, *sizes]).tolist()
    return [Subset(dataset, order[lo:hi]) for lo, hi in zip(bounds, bounds[1:])]


def default_collate(samples: list[Any]) -> Any:
    """Batch a list of samples: tensors are stacked, numbers and NumPy arrays become tensors (Python
    floats in the default float dtype), and tuples, lists and dicts are batched field by field."""
    first = samples[0]
    if isinstance(first, Tensor):
        return stack(samples)
    if isinstance(first, numpy.ndarray):
        return tensor(numpy.stack(samples))
    if isinstance(first, (bool, int, float, numpy.number, numpy.bool_)):
        return tensor(samples)
    if isinstance(first, str):
        return list(samples)
    if isinstance(first, Mapping):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise ValueError(f"default_collate: samples have different lengths {sorted({len(s) for s in samples})}")
        fields = [default_collate(list(field)) for field in zip(*samples)]
        return tuple(fields) if isinstance(first, tuple) else fields
    raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}; expected tensors, "
                    "numbers, NumPy arrays, strings, or tuples/lists/dicts of them (or pass collate_fn=)")


def _to_device(batch: Any, device: Any) -> Any:
    """``batch`` with every tensor in it moved to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {key: _to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(value, device) for value in batch)
    return batch


def _tensor_rows(dataset: Dataset) -> tuple[tuple[Tensor, ...], numpy.ndarray | None] | None:
    """The tensors behind a TensorDataset, or a Subset of one, and the row of each sample (``None``: row i)."""
    if isinstance(dataset, TensorDataset):
        return dataset.tensors, None
    if isinstance(dataset, Subset):
        inner = _tensor_rows(dataset.dataset)
        if inner is not None:
            tensors, rows = inner
            indices = numpy.asarray(dataset.indices, dtype=numpy.int64)
            return tensors, indices if rows is None else rows[indices]
    return None


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size`` samples.

    ``shuffle`` draws a new order every epoch from ``generator`` (an int seed or a NumPy generator:
    reproducible; ``None``: the CPU stream that ``tl.manual_seed`` seeds). ``drop_last`` skips a
    final short batch. Batches go to ``device`` (default: where the samples are).
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 generator: GeneratorLike = None, collate_fn: Callable[[list[Any]], Any] | None = None,
                 device: Any = None) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator if generator is None else _rng("DataLoader", generator)
        self.collate_fn = collate_fn or default_collate
        self.device = None if device is None else as_device(device)
        self._tensor_rows = _tensor_rows(dataset) if collate_fn is None else None

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        n = len(self.dataset)
        order = _rng("DataLoader", self.generator).permutation(n) if self.shuffle else numpy.arange(n)
        starts = range(0, len(self) * self.batch_size, self.batch_size)
        if self._tensor_rows is None:
            for start in starts:
                batch = self.collate_fn([self.dataset[i] for i in order[start:start + self.batch_size].tolist()])
                yield batch if self.device is None else _to_device(batch, self.device)
            return
        tensors, rows = self._tensor_rows
        if rows is not None:
            order = rows[order]
        order = tensors[0].device.backend.from_host(order)  # one transfer per epoch; batches slice it
        for start in starts:
            index = order[start:start + self.batch_size]
            batch = tuple(Tensor._make(t._data[index], t._device, False, None) for t in tensors)
            yield batch if self.device is None else _to_device(batch, self.device)


__all__ = ["DataLoader", "Dataset", "Subset", "TensorDataset", "default_collate", "random_split"]
