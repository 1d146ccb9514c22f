"""Compiled CPU kernels: one pass over memory where NumPy needs many (optional, through Numba).

NumPy runs an expression such as exact GELU as a chain of whole-array passes, each writing a
temporary: about twenty for ``x * Phi(x)`` with a float32 ``erf``. On a CPU whose memory is slower
than its arithmetic, the passes are the cost. Each kernel here reads its inputs once and writes its
output once, with the arithmetic in SIMD registers, and is imported only by ``NumpyBackend`` on the
first call that can use it (``numba_kernels()``), never by ``import tensorlite``.

``run_part``, at the end, runs one part of a large kernel's work on one of OpenBLAS's threads
(``blas_threads.py`` hands the parts out). All compiled code lives in this one file, for Numba's cache (see there).

The kernels are float32 only: float64 work (gradient checks) keeps the exact NumPy path. Each is a
plain loop that LLVM vectorises; two things keep it so. ``error_model="numpy"`` drops Python's
zero-division check, and the fast-math flags allow contraction and reassociation but not
``nnan``/``ninf``: NaN and infinity propagate as in NumPy, so the non-finite checks still see them.

Transcendental functions are written out as polynomials, since a call to the C library's ``erff`` or
``expf`` stops vectorisation:

- ``erf32``: ``z P(z^2) / Q(z^2)`` on ``z`` clamped to [-4, 4] (erf is 1 to float32 beyond), a rational
  least-squares fit made for this file; absolute error below 5e-7 in float32 arithmetic.
- ``exp32``: ``2^n exp(r)`` with ``n`` the nearest integer to ``y / ln 2`` and ``|r| <= ln(2) / 2``
  (Cody-Waite, degree-7 Taylor polynomial), ``2^n`` written straight into a float's exponent bits;
  relative error below 1.1e-7 for ``y`` in [-20, 0], growing to 3e-7 at -87 (the range reduction's), 0 below.
"""

from __future__ import annotations

import functools
import math

import numba
import numba.core.ccallback
import numpy
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

F32 = numpy.float32
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}  # not nnan / ninf: NaN and inf must propagate
JIT = {"cache": True, "error_model": "numpy", "fastmath": FASTMATH, "nogil": True}
IN_ORDER = {**JIT, "fastmath": False}  # each operation rounded as written (no FMA): an optimizer step as PyTorch's

# erf(z) = z P(z^2) / Q(z^2) on [-4, 4]
_P = [F32(c) for c in (1.12837918e+00, 1.84715104e-01, 5.43322920e-02, 3.83960133e-03, 3.82655194e-04,
                       4.77944287e-06, -1.36614758e-08)]
_Q = [F32(c) for c in (1.0, 4.97033043e-01, 1.13827446e-01, 1.54535323e-02, 1.30954385e-03, 6.39988773e-05)]
P0, P1, P2, P3, P4, P5, P6 = _P
Q0, Q1, Q2, Q3, Q4, Q5 = _Q
LOG2E, LN2_HI, LN2_LO = F32(1.4426950408889634), F32(0.693145751953125), F32(1.428606765330187e-06)
E2, E3, E4, E5, E6, E7 = (F32(1 / math.factorial(k)) for k in range(2, 8))
HALF, ONE = F32(0.5), F32(1.0)
FLOAT32_MIN, NEG_INF = F32(numpy.finfo(numpy.float32).min), F32(-numpy.inf)
SQRT1_2 = F32(1 / math.sqrt(2))
INV_SQRT_2PI = F32(1 / math.sqrt(2 * math.pi))
TANH_K, TANH_C = F32(math.sqrt(2 / math.pi)), F32(0.044715)


@numba.njit(inline="always", **JIT)
def erf32(z):
    """erf(z); exactly +-1 for |z| >= 4, as float32 rounds it (and for NaN: the kernels' x factor carries it)."""
    c = z if z < F32(4.0) else F32(4.0)  # comparisons, not min/max, which branch on NaN and stop vectorisation
    c = c if c > F32(-4.0) else F32(-4.0)
    t = c * c
    p = (((((P6 * t + P5) * t + P4) * t + P3) * t + P2) * t + P1) * t + P0
    q = ((((Q5 * t + Q4) * t + Q3) * t + Q2) * t + Q1) * t + Q0
    r = c * p / q
    return r if abs(z) < F32(4.0) else (ONE if z > 0 else -ONE)


