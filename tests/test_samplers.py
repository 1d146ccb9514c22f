"""tl.utils.data samplers and the DataLoader's sampler, batch_sampler and multiprocessing arguments.

Deterministic behaviour (orders, batch lists, lengths, which argument combinations are refused) is
compared with PyTorch's; random orders are checked for what they must be (permutations, fresh per
pass, reproducible from a seed) and, for weighted draws, for their distribution.
"""

from __future__ import annotations

import itertools

import chi_square
import numpy as np
import pytest
from oracle import torch

import tensorlite as tl
from tensorlite.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
)


def rows_dataset(n: int, device: str = "cpu") -> TensorDataset:
    """x[i] = [i, -i] and y[i] = i: each batch says which samples it holds."""
    ids = np.arange(n)
    return TensorDataset(tl.tensor(np.stack([ids, -ids], 1).astype(np.float32), device=device),
                         tl.arange(n, device=device))


def ids(loader: DataLoader) -> list[list[int]]:
    """The sample ids of each batch; also checks that x and y rows stay paired."""
    out = []
    for x, y in loader:
        np.testing.assert_array_equal(x.numpy()[:, 0], y.numpy())
        out.append(y.tolist())
    return out


class Numbers(Dataset):
    """A generic dataset (read per sample): sample i is (i, 10 * i)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __getitem__(self, i: int) -> tuple[int, int]:
        return i, 10 * i

    def __len__(self) -> int:
        return self.n


class Every(Sampler[int]):
    """A user-defined sampler without index blocks: every ``step``-th index, backwards."""

    def __init__(self, n: int, step: int) -> None:
        self.n, self.step = n, step

    def __iter__(self):
        return iter(range(self.n - 1, -1, -self.step))

    def __len__(self) -> int:
        return len(range(self.n - 1, -1, -self.step))


# -- the samplers on their own -------------------------------------------------------------------


def test_sequential_sampler() -> None:
    sampler = SequentialSampler(range(5))
    assert list(sampler) == [0, 1, 2, 3, 4] and len(sampler) == 5
    assert all(type(i) is int for i in sampler)


@pytest.mark.parametrize("num_samples", [None, 7, 10, 23])
def test_random_sampler_without_replacement_chains_permutations(num_samples: int | None) -> None:
    sampler = RandomSampler(range(10), num_samples=num_samples, generator=0)
    drawn = list(sampler)
    assert len(drawn) == len(sampler) == (num_samples or 10)
    for lo in range(0, len(drawn), 10):  # each full permutation has every index once; the tail none twice
        chunk = drawn[lo:lo + 10]
        assert len(set(chunk)) == len(chunk) and set(chunk) <= set(range(10))
    assert drawn != sorted(drawn)


def test_random_sampler_draws_a_new_order_each_pass_reproducibly() -> None:
    first, second = RandomSampler(range(30), generator=3), RandomSampler(range(30), generator=3)
    passes = [list(first) for _ in range(3)]
    assert passes == [list(second) for _ in range(3)]
    assert passes[0] != passes[1] and sorted(passes[0]) == list(range(30))
    from_numpy_generator = RandomSampler(range(30), generator=np.random.default_rng(3))
    assert [list(from_numpy_generator) for _ in range(3)] == passes


def test_random_sampler_without_a_generator_follows_manual_seed() -> None:
    sampler = RandomSampler(range(30))
    tl.manual_seed(5)
    first = list(sampler)
    tl.manual_seed(5)
    assert list(sampler) == first
    assert list(sampler) != first


def test_random_sampler_with_replacement_is_lazy_and_uniform() -> None:
    sampler = RandomSampler(range(6), replacement=True, num_samples=10**10, generator=0)
    assert len(sampler) == 10**10
    drawn = np.array(list(itertools.islice(sampler, 60_000)))  # would not fit in memory if drawn up front
    counts = np.bincount(drawn, minlength=6)
    assert counts.size == 6 and chi_square.fits(counts, np.full(6, 1 / 6))
    assert not chi_square.fits(counts, np.array([2, 1, 1, 1, 1, 1]) / 7)  # the check can fail
    assert len(list(RandomSampler(range(3), replacement=True, num_samples=5000, generator=0))) == 5000


def test_random_sampler_reads_the_dataset_size_on_each_pass() -> None:
    data = list(range(4))
    sampler = RandomSampler(data, generator=0)
    data.extend([4, 5])
    assert len(sampler) == 6 and sorted(sampler) == list(range(6))


def test_random_sampler_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="replacement should be a boolean value, but got replacement=1"):
        RandomSampler(range(3), replacement=1)
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but got num_samples=0"):
        RandomSampler(range(3), num_samples=0)
    with pytest.raises(ValueError, match="num_samples=0"):
        RandomSampler([])  # as PyTorch: an empty dataset has no default number of samples
    with pytest.raises(ValueError, match="empty dataset"):
        list(RandomSampler([], num_samples=3))
    with pytest.raises(TypeError, match="RandomSampler: generator must be an int seed"):
        RandomSampler(range(3), generator="0")


def test_subset_random_sampler_permutes_the_given_indices() -> None:
    indices = [7, 3, 11, 5]
    sampler = SubsetRandomSampler(indices, generator=0)
    passes = [list(sampler) for _ in range(4)]
    assert all(sorted(p) == sorted(indices) for p in passes) and len(sampler) == 4
    assert len({tuple(p) for p in passes}) > 1
    assert sorted(SubsetRandomSampler(tl.tensor([2, 0]), generator=0)) == [0, 2]
    with pytest.raises(TypeError, match="SubsetRandomSampler: indices must be a 1-d sequence of integers"):
        SubsetRandomSampler([0.5, 1.5])


def test_weighted_random_sampler_with_replacement_follows_the_weights() -> None:
    weights = [0.1, 0.9, 0.4, 0.0, 3.0, 0.6]
    sampler = WeightedRandomSampler(weights, 50_000, generator=0)
    drawn = list(sampler)
    assert len(drawn) == len(sampler) == 50_000
    counts = np.bincount(drawn, minlength=6)
    assert counts[3] == 0 and chi_square.fits(counts, np.array(weights))
    assert not chi_square.fits(counts, np.array([0.1, 0.9, 0.4, 0.0, 2.5, 0.6]))


def test_weighted_random_sampler_without_replacement() -> None:
    weights = np.array([1.0, 8.0, 1.0, 0.0, 1.0])
    firsts = []
    for _ in range(2000):
        drawn = list(WeightedRandomSampler(weights, 4, replacement=False, generator=np.random.default_rng(len(firsts))))
        assert sorted(drawn) == [0, 1, 2, 4]  # never the zero weight, never twice
        firsts.append(drawn[0])
    assert chi_square.fits(np.bincount(firsts, minlength=5), weights)  # the first draw follows the weights


def test_weighted_random_sampler_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but got num_samples=0"):
        WeightedRandomSampler([1.0], 0)
    with pytest.raises(ValueError, match="replacement should be a boolean value"):
        WeightedRandomSampler([1.0], 1, replacement=None)
    with pytest.raises(ValueError, match=r"weights should be a 1d sequence.*shape \(1, 2\)"):
        WeightedRandomSampler([[1.0, 2.0]], 1)
    with pytest.raises(ValueError, match="non-negative, and not all zero"):
        WeightedRandomSampler([1.0, -1.0], 1)
    with pytest.raises(ValueError, match="non-negative, and not all zero"):
        WeightedRandomSampler([0.0, 0.0], 1)
    with pytest.raises(ValueError, match="num_samples=3 indices without replacement from 2 non-zero weights"):
        WeightedRandomSampler([1.0, 0.0, 2.0], 3, replacement=False)


@pytest.mark.parametrize(("n", "batch_size", "drop_last"), [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False),
                                                            (2, 5, True), (0, 2, False)])
def test_batch_sampler_cuts_any_sampler_into_lists(n: int, batch_size: int, drop_last: bool) -> None:
    expected = [list(range(lo, min(lo + batch_size, n))) for lo in range(0, n, batch_size)]
    if drop_last:
        expected = [b for b in expected if len(b) == batch_size]
    for sampler in (SequentialSampler(range(n)), range(n), iter(range(n))):
        batches = BatchSampler(sampler, batch_size, drop_last)
        assert list(batches) == expected
    assert len(BatchSampler(range(n), batch_size, drop_last)) == len(expected)


def test_batch_sampler_spans_the_blocks_of_a_chained_sampler() -> None:
    sampler = RandomSampler(range(5), num_samples=12, generator=0)  # blocks of 5, 5, 2
    order = list(RandomSampler(range(5), num_samples=12, generator=0))
    assert [i for batch in BatchSampler(sampler, 4, False) for i in batch] == order
    assert [len(batch) for batch in BatchSampler(sampler, 5, True)] == [5, 5]


def test_batch_sampler_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but got batch_size=True"):
        BatchSampler(range(3), True, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value, but got drop_last=0"):
        BatchSampler(range(3), 2, 0)


def test_abstract_sampler_says_what_to_define() -> None:
    with pytest.raises(NotImplementedError, match="Sampler must define __iter__"):
        iter(Sampler(range(3)))


# -- the DataLoader with samplers ----------------------------------------------------------------


def test_loader_reads_in_the_sampler_order(device: str) -> None:
    loader = DataLoader(rows_dataset(12, device), batch_size=4, sampler=Every(12, 2))
    assert ids(loader) == [[11, 9, 7, 5], [3, 1]] and len(loader) == 2
    loader = DataLoader(rows_dataset(12, device), batch_size=4, sampler=[5, 0, 3])
    assert ids(loader) == [[5, 0, 3]]


def test_loader_with_an_infinite_random_sampler(device: str) -> None:
    """The makemore pattern: a sampler with replacement and a huge num_samples, read with next()."""
    sampler = RandomSampler(rows_dataset(10), replacement=True, num_samples=10**10, generator=0)
    loader = DataLoader(rows_dataset(10, device), batch_size=32, sampler=sampler, pin_memory=True, num_workers=0)
    batches = iter(loader)
    seen = [next(batches) for _ in range(200)]
    assert all(x.shape == (32, 2) and x.device == device for x, _ in seen)
    assert len(loader) == -(-10**10 // 32)
    counts = np.bincount(np.concatenate([y.numpy() for _, y in seen]), minlength=10)
    assert chi_square.fits(counts, np.full(10, 0.1))


def test_loader_batches_span_sampler_blocks(device: str) -> None:
    sampler = RandomSampler(range(10), num_samples=25, generator=1)
    expected = list(RandomSampler(range(10), num_samples=25, generator=1))
    batches = ids(DataLoader(rows_dataset(10, device), batch_size=4, sampler=sampler))
    assert [len(b) for b in batches] == [4] * 6 + [1]
    assert [i for b in batches for i in b] == expected


def test_loader_with_a_batch_sampler(device: str) -> None:
    batches = [[3, 1], [0], [2, 2, 4]]
    loader = DataLoader(rows_dataset(5, device), batch_sampler=batches)
    assert ids(loader) == batches and len(loader) == 3
    loader = DataLoader(rows_dataset(7, device), batch_sampler=BatchSampler(Every(7, 1), 3, drop_last=True))
    assert ids(loader) == [[6, 5, 4], [3, 2, 1]]
    loader = DataLoader(Numbers(5), batch_sampler=BatchSampler(SubsetRandomSampler([4, 2], generator=0), 2, False))
    (first, tens), = list(loader)
    assert sorted(first.tolist()) == [2, 4] and tens.tolist() == [10 * i for i in first.tolist()]


def test_loader_with_a_subset_sampler_and_a_weighted_sampler() -> None:
    loader = DataLoader(rows_dataset(10), batch_size=3, sampler=SubsetRandomSampler([9, 4, 1, 6], generator=0))
    assert sorted(i for b in ids(loader) for i in b) == [1, 4, 6, 9]
    sampler = WeightedRandomSampler([0.0, 1.0, 0.0, 1.0], 100, generator=0)
    drawn = [i for b in ids(DataLoader(rows_dataset(4), batch_size=16, sampler=sampler)) for i in b]
    assert len(drawn) == 100 and set(drawn) == {1, 3}


def test_loader_over_a_tensor_dataset_never_reads_samples_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: TensorDataset, index: int) -> None:
        raise AssertionError("per-sample read")

    monkeypatch.setattr(TensorDataset, "__getitem__", refuse)
    ds = rows_dataset(10)
    drawn = ids(DataLoader(ds, batch_size=4, sampler=RandomSampler(ds, replacement=True, generator=0)))
    assert [len(b) for b in drawn] == [4, 4, 2]
    assert ids(DataLoader(ds, batch_size=4, sampler=Every(10, 3))) == [[9, 6, 3, 0]]
    assert ids(DataLoader(ds, batch_sampler=[[1, 2], [3]])) == [[1, 2], [3]]


def test_unbatched_loader_yields_single_samples() -> None:
    assert list(DataLoader(Numbers(3), batch_size=None)) == [(0, 0), (1, 10), (2, 20)]
    samples = list(DataLoader(rows_dataset(3), batch_size=None, sampler=[2, 0]))
    assert [y.item() for _, y in samples] == [2, 0] and samples[0][0].shape == (2,)

    class Arrays(Numbers):
        def __getitem__(self, i: int) -> dict:
            return {"x": np.full(2, i), "i": i}

    (first,) = list(DataLoader(Arrays(1), batch_size=None))
    assert isinstance(first["x"], tl.Tensor) and first["i"] == 0
    assert list(DataLoader(Numbers(2), batch_size=None, collate_fn=lambda s: s[1])) == [0, 10]


def test_loader_accepts_the_multiprocessing_arguments() -> None:
    ds = rows_dataset(6)
    loader = DataLoader(ds, batch_size=4, pin_memory=True, timeout=0, worker_init_fn=print, pin_memory_device="",
                        multiprocessing_context=None, in_order=True)
    assert ids(loader) == [[0, 1, 2, 3], [4, 5]] and loader.pin_memory
    with pytest.warns(UserWarning, match="num_workers=2 loads in the calling process"):
        loader = DataLoader(ds, batch_size=4, num_workers=2, prefetch_factor=2, persistent_workers=True)
    assert ids(loader) == [[0, 1, 2, 3], [4, 5]]


BAD_ARGUMENTS = [
    (dict(sampler=[0, 1], shuffle=True), "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0]], shuffle=True), "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0]], sampler=[0]), "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0]], drop_last=True), "batch_sampler option is mutually exclusive"),
    (dict(batch_size=None, drop_last=True), "batch_size=None option disables auto-batching"),
    (dict(num_workers=-1), "num_workers option should be a non-negative"),
    (dict(timeout=-1), "timeout option should be non-negative"),
    (dict(prefetch_factor=2), "prefetch_factor option could only be specified in multiprocessing"),
    (dict(persistent_workers=True), "persistent_workers option needs num_workers > 0"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGUMENTS, ids=[m[:30] for _, m in BAD_ARGUMENTS])
def test_loader_refuses_contradicting_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"DataLoader: {message}"):
        DataLoader(rows_dataset(4), **kwargs)


# -- parity with PyTorch -------------------------------------------------------------------------


@pytest.mark.parity
@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGUMENTS, ids=[m[:30] for _, m in BAD_ARGUMENTS])
def test_pytorch_refuses_the_same_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.split(" option")[0]):
        torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(4)), **kwargs)


@pytest.mark.parity
@pytest.mark.parametrize(("batch_size", "drop_last", "sampler"), [
    (3, False, None), (3, True, None), (4, False, [5, 0, 3, 3, 1]), (None, False, [2, 0]), (1, False, None),
])
def test_batches_match_pytorch(batch_size: int | None, drop_last: bool, sampler: list | None) -> None:
    n = 7
    theirs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(n), torch.arange(n) * 10),
                                         batch_size=batch_size, drop_last=drop_last, sampler=sampler)
    ours = DataLoader(TensorDataset(tl.arange(n), tl.arange(n) * 10), batch_size=batch_size, drop_last=drop_last,
                      sampler=sampler)
    generic = DataLoader(Numbers(n), batch_size=batch_size, drop_last=drop_last, sampler=sampler)
    assert len(ours) == len(theirs) == len(generic)
    expected = [[t.tolist() for t in batch] for batch in theirs]
    assert [[t.tolist() for t in batch] for batch in ours] == expected
    assert [[t.tolist() if isinstance(t, tl.Tensor) else t for t in batch] for batch in generic] == expected


@pytest.mark.parity
@pytest.mark.parametrize(("n", "batch_size", "drop_last"), [(10, 3, False), (10, 3, True), (2, 5, False)])
def test_batch_sampler_and_sampler_lengths_match_pytorch(n: int, batch_size: int, drop_last: bool) -> None:
    data = torch.utils.data
    assert list(BatchSampler(range(n), batch_size, drop_last)) == list(data.BatchSampler(range(n), batch_size,
                                                                                         drop_last))
    assert len(BatchSampler(range(n), batch_size, drop_last)) == len(data.BatchSampler(range(n), batch_size,
                                                                                       drop_last))
    assert list(SequentialSampler(range(n))) == list(data.SequentialSampler(range(n)))
    for kwargs in (dict(), dict(num_samples=3), dict(num_samples=25), dict(replacement=True, num_samples=40)):
        assert len(RandomSampler(range(n), **kwargs)) == len(data.RandomSampler(range(n), **kwargs))
        assert len(list(RandomSampler(range(n), **kwargs))) == len(list(data.RandomSampler(range(n), **kwargs)))
    assert len(WeightedRandomSampler([1.0, 2.0], 5)) == len(data.WeightedRandomSampler([1.0, 2.0], 5))
