"""The CPU backend: NumPy arrays, NumPy's BLAS, a NumPy ``Generator``."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import os
from types import ModuleType
from typing import Any, NamedTuple

import numpy

from .base import Array, Backend, empty_like_layout


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse rather than hand it back to the OS at once.

    A training step frees and re-allocates the same few-MB temporaries op after op. By default glibc
    returns them to the OS (unmaps, or trims the heap) on free, and the kernel must fault and zero
    the pages in again on the next allocation: a sixth of a small transformer's step. This is the
    host-memory counterpart of CuPy's memory pool. No-op (False) where the C library is not glibc.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20) and mallopt(M_TRIM_THRESHOLD, 256 << 20))


@functools.cache
def compiled_kernels() -> ModuleType | None:
    """``backends.numba_kernels`` when Numba is installed (``pip install tensorlite[fast]``) and not switched
    off with ``TENSORLITE_CPU_KERNELS=0``; else None, and the NumPy backend runs the reference ``xp`` math.
    Imported on the first op that can use it, so ``import tensorlite`` never pays for Numba."""
    if os.environ.get("TENSORLITE_CPU_KERNELS", "1") == "0":
        return None
    try:
        from . import numba_kernels
    except ImportError:  # no Numba, or one built for another NumPy
        return None
    return numba_kernels


def compiled_kernels_status() -> str:
    """One line for ``tensorlite info`` and the benchmarks: are the compiled CPU kernels in use, and if not, why."""
    if os.environ.get("TENSORLITE_CPU_KERNELS", "1") == "0":
        return "off (TENSORLITE_CPU_KERNELS=0): the reference NumPy math"
    if compiled_kernels() is None:
        return "off (Numba is not installed: pip install 'tensorlite[fast]'): the reference NumPy math"
    import numba

    from . import blas_threads

    threads = blas_threads.threads()
    split = (f"; large GELU, softmax, Adam, bias adds and attention (each head's products and softmax together) "
             f"split over {threads} of OpenBLAS's threads" if threads > 1 else "")
    return (f"on (Numba {numba.__version__}): GELU, softmax, LayerNorm, Adam, max pooling, col2im, bias sums in one "
            f"pass each{split}")


PARALLEL_MIN = 1 << 15  # elements: exact GELU on 2^15 takes 19 us on one core; split, the parts take 10 each
SMALL_GRADIENT = 4096  # elements: up to here a filled gradient, made and read once, beats a view (1.46 vs 1.58 us)


def _split(kind: str, size: int, arrays: tuple[numpy.ndarray, ...], scalars: tuple[float, ...] = (),
           shape: tuple[int, ...] = (), units: int | None = None) -> bool:
    """Whether kernel ``kind`` ran over OpenBLAS's threads (``backends/blas_threads.py``: the same bits as on one
    core), for work of ``size`` >= PARALLEL_MIN elements; if not, the caller runs the kernel itself. ``units``: what
    is split: elements (the default, ``size``) or rows."""
    if size < PARALLEL_MIN:
        return False
    from . import blas_threads  # on the first large kernel: small models never load it

    return blas_threads.split(kind, size if units is None else units, arrays, scalars, shape)


def _float32_kernel(x: numpy.ndarray) -> ModuleType | None:
    """The compiled kernels if they serve ``x`` (float32), else None."""
    return compiled_kernels() if x.dtype == numpy.float32 else None


def _large_float32_product(a: numpy.ndarray, columns: int) -> bool:
    """Whether ``a`` (..., m, n) times ``columns`` columns is a float32 batch of 2^20 multiply-adds or more: from there
    its products pay for a split over OpenBLAS's threads (with the compiled kernels, which run the split)."""
    return a.dtype == numpy.float32 and a.size * columns >= 1 << 20 and compiled_kernels() is not None


@functools.lru_cache(maxsize=32)
def _ones(n: int, dtype: numpy.dtype) -> numpy.ndarray:
    """A read-only vector of ``n`` ones (kept: a training run sums the same few lengths every step)."""
    ones = numpy.ones(n, dtype)
    ones.flags.writeable = False
    return ones


@functools.lru_cache(maxsize=32)
def _zero(dtype: numpy.dtype) -> numpy.ndarray:
    """A read-only 0-d zero of ``dtype``: against it, NumPy need not work out a Python 0's type on every call."""
    zero = numpy.zeros((), dtype)
    zero.flags.writeable = False
    return zero


