"""Reductions, softmax, arg-extremes, shape ops, indexing and comparisons, on every backend.

Each differentiable op is checked twice: float64 finite differences (``check_grad``) and float32
PyTorch parity of values and gradients (``check_parity``). Non-differentiable ops are compared
with PyTorch directly and must give results that do not require grad.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import check_parity, torch

import tensorlite as tl
import tensorlite.nn.functional as F

HYPOTHESIS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def distinct(*shape: int, seed: int = 0) -> np.ndarray:
    """Values at least 0.1 apart in random order: no ties, so max/min are differentiable."""
    n = math.prod(shape)
    return np.random.default_rng(seed).permutation(n).reshape(shape) * 0.1 - n * 0.05


def host(t: tl.Tensor) -> np.ndarray:
    return np.asarray(t.numpy())


def assert_same(ours: tl.Tensor, theirs: torch.Tensor) -> None:
    """Same shape, dtype and values (for integer and bool results)."""
    assert tuple(ours.shape) == tuple(theirs.shape)
    expected = theirs.numpy()
    assert ours.dtype == expected.dtype, f"dtype {ours.dtype} vs torch {expected.dtype}"
    np.testing.assert_array_equal(host(ours), expected)


@st.composite
def shape_and_dim(draw, min_size: int = 1, max_size: int = 3, allow_tuple: bool = True):
    """A shape of 1-3 dims and a reduction ``dim``: None, an int or a tuple, possibly negative."""
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(min_size, max_size), min_size=ndim, max_size=ndim)))
    kinds = ["none", "int", "tuple"] if allow_tuple else ["int"]
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        dim = None
    elif kind == "int":
        dim = draw(st.integers(-ndim, ndim - 1))
    else:
        axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
        dim = tuple(a - ndim if draw(st.booleans()) else a for a in axes)
    return shape, dim


# -- sum, mean, var, std ---------------------------------------------------------------------------
def _reducer(name: str, lib, dim, keepdim: bool, **kwargs):
    """``lib.name(x, dim, keepdim=...)``. PyTorch has no ``keepdim`` without ``dim``: it gets all dims then."""
    def fn(*args, **options):
        return getattr(lib, name)(*args, **options)

    if lib is torch and dim is None:
        if keepdim:
            return lambda x: fn(x, tuple(range(x.ndim)), keepdim=True, **kwargs)
        return lambda x: fn(x, **kwargs)
    return lambda x: fn(x, dim, keepdim=keepdim, **kwargs)


REDUCTIONS = ["sum", "mean", "var", "std"]
DIMS = [None, 0, -1, 1, (0, 2), (-1, 0), (0, 1, 2)]


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction(check, device, name, dim, keepdim):
    """Each reduction over None/int/negative/tuple dims, with and without keepdim."""
    x = randn(2, 3, 4)
    check.parity(_reducer(name, tl, dim, keepdim), _reducer(name, torch, dim, keepdim), [x], device)
    check.grad(_reducer(name, tl, dim, keepdim), [x[:, :, :3]], device)


@pytest.mark.parametrize("correction", [0, 1])
@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std_correction(check, device, name, correction):
    """``correction=`` and ``unbiased=`` select the N or N - 1 denominator, as in PyTorch."""
    x = randn(3, 5)
    for dim in (None, 1, (0, 1)):
        ours = _reducer(name, tl, dim, False, correction=correction)
        theirs = _reducer(name, torch, dim, False, correction=correction)
        check.parity(ours, theirs, [x], device)
        check.grad(ours, [x], device)
        unbiased = _reducer(name, tl, dim, False, unbiased=bool(correction))
        check.parity(unbiased, theirs, [x], device)
    n = x.size
    expected = ((x - x.mean()) ** 2).sum() / (n - correction)
    expected = expected if name == "var" else np.sqrt(expected)
    got = getattr(tl, name)(tl.tensor(x, device=device), correction=correction)
    np.testing.assert_allclose(got.item(), expected, rtol=1e-12)


@pytest.mark.parametrize("name", REDUCTIONS)
@given(case=shape_and_dim(min_size=2), keepdim=st.booleans(), correction=st.sampled_from([0, 1]))
@HYPOTHESIS
def test_reduction_random_shapes(check, device, name, case, keepdim, correction):
    """Random shape, dim and keepdim: values and gradients match PyTorch and finite differences."""
    shape, dim = case
    kwargs = {"correction": correction} if name in ("var", "std") else {}
    x = randn(*shape, seed=len(shape))
    ours, theirs = _reducer(name, tl, dim, keepdim, **kwargs), _reducer(name, torch, dim, keepdim, **kwargs)
    check.parity(ours, theirs, [x], device)
    check.grad(ours, [x], device)


@pytest.mark.parity
def test_reduction_methods_and_int_sum(device):
    """Tensor methods are the same ops; sum keeps integers exact; mean refuses integers."""
    x = randn(2, 3)
    check_parity(lambda a: a.sum(1) + a.mean(0, keepdim=True).sum() + a.var(unbiased=False) + a.std(-1).sum(),
                 lambda a: a.sum(1) + a.mean(0, keepdim=True).sum() + a.var(unbiased=False) + a.std(-1).sum(),
                 [x], device)
    ints = tl.tensor(np.arange(6).reshape(2, 3), device=device)
    assert_same(ints.sum(0), torch.arange(6).reshape(2, 3).sum(0))
    with pytest.raises(TypeError, match="floating"):
        ints.mean()


# -- max and min -----------------------------------------------------------------------------------
EXTREMES = ["max", "min"]


@pytest.mark.parametrize("name", EXTREMES)
def test_extreme_full(check, device, name):
    """max()/min() over all elements: a 0-d tensor, gradient to the one extreme element."""
    x = distinct(3, 4)
    check.parity(lambda a: getattr(a, name)(), lambda a: getattr(a, name)(), [x], device)
    check.grad(lambda a: getattr(tl, name)(a), [x], device)


@pytest.mark.parity
@pytest.mark.parametrize("name", EXTREMES)
def test_extreme_full_ties_share_gradient(device, name):
    """With ties, the gradient is split evenly among the tied elements, as in PyTorch."""
    x = np.array([[1.0, 5.0, -2.0], [5.0, -2.0, 5.0]])
    check_parity(lambda a: getattr(a, name)() * 3.0, lambda a: getattr(a, name)() * 3.0, [x], device)
    t = tl.tensor(x, device=device, requires_grad=True)
    getattr(t, name)().backward()
    tied = x == (x.max() if name == "max" else x.min())
    np.testing.assert_allclose(host(t.grad), tied / tied.sum())


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, 1, -1, -3])
@pytest.mark.parametrize("name", EXTREMES)
def test_extreme_dim(check, device, name, dim, keepdim):
    """With dim: a (values, indices) named tuple; values differentiable, int64 indices as torch's."""
    x = distinct(2, 3, 4)
    out = getattr(tl, name)(tl.tensor(x, device=device, requires_grad=True), dim, keepdim=keepdim)
    assert isinstance(out, tuple) and out._fields == ("values", "indices")
    values, indices = out
    assert values is out.values and indices is out.indices
    assert values.requires_grad and not indices.requires_grad
    if check.oracle == "parity":
        expected = getattr(torch, name)(torch.from_numpy(x), dim, keepdim=keepdim)
        assert_same(indices, expected.indices)
        np.testing.assert_array_equal(host(values), expected.values.numpy())
    check.parity(lambda a: getattr(a, name)(dim, keepdim), lambda a: getattr(a, name)(dim, keepdim), [x], device)
    check.grad(lambda a: getattr(tl, name)(a, dim=dim, keepdim=keepdim).values, [x], device)


