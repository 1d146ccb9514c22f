"""Data types. tensorlite's dtypes are NumPy dtype objects (CuPy uses the same ones)."""

from __future__ import annotations

from typing import Any

import numpy

from tensorlite import scope

float16 = half = numpy.dtype("float16")
float32 = float = numpy.dtype("float32")
float64 = double = numpy.dtype("float64")
int32 = int = numpy.dtype("int32")
int64 = long = numpy.dtype("int64")
uint8 = numpy.dtype("uint8")
bool_ = numpy.dtype("bool")

DType = numpy.dtype


class _Missing:
    """A PyTorch dtype that tensorlite lacks: it can be named (scripts build dtype tables up front), and
    using it raises ``TypeError`` with ``reason``."""

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason
        scope.mark(self, "error", reason)

    def __repr__(self) -> str:
        return f"tensorlite.{self.name} (unsupported)"


bfloat16 = _Missing("bfloat16", "NumPy has no bfloat16, so tensorlite has none: use float32, or float16 "
                               "to halve memory")
SUPPORTED = (float16, float32, float64, int32, int64, uint8, bool_)
_NAMES = {"bool": bool_, "float": float32, "double": float64, "half": float16, "long": int64, "int": int32}

default_float = float32


def as_dtype(dtype: Any) -> numpy.dtype:
    """Normalise ``tl.float32``, ``"float32"``, ``numpy.float32`` ... to a supported dtype."""
    if isinstance(dtype, _Missing):
        raise TypeError(f"dtype: tensorlite.{dtype.name} is not supported: {dtype.reason}")
    if dtype is bool or dtype == "bool":
        return bool_
    try:
        result = _NAMES.get(dtype) if isinstance(dtype, str) and dtype in _NAMES else numpy.dtype(dtype)
    except TypeError:
        result = None
    if result not in SUPPORTED:
        names = ", ".join(d.name for d in SUPPORTED)
        raise TypeError(f"dtype: unsupported dtype {dtype!r}: expected one of {names}")
    return result


def is_floating(dtype: numpy.dtype) -> bool:
    return dtype.kind == "f"


def get_default_dtype() -> numpy.dtype:
    """The floating dtype that creation functions use (float32 unless changed)."""
    return default_float


def set_default_dtype(dtype: Any) -> None:
    """Set the floating dtype that creation functions use (float32 unless changed)."""
    global default_float
    dtype = as_dtype(dtype)
    if not is_floating(dtype):
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dtype}")
    default_float = dtype
