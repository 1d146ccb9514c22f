"""``DistributedSampler``, as ``torch.utils.data.distributed``: each of ``num_replicas`` processes reads its own
share of a dataset, the same share size on every rank.

An epoch's order is one permutation of the dataset (``shuffle``; drawn from ``seed + epoch``, so every rank
draws the same one), padded by repeating its start until it divides evenly among the ranks (or, with
``drop_last``, cut to the largest such length); rank r takes its entries r, r + N, r + 2N, ... Call
``set_epoch(epoch)`` before each epoch for a new order. With a per-rank batch B, step k of the N ranks
together reads entries kNB .. (k+1)NB - 1 of the permutation: the batch one process would read with
batch size NB.

    sampler = DistributedSampler(dataset)  # rank and world size from tensorlite.distributed
    loader = DataLoader(dataset, batch_size=32, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for xb, yb in loader: ...
"""

from __future__ import annotations

import math
from collections.abc import Sized

import numpy

from tensorlite.utils.data.sampler import IndexBlocks, _BlockSampler, _check_bool


class DistributedSampler(_BlockSampler):
    """Rank ``rank``'s share of ``dataset`` among ``num_replicas`` (default: ``tensorlite.distributed``'s rank and
    world size); see the module docstring."""

    def __init__(self, dataset: Sized, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        if num_replicas is None or rank is None:
            from tensorlite import distributed as dist

            if not dist.is_initialized():
                raise RuntimeError("DistributedSampler: pass num_replicas and rank, or start tensorlite.distributed "
                                   "(init_process_group) first")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if not isinstance(num_replicas, int) or isinstance(num_replicas, bool) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive integer, got {num_replicas!r}")
        if not isinstance(rank, int) or isinstance(rank, bool) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: Invalid rank {rank!r}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        _check_bool("DistributedSampler", "shuffle", shuffle, TypeError)
        _check_bool("DistributedSampler", "drop_last", drop_last, TypeError)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"DistributedSampler: seed must be an int, got {seed!r}")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0

    @property
    def num_samples(self) -> int:
        """How many indices each rank reads per epoch (the dataset's size is read each time: it may change)."""
        n = len(self.dataset)
        if self.drop_last and n % self.num_replicas:
            return math.ceil((n - self.num_replicas) / self.num_replicas)
        return math.ceil(n / self.num_replicas)

    @property
    def total_size(self) -> int:
        return self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Draw the next passes' order from ``seed + epoch`` (the same on every rank)."""
        self.epoch = epoch

    def _index_blocks(self) -> IndexBlocks:
        n = len(self.dataset)
        if self.shuffle:
            order = numpy.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = numpy.arange(n, dtype=numpy.int64)
        order = numpy.resize(order, self.total_size) if n else order  # pads by repeating from the start, or cuts
        yield order[self.rank:self.total_size:self.num_replicas].astype(numpy.int64, copy=False)

    def __len__(self) -> int:
        return self.num_samples