@pytest.mark.parity
@pytest.mark.parametrize("name", EXTREMES)
def test_extreme_dim_ties_pick_first_index(device, name):
    """Along a dim, ties report the first index (as torch on CPU) and only it gets the gradient."""
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    check_parity(lambda a: getattr(a, name)(1), lambda a: getattr(a, name)(1), [x], device)
    check_parity(lambda a: getattr(a, name)(0), lambda a: getattr(a, name)(0), [x], device)


@pytest.mark.parametrize("name", EXTREMES)
@given(case=shape_and_dim(max_size=4, allow_tuple=False), keepdim=st.booleans())
@HYPOTHESIS
def test_extreme_dim_random_shapes(check, device, name, case, keepdim):
    """Random shape, dim and keepdim: values, indices and gradients match PyTorch."""
    shape, dim = case
    x = distinct(*shape, seed=len(shape))
    fn = lambda a: getattr(a, name)(dim, keepdim=keepdim)  # noqa: E731  (same syntax in both libraries)
    check.parity(fn, fn, [x], device)
    check.grad(lambda a: fn(a).values, [x], device)


@pytest.mark.parametrize("name", EXTREMES)
def test_extreme_of_two_tensors_is_elementwise(check, device, name):
    """tl.max(a, b) / tl.min(a, b) are maximum / minimum, broadcasting, as in PyTorch."""
    a, b = distinct(3, 4), distinct(4, seed=1) + 0.05  # +0.05: never equal to an element of a
    check.parity(lambda x, y: getattr(tl, name)(x, y), lambda x, y: getattr(torch, name)(x, y), [a, b], device)
    check.grad(lambda x, y: getattr(tl, name)(x, y), [a, b], device)
    ties = np.array([1.0, 2.0, 3.0])
    check.parity(lambda x, y: getattr(tl, name)(x, y), lambda x, y: getattr(torch, name)(x, y),
                 [ties, np.array([1.0, 0.0, 4.0])], device)


