"""The ``DataLoader``, as ``torch.utils.data``: batches read from a dataset in a sampler's order.

A ``DataLoader`` over a ``TensorDataset`` (or a ``Subset`` of one, as ``random_split`` makes)
builds each batch with one fancy index per tensor, on the tensors' device; other datasets are read
one sample at a time and collated.

    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=0)
    for xb, yb in loader:  # xb: (64, *x.shape[1:]), yb: (64, *y.shape[1:])
        ...

Loading happens in the calling process: ``num_workers`` > 0 is accepted and loads there too (with
a warning), ``pin_memory`` is accepted and has no effect (batches are built where the tensors are;
``device=`` moves them), and the other multiprocessing options are checked as PyTorch checks them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy

from tensorlite.creation import tensor
from tensorlite.device import device as as_device
from tensorlite.ops import stack
from tensorlite.random import GeneratorLike, seeded_once
from tensorlite.tensor import Tensor
from tensorlite.utils.data.dataset import Dataset, Subset, TensorDataset
from tensorlite.utils.data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, batch_blocks


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


def default_convert(sample: Any) -> Any:
    """One sample as the loader yields it without batching (``batch_size=None``): NumPy arrays become
    tensors, inside tuples, lists and dicts too; everything else is left as it is."""
    if isinstance(sample, numpy.ndarray):
        return tensor(sample)
    if isinstance(sample, Mapping):
        return {key: default_convert(value) for key, value in sample.items()}
    if isinstance(sample, (tuple, list)):
        return type(sample)(default_convert(value) for value in sample)
    return sample


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
    """Iterate over ``dataset`` in batches of ``batch_size`` samples, with PyTorch's arguments.

    The order comes from ``sampler`` (any iterable of indices), else from ``shuffle``: a new random
    order every pass drawn from ``generator`` (an int seed or a NumPy generator: reproducible;
    ``None``: the CPU stream that ``tl.manual_seed`` seeds), else the dataset's order.
    ``batch_sampler`` (an iterable of lists of indices) replaces ``batch_size``, ``shuffle``,
    ``sampler`` and ``drop_last``; ``batch_size=None`` yields single samples, unbatched.
    ``drop_last`` skips a final short batch. Batches go to ``device`` (default: where the samples
    are). ``num_workers``, ``pin_memory`` and the other multiprocessing options: see the module.
    """

    def __init__(self, dataset: Dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Sampler | Iterable | None = None, batch_sampler: Sampler | Iterable | None = None,
                 num_workers: int = 0, collate_fn: Callable[[list[Any]], Any] | None = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn: Callable[[int], None] | None = None, multiprocessing_context: Any = None,
                 generator: GeneratorLike = None, *, prefetch_factor: int | None = None,
                 persistent_workers: bool = False, pin_memory_device: str = "", in_order: bool = True,
                 device: Any = None) -> None:
        _check_workers(num_workers, timeout, prefetch_factor, persistent_workers)
        if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool)
                                       or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size must be a positive integer or None, got {batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                 "sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually exclusive "
                             "with drop_last")
        self.generator = seeded_once("DataLoader", generator)
        if sampler is None:
            sampler = RandomSampler(dataset, generator=self.generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.collate_fn = collate_fn or (default_collate if batch_sampler is not None else default_convert)
        self.device = None if device is None else as_device(device)
        fast = collate_fn is None and batch_sampler is not None
        self._tensor_rows = _tensor_rows(dataset) if fast else None

    def __len__(self) -> int:
        return len(self.sampler if self.batch_sampler is None else self.batch_sampler)

    def __iter__(self) -> Iterator[Any]:
        batches = self._tensor_batches() if self._tensor_rows is not None else self._collated_batches()
        for batch in batches:
            yield batch if self.device is None else _to_device(batch, self.device)

    def _collated_batches(self) -> Iterator[Any]:
        """Any dataset: each sample read on its own, then collated (or, unbatched, converted)."""
        if self.batch_sampler is None:
            for index in self.sampler:
                yield self.collate_fn(self.dataset[index])
            return
        for indices in self.batch_sampler:
            yield self.collate_fn([self.dataset[i] for i in indices])

    def _tensor_batches(self) -> Iterator[tuple[Tensor, ...]]:
        """A TensorDataset: each batch is one fancy index per tensor, on the tensors' device.

        The index arrays cross to that device once per block of the sampler's indices (one per
        epoch for the default samplers) and are sliced into batches there."""
        tensors, rows = self._tensor_rows
        backend = tensors[0].device.backend

        def on_device(indices: Any) -> Any:
            indices = numpy.asarray(indices, dtype=numpy.int64)
            return backend.from_host(indices if rows is None else rows[indices])

        sampler = getattr(self.batch_sampler, "sampler", None)
        if type(self.batch_sampler) is BatchSampler and hasattr(sampler, "_index_blocks"):
            blocks = (on_device(block) for block in sampler._index_blocks())
            indices_per_batch = batch_blocks(blocks, self.batch_sampler.batch_size, self.batch_sampler.drop_last,
                                             backend.xp.concatenate)
        else:
            indices_per_batch = (on_device(batch) for batch in self.batch_sampler)
        indices_per_batch = iter(indices_per_batch)
        while True:
            with backend.scope:  # the index blocks are joined and cut, and the batches picked, on the tensors' device
                index = next(indices_per_batch, None)
                if index is None:
                    return
                batch = tuple(Tensor._make(t._data[index], t._device, False, None) for t in tensors)
            yield batch


def _check_workers(num_workers: int, timeout: float, prefetch_factor: int | None, persistent_workers: bool) -> None:
    """PyTorch's checks of the multiprocessing options; ``num_workers`` > 0 loads in this process."""
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"DataLoader: num_workers option should be a non-negative integer, got {num_workers!r}; "
                         "use num_workers=0 to disable multiprocessing")
    if timeout < 0:
        raise ValueError("DataLoader: timeout option should be non-negative")
    if num_workers == 0 and prefetch_factor is not None:
        raise ValueError("DataLoader: prefetch_factor option could only be specified in multiprocessing; let "
                         "num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None")
    if prefetch_factor is not None and prefetch_factor < 0:
        raise ValueError("DataLoader: prefetch_factor option should be non-negative")
    if persistent_workers and num_workers == 0:
        raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
    if num_workers > 0:
        warnings.warn(f"DataLoader: num_workers={num_workers} loads in the calling process: tensorlite has no "
                      "worker processes (a TensorDataset batch is one index per tensor; pass num_workers=0 to "
                      "silence this)", stacklevel=3)


__all__ = ["DataLoader", "default_collate", "default_convert"]
