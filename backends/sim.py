"""A simulated device for tests: NumPy arrays dressed up as device arrays (device ``"sim"``).

Test-only. ``SimBackend`` lets the generic library code, which must do all array math through
``backend.xp``, be tested like the CUDA backend on a machine without a GPU. Its arrays
(``SimArray``) and namespace (``sim_numpy``) behave like CuPy's where it matters: they refuse to
mix with host NumPy arrays, refuse implicit conversion to NumPy, refuse to be passed to real
``numpy`` functions, and reductions return 0-d arrays instead of scalars. Data crosses between
host and device only through ``from_host`` / ``to_host`` / ``.get()`` / DLPack, as on a GPU.

Two more rules model a GPU machine, so that tests on ``sim`` catch what would be slow or wrong on CUDA:

- Several devices (``sim:0``, ``sim:1``, ...) and a current device, as CUDA has: every array lives on one
  device, new arrays are made on the current one, and an op on an array of another device raises (CuPy would
  reach across with peer access where the hardware has it, slowly, or fail where it has not: the simulation
  is stricter). ``Device(i)`` (the backend's ``scope``) makes device ``i`` current in a ``with`` block, as
  ``cupy.cuda.Device(i)`` does.
- Transfers are counted: ``count_transfers()`` records every device-to-host read (``get``, ``item``,
  ``tolist``, ``bool``/``int``/``float``, printing, ``to_host``) and host-to-device copy (``from_host``,
  ``xp.asarray`` of host data), with where it happened, so a test can assert that a training step never
  waits for the device.

Integer-array indices that are out of bounds wrap around, as CuPy's do (NumPy raises): a bad index on a
device is found only by a check, never by the indexing itself.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import threading
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy

from .base import Array, Backend
from .numpy_backend import NumpyBackend

_SCALAR_TYPES = (bool, int, float, complex, numpy.generic)
_CPU = NumpyBackend()  # lends its erf, so that sim and CPU results agree bit for bit


class _Current(threading.local):
    """The current sim device of this thread (CUDA's current device is per thread too)."""

    index = 0


_current = _Current()


class Device:
    """Make sim device ``index`` current inside a ``with`` block (nestable), as ``cupy.cuda.Device(index)``."""

    def __init__(self, index: int = 0) -> None:
        self.id = index
        self._previous: list[int] = []

    def __enter__(self) -> Device:
        self._previous.append(_current.index)
        _current.index = self.id
        return self

    def __exit__(self, *exc: object) -> None:
        _current.index = self._previous.pop()

    def __repr__(self) -> str:
        return f"<sim Device {self.id}>"


def current_device() -> int:
    """The index of the current sim device."""
    return _current.index


class DeviceMismatchError(ValueError):
    """An op met an array that lives on another sim device than the current one."""


def _here(array: SimArray) -> numpy.ndarray:
    """The NumPy array inside ``array``, which must live on the current device."""
    if array._device != _current.index:
        raise DeviceMismatchError(
            f"sim: an array on sim:{array._device} was used while sim:{_current.index} is the current device; "
            f"run the op under its arrays' device (backend.scope, as cupy.cuda.Device({array._device}))")
    return array._a


# -- transfer counting ---------------------------------------------------------------------------------
@dataclass
class Transfer:
    """One transfer: its direction ("device_to_host" or "host_to_device"), what made it, and where."""

    direction: str
    what: str
    where: traceback.StackSummary

    def __str__(self) -> str:
        frame = next((f for f in reversed(self.where) if "/backends/" not in f.filename), self.where[-1])
        return f"{self.direction} by {self.what} at {frame.filename}:{frame.lineno} ({frame.line})"


@dataclass
class TransferLog:
    """The transfers made while a ``count_transfers()`` block was open."""

    transfers: list[Transfer] = field(default_factory=list)

    @property
    def device_to_host(self) -> list[Transfer]:
        return [t for t in self.transfers if t.direction == "device_to_host"]

    @property
    def host_to_device(self) -> list[Transfer]:
        return [t for t in self.transfers if t.direction == "host_to_device"]

    def report(self) -> str:
        """One line per transfer, with the line of code outside the backend that made it."""
        return "\n".join(str(t) for t in self.transfers) or "no transfers"


_logs: list[TransferLog] = []


@contextlib.contextmanager
def count_transfers() -> Iterator[TransferLog]:
    """Record every transfer between host and sim devices made inside the block."""
    log = TransferLog()
    _logs.append(log)
    try:
        yield log
    finally:
        _logs.remove(log)


def _note(direction: str, what: str) -> None:
    if _logs:
        where = traceback.extract_stack(limit=12)[:-2]
        for log in _logs:
            log.transfers.append(Transfer(direction, what, where))


def _read(what: str) -> None:
    _note("device_to_host", what)


def _host_array_error(obj: object) -> TypeError:
    return TypeError(
        f"Unsupported type {type(obj)}: sim device arrays do not mix with host NumPy arrays; "
        "move it with backend.from_host"
    )


def _numpy_call_error(func: Callable) -> TypeError:
    return TypeError(
        f"numpy.{func.__name__} was called on a sim device array: "
        "generic code must do array math through backend.xp, not numpy"
    )


def _unwrap(obj: Any, found: list[SimArray] | None = None) -> Any:
    """``obj`` with sim arrays replaced by their NumPy arrays (inside lists, tuples and dicts too).

    Raises TypeError on a host NumPy array. Sim arrays met are appended to ``found``.
    """
    if isinstance(obj, SimArray):
        if found is not None:
            found.append(obj)
        return _here(obj)
    if isinstance(obj, numpy.ndarray):
        raise _host_array_error(obj)
    if isinstance(obj, (list, tuple)):
        items = [_unwrap(item, found) for item in obj]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, dict):
        return {key: _unwrap(value, found) for key, value in obj.items()}
    return obj


