"""topk, roll and multinomial: the ops sampling code (nanoGPT's ``generate``, makemore's MLP) needs.

topk and roll are differentiable: float64 finite differences and PyTorch parity of values, indices
and gradients, on every backend. multinomial is random: its shapes, dtypes and refusals are compared
with PyTorch's, and its draws with the distribution they must follow (chi-square tests at the 0.1%
level over many draws with fixed seeds, each shown able to fail against a wrong distribution).
"""

from __future__ import annotations

import math

import chi_square
import numpy as np
import pytest
from oracle import check_parity, torch

import tensorlite as tl


def distinct(*shape: int, seed: int = 0) -> np.ndarray:
    """Values at least 0.1 apart in random order: no ties, so topk is differentiable and its order unique."""
    n = math.prod(shape)
    return np.random.default_rng(seed).permutation(n).reshape(shape) * 0.1 - n * 0.05


def host(t: tl.Tensor) -> np.ndarray:
    return np.asarray(t.numpy())


# -- topk ------------------------------------------------------------------------------------------

TOPK_CASES = [((7,), 3, -1), ((7,), 7, 0), ((7,), 0, 0), ((4, 6), 2, 1), ((4, 6), 4, 0), ((2, 3, 5), 1, -1),
              ((2, 3, 5), 3, 1), ((3, 1, 4), 1, 1)]


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize(("shape", "k", "dim"), TOPK_CASES)
def test_topk(check, device: str, shape: tuple, k: int, dim: int, largest: bool) -> None:
    x = distinct(*shape, seed=k)
    check.parity(lambda a: tl.topk(a, k, dim, largest), lambda a: torch.topk(a, k, dim, largest), [x], device)
    check.parity(lambda a: a.topk(k, dim=dim, largest=largest, sorted=True),
                 lambda a: a.topk(k, dim=dim, largest=largest, sorted=True), [x], device)
    check.grad(lambda a: tl.topk(a, k, dim, largest).values, [x], device)


def test_topk_returns_sorted_values_and_int64_indices(device: str) -> None:
    x = tl.tensor([[3.0, 9.0, 1.0, 7.0], [0.0, -1.0, 5.0, 2.0]], device=device, requires_grad=True)
    out = tl.topk(x, 2)
    assert out._fields == ("values", "indices") and out.values is out[0]
    assert out.values.tolist() == [[9.0, 7.0], [5.0, 2.0]] and out.indices.tolist() == [[1, 3], [2, 3]]
    assert out.indices.dtype == tl.int64 and out.indices.device == device and not out.indices.requires_grad
    assert tl.topk(x, 3, largest=False).values.tolist() == [[1.0, 3.0, 7.0], [-1.0, 0.0, 2.0]]
    out.values.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]]


def test_topk_ties_come_in_index_order(device: str) -> None:
    x = tl.tensor([1.0, 3.0, 3.0, 2.0, 3.0, 1.0, float("nan"), float("nan")], device=device)
    assert tl.topk(x, 4).indices.tolist() == [6, 7, 1, 2]
    assert tl.topk(x, 3, largest=False).indices.tolist() == [0, 5, 3]


def test_topk_unsorted_picks_the_same_entries(device: str) -> None:
    x = tl.tensor(distinct(5, 8), device=device)
    chosen = tl.topk(x, 3, sorted=False)
    assert sorted(map(sorted, chosen.indices.tolist())) == sorted(map(sorted, tl.topk(x, 3).indices.tolist()))


def test_topk_of_integers_and_scalars(device: str) -> None:
    values, indices = tl.topk(tl.tensor([4, 1, 9, 7], device=device), 2)
    assert values.tolist() == [9, 7] and values.dtype == tl.int64 and indices.tolist() == [2, 3]
    values, indices = tl.topk(tl.tensor(2.5, device=device), 1)
    assert values.shape == indices.shape == () and values.item() == 2.5 and indices.item() == 0


