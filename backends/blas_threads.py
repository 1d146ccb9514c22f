"""The compiled kernels' second core: OpenBLAS's own threads run part of each large kernel (optional).

NumPy's OpenBLAS runs a large matrix product on all cores, and after it its worker threads spin for up
to 2^28 cycles waiting for the next one. A kernel that starts threads of its own finds the other core
taken: exact GELU on 393k elements right after a 768x128 @ 128x512 product took 7.5 ms in two halves on
Numba's threads against 0.19 ms on one core (``scripts/bench_ops.py --two-cores``). Handing OpenBLAS's
parallel jobs to Numba's threads instead (OpenBLAS's ``openblas_set_threads_callback_function``) made the
products themselves 1.4x slower here (a 1024^2 product: 10.3 ms against 7.2). So the kernels use OpenBLAS's
threads: ``blas_level1_thread``, the routine OpenBLAS's vector operations split their work with, calls
``run_part`` below on one part of a range per thread, and the spinning worker picks its part up at once.

Each part runs the same compiled code as one core does on its elements or rows, so results are the same bits
either way (``tests/test_blas_threads.py`` compares them). ``blas_level1_thread`` is OpenBLAS's internal
routine, not its API: ``threads()`` first checks it with a probe that marks each index it is given, and unless
each of 1,001 is marked exactly once, the kernels stay on one core. ``TENSORLITE_CPU_THREADS=1`` keeps them there too.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable

import numba
import numpy
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import numba_kernels as k

F32 = numpy.float32

# What run_part computes: the kernels that pay for a split (measured in docs/benchmarks.md), by elements or rows.
PROBE, GELU, GELU_BACKWARD, GELU_TANH, GELU_TANH_BACKWARD, ADAM, SOFTMAX, ADD_ROWS = range(8)
# The table run_part reads its work from (int64): kind, units to split, the 2-D arrays' shape and the rows of a
# softmax's mask, four arrays' addresses, then eight float32 scalar arguments in the last four entries.
KIND, UNITS, ROWS, COLUMNS, MASK_ROWS, ARRAYS, SCALARS = 0, 1, 2, 3, 4, 5, 9
TABLE = SCALARS + 4


@intrinsic
def _pointer(typingctx, address):  # noqa: ARG001 (Numba's signature)
    """The integer ``address`` as a ``void *``, for ``numba.carray``."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return types.voidptr(types.intp), codegen


@numba.njit(inline="always", **k.JIT)
def vector(table, i, lo, hi):
    """Elements lo:hi of the table's array i (contiguous float32)."""
    return numba.carray(_pointer(table[ARRAYS + i] + 4 * lo), hi - lo, numpy.float32)


@numba.njit(inline="always", **k.JIT)
def matrix(table, i, rows):
    """The table's array i, (rows, COLUMNS) float32 in C order."""
    return numba.carray(_pointer(table[ARRAYS + i]), (rows, table[COLUMNS]), numpy.float32)


def _load_kernels() -> None:
    """Load (or compile) each kernel run_part calls, before run_part: its compiled code then calls these very
    functions, so a part's bits are those of the kernel on one core. (Loaded after run_part, the kernels' copies
    compiled into run_part win, and GELU's backward came out 1 ulp apart on half the elements.)"""
    one, scalar = numpy.zeros(1, F32), F32(1)
    k.gelu(one, one), k.gelu_tanh(one, one), k.gelu_backward(one, one, one), k.gelu_tanh_backward(one, one, one)
    k.adam_update(one, one, one, one, *[scalar] * 7)


_load_kernels()

# OpenBLAS's legacy job: (m, n, k, alpha, a, lda, b, ldb, c, ldc, buffer). It passes a = lo * 4 (the start of this
# part, given a = 0 and lda = 1 in float32 units), m = hi - lo, and c = the table, untouched.
JOB = types.void(types.intp, types.intp, types.intp, types.float32, types.intp, types.intp, types.intp, types.intp,
                 types.intp, types.intp, types.intp)


