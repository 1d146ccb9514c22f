"""tl.utils.data: TensorDataset, Subset, random_split, DataLoader, default_collate."""

from __future__ import annotations

import numpy
import pytest

import tensorlite as tl
from tensorlite.utils.data import DataLoader, Dataset, Subset, TensorDataset, default_collate, random_split


def make_dataset(n: int = 10, device: str = "cpu") -> TensorDataset:
    """Row i of x is [i, i + 0.5]; y[i] = i: every batch says which samples it holds."""
    x = tl.tensor([[i, i + 0.5] for i in range(n)], device=device)
    return TensorDataset(x, tl.arange(n, device=device))


def epoch(loader: DataLoader) -> list[int]:
    """The sample ids of one pass, in order; also checks that x and y rows stay paired."""
    seen = []
    for x, y in loader:
        numpy.testing.assert_array_equal(x.numpy()[:, 0], y.numpy())
        seen += y.tolist()
    return seen


class Squares(Dataset):
    """A generic dataset: a dict sample with a tensor, an int and a float."""

    def __init__(self, n: int, device: str) -> None:
        self.n, self.device = n, device

    def __getitem__(self, i: int) -> dict:
        return {"x": tl.full((3,), float(i), device=self.device), "i": i, "sq": float(i * i)}

    def __len__(self) -> int:
        return self.n


def test_tensor_dataset_items_and_length(device: str) -> None:
    ds = make_dataset(5, device)
    x, y = ds[3]
    assert len(ds) == 5
    assert x.tolist() == [3.0, 3.5] and y.item() == 3 and x.device == device


def test_tensor_dataset_length_mismatch_names_the_sizes() -> None:
    with pytest.raises(ValueError, match=r"same size in dimension 0.*\[4, 3\]"):
        TensorDataset(tl.zeros(4, 2), tl.zeros(3))


def test_tensor_dataset_refuses_scalars_and_mixed_devices() -> None:
    with pytest.raises(TypeError, match="argument 1"):
        TensorDataset(tl.zeros(4), tl.tensor(1.0))
    with pytest.raises(ValueError, match="one device"):
        TensorDataset(tl.zeros(4, device="cpu"), tl.zeros(4, device="sim"))


@pytest.mark.parametrize(("n", "batch_size", "drop_last", "sizes"), [
    (10, 4, False, [4, 4, 2]), (10, 4, True, [4, 4]), (8, 4, False, [4, 4]), (3, 5, True, []), (0, 2, False, []),
])
def test_batch_shapes_len_and_drop_last(n: int, batch_size: int, drop_last: bool, sizes: list[int],
                                        device: str) -> None:
    loader = DataLoader(make_dataset(n, device), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(sizes) == len(batches)
    assert [x.shape for x, _ in batches] == [(s, 2) for s in sizes]
    assert [y.shape for _, y in batches] == [(s,) for s in sizes]
    assert all(x.device == device and y.dtype == tl.int64 for x, y in batches)
    assert epoch(loader) == list(range(sum(sizes)))


def test_shuffle_visits_every_sample_once_per_epoch_in_a_new_order(device: str) -> None:
    loader = DataLoader(make_dataset(20, device), batch_size=6, shuffle=True, generator=0)
    first, second = epoch(loader), epoch(loader)
    assert sorted(first) == sorted(second) == list(range(20))
    assert first != second and first != list(range(20))


def test_shuffle_is_reproducible_with_a_seed_or_a_generator() -> None:
    ds = make_dataset(20)
    runs = [[epoch(loader) for _ in range(3)] for loader in (
        DataLoader(ds, batch_size=3, shuffle=True, generator=7),
        DataLoader(ds, batch_size=3, shuffle=True, generator=7),
        DataLoader(ds, batch_size=3, shuffle=True, generator=numpy.random.default_rng(7)),
    )]
    assert runs[0] == runs[1] == runs[2]
    assert runs[0] != [epoch(DataLoader(ds, batch_size=3, shuffle=True, generator=8)) for _ in range(3)]


def test_shuffle_without_a_generator_follows_manual_seed() -> None:
    loader = DataLoader(make_dataset(20), batch_size=4, shuffle=True)
    tl.manual_seed(3)
    first = epoch(loader)
    tl.manual_seed(3)
    assert epoch(loader) == first


def test_drop_last_with_shuffle_drops_the_tail_of_the_permutation() -> None:
    seen = epoch(DataLoader(make_dataset(10), batch_size=4, shuffle=True, drop_last=True, generator=1))
    assert len(seen) == len(set(seen)) == 8


def test_batches_land_on_the_requested_device() -> None:
    batches = list(DataLoader(make_dataset(6, "cpu"), batch_size=4, device="sim"))
    assert all(t.device == "sim" for batch in batches for t in batch)
    assert batches[1][1].tolist() == [4, 5]


def test_tensor_dataset_batches_do_not_read_samples_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: TensorDataset, index: int) -> None:
        raise AssertionError("per-sample read")

    loader = DataLoader(make_dataset(10), batch_size=4, shuffle=True, generator=0)
    monkeypatch.setattr(TensorDataset, "__getitem__", refuse)
    assert sorted(epoch(loader)) == list(range(10))