@numba.njit(inline="always", **JIT)
def exp32(y):
    """exp(y) for y <= 0; 0 below -87, where float32 underflows anyway."""
    c = y if y > F32(-87.0) else F32(-87.0)
    m = numpy.int32(c * -LOG2E + HALF)  # round(-y / ln 2), y <= 0 so truncation rounds
    n = F32(m)
    r = (c + n * LN2_HI) + n * LN2_LO  # c - (-n) ln 2, in [-ln2 / 2, ln2 / 2]
    e = ONE + r * (ONE + r * (E2 + r * (E3 + r * (E4 + r * (E5 + r * (E6 + r * E7))))))
    s = numpy.int32((127 - m) << 23).view(F32)  # 2^-m (m in [0, 126]) written as its exponent bits
    e = e * s if y >= F32(-87.0) else F32(0.0)
    return e if y == y else y  # NaN in, NaN out


@numba.njit(inline="always", **JIT)
def tanh32(u):
    e = exp32(F32(-2.0) * abs(u))  # tanh |u| = (1 - e) / (1 + e), e = exp(-2 |u|) in (0, 1]
    t = (ONE - e) / (ONE + e)
    return t if u >= 0 else -t


@numba.njit(**JIT)
def gelu(x, out):
    """out = x Phi(x), Phi the standard normal CDF (x, out: float32, 1-D, contiguous)."""
    for i in range(x.size):
        v = x[i]
        out[i] = v * HALF * (ONE + erf32(v * SQRT1_2))


@numba.njit(**JIT)
def gelu_backward(g, x, out):
    """out = g (Phi(x) + x phi(x)), phi the standard normal density."""
    for i in range(x.size):
        v = x[i]
        cdf = HALF * (ONE + erf32(v * SQRT1_2))
        out[i] = g[i] * (cdf + v * exp32(-HALF * v * v) * INV_SQRT_2PI)


@numba.njit(**JIT)
def gelu_tanh(x, out):
    """out = x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2, GPT-2's GELU."""
    for i in range(x.size):
        v = x[i]
        out[i] = HALF * v * (ONE + tanh32(TANH_K * (v + TANH_C * v * v * v)))


@numba.njit(**JIT)
def gelu_tanh_backward(g, x, out):
    for i in range(x.size):
        v = x[i]
        t = tanh32(TANH_K * (v + TANH_C * v * v * v))
        dt = (ONE - t * t) * TANH_K * (ONE + F32(3.0) * TANH_C * v * v)
        out[i] = g[i] * (HALF * (ONE + t) + HALF * v * dt)


@numba.njit(inline="always", **JIT)
def larger(a, b):
    """a if a > b else b: a NaN ``a`` loses, as in the softmax's max (its exp still makes the row NaN)."""
    return a if a > b else b


@numba.njit(inline="always", **JIT)
def max8(x, r):
    """The largest of row r of x (R, n), kept in eight independent running maxima: one running maximum is a
    chain of dependent compares that LLVM cannot vectorise (a max reduction needs ``nnan``), 4 cycles a value."""
    n = x.shape[1]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = NEG_INF
    j = 0
    while j + 8 <= n:
        m0, m1, m2, m3 = larger(x[r, j], m0), larger(x[r, j + 1], m1), larger(x[r, j + 2], m2), larger(x[r, j + 3], m3)
        m4, m5 = larger(x[r, j + 4], m4), larger(x[r, j + 5], m5)
        m6, m7 = larger(x[r, j + 6], m6), larger(x[r, j + 7], m7)
        j += 8
    for i in range(j, n):
        m0 = larger(x[r, i], m0)
    return larger(larger(larger(m0, m1), larger(m2, m3)), larger(larger(m4, m5), larger(m6, m7)))


