"""DistributedSampler: PyTorch's shares (checked against PyTorch in order), padding and cutting, epochs, errors."""

from __future__ import annotations

import numpy as np
import pytest
from oracle import torch_or_skip

import tensorlite as tl
from tensorlite.utils.data import DataLoader, DistributedSampler, TensorDataset


def dataset(n: int) -> TensorDataset:
    return TensorDataset(tl.arange(n))


@pytest.mark.parity
@pytest.mark.parametrize("n", [1, 7, 10, 12])
@pytest.mark.parametrize("replicas", [1, 2, 3, 5])
@pytest.mark.parametrize("drop_last", [False, True])
def test_shares_in_order_are_pytorchs(n: int, replicas: int, drop_last: bool) -> None:
    torch = torch_or_skip()
    for rank in range(replicas):
        ours = DistributedSampler(dataset(n), replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = torch.utils.data.DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs), (rank, list(ours), list(theirs))


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_together_read_one_permutation(drop_last: bool) -> None:
    n, replicas = 11, 3
    shares = [DistributedSampler(dataset(n), replicas, r, seed=4, drop_last=drop_last) for r in range(replicas)]
    for share in shares:
        share.set_epoch(2)
    taken = [list(share) for share in shares]
    assert len({len(t) for t in taken}) == 1 and len(taken[0]) == (3 if drop_last else 4)
    interleaved = [i for step in zip(*taken) for i in step]  # entry k of rank r is entry kN + r of the order
    order = np.random.default_rng(4 + 2).permutation(n).tolist()
    expected = order[:9] if drop_last else order + order[:1]
    assert interleaved == expected


def test_set_epoch_draws_a_new_order_and_the_same_epoch_the_same() -> None:
    sampler = DistributedSampler(dataset(50), 2, 0)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(set(sampler)) != []


def test_per_rank_batches_make_the_batches_of_one_process_with_a_larger_batch() -> None:
    """With batch B on each of 2 ranks, step k reads what one process reads at step k with batch 2B (same order)."""
    data, per_rank = dataset(16), 4
    loaders = [DataLoader(data, batch_size=per_rank, sampler=DistributedSampler(data, 2, r, seed=1)) for r in (0, 1)]
    order = np.random.default_rng(1).permutation(16)
    for step, batches in enumerate(zip(*loaders)):
        together = sorted(int(i) for (xb,) in batches for i in xb.tolist())
        assert together == sorted(order[step * 8:(step + 1) * 8].tolist())


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(RuntimeError, match="pass num_replicas and rank, or start tensorlite.distributed"):
        DistributedSampler(dataset(4))
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1\]"):
        DistributedSampler(dataset(4), 2, 2)
    with pytest.raises(ValueError, match="num_replicas must be a positive integer"):
        DistributedSampler(dataset(4), 0, 0)
    with pytest.raises(TypeError, match="shuffle should be a boolean"):
        DistributedSampler(dataset(4), 2, 0, shuffle=1)