def _wrap(obj: Any, found: list[SimArray] | tuple[()] = ()) -> Any:
    """``obj`` with NumPy arrays and scalars (0-d, as CuPy returns them) replaced by sim arrays of the current
    device.

    A result that is the array of one of the inputs in ``found`` (``out=``, ``asarray``,
    ``astype(copy=False)``) comes back as that input itself.
    """
    if isinstance(obj, numpy.ndarray):
        for owner in found:
            if owner._a is obj:
                return owner
        return SimArray(obj)
    if isinstance(obj, numpy.generic):
        return SimArray(numpy.asarray(obj))
    if isinstance(obj, (list, tuple)):
        items = [_wrap(item, found) for item in obj]
        if isinstance(obj, list):
            return items
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)  # keep named tuples
    return obj


def _call(fn: Callable[..., Any], args: tuple, kwargs: dict, found: list[SimArray] | None = None) -> Any:
    """``fn(*args, **kwargs)`` on the unwrapped arguments, with its result wrapped."""
    found = [] if found is None else found
    return _wrap(fn(*_unwrap(args, found), **_unwrap(kwargs, found)), found)


def _device_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` taking and returning sim arrays."""
    return functools.wraps(fn)(lambda *args, **kwargs: _call(fn, args, kwargs))


def _host_data(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``fn`` (``asarray`` & co.), counting a host-to-device copy when its data is not already a sim array."""
    def make(obj: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(obj, SimArray):
            _note("host_to_device", f"xp.{name}")
        return _call(fn, (obj, *args), kwargs)

    return functools.wraps(fn)(make)


_FROM_HOST_DATA = frozenset({"asarray", "array", "asanyarray", "ascontiguousarray"})


def _operand(value: object) -> Any:
    """The NumPy value of an operator's operand, or NotImplemented for a type we do not know."""
    if isinstance(value, SimArray):
        return _here(value)
    if isinstance(value, numpy.ndarray):
        raise _host_array_error(value)
    return value if isinstance(value, _SCALAR_TYPES) else NotImplemented


def _binary(op: Callable[[Any, Any], Any], how: str = "forward") -> Callable[[SimArray, object], Any]:
    """One binary operator method; ``how`` is "forward", "reflected" or "inplace"."""

    def method(self: SimArray, other: object) -> Any:
        other = _operand(other)
        if other is NotImplemented:
            return NotImplemented
        mine = _here(self)
        if how == "inplace":
            op(mine, other)  # NumPy's in-place operators write into self._a
            return self
        return _wrap(op(other, mine) if how == "reflected" else op(mine, other))

    return method


def _operators(op: Callable[[Any, Any], Any], iop: Callable[[Any, Any], Any]) -> tuple[Callable, ...]:
    """The forward, reflected and in-place methods of one binary operator."""
    return _binary(op), _binary(op, "reflected"), _binary(iop, "inplace")


def _unary(op: Callable[[Any], Any]) -> Callable[[SimArray], SimArray]:
    return lambda self: _wrap(op(_here(self)))


def _wrap_key(key: Any, shape: tuple[int, ...]) -> Any:
    """An unwrapped index key with out-of-bounds integer-array indices wrapped around, as CuPy does (NumPy would
    raise). Keys with ``None`` or ``...`` before an integer array are left as they are."""
    parts = key if isinstance(key, tuple) else (key,)
    wrapped, axis = [], 0
    for part in parts:
        if part is None or part is Ellipsis:
            if any(isinstance(p, numpy.ndarray) and p.dtype.kind in "iu" for p in parts[len(wrapped):]):
                return key
            wrapped.append(part)
            continue
        if isinstance(part, numpy.ndarray) and part.dtype.kind in "iu" and axis < len(shape) and shape[axis]:
            part = part % shape[axis]
        wrapped.append(part)
        axis += part.ndim if isinstance(part, numpy.ndarray) and part.dtype.kind == "b" else 1
    return tuple(wrapped) if isinstance(key, tuple) else wrapped[0]


# The ufuncs behind ``numpy_scalar <op> sim_array``, which NumPy routes through __array_ufunc__.
_OPERATOR_UFUNCS = frozenset({
    numpy.add, numpy.subtract, numpy.multiply, numpy.divide, numpy.floor_divide, numpy.remainder,
    numpy.divmod, numpy.power, numpy.bitwise_and, numpy.bitwise_or, numpy.bitwise_xor, numpy.left_shift,
    numpy.right_shift, numpy.equal, numpy.not_equal, numpy.less, numpy.less_equal, numpy.greater,
    numpy.greater_equal,
})


class SimArray:
    """A NumPy array posing as a device array on sim device ``device`` (default: the current one): it behaves like
    a ``cupy.ndarray``."""

    __slots__ = ("_a", "_device")

    def __init__(self, array: numpy.ndarray, device: int | None = None) -> None:
        if not isinstance(array, numpy.ndarray):
            raise TypeError(f"SimArray wraps a numpy.ndarray, not {type(array)}")
        self._a = array
        self._device = _current.index if device is None else device

    # -- attributes ----------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: SimArray(self._a.T, self._device))
    base = property(lambda self: None if self._a.base is None else SimArray(self._a.base, self._device))
    device = property(lambda self: Device(self._device))

    def __getattr__(self, name: str) -> Any:
        """Every other ndarray attribute and method, taking and returning sim arrays."""
        if name.startswith("_"):  # keeps __array_interface__ & co. hidden from NumPy
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        attribute = getattr(self._a, name)
        if not callable(attribute):
            return _wrap(attribute)

        def method(*args: Any, **kwargs: Any) -> Any:
            _here(self)
            return _call(attribute, args, kwargs, [self])

        return method

    # -- explicit ways out (each one a device-to-host transfer, counted) -------------------------
    def get(self) -> numpy.ndarray:
        """A host NumPy copy."""
        _read("get")
        return self._a.copy()

    def item(self, *args: Any) -> Any:
        _read("item")
        return self._a.item(*args)

    def tolist(self) -> Any:
        _read("tolist")
        return self._a.tolist()

    def __bool__(self) -> bool:
        _read("bool")
        return bool(self._a)

    def __int__(self) -> int:
        _read("int")
        return int(self._a)

    def __float__(self) -> float:
        _read("float")
        return float(self._a)

    def __complex__(self) -> complex:
        _read("complex")
        return complex(self._a)

    def __index__(self) -> int:
        _read("index")
        return operator.index(self._a)

    def __format__(self, spec: str) -> str:
        _read("format")
        return format(self._a, spec)

    def __repr__(self) -> str:
        _read("repr")
        return "sim_" + repr(self._a).replace("\n", "\n    ")  # realign rows under "sim_array("

    def __str__(self) -> str:
        _read("str")
        return str(self._a)

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self._a.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._a.__dlpack_device__()

    # -- refusals: no implicit transfer, no real numpy functions -------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    def __array_ufunc__(self, ufunc: numpy.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        for value in (*inputs, *kwargs.get("out", ())):
            if isinstance(value, numpy.ndarray) and value.ndim > 0:
                raise _host_array_error(value)
        if method == "__call__" and ufunc in _OPERATOR_UFUNCS and len(inputs) == 2 and not kwargs:
            other, this = inputs  # numpy_scalar <op> self: NumPy hands comparisons a 0-d array
            if this is self and isinstance(other, (numpy.generic, numpy.ndarray)):
                return _wrap(ufunc(other[()], _here(self)))
        raise _numpy_call_error(ufunc)

    def __array_function__(self, func: Callable, _types: Any, args: tuple, kwargs: dict) -> Any:
        raise _numpy_call_error(func)

    # -- containers ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Iterator[SimArray]:
        return (_wrap(row) for row in _here(self))

    def __getitem__(self, key: Any) -> SimArray:
        mine = _here(self)
        return _wrap(mine[_wrap_key(_unwrap(key), mine.shape)])

    def __setitem__(self, key: Any, value: Any) -> None:
        mine = _here(self)
        mine[_wrap_key(_unwrap(key), mine.shape)] = _unwrap(value)

    # -- operators -----------------------------------------------------------------------------
    __add__, __radd__, __iadd__ = _operators(operator.add, operator.iadd)
    __sub__, __rsub__, __isub__ = _operators(operator.sub, operator.isub)
    __mul__, __rmul__, __imul__ = _operators(operator.mul, operator.imul)
    __truediv__, __rtruediv__, __itruediv__ = _operators(operator.truediv, operator.itruediv)
    __floordiv__, __rfloordiv__, __ifloordiv__ = _operators(operator.floordiv, operator.ifloordiv)
    __mod__, __rmod__, __imod__ = _operators(operator.mod, operator.imod)
    __pow__, __rpow__, __ipow__ = _operators(operator.pow, operator.ipow)
    __matmul__, __rmatmul__, __imatmul__ = _operators(operator.matmul, operator.imatmul)
    __and__, __rand__, __iand__ = _operators(operator.and_, operator.iand)
    __or__, __ror__, __ior__ = _operators(operator.or_, operator.ior)
    __xor__, __rxor__, __ixor__ = _operators(operator.xor, operator.ixor)
    __lshift__, __rlshift__, __ilshift__ = _operators(operator.lshift, operator.ilshift)
    __rshift__, __rrshift__, __irshift__ = _operators(operator.rshift, operator.irshift)
    __divmod__, __rdivmod__ = _binary(divmod), _binary(divmod, "reflected")
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)  # type: ignore[assignment]
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)
    __neg__, __pos__ = _unary(operator.neg), _unary(operator.pos)
    __abs__, __invert__ = _unary(operator.abs), _unary(operator.invert)
    __hash__ = None  # type: ignore[assignment]  # arrays are unhashable, like NumPy's and CuPy's


class _SimNamespace:
    """A NumPy module (or ufunc) whose functions take and return sim arrays; attributes cached."""

    def __init__(self, wrapped: Any, name: str) -> None:
        self._wrapped = wrapped
        self.__name__ = name

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._wrapped, name)
        if value is numpy.ndarray:
            value = SimArray
        elif isinstance(value, types.ModuleType):
            value = _SimNamespace(value, f"{self.__name__}.{name}")
        elif isinstance(value, numpy.ufunc):
            value = _SimUfunc(value, name)
        elif name in _FROM_HOST_DATA and self._wrapped is numpy:
            value = _host_data(value, name)
        elif callable(value) and not isinstance(value, type):
            value = _device_function(value)
        setattr(self, name, value)  # classes and constants pass through unchanged
        return value

    def __dir__(self) -> list[str]:
        return dir(self._wrapped)

    def __repr__(self) -> str:
        return f"<sim namespace {self.__name__!r}>"


class _SimUfunc(_SimNamespace):
    """A NumPy ufunc taking and returning sim arrays, and so are its methods (``at``, ``reduce``...)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._wrapped, args, kwargs)


sim_numpy = _SimNamespace(numpy, "sim_numpy")


def _device_array(obj: object) -> numpy.ndarray:
    """The NumPy array inside a sim array of the current device; TypeError for anything else."""
    if not isinstance(obj, SimArray):
        raise TypeError(f"expected a sim device array, got {type(obj)}")
    return _here(obj)


class SimBackend(Backend):
    """The simulated device ``sim:index``: NumPy arrays behind CuPy-like walls. Same random streams as the CPU."""

    name = "sim"
    device_type = "sim"
    xp = sim_numpy
    scoped = True

    def __init__(self, index: int = 0) -> None:
        self.scope = Device(index)
        super().__init__(index)

    def is_array(self, obj: object) -> bool:
        return isinstance(obj, SimArray) and obj._device == self.index

    def from_host(self, array: numpy.ndarray) -> SimArray:
        if not isinstance(array, (numpy.ndarray, numpy.generic)):
            raise TypeError(f"from_host takes a NumPy array, not {type(array)}")
        _note("host_to_device", "from_host")
        return SimArray(numpy.array(array, copy=True), self.index)

    def to_host(self, array: Array) -> numpy.ndarray:
        if not isinstance(array, SimArray):
            raise TypeError(f"expected a sim device array, got {type(array)}")
        _read("to_host")
        return array._a.copy()

    def copy_from(self, array: Array, source: Backend) -> Array:
        """A device-to-device copy between sim devices (no host transfer); from another backend, through the host."""
        if isinstance(array, SimArray):
            return SimArray(array._a.copy(), self.index)
        return super().copy_from(array, source)

    def from_dlpack(self, capsule_owner: object) -> SimArray:
        """Import without copying. A host NumPy array is refused: it comes in through ``from_host``."""
        if isinstance(capsule_owner, SimArray):
            return SimArray(numpy.from_dlpack(capsule_owner._a), capsule_owner._device)
        return SimArray(numpy.from_dlpack(_unwrap(capsule_owner)), self.index)

    def manual_seed(self, seed: int | None) -> None:
        self.rng = numpy.random.default_rng(seed)

    def uniform(self, shape: tuple[int, ...], dtype: numpy.dtype) -> SimArray:
        return SimArray(self.rng.random(shape, dtype=numpy.float64).astype(dtype, copy=False), self.index)

    def normal(self, shape: tuple[int, ...], dtype: numpy.dtype) -> SimArray:
        return SimArray(self.rng.standard_normal(shape, dtype=numpy.float64).astype(dtype, copy=False), self.index)

    def integers(self, low: int, high: int, shape: tuple[int, ...], dtype: numpy.dtype) -> SimArray:
        return SimArray(self.rng.integers(low, high, size=shape, dtype=dtype), self.index)

    def permutation(self, n: int) -> SimArray:
        return SimArray(self.rng.permutation(n).astype(numpy.int64, copy=False), self.index)

    def scatter_add(self, target: Array, index: Any, values: Array) -> None:
        target = _device_array(target)
        numpy.add.at(target, _wrap_key(_unwrap(index), target.shape), _unwrap(values))

    def sliding_window_view(self, x: Array, window_shape: tuple[int, ...], axis: tuple[int, ...]) -> SimArray:
        windows = numpy.lib.stride_tricks.sliding_window_view(_device_array(x), window_shape, axis=axis)
        return SimArray(windows)

    def erf(self, x: Array) -> SimArray:
        return _wrap(_CPU.erf(_device_array(x)))