def test_extreme_empty_raises(device):
    with pytest.raises(RuntimeError, match="empty"):
        tl.zeros(0, device=device).max()


# -- logsumexp, softmax, log_softmax ---------------------------------------------------------------
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, -1, 1, (0, 2), (0, 1, 2)], ids=str)
def test_logsumexp(check, device, dim, keepdim):
    x = randn(2, 3, 4)
    fn = lambda a: a.logsumexp(dim, keepdim=keepdim)  # noqa: E731
    check.parity(fn, fn, [x], device)
    check.grad(lambda a: tl.logsumexp(a, dim, keepdim), [x[:, :, :3]], device)


@pytest.mark.parametrize("offset", [1000.0, -1000.0, 80.0])
def test_logsumexp_large_values_do_not_overflow(check, device, offset):
    """exp(1000) overflows float32 and float64: the result must still be finite and right."""
    x = randn(3, 4) + offset
    x[0, 0] = offset + 5.0
    fn = lambda a: tl.logsumexp(a, 1)  # noqa: E731
    check.parity(fn, lambda a: torch.logsumexp(a, 1), [x], device, rtol=1e-6)
    out = fn(tl.tensor(x, device=device))
    assert np.isfinite(host(out)).all()
    check.grad(fn, [x], device)
    t = tl.tensor(np.full((2,), offset), device=device)
    np.testing.assert_allclose(tl.logsumexp(t, 0).item(), offset + math.log(2), rtol=1e-12)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2])
def test_softmax(check, device, name, dim):
    x = randn(2, 3, 4)
    check.parity(lambda a: getattr(tl, name)(a, dim), lambda a: getattr(torch, name)(a, dim), [x], device)
    check.parity(lambda a: getattr(a, name)(dim), lambda a: getattr(a, name)(dim), [x], device)
    check.parity(lambda a: getattr(F, name)(a, dim=dim), lambda a: getattr(torch.nn.functional, name)(a, dim=dim),
                 [x], device)
    check.grad(lambda a: getattr(tl, name)(a, dim), [x[:, :, :3]], device)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_large_logits(check, device, name):
    """Logits of +-1000 must neither overflow nor give nan; rows of softmax sum to 1."""
    x = np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 999.0], [-1000.0, -1001.0, -1000.5]])
    check.parity(lambda a: getattr(tl, name)(a, -1), lambda a: getattr(torch, name)(a, -1), [x], device)
    check.parity(lambda a: getattr(tl, name)(a, 0), lambda a: getattr(torch, name)(a, 0), [x], device)
    out = host(getattr(tl, name)(tl.tensor(x, device=device), 1))
    assert np.isfinite(out).all()
    probs = out if name == "softmax" else np.exp(out)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-12)
    check.grad(lambda a: getattr(tl, name)(a, 1), [x[1:]], device)


# -- argmax, argmin --------------------------------------------------------------------------------
@pytest.mark.parity
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_arg_extremes(device, name, dim, keepdim):
    """int64 indices as PyTorch's, ties to the first occurrence; never part of the graph."""
    x = np.array([[[1.0, 7.0, 7.0], [0.0, -3.0, 2.0]], [[-3.0, 4.0, 4.0], [5.0, 5.0, -3.0]]])
    t = tl.tensor(x, device=device, requires_grad=True)
    for fn in (getattr(tl, name), getattr(tl.Tensor, name)):
        out = fn(t, dim, keepdim=keepdim) if dim is not None else fn(t, keepdim=keepdim)
        expected = getattr(torch, name)(torch.from_numpy(x), dim, keepdim=keepdim)
        assert_same(out, expected)
        assert out.dtype == tl.int64 and not out.requires_grad


@pytest.mark.parity
@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(case=shape_and_dim(max_size=4, allow_tuple=False), keepdim=st.booleans(), whole=st.booleans())
@HYPOTHESIS
def test_arg_extremes_random_shapes(device, name, case, keepdim, whole):
    shape, dim = case
    dim = None if whole else dim
    x = np.random.default_rng(len(shape)).integers(-3, 3, size=shape).astype(np.float64)  # many ties
    out = getattr(tl, name)(tl.tensor(x, device=device), dim, keepdim)
    assert_same(out, getattr(torch, name)(torch.from_numpy(x), dim, keepdim))


