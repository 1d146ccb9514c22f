"""Samplers, as ``torch.utils.data``: the order in which a ``DataLoader`` reads a dataset.

A sampler is an iterable of dataset indices (``BatchSampler``: of lists of indices), with PyTorch's
classes and arguments. The samplers here also hand out their indices as int64 NumPy arrays
(``_index_blocks``), so that a ``DataLoader`` over a ``TensorDataset`` builds every batch with one
fancy index per tensor instead of a Python loop over the batch; any other iterable of indices works
too, read one index at a time.

    sampler = RandomSampler(dataset, replacement=True, num_samples=10**10)  # lazy: drawn as read
    loader = DataLoader(dataset, batch_size=32, sampler=sampler)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from typing import Any, Generic, TypeVar

import numpy

from tensorlite.random import GeneratorLike, host_generator, seeded_once
from tensorlite.tensor import Tensor

T = TypeVar("T")
IndexBlocks = Iterator[numpy.ndarray]  # int64 arrays of indices; their concatenation is the sampler's order

_DRAW_CHUNK = 4096  # indices drawn at once by a sampler with replacement (it may be asked for 10**10)


class Sampler(Generic[T]):
    """Base class of samplers: subclass it and define ``__iter__`` (and ``__len__`` if it is known).

    A subclass whose indices are ints may also define ``_index_blocks()``, yielding int64 NumPy arrays
    whose concatenation is what ``__iter__`` yields: a ``DataLoader`` then batches a ``TensorDataset``
    from those arrays without touching each index in Python.
    """

    def __init__(self, data_source: Sized | None = None) -> None:
        """``data_source`` is accepted, and ignored, as by PyTorch's base class."""

    def __iter__(self) -> Iterator[T]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__()")


class _BlockSampler(Sampler[int]):
    """A sampler defined by its index blocks: iterating it yields their entries as Python ints."""

    def _index_blocks(self) -> IndexBlocks:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        for block in self._index_blocks():
            yield from block.tolist()