@numba.njit(inline="always", **JIT)
def softmax_row(x, out, r, scale, mask, empty_rows_zero):
    """Row r of ``softmax_rows``: read once from memory, its three passes (max, exp and sum, scale) in cache."""
    n = x.shape[1]
    m = r % mask.shape[0]
    for j in range(n):
        out[r, j] = x[r, j] * scale + mask[m, j]
    row_max = max8(out, r)
    if empty_rows_zero and row_max < FLOAT32_MIN:
        row_max = FLOAT32_MIN  # all -inf: exp(-inf - finite) = 0, not NaN
    total = F32(0.0)
    for j in range(n):
        e = exp32(out[r, j] - row_max)
        out[r, j] = e
        total += e
    if empty_rows_zero and total < ONE:  # a row with a visible score sums to >= 1
        total = ONE
    inv = ONE / total
    for j in range(n):
        out[r, j] *= inv


@numba.njit(**JIT)
def softmax_rows(x, out, scale, mask, empty_rows_zero):
    """out[r] = softmax(scale * x[r] + mask[r % L]) for each row r of x (R, n); mask (L, n) (zeros (1, n) for none).

    ``empty_rows_zero``: a row with no finite score gets zeros (attention's rule) instead of NaN. ``out`` may
    be ``x``.
    """
    for r in range(x.shape[0]):
        softmax_row(x, out, r, scale, mask, empty_rows_zero)


@numba.njit(**JIT)
def log_softmax_rows(x, logp, p):
    """logp[r] = x[r] - max - log(sum(exp(x[r] - max))) and p[r] = exp(logp[r]) for each row r of x (R, n), n >= 1:
    cross entropy's log-probabilities and the softmax it keeps for backward. A NaN or +inf makes its row NaN."""
    n = x.shape[1]
    for r in range(x.shape[0]):
        row_max = max8(x, r)  # (a NaN loses here, but exp(NaN - max) makes the total, and so the row, NaN)
        total = F32(0.0)
        for j in range(n):
            shifted = x[r, j] - row_max
            logp[r, j] = shifted  # kept, not recomputed below: fast math would regroup x - (max + log total),
            e = exp32(shifted)    # whose sum rounds to the logits' scale
            p[r, j] = e
            total += e
        log_total = numpy.log(total)
        inv = ONE / total
        for j in range(n):
            logp[r, j] -= log_total
            p[r, j] *= inv


@numba.njit(**JIT)
def softmax_backward_rows(g, p, out, scale):
    """out[r] = scale * p[r] * (g[r] - sum(g[r] * p[r])) for each row r: the gradient of the softmax's input,
    given that of its output ``g`` and the softmax ``p`` (R, n). ``out`` may be ``g``."""
    rows, n = p.shape
    for r in range(rows):
        dot = F32(0.0)
        for j in range(n):
            dot += g[r, j] * p[r, j]
        for j in range(n):
            out[r, j] = scale * p[r, j] * (g[r, j] - dot)


@numba.njit(**JIT)
def rotary(x, cos, sin, sign, out):
    """out[a, t, m] = [x1 cos - s x2 sin, x2 cos + s x1 sin] with x1, x2 the halves of x[a, t, m] (x, out
    (A, T, M, D), any strides), cos and sin the rows t of (T, D / 2) tables, and s = ``sign`` (1, or -1 to
    rotate back)."""
    outer, positions, inner, d = x.shape
    half = d // 2
    for a in range(outer):
        for t in range(positions):
            for m in range(inner):
                for j in range(half):
                    c, s = cos[t, j], sign * sin[t, j]
                    x1, x2 = x[a, t, m, j], x[a, t, m, half + j]
                    out[a, t, m, j] = x1 * c - x2 * s
                    out[a, t, m, half + j] = x2 * c + x1 * s