# -- shape ops -------------------------------------------------------------------------------------
# (id, input shape, op): the op is written with syntax that tensorlite and PyTorch share.
SHAPE_OPS = [
    ("reshape-varargs", (2, 3, 4), lambda a: a.reshape(4, 6)),
    ("reshape-tuple", (2, 3, 4), lambda a: a.reshape((3, 8))),
    ("reshape-infer", (2, 3, 4), lambda a: a.reshape(-1, 2)),
    ("reshape-infer-mid", (2, 3, 4), lambda a: a.reshape((2, -1, 3))),
    ("reshape-same", (2, 3), lambda a: a.reshape(2, 3)),
    ("view-varargs", (2, 3, 4), lambda a: a.view(6, 4)),
    ("view-infer", (2, 3, 4), lambda a: a.view((-1,))),
    ("flatten", (2, 3, 4), lambda a: a.flatten()),
    ("flatten-start", (2, 3, 4), lambda a: a.flatten(1)),
    ("flatten-start-end", (2, 3, 4, 1), lambda a: a.flatten(0, 1)),
    ("flatten-negative", (2, 3, 4, 1), lambda a: a.flatten(-3, -2)),
    ("flatten-single", (2, 3), lambda a: a.flatten(1, 1)),
    ("permute-varargs", (2, 3, 4), lambda a: a.permute(2, 0, 1)),
    ("permute-tuple", (2, 3, 4), lambda a: a.permute((1, -1, 0))),
    ("transpose", (2, 3, 4), lambda a: a.transpose(0, 2)),
    ("transpose-negative", (2, 3, 4), lambda a: a.transpose(-1, -2)),
    ("T", (3, 4), lambda a: a.T),
    ("mT", (2, 3, 4), lambda a: a.mT),
    ("t-2d", (3, 4), lambda a: a.t()),
    ("t-1d", (4,), lambda a: a.t()),
    ("expand-varargs", (3, 1), lambda a: a.expand(2, 3, 4)),
    ("expand-keep", (1, 3, 1), lambda a: a.expand(2, -1, 4)),
    ("expand-tuple", (3,), lambda a: a.expand((2, 3))),
    ("squeeze-all", (1, 3, 1, 2), lambda a: a.squeeze()),
    ("squeeze-dim", (1, 3, 1, 2), lambda a: a.squeeze(2)),
    ("squeeze-negative", (1, 3, 1), lambda a: a.squeeze(-1)),
    ("squeeze-not-one", (1, 3, 1, 2), lambda a: a.squeeze(1)),
    ("squeeze-tuple", (1, 3, 1, 2), lambda a: a.squeeze((0, 1, 2))),
    ("unsqueeze-0", (2, 3), lambda a: a.unsqueeze(0)),
    ("unsqueeze-end", (2, 3), lambda a: a.unsqueeze(2)),
    ("unsqueeze-negative", (2, 3), lambda a: a.unsqueeze(-1)),
    ("unsqueeze-negative-mid", (2, 3), lambda a: a.unsqueeze(-2)),
    ("chain", (2, 3, 4), lambda a: a.permute(1, 2, 0).reshape(3, 8).T.unsqueeze(1).expand(8, 2, 3)),
]


@pytest.mark.parametrize("shape, op", [case[1:] for case in SHAPE_OPS], ids=[case[0] for case in SHAPE_OPS])
def test_shape_op(check, device, shape, op):
    x = randn(*shape)
    check.parity(op, op, [x], device)
    check.grad(op, [x], device)


@pytest.mark.parity
@pytest.mark.parametrize("name, args", [
    ("reshape", ((4, -1),)), ("view", ((6, 4),)), ("flatten", (1, 2)), ("permute", ((2, 0, 1),)),
    ("transpose", (-1, 0)), ("expand", ((3, 2, 3, 4),)), ("squeeze", (1,)), ("unsqueeze", (-4,)),
])
def test_shape_functions(device, name, args):
    """The tl.* functions behave like the methods (and torch.* where torch has them)."""
    shape = (2, 1, 3, 4) if name == "squeeze" else (2, 3, 4)
    x = randn(*shape)
    theirs = (lambda a: getattr(a, name)(*args)) if name in ("view", "expand") else \
        (lambda a: getattr(torch, name)(a, *args))
    check_parity(lambda a: getattr(tl, name)(a, *args), theirs, [x], device)


def test_shape_zero_dim_and_expand_as(check, device):
    check.parity(lambda a: a.flatten(), lambda a: a.flatten(), [np.array(2.5)], device)
    check.parity(lambda a: a.reshape(1, 1), lambda a: a.reshape(1, 1), [np.array(2.5)], device)
    check.parity(lambda a: a.expand(2, 3), lambda a: a.expand(2, 3), [np.array(2.5)], device)
    x, target = randn(3, 1), randn(2, 3, 4)
    check.parity(lambda a, b: a.expand_as(b), lambda a, b: a.expand_as(b), [x, target], device, grad=[True, False])
    check.parity(lambda a, b: tl.expand_as(a, b) * b, lambda a, b: a.expand_as(b) * b, [x, target], device)
    check.grad(lambda a, b: a.expand_as(b) * b, [x, target], device)


