"""The CUDA backend: CuPy arrays on one GPU. CuPy is imported only when this backend is built."""

from __future__ import annotations

from typing import Any

import numpy

from .base import Array, Backend
from .fused import FusedKernels, cupy_kernel

INSTALL_HINT = 'install CuPy for your CUDA version: pip install "tensorlite[cuda12]" (or [cuda13])'


def import_cupy() -> Any:
    """Import CuPy, or raise a RuntimeError saying what is missing and how to get it."""
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError(f"device 'cuda' needs CuPy, which is not installed: {INSTALL_HINT}") from exc
    return cupy


def cuda_status() -> tuple[bool, str]:
    """(usable, reason): whether CuPy imports and sees at least one CUDA device, and why not."""
    try:
        cupy = import_cupy()
    except RuntimeError:
        return False, "not installed"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken: CuPy raises its own runtime errors
        return False, f"installed (CuPy {cupy.__version__}), no CUDA device found ({exc})"
    if count == 0:
        return False, f"installed (CuPy {cupy.__version__}), no CUDA device found"
    return True, f"installed (CuPy {cupy.__version__}), {count} CUDA device(s)"


class CupyBackend(FusedKernels, Backend):
    """CuPy on CUDA device ``index``. Every array it makes lives on that device.

    ``scope`` is ``cupy.cuda.Device(index)``: CuPy launches kernels and allocates on the current device, so the
    library runs every op under its arrays' device (https://docs.cupy.dev/en/stable/user_guide/basic.html,
    "Current Device").
    """

    name = "cupy"
    device_type = "cuda"
    scoped = True

    def fused_enabled(self) -> bool:
        """Whether GELU, Adam and layer norm run as fused kernels (``tl.backends.cuda.fused_kernels``)."""
        from . import cuda

        return cuda.fused_kernels

    def kernel(self, name: str) -> Any:
        return cupy_kernel(name)

    def __init__(self, index: int = 0) -> None:
        cupy = import_cupy()
        usable, reason = cuda_status()
        if not usable:
            raise RuntimeError(f"device 'cuda:{index}' is not available: CuPy {reason}")
        count = cupy.cuda.runtime.getDeviceCount()
        if not 0 <= index < count:
            raise RuntimeError(f"device 'cuda:{index}' does not exist: {count} CUDA device(s) found")
        self.xp = cupy
        self.array_type = cupy.ndarray
        self.cuda_device = self.scope = cupy.cuda.Device(index)
        super().__init__(index)
        from . import cuda

        cuda.matmul.apply()  # TF32 as tl.backends.cuda.matmul.allow_tf32 says

    def is_array(self, obj: object) -> bool:
        return isinstance(obj, self.xp.ndarray) and obj.device.id == self.index

    def from_host(self, array: numpy.ndarray) -> Array:
        with self.cuda_device:
            return self.xp.asarray(array)

    def to_host(self, array: Array) -> numpy.ndarray:
        return self.xp.asnumpy(array)

    def copy_from(self, array: Array, source: Backend) -> Array:
        """From another GPU: a device-to-device copy (``ndarray.copy`` copies into the current device, peer to
        peer where the GPUs allow it); from elsewhere, through the host."""
        if isinstance(array, self.xp.ndarray):
            with self.cuda_device:
                return array.copy()
        return super().copy_from(array, source)

    def from_dlpack(self, capsule_owner: object) -> Array:
        with self.cuda_device:
            return self.xp.from_dlpack(capsule_owner)

    def manual_seed(self, seed: int | None) -> None:
        with self.cuda_device:
            self.rng = self.xp.random.RandomState(seed)

    def uniform(self, shape: tuple[int, ...], dtype: numpy.dtype) -> Array:
        with self.cuda_device:
            return self.rng.random_sample(shape, dtype=numpy.float64).astype(dtype, copy=False)

    def normal(self, shape: tuple[int, ...], dtype: numpy.dtype) -> Array:
        with self.cuda_device:
            return self.rng.standard_normal(shape, dtype=numpy.float64).astype(dtype, copy=False)

    def integers(self, low: int, high: int, shape: tuple[int, ...], dtype: numpy.dtype) -> Array:
        with self.cuda_device:
            return self.rng.randint(low, high, size=shape).astype(dtype, copy=False)

    def permutation(self, n: int) -> Array:
        with self.cuda_device:
            return self.rng.permutation(n).astype(numpy.int64, copy=False)

    def scatter_add(self, target: Array, index: Any, values: Array) -> None:
        import cupyx

        cupyx.scatter_add(target, index, values)

    def sliding_window_view(self, x: Array, window_shape: tuple[int, ...], axis: tuple[int, ...]) -> Array:
        return self.xp.lib.stride_tricks.sliding_window_view(x, window_shape, axis=axis)

    def erf(self, x: Array) -> Array:
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(x)