def test_batches_are_copies_outside_the_graph() -> None:
    x = tl.ones(4, 2, requires_grad=True)
    (xb,) = next(iter(DataLoader(TensorDataset(x), batch_size=4)))
    with tl.no_grad():
        xb.fill_(5.0)
    assert not xb.requires_grad and x.tolist() == [[1.0, 1.0]] * 4


def test_generic_dataset_is_read_per_sample_and_collated(device: str) -> None:
    loader = DataLoader(Squares(5, device), batch_size=2)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    last = batches[-1]
    assert last["x"].shape == (1, 3) and last["x"].device == device
    assert last["i"].tolist() == [4] and last["i"].dtype == tl.int64
    assert last["sq"].tolist() == [16.0] and last["sq"].dtype == tl.float32
    assert [b["i"].tolist() for b in batches] == [[0, 1], [2, 3], [4]]


def test_generic_dataset_shuffles_and_moves_to_device() -> None:
    loader = DataLoader(Squares(7, "cpu"), batch_size=3, shuffle=True, generator=0, device="sim")
    batches = list(loader)
    assert sorted(i for b in batches for i in b["i"].tolist()) == list(range(7))
    assert all(b["x"].device == "sim" and b["i"].device == "sim" for b in batches)


def test_collate_fn_gets_the_list_of_samples() -> None:
    loader = DataLoader(make_dataset(5), batch_size=2, collate_fn=lambda samples: [int(y) for _, y in samples])
    assert list(loader) == [[0, 1], [2, 3], [4]]


def test_default_collate_nested_structures() -> None:
    batch = default_collate([(tl.zeros(2), [1, "a"], numpy.ones(3)), (tl.ones(2), [2, "b"], numpy.zeros(3))])
    stacked, (ints, strings), arrays = batch
    assert isinstance(batch, tuple) and stacked.tolist() == [[0, 0], [1, 1]]
    assert ints.tolist() == [1, 2] and strings == ["a", "b"]
    assert arrays.shape == (2, 3) and arrays.dtype == tl.float64  # NumPy arrays keep their dtype
    assert default_collate([True, False]).dtype == tl.bool


def test_default_collate_errors() -> None:
    with pytest.raises(TypeError, match="cannot batch samples of type object"):
        default_collate([object()])
    with pytest.raises(ValueError, match="different lengths"):
        default_collate([(1, 2), (1,)])


def test_dataloader_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive integer or None, got 0"):
        DataLoader(make_dataset(), batch_size=0)
    with pytest.raises(TypeError, match="generator must be an int seed"):
        DataLoader(make_dataset(), shuffle=True, generator="seed")


def test_abstract_dataset_says_what_to_define() -> None:
    with pytest.raises(NotImplementedError, match="Dataset must define __len__"):
        len(Dataset())


@pytest.mark.parametrize(("lengths", "sizes"), [([7, 3], [7, 3]), ([0.5, 0.3, 0.2], [5, 3, 2]),
                                                ([0.34, 0.33, 0.33], [4, 3, 3])])
def test_random_split_sizes_and_disjointness(lengths: list, sizes: list[int]) -> None:
    parts = random_split(make_dataset(10), lengths, generator=0)
    assert [len(p) for p in parts] == sizes and all(isinstance(p, Subset) for p in parts)
    ids = [int(p[i][1]) for p in parts for i in range(len(p))]
    assert sorted(ids) == list(range(10))


def test_random_split_is_reproducible() -> None:
    ds = make_dataset(10)
    indices = [[p.indices for p in random_split(ds, [6, 4], generator=g)] for g in (5, 5, 6)]
    assert indices[0] == indices[1] != indices[2]


def test_random_split_rejects_bad_lengths() -> None:
    with pytest.raises(ValueError, match=r"summing to the dataset's 10 samples"):
        random_split(make_dataset(10), [5, 4])


def test_loader_over_a_split_uses_the_subset_rows(device: str) -> None:
    train, val = random_split(make_dataset(10, device), [0.7, 0.3], generator=2)
    loader = DataLoader(train, batch_size=3, shuffle=True, generator=0)
    assert len(loader) == 3
    assert sorted(epoch(loader)) == sorted(int(train[i][1]) for i in range(len(train)))
    assert epoch(DataLoader(Subset(val, [2, 0]), batch_size=2)) == [val.indices[2], val.indices[0]]