@numba.cfunc(JOB, cache=True, error_model="numpy", fastmath=k.FASTMATH)  # the softmax's row inlines: its flags
def run_part(m, n, k_, alpha, a, lda, b, ldb, c, ldc, buffer):  # noqa: ARG001 (OpenBLAS's signature)
    """Units lo:hi of the work the table at ``c`` describes."""
    table = numba.carray(_pointer(c), TABLE, numpy.int64)
    lo = a >> 2
    hi = lo + m
    if lo < 0 or m < 0 or hi > table[UNITS]:  # never past the arrays, whatever the routine passes
        return
    kind = table[KIND]
    s = numba.carray(_pointer(c + 8 * SCALARS), 8, numpy.float32)
    if kind == PROBE:
        marks = vector(table, 0, lo, hi)
        for i in range(m):
            marks[i] += F32(1.0)
    elif kind == GELU:
        k.gelu(vector(table, 0, lo, hi), vector(table, 1, lo, hi))
    elif kind == GELU_BACKWARD:
        k.gelu_backward(vector(table, 0, lo, hi), vector(table, 1, lo, hi), vector(table, 2, lo, hi))
    elif kind == GELU_TANH:
        k.gelu_tanh(vector(table, 0, lo, hi), vector(table, 1, lo, hi))
    elif kind == GELU_TANH_BACKWARD:
        k.gelu_tanh_backward(vector(table, 0, lo, hi), vector(table, 1, lo, hi), vector(table, 2, lo, hi))
    elif kind == ADAM:
        k.adam_update(vector(table, 0, lo, hi), vector(table, 1, lo, hi), vector(table, 2, lo, hi),
                      vector(table, 3, lo, hi), s[0], s[1], s[2], s[3], s[4], s[5], s[6])
    elif kind == SOFTMAX:
        x, out = matrix(table, 0, table[ROWS]), matrix(table, 1, table[ROWS])
        mask = matrix(table, 2, table[MASK_ROWS])
        for r in range(lo, hi):
            k.softmax_row(x, out, r, s[0], mask, s[1] != 0)
    elif kind == ADD_ROWS:
        out, v = matrix(table, 0, table[ROWS]), vector(table, 1, 0, table[COLUMNS])
        for r in range(lo, hi):
            for j in range(v.size):
                out[r, j] += v[j]


class _OpenBLAS:
    """NumPy's OpenBLAS: its ``blas_level1_thread`` and thread count, and the mode that makes it split float32."""

    def __init__(self, library: ctypes.CDLL, get_num_threads: Callable[[], int]) -> None:
        self.level1_thread = library.blas_level1_thread
        self.level1_thread.restype = ctypes.c_int
        self.level1_thread.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                               ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                               ctypes.c_int64, ctypes.c_void_p, ctypes.c_int]
        self.get_num_threads = get_num_threads
        self.alpha = ctypes.c_double(0.0)
        self.mode = -1

    def run(self, table: numpy.ndarray, threads: int) -> None:
        self.level1_thread(self.mode, int(table[UNITS]), 0, 0, ctypes.byref(self.alpha), None, 1, None, 1,
                   table.ctypes.data, 0, run_part.address, threads)


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
    names = [form.format("get_num_threads") for form in ("scipy_openblas_{}64_", "scipy_openblas_{}",
                                                         "openblas_{}64_", "openblas_{}")]
    get_num_threads = next((getattr(library, name) for name in names if hasattr(library, name)), None)
    if get_num_threads is None or get_num_threads() < 2:  # one thread: OpenBLAS may have started no workers
        return None
    openblas = _OpenBLAS(library, get_num_threads)
    for mode in _SINGLE_MODES:
        openblas.mode = mode
        marks = numpy.zeros(1001, F32)
        openblas.run(_table(PROBE, marks.size, (marks,)), get_num_threads())
        if (marks == 1).all():
            return openblas
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
    table = numpy.zeros(TABLE, numpy.int64)
    table[:ARRAYS] = kind, units, *shape, *(0,) * (ARRAYS - 2 - len(shape))
    table[ARRAYS:ARRAYS + len(arrays)] = [a.ctypes.data for a in arrays]
    table[SCALARS:].view(F32)[:len(scalars)] = scalars
    return table


def threads() -> int:
    """How many threads a large kernel may split its work over: OpenBLAS's, if the probe passed; else 1."""
    openblas = _openblas()
    return 1 if openblas is None else openblas.get_num_threads()


def split(kind: int, units: int, arrays: tuple[numpy.ndarray, ...], scalars: tuple[float, ...] = (),
          shape: tuple[int, ...] = ()) -> bool:
    """Run ``kind`` on ``units`` (elements, or rows) over OpenBLAS's threads: True when it did; False, having done
    nothing, when they are not available or an array is not contiguous float32 (the caller then runs the kernel
    itself). ``shape``: a softmax's (rows, columns, rows of its mask)."""
    openblas, count = _openblas(), threads()
    if count < 2 or not all(a.dtype == F32 and a.flags.c_contiguous for a in arrays):
        return False
    openblas.run(_table(kind, units, arrays, scalars, shape), count)
    return True
