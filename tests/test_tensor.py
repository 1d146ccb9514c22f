"""The Tensor API and tensor creation: dtypes, memory sharing, devices, conversions, DLPack, the CLI."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from oracle import torch

import tensorlite as tl


def host(t: tl.Tensor) -> np.ndarray:
    return t.detach().numpy()


def run_python(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter (so import-time state is clean) and return its stdout."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, **env}, timeout=120)
    return result.stdout.strip()


# -- tl.tensor and friends -------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "dtype"), [
    ([[1.0, 2.0], [3.0, 4.0]], tl.float32),
    ([[1, 2], [3, 4]], tl.int64),
    ([True, False], tl.bool_),
    (2.5, tl.float32),
    (7, tl.int64),
    ([1, 2.5], tl.float32),
], ids=["float", "int", "bool", "float-scalar", "int-scalar", "mixed"])
def test_tensor_from_python_data_infers_dtype(device: str, data, dtype) -> None:
    t = tl.tensor(data, device=device)
    assert t.dtype == dtype
    assert t.device == device
    np.testing.assert_array_equal(host(t), np.asarray(data, dtype=dtype))


def test_tensor_from_numpy_keeps_dtype_and_copies(device: str) -> None:
    a = np.array([1.0, 2.0], dtype=np.float64)
    t = tl.tensor(a, device=device)
    assert t.dtype == tl.float64
    a[0] = 100.0
    np.testing.assert_array_equal(host(t), [1.0, 2.0])


def test_tensor_from_tensor_copies(device: str) -> None:
    src = tl.tensor([1.0, 2.0], device=device, requires_grad=True)
    t = tl.tensor(src, dtype=tl.float64)
    assert t.dtype == tl.float64 and t.is_leaf and not t.requires_grad
    same = tl.tensor(src)
    same[0] = 5.0
    np.testing.assert_array_equal(host(src), [1.0, 2.0])


@pytest.mark.parametrize("dtype", [tl.float16, tl.float32, tl.float64, tl.int32, tl.int64, tl.uint8, tl.bool_],
                         ids=lambda d: d.name)
def test_tensor_dtype_argument(device: str, dtype) -> None:
    t = tl.tensor([0, 1], dtype=dtype, device=device)
    assert t.dtype == dtype and t.device == device


@pytest.mark.parametrize(("name", "dtype"), [("float", tl.float32), ("double", tl.float64), ("half", tl.float16),
                                             ("long", tl.int64), ("int", tl.int32), ("bool", tl.bool_),
                                             ("float64", tl.float64), (np.int32, tl.int32), (bool, tl.bool_)])
def test_dtype_names(name, dtype) -> None:
    assert tl.tensor([1], dtype=name).dtype == dtype


def test_tensor_rejects_non_numeric_data() -> None:
    with pytest.raises(TypeError, match="cannot make a tensor"):
        tl.tensor(["a", "b"])


def test_as_tensor_shares_memory_on_cpu() -> None:
    a = np.array([1.0, 2.0], dtype=np.float32)
    t = tl.as_tensor(a)
    a[0] = 9.0
    assert t[0].item() == 9.0
    copied = tl.as_tensor(a, dtype=tl.float64)  # a different dtype needs a copy
    a[1] = 7.0
    np.testing.assert_array_equal(host(copied), [9.0, 2.0])


def test_as_tensor_from_tensor_and_list(device: str) -> None:
    t = tl.tensor([1.0, 2.0], device=device)
    assert tl.as_tensor(t) is t
    assert tl.as_tensor([1, 2], device=device).dtype == tl.int64


def test_from_numpy_shares_memory() -> None:
    a = np.arange(4, dtype=np.int32)
    t = tl.from_numpy(a)
    assert t.dtype == tl.int32 and t.device == "cpu"
    t[1] = 10
    assert a[1] == 10
    a[2] = 20
    assert t[2].item() == 20
    with pytest.raises(TypeError, match="expected a numpy.ndarray"):
        tl.from_numpy([1, 2])


# -- filled, ranges, random --------------------------------------------------------------------------


@pytest.mark.parametrize(("maker", "value"), [(tl.zeros, 0.0), (tl.ones, 1.0)], ids=["zeros", "ones"])
def test_zeros_ones(device: str, maker, value: float) -> None:
    for t in (maker(2, 3, device=device), maker((2, 3), device=device), maker([2, 3], device=device)):
        assert t.shape == (2, 3) and t.dtype == tl.float32 and t.device == device
        assert (host(t) == value).all()
    assert maker(2, dtype=tl.int64, device=device).dtype == tl.int64
    assert maker(2, device=device, requires_grad=True).requires_grad


def test_empty(device: str) -> None:
    t = tl.empty(2, 3, device=device, dtype=tl.float64)
    assert t.shape == (2, 3) and t.dtype == tl.float64 and t.device == device


def test_bad_sizes_raise(device: str) -> None:
    with pytest.raises(ValueError, match="size must be non-negative integers"):
        tl.zeros(2, -1, device=device)


@pytest.mark.parametrize(("fill", "dtype"), [(3, tl.int64), (1.5, tl.float32), (True, tl.bool_)])
def test_full_infers_dtype_from_value(device: str, fill, dtype) -> None:
    t = tl.full((2, 2), fill, device=device)
    assert t.dtype == dtype and (host(t) == fill).all()
    assert tl.full((2,), 3, dtype=tl.float64, device=device).dtype == tl.float64


@pytest.mark.parametrize(("args", "kwargs", "expected", "dtype"), [
    ((5,), {}, [0, 1, 2, 3, 4], tl.int64),
    ((2, 8, 2), {}, [2, 4, 6], tl.int64),
    ((0.0, 1.0, 0.25), {}, [0.0, 0.25, 0.5, 0.75], tl.float32),
    ((3.0,), {}, [0.0, 1.0, 2.0], tl.float32),
    ((3,), {"dtype": tl.float64}, [0.0, 1.0, 2.0], tl.float64),
    ((5, 0, -2), {}, [5, 3, 1], tl.int64),
])
def test_arange(device: str, args, kwargs, expected, dtype) -> None:
    t = tl.arange(*args, **kwargs, device=device)
    assert t.dtype == dtype
    np.testing.assert_array_equal(host(t), expected)


def test_arange_zero_step_raises() -> None:
    with pytest.raises(ValueError, match="step must be non-zero"):
        tl.arange(0, 5, 0)


def test_linspace_and_eye(device: str) -> None:
    lin = tl.linspace(0, 1, 5, device=device)
    assert lin.dtype == tl.float32
    np.testing.assert_allclose(host(lin), [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(host(tl.eye(3, device=device)), np.eye(3))
    rect = tl.eye(2, 3, dtype=tl.float64, device=device)
    assert rect.dtype == tl.float64
    np.testing.assert_array_equal(host(rect), np.eye(2, 3))


def test_rand_and_randn(device: str) -> None:
    u = tl.rand(1000, device=device)
    assert u.dtype == tl.float32 and u.device == device
    assert 0.0 <= host(u).min() and host(u).max() < 1.0
    n = tl.randn(2, 500, dtype=tl.float64, device=device)
    assert n.shape == (2, 500) and n.dtype == tl.float64
    assert abs(host(n).mean()) < 0.2 and 0.8 < host(n).std() < 1.2
    assert tl.randn(3, device=device, requires_grad=True).requires_grad


@pytest.mark.parametrize(("args", "kwargs", "low", "high"), [
    ((10, (200,)), {}, 0, 10),
    ((10,), {"size": (200,)}, 0, 10),
    ((3, 7, (200,)), {}, 3, 7),
    ((3, 7), {"size": (10, 20)}, 3, 7),
], ids=["high-size", "high-size-kw", "low-high-size", "low-high-size-kw"])
def test_randint_signatures(device: str, args, kwargs, low: int, high: int) -> None:
    t = tl.randint(*args, **kwargs, device=device)
    assert t.dtype == tl.int64 and t.device == device
    values = host(t)
    assert values.size == 200 and values.min() >= low and values.max() < high
    assert set(values.ravel().tolist()) == set(range(low, high))  # 200 draws hit every value


def test_randint_bad_range_raises() -> None:
    with pytest.raises(ValueError, match="must be greater than low"):
        tl.randint(5, 5, (2,))


def test_randperm(device: str) -> None:
    p = tl.randperm(20, device=device)
    assert p.dtype == tl.int64 and p.device == device
    assert sorted(p.tolist()) == list(range(20))


@pytest.mark.parametrize("maker", [tl.zeros_like, tl.ones_like, tl.empty_like, tl.rand_like, tl.randn_like,
                                   lambda t, **kw: tl.full_like(t, 2.0, **kw)],
                         ids=["zeros", "ones", "empty", "rand", "randn", "full"])
def test_like_functions(device: str, maker) -> None:
    src = tl.ones(2, 3, dtype=tl.float64, device=device)
    t = maker(src)
    assert t.shape == (2, 3) and t.dtype == tl.float64 and t.device == device and not t.requires_grad
    other = maker(src, dtype=tl.float32, device="cpu", requires_grad=True)
    assert other.dtype == tl.float32 and other.device == "cpu" and other.requires_grad


def test_zeros_like_ones_like_values(device: str) -> None:
    src = tl.randn(4, device=device)
    assert (host(tl.zeros_like(src)) == 0).all() and (host(tl.ones_like(src)) == 1).all()
    assert (host(tl.full_like(src, 2.5)) == 2.5).all()


def test_manual_seed_reproducibility(device: str) -> None:
    tl.manual_seed(123)
    a = host(tl.randn(5, device=device))
    tl.manual_seed(123)
    b = host(tl.randn(5, device=device))
    c = host(tl.randn(5, device=device))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)
    tl.manual_seed(123)
    np.testing.assert_array_equal(host(tl.randn(5, device="cpu")), a)  # the sim device draws the CPU's stream


# -- attributes ----------------------------------------------------------------------------------------


def test_attributes(device: str) -> None:
    t = tl.zeros(2, 3, 4, device=device)
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.dim() == 3
    assert t.size() == (2, 3, 4) and t.size(1) == 3 and t.size(-1) == 4
    assert t.numel() == 24 and len(t) == 2
    assert t.dtype == tl.float32 and t.device == device
    assert not t.requires_grad and t.grad is None and t.is_leaf


def test_requires_grad_property_and_grad(device: str) -> None:
    t = tl.ones(2, device=device)
    t.requires_grad = True
    assert t.requires_grad and t.is_leaf
    (t * 3).sum().backward()
    assert isinstance(t.grad, tl.Tensor) and not t.grad.requires_grad
    np.testing.assert_array_equal(host(t.grad), [3.0, 3.0])
    assert t.grad.device == device


def test_detach_and_data(device: str) -> None:
    x = tl.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x * 2
    for d in (y.detach(), y.data):
        assert not d.requires_grad and d.is_leaf
        np.testing.assert_array_equal(host(d), [2.0, 4.0])


def test_numpy_item_tolist(device: str) -> None:
    t = tl.tensor([[1, 2], [3, 4]], device=device)
    a = t.numpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.int64
    np.testing.assert_array_equal(a, [[1, 2], [3, 4]])
    assert t.tolist() == [[1, 2], [3, 4]]
    one = tl.tensor([[2.5]], device=device)
    assert one.item() == 2.5 and isinstance(one.item(), float)
    assert isinstance(tl.tensor(3, device=device).item(), int)
    assert float(one) == 2.5 and int(tl.tensor(3, device=device)) == 3


def test_item_of_many_elements_raises(device: str) -> None:
    with pytest.raises(ValueError, match=r"only one-element tensors can be converted, this one has shape \(2, 2\)"):
        tl.ones(2, 2, device=device).item()


def test_numpy_is_shared_on_cpu_and_a_copy_on_sim(device: str) -> None:
    t = tl.zeros(2, device=device)
    a = t.numpy()
    a[0] = 1.0
    assert t[0].item() == (1.0 if device == "cpu" else 0.0)


# -- casts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "dtype"), [("float", tl.float32), ("double", tl.float64), ("half", tl.float16),
                                               ("long", tl.int64), ("int", tl.int32), ("bool", tl.bool_)])
def test_cast_methods(device: str, method: str, dtype) -> None:
    t = tl.tensor([-1.5, 0.0, 2.7], dtype=tl.float64, device=device)
    out = getattr(t, method)()
    assert out.dtype == dtype and out.device == device
    np.testing.assert_array_equal(host(out), np.array([-1.5, 0.0, 2.7]).astype(dtype))


def test_astype_and_type(device: str) -> None:
    t = tl.tensor([1, 2], device=device)
    assert t.astype("float64").dtype == tl.float64
    assert t.type(tl.float16).dtype == tl.float16
    assert t.astype(tl.int64) is t  # no-op cast


@pytest.mark.parametrize("target", [tl.float16, tl.float32, tl.float64], ids=lambda d: d.name)
def test_float_cast_is_differentiable(device: str, target) -> None:
    x = tl.tensor([0.5, 1.5], dtype=tl.float64, device=device, requires_grad=True)
    y = x.astype(target)
    assert y.requires_grad
    (y * y).sum().backward()
    assert x.grad.dtype == tl.float64
    np.testing.assert_allclose(host(x.grad), [1.0, 3.0])


def test_to_device_and_dtype(device: str) -> None:
    t = tl.tensor([1.0, 2.0], device=device)
    assert t.to(device) is t and t.to() is t
    moved = t.to("cpu" if device == "sim" else "sim")
    assert moved.device != t.device
    np.testing.assert_array_equal(host(moved), [1.0, 2.0])
    cast = t.to(dtype=tl.float64)
    assert cast.dtype == tl.float64 and cast.device == device
    both = t.to("sim", tl.float16)
    assert both.device == "sim" and both.dtype == tl.float16
    assert t.cpu().device == "cpu"


def test_gradient_flows_across_devices() -> None:
    x = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    on_sim = x.to("sim")
    assert on_sim.device == "sim:0" and on_sim.requires_grad
    y = (on_sim * on_sim).to("cpu")
    assert y.device == "cpu"
    (y * tl.tensor([1.0, 10.0, 100.0])).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(host(x.grad), [2.0, 40.0, 600.0])


def test_array_protocol(device: str) -> None:
    t = tl.tensor([[1.0, 2.0]], device=device)
    a = np.asarray(t)
    assert isinstance(a, np.ndarray) and a.shape == (1, 2)
    np.testing.assert_array_equal(a, [[1.0, 2.0]])
    assert np.asarray(t, dtype=np.float64).dtype == np.float64


# -- DLPack --------------------------------------------------------------------------------------------


def test_from_dlpack_numpy_is_zero_copy() -> None:
    a = np.zeros(3, dtype=np.float64)
    t = tl.from_dlpack(a)
    assert t.dtype == tl.float64 and t.device == "cpu"
    a[1] = 4.0
    t[2] = 5.0
    np.testing.assert_array_equal(host(t), [0.0, 4.0, 5.0])
    np.testing.assert_array_equal(a, [0.0, 4.0, 5.0])


def test_numpy_from_dlpack_of_tensor_is_zero_copy() -> None:
    t = tl.tensor([1.0, 2.0, 3.0])
    a = np.from_dlpack(t)
    a[0] = 9.0
    assert t[0].item() == 9.0


@pytest.mark.parity
def test_torch_dlpack_round_trip_is_zero_copy() -> None:
    t = tl.tensor([1.0, 2.0, 3.0])
    theirs = torch.from_dlpack(t)
    theirs[1] = 8.0
    assert t[1].item() == 8.0
    source = torch.zeros(2, 2)
    ours = tl.from_dlpack(source)
    assert ours.dtype == tl.float32 and ours.shape == (2, 2) and ours.device == "cpu"
    ours[0, 1] = 5.0
    assert source[0, 1].item() == 5.0
    source[1, 0] = 6.0
    assert ours[1, 0].item() == 6.0


def test_from_dlpack_rejects_non_dlpack_objects() -> None:
    with pytest.raises(TypeError, match="does not implement the DLPack protocol"):
        tl.from_dlpack([1, 2])


# -- Python protocols ------------------------------------------------------------------------------


def test_repr(device: str) -> None:
    t = tl.tensor([1.5, 2.5], device=device)
    text = repr(t)
    assert text.startswith("tensor([1.5, 2.5]")
    assert ("device='sim:0'" in text) == (device == "sim")
    x = tl.tensor([1.5, 2.5], dtype=tl.float64, device=device, requires_grad=True)
    assert "dtype=float64" in repr(x) and "requires_grad=True" in repr(x)
    assert "grad_fn=<AddBackward>" in repr(x + 1)
    assert "dtype" not in repr(tl.tensor([1, 2], device=device))


def test_len_iteration_and_bool(device: str) -> None:
    t = tl.tensor([[1, 2], [3, 4], [5, 6]], device=device)
    assert len(t) == 3
    rows = list(t)
    assert len(rows) == 3 and all(isinstance(r, tl.Tensor) and r.shape == (2,) for r in rows)
    assert rows[2].tolist() == [5, 6]
    assert bool(tl.tensor([1.0], device=device)) and not bool(tl.tensor(0, device=device))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(t)
    with pytest.raises(TypeError, match="len"):
        len(tl.tensor(1.0, device=device))


def test_setitem_on_plain_tensor(device: str) -> None:
    t = tl.zeros(2, 3, device=device)
    t[0] = 5
    t[1, 2] = 7.0
    t[:, 0] = tl.tensor([1.0, 2.0], device=device)
    np.testing.assert_array_equal(host(t), [[1.0, 5.0, 5.0], [2.0, 0.0, 7.0]])


def test_setitem_on_tensor_requiring_grad_raises(device: str) -> None:
    t = tl.zeros(3, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place assignment to a tensor that requires grad is not supported"):
        t[0] = 5.0
    with tl.no_grad():
        t[0] = 5.0
    assert t[0].item() == 5.0


# -- devices -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "type_", "text"), [
    ("cpu", "cpu", "cpu"), ("CPU", "cpu", "cpu"), ("sim", "sim", "sim:0"), ("sim:0", "sim", "sim:0"),
])
def test_device_parsing(spec: str, type_: str, text: str) -> None:
    d = tl.device(spec)
    assert isinstance(d, tl.Device)
    assert d.type == type_ and d.index == 0 and str(d) == text
    assert d == text and d == spec and tl.device(d) is d


def test_device_equality_and_identity() -> None:
    assert tl.device("sim") == tl.device("sim:0")
    assert tl.device("sim") == "sim:0" and tl.device("sim:0") == "sim"
    assert tl.device("sim") is tl.device("sim:0")  # one object per device: tensors on both can mix
    assert tl.device("cpu") != tl.device("sim") and tl.device("cpu") != "sim"
    both = tl.ones(2, device="sim") + tl.ones(2, device="sim:0")
    assert both.device == "sim"


@pytest.mark.parametrize("spec", ["gpu0", "cuda:x", "sim:-1", "tpu:0", ""])
def test_bad_device_strings_raise(spec: str) -> None:
    with pytest.raises(ValueError, match="expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'sim'"):
        tl.device(spec)


def test_device_of_wrong_type_raises() -> None:
    with pytest.raises(TypeError, match="expected a string"):
        tl.device(3)


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_cuda_without_cupy_says_how_to_install() -> None:
    with pytest.raises(RuntimeError, match=r"CuPy, which is not installed.*pip install \"tensorlite\[cuda12\]\""):
        tl.device("cuda")
    with pytest.raises(RuntimeError, match="not installed"):
        tl.zeros(2, device="cuda:0")


def test_default_device_from_environment() -> None:
    out = run_python("import tensorlite as tl; print(tl.default_device(), tl.zeros(1).device)", TENSORLITE_DEVICE="sim")
    assert out == "sim:0 sim:0"


def test_set_default_device() -> None:
    before = tl.default_device()
    try:
        tl.set_default_device("sim")
        assert tl.zeros(1).device == "sim" and tl.tensor([1]).device == "sim"
    finally:
        tl.set_default_device(before)
    assert tl.zeros(1).device == before


def test_import_does_not_pull_in_optional_dependencies() -> None:
    heavy = ("torch", "scipy", "cupy", "hypothesis")
    out = run_python(f"import sys, tensorlite; print([m for m in {heavy!r} if m in sys.modules])")
    assert out == "[]"


# -- the CLI -------------------------------------------------------------------------------------------


def test_cli_info() -> None:
    from typer.testing import CliRunner

    from tensorlite.cli.app import app

    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    lines = {line.split("  ")[0].strip(): line for line in result.output.splitlines() if line.strip()}
    assert np.__version__ in lines["numpy"]
    assert tl.__version__ in lines["tensorlite"]
    cupy_line = lines["backend cupy (cuda)"]
    assert "cupy" in cupy_line and ("available: " in cupy_line or "unavailable: " in cupy_line)
    if importlib.util.find_spec("cupy") is None:
        assert "unavailable: cupy not installed" in cupy_line
    assert str(tl.default_device()) in lines["default device"]