@given(data=st.data(), ndim=st.integers(1, 4))
@HYPOTHESIS
def test_permute_flatten_random(check, device, data, ndim):
    """Random shapes: a random permutation, then flattening a random range of dimensions."""
    shape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim)))
    perm = tuple(data.draw(st.permutations(range(ndim))))
    start = data.draw(st.integers(-ndim, ndim - 1))
    end = data.draw(st.integers(start % ndim, ndim - 1))
    op = lambda a: a.permute(perm).flatten(start, end).unsqueeze(-1)  # noqa: E731
    x = randn(*shape, seed=ndim)
    check.parity(op, op, [x], device)
    check.grad(op, [x], device)


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2])
def test_cat(check, device, dim):
    """Join along a dim where the pieces have different sizes."""
    base = [2, 3, 2]
    shapes = []
    for size in (1, 3, 2):
        s = list(base)
        s[dim] = size
        shapes.append(tuple(s))
    arrays = [randn(*s, seed=i) for i, s in enumerate(shapes)]
    check.parity(lambda *xs: tl.cat(xs, dim), lambda *xs: torch.cat(xs, dim), arrays, device)
    check.parity(lambda *xs: tl.concat(list(xs), dim=dim), lambda *xs: torch.cat(xs, dim), arrays, device)
    check.grad(lambda *xs: tl.cat(xs, dim=dim), arrays, device)
    check.grad(lambda a, b: tl.cat([a, b, a], dim=dim), arrays[:2], device)  # gradient accumulates over reuse


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_stack(check, device, dim):
    arrays = [randn(2, 3, seed=i) for i in range(3)]
    check.parity(lambda *xs: tl.stack(xs, dim), lambda *xs: torch.stack(xs, dim), arrays, device)
    check.grad(lambda *xs: tl.stack(list(xs), dim=dim), arrays, device)
    out = tl.stack([tl.tensor(a, device=device) for a in arrays], dim)
    assert out.shape == np.stack(arrays, dim).shape


@pytest.mark.parametrize("size, split, dim", [
    ((5, 3), 2, 0),  # 5 = 2 + 2 + 1: the last piece is smaller
    ((5, 3), 5, 0),
    ((5, 3), 7, 0),  # one piece
    ((3, 7), 3, 1),
    ((3, 7), 3, -1),
    ((5, 3), [1, 3, 1], 0),
    ((3, 7), (2, 0, 5), 1),
    ((3, 7), [7], -1),
])
def test_split(check, device, size, split, dim):
    x = randn(*size)
    check.parity(lambda a: a.split(split, dim), lambda a: a.split(split, dim), [x], device)
    check.parity(lambda a: tl.split(a, split, dim=dim), lambda a: torch.split(a, split, dim=dim), [x], device)
    check.grad(lambda a: tl.split(a, split, dim), [x], device)


@pytest.mark.parametrize("size, chunks, dim", [((6, 2), 3, 0), ((7, 2), 3, 0), ((6, 2), 4, 0), ((2, 5), 2, -1),
                                               ((2, 2), 5, 1), ((5, 2), 1, 0)])
def test_chunk(check, device, size, chunks, dim):
    """Equal pieces, the last smaller; may give fewer than ``chunks`` pieces, exactly as PyTorch."""
    x = randn(*size)
    check.parity(lambda a: a.chunk(chunks, dim), lambda a: a.chunk(chunks, dim), [x], device)
    check.grad(lambda a: tl.chunk(a, chunks, dim=dim), [x], device)


def test_shape_errors(device):
    x = tl.zeros(2, 3, device=device)
    with pytest.raises(ValueError, match="reshape"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match="expand"):
        x.expand(2, 4)
    with pytest.raises(ValueError, match="permut"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match="add up"):
        x.split([1, 1], 1)
    with pytest.raises(ValueError, match="shape"):
        tl.cat([x, tl.zeros(3, 3, device=device)], dim=1)
    with pytest.raises(IndexError, match="dimension"):
        x.squeeze(2)


# -- indexing --------------------------------------------------------------------------------------
def _key(key, make):
    """``key`` with its NumPy arrays turned into index tensors by ``make``."""
    if isinstance(key, tuple):
        return tuple(_key(k, make) for k in key)
    return make(key) if isinstance(key, np.ndarray) else key


