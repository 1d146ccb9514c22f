"""Making tensors: from data (``tensor``, ``as_tensor``, ``from_numpy``, ``from_dlpack``), filled
(``zeros ones full empty eye arange linspace`` and ``*_like``), random (``rand randn randint``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy

from tensorlite import dtypes
from tensorlite.backends import manual_seed as _seed_backends
from tensorlite.device import Device
from tensorlite.device import device as as_device
from tensorlite.tensor import Tensor

_DLPACK_DEVICE_TYPES = {1: "cpu", 2: "cuda", 3: "cpu"}  # kDLCPU, kDLCUDA, kDLCUDAHost


def _finish(data: Any, device: Device, requires_grad: bool) -> Tensor:
    out = Tensor._make(data, device, False, None)
    return out.requires_grad_() if requires_grad else out


def _host_array(data: Any, dtype: numpy.dtype | None) -> numpy.ndarray:
    """Nested lists, scalars or host arrays as a NumPy array with tensorlite's dtype rules."""
    array = numpy.asarray(data)
    if array.dtype.kind == "O" or array.dtype.kind in "USV":
        raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} holding {array.dtype} values; "
                        "expected numbers, bools, nested lists of them, or an array")
    if dtype is None:
        if array.dtype.kind == "f" and not isinstance(data, numpy.ndarray):
            dtype = dtypes.get_default_dtype()  # Python floats become float32, as in PyTorch
        elif array.dtype.kind in "iu" and array.dtype != numpy.uint8:
            dtype = dtypes.int64 if not isinstance(data, numpy.ndarray) else dtypes.as_dtype(array.dtype)
        else:
            dtype = dtypes.as_dtype(array.dtype)
    return array.astype(dtype, copy=False)


def tensor(data: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, scalars, NumPy arrays, tensors)."""
    dtype = None if dtype is None else dtypes.as_dtype(dtype)
    if isinstance(data, Tensor):
        out = data.detach().to(device or data.device, dtype)
        if out._data is data._data:
            with out.device.backend.scope:
                return _finish(out._data.copy(), out.device, requires_grad)
        return _finish(out._data, out.device, requires_grad)
    target = as_device(device)
    if target.backend.is_array(data):
        with target.backend.scope:
            array = data.astype(dtype or data.dtype, copy=True)
        return _finish(array, target, requires_grad)
    host = _host_array(data, dtype)
    array = target.backend.from_host(host)
    if array is data or (target.type == "cpu" and numpy.shares_memory(array, data)):
        array = array.copy()
    return _finish(array, target, requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """Like ``tensor`` but shares memory with ``data`` when device and dtype already match."""
    if isinstance(data, Tensor):
        return data.to(device, dtype)
    target = as_device(device)
    if target.backend.is_array(data) and (dtype is None or dtypes.as_dtype(dtype) == data.dtype):
        return _finish(data, target, False)
    return _finish(target.backend.from_host(_host_array(data, None if dtype is None else dtypes.as_dtype(dtype))),
                   target, False)


def from_numpy(array: numpy.ndarray) -> Tensor:
    """A CPU tensor sharing memory with ``array`` (changes to one show in the other)."""
    if not isinstance(array, numpy.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    dtypes.as_dtype(array.dtype)
    return _finish(array, as_device("cpu"), False)


def from_dlpack(obj: Any) -> Tensor:
    """Zero-copy import of any DLPack producer (a NumPy array, a PyTorch or CuPy tensor)."""
    if not hasattr(obj, "__dlpack_device__"):
        raise TypeError(f"from_dlpack: {type(obj).__name__} does not implement the DLPack protocol")
    kind, index = obj.__dlpack_device__()
    type_ = _DLPACK_DEVICE_TYPES.get(int(kind))
    if type_ is None:
        raise RuntimeError(f"from_dlpack: unsupported DLPack device type {int(kind)} (cpu and cuda are supported)")
    target = as_device("cpu" if type_ == "cpu" else f"cuda:{index}")
    return _finish(target.backend.from_dlpack(obj), target, False)


def _shape(op: str, size: tuple) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not all(isinstance(n, (int, numpy.integer)) and n >= 0 for n in size):
        raise ValueError(f"{op}: size must be non-negative integers, got {size}")
    return tuple(int(n) for n in size)


def _float_dtype(dtype: Any) -> numpy.dtype:
    return dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)


def _filled(op: str, size: tuple, value: float, dtype: Any, device: Any, requires_grad: bool) -> Tensor:
    target = as_device(device)
    with target.backend.scope:
        data = target.backend.xp.full(_shape(op, size), value, dtype=_float_dtype(dtype))
    return _finish(data, target, requires_grad)


def zeros(*size: int | Sequence[int], dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``size`` (ints or one sequence) filled with 0."""
    return _filled("zeros", size, 0, dtype, device, requires_grad)