class RowStats(NamedTuple):
    """What the compiled layer_norm keeps for its backward: each row's mean and 1 / std, float32 (N,)."""

    mean: numpy.ndarray
    rstd: numpy.ndarray


class PoolArgmax(NamedTuple):
    """What the compiled max_pool2d keeps for its backward: each window's argmax offset (P, OH, OW, Q) uint8,
    the layout (NCHW, or batch innermost), and the geometry."""

    arg: numpy.ndarray
    nchw: bool
    padded_shape: tuple[int, ...]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]


def _planes_view(x: numpy.ndarray) -> tuple[numpy.ndarray, bool] | None:
    """``x`` (N, C, H, W) as a C-contiguous (P, H, W, Q) view for the pooling kernels: (N * C, H, W, 1) if ``x``
    is NCHW, (C, H, W, N) if its batch is innermost in memory (as convolutions lay it out); and which it was."""
    if x.flags.c_contiguous:
        return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:], 1), True
    batch_innermost = x.transpose(1, 2, 3, 0)
    if batch_innermost.flags.c_contiguous:
        return batch_innermost, False
    return None


def _flat(x: numpy.ndarray) -> numpy.ndarray | None:
    """A 1-D view of ``x``'s elements in memory order, if they fill one block of memory (C order, or any order of
    axes, as a transposed view has); else None."""
    if x.flags.c_contiguous:
        return x.reshape(-1)
    in_memory_order = x.transpose(sorted(range(x.ndim), key=lambda axis: -x.strides[axis]))
    return in_memory_order.reshape(-1) if in_memory_order.flags.c_contiguous else None


def _row_block(mask: numpy.ndarray | None, shape: tuple[int, ...]) -> numpy.ndarray | None:
    """The additive mask as an (L, n) float32 block that repeats over the rows of ``shape`` (..., L, n), or None
    if it does not (then the caller adds it the general way). No mask: one row of zeros."""
    if mask is None:
        return numpy.zeros((1, shape[-1]), numpy.float32)
    if mask.dtype != numpy.float32 or mask.ndim < 1 or len(shape) < 2 or any(d != 1 for d in mask.shape[:-2]):
        return None
    block = mask.reshape(mask.shape[-2:] if mask.ndim > 1 else (1, -1))
    if block.shape[1] != shape[-1] or block.shape[0] not in (1, shape[-2]):
        return None
    return numpy.ascontiguousarray(block)


@functools.lru_cache(maxsize=4096)
def _broadcast_strides(have: tuple[int, ...], strides: tuple[int, ...], shape: tuple[int, ...]
                       ) -> tuple[int, ...] | None:
    """The strides that broadcast an array of shape ``have`` (and ``strides``) to ``shape``: 0 along new and
    broadcast axes; None if the shapes do not broadcast."""
    extra = len(shape) - len(have)
    if extra < 0:
        return None
    out = [0] * extra
    for n, want, stride in zip(have, shape[extra:], strides):
        if n != want and n != 1:
            return None
        out.append(stride if n == want else 0)
    return tuple(out)


def erf_approx(x: numpy.ndarray) -> numpy.ndarray:
    """erf from the Chebyshev-fitted erfc of Numerical Recipes (relative error < 1.2e-7)."""
    z = numpy.abs(x).astype(numpy.float64)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * numpy.exp(-z * z + poly)
    return (numpy.sign(x) * (1.0 - erfc)).astype(x.dtype, copy=False)