@numba.njit(**JIT)
def layer_norm_rows(x, weight, bias, eps, out, mean, rstd):
    """out[r] = (x[r] - mean[r]) * rstd[r] * weight + bias for each row r of x (N, D), with the row's mean and
    1 / sqrt(biased variance + eps), which it stores in ``mean`` and ``rstd`` (N,) for the backward pass."""
    rows, n = x.shape
    count = F32(n)  # float32: ``total / n`` would make the whole row's arithmetic float64, at half the speed
    for r in range(rows):
        total = F32(0.0)
        for j in range(n):
            total += x[r, j]
        mu = total / count
        total = F32(0.0)
        for j in range(n):
            d = x[r, j] - mu
            total += d * d
        inv = ONE / numpy.sqrt(total / count + eps)
        for j in range(n):
            out[r, j] = (x[r, j] - mu) * inv * weight[j] + bias[j]
        mean[r] = mu
        rstd[r] = inv


@numba.njit(**JIT)
def layer_norm_backward_rows(g, x, weight, mean, rstd, gx, gw, gb):
    """Gradients of ``layer_norm_rows`` from that of its output g (N, D): gx (N, D), and gw, gb (D,) summed over
    rows. With xhat = (x - mean) * rstd and dxhat = g * weight, gx = rstd (dxhat - mean(dxhat) - xhat
    mean(dxhat xhat)), means over the row; gw = sum(g xhat), gb = sum(g)."""
    rows, n = x.shape
    count = F32(n)  # (as in layer_norm_rows: float32 throughout)
    gw[:] = 0
    gb[:] = 0
    for r in range(rows):
        mu, inv = mean[r], rstd[r]
        total, total_x = F32(0.0), F32(0.0)
        for j in range(n):
            xhat = (x[r, j] - mu) * inv
            dxhat = g[r, j] * weight[j]
            total += dxhat
            total_x += dxhat * xhat
            gw[j] += g[r, j] * xhat
            gb[j] += g[r, j]
        total /= count
        total_x /= count
        for j in range(n):
            xhat = (x[r, j] - mu) * inv
            gx[r, j] = inv * (g[r, j] * weight[j] - total - xhat * total_x)


@numba.njit(**IN_ORDER)
def adam_update(p, g, m, v, decay, one_minus_beta1, beta2, one_minus_beta2, step_size, bias2_sqrt, eps):
    """One Adam(W) step on flat float32 arrays, in place, in one pass, rounded as PyTorch's sequence of ops:
    p *= decay (AdamW's weight decay), m += (1 - beta1) (g - m), v = beta2 v + (1 - beta2) g^2,
    p -= step_size (m / (sqrt(v) / bias2_sqrt + eps))."""
    for i in range(p.size):
        gi = g[i]
        mi = m[i] + one_minus_beta1 * (gi - m[i])
        vi = beta2 * v[i] + one_minus_beta2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        pi = p[i] * decay
        p[i] = pi - step_size * (mi / (numpy.sqrt(vi) / bias2_sqrt + eps))


@numba.njit(**JIT)
def col2im(gcols, stride, dilation, gpadded):
    """gpadded (C, Hp, Wp, N) = the column gradient gcols (C, KH, KW, OH, OW, N) added back onto the input
    positions each kernel offset read; one channel at a time, so that its sums stay in cache."""
    channels, kh, kw, oh_size, ow_size, inner = gcols.shape
    (sh, sw), (dh, dw) = stride, dilation
    for ch in range(channels):
        gpadded[ch] = 0
        for i in range(kh):
            for j in range(kw):
                for oh in range(oh_size):
                    r = oh * sh + i * dh
                    for ow in range(ow_size):
                        c = ow * sw + j * dw
                        for q in range(inner):
                            gpadded[ch, r, c, q] += gcols[ch, i, j, oh, ow, q]


