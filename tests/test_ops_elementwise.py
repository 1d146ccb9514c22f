"""Elementwise and matrix-product ops: float64 gradchecks and float32 PyTorch parity on every backend.

Binary ops are checked on hypothesis-drawn pairs of broadcasting shapes; every op is checked in each
form PyTorch offers (``tl.fn(x)``, ``x.fn()``, ``tl.nn.functional.fn(x)``, operators).
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes
from oracle import check_grad, check_parity, torch

import tensorlite as tl

F = tl.nn.functional
FEW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Two (or three) shapes of rank 0-3, sides 1-3, that broadcast together: at most 27 elements each.
pairs = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3)
triples = mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, min_side=1, max_side=3)
shapes = array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
seeds = st.integers(0, 2**16)


def values(rng: np.random.Generator, shape: tuple[int, ...], kind: str = "any",
           kinks: tuple[float, ...] = ()) -> np.ndarray:
    """float64 test values of one ``kind``, kept at least 0.1 away from each point in ``kinks``.

    kinds: "any" (normal), "positive" (0.5..2), "nonzero" (|x| in 0.5..2), and "lattice" /
    "offset_lattice", two interleaved grids whose values always differ by at least 0.1 (no ties).
    """
    if kind == "any":
        x = 1.5 * rng.standard_normal(shape)
    elif kind == "positive":
        x = rng.uniform(0.5, 2.0, shape)
    elif kind == "nonzero":
        x = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)
    elif kind in ("lattice", "offset_lattice"):
        x = rng.integers(-3, 3, shape) + rng.uniform(0.0, 0.4, shape) + (0.5 if kind == "offset_lattice" else 0.0)
    else:
        raise ValueError(kind)
    x = np.array(x, dtype=np.float64)
    for k in kinks:
        x[np.abs(x - k) < 0.1] += 0.25
    return x


def host(t: tl.Tensor) -> np.ndarray:
    return np.asarray(t.numpy())


# -- binary arithmetic ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Binary:
    name: str
    symbol: Callable | None  # the Python operator, if there is one
    kinds: tuple[str, str] = ("any", "any")

    def ours(self, form: str) -> Callable:
        if form == "function":
            return getattr(tl, self.name)
        if form == "method":
            return lambda a, b: getattr(a, self.name)(b)
        return self.symbol

    def theirs(self, a, b):
        return getattr(torch, self.name)(a, b)


BINARY = [
    Binary("add", operator.add),
    Binary("sub", operator.sub),
    Binary("mul", operator.mul),
    Binary("div", operator.truediv, ("any", "nonzero")),
    Binary("pow", operator.pow, ("positive", "any")),
    Binary("maximum", None, ("lattice", "offset_lattice")),
    Binary("minimum", None, ("lattice", "offset_lattice")),
]
BINARY_FORMS = [(op, form) for op in BINARY for form in ("function", "method", "operator")
                if form != "operator" or op.symbol is not None]


def binary_inputs(op: Binary, shape_pair, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [values(rng, shape, kind) for shape, kind in zip(shape_pair, op.kinds)]


@pytest.mark.parametrize("op", BINARY, ids=lambda op: op.name)
@FEW
@given(shape_pair=pairs, seed=seeds)
def test_binary_gradcheck(op: Binary, device: str, shape_pair, seed: int) -> None:
    """float64 finite differences agree with backward for both (broadcast) inputs."""
    check_grad(op.ours("function"), binary_inputs(op, shape_pair.input_shapes, seed), device)


@pytest.mark.parity
@pytest.mark.parametrize(("op", "form"), BINARY_FORMS, ids=lambda v: v if isinstance(v, str) else v.name)
@FEW
@given(shape_pair=pairs, seed=seeds)
def test_binary_parity(op: Binary, form: str, device: str, shape_pair, seed: int) -> None:
    """Function, method and operator forms match PyTorch: values and both gradients."""
    arrays = binary_inputs(op, shape_pair.input_shapes, seed)
    check_parity(op.ours(form), op.theirs, arrays, device)


@pytest.mark.parametrize("op", BINARY, ids=lambda op: op.name)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@FEW
@given(shape_pair=pairs, seed=seeds)
def test_binary_grads_have_input_shape_and_dtype(op: Binary, dtype, device: str, shape_pair, seed: int) -> None:
    """The output takes the broadcast shape; each gradient comes back in its own input's shape and dtype."""
    a, b = (tl.tensor(v, dtype=dtype, device=device, requires_grad=True)
            for v in binary_inputs(op, shape_pair.input_shapes, seed))
    out = op.ours("function")(a, b)
    assert out.shape == shape_pair.result_shape
    assert out.dtype == dtype
    out.sum().backward()
    for t in (a, b):
        assert t.grad is not None
        assert t.grad.shape == t.shape
        assert t.grad.dtype == dtype


