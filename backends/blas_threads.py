"""The CPU's second core for work NumPy runs on one: OpenBLAS's own threads run part of each large compiled
kernel (GELU, softmax, Adam, a bias add) and of each batch of small matrix products: attention's, where each
(batch, head) matrix's products and softmax run one after another on one thread, while its scores are in cache.

NumPy's OpenBLAS runs a large matrix product on all cores, and after it its worker threads spin for up
to 2^28 cycles waiting for the next one. A kernel that starts threads of its own finds the other core
taken: exact GELU on 393k elements right after a 768x128 @ 128x512 product took 7.5 ms in two halves on
Numba's threads against 0.19 ms on one core (``scripts/bench_ops.py --two-cores``). Handing OpenBLAS's
parallel jobs to Numba's threads instead (OpenBLAS's ``openblas_set_threads_callback_function``) made the
products themselves 1.4x slower here (a 1024^2 product: 10.3 ms against 7.2). So the kernels use OpenBLAS's
threads: ``blas_level1_thread``, the routine OpenBLAS's vector operations split their work with, calls
``run_part`` (in ``numba_kernels.py``, beside the kernels it runs) on one part of a range per thread, and the
spinning worker picks its part up at once.

Each part runs the same compiled code as one core does on its elements or rows, and each matrix of a batch the
``cblas_sgemm`` call NumPy's matmul makes for it (NumPy's own loop calls them one at a time), so results are the
same bits either way (``tests/test_blas_threads.py`` compares them). ``blas_level1_thread`` is OpenBLAS's internal
routine, not its API: ``threads()`` first checks it with a probe that marks each index it is given, and unless
each of 1,001 is marked exactly once, the kernels stay on one core. ``TENSORLITE_CPU_THREADS=1`` keeps them there too.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import threading
from collections.abc import Callable

import numpy

from . import numba_kernels as k

F32 = numpy.float32


class _OpenBLAS:
    """NumPy's OpenBLAS: its ``blas_level1_thread`` and thread count, and the mode that makes it split float32."""

    def __init__(self, library: ctypes.CDLL, get_num_threads: Callable[[], int],
                 set_num_threads: Callable[[int], None] | None, sgemm: int | None) -> None:
        self.level1_thread = library.blas_level1_thread
        self.level1_thread.restype = ctypes.c_int
        self.level1_thread.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                                       ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                                       ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int]
        self.get_num_threads, self.set_num_threads, self.sgemm = get_num_threads, set_num_threads, sgemm
        self.alpha = ctypes.c_double(0.0)
        self.mode = -1

    def run(self, table: numpy.ndarray, threads: int) -> None:
        self.level1_thread(self.mode, int(table[k.UNITS]), 0, 0, ctypes.byref(self.alpha), None, 1, None, 1,
                           table.ctypes.data, 0, k.part_runner().address, threads)


# OpenBLAS's mode for real float32 work: BLAS_SINGLE is 2 since 0.3.10 (when bfloat16 came), 0 before.
_SINGLE_MODES = (0x2, 0x0)


@functools.cache
def _openblas() -> _OpenBLAS | None:
    """NumPy's OpenBLAS, if it exports ``blas_level1_thread``, runs on more than one thread when first asked, and
    passes the probe in one of its float32 modes; else None, for the rest of the process."""
    if os.environ.get("TENSORLITE_CPU_THREADS", "") == "1":
        return None
    library = _numpy_openblas()
    if library is None or not hasattr(library, "blas_level1_thread"):
        return None
    get_num_threads, set_num_threads = (_symbol(library, name) for name in ("get_num_threads", "set_num_threads"))
    if get_num_threads is None or get_num_threads() < 2:  # one thread: OpenBLAS may have started no workers
        return None
    sgemm = next((getattr(library, name) for name in ("scipy_cblas_sgemm64_", "cblas_sgemm64_")  # 64-bit integers
                  if hasattr(library, name)), None)
    openblas = _OpenBLAS(library, get_num_threads, set_num_threads,
                         None if sgemm is None else ctypes.cast(sgemm, ctypes.c_void_p).value)
    for mode in _SINGLE_MODES:
        openblas.mode = mode
        marks = numpy.zeros(1001, F32)
        openblas.run(_table(k.PROBE, marks.size, (marks,)), get_num_threads())
        if (marks == 1).all():
            return openblas
    return None


def _symbol(library: ctypes.CDLL, name: str) -> Callable | None:
    """OpenBLAS's function ``openblas_<name>`` under the name the library gives it, if it has it."""
    for form in ("scipy_openblas_{}64_", "scipy_openblas_{}", "openblas_{}64_", "openblas_{}"):
        if hasattr(library, form.format(name)):
            return getattr(library, form.format(name))
    return None


