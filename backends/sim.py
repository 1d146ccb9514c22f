"""A simulated device for tests: NumPy arrays dressed up as device arrays (device ``"sim"``).

Test-only. ``SimBackend`` lets the generic library code, which must do all array math through
``backend.xp``, be tested like the CUDA backend on a machine without a GPU. Its arrays
(``SimArray``) and namespace (``sim_numpy``) behave like CuPy's where it matters: they refuse to
mix with host NumPy arrays, refuse implicit conversion to NumPy, refuse to be passed to real
``numpy`` functions, and reductions return 0-d arrays instead of scalars. Data crosses between
host and device only through ``from_host`` / ``to_host`` / ``.get()`` / DLPack, as on a GPU.
"""

from __future__ import annotations

import functools
import operator
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy

from .base import Array, Backend
from .numpy_backend import NumpyBackend

_SCALAR_TYPES = (bool, int, float, complex, numpy.generic)
_CPU = NumpyBackend()  # lends its erf, so that sim and CPU results agree bit for bit


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
        return obj._a
    if isinstance(obj, numpy.ndarray):
        raise _host_array_error(obj)
    if isinstance(obj, (list, tuple)):
        items = [_unwrap(item, found) for item in obj]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, dict):
        return {key: _unwrap(value, found) for key, value in obj.items()}
    return obj


def _wrap(obj: Any, found: list[SimArray] | tuple[()] = ()) -> Any:
    """``obj`` with NumPy arrays and scalars (0-d, as CuPy returns them) replaced by sim arrays.

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


def _operand(value: object) -> Any:
    """The NumPy value of an operator's operand, or NotImplemented for a type we do not know."""
    if isinstance(value, SimArray):
        return value._a
    if isinstance(value, numpy.ndarray):
        raise _host_array_error(value)
    return value if isinstance(value, _SCALAR_TYPES) else NotImplemented


def _binary(op: Callable[[Any, Any], Any], how: str = "forward") -> Callable[[SimArray, object], Any]:
    """One binary operator method; ``how`` is "forward", "reflected" or "inplace"."""

    def method(self: SimArray, other: object) -> Any:
        other = _operand(other)
        if other is NotImplemented:
            return NotImplemented
        if how == "inplace":
            op(self._a, other)  # NumPy's in-place operators write into self._a
            return self
        return _wrap(op(other, self._a) if how == "reflected" else op(self._a, other))

    return method


def _operators(op: Callable[[Any, Any], Any], iop: Callable[[Any, Any], Any]) -> tuple[Callable, ...]:
    """The forward, reflected and in-place methods of one binary operator."""
    return _binary(op), _binary(op, "reflected"), _binary(iop, "inplace")


def _unary(op: Callable[[Any], Any]) -> Callable[[SimArray], SimArray]:
    return lambda self: _wrap(op(self._a))


# The ufuncs behind ``numpy_scalar <op> sim_array``, which NumPy routes through __array_ufunc__.
_OPERATOR_UFUNCS = frozenset({
    numpy.add, numpy.subtract, numpy.multiply, numpy.divide, numpy.floor_divide, numpy.remainder,
    numpy.divmod, numpy.power, numpy.bitwise_and, numpy.bitwise_or, numpy.bitwise_xor, numpy.left_shift,
    numpy.right_shift, numpy.equal, numpy.not_equal, numpy.less, numpy.less_equal, numpy.greater,
    numpy.greater_equal,
})