# -- scalars on either side (reflected operators) --------------------------------------------------

SCALAR_CASES = {  # each works unchanged on tensorlite and PyTorch tensors
    "x + 3": (lambda x: x + 3, "any"),
    "3 + x": (lambda x: 3 + x, "any"),
    "x - 2.5": (lambda x: x - 2.5, "any"),
    "2 - x": (lambda x: 2 - x, "any"),
    "x * 2": (lambda x: x * 2, "any"),
    "2 * x": (lambda x: 2 * x, "any"),
    "x / 4": (lambda x: x / 4, "any"),
    "2 / x": (lambda x: 2 / x, "nonzero"),
    "x ** 2": (lambda x: x**2, "any"),
    "x ** 3": (lambda x: x**3, "any"),
    "x ** 0.5": (lambda x: x**0.5, "positive"),
    "x ** -1.5": (lambda x: x**-1.5, "positive"),
    "2 ** x": (lambda x: 2**x, "any"),
    "0.5 ** x": (lambda x: 0.5**x, "any"),
    "-x": (lambda x: -x, "any"),
    "x.neg()": (lambda x: x.neg(), "any"),
    "add(x, 1.5)": (lambda x: x.add(1.5), "any"),
    "sub(x, 1.5)": (lambda x: x.sub(1.5), "any"),
    "mul(x, -3)": (lambda x: x.mul(-3), "any"),
    "div(x, 0.5)": (lambda x: x.div(0.5), "any"),
    "pow(x, 2)": (lambda x: x.pow(2), "any"),
}


SCALAR_FUNCTIONS = {  # tl.<fn> with a scalar argument: (tensorlite, PyTorch)
    "tl.add(2, x)": (lambda x: tl.add(2, x), lambda x: torch.add(x, 2)),
    "tl.sub(x, 2)": (lambda x: tl.sub(x, 2), lambda x: torch.sub(x, 2)),
    "tl.mul(x, 2)": (lambda x: tl.mul(x, 2), lambda x: torch.mul(x, 2)),
    "tl.div(x, 2)": (lambda x: tl.div(x, 2), lambda x: torch.div(x, 2)),
    "tl.pow(x, 2)": (lambda x: tl.pow(x, 2), lambda x: torch.pow(x, 2)),
    "tl.pow(2, x)": (lambda x: tl.pow(2, x), lambda x: torch.pow(2, x)),
    "tl.neg(x)": (tl.neg, lambda x: torch.neg(x)),
    # torch.maximum wants two tensors; with a scalar it is clamp (inputs stay off the tie at 0.5)
    "tl.maximum(x, 0.5)": (lambda x: tl.maximum(x, 0.5), lambda x: torch.clamp(x, min=0.5)),
    "tl.minimum(x, 0.5)": (lambda x: tl.minimum(x, 0.5), lambda x: torch.clamp(x, max=0.5)),
}


@pytest.mark.parametrize("case", list(SCALAR_CASES))
@FEW
@given(shape=shapes, seed=seeds)
def test_scalar_operand(check, case: str, device: str, shape, seed: int) -> None:
    """Tensor-scalar and scalar-tensor forms: gradcheck and PyTorch parity (same expression on both)."""
    fn, kind = SCALAR_CASES[case]
    x = values(np.random.default_rng(seed), shape, kind)
    check.grad(fn, [x], device)
    check.parity(fn, fn, [x], device)


@pytest.mark.parametrize("case", list(SCALAR_FUNCTIONS))
def test_scalar_operand_functions(check, case: str, device: str) -> None:
    """tl.add/sub/mul/div/pow/neg/maximum/minimum with a Python scalar argument."""
    ours, theirs = SCALAR_FUNCTIONS[case]
    x = values(np.random.default_rng(0), (2, 3), "any", kinks=(0.5,))
    check.grad(ours, [x], device)
    check.parity(ours, theirs, [x], device)