_ALL = slice(None)
# (id, input shape, key); NumPy arrays in keys become tensors of each library.
GETITEM_CASES = [
    ("int", (3, 4), 1),
    ("negative-int", (3, 4), -1),
    ("ints", (3, 4, 2), (1, -2)),
    ("all-ints", (3, 4), (2, 3)),
    ("slice", (5, 4), slice(1, 4)),
    ("slice-step", (5, 4), slice(None, None, 2)),
    ("slice-steps-2d", (5, 4), (slice(None, None, 2), slice(1, None, 2))),
    ("negative-slice", (5, 4), (slice(-3, -1), slice(None, -1))),
    ("none", (3, 4), (None, 0)),
    ("none-middle", (3, 4), (_ALL, None, slice(1, 3))),
    ("ellipsis", (2, 3, 4), (Ellipsis, 1)),
    ("ellipsis-none", (2, 3, 4), (0, Ellipsis, None)),
    ("ellipsis-middle", (2, 3, 4), (1, Ellipsis, slice(0, 3, 2))),
    ("list-repeats", (3, 4), [0, 0, 2, 0]),
    ("list-negative", (3, 4), [-1, 0, -1]),
    ("lists-pairwise", (3, 4), ([0, 0, 1, 2], [1, 1, 3, -4])),
    ("tensor-repeats", (3, 4), np.array([[0, 1], [1, 1]])),
    ("tensor-0d", (3, 4), np.array(2)),
    ("tensors-broadcast", (3, 4), (np.array([[0], [2], [2]]), np.array([1, 1, 3]))),
    ("bool-mask-full", (3, 4), np.array([[True, False, True, False], [False] * 4, [True, True, False, True]])),
    ("bool-mask-rows", (3, 4), np.array([True, False, True])),
    ("bool-mask-cols", (3, 4), (_ALL, np.array([False, True, True, False]))),
    ("bool-list", (3, 4), [True, False, True]),
    ("mixed-slice-list", (3, 4), (_ALL, [2, 0, 2])),
    ("mixed-tensor-slice", (3, 4), (np.array([0, 0]), slice(1, None))),
    ("mixed-ellipsis-tensor", (2, 3, 4), (Ellipsis, np.array([1, 1, 3]))),
    ("mixed-int-list", (2, 3, 4), (1, [0, 0, 2])),
    ("mixed-separated", (2, 3, 4), ([0, 1, 1], _ALL, [3, 3, 0])),
    ("mixed-none-tensor", (2, 3, 4), (None, np.array([1, 0, 1]), slice(None, None, 2))),
]


@pytest.mark.parametrize("shape, key", [c[1:] for c in GETITEM_CASES], ids=[c[0] for c in GETITEM_CASES])
def test_getitem(check, device, shape, key):
    """Basic and advanced indexing; repeated indices accumulate their gradients (scatter-add)."""
    x = randn(*shape)
    ours = _key(key, lambda k: tl.tensor(k, device=device))
    check.parity(lambda a: a[ours], lambda a: a[_key(key, torch.from_numpy)], [x], device)
    check.grad(lambda a: a[ours], [x], device)


