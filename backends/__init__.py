"""Array backends. ``get_backend("cpu", 0)`` returns the one backend object serving a device.

| device type | backend        | array library                                          |
|-------------|----------------|--------------------------------------------------------|
| ``cpu``     | NumpyBackend   | NumPy                                                  |
| ``cuda``    | CupyBackend    | CuPy (imported lazily, only when a CUDA device is used) |
| ``sim``     | SimBackend     | NumPy arrays dressed as device arrays, for tests       |
"""

from __future__ import annotations

from .base import Array, Backend

DEVICE_TYPES = ("cpu", "cuda", "sim")
_instances: dict[tuple[str, int], Backend] = {}
_seed: int | None = None


def _backend_class(device_type: str) -> type[Backend]:
    if device_type == "cpu":
        from .numpy_backend import NumpyBackend

        return NumpyBackend
    if device_type == "cuda":
        from .cupy_backend import CupyBackend

        return CupyBackend
    if device_type == "sim":
        from .sim import SimBackend

        return SimBackend
    raise ValueError(f"unknown device type {device_type!r}: expected one of {', '.join(DEVICE_TYPES)}")


def get_backend(device_type: str, index: int = 0) -> Backend:
    """The (cached) backend for one device, created on first use and seeded like the others."""
    key = (device_type, index)
    backend = _instances.get(key)
    if backend is None:
        backend = _backend_class(device_type)(index)
        if _seed is not None:
            backend.manual_seed(_seed)
        _instances[key] = backend
    return backend


def manual_seed(seed: int) -> None:
    """Seed every backend's generator, including those created later."""
    global _seed
    _seed = seed
    for backend in _instances.values():
        backend.manual_seed(seed)


__all__ = ["Array", "Backend", "DEVICE_TYPES", "get_backend", "manual_seed"]