@pytest.mark.parity
@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("largest", [True, False])
def test_topk_nan_is_largest_as_in_pytorch(device: str, largest: bool, k: int) -> None:
    x = np.array([[1.0, np.nan, 3.0, -2.0], [-np.inf, 0.5, np.nan, 4.0]])  # ties' order is unspecified
    check_parity(lambda a: tl.topk(a, k, largest=largest), lambda a: torch.topk(a, k, largest=largest), [x],
                 device, grad=[False])


@pytest.mark.parity
def test_topk_of_a_scalar_and_of_integers_match_pytorch() -> None:
    ours, theirs = tl.topk(tl.tensor(2.5), 1), torch.topk(torch.tensor(2.5), 1)
    assert ours.values.shape == tuple(theirs.values.shape) and ours.indices.shape == tuple(theirs.indices.shape)
    ints = [4, 1, 9, 7, 9]
    ours, theirs = tl.topk(tl.tensor(ints), 3, largest=False), torch.topk(torch.tensor(ints), 3, largest=False)
    assert ours.values.tolist() == theirs.values.tolist() and ours.indices.tolist() == theirs.indices.tolist()


def test_topk_rejects_bad_arguments() -> None:
    x = tl.zeros(2, 3)
    with pytest.raises(IndexError, match=r"topk: k=4 is out of range for dimension -1 of size 3 \(shape \(2, 3\)\)"):
        tl.topk(x, 4)
    with pytest.raises(IndexError, match="k=-1 is out of range"):
        tl.topk(x, -1)
    with pytest.raises(TypeError, match="topk: k must be an int, got float"):
        tl.topk(x, 1.0)
    with pytest.raises(IndexError, match="topk: dimension 2 is out of range"):
        tl.topk(x, 1, dim=2)
    with pytest.raises(TypeError, match="topk: expected a tensor, got list"):
        tl.topk([1.0, 2.0], 1)


# -- roll ------------------------------------------------------------------------------------------

ROLL_CASES = [((6,), 2, None), ((6,), -7, 0), ((2, 3), 1, None), ((2, 3), 1, 1), ((2, 3), (1, -1), (0, 1)),
              ((2, 3, 4), (5, 2), (-1, 0)), ((2, 3, 4), 0, 1), ((3, 4), (1, 1), (1, 1))]


@pytest.mark.parametrize(("shape", "shifts", "dims"), ROLL_CASES)
def test_roll(check, device: str, shape: tuple, shifts, dims) -> None:
    x = distinct(*shape)
    check.parity(lambda a: tl.roll(a, shifts, dims), lambda a: torch.roll(a, shifts, dims), [x], device)
    check.parity(lambda a: a.roll(shifts, dims), lambda a: a.roll(shifts, dims), [x], device)
    check.grad(lambda a: tl.roll(a, shifts, dims), [x], device)


def test_roll_values(device: str) -> None:
    x = tl.arange(6, device=device).reshape(2, 3)
    assert tl.roll(x, 1).tolist() == [[5, 0, 1], [2, 3, 4]]
    assert tl.roll(x, 1, 1).tolist() == [[2, 0, 1], [5, 3, 4]]
    assert tl.roll(x, (1, -1), (0, 1)).tolist() == [[4, 5, 3], [1, 2, 0]]
    assert tl.roll(tl.tensor(5, device=device), 3).item() == 5


def test_roll_rejects_bad_arguments() -> None:
    x = tl.zeros(2, 3)
    with pytest.raises(ValueError, match=r"roll: shifts and dims must have the same length, got shifts=\(1, 2\)"):
        tl.roll(x, (1, 2), 0)
    with pytest.raises(ValueError, match="without dims, shifts must be one int"):
        tl.roll(x, (1, 2))
    with pytest.raises(TypeError, match="roll: shifts must be an int or a sequence of ints, got 1.5"):
        tl.roll(x, 1.5, 0)
    with pytest.raises(IndexError, match="roll: dimension 2 is out of range"):
        tl.roll(x, 1, 2)