def test_getitem_repeats_accumulate(device):
    """x[[0, 0, 2, 0]] sends three gradients to row 0: they add up rather than overwrite."""
    t = tl.tensor(np.zeros((3, 2)), device=device, requires_grad=True)
    t[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(host(t.grad), [[3.0, 3.0], [0.0, 0.0], [1.0, 1.0]])
    t.grad = None
    index = tl.tensor(np.array([1, 1, 1]), device=device)
    (t[index, 1] * tl.tensor([1.0, 2.0, 4.0], dtype=tl.float64, device=device)).sum().backward()
    np.testing.assert_array_equal(host(t.grad), [[0.0, 0.0], [0.0, 7.0], [0.0, 0.0]])


@pytest.mark.parity
def test_getitem_host_index_and_errors(device):
    """A host NumPy array works as an index on every device; float indices and bad indices are refused."""
    x = randn(3, 4)
    check_parity(lambda a: a[np.array([2, 2, 0])], lambda a: a[torch.tensor([2, 2, 0])], [x], device)
    t = tl.tensor(x, device=device)
    with pytest.raises(IndexError, match="integer"):
        t[tl.tensor([0.0, 1.0], device=device)]
    with pytest.raises(IndexError):
        t[5]


@pytest.mark.parametrize("mask_shape", [(3, 4), (1, 4), (3, 1), (4,), ()])
def test_masked_fill(check, device, mask_shape):
    """The mask broadcasts; filled positions get no gradient."""
    x = randn(3, 4)
    mask = np.random.default_rng(2).random(mask_shape) > 0.5
    check.parity(lambda a, m: a.masked_fill(m, -1.5), lambda a, m: a.masked_fill(m, -1.5), [x, mask], device)
    check.parity(lambda a, m: tl.masked_fill(a, m, 0.0), lambda a, m: a.masked_fill(m, 0.0), [x, mask], device)
    check.grad(lambda a, m: a.masked_fill(m, 7.0), [x, mask], device)
    with pytest.raises(TypeError, match="bool"):
        tl.tensor(x, device=device).masked_fill(tl.tensor(mask.astype(np.int64), device=device), 0.0)


@pytest.mark.parametrize("shape", [(3, 4), (4, 3), (2, 3, 3)])
@pytest.mark.parametrize("diagonal", [-1, 0, 1])
@pytest.mark.parametrize("name", ["tril", "triu"])
def test_tril_triu(check, device, name, diagonal, shape):
    """Triangles of the last two dims (batched too), for diagonals below, on and above the main one."""
    x = randn(*shape)
    check.parity(lambda a: getattr(tl, name)(a, diagonal), lambda a: getattr(torch, name)(a, diagonal), [x], device)
    check.parity(lambda a: getattr(a, name)(diagonal=diagonal), lambda a: getattr(a, name)(diagonal=diagonal),
                 [x], device)
    check.grad(lambda a: getattr(tl, name)(a, diagonal), [x], device)


@pytest.mark.parametrize("dim, index", [
    (0, [[0, 2, 2, 1], [2, 2, 0, 0]]),  # repeated rows
    (1, [[3, 3], [0, 1], [2, 3]]),  # repeated columns, fewer columns than the input
    (-1, [[1, 1, 1, 1, 0]]),  # one row of three, more entries than the input has columns
    (0, [[1], [1], [1]]),  # smaller than the input off dim
    (1, [[0], [3]]),
])
def test_gather(check, device, dim, index):
    """out[i][j] = x[index[i][j]][j] (dim 0); gradients of repeated indices add up."""
    x = randn(3, 4)
    index = np.array(index, dtype=np.int64)
    check.parity(lambda a, i: tl.gather(a, dim, i), lambda a, i: torch.gather(a, dim, i), [x, index], device)
    check.parity(lambda a, i: a.gather(dim, i), lambda a, i: a.gather(dim, i), [x, index], device)
    check.grad(lambda a, i: tl.gather(a, dim, i), [x, index], device)


def test_gather_3d_and_errors(check, device):
    x = randn(2, 3, 4)
    index = np.random.default_rng(3).integers(0, 3, size=(2, 5, 3))
    check.parity(lambda a, i: a.gather(1, i), lambda a, i: a.gather(1, i), [x, index], device)
    check.grad(lambda a, i: a.gather(-2, i), [x, index], device)
    t = tl.tensor(x, device=device)
    with pytest.raises(ValueError, match="dimensions"):
        t.gather(0, tl.tensor(np.zeros((2, 3), dtype=np.int64), device=device))
    with pytest.raises(ValueError, match="larger"):
        t.gather(0, tl.tensor(np.zeros((2, 4, 4), dtype=np.int64), device=device))


@pytest.mark.parity
@pytest.mark.parametrize("values, num_classes", [
    ([0, 2, 1, 2], -1), ([0, 2, 1, 2], 5), ([[3, 0], [1, 1]], -1), ([[3, 0], [1, 1]], 4), (0, 3),
])
def test_one_hot(device, values, num_classes):
    """int64 one-hot codes, with the class count given or inferred (max + 1), as PyTorch."""
    values = np.array(values, dtype=np.int64)
    out = F.one_hot(tl.tensor(values, device=device), num_classes)
    assert_same(out, torch.nn.functional.one_hot(torch.from_numpy(values), num_classes))
    assert out.dtype == tl.int64 and not out.requires_grad
    assert_same(tl.one_hot(tl.tensor(values, device=device), num_classes=num_classes),
                torch.nn.functional.one_hot(torch.from_numpy(values), num_classes=num_classes))


def test_one_hot_errors(device):
    with pytest.raises(ValueError, match="class values"):
        tl.one_hot(tl.tensor([0, 3], device=device), 3)
    with pytest.raises(ValueError, match="class values"):
        tl.one_hot(tl.tensor([0, -1], device=device), 3)
    with pytest.raises(TypeError, match="integer"):
        tl.one_hot(tl.tensor([0.0, 1.0], device=device), 3)


# -- comparisons and logical ops -------------------------------------------------------------------
COMPARISONS = ["eq", "ne", "lt", "le", "gt", "ge"]
OPERATORS = {"eq": "__eq__", "ne": "__ne__", "lt": "__lt__", "le": "__le__", "gt": "__gt__", "ge": "__ge__"}


@pytest.mark.parity
@pytest.mark.parametrize("name", COMPARISONS)
def test_comparisons(device, name):
    """Tensor-tensor (broadcasting) and tensor-scalar comparisons: bool results outside the graph."""
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 1.0])
    ta, tb = tl.tensor(a, device=device, requires_grad=True), tl.tensor(b, device=device)
    pa, pb = torch.from_numpy(a), torch.from_numpy(b)
    results = [
        (getattr(tl, name)(ta, tb), getattr(torch, name)(pa, pb)),
        (getattr(ta, name)(2.0), getattr(pa, name)(2.0)),
        (getattr(tl, name)(ta, 2), getattr(torch, name)(pa, 2)),
        (getattr(ta, OPERATORS[name])(tb), getattr(pa, OPERATORS[name])(pb)),
        (getattr(tl, name)(tl.tensor([1, 5, 3], device=device), 3), getattr(torch, name)(torch.tensor([1, 5, 3]), 3)),
    ]
    for ours, theirs in results:
        assert_same(ours, theirs)
        assert ours.dtype == tl.bool and not ours.requires_grad