class SimArray:
    """A NumPy array posing as a device array: it behaves like a ``cupy.ndarray``."""

    __slots__ = ("_a",)

    def __init__(self, array: numpy.ndarray) -> None:
        if not isinstance(array, numpy.ndarray):
            raise TypeError(f"SimArray wraps a numpy.ndarray, not {type(array)}")
        self._a = array

    # -- attributes ----------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: SimArray(self._a.T))
    base = property(lambda self: None if self._a.base is None else _wrap(self._a.base))

    def __getattr__(self, name: str) -> Any:
        """Every other ndarray attribute and method, taking and returning sim arrays."""
        if name.startswith("_"):  # keeps __array_interface__ & co. hidden from NumPy
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        attribute = getattr(self._a, name)
        if not callable(attribute):
            return _wrap(attribute)
        return lambda *args, **kwargs: _call(attribute, args, kwargs, [self])

    # -- explicit ways out ---------------------------------------------------------------------
    def get(self) -> numpy.ndarray:
        """A host NumPy copy."""
        return self._a.copy()

    def item(self, *args: Any) -> Any:
        return self._a.item(*args)

    def tolist(self) -> Any:
        return self._a.tolist()

    def __bool__(self) -> bool:
        return bool(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __complex__(self) -> complex:
        return complex(self._a)

    def __index__(self) -> int:
        return operator.index(self._a)

    def __format__(self, spec: str) -> str:
        return format(self._a, spec)

    def __repr__(self) -> str:
        return "sim_" + repr(self._a).replace("\n", "\n    ")  # realign rows under "sim_array("

    def __str__(self) -> str:
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
                return _wrap(ufunc(other[()], self._a))
        raise _numpy_call_error(ufunc)

    def __array_function__(self, func: Callable, _types: Any, args: tuple, kwargs: dict) -> Any:
        raise _numpy_call_error(func)

    # -- containers ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Iterator[SimArray]:
        return (_wrap(row) for row in self._a)

    def __getitem__(self, key: Any) -> SimArray:
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[_unwrap(key)] = _unwrap(value)

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
    """The NumPy array inside a sim array; TypeError for anything else."""
    if not isinstance(obj, SimArray):
        raise TypeError(f"expected a sim device array, got {type(obj)}")
    return obj._a


class SimBackend(Backend):
    """The simulated device: NumPy arrays behind CuPy-like walls. Same random streams as the CPU."""

    name = "sim"
    device_type = "sim"
    xp = sim_numpy

    def is_array(self, obj: object) -> bool:
        return isinstance(obj, SimArray)

    def from_host(self, array: numpy.ndarray) -> SimArray:
        if not isinstance(array, (numpy.ndarray, numpy.generic)):
            raise TypeError(f"from_host takes a NumPy array, not {type(array)}")
        return SimArray(numpy.array(array, copy=True))

    def to_host(self, array: Array) -> numpy.ndarray:
        return _device_array(array).copy()

    def from_dlpack(self, capsule_owner: object) -> SimArray:
        """Import without copying. A host NumPy array is refused: it comes in through ``from_host``."""
        return SimArray(numpy.from_dlpack(_unwrap(capsule_owner)))

    def manual_seed(self, seed: int | None) -> None:
        self.rng = numpy.random.default_rng(seed)

    def uniform(self, shape: tuple[int, ...], dtype: numpy.dtype) -> SimArray:
        return SimArray(self.rng.random(shape, dtype=numpy.float64).astype(dtype, copy=False))

    def normal(self, shape: tuple[int, ...], dtype: numpy.dtype) -> SimArray:
        return SimArray(self.rng.standard_normal(shape, dtype=numpy.float64).astype(dtype, copy=False))

    def integers(self, low: int, high: int, shape: tuple[int, ...], dtype: numpy.dtype) -> SimArray:
        return SimArray(self.rng.integers(low, high, size=shape, dtype=dtype))

    def permutation(self, n: int) -> SimArray:
        return SimArray(self.rng.permutation(n).astype(numpy.int64, copy=False))

    def scatter_add(self, target: Array, index: Any, values: Array) -> None:
        numpy.add.at(_device_array(target), _unwrap(index), _unwrap(values))

    def sliding_window_view(self, x: Array, window_shape: tuple[int, ...], axis: tuple[int, ...]) -> SimArray:
        windows = numpy.lib.stride_tricks.sliding_window_view(_device_array(x), window_shape, axis=axis)
        return SimArray(windows)

    def erf(self, x: Array) -> SimArray:
        return _wrap(_CPU.erf(_device_array(x)))