def erf_float32(x: numpy.ndarray) -> numpy.ndarray:
    """erf in float32 arithmetic by Abramowitz & Stegun 7.1.26, as many vectorised float32 kernels compute it:
    sign(x) (1 - t P(t) exp(-x^2)) with t = 1 / (1 + p |x|); absolute error < 6e-7 with float32 rounding.

    About 20 SIMD passes over the array: six times faster than SciPy's float64 erf on float32 data.
    """
    flat = x.reshape(-1)  # ufuncs return arrays (not scalars) for 1-d input, so out= works
    a = numpy.abs(flat, dtype=numpy.float32)
    t = a + numpy.float32(1 / 0.3275911)
    numpy.divide(numpy.float32(1 / 0.3275911), t, out=t)  # t = 1 / (1 + p |x|)
    poly = t * numpy.float32(1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += numpy.float32(c)
        poly *= t
    numpy.square(a, out=a)
    numpy.negative(a, out=a)
    poly *= numpy.exp(a, out=a)
    numpy.subtract(1, poly, out=poly)
    return numpy.copysign(poly, flat, out=poly).reshape(x.shape).astype(x.dtype, copy=False)


class NumpyBackend(Backend):
    """NumPy on the host CPU. Transfers are free: host arrays are already its arrays."""

    name = "numpy"
    device_type = "cpu"
    xp = numpy
    array_type = numpy.ndarray

    def __init__(self, index: int = 0) -> None:
        keep_freed_memory()
        super().__init__(index)

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
        """``numpy.add.at``; whole rows picked by one integer array (an embedding's gradient) take a
        faster path: one compiled pass for float32 rows (768 rows of 128: 13 us against 150), else sort the row
        indices, sum each run of equal ones (``reduceat``), add each sum once."""
        if isinstance(index, tuple) and len(index) == 1:
            index = index[0]
        rows_of_values = (isinstance(index, numpy.ndarray) and index.dtype.kind in "iu" and index.size > 0
                          and numpy.shape(values) == index.shape + target.shape[1:])
        if not rows_of_values:
            numpy.add.at(target, index, values)
            return
        index = index.reshape(-1)
        index = numpy.where(index < 0, index + target.shape[0], index)  # -1 is the last row, as in add.at
        values = values.reshape(index.size, *target.shape[1:])
        kernels = _float32_kernel(target)
        if (kernels is not None and target.ndim == 2 and target.flags.c_contiguous and values.dtype == target.dtype
                and 0 <= index.min() and index.max() < target.shape[0]):  # (out of range: add.at's IndexError below)
            kernels.add_rows_at(target, index, numpy.ascontiguousarray(values))
            return
        order = numpy.argsort(index, kind="stable")
        rows = index[order]
        starts = numpy.flatnonzero(numpy.concatenate(([True], rows[1:] != rows[:-1])))
        target[rows[starts]] += numpy.add.reduceat(values[order], starts, axis=0)

    def sliding_window_view(
        self, x: numpy.ndarray, window_shape: tuple[int, ...], axis: tuple[int, ...]
    ) -> numpy.ndarray:
        return numpy.lib.stride_tricks.sliding_window_view(x, window_shape, axis=axis)

    def broadcast_to(self, x: numpy.ndarray, shape: tuple[int, ...]) -> numpy.ndarray:
        """``numpy.broadcast_to`` in half its time or less for a contiguous ``x``: one ndarray over ``x``'s
        memory with stride 0 along the broadcast axes. NumPy's own function (a few microseconds of Python) is
        a tenth of a small graph's backward pass."""
        if x.size == 1 and x.ndim <= len(shape):  # a scalar's gradient spread over a whole tensor (sum, mean)
            strides = (0,) * len(shape)
        else:
            strides = _broadcast_strides(x.shape, x.strides, tuple(shape)) if x.flags.c_contiguous else None
        if strides is None:
            return numpy.broadcast_to(x, shape)  # the general case, and numpy's error for shapes that do not fit
        view = numpy.ndarray(shape, x.dtype, x, 0, strides)
        view.setflags(write=False)  # (``view.flags.writeable = False`` makes a flags object first: 0.1 us more)
        return view

    def broadcast_gradient(self, g: numpy.ndarray, shape: tuple[int, ...]) -> numpy.ndarray:
        """Small gradients (up to ``SMALL_GRADIENT`` elements) are filled in rather than viewed: the copy costs less
        to make than the view object (0.3 against 0.55 us for 4x4), and NumPy reads a contiguous operand faster
        than one with zero strides (a 4x4 product: 0.25 against 0.7 us). Larger ones stay views, costing no memory."""
        if math.prod(shape) > SMALL_GRADIENT:
            return self.broadcast_to(g, shape)
        out = numpy.empty(shape, g.dtype)
        out[...] = g  # (NumPy's ValueError for shapes that do not fit)
        return out

    def gelu(self, x: numpy.ndarray, approximate: str) -> tuple[numpy.ndarray, Any]:
        """One compiled pass for float32; backward recomputes Phi(x) from ``x`` rather than keep it."""
        kernels = _float32_kernel(x)
        if kernels is None:
            return super().gelu(x, approximate)
        out = numpy.empty(x.shape, numpy.float32)
        x_flat, out_flat = x.ravel(), out.reshape(-1)
        if not _split("GELU_TANH" if approximate == "tanh" else "GELU", x.size, (x_flat, out_flat)):
            (kernels.gelu_tanh if approximate == "tanh" else kernels.gelu)(x_flat, out_flat)
        return out, None

    def gelu_backward(self, g: numpy.ndarray, x: numpy.ndarray, saved: Any, approximate: str) -> numpy.ndarray:
        if saved is not None:  # gelu ran the reference math
            return super().gelu_backward(g, x, saved, approximate)
        kernels = _float32_kernel(x)
        out = numpy.empty(x.shape, numpy.float32)
        arrays = (numpy.ravel(g.astype(numpy.float32, copy=False)), x.ravel(), out.reshape(-1))
        if not _split("GELU_TANH_BACKWARD" if approximate == "tanh" else "GELU_BACKWARD", x.size, arrays):
            (kernels.gelu_tanh_backward if approximate == "tanh" else kernels.gelu_backward)(*arrays)
        return out

    def log_softmax(self, x: numpy.ndarray) -> tuple[numpy.ndarray, numpy.ndarray]:
        """One compiled pass over float32 rows in C order from 4,096 elements (768 rows of 65, a GPT's logits: 102
        against 212 us for cross entropy's forward); else the reference math, as quick to call on a small batch."""
        kernels = _float32_kernel(x)
        if kernels is None or x.ndim != 2 or not x.flags.c_contiguous or x.shape[1] == 0 or x.size < 4096:
            return super().log_softmax(x)
        logp, p = numpy.empty(x.shape, numpy.float32), numpy.empty(x.shape, numpy.float32)
        kernels.log_softmax_rows(x, logp, p)
        return logp, p

    def softmax(self, x: numpy.ndarray, scale: float = 1.0, mask: numpy.ndarray | None = None,
                empty_rows_zero: bool = False, out: numpy.ndarray | None = None) -> numpy.ndarray:
        """One compiled pass over float32 rows (and a mask of one (L, n) block repeated over them, as a causal
        mask over every batch and head); the reference math for anything else."""
        kernels = _float32_kernel(x)
        n = x.shape[-1] if x.ndim else 0
        rows_mask = _row_block(mask, x.shape) if kernels is not None and n else None
        if rows_mask is None or not x.flags.c_contiguous or (out is not None and not out.flags.c_contiguous):
            return super().softmax(x, scale, mask, empty_rows_zero, out)
        out = numpy.empty(x.shape, numpy.float32) if out is None else out
        x2, out2 = x.reshape(-1, n), out.reshape(-1, n)
        if not _split("SOFTMAX", x.size, (x2, out2, rows_mask), (scale, empty_rows_zero),
                      (*x2.shape, rows_mask.shape[0]), units=x2.shape[0]):
            kernels.softmax_rows(x2, out2, numpy.float32(scale), rows_mask, empty_rows_zero)
        return out

    def rotary(self, x: numpy.ndarray, cos: numpy.ndarray, sin: numpy.ndarray, inverse: bool = False
               ) -> numpy.ndarray:
        """One compiled pass for float32 ``x`` (..., T, ..., D) (any strides: a view of a packed projection) whose
        tables are (T, 1, ..., 1, D / 2), one row per position, as attention uses them; else the reference."""
        kernels = _float32_kernel(x)
        axis = x.ndim - cos.ndim  # the position axis, if the tables broadcast as one row per position
        if (kernels is None or cos.dtype != numpy.float32 or sin.dtype != numpy.float32 or cos.shape != sin.shape
                or axis < 0 or cos.ndim < 2 or cos.shape[0] != x.shape[axis] or any(n != 1 for n in cos.shape[1:-1])
                or 2 * cos.shape[-1] != x.shape[-1]):
            return super().rotary(x, cos, sin, inverse)
        shape = (math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:-1]), x.shape[-1])
        out = numpy.empty(x.shape, numpy.float32)
        tables = (numpy.ascontiguousarray(t.reshape(shape[1], -1)) for t in (cos, sin))
        kernels.rotary(x.reshape(shape), *tables, numpy.float32(-1 if inverse else 1), out.reshape(shape))
        return out

    def softmax_backward(self, g: numpy.ndarray, p: numpy.ndarray, scale: float = 1.0,
                         out: numpy.ndarray | None = None) -> numpy.ndarray:
        kernels = _float32_kernel(p)
        contiguous = all(a is None or a.flags.c_contiguous for a in (g, p, out))
        if kernels is None or p.ndim == 0 or g.shape != p.shape or not contiguous:
            return super().softmax_backward(g, p, scale, out)
        out = numpy.empty(p.shape, numpy.float32) if out is None else out
        n = p.shape[-1]
        kernels.softmax_backward_rows(g.reshape(-1, n), p.reshape(-1, n), out.reshape(-1, n), numpy.float32(scale))
        return out

    def layer_norm(self, x: numpy.ndarray, weight: numpy.ndarray | None, bias: numpy.ndarray | None, eps: float
                   ) -> tuple[numpy.ndarray, Any]:
        """One compiled pass over float32 rows; saves each row's mean and 1 / std (not xhat: backward recomputes
        it), as PyTorch does."""
        kernels = _float32_kernel(x)
        if kernels is None or not x.flags.c_contiguous:
            return super().layer_norm(x, weight, bias, eps)
        n, d = x.shape
        weight = numpy.ones(d, numpy.float32) if weight is None else numpy.ascontiguousarray(weight)
        bias = numpy.zeros(d, numpy.float32) if bias is None else numpy.ascontiguousarray(bias)
        out, mean, rstd = numpy.empty((n, d), numpy.float32), *numpy.empty((2, n), numpy.float32)
        kernels.layer_norm_rows(x, weight, bias, numpy.float32(eps), out, mean, rstd)
        return out, RowStats(mean, rstd)

    def layer_norm_backward(self, g: numpy.ndarray, x: numpy.ndarray, weight: numpy.ndarray | None, saved: Any
                            ) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        if not isinstance(saved, RowStats):  # layer_norm ran the reference math
            return super().layer_norm_backward(g, x, weight, saved)
        mean, rstd = saved
        n, d = x.shape
        weight = numpy.ones(d, numpy.float32) if weight is None else numpy.ascontiguousarray(weight)
        gx, (gw, gb) = numpy.empty((n, d), numpy.float32), numpy.empty((2, d), numpy.float32)
        kernels = compiled_kernels()
        kernels.layer_norm_backward_rows(numpy.ascontiguousarray(g, numpy.float32), x, weight, mean, rstd, gx, gw, gb)
        return gx, gw, gb

    def adam_update(self, p: numpy.ndarray, g: numpy.ndarray, m: numpy.ndarray, v: numpy.ndarray, *, lr: float,
                    beta1: float, beta2: float, eps: float, step: int, decay: float = 1.0,
                    max_v: numpy.ndarray | None = None) -> None:
        """One compiled pass for float32 parameters (AMSGrad: the reference math)."""
        kernels = _float32_kernel(p)
        if kernels is None or max_v is not None or not all(a.flags.c_contiguous for a in (p, g, m, v)):
            return super().adam_update(p, g, m, v, lr=lr, beta1=beta1, beta2=beta2, eps=eps, step=step, decay=decay,
                                       max_v=max_v)
        arrays = (p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1))
        scalars = tuple(numpy.float32(a) for a in (decay, 1 - beta1, beta2, 1 - beta2, lr / (1 - beta1**step),
                                                   (1 - beta2**step) ** 0.5, eps))
        if not _split("ADAM", p.size, arrays, scalars):
            kernels.adam_update(*arrays, *scalars)

    def sum_rows(self, x: numpy.ndarray) -> numpy.ndarray:
        """A product with a vector of ones: BLAS's matrix-vector product reads long rows at full speed, where
        NumPy's reduction along them is 2-4x slower (a convolution's bias: 32 rows of 43,264, 597 us against
        143 us). Its rounding follows the BLAS kernel, and so the CPU kind, as the convolution's own product does."""
        if x.ndim != 2 or x.dtype.kind != "f":
            return super().sum_rows(x)
        return x @ _ones(x.shape[1], x.dtype)

    def sum_columns(self, x: numpy.ndarray) -> numpy.ndarray:
        """One compiled pass for float32 rows in C order, adding row after row as NumPy's own reduction does (the
        same bits), at 2-4x its speed: (768, 128) in 15 us against 66. A single column is one contiguous run,
        which NumPy sums pairwise: that stays with NumPy."""
        kernels = _float32_kernel(x)
        if kernels is None or x.ndim != 2 or not x.flags.c_contiguous or x.shape[0] == 0 or x.shape[1] < 2:
            return super().sum_columns(x)
        out = numpy.empty(x.shape[1], numpy.float32)
        kernels.sum_columns(x, out)
        return out

    def attention(self, q: numpy.ndarray, k: numpy.ndarray, v: numpy.ndarray, mask: numpy.ndarray | None,
                  scale: float, keep: numpy.ndarray | None = None) -> tuple[numpy.ndarray, numpy.ndarray]:
        """Float32 batches from 2^20 multiply-adds without dropout, over OpenBLAS's threads: each (batch, head)
        matrix's products and softmax one after another on one thread (``blas_threads.attention``: the same bits as
        the reference math, at about 0.75x its time for a GPT's (12, 4, 64, 32) heads); else the reference math."""
        scores_shape = (*q.shape[:-1], k.shape[-2])
        rows_mask = None
        if keep is None and _large_float32_product(q, k.shape[-2]):
            rows_mask = _row_block(mask, scores_shape)
        if rows_mask is not None:
            from . import blas_threads  # as _split

            out = empty_like_layout(numpy, (*q.shape[:-1], v.shape[-1]), numpy.float32, q)
            weights = numpy.empty(scores_shape, numpy.float32)
            if blas_threads.attention(q, k, v, rows_mask, scale, out, weights):
                return out, weights
        return super().attention(q, k, v, mask, scale, keep)

    def attention_backward(self, g: numpy.ndarray, q: numpy.ndarray, k: numpy.ndarray, v: numpy.ndarray,
                           weights: numpy.ndarray, keep: numpy.ndarray | None, scale: float,
                           needs: tuple[bool, bool, bool], mask_grad: bool = False) -> tuple:
        """As ``attention``, without dropout or the mask's gradient; else the reference math."""
        if keep is None and not mask_grad and _large_float32_product(q, k.shape[-2]):
            from . import blas_threads  # as _split

            gq, gk, gv = (empty_like_layout(numpy, x.shape, numpy.float32, x) if wanted else None
                          for x, wanted in zip((q, k, v), needs))
            gs = numpy.empty(weights.shape, numpy.float32)
            if blas_threads.attention_backward(g, q, k, v, weights, scale, gq, gk, gv, gs):
                return gq, gk, gv, None
        return super().attention_backward(g, q, k, v, weights, keep, scale, needs, mask_grad)

    def matmul(self, a: numpy.ndarray, b: numpy.ndarray, out: numpy.ndarray | None = None) -> numpy.ndarray:
        """A batch of float32 products from 2^20 multiply-adds split over OpenBLAS's threads, each by the BLAS call
        NumPy makes for it (the same bits); NumPy's own loop runs each on one core."""
        if a.ndim >= 3 and a.ndim == b.ndim and a.shape[-1] == b.shape[-2] and _large_float32_product(a, b.shape[-1]):
            from . import blas_threads  # as _split

            result = numpy.empty((*a.shape[:-1], b.shape[-1]), a.dtype) if out is None else out
            if blas_threads.matmul(a, b, result):
                return result
        return numpy.matmul(a, b, out=out)

    def add_rows(self, out: numpy.ndarray, v: numpy.ndarray) -> None:
        """Over OpenBLAS's threads from PARALLEL_MIN float32 elements (one add per element: the same bits)."""
        fits = out.ndim == 2 and v.shape == out.shape[1:]
        if not (fits and _split("ADD_ROWS", out.size, (out, v), shape=out.shape, units=out.shape[0])):
            out += v

    def relu(self, x: numpy.ndarray) -> numpy.ndarray:
        """Against a zero of ``x``'s dtype: NumPy resolves a Python 0's type on every call, half a small ReLU's cost."""
        return numpy.maximum(x, _zero(x.dtype))

    def relu_backward(self, g: numpy.ndarray, out: numpy.ndarray) -> numpy.ndarray:
        """One compiled pass when ``g`` and ``out`` are float32 and laid out alike (as a ReLU between a convolution
        and a pooling has them); else the reference math, which is also quicker to call on small arrays."""
        if out.size < 4096:  # the reference math, inline: this is most of a small ReLU's cost
            gx = (out > _zero(out.dtype)).astype(g.dtype)  # (a float mask times g: g * bool takes twice as long)
            gx *= g
            return gx
        kernels = _float32_kernel(out)
        flat_g, flat_out = _flat(g), _flat(out)
        if kernels is None or flat_g is None or flat_out is None or g.strides != out.strides or g.dtype != out.dtype:
            return super().relu_backward(g, out)
        gx = numpy.empty_like(out)  # out's memory order, so that _flat gives the same element order
        kernels.relu_backward(flat_g, flat_out, _flat(gx))
        return gx

    def col2im(self, gcols: numpy.ndarray, padded_shape: tuple[int, int, int, int], kernel: tuple[int, int],
               stride: tuple[int, int], dilation: tuple[int, int]) -> numpy.ndarray:
        """One compiled pass for float32 columns in C order (as the convolution's product gives them): each channel's
        gradient is summed while it is in cache, where the reference math walks the whole array once per offset."""
        kernels = _float32_kernel(gcols)
        if kernels is None or not gcols.flags.c_contiguous:
            return super().col2im(gcols, padded_shape, kernel, stride, dilation)
        c, n = gcols.shape[0], gcols.shape[-1]
        gpadded = numpy.empty((c, *padded_shape, n), numpy.float32)
        kernels.col2im(gcols, stride, dilation, gpadded)
        return gpadded

    def max_pool2d(self, padded: numpy.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                   dilation: tuple[int, int], out_size: tuple[int, int]) -> tuple[numpy.ndarray, Any]:
        """One compiled pass for float32 in NCHW or batch-innermost (C, H, W, N) memory order, saving each window's
        argmax (uint8) for backward; the reference math for other layouts and kernels of over 255 offsets."""
        kernels = _float32_kernel(padded)
        planes = _planes_view(padded)
        if kernels is None or planes is None or kernel[0] * kernel[1] > 255:
            return super().max_pool2d(padded, kernel, stride, dilation, out_size)
        x4, nchw = planes
        out4 = numpy.empty((x4.shape[0], *out_size, x4.shape[3]), numpy.float32)
        arg = numpy.empty(out4.shape, numpy.uint8)
        kernels.max_pool(x4, kernel, stride, dilation, out4, arg)
        n, c = padded.shape[:2]
        out = out4.reshape(n, c, *out_size) if nchw else out4.transpose(3, 0, 1, 2)
        return out, PoolArgmax(arg, nchw, padded.shape, kernel, stride, dilation)

    def max_pool2d_backward(self, g: numpy.ndarray, saved: Any) -> numpy.ndarray:
        if not isinstance(saved, PoolArgmax):  # max_pool2d ran the reference math
            return super().max_pool2d_backward(g, saved)
        (n, c, hp, wp), arg = saved.padded_shape, saved.arg
        # g in the saved layout (a copy only if it came in another one)
        g4 = (numpy.ascontiguousarray(g, numpy.float32).reshape(arg.shape) if saved.nchw
              else numpy.ascontiguousarray(g.transpose(1, 2, 3, 0), numpy.float32))
        gx4 = numpy.empty((arg.shape[0], hp, wp, arg.shape[3]), numpy.float32)
        compiled_kernels().max_pool_backward(g4, arg, saved.kernel, saved.stride, saved.dilation, gx4)
        return gx4.reshape(n, c, hp, wp) if saved.nchw else gx4.transpose(3, 0, 1, 2)

    def erf(self, x: numpy.ndarray) -> numpy.ndarray:
        """float32 and narrower: ``erf_float32``. float64: SciPy's erf (exact to rounding) when SciPy is
        installed, else ``erf_approx``."""
        if x.dtype.kind == "f" and x.dtype.itemsize <= 4:
            return erf_float32(x)
        try:
            from scipy.special import erf
        except ImportError:
            return erf_approx(x)
        return erf(x)