def test_pow_tensor_exponent_with_scalar_base_gradient(device: str) -> None:
    """d(c**x)/dx = c**x log c, and d(x**y)/dy = x**y log x (checked against the formula)."""
    x = tl.tensor([0.5, 1.0, 2.0], dtype=tl.float64, device=device, requires_grad=True)
    (3.0**x).sum().backward()
    np.testing.assert_allclose(host(x.grad), 3.0 ** np.array([0.5, 1.0, 2.0]) * np.log(3.0), rtol=1e-12)
    base = tl.tensor([0.5, 2.0, 4.0], dtype=tl.float64, device=device)
    y = tl.tensor([1.5, 2.0, -1.0], dtype=tl.float64, device=device, requires_grad=True)
    (base**y).sum().backward()
    expected = np.array([0.5, 2.0, 4.0]) ** np.array([1.5, 2.0, -1.0]) * np.log([0.5, 2.0, 4.0])
    np.testing.assert_allclose(host(y.grad), expected, rtol=1e-12)


# -- maximum / minimum at ties ---------------------------------------------------------------------

TIES = [  # (a, b): exact ties, also across broadcasting
    ([1.0, 2.0, 3.0, -1.0], [1.0, 0.0, 3.0, 5.0]),
    ([[1.0, 2.0], [3.0, 2.0]], [2.0, 2.0]),
    ([[0.5], [1.0]], [[0.5, 1.0, 0.5]]),
    (2.0, [[2.0, 1.0], [2.0, 3.0]]),
]


@pytest.mark.parity
@pytest.mark.parametrize("name", ["maximum", "minimum"])
@pytest.mark.parametrize(("a", "b"), TIES)
def test_max_min_ties_split_gradient_like_pytorch(name: str, a, b, device: str) -> None:
    """At a tie the gradient is split evenly between the inputs, as in PyTorch."""
    arrays = [np.array(a), np.array(b)]
    check_parity(getattr(tl, name), getattr(torch, name), arrays, device)


