"""Error messages users can act on: each names the op, the shapes or dtypes involved, and what is wrong."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

import tensorlite as tl


def mentions(*fragments: str) -> str:
    """A ``match=`` pattern requiring every fragment, literally and in any order."""
    return "(?s)" + "".join(f"(?=.*{re.escape(fragment)})" for fragment in fragments)


def ones(*shape: int, device: str, **kwargs) -> tl.Tensor:
    return tl.ones(*shape, device=device, **kwargs)


# -- shapes --------------------------------------------------------------------------------------------

# (id, the failing call on a device, exception type, fragments the message must contain)
SHAPE_ERRORS: list[tuple[str, Callable[[str], object], type[Exception], tuple[str, ...]]] = [
    ("matmul-inner", lambda d: ones(64, 784, device=d) @ ones(128, 784, device=d), ValueError,
     ("matmul", "(64, 784)", "(128, 784)", "inner dimensions 784 and 128 differ")),
    ("matmul-vector", lambda d: ones(3, device=d) @ ones(4, 2, device=d), ValueError,
     ("matmul", "(3,)", "(4, 2)", "inner dimensions 3 and 4 differ")),
    ("matmul-0d", lambda d: tl.tensor(2.0, device=d) @ ones(2, device=d), ValueError,
     ("matmul", "at least 1 dimension", "()", "(2,)")),
    ("matmul-batch", lambda d: ones(2, 3, 4, 5, device=d) @ ones(3, 3, 5, 2, device=d), ValueError,
     ("matmul", "(2, 3, 4, 5)", "(3, 3, 5, 2)", "batch dimensions", "dimension -2 has sizes 2 vs 3")),
    ("add-broadcast", lambda d: ones(3, 4, device=d) + ones(5, device=d), ValueError,
     ("add", "(3, 4)", "(5,)", "cannot be broadcast", "dimension -1 has sizes 4 vs 5")),
    ("mul-broadcast", lambda d: ones(2, 3, 4, device=d) * ones(5, 4, device=d), ValueError,
     ("mul", "(2, 3, 4)", "(5, 4)", "dimension -2 has sizes 3 vs 5")),
    ("where-broadcast", lambda d: tl.where(ones(2, 3, device=d) > 0, ones(2, 3, device=d), ones(4, 1, device=d)),
     ValueError, ("where", "(2, 3)", "(4, 1)", "dimension -2 has sizes 2 vs 4")),
    ("compare-broadcast", lambda d: ones(3, device=d) < ones(2, device=d), ValueError,
     ("(3,)", "(2,)", "cannot be broadcast")),
    ("reshape", lambda d: ones(2, 3, device=d).reshape(4, 2), ValueError,
     ("reshape", "(2, 3)", "6 elements", "(4, 2)")),
    ("view", lambda d: ones(2, 3, device=d).view(-1, 4), ValueError, ("reshape", "(2, 3)", "(-1, 4)")),
    ("cat", lambda d: tl.cat([ones(2, 3, device=d), ones(2, 3, device=d), ones(2, 4, device=d)]), ValueError,
     ("cat", "tensor 0 has shape (2, 3)", "tensor 2 has shape (2, 4)", "concatenated dimension 0")),
    ("cat-ndim", lambda d: tl.cat([ones(2, 3, device=d), ones(3, device=d)], dim=1), ValueError,
     ("cat", "tensor 1 has shape (3,)")),
    ("stack", lambda d: tl.stack([ones(2, device=d), ones(3, device=d)]), ValueError,
     ("stack", "(2,)", "tensor 1 has shape (3,)")),
    ("expand", lambda d: ones(2, 3, device=d).expand(4, 3), ValueError, ("expand", "(2, 3)", "(4, 3)")),
    ("permute", lambda d: ones(2, 3, device=d).permute(0, 0), ValueError, ("permute", "(0, 0)", "(2, 3)")),
]


@pytest.mark.parametrize(("make", "exc", "fragments"), [case[1:] for case in SHAPE_ERRORS],
                         ids=[case[0] for case in SHAPE_ERRORS])
def test_shape_errors(device: str, make, exc, fragments) -> None:
    with pytest.raises(exc, match=mentions(*fragments)):
        make(device)


# -- dimensions --------------------------------------------------------------------------------------

DIM_ERRORS = [
    ("sum", lambda x: x.sum(dim=2), "2", "-2 to 1"),
    ("mean", lambda x: x.mean(dim=-3), "-3", "-2 to 1"),
    ("max", lambda x: x.max(dim=2), "2", "-2 to 1"),
    ("argmax", lambda x: x.argmax(dim=2), "2", "-2 to 1"),
    ("softmax", lambda x: x.softmax(dim=5), "5", "-2 to 1"),
    ("log_softmax", lambda x: x.log_softmax(dim=2), "2", "-2 to 1"),
    ("logsumexp", lambda x: x.logsumexp(dim=2), "2", "-2 to 1"),
    ("var", lambda x: x.var(dim=2), "2", "-2 to 1"),
    ("cat", lambda x: tl.cat([x, x], dim=2), "2", "-2 to 1"),
    ("stack", lambda x: tl.stack([x, x], dim=4), "4", "-3 to 2"),
    ("squeeze", lambda x: x.squeeze(2), "2", "-2 to 1"),
    ("unsqueeze", lambda x: x.unsqueeze(4), "4", "-3 to 2"),
    ("transpose", lambda x: x.transpose(0, 2), "2", "-2 to 1"),
    ("flatten", lambda x: x.flatten(2), "2", "-2 to 1"),
    ("split", lambda x: x.split(1, dim=2), "2", "-2 to 1"),
    ("gather", lambda x: x.gather(-3, tl.zeros(2, 3, dtype=tl.int64, device=x.device)), "-3", "-2 to 1"),
]


@pytest.mark.parametrize(("op", "call", "dim", "valid"), DIM_ERRORS, ids=[case[0] for case in DIM_ERRORS])
def test_dim_out_of_range(device: str, op: str, call, dim: str, valid: str) -> None:
    """The message names the op, the bad dimension and the valid range."""
    x = ones(2, 3, device=device)
    with pytest.raises(IndexError, match=mentions(f"{op}: dimension {dim} is out of range", f"(expected {valid})")):
        call(x)


# -- devices -------------------------------------------------------------------------------------------

DEVICE_ERRORS = [
    ("add", lambda a, b: a + b),
    ("matmul", lambda a, b: a @ b.reshape(2, 1)),
    ("where", lambda a, b: tl.where(a > 0, a, b)),
    ("cat", lambda a, b: tl.cat([a, b])),
]


@pytest.mark.parametrize(("op", "call"), DEVICE_ERRORS, ids=[case[0] for case in DEVICE_ERRORS])
@pytest.mark.parametrize("order", [("cpu", "sim"), ("sim", "cpu")], ids=["cpu-sim", "sim-cpu"])
def test_mixing_devices_names_both(op: str, call, order: tuple[str, str]) -> None:
    a, b = (tl.ones(2, device=d) for d in order)
    first, second = ("cpu", "sim:0") if order[0] == "cpu" else ("sim:0", "cpu")
    with pytest.raises(RuntimeError, match=mentions(op, "Expected all tensors to be on the same device, but found at "
                                                    f"least two devices, {first} and {second}!")):
        call(a, b)


def test_indexing_with_index_on_another_device() -> None:
    with pytest.raises(RuntimeError, match=mentions("index (the index, the tensor)", "two devices, sim:0 and cpu")):
        tl.ones(3)[tl.tensor([0, 1], device="sim")]


# -- autograd ------------------------------------------------------------------------------------------


def test_backward_on_non_scalar_needs_gradient(device: str) -> None:
    y = ones(2, 3, device=device, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=mentions("backward", "one-element", "shape (2, 3)", "gradient=")):
        y.backward()


def test_backward_without_requires_grad(device: str) -> None:
    y = ones(2, device=device) * 2
    with pytest.raises(RuntimeError, match=mentions("backward", "does not require grad")):
        y.sum().backward()
    x = ones(2, device=device, requires_grad=True)
    with tl.no_grad():
        z = (x * 2).sum()
    with pytest.raises(RuntimeError, match=mentions("does not require grad", "no_grad")):
        z.backward()


def test_backward_with_gradient_of_wrong_shape(device: str) -> None:
    y = ones(2, device=device, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=mentions("backward", "gradient has shape (3,)", "expected (2,)")):
        y.backward(ones(3, device=device))


# -- dtypes --------------------------------------------------------------------------------------------

DTYPE_ERRORS = [
    ("index-float", lambda d: ones(3, device=d)[tl.tensor([0.0, 1.0], device=d)], IndexError,
     ("index", "indices must be integer", "float32")),
    ("index-float-list", lambda d: ones(3, device=d)[[0.5]], IndexError, ("indices must be integer", "float64")),
    ("gather-float", lambda d: ones(2, 2, device=d).gather(0, tl.tensor([[0.0, 1.0]], device=d)), IndexError,
     ("gather", "indices must be integer", "float32")),
    ("one_hot-float", lambda d: tl.one_hot(tl.tensor([1.0, 0.0], device=d)), TypeError,
     ("one_hot", "integer tensor", "float32")),
    ("one_hot-range", lambda d: tl.one_hot(tl.tensor([0, 3], device=d), num_classes=3), ValueError,
     ("one_hot", "[0, 3)", "from 0 to 3")),
    ("where-condition", lambda d: tl.where(ones(2, device=d), ones(2, device=d), ones(2, device=d)), TypeError,
     ("where", "condition must be a bool tensor", "float32")),
    ("where-int-condition", lambda d: tl.where(tl.tensor([1, 0], device=d), 1.0, 0.0), TypeError,
     ("where", "bool", "int64")),
    ("masked_fill-mask", lambda d: ones(2, device=d).masked_fill(tl.tensor([1, 0], device=d), 0.0), TypeError,
     ("masked_fill", "mask must be a bool tensor", "int64")),
    ("tensor-complex", lambda d: tl.tensor([1.0], dtype="complex64", device=d), TypeError,
     ("unsupported dtype 'complex64'", "float32", "int64", "bool")),
    ("zeros-complex", lambda d: tl.zeros(2, dtype="complex128", device=d), TypeError,
     ("unsupported dtype 'complex128'",)),
    ("requires-grad-int", lambda d: tl.tensor([1, 2], device=d, requires_grad=True), RuntimeError,
     ("requires_grad", "floating-point", "int64")),
    ("mean-int", lambda d: tl.tensor([1, 2], device=d).mean(), TypeError, ("mean", "floating-point", "int64")),
]


@pytest.mark.parametrize(("make", "exc", "fragments"), [case[1:] for case in DTYPE_ERRORS],
                         ids=[case[0] for case in DTYPE_ERRORS])
def test_dtype_errors(device: str, make, exc, fragments) -> None:
    with pytest.raises(exc, match=mentions(*fragments)):
        make(device)


# -- misc ------------------------------------------------------------------------------------------------


def test_in_place_assignment_on_tensor_requiring_grad(device: str) -> None:
    x = ones(2, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match=mentions("setitem", "requires grad", "no_grad")):
        x[0] = 1.0


def test_item_on_many_elements(device: str) -> None:
    with pytest.raises(ValueError, match=mentions("item", "one-element", "(3,)")):
        ones(3, device=device).item()


def test_bad_device_string() -> None:
    with pytest.raises(ValueError, match=mentions("'npu'", "'cpu'", "'cuda:N'", "'sim'")):
        tl.device("npu")
