"""The CPU backend: NumPy arrays, NumPy's BLAS, a NumPy ``Generator``."""

from __future__ import annotations

from typing import Any

import numpy

from .base import Array, Backend


def erf_approx(x: numpy.ndarray) -> numpy.ndarray:
    """erf from the Chebyshev-fitted erfc of Numerical Recipes (relative error < 1.2e-7)."""
    z = numpy.abs(x).astype(numpy.float64)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * numpy.exp(-z * z + poly)
    return (numpy.sign(x) * (1.0 - erfc)).astype(x.dtype, copy=False)


class NumpyBackend(Backend):
    """NumPy on the host CPU. Transfers are free: host arrays are already its arrays."""

    name = "numpy"
    device_type = "cpu"
    xp = numpy
    array_type = numpy.ndarray

    def is_array(self, obj: object) -> bool:
        return type(obj) is numpy.ndarray

    def from_host(self, array: numpy.ndarray) -> numpy.ndarray:
        return array

    def to_host(self, array: numpy.ndarray) -> numpy.ndarray:
        return array

    def manual_seed(self, seed: int | None) -> None:
        self.rng = numpy.random.default_rng(seed)

    def uniform(self, shape: tuple[int, ...], dtype: numpy.dtype) -> numpy.ndarray:
        return self.rng.random(shape, dtype=numpy.float64).astype(dtype, copy=False)

    def normal(self, shape: tuple[int, ...], dtype: numpy.dtype) -> numpy.ndarray:
        return self.rng.standard_normal(shape, dtype=numpy.float64).astype(dtype, copy=False)

    def integers(self, low: int, high: int, shape: tuple[int, ...], dtype: numpy.dtype) -> numpy.ndarray:
        return self.rng.integers(low, high, size=shape, dtype=dtype)

    def permutation(self, n: int) -> numpy.ndarray:
        return self.rng.permutation(n).astype(numpy.int64, copy=False)

    def scatter_add(self, target: numpy.ndarray, index: Any, values: Array) -> None:
        numpy.add.at(target, index, values)

    def sliding_window_view(
        self, x: numpy.ndarray, window_shape: tuple[int, ...], axis: tuple[int, ...]
    ) -> numpy.ndarray:
        return numpy.lib.stride_tricks.sliding_window_view(x, window_shape, axis=axis)

    def erf(self, x: numpy.ndarray) -> numpy.ndarray:
        """SciPy's erf (exact to rounding) when SciPy is installed, else ``erf_approx``."""
        try:
            from scipy.special import erf
        except ImportError:
            return erf_approx(x)
        return erf(x)
