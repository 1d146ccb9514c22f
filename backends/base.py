"""The backend interface: what differs between array libraries, and nothing else.

A backend owns one array namespace ``xp`` (``numpy`` or ``cupy``, which share one API) and the
handful of things that namespace cannot express the same way everywhere: moving arrays between
host and device, a seeded random generator, and a few primitives (scatter-add, sliding windows,
``erf``, a broadcast view that is cheap on the CPU too). All other array math in tensorlite is
written once against ``backend.xp``.
"""

from __future__ import annotations

from typing import Any

import numpy

Array = Any  # a numpy.ndarray, a cupy.ndarray, or a simulated device array


class Backend:
    """One array library on one device. Subclasses fill in the primitives below."""

    name: str = "abstract"  # the array library: "numpy", "cupy", ...
    device_type: str = "abstract"  # the tensorlite device type it serves: "cpu", "cuda", ...
    xp: Any = None  # the array namespace
    array_type: type = object  # the class of this backend's arrays (ops promote scalars to it)

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self.manual_seed(None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.device_type}:{self.index}>"

    # -- moving data ---------------------------------------------------------------------------
    def is_array(self, obj: object) -> bool:
        """True if ``obj`` is an array of this backend (as opposed to a host or foreign one)."""
        raise NotImplementedError

    def from_host(self, array: numpy.ndarray) -> Array:
        """Copy a host NumPy array to this backend's device (no copy on the CPU backend)."""
        raise NotImplementedError

    def to_host(self, array: Array) -> numpy.ndarray:
        """Copy an array of this backend to a host NumPy array (no copy on the CPU backend)."""
        raise NotImplementedError

    def from_dlpack(self, capsule_owner: object) -> Array:
        """Import a DLPack-capable object without copying."""
        return self.xp.from_dlpack(capsule_owner)

    # -- random numbers ------------------------------------------------------------------------
    def manual_seed(self, seed: int | None) -> None:
        """Reset this backend's random generator (``None`` seeds from the OS)."""
        raise NotImplementedError

    def uniform(self, shape: tuple[int, ...], dtype: numpy.dtype) -> Array:
        """Samples from U[0, 1) of the given shape and floating dtype."""
        raise NotImplementedError

    def normal(self, shape: tuple[int, ...], dtype: numpy.dtype) -> Array:
        """Samples from N(0, 1) of the given shape and floating dtype."""
        raise NotImplementedError

    def integers(self, low: int, high: int, shape: tuple[int, ...], dtype: numpy.dtype) -> Array:
        """Uniform integers in [low, high)."""
        raise NotImplementedError

    def permutation(self, n: int) -> Array:
        """A random permutation of ``range(n)`` as int64."""
        raise NotImplementedError

    # -- primitives that differ between libraries ----------------------------------------------
    def scatter_add(self, target: Array, index: Any, values: Array) -> None:
        """``target[index] += values`` in place, accumulating repeated indices."""
        raise NotImplementedError

    def sliding_window_view(self, x: Array, window_shape: tuple[int, ...], axis: tuple[int, ...]) -> Array:
        """A read-only strided view of all windows of ``x`` (no copy)."""
        raise NotImplementedError

    def erf(self, x: Array) -> Array:
        """The error function, elementwise."""
        raise NotImplementedError

    def broadcast_to(self, x: Array, shape: tuple[int, ...]) -> Array:
        """A read-only view of ``x`` broadcast to ``shape`` (no copy): how reductions send a gradient back."""
        return self.xp.broadcast_to(x, shape)