def _numpy_openblas() -> ctypes.CDLL | None:
    """The OpenBLAS library NumPy loaded into this process (Linux: from /proc/self/maps), if any."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line}
    except OSError:
        return None
    numpy_dir = os.path.dirname(os.path.dirname(numpy.__file__))  # site-packages: numpy.libs sits beside numpy
    for path in sorted(paths):
        if path.startswith(numpy_dir):
            return ctypes.CDLL(path)
    return None


def _table(kind: int, units: int, arrays: tuple[numpy.ndarray, ...], scalars: tuple[float, ...] = (),
           shape: tuple[int, ...] = ()) -> numpy.ndarray:
    table = numpy.zeros(k.TABLE, numpy.int64)
    table[:k.ARRAYS] = kind, units, *shape, *(0,) * (k.ARRAYS - 2 - len(shape))
    table[k.ARRAYS:k.ARRAYS + len(arrays)] = [a.ctypes.data for a in arrays]
    table[k.SCALARS:].view(F32)[:len(scalars)] = scalars
    return table


def threads() -> int:
    """How many threads a large kernel may split its work over: OpenBLAS's, if the probe passed; else 1."""
    openblas = _openblas()
    return 1 if openblas is None else openblas.get_num_threads()


def split(kind: str, units: int, arrays: tuple[numpy.ndarray, ...], scalars: tuple[float, ...] = (),
          shape: tuple[int, ...] = ()) -> bool:
    """Run ``kind`` on ``units`` (elements, or rows) over OpenBLAS's threads: True when it did; False, having done
    nothing, when they are not available or an array is not contiguous float32 (the caller then runs the kernel
    itself). ``shape``: a softmax's (rows, columns, rows of its mask)."""
    openblas, count = _openblas(), threads()
    if count < 2 or not all(a.dtype == F32 and a.flags.c_contiguous for a in arrays):
        return False
    openblas.run(_table(getattr(k, kind), units, arrays, scalars, shape), count)
    return True


_ONE_THREAD_EACH = threading.Lock()  # held while OpenBLAS's thread count is 1 for a batch's jobs


def _blas_layout(row_stride: int, column_stride: int, rows: int, columns: int) -> tuple[int, int] | None:
    """(cblas transpose flag, leading dimension) of a float32 matrix with these byte strides, as NumPy's matmul
    chooses them (``is_blasable2d``), or None where NumPy would not call BLAS for it."""
    for transpose, outer, inner, width in ((111, row_stride, column_stride, columns), (112, column_stride, row_stride,
                                                                                        rows)):
        if inner == 4 and outer % 4 == 0 and width <= outer // 4 < 2**31:
            return transpose, outer // 4
    return None


def _batches(table: numpy.ndarray, kind: int, arrays: tuple[numpy.ndarray, ...]) -> bool:
    """Start a table for ``kind``, one unit per matrix of the batch the float32 ``arrays`` share (3-D or 4-D, one
    batch shape): False if they do not, or OpenBLAS cannot run sgemm one thread each."""
    openblas, batch = _openblas(), arrays[0].shape[:-2]
    if threads() < 2 or openblas.sgemm is None or openblas.set_num_threads is None:
        return False
    if len(batch) not in (1, 2) or not all(x.shape[:-2] == batch and x.ndim == len(batch) + 2 and x.dtype == F32
                                           for x in arrays):
        return False
    table[:k.PRODUCTS] = kind, math.prod(batch), batch[1] if len(batch) == 2 else 1, openblas.sgemm
    return True


def _product(table: numpy.ndarray, i: int, a: numpy.ndarray, b: numpy.ndarray, c: numpy.ndarray) -> bool:
    """Write product i of the table, ``c = a @ b`` for each matrix of the batch, as the ``cblas_sgemm`` call NumPy's
    matmul makes for it: False, having written nothing, for a product NumPy would compute another way."""
    (m, n), p = a.shape[-2:], b.shape[-1]
    layouts = [_blas_layout(*x.strides[-2:], *x.shape[-2:]) for x in (a, b, c)]
    if (min(m, n, p) < 2 or None in layouts or layouts[2][0] != 111 or a.ctypes.data == b.ctypes.data
            or numpy.may_share_memory(c, a) or numpy.may_share_memory(c, b)):
        return False  # vectors (gemv), a layout NumPy loops over, A @ A.T (syrk), an output NumPy would buffer
    at = k.PRODUCTS + i * k.PRODUCT
    table[at:at + k.A] = layouts[0][0], layouts[1][0], m, p, n
    for start, x, (_, leading) in zip((k.A, k.B, k.C), (a, b, c), layouts):
        table[at + start:at + start + 4] = x.ctypes.data, *_batch_strides(x), leading
    return True