def ones(*size: int | Sequence[int], dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``size`` (ints or one sequence) filled with 1."""
    return _filled("ones", size, 1, dtype, device, requires_grad)


def empty(*size: int | Sequence[int], dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``size`` whose values are not initialised (faster than ``zeros``; overwrite them all)."""
    target = as_device(device)
    with target.backend.scope:
        data = target.backend.xp.empty(_shape("empty", size), dtype=_float_dtype(dtype))
    return _finish(data, target, requires_grad)


def full(size: Sequence[int], fill_value: float, *, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``."""
    if dtype is None and isinstance(fill_value, bool):
        dtype = dtypes.bool_
    elif dtype is None and isinstance(fill_value, int):
        dtype = dtypes.int64
    return _filled("full", (size,), fill_value, dtype, device, requires_grad)


def eye(n: int, m: int | None = None, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """The ``(n, m)`` identity matrix (``m = n`` by default): ones on the diagonal."""
    target = as_device(device)
    with target.backend.scope:
        data = target.backend.xp.eye(n, m, dtype=_float_dtype(dtype))
    return _finish(data, target, requires_grad)


def arange(start: float, end: float | None = None, step: float = 1, *, dtype: Any = None, device: Any = None,
           requires_grad: bool = False) -> Tensor:
    """Values from ``start`` (inclusive) to ``end`` (exclusive); int64 if all arguments are ints."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be non-zero")
    if dtype is None:
        all_int = all(isinstance(v, int) for v in (start, end, step))
        dtype = dtypes.int64 if all_int else dtypes.get_default_dtype()
    target = as_device(device)
    with target.backend.scope:
        data = target.backend.xp.arange(start, end, step, dtype=dtypes.as_dtype(dtype))
    return _finish(data, target, requires_grad)


def linspace(start: float, end: float, steps: int, *, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end``, both included."""
    target = as_device(device)
    with target.backend.scope:
        data = target.backend.xp.linspace(start, end, steps, dtype=_float_dtype(dtype))
    return _finish(data, target, requires_grad)


def manual_seed(seed: int) -> None:
    """Seed the random generators of every device, for reproducible runs."""
    _seed_backends(int(seed))


def rand(*size: int | Sequence[int], dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples from [0, 1)."""
    target = as_device(device)
    return _finish(target.backend.uniform(_shape("rand", size), _float_dtype(dtype)), target, requires_grad)


def randn(*size: int | Sequence[int], dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    target = as_device(device)
    return _finish(target.backend.normal(_shape("randn", size), _float_dtype(dtype)), target, requires_grad)


def randint(low: int, high: int | None = None, size: Sequence[int] = (), *, dtype: Any = None,
            device: Any = None) -> Tensor:
    """Uniform integers in [low, high) (``randint(high, size)`` starts at 0), int64 by default."""
    if high is None:
        low, high = 0, low
    elif isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    if high <= low:
        raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    target = as_device(device)
    data = target.backend.integers(low, high, _shape("randint", (size,)), dtypes.as_dtype(dtype or dtypes.int64))
    return _finish(data, target, False)


def randperm(n: int, *, device: Any = None) -> Tensor:
    """A random permutation of ``0 .. n-1``, int64 (shuffling indices)."""
    target = as_device(device)
    return _finish(target.backend.permutation(n), target, False)


def _like(maker: Any, input: Tensor, dtype: Any, device: Any, requires_grad: bool) -> Tensor:
    return maker(input.shape, dtype=dtype or input.dtype, device=device or input.device,
                 requires_grad=requires_grad)


def zeros_like(input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape of ``input`` (and its dtype and device unless given)."""
    return _like(zeros, input, dtype, device, requires_grad)


def ones_like(input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape of ``input`` (and its dtype and device unless given)."""
    return _like(ones, input, dtype, device, requires_grad)


def empty_like(input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uninitialised values with the shape of ``input`` (and its dtype and device unless given)."""
    return _like(empty, input, dtype, device, requires_grad)


def rand_like(input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """``rand`` with the shape of ``input`` (and its dtype and device unless given)."""
    return _like(rand, input, dtype, device, requires_grad)


def randn_like(input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """``randn`` with the shape of ``input`` (and its dtype and device unless given)."""
    return _like(randn, input, dtype, device, requires_grad)


def full_like(input: Tensor, fill_value: float, *, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    """``fill_value`` with the shape of ``input`` (and its dtype and device unless given)."""
    return full(input.shape, fill_value, dtype=dtype or input.dtype, device=device or input.device,
                requires_grad=requires_grad)