# -- multinomial -----------------------------------------------------------------------------------

PROBS = np.array([0.1, 0.2, 0.0, 0.3, 0.4])


SHAPES = [((5,), 1, False), ((5,), 8, True), ((3, 5), 5, False), ((3, 5), 2, True), ((1, 1), 3, True)]


@pytest.mark.parametrize(("shape", "num_samples", "replacement"), SHAPES)
def test_multinomial_shape_dtype_device(device: str, shape: tuple, num_samples: int, replacement: bool) -> None:
    probs = tl.tensor(np.ones(shape), device=device)
    out = tl.multinomial(probs, num_samples, replacement)
    assert out.shape == shape[:-1] + (num_samples,) and out.dtype == tl.int64 and out.device == device
    assert probs.multinomial(num_samples, replacement, generator=0).shape == out.shape and not out.requires_grad


@pytest.mark.parity
@pytest.mark.parametrize(("shape", "num_samples", "replacement"), SHAPES)
def test_multinomial_shape_and_dtype_match_pytorch(shape: tuple, num_samples: int, replacement: bool) -> None:
    ours = tl.multinomial(tl.ones(shape), num_samples, replacement)
    theirs = torch.multinomial(torch.ones(shape), num_samples, replacement)
    assert ours.shape == tuple(theirs.shape) and ours.dtype == theirs.numpy().dtype


def test_multinomial_with_replacement_follows_the_probabilities(device: str) -> None:
    draws = tl.multinomial(tl.tensor(PROBS, device=device), 100_000, replacement=True, generator=0)
    counts = np.bincount(host(draws), minlength=5)
    assert counts[2] == 0 and chi_square.fits(counts, PROBS)
    assert not chi_square.fits(counts, np.array([0.1, 0.2, 0.0, 0.32, 0.38]))  # a 2% shift is seen


def test_multinomial_rows_each_follow_their_own_weights(device: str) -> None:
    """Unnormalised weights, zero weights at either end: each row of a batch is drawn from its own row."""
    weights = np.array([[0.0, 1.0, 3.0, 0.0], [5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0], [1.0, 1.0, 1.0, 1.0],
                        [2.0, 0.0, 0.0, 6.0]])
    draws = host(tl.multinomial(tl.tensor(weights, device=device), 40_000, replacement=True, generator=1))
    for row, w in zip(draws, weights):
        counts = np.bincount(row, minlength=4)
        assert counts.size == 4 and chi_square.fits(counts, w), (w, counts)
    assert not chi_square.fits(np.bincount(draws[0], minlength=4), np.array([0.0, 1.2, 2.8, 0.0]))


def test_multinomial_without_replacement_never_repeats_and_follows_sequential_draws(device: str) -> None:
    """The first draw follows the weights; the second, the weights with the first removed."""
    rows = tl.multinomial(tl.tensor(np.tile(PROBS, (20_000, 1)), device=device), 3, generator=2)
    drawn = host(rows)
    assert all(len(set(r)) == 3 for r in drawn.tolist()) and not (drawn == 2).any()
    assert chi_square.fits(np.bincount(drawn[:, 0], minlength=5), PROBS)
    assert chi_square.fits(np.bincount(drawn[:, 1], minlength=5), second_draw(PROBS))
    assert not chi_square.fits(np.bincount(drawn[:, 1], minlength=5), PROBS)  # the removal is seen


def second_draw(p: np.ndarray) -> np.ndarray:
    """P(second draw = j) without replacement: the sum over first draws i != j of p_i * p_j / (1 - p_i)."""
    p = p / p.sum()
    return np.array([sum(p[i] * p[j] / (1 - p[i]) for i in range(len(p)) if i != j) for j in range(len(p))])