def _batch_strides(x: numpy.ndarray) -> tuple[int, int]:
    """The outer and inner batch strides of a 4-D array in bytes; a 3-D array's, and 0."""
    return x.strides[:2] if x.ndim == 4 else (x.strides[0], 0)


def _run_one_thread_each(table: numpy.ndarray) -> bool:
    """Run a table of products: each job's sgemm calls on its own thread, never OpenBLAS's threads within one. False,
    having run nothing, while another caller's table runs: its thread count of 1 is not the one to give back."""
    if not _ONE_THREAD_EACH.acquire(blocking=False):
        return False
    try:
        openblas = _openblas()
        count = openblas.get_num_threads()  # read under the lock: no other table has set it to 1
        if count < 2:
            return False
        openblas.set_num_threads(1)
        try:
            openblas.run(table, count)
        finally:
            openblas.set_num_threads(count)
        return True
    finally:
        _ONE_THREAD_EACH.release()


def matmul(a: numpy.ndarray, b: numpy.ndarray, out: numpy.ndarray) -> bool:
    """``numpy.matmul(a, b, out=out)`` for a batch of float32 matrices (3-D or 4-D, one batch shape), its products
    split over OpenBLAS's threads, each by the ``cblas_sgemm`` call NumPy makes for it (the same bits): True when it
    did; False, having done nothing, for anything NumPy would compute another way, or while another caller's batch
    runs."""
    table = numpy.zeros(k.TABLE, numpy.int64)
    if not (_batches(table, k.MATMUL, (a, b, out)) and _product(table, 0, a, b, out)):
        return False
    return _run_one_thread_each(table)


def attention(q: numpy.ndarray, key: numpy.ndarray, v: numpy.ndarray, mask: numpy.ndarray, scale: float,
              out: numpy.ndarray, weights: numpy.ndarray) -> bool:
    """``Backend.attention`` for float32 q (..., L, E), k (..., S, E), v (..., S, Ev) of one batch shape (3-D or
    4-D), into ``out`` (..., L, Ev) and the C-order ``weights`` (..., L, S): each (batch, head) matrix's two products
    and its softmax (the additive ``mask``: an (L, S) or (1, S) float32 block) one after another on one of OpenBLAS's
    threads, while its scores are in cache. Each step is the call or kernel the step-by-step math runs for that
    matrix (the same bits). True when it did; False, having done nothing, where that math would not use them or
    while another caller's batch runs."""
    table = numpy.zeros(k.TABLE, numpy.int64)
    if not (_batches(table, k.ATTENTION, (q, key, v, out, weights)) and weights.flags.c_contiguous
            and mask.dtype == F32 and mask.flags.c_contiguous and mask.shape[1] == key.shape[-2]
            and _product(table, 0, q, numpy.swapaxes(key, -1, -2), weights) and _product(table, 1, weights, v, out)):
        return False
    table[k.ATTENTION_MASK:k.ATTENTION_SCALE] = mask.ctypes.data, mask.shape[0]
    table[k.ATTENTION_SCALE:k.ATTENTION_SCALE + 1].view(F32)[:] = scale, 1.0  # rows with no visible key: zeros
    return _run_one_thread_each(table)


def attention_backward(g: numpy.ndarray, q: numpy.ndarray, key: numpy.ndarray, v: numpy.ndarray,
                       weights: numpy.ndarray, scale: float, gq: numpy.ndarray | None, gk: numpy.ndarray | None,
                       gv: numpy.ndarray | None, gs: numpy.ndarray) -> bool:
    """``Backend.attention_backward`` without dropout or the mask's gradient, as ``attention``: into gq, gk and gv
    (None: not wanted), with ``gs`` (..., L, S) in C order for each matrix's dP and dS. True when it did."""
    table = numpy.zeros(k.TABLE, numpy.int64)
    wanted = [x for x in (gq, gk, gv) if x is not None]
    if not (_batches(table, k.ATTENTION_BACKWARD, (g, q, key, v, weights, gs, *wanted)) and weights.flags.c_contiguous
            and gs.flags.c_contiguous and _product(table, 1, g, numpy.swapaxes(v, -1, -2), gs)):
        return False
    products = ((gv, 0, numpy.swapaxes(weights, -1, -2), g, 4), (gq, 2, gs, key, 1),
                (gk, 3, numpy.swapaxes(gs, -1, -2), q, 2))
    for out, i, a, b, bit in products:
        if out is not None:
            if not _product(table, i, a, b, out):
                return False
            table[k.ATTENTION_NEEDS] |= bit
    table[k.ATTENTION_SCALE:k.ATTENTION_SCALE + 1].view(F32)[0] = scale
    table[k.ATTENTION_WEIGHTS:k.ATTENTION_WEIGHTS + 3] = weights.ctypes.data, *_batch_strides(weights)
    return _run_one_thread_each(table)