def test_maximum_tie_gradient_is_half(device: str) -> None:
    """Without the oracle: at an exact tie each side gets half of the upstream gradient."""
    a = tl.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    b = tl.tensor([1.0, 5.0, 0.0], device=device, requires_grad=True)
    tl.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(host(a.grad), [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(host(b.grad), [0.5, 1.0, 0.0])


# -- matmul ----------------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3, 4), (4, 2)),
    ((2, 3, 4), (2, 4, 2)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((1, 3, 2), (4, 2, 3)),
    ((3, 2), (2, 2, 3)),
    ((4,), (4, 2)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 3)),
]
MATMUL_FORMS = {
    "tl.matmul": tl.matmul,
    "method": lambda a, b: a.matmul(b),
    "@": operator.matmul,
}


def shape_name(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def shape_id(shape_pair: tuple) -> str:
    return "@".join(map(shape_name, shape_pair))


@pytest.mark.parametrize("shape_pair", MATMUL_SHAPES, ids=shape_id)
def test_matmul_gradcheck(shape_pair, device: str) -> None:
    """Vector, matrix and batched (broadcast) products: backward matches float64 finite differences."""
    rng = np.random.default_rng(0)
    check_grad(tl.matmul, [values(rng, s) for s in shape_pair], device)


@pytest.mark.parity
@pytest.mark.parametrize("form", list(MATMUL_FORMS))
@pytest.mark.parametrize("shape_pair", MATMUL_SHAPES, ids=shape_id)
def test_matmul_parity(shape_pair, form: str, device: str) -> None:
    """Every 1-D / 2-D / batched-and-broadcast case matches torch.matmul, gradients in the inputs' shapes."""
    rng = np.random.default_rng(0)
    check_parity(MATMUL_FORMS[form], operator.matmul, [values(rng, s) for s in shape_pair], device)


@st.composite
def matmul_shapes(draw) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes for ``a @ b``: each a vector or a (batched) matrix; batch dimensions broadcast."""
    m, k, n = (draw(st.integers(1, 3)) for _ in range(3))
    batch_a, batch_b = draw(mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=2)).input_shapes
    a = (k,) if draw(st.booleans()) else (*batch_a, m, k)
    b = (k,) if draw(st.booleans()) else (*batch_b, k, n)
    return a, b


@FEW
@given(shape_pair=matmul_shapes(), seed=seeds)
def test_matmul_random_shapes(check, device: str, shape_pair, seed: int) -> None:
    """Random vector/matrix/batched combinations: gradcheck, parity, gradient shapes."""
    rng = np.random.default_rng(seed)
    arrays = [values(rng, s) for s in shape_pair]
    check.grad(tl.matmul, arrays, device)
    check.parity(operator.matmul, operator.matmul, arrays, device)
    a, b = (tl.tensor(v, dtype=tl.float32, device=device, requires_grad=True) for v in arrays)
    (a @ b).sum().backward()
    assert (a.grad.shape, b.grad.shape) == (a.shape, b.shape)
    assert a.grad.dtype == b.grad.dtype == tl.float32


# -- unary ops -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unary:
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    kind: str = "any"  # see ``values``
    kinks: tuple[float, ...] = ()  # non-differentiable points the gradcheck inputs stay away from
    forms: tuple[str, ...] = ("function", "method")  # the forms PyTorch has too
    atol: float = 1e-6  # for check_parity

    def __str__(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{self.name}({args})" if args else self.name

    def ours(self, form: str) -> Callable:
        if form == "function":
            return lambda x: getattr(tl, self.name)(x, **self.kwargs)
        if form == "method":
            return lambda x: getattr(x, self.name)(**self.kwargs)
        return lambda x: getattr(F, self.name)(x, **self.kwargs)

    def theirs(self, x):
        fn = getattr(torch, self.name, None) or getattr(torch.nn.functional, self.name)
        return fn(x, **self.kwargs)


ACTIVATION = ("function", "method", "functional")
GELU_ATOL = 5e-6  # see UNARY
NN_ONLY = ("function", "functional")  # PyTorch has these only in torch.nn.functional
UNARY = [
    Unary("neg"),
    Unary("exp"),
    Unary("log", kind="positive"),
    Unary("sqrt", kind="positive"),
    Unary("abs", kinks=(0.0,)),
    Unary("sin"),
    Unary("cos"),
    Unary("tanh", forms=ACTIVATION),
    Unary("sigmoid", forms=ACTIVATION),
    Unary("relu", kinks=(0.0,), forms=ACTIVATION),
    Unary("leaky_relu", kinks=(0.0,), forms=NN_ONLY),
    Unary("leaky_relu", {"negative_slope": 0.2}, kinks=(0.0,), forms=NN_ONLY),
    # In the tail (x < -3) gelu's 1 + erf(..) or 1 + tanh(..) cancels in float32: there both libraries are
    # ~1e-6 off the exact value, in different directions, and check_parity scales gradients by N(0, 1) weights.
    Unary("gelu", forms=NN_ONLY, atol=GELU_ATOL),
    Unary("gelu", {"approximate": "none"}, forms=NN_ONLY, atol=GELU_ATOL),
    Unary("gelu", {"approximate": "tanh"}, forms=NN_ONLY, atol=GELU_ATOL),
    Unary("softplus", forms=NN_ONLY),
    Unary("softplus", {"beta": 2.0}, forms=NN_ONLY),
    # beta * x > threshold (x > 0.5) is the linear branch; the two branches disagree at the switch point.
    Unary("softplus", {"beta": 2.0, "threshold": 1.0}, kinks=(0.5,), forms=NN_ONLY),
    Unary("clamp", {"min": -0.5}, kinks=(-0.5,)),
    Unary("clamp", {"max": 0.5}, kinks=(0.5,)),
    Unary("clamp", {"min": -0.5, "max": 0.5}, kinks=(-0.5, 0.5)),
    Unary("clip", {"min": -0.5}, kinks=(-0.5,)),
    Unary("clip", {"max": 0.5}, kinks=(0.5,)),
    Unary("clip", {"min": -0.5, "max": 0.5}, kinks=(-0.5, 0.5)),
]
UNARY_FORMS = [(op, form) for op in UNARY for form in op.forms]


def unary_input(op: Unary, shape, seed: int) -> np.ndarray:
    return values(np.random.default_rng(seed), shape, op.kind, op.kinks)


@pytest.mark.parametrize("op", UNARY, ids=str)
@FEW
@given(shape=shapes, seed=seeds)
def test_unary_gradcheck(op: Unary, device: str, shape, seed: int) -> None:
    """float64 finite differences agree with backward, away from kinks."""
    check_grad(op.ours("function"), [unary_input(op, shape, seed)], device)


@pytest.mark.parity
@pytest.mark.parametrize(("op", "form"), UNARY_FORMS, ids=str)
@FEW
@given(shape=shapes, seed=seeds)
def test_unary_parity(op: Unary, form: str, device: str, shape, seed: int) -> None:
    """tl.fn(x), x.fn() and tl.nn.functional.fn(x) each match PyTorch: value and gradient."""
    check_parity(op.ours(form), op.theirs, [unary_input(op, shape, seed)], device, atol=op.atol)


@pytest.mark.parametrize("op", UNARY, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_unary_keeps_dtype_and_shape(op: Unary, dtype, device: str) -> None:
    """float32 in gives float32 out and a float32 gradient (float64 likewise)."""
    x = tl.tensor(unary_input(op, (2, 3), 0), dtype=dtype, device=device, requires_grad=True)
    out = op.ours("function")(x)
    assert (out.shape, out.dtype) == (x.shape, dtype)
    out.sum().backward()
    assert (x.grad.shape, x.grad.dtype) == (x.shape, dtype)


EXTREMES = [-1000.0, -100.0, -50.0, -20.5, -1e-3, 0.0, 1e-3, 20.5, 50.0, 100.0, 1000.0]
EXTREME_OPS = [
    Unary("sigmoid"),
    Unary("tanh"),
    Unary("softplus"),
    Unary("softplus", {"beta": 2.0, "threshold": 5.0}),
    Unary("gelu", atol=GELU_ATOL),
    Unary("gelu", {"approximate": "tanh"}, atol=GELU_ATOL),
    Unary("relu"),
    Unary("leaky_relu"),
]


@pytest.mark.parity
@pytest.mark.parametrize("op", EXTREME_OPS, ids=str)
def test_large_inputs_do_not_overflow(op: Unary, device: str) -> None:
    """Huge |x| (sigmoid(±50), softplus past its threshold ...) gives finite values, no warnings, PyTorch's results."""
    x = np.array(EXTREMES)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        t = tl.tensor(x, device=device, requires_grad=True)
        out = op.ours("function")(t)
        out.sum().backward()
        assert np.isfinite(host(out)).all() and np.isfinite(host(t.grad)).all()
        check_parity(op.ours("function"), op.theirs, [x], device, atol=op.atol)


def test_sigmoid_saturates_exactly(device: str) -> None:
    """sigmoid(50) rounds to 1 in float32; sigmoid(-50) keeps its tiny value instead of 0 or NaN."""
    out = host(tl.sigmoid(tl.tensor([-50.0, 50.0], device=device)))
    assert out[1] == 1.0
    np.testing.assert_allclose(out[0], np.exp(-50.0), rtol=1e-6)


def test_softplus_is_linear_beyond_threshold(device: str) -> None:
    """Above ``threshold / beta`` softplus returns x itself, with gradient exactly 1."""
    x = tl.tensor([21.0, 30.0, 1e4], device=device, requires_grad=True)
    out = tl.softplus(x)
    out.sum().backward()
    np.testing.assert_array_equal(host(out), [21.0, 30.0, 1e4])
    np.testing.assert_array_equal(host(x.grad), [1.0, 1.0, 1.0])
    y = tl.tensor([0.6, 3.0], device=device)
    np.testing.assert_array_equal(host(F.softplus(y, beta=2.0, threshold=1.0)), host(y))


@pytest.mark.parity
@pytest.mark.parametrize(("low", "high"), [(-0.5, None), (None, 0.5), (-0.5, 0.5)])
def test_clamp_gradient_at_the_bounds_like_pytorch(low, high, device: str) -> None:
    """Values exactly on a bound still pass the gradient (the range is closed), as in PyTorch."""
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    check_parity(lambda t: t.clamp(low, high), lambda t: t.clamp(low, high), [x], device)


def test_clamp_needs_a_bound(device: str) -> None:
    with pytest.raises(ValueError, match="at least one"):
        tl.clamp(tl.ones(3, device=device))


def test_gelu_rejects_unknown_approximation(device: str) -> None:
    with pytest.raises(ValueError, match="approximate"):
        tl.gelu(tl.ones(3, device=device), approximate="fast")


# -- where -----------------------------------------------------------------------------------------


def condition(rng: np.random.Generator, shape) -> np.ndarray:
    return np.asarray(rng.random(shape) < 0.5)


@FEW
@given(shape_triple=triples, seed=seeds)
def test_where_broadcasting(check, device: str, shape_triple, seed: int) -> None:
    """Condition, input and other broadcast together; gradients go to the chosen side only."""
    rng = np.random.default_rng(seed)
    c_shape, a_shape, b_shape = shape_triple.input_shapes
    arrays = [condition(rng, c_shape), values(rng, a_shape), values(rng, b_shape)]
    check.grad(tl.where, arrays, device)
    check.parity(tl.where, lambda *a: torch.where(*a), arrays, device)


WHERE_SCALAR_CASES = {
    "tensor/scalar": lambda where, c, x: where(c, x, 0.0),
    "scalar/tensor": lambda where, c, x: where(c, 1.5, x),
    "tensor/tensor": lambda where, c, x: where(c, x, -x),
}


@pytest.mark.parametrize("case", list(WHERE_SCALAR_CASES))
@pytest.mark.parametrize("c_shape", [(2, 3), (3,), (2, 1), ()], ids=shape_name)
def test_where_with_scalars(check, case: str, c_shape, device: str) -> None:
    """A Python scalar on either side of ``where``, with a condition broadcast against the tensor."""
    rng = np.random.default_rng(0)
    arrays = [condition(rng, c_shape), values(rng, (2, 3))]
    fn = WHERE_SCALAR_CASES[case]
    check.grad(lambda c, x: fn(tl.where, c, x), arrays, device)
    check.parity(lambda c, x: fn(tl.where, c, x), lambda c, x: fn(torch.where, c, x), arrays, device)


def test_where_keeps_float32_with_python_scalar(device: str) -> None:
    x = tl.tensor([1.0, -2.0], device=device, requires_grad=True)
    out = tl.where(x > 0, x, 0.0)
    assert out.dtype == tl.float32
    out.sum().backward()
    assert x.grad.dtype == tl.float32
    np.testing.assert_array_equal(host(x.grad), [1.0, 0.0])


def test_where_condition_must_be_bool(device: str) -> None:
    x = tl.ones(3, device=device)
    with pytest.raises(TypeError, match="bool"):
        tl.where(x, x, x)


# -- dtype preservation with scalars ---------------------------------------------------------------

FLOAT32_CASES = {
    "x * 2.0": lambda x: x * 2.0,
    "2.0 * x": lambda x: 2.0 * x,
    "x + 1": lambda x: x + 1,
    "1 - x": lambda x: 1 - x,
    "x / 3.0": lambda x: x / 3.0,
    "3 / x": lambda x: 3 / x,
    "x ** 2": lambda x: x**2,
    "x ** 0.5": lambda x: x**0.5,
    "2 ** x": lambda x: 2**x,
    "2.5 ** x": lambda x: 2.5**x,
    "x * True": lambda x: x * True,
    "x.clamp(0, 1.0)": lambda x: x.clamp(0, 1.0),
    "maximum(x, 0.5)": lambda x: tl.maximum(x, 0.5),
    "minimum(x, 0.5)": lambda x: tl.minimum(x, 0.5),
    "where(x > 1, x, 0.0)": lambda x: tl.where(x > 1, x, 0.0),
    "leaky_relu(x, 0.2)": lambda x: F.leaky_relu(x, 0.2),
    "softplus(x, beta=2.0)": lambda x: F.softplus(x, beta=2.0),
    # NumPy scalars act like Python numbers, as in PyTorch (``x / np.sqrt(d)`` must not upcast)
    "x * np.float64(2)": lambda x: x * np.float64(2.0),
    "np.float64(2) * x": lambda x: np.float64(2.0) * x,
    "x / np.sqrt(4.0)": lambda x: x / np.sqrt(4.0),
    "x + np.int64(1)": lambda x: x + np.int64(1),
    "x ** np.float64(2)": lambda x: x ** np.float64(2.0),
    "maximum(x, np.float64(0.5))": lambda x: tl.maximum(x, np.float64(0.5)),
    "x.clamp(np.float64(0.5))": lambda x: x.clamp(np.float64(0.5)),
    "where(x > 1, x, np.float64(0))": lambda x: tl.where(x > 1, x, np.float64(0.0)),
}


@pytest.mark.parametrize("case", list(FLOAT32_CASES))
def test_float32_stays_float32_with_scalars(case: str, device: str) -> None:
    """A float32 tensor combined with a Python or NumPy scalar gives float32 values and gradients."""
    x = tl.tensor([0.5, 1.5, 2.0], device=device, requires_grad=True)
    out = FLOAT32_CASES[case](x)
    assert out.dtype == tl.float32, f"{case} gave {out.dtype}"
    out.sum().backward()
    assert x.grad.dtype == tl.float32