@pytest.mark.parity
def test_pytorch_draws_without_replacement_the_same_way() -> None:
    """The distribution the test above expects is PyTorch's too."""
    torch.manual_seed(0)
    drawn = torch.multinomial(torch.from_numpy(np.tile(PROBS, (20_000, 1))), 3).numpy()
    assert chi_square.fits(np.bincount(drawn[:, 0], minlength=5), PROBS)
    assert chi_square.fits(np.bincount(drawn[:, 1], minlength=5), second_draw(PROBS))


def test_multinomial_all_categories_without_replacement_is_a_permutation(device: str) -> None:
    drawn = tl.multinomial(tl.ones(50, 6, device=device), 6, generator=0)
    assert all(sorted(r) == list(range(6)) for r in drawn.tolist())
    assert len({tuple(r) for r in drawn.tolist()}) > 1


def test_multinomial_is_reproducible(device: str) -> None:
    probs = tl.tensor([[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]], device=device)
    for replacement in (False, True):
        a = tl.multinomial(probs, 2, replacement, generator=7).tolist()
        assert a == tl.multinomial(probs, 2, replacement, generator=np.random.default_rng(7)).tolist()
        assert a == tl.multinomial(probs.to("cpu"), 2, replacement, generator=7).tolist()  # same draws anywhere
        tl.manual_seed(3)
        b = tl.multinomial(probs, 50, True).tolist()
        tl.manual_seed(3)
        assert tl.multinomial(probs, 50, True).tolist() == b


BAD_PROBS = [
    ("integers", lambda: tl.tensor([1, 2]), 1, False, TypeError, "expected a floating-point tensor"),
    ("3-d", lambda: tl.ones(1, 1, 2), 1, False, ValueError, r"shape \(C,\) or \(N, C\)"),
    ("no samples", lambda: tl.ones(2), 0, False, ValueError, "num_samples must be a positive int, got 0"),
    ("too many", lambda: tl.ones(2), 3, False, ValueError, "num_samples=3 > 2 categories without replacement"),
    ("negative", lambda: tl.tensor([0.5, -0.1]), 1, True, ValueError, "inf, nan or element < 0"),
    ("nan", lambda: tl.tensor([0.5, float("nan")]), 1, True, ValueError, "inf, nan or element < 0"),
    ("inf", lambda: tl.tensor([[0.5, 1.0], [float("inf"), 1.0]]), 1, False, ValueError, "inf, nan or element < 0"),
    ("zero row", lambda: tl.tensor([[0.5, 1.0], [0.0, 0.0]]), 1, True, ValueError, "sum to 0"),
]


@pytest.mark.parametrize(("case", "make", "num_samples", "replacement", "error", "message"), BAD_PROBS,
                         ids=[c[0] for c in BAD_PROBS])
def test_multinomial_rejects_what_pytorch_rejects(case, make, num_samples, replacement, error, message) -> None:
    with pytest.raises(error, match=f"multinomial: .*{message}"):
        tl.multinomial(make(), num_samples, replacement)


@pytest.mark.parity
@pytest.mark.parametrize(("case", "make", "num_samples", "replacement", "error", "message"), BAD_PROBS,
                         ids=[c[0] for c in BAD_PROBS])
def test_pytorch_rejects_them_too(case, make, num_samples, replacement, error, message) -> None:
    with pytest.raises(RuntimeError):
        torch.multinomial(torch.from_numpy(np.asarray(make().numpy())), num_samples, replacement)


def test_multinomial_refuses_too_few_nonzero_categories_without_replacement() -> None:
    """PyTorch returns zero-probability categories here; tensorlite says why it cannot draw."""
    with pytest.raises(ValueError, match="num_samples=2 without replacement from a row with fewer non-zero"):
        tl.multinomial(tl.tensor([[1.0, 1.0], [1.0, 0.0]]), 2)
    with pytest.raises(TypeError, match="multinomial: generator must be an int seed"):
        tl.multinomial(tl.ones(2), 1, generator="0")