@pytest.mark.parity
def test_comparison_operators(device):
    a = np.array([0.5, 1.0, -2.0, 1.0])
    t, p = tl.tensor(a, device=device), torch.from_numpy(a)
    assert_same(t == 1.0, p == 1.0)
    assert_same(t != 1.0, p != 1.0)
    assert_same(t < 0.7, p < 0.7)
    assert_same(t <= 0.5, p <= 0.5)
    assert_same(t > -2, p > -2)
    assert_same(t >= 1.0, p >= 1.0)
    assert_same(t == t, p == p)
    assert_same(1.0 == t, 1.0 == p)  # reflected: float.__eq__ defers to Tensor.__eq__
    assert_same(0.7 > t, 0.7 > p)


@pytest.mark.parity
def test_logical_ops(device):
    a = np.array([[True, False, True, False]])
    b = np.array([[True], [False]])
    ta, tb = tl.tensor(a, device=device), tl.tensor(b, device=device)
    pa, pb = torch.from_numpy(a), torch.from_numpy(b)
    assert_same(tl.logical_and(ta, tb), torch.logical_and(pa, pb))
    assert_same(tl.logical_or(ta, tb), torch.logical_or(pa, pb))
    assert_same(tl.logical_not(ta), torch.logical_not(pa))
    assert_same(ta.logical_and(tb), pa.logical_and(pb))
    assert_same(ta & tb, pa & pb)
    assert_same(ta | tb, pa | pb)
    assert_same(~ta, ~pa)
    x = np.array([0.0, 1.5, -2.0])
    tx, px = tl.tensor(x, device=device), torch.from_numpy(x)
    assert_same(tl.logical_not(tx), torch.logical_not(px))  # nonzero numbers are true
    assert_same(tl.logical_and(tx > -1, tx < 1), torch.logical_and(px > -1, px < 1))


def test_comparison_masks_select(check, device):
    """A comparison result works as a mask for indexing and masked_fill, keeping gradients right."""
    x = randn(3, 4)
    check.parity(lambda a: a[a > 0], lambda a: a[a > 0], [x], device)
    check.parity(lambda a: a.masked_fill(a < 0, 0.0), lambda a: a.masked_fill(a < 0, 0.0), [x], device)
    check.grad(lambda a: a[(a > 0) & (a < 1)], [x], device)


@pytest.mark.parametrize(("shape", "target"), [((), (4,)), ((), (3, 2)), ((1, 1), (4, 4)), ((3, 1), (3, 5)),
                                               ((1, 5), (2, 3, 5)), ((2, 3), (2, 3)), ((5,), (4, 5))])
def test_cpu_broadcast_to_is_numpys_read_only_view(shape, target) -> None:
    """The CPU backend's fast broadcast (reductions' backward) gives what numpy.broadcast_to gives."""
    from tensorlite.backends.numpy_backend import NumpyBackend

    backend = NumpyBackend()
    for x in (np.asarray(randn(*shape), dtype=np.float32), np.asarray(randn(*shape[::-1])).T):  # and non-contiguous
        got, expected = backend.broadcast_to(x, target), np.broadcast_to(x, target)
        assert got.shape == expected.shape and got.strides == expected.strides
        np.testing.assert_array_equal(got, expected)
        assert not got.flags.writeable and np.shares_memory(got, x)
    with pytest.raises(ValueError):
        backend.broadcast_to(np.ones(3), (4,))


@pytest.mark.parametrize(("shape", "target"), [((), (4, 4)), ((4, 1), (4, 4)), ((1, 5), (2, 3, 5)), ((), (64, 64)),
                                               ((), (64, 65)), ((1, 1), (128, 128))])
def test_cpu_reduction_gradients_are_filled_when_small_and_views_when_large(shape, target) -> None:
    """A sum's or mean's gradient spread back over its input: small ones are filled in (NumPy reads them faster than
    a view with zero strides), large ones stay read-only views; both hold what numpy.broadcast_to gives."""
    from tensorlite.backends.numpy_backend import SMALL_GRADIENT, NumpyBackend

    backend, g = NumpyBackend(), np.asarray(randn(*shape), dtype=np.float32)
    got = backend.broadcast_gradient(g, target)
    np.testing.assert_array_equal(got, np.broadcast_to(g, target))
    assert got.shape == target and got.dtype == g.dtype
    if np.prod(target) <= SMALL_GRADIENT:
        assert got.flags.c_contiguous and not np.shares_memory(got, g)
    else:
        assert not got.flags.writeable and np.shares_memory(got, g)
    with pytest.raises(ValueError):
        backend.broadcast_gradient(np.ones(3, np.float32), (4,))
