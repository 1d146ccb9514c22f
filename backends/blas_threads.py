"""The CPU's second core for work NumPy runs on one: OpenBLAS's own threads run part of each large compiled
kernel (GELU, softmax, Adam, a bias add) and of each batch of small matrix products (attention's).

NumPy's OpenBLAS runs a large matrix product on all cores, and after it its worker threads spin for up
to 2^28 cycles waiting for the next one. A kernel that starts threads of its own finds the other core
taken: exact GELU on 393k elements right after a 768x128 @ 128x512 product took 7.5 ms in two halves on
Numba's threads against 0.19 ms on one core (``scripts/bench_ops.py --two-cores``). Handing OpenBLAS's
parallel jobs to Numba's threads instead (OpenBLAS's ``openblas_set_threads_callback_function``) made the
products themselves 1.4x slower here (a 1024^2 product: 10.3 ms against 7.2). So the kernels use OpenBLAS's
threads: ``blas_level1_thread``, the routine OpenBLAS's vector operations split their work with, calls
``run_part`` below on one part of a range per thread, and the spinning worker picks its part up at once.

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

import numba
import numpy
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import numba_kernels as k

F32 = numpy.float32

# What run_part computes: the kernels that pay for a split (measured in docs/benchmarks.md), by elements or rows.
PROBE, GELU, GELU_BACKWARD, GELU_TANH, GELU_TANH_BACKWARD, ADAM, SOFTMAX, ADD_ROWS, MATMUL = range(9)
# The table run_part reads its work from (int64): kind, units to split, the 2-D arrays' shape and the rows of a
# softmax's mask, four arrays' addresses, then eight float32 scalar arguments in four entries.
KIND, UNITS, ROWS, COLUMNS, MASK_ROWS, ARRAYS, SCALARS = 0, 1, 2, 3, 4, 5, 9
# A batch of matrix products reads its own layout after KIND and UNITS (the batch's size): the inner batch dimension's
# size, cblas_sgemm's address, then sgemm's arguments (transpose flags, m, p, n) and for each of A, B and C its
# address, its outer and inner batch strides in bytes, and its leading dimension.
INNER, SGEMM, TRANS_A, TRANS_B, M, P, N, A, B, C = 2, 3, 4, 5, 6, 7, 8, 9, 13, 17
TABLE = 21


@intrinsic
def _pointer(typingctx, address):  # noqa: ARG001 (Numba's signature)
    """The integer ``address`` as a ``void *``, for ``numba.carray``."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return types.voidptr(types.intp), codegen


_I32, _I64, _F32 = ir.IntType(32), ir.IntType(64), ir.FloatType()


@intrinsic
def _sgemm(typingctx, address, trans_a, trans_b, m, p, n, a, lda, b, ldb, c, ldc):  # noqa: ARG001
    """C = A @ B by ``cblas_sgemm`` (at ``address``, 64-bit integers) in row-major order: A (m, n), B (n, p)."""
    sig = types.void(types.intp, types.int32, types.int32, *[types.intp] * 9)

    def codegen(context, builder, signature, args):
        floats = _F32.as_pointer()
        kind = ir.FunctionType(ir.VoidType(), [_I32, _I32, _I32, _I64, _I64, _I64, _F32, floats, _I64, floats, _I64,
                                               _F32, floats, _I64])
        function = builder.inttoptr(args[0], kind.as_pointer())
        a, b, c = (builder.inttoptr(v, floats) for v in (args[6], args[8], args[10]))
        row_major, one, zero = ir.Constant(_I32, 101), ir.Constant(_F32, 1.0), ir.Constant(_F32, 0.0)
        builder.call(function, [row_major, args[1], args[2], args[3], args[4], args[5], one, a, args[7], b, args[9],
                                zero, c, args[11]])
        return context.get_dummy_value()

    return sig, codegen


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
    elif kind == MATMUL:
        inner = table[INNER]
        for i in range(lo, hi):
            outer, j = i // inner, i % inner
            _sgemm(table[SGEMM], numba.int32(table[TRANS_A]), numba.int32(table[TRANS_B]), table[M], table[P],
                   table[N], table[A] + outer * table[A + 1] + j * table[A + 2], table[A + 3],
                   table[B] + outer * table[B + 1] + j * table[B + 2], table[B + 3],
                   table[C] + outer * table[C + 1] + j * table[C + 2], table[C + 3])
    elif kind == ADD_ROWS:
        out, v = matrix(table, 0, table[ROWS]), vector(table, 1, 0, table[COLUMNS])
        for r in range(lo, hi):
            for j in range(v.size):
                out[r, j] += v[j]


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
        openblas.run(_table(PROBE, marks.size, (marks,)), get_num_threads())
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


_ONE_THREAD_EACH = threading.Lock()  # held while OpenBLAS's thread count is 1 for a batch's jobs


def _blas_layout(row_stride: int, column_stride: int, rows: int, columns: int) -> tuple[int, int] | None:
    """(cblas transpose flag, leading dimension) of a float32 matrix with these byte strides, as NumPy's matmul
    chooses them (``is_blasable2d``), or None where NumPy would not call BLAS for it."""
    for transpose, outer, inner, width in ((111, row_stride, column_stride, columns), (112, column_stride, row_stride,
                                                                                        rows)):
        if inner == 4 and outer % 4 == 0 and width <= outer // 4 < 2**31:
            return transpose, outer // 4
    return None


def matmul(a: numpy.ndarray, b: numpy.ndarray, out: numpy.ndarray) -> bool:
    """``numpy.matmul(a, b, out=out)`` for a batch of float32 matrices (3-D or 4-D, one batch shape), its products
    split over OpenBLAS's threads, each by the ``cblas_sgemm`` call NumPy makes for it (the same bits): True when it
    did; False, having done nothing, for anything NumPy would compute another way."""
    openblas, count = _openblas(), threads()
    if count < 2 or openblas.sgemm is None or openblas.set_num_threads is None:
        return False
    if not (a.ndim == b.ndim == out.ndim and a.ndim in (3, 4) and a.shape[:-2] == b.shape[:-2] == out.shape[:-2]
            and a.dtype == b.dtype == out.dtype == F32):
        return False
    (m, n), p = a.shape[-2:], b.shape[-1]
    layouts = [_blas_layout(*x.strides[-2:], *x.shape[-2:]) for x in (a, b, out)]
    if (min(m, n, p) < 2 or None in layouts or layouts[2][0] != 111 or a.ctypes.data == b.ctypes.data
            or numpy.may_share_memory(out, a) or numpy.may_share_memory(out, b)):
        return False  # vectors (gemv), a layout NumPy loops over, A @ A.T (syrk), an output NumPy would buffer
    inner = a.shape[1] if a.ndim == 4 else 1
    table = numpy.zeros(TABLE, numpy.int64)
    table[:N + 1] = MATMUL, math.prod(a.shape[:-2]), inner, openblas.sgemm, layouts[0][0], layouts[1][0], m, p, n
    for start, x, (_, leading) in zip((A, B, C), (a, b, out), layouts):
        outer_stride, inner_stride = x.strides[:-2] if x.ndim == 4 else (x.strides[0], 0)
        table[start:start + 4] = x.ctypes.data, outer_stride, inner_stride, leading
    with _ONE_THREAD_EACH:  # another caller's restore must not reach this call's jobs
        openblas.set_num_threads(1)  # each job's sgemm on its own thread: never OpenBLAS's threads from within one
        try:
            openblas.run(table, count)
        finally:
            openblas.set_num_threads(count)
    return True