@numba.njit(**JIT)
def max_pool(x, kernel, stride, dilation, out, arg):
    """Max pooling of x (P, H, W, Q) over (H, W) windows into out (P, OH, OW, Q), and each window's first maximum
    as an offset i * KW + j in ``arg`` (uint8). P and Q are whatever the layout puts outside and inside (channels
    and batch), so the innermost loop runs along memory. NaN wins, as in PyTorch."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    planes, oh_size, ow_size, inner = out.shape
    for p in range(planes):
        for oh in range(oh_size):
            for ow in range(ow_size):
                for q in range(inner):
                    out[p, oh, ow, q] = x[p, oh * sh, ow * sw, q]
                    arg[p, oh, ow, q] = 0
                for i in range(kh):
                    for j in range(kw):
                        if i == 0 and j == 0:
                            continue
                        r, c = oh * sh + i * dh, ow * sw + j * dw
                        offset = numpy.uint8(i * kw + j)
                        for q in range(inner):
                            v = x[p, r, c, q]
                            better = v > out[p, oh, ow, q] or (v != v and out[p, oh, ow, q] == out[p, oh, ow, q])
                            out[p, oh, ow, q] = v if better else out[p, oh, ow, q]
                            arg[p, oh, ow, q] = offset if better else arg[p, oh, ow, q]


@numba.njit(**JIT)
def max_pool_backward(g, arg, kernel, stride, dilation, gx):
    """Adds each window's gradient g (P, OH, OW, Q) to the input position of its maximum in gx (P, H, W, Q),
    which starts at zero.

    Windows that tile the input (stride = kernel, no dilation: MaxPool2d's default) write each position once, its
    window's gradient or 0, a select that runs along memory; other windows scatter-add into a zeroed gx."""
    kh, kw = kernel
    (sh, sw), (dh, dw) = stride, dilation
    planes, oh_size, ow_size, inner = g.shape
    if (sh, sw) == (kh, kw) and (dh, dw) == (1, 1):
        for p in range(planes):
            gx[p, oh_size * kh:] = 0  # rows and columns past the last window
            gx[p, :, ow_size * kw:] = 0
            for oh in range(oh_size):
                for ow in range(ow_size):
                    for i in range(kh):
                        for j in range(kw):
                            offset = numpy.uint8(i * kw + j)
                            r, c = oh * kh + i, ow * kw + j
                            for q in range(inner):
                                gx[p, r, c, q] = g[p, oh, ow, q] if arg[p, oh, ow, q] == offset else F32(0.0)
        return
    gx[:] = 0
    for p in range(planes):
        for oh in range(oh_size):
            for ow in range(ow_size):
                for q in range(inner):
                    k = arg[p, oh, ow, q]
                    gx[p, oh * sh + (k // kw) * dh, ow * sw + (k % kw) * dw, q] += g[p, oh, ow, q]


@numba.njit(**IN_ORDER)
def sum_columns(x, out):
    """out (n,) = the sum of the rows of x (R, n), R >= 1, added one after another (as NumPy's reduction over the
    outer axis adds them: the same bits), each row vectorised along its columns."""
    rows, n = x.shape
    for j in range(n):
        out[j] = x[0, j]
    for r in range(1, rows):
        for j in range(n):
            out[j] += x[r, j]


@numba.njit(**JIT)
def add_rows_at(target, index, values):
    """target[index[i]] += values[i] for each i in turn (target (R, D), index (n,) in [0, R), values (n, D)): an
    embedding's gradient, rows added where they were read from, repeats accumulating."""
    for i in range(index.size):
        row = index[i]
        for j in range(values.shape[1]):
            target[row, j] += values[i, j]


@numba.njit(**JIT)
def relu_backward(g, out, gx):
    """gx = g where the ReLU's output is positive, else 0 (flat float32 arrays in one memory order)."""
    for i in range(g.size):
        gx[i] = g[i] if out[i] > 0 else F32(0.0)


# -- One part of a large kernel's work, on one of OpenBLAS's threads (backends/blas_threads.py hands them out) --
# It lives here with the kernels it calls: Numba's cache checks only a function's own file, and a cached caller
# keeps its compiled copy of every function it calls. Kept in blas_threads.py, a cached run_part outlived a change
# to this file and ran the kernels' old code (the split and one-core bits differed until its cache was cleared).

# What run_part computes: the kernels that pay for a split (measured in docs/benchmarks.md), by elements or rows,
# and batches of matrix products by matrix: MATMUL's, and attention's forward and backward for each (batch, head).
(PROBE, GELU, GELU_BACKWARD, GELU_TANH, GELU_TANH_BACKWARD, ADAM, SOFTMAX, ADD_ROWS, MATMUL, ATTENTION,
 ATTENTION_BACKWARD) = range(11)
# The table run_part reads its work from (int64): kind, units to split, the 2-D arrays' shape and the rows of a
# softmax's mask, four arrays' addresses, then eight float32 scalar arguments in four entries.
KIND, UNITS, ROWS, COLUMNS, MASK_ROWS, ARRAYS, SCALARS = 0, 1, 2, 3, 4, 5, 9
# Batches of matrix products read after KIND and UNITS (the batch's size): the inner batch dimension's size,
# cblas_sgemm's address, then up to four products of PRODUCT entries each: sgemm's transpose flags, m, p and n,
# then for each of A, B and C its address, its outer and inner batch strides in bytes, and its leading dimension.
INNER, SGEMM, PRODUCTS, PRODUCT = 2, 3, 4, 17
TRANS_A, TRANS_B, M, P, N, A, B, C = 0, 1, 2, 3, 4, 5, 9, 13  # within a product
# Attention's other arguments, after its products: the additive mask's address and rows (an (L, S) block, or one
# row of zeros), the scale and a flag as two float32 (forward: empty rows get zero weights), which gradients
# backward computes (bits: 1 queries', 2 keys', 4 values'), and the weights P (backward): address, outer and inner
# batch strides.
ATTENTION_MASK, ATTENTION_MASK_ROWS, ATTENTION_SCALE, ATTENTION_NEEDS, ATTENTION_WEIGHTS = 72, 73, 74, 75, 76
TABLE = 79


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


@numba.njit(inline="always", **JIT)
def table_vector(table, i, lo, hi):
    """Elements lo:hi of the table's array i (contiguous float32)."""
    return numba.carray(_pointer(table[ARRAYS + i] + 4 * lo), hi - lo, numpy.float32)


@numba.njit(inline="always", **JIT)
def table_matrix(table, i, rows):
    """The table's array i, (rows, COLUMNS) float32 in C order."""
    return numba.carray(_pointer(table[ARRAYS + i]), (rows, table[COLUMNS]), numpy.float32)


@numba.njit(inline="always", **JIT)
def table_product(table, i, outer, j):
    """Product i of the table for matrix (outer, j) of the batch: one cblas_sgemm call."""
    at = PRODUCTS + i * PRODUCT
    _sgemm(table[SGEMM], numba.int32(table[at + TRANS_A]), numba.int32(table[at + TRANS_B]), table[at + M],
           table[at + P], table[at + N], table_address(table, at + A, outer, j), table[at + A + 3],
           table_address(table, at + B, outer, j), table[at + B + 3], table_address(table, at + C, outer, j),
           table[at + C + 3])


@numba.njit(inline="always", **JIT)
def table_address(table, at, outer, j):
    """The address of matrix (outer, j) of the batch whose address and batch strides start at entry ``at``."""
    return table[at] + outer * table[at + 1] + j * table[at + 2]


@numba.njit(inline="always", **JIT)
def product_output(table, i, outer, j):
    """Product i's output C for matrix (outer, j), (m, p) float32 in C order."""
    at = PRODUCTS + i * PRODUCT
    return numba.carray(_pointer(table_address(table, at + C, outer, j)), (table[at + M], table[at + P]),
                        numpy.float32)


def _load_kernels() -> None:
    """Load (or compile) each kernel run_part calls, before run_part: its compiled code then calls these very
    functions, so a part's bits are those of the kernel on one core. (Loaded after run_part, the kernels' copies
    compiled into run_part win, and GELU's backward came out 1 ulp apart on half the elements.)"""
    one, scalar = numpy.zeros(1, F32), F32(1)
    gelu(one, one), gelu_tanh(one, one), gelu_backward(one, one, one), gelu_tanh_backward(one, one, one)
    adam_update(one, one, one, one, *[scalar] * 7)
    softmax_backward_rows(one.reshape(1, 1), one.reshape(1, 1), one.reshape(1, 1), scalar)


# OpenBLAS's legacy job: (m, n, k, alpha, a, lda, b, ldb, c, ldc, buffer). It passes a = lo * 4 (the start of this
# part, given a = 0 and lda = 1 in float32 units), m = hi - lo, and c = the table, untouched.
JOB = types.void(types.intp, types.intp, types.intp, types.float32, types.intp, types.intp, types.intp, types.intp,
                 types.intp, types.intp, types.intp)


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
        marks = table_vector(table, 0, lo, hi)
        for i in range(m):
            marks[i] += F32(1.0)
    elif kind == GELU:
        gelu(table_vector(table, 0, lo, hi), table_vector(table, 1, lo, hi))
    elif kind == GELU_BACKWARD:
        gelu_backward(table_vector(table, 0, lo, hi), table_vector(table, 1, lo, hi),
                      table_vector(table, 2, lo, hi))
    elif kind == GELU_TANH:
        gelu_tanh(table_vector(table, 0, lo, hi), table_vector(table, 1, lo, hi))
    elif kind == GELU_TANH_BACKWARD:
        gelu_tanh_backward(table_vector(table, 0, lo, hi), table_vector(table, 1, lo, hi),
                           table_vector(table, 2, lo, hi))
    elif kind == ADAM:
        adam_update(table_vector(table, 0, lo, hi), table_vector(table, 1, lo, hi), table_vector(table, 2, lo, hi),
                    table_vector(table, 3, lo, hi), s[0], s[1], s[2], s[3], s[4], s[5], s[6])
    elif kind == SOFTMAX:
        x, out = table_matrix(table, 0, table[ROWS]), table_matrix(table, 1, table[ROWS])
        mask = table_matrix(table, 2, table[MASK_ROWS])
        for r in range(lo, hi):
            softmax_row(x, out, r, s[0], mask, s[1] != 0)
    elif kind == MATMUL:
        for u in range(lo, hi):
            table_product(table, 0, u // table[INNER], u % table[INNER])
    elif kind == ATTENTION:  # each (batch, head): scores = q @ k.T into the weights, their softmax, out = P @ v
        scale = numba.carray(_pointer(c + 8 * ATTENTION_SCALE), 2, numpy.float32)  # the scale and the flag
        mask = numba.carray(_pointer(table[ATTENTION_MASK]), (table[ATTENTION_MASK_ROWS], table[PRODUCTS + P]),
                            numpy.float32)
        for u in range(lo, hi):
            outer, j = u // table[INNER], u % table[INNER]
            table_product(table, 0, outer, j)
            weights = product_output(table, 0, outer, j)
            for r in range(weights.shape[0]):
                softmax_row(weights, weights, r, scale[0], mask, scale[1] != 0)
            table_product(table, 1, outer, j)
    elif kind == ATTENTION_BACKWARD:  # each (batch, head): dv = P.T @ g, dP = g @ v.T, dS, dq = dS @ k, dk = dS.T @ q
        scale, needs = numba.carray(_pointer(c + 8 * ATTENTION_SCALE), 1, numpy.float32)[0], table[ATTENTION_NEEDS]
        for u in range(lo, hi):
            outer, j = u // table[INNER], u % table[INNER]
            if needs & 4:
                table_product(table, 0, outer, j)
            table_product(table, 1, outer, j)
            gs = product_output(table, 1, outer, j)
            p = numba.carray(_pointer(table_address(table, ATTENTION_WEIGHTS, outer, j)), gs.shape, numpy.float32)
            softmax_backward_rows(gs, p, gs, scale)
            if needs & 1:
                table_product(table, 2, outer, j)
            if needs & 2:
                table_product(table, 3, outer, j)
    elif kind == ADD_ROWS:
        out, v = table_matrix(table, 0, table[ROWS]), table_vector(table, 1, 0, table[COLUMNS])
        for r in range(lo, hi):
            for j in range(v.size):
                out[r, j] += v[j]


@functools.cache
def part_runner() -> numba.core.ccallback.CFunc:
    """``run_part`` compiled (or loaded from Numba's cache) as a C function for OpenBLAS to call, after the
    kernels it calls. Built on first use: only large kernels need it."""
    _load_kernels()
    return numba.cfunc(JOB, cache=True, error_model="numpy", fastmath=FASTMATH)(run_part)  # softmax_row inlines