def _check_positive_int(op: str, name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{op}: {name} should be a positive integer value, but got {name}={value!r}")


def _check_bool(op: str, name: str, value: Any, error: type[Exception] = ValueError) -> None:
    if not isinstance(value, bool):
        raise error(f"{op}: {name} should be a boolean value, but got {name}={value!r}")


class SequentialSampler(_BlockSampler):
    """``0, 1, ..., len(data_source) - 1``, in order."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def _index_blocks(self) -> IndexBlocks:
        yield numpy.arange(len(self.data_source), dtype=numpy.int64)

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(_BlockSampler):
    """Random indices into ``data_source``, a new order on every pass.

    Without ``replacement``: a random permutation (``num_samples`` beyond the dataset's size chains
    permutations, each index appearing once per permutation). With ``replacement``: ``num_samples``
    independent uniform draws, made in chunks as they are read, so ``num_samples=10**10`` costs
    nothing up front (an "infinite" loader). ``num_samples`` defaults to ``len(data_source)``, read
    on each pass. ``generator``: an int seed or a NumPy generator (reproducible), ``None`` the CPU
    stream that ``tl.manual_seed`` seeds.
    """

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: int | None = None,
                 generator: GeneratorLike = None) -> None:
        _check_bool("RandomSampler", "replacement", replacement, TypeError)
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = seeded_once("RandomSampler", generator)
        _check_positive_int("RandomSampler", "num_samples", self.num_samples)

    @property
    def num_samples(self) -> int:
        """How many indices one pass yields (the dataset's size unless given: it may change)."""
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _index_blocks(self) -> IndexBlocks:
        n, total = len(self.data_source), self.num_samples
        if n == 0:
            raise ValueError("RandomSampler: cannot draw indices from an empty dataset")
        rng = host_generator("RandomSampler", self.generator)
        if self.replacement:
            for start in range(0, total, _DRAW_CHUNK):
                yield rng.integers(0, n, size=min(_DRAW_CHUNK, total - start), dtype=numpy.int64)
            return
        full, rest = divmod(total, n)
        for _ in range(full):
            yield rng.permutation(n)
        if rest:
            yield rng.permutation(n)[:rest]

    def __len__(self) -> int:
        return self.num_samples


def _as_index_array(op: str, indices: Any) -> numpy.ndarray:
    """``indices`` (a sequence of ints, a NumPy array or a tensor) as a 1-d int64 host array."""
    host = indices.numpy() if isinstance(indices, Tensor) else numpy.asarray(indices)
    if host.ndim != 1 or (host.size and host.dtype.kind not in "iu"):
        raise TypeError(f"{op}: indices must be a 1-d sequence of integers, got {host.dtype} of shape {host.shape}")
    return host.astype(numpy.int64, copy=False)


class SubsetRandomSampler(_BlockSampler):
    """The given ``indices`` in a new random order on every pass (without replacement)."""

    def __init__(self, indices: Sequence[int], generator: GeneratorLike = None) -> None:
        self.indices = indices
        self._indices = _as_index_array("SubsetRandomSampler", indices)
        self.generator = seeded_once("SubsetRandomSampler", generator)

    def _index_blocks(self) -> IndexBlocks:
        yield self._indices[host_generator("SubsetRandomSampler", self.generator).permutation(len(self._indices))]

    def __len__(self) -> int:
        return len(self._indices)


class WeightedRandomSampler(_BlockSampler):
    """``num_samples`` indices into ``weights``, index ``i`` drawn with probability proportional to
    ``weights[i]`` (they need not sum to one). Without ``replacement`` an index is drawn at most
    once per pass, so ``num_samples`` can be at most the number of non-zero weights."""

    def __init__(self, weights: Sequence[float], num_samples: int, replacement: bool = True,
                 generator: GeneratorLike = None) -> None:
        _check_positive_int("WeightedRandomSampler", "num_samples", num_samples)
        _check_bool("WeightedRandomSampler", "replacement", replacement)
        host = weights.numpy() if isinstance(weights, Tensor) else numpy.asarray(weights)
        if host.ndim != 1 or host.dtype.kind not in "biuf":
            raise ValueError(f"WeightedRandomSampler: weights should be a 1d sequence of numbers but given weights "
                             f"have shape {host.shape} and dtype {host.dtype}")
        weights64 = host.astype(numpy.float64)
        if not numpy.isfinite(weights64).all() or (weights64 < 0).any() or weights64.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite, non-negative, and not all zero")
        if not replacement and num_samples > numpy.count_nonzero(weights64):
            raise ValueError(f"WeightedRandomSampler: cannot draw num_samples={num_samples} indices without "
                             f"replacement from {numpy.count_nonzero(weights64)} non-zero weights")
        self.weights = weights64
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = seeded_once("WeightedRandomSampler", generator)

    def _index_blocks(self) -> IndexBlocks:
        rng = host_generator("WeightedRandomSampler", self.generator)
        yield rng.choice(len(self.weights), size=self.num_samples, replace=self.replacement,
                         p=self.weights / self.weights.sum()).astype(numpy.int64, copy=False)

    def __len__(self) -> int:
        return self.num_samples


def batch_blocks(blocks: Iterable[Any], batch_size: int, drop_last: bool,
                 concatenate: Callable[[list[Any]], Any] = numpy.concatenate) -> Iterator[Any]:
    """Cut a stream of 1-d index arrays into arrays of ``batch_size`` (the last one shorter unless
    ``drop_last``). Batches inside one block are slices of it (views); ``concatenate`` joins the
    pieces of a batch that spans blocks, so the blocks may live on any device."""
    pending: list[Any] = []
    pending_size = 0
    for block in blocks:
        start = 0
        if pending:
            start = min(batch_size - pending_size, len(block))
            pending.append(block[:start])
            pending_size += start
            if pending_size < batch_size:
                continue
            yield concatenate(pending)
            pending, pending_size = [], 0
        stop = start + (len(block) - start) // batch_size * batch_size
        for lo in range(start, stop, batch_size):
            yield block[lo:lo + batch_size]
        if stop < len(block):
            pending, pending_size = [block[stop:]], len(block) - stop
    if pending and not drop_last:
        yield concatenate(pending)


class BatchSampler(Sampler[list[int]]):
    """Lists of ``batch_size`` indices from ``sampler`` (any iterable of indices); the last list is
    shorter unless ``drop_last``."""

    def __init__(self, sampler: Sampler[int] | Iterable[int], batch_size: int, drop_last: bool) -> None:
        _check_positive_int("BatchSampler", "batch_size", batch_size)
        _check_bool("BatchSampler", "drop_last", drop_last)
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        if hasattr(self.sampler, "_index_blocks"):
            for batch in batch_blocks(self.sampler._index_blocks(), self.batch_size, self.drop_last):
                yield batch.tolist()
            return
        indices = iter(self.sampler)
        while batch := list(itertools.islice(indices, self.batch_size)):
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


__all__ = ["BatchSampler", "RandomSampler", "Sampler", "SequentialSampler", "SubsetRandomSampler",
           "WeightedRandomSampler"]
