"""Array backends. ``get_backend("cpu", 0)`` returns the one backend object serving a device.

| device type | backend        | array library                                          |
|-------------|----------------|--------------------------------------------------------|
| ``cpu``     | NumpyBackend   | NumPy                                                  |
| ``cuda``    | CupyBackend    | CuPy (imported lazily, only when a CUDA device is used) |
| ``sim``     | SimBackend     | NumPy arrays dressed as device arrays, for tests       |

``tl.backends.cuda.matmul.allow_tf32`` switches TF32 matrix products on CUDA, as PyTorch's flag of that name.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import numpy

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


class _CudaMatmul:
    """``allow_tf32``: whether float32 matrix products on CUDA may use TF32 tensor cores (inputs rounded to 10-bit
    mantissas, float32 accumulation; several times faster on Ampere and later GPUs). Off by default, as in PyTorch.

    Mapped onto CuPy's compute type for float32 (what CuPy's documented ``CUPY_TF32=1`` environment variable
    sets when CuPy is imported, https://docs.cupy.dev/en/stable/reference/environment.html; switched at run time
    through ``cupy._core._routines_linalg.set_compute_type``). Where CuPy or a GPU is missing, the flag is only
    recorded, and applied when it can be.
    """

    def __init__(self) -> None:
        self._allow_tf32 = os.environ.get("CUPY_TF32", "0") == "1"

    @property
    def allow_tf32(self) -> bool:
        return self._allow_tf32

    @allow_tf32.setter
    def allow_tf32(self, value: bool) -> None:
        self._allow_tf32 = bool(value)
        self.apply()

    def apply(self) -> None:
        """Set CuPy's float32 compute type from the flag, if CuPy sees a GPU (the CUDA backend calls this too)."""
        from .cupy_backend import cuda_status

        if not cuda_status()[0]:
            return
        from cupy._core import _routines_linalg as linalg

        linalg.set_compute_type(numpy.float32, linalg.COMPUTE_TYPE_TF32 if self._allow_tf32
                                else linalg.COMPUTE_TYPE_DEFAULT)


class _Cuda:
    """``tl.backends.cuda``: switches of the CUDA backend, under PyTorch's names where PyTorch has them.

    ``fused_kernels`` (tensorlite's): GELU, the Adam(W) update and layer norm as fused CuPy kernels
    (``backends/fused.py``); off by default until measured on a GPU, ``TENSORLITE_FUSED_KERNELS=1`` turns it on.
    """

    def __init__(self) -> None:
        self.matmul = _CudaMatmul()
        self.fused_kernels = os.environ.get("TENSORLITE_FUSED_KERNELS", "0") == "1"

    def __repr__(self) -> str:
        return (f"<tl.backends.cuda: matmul.allow_tf32={self.matmul.allow_tf32}, "
                f"fused_kernels={self.fused_kernels}>")


cuda: Any = _Cuda()
# torch.backends' other switches, which scripts written for PyTorch set: accepted, and they change nothing
# (there is no cuDNN or MPS backend).
cudnn = SimpleNamespace(allow_tf32=True, benchmark=False, deterministic=False, enabled=True)
mps = SimpleNamespace(is_available=lambda: False, is_built=lambda: False)


def set_fused_kernels(enabled: bool) -> None:
    """Run GELU, the Adam(W) update and layer norm as fused kernels on CUDA devices (off by default; see
    ``backends/fused.py``)."""
    cuda.fused_kernels = bool(enabled)


__all__ = ["Array", "Backend", "DEVICE_TYPES", "cuda", "cudnn", "get_backend", "manual_seed", "mps",
           "set_fused_kernels"]
