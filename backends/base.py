"""The backend interface: what differs between array libraries, and nothing else.

A backend owns one array namespace ``xp`` (``numpy`` or ``cupy``, which share one API) and the
handful of things that namespace cannot express the same way everywhere: moving arrays between
host and device, a seeded random generator, and a few primitives (scatter-add, sliding windows,
``erf``, a broadcast view that is cheap on the CPU too). All other array math in tensorlite is
written once against ``backend.xp``.

Fused kernels are the one exception to "nothing else": their math is written once, here, against
``xp`` (the reference every backend starts from), and a backend may replace one with a compiled
kernel that does the same math in one pass over memory (``NumpyBackend`` with Numba).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy

Array = Any  # a numpy.ndarray, a cupy.ndarray, or a simulated device array


def window_slices(kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
                  out_size: tuple[int, int]) -> Iterator[tuple[int, int, slice, slice]]:
    """For each kernel offset (i, j): i, j and the (rows, cols) slices of the padded input it meets in every window."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    for i in range(kh):
        for j in range(kw):
            yield i, j, slice(i * dh, i * dh + sh * (oh - 1) + 1, sh), slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)


def overlapping_windows(kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> bool:
    """Whether neighbouring windows share input elements (a stride shorter than the dilated kernel)."""
    return any(s < d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation))


# -- elementwise cores of the fused kernels ------------------------------------------------------------------
# Pure elementwise math, written once: ``Backend``'s reference kernels below call these with the backend's array
# namespace, and the CUDA backend compiles the same functions with ``cupy.fuse`` (``backends/fused.py``). ``m``
# is a math namespace (``exp``, ``tanh``, ``sqrt``, ``erf``); the arguments are arrays or scalars. Those ending
# in ``_`` update their first array arguments in place (``+=``: in place on NumPy, and an output of the fused
# kernel under ``cupy.fuse``). Each keeps the reference math's order of operations, so the results agree op by op.
SQRT_2_OVER_PI, INV_SQRT2, INV_SQRT_2PI = math.sqrt(2 / math.pi), 1 / math.sqrt(2), 1 / math.sqrt(2 * math.pi)


def gelu_cdf(m: Any, x: Array) -> Array:
    """Phi(x), the normal CDF, from erf: GELU is x Phi(x)."""
    return 0.5 * (1 + m.erf(x * INV_SQRT2))


def gelu_grad(m: Any, g: Array, x: Array, cdf: Array) -> Array:
    """g (Phi(x) + x phi(x)): GELU's input gradient from Phi(x)."""
    return g * (cdf + x * (m.exp(-0.5 * x * x) * INV_SQRT_2PI))


def gelu_tanh_t(m: Any, x: Array) -> Array:
    """tanh(sqrt(2/pi) (x + 0.044715 x^3)): GPT-2's GELU is 0.5 x (1 + t)."""
    return m.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x**3))


def gelu_tanh_grad(m: Any, g: Array, x: Array, t: Array) -> Array:
    """The tanh form's input gradient from t."""
    return g * (0.5 * (1 + t) + 0.5 * x * ((1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)))


def adam_moments_(m: Any, exp_avg: Array, exp_avg_sq: Array, g: Array, one_minus_beta1: Any, beta2: Any,
                  one_minus_beta2: Any) -> tuple[Array, Array]:
    """Adam's moments, in place: ``exp_avg += (g - exp_avg) (1 - beta1)``, ``exp_avg_sq = exp_avg_sq beta2 +
    g g (1 - beta2)``."""
    exp_avg += (g - exp_avg) * one_minus_beta1
    exp_avg_sq *= beta2
    exp_avg_sq += g * g * one_minus_beta2
    return exp_avg, exp_avg_sq


def adam_param_(m: Any, p: Array, exp_avg: Array, v: Array, decay: Any, bias2_sqrt: Any, eps: Any,
                step_size: Any) -> Array:
    """Adam's parameter step, in place: ``p = p decay - exp_avg / (sqrt(v) / bias2_sqrt + eps) step_size``."""
    p *= decay
    p -= exp_avg / (m.sqrt(v) / bias2_sqrt + eps) * step_size
    return p


def adam_(m: Any, p: Array, exp_avg: Array, exp_avg_sq: Array, g: Array, one_minus_beta1: Any, beta2: Any,
          one_minus_beta2: Any, decay: Any, bias2_sqrt: Any, eps: Any, step_size: Any) -> tuple[Array, Array, Array]:
    """A whole Adam step (no AMSGrad), in place: the moments, then the parameter."""
    adam_moments_(m, exp_avg, exp_avg_sq, g, one_minus_beta1, beta2, one_minus_beta2)
    return adam_param_(m, p, exp_avg, exp_avg_sq, decay, bias2_sqrt, eps, step_size), exp_avg, exp_avg_sq


def standardized(m: Any, x: Array, mean: Array, inv_std: Array) -> Array:
    """``(x - mean) * inv_std``: a layer norm's xhat."""
    return (x - mean) * inv_std


def affine(m: Any, xhat: Array, weight: Any, bias: Any) -> Array:
    """``xhat * weight + bias``."""
    return xhat * weight + bias


def layer_norm_input_grad(m: Any, g: Array, weight: Any, xhat: Array, inv_std: Array, mean_gw: Array,
                          mean_gwx: Array) -> Array:
    """``(g w - mean(g w) - xhat mean(g w xhat)) inv_std``: a layer norm's input gradient from its two row means."""
    return (g * weight - mean_gw - xhat * mean_gwx) * inv_std


def empty_like_layout(xp: Any, shape: tuple[int, ...], dtype: Any, like: Array) -> Array:
    """An empty array of ``shape`` whose axes lie in memory in the order of ``like``'s (same number of axes)."""
    order = sorted(range(like.ndim), key=lambda i: -like.strides[i])  # like's axes, outermost in memory first
    return xp.empty([shape[i] for i in order], dtype=dtype).transpose([order.index(i) for i in range(like.ndim)])


class _MathNamespace:
    """``exp``, ``tanh``, ``sqrt`` and ``erf`` of one backend, as the elementwise cores call them."""

    def __init__(self, xp: Any, erf: Any) -> None:
        self.exp, self.tanh, self.sqrt, self.erf = xp.exp, xp.tanh, xp.sqrt, erf


class NoScope:
    """The scope of a device that needs none (the CPU): entering it does nothing."""

    def __enter__(self) -> NoScope:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Backend:
    """One array library on one device. Subclasses fill in the primitives below.

    ``scope`` is a context manager that makes this backend's device the current one: array math on a
    device must run inside it (``with backend.scope: ...``), since CuPy makes new arrays and launches kernels
    on the current device, whatever device the inputs live on. ``scoped`` says whether that matters (False
    on the CPU, so that hot paths can skip the ``with``).
    """

    name: str = "abstract"  # the array library: "numpy", "cupy", ...
    device_type: str = "abstract"  # the tensorlite device type it serves: "cpu", "cuda", ...
    xp: Any = None  # the array namespace
    array_type: type = object  # the class of this backend's arrays (ops promote scalars to it)
    scope: Any = NoScope()
    scoped: bool = False

    def __init__(self, index: int = 0) -> None:
        self.index = index
        # Every op reads these: as the instance's own attributes they cost Python 3.11 half a class's lookup.
        self.xp, self.scoped, self.array_type = self.xp, self.scoped, self.array_type
        self.manual_seed(None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.device_type}:{self.index}>"

    @property
    def math(self) -> Any:
        """The math namespace the elementwise cores above take: ``xp``'s exp, tanh and sqrt, and ``erf``."""
        namespace = self.__dict__.get("_math")
        if namespace is None:
            namespace = self.__dict__["_math"] = _MathNamespace(self.xp, self.erf)
        return namespace

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

    def copy_from(self, array: Array, source: Backend) -> Array:
        """A copy on this device of ``array``, an array of backend ``source`` (another device). Through the host
        here; backends of one library copy device to device."""
        return self.from_host(source.to_host(array))

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

    # -- fused kernels: the reference math in xp ----------------------------------------------------
    def gelu(self, x: Array, approximate: str) -> tuple[Array, Any]:
        """GELU of ``x`` (any shape) and what ``gelu_backward`` needs besides ``x``: ``x Phi(x)``, Phi the
        normal CDF from ``erf`` ("none") or GPT-2's tanh form ("tanh")."""
        if approximate == "tanh":
            t = gelu_tanh_t(self.math, x)
            return 0.5 * x * (1 + t), t
        cdf = gelu_cdf(self.math, x)
        return x * cdf, cdf

    def gelu_backward(self, g: Array, x: Array, saved: Any, approximate: str) -> Array:
        """The gradient of ``gelu`` at ``x`` given the output gradient ``g`` and what ``gelu`` saved."""
        return (gelu_tanh_grad if approximate == "tanh" else gelu_grad)(self.math, g, x, saved)

    def softmax(self, x: Array, scale: float = 1.0, mask: Array | None = None, empty_rows_zero: bool = False,
                out: Array | None = None) -> Array:
        """``softmax(scale * x + mask)`` over the last axis of ``x`` (..., n), numerically stable (max-shifted).

        ``mask`` broadcasts to ``x`` (additive: 0 or -inf). A row with no finite score is NaN, as PyTorch's
        ``softmax``; ``empty_rows_zero`` makes it zeros instead, as its attention. ``out`` may be ``x``.
        """
        xp = self.xp
        out = xp.multiply(x, scale, out=out)
        if mask is not None:
            out += mask
        row_max = out.max(axis=-1, keepdims=True)
        if empty_rows_zero:
            xp.maximum(row_max, xp.finfo(out.dtype).min, out=row_max)  # exp(-inf - finite) = 0, not NaN
        out -= row_max
        xp.exp(out, out=out)
        total = out.sum(axis=-1, keepdims=True)
        if empty_rows_zero:
            xp.maximum(total, 1.0, out=total)  # a row with a visible score sums to >= 1
        out /= total
        return out

    def rotary(self, x: Array, cos: Array, sin: Array, inverse: bool = False) -> Array:
        """``x`` (..., D) with channel i rotated with channel i + D/2 by the angles whose ``cos`` and ``sin``
        broadcast to (..., D/2): ``[x1 cos - x2 sin, x2 cos + x1 sin]``; ``inverse``: the rotation back (the
        angles negated), which is also the gradient. A new array."""
        xp, half = self.xp, x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        out = xp.empty(x.shape, dtype=x.dtype)
        first, second = out[..., :half], out[..., half:]
        scratch = xp.multiply(x2, sin)
        xp.multiply(x1, cos, out=first)
        if inverse:
            first += scratch
        else:
            first -= scratch
        xp.multiply(x1, sin, out=scratch)
        xp.multiply(x2, cos, out=second)
        if inverse:
            second -= scratch
        else:
            second += scratch
        return out

    def log_softmax(self, x: Array) -> tuple[Array, Array]:
        """``log softmax`` of each row of ``x`` (R, n), ``x - max - log(sum(exp(x - max)))``, and the softmax itself
        (what cross entropy keeps for its gradient); a row with a NaN or +inf is NaN."""
        xp = self.xp
        logp = x - x.max(axis=-1, keepdims=True)
        p = xp.exp(logp)
        total = p.sum(axis=-1, keepdims=True)
        p /= total
        logp -= xp.log(total)
        return logp, p

    def softmax_backward(self, g: Array, p: Array, scale: float = 1.0, out: Array | None = None) -> Array:
        """``scale * p * (g - rowsum(g * p))``: the gradient of softmax's input (rows along the last axis) from
        that of its output ``g`` and the softmax ``p``. ``out`` may be ``g``."""
        out = self.xp.subtract(g, (g * p).sum(axis=-1, keepdims=True), out=out)
        out *= p
        if scale != 1.0:
            out *= scale
        return out

    def attention(self, q: Array, k: Array, v: Array, mask: Array | None, scale: float, keep: Array | None = None
                  ) -> tuple[Array, Array]:
        """Scaled dot-product attention over a batch: ``softmax(scale * q @ k.T + mask) @ v`` for q (..., L, E),
        k (..., S, E), v (..., S, Ev) -> (..., L, Ev), laid out in memory like q, and the weights P (..., L, S) that
        ``attention_backward`` needs. ``mask`` broadcasts to the scores (additive: 0 or -inf; a row with no visible
        key gets zero weights); ``keep`` (..., L, S) is dropout's scaled mask, applied to P before the product."""
        scores = self.matmul(q, self.xp.swapaxes(k, -1, -2))  # (..., L, S)
        weights = self.softmax(scores, scale, mask, empty_rows_zero=True, out=scores)
        return self.matmul_like(weights if keep is None else weights * keep, v, q), weights

    def attention_backward(self, g: Array, q: Array, k: Array, v: Array, weights: Array, keep: Array | None,
                           scale: float, needs: tuple[bool, bool, bool], mask_grad: bool = False
                           ) -> tuple[Array | None, Array | None, Array | None, Array | None]:
        """The gradients of ``attention`` from that of its output ``g``: (gq, gk, gv) where ``needs`` asks for them,
        and the mask's where ``mask_grad``, each with the scores' batch dimensions (the caller sums those a
        broadcast added). With P the dropped-out weights: dv = P.T @ g, dP = g @ v.T, dS = P * (dP - rowsum(dP *
        P)), dq = scale dS @ k, dk = scale dS.T @ q; the mask's is dS."""
        xp = self.xp
        dropped = weights if keep is None else weights * keep
        gv = self.matmul_like(xp.swapaxes(dropped, -1, -2), g, v) if needs[2] else None
        gs = self.matmul(g, xp.swapaxes(v, -1, -2))  # (..., L, S): the gradient of the dropped-out weights
        if keep is not None:
            gs *= keep
        gmask = None
        if mask_grad:
            gmask = self.softmax_backward(gs, weights, out=gs)
            gs = gmask * scale  # a new array: gmask is the mask's gradient, unscaled
        else:  # dS, scaled, in one pass
            gs = self.softmax_backward(gs, weights, scale, out=gs)
        gq = self.matmul_like(gs, k, q) if needs[0] else None
        gk = self.matmul_like(xp.swapaxes(gs, -1, -2), q, k) if needs[1] else None
        return gq, gk, gv, gmask

    def layer_norm(self, x: Array, weight: Array | None, bias: Array | None, eps: float) -> tuple[Array, Any]:
        """Each row of ``x`` (N, D) standardised, ``xhat = (x - mean) / sqrt(var + eps)``, then ``xhat * weight +
        bias`` (D,) (either may be None); and what ``layer_norm_backward`` needs. Row means are matrix-vector
        products (BLAS), several times faster than NumPy's reductions along short rows."""
        xp = self.xp
        row_mean = xp.full(x.shape[1], 1.0 / x.shape[1], dtype=x.dtype)  # rows @ row_mean = each row's mean
        mean = (x @ row_mean)[:, None]
        centered = x - mean
        inv_std = (1.0 / xp.sqrt((centered * centered) @ row_mean + eps))[:, None]  # (N, 1)
        xhat = standardized(self.math, x, mean, inv_std)
        out = affine(self.math, xhat, 1.0 if weight is None else weight, 0.0 if bias is None else bias)
        return out, (xhat, inv_std, row_mean)

    def layer_norm_backward(self, g: Array, x: Array, weight: Array | None, saved: Any
                            ) -> tuple[Array, Array, Array]:
        """Gradients of ``layer_norm`` for its input (N, D), weight and bias (D,), from that of its output ``g``:
        ``dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))`` with ``dxhat = g * weight``."""
        xhat, inv_std, row_mean = saved
        g_xhat = g * xhat
        ones = self.xp.ones(xhat.shape[0], dtype=xhat.dtype)  # ones @ rows = the sum over rows
        gw, gb = ones @ g_xhat, ones @ g
        # dxhat's row means, and those of dxhat * xhat, are products with weight / D.
        w_mean = row_mean if weight is None else weight * row_mean
        gx = layer_norm_input_grad(self.math, g, 1.0 if weight is None else weight, xhat, inv_std,
                                   (g @ w_mean)[:, None], (g_xhat @ w_mean)[:, None])
        return gx, gw, gb

    def adam_update(self, p: Array, g: Array, m: Array, v: Array, *, lr: float, beta1: float, beta2: float,
                    eps: float, step: int, decay: float = 1.0, max_v: Array | None = None) -> None:
        """One Adam step on a parameter ``p`` with gradient ``g`` and moment estimates ``m``, ``v`` (all one shape),
        in place: ``p *= decay`` (AdamW's decoupled weight decay), then, as PyTorch::

            m = beta1 * m + (1 - beta1) * g        v = beta2 * v + (1 - beta2) * g * g
            p -= lr / (1 - beta1**step) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps)

        ``max_v`` (AMSGrad): the running maximum of ``v``, updated in place and used instead of ``v``.
        """
        bias2_sqrt, step_size = (1 - beta2**step) ** 0.5, lr / (1 - beta1**step)
        if max_v is None:
            adam_(self.math, p, m, v, g, 1 - beta1, beta2, 1 - beta2, decay, bias2_sqrt, eps, step_size)
            return
        adam_moments_(self.math, m, v, g, 1 - beta1, beta2, 1 - beta2)
        self.xp.maximum(max_v, v, out=max_v)
        adam_param_(self.math, p, m, max_v, decay, bias2_sqrt, eps, step_size)

    def sum_rows(self, x: Array) -> Array:
        """Each row's sum of a 2-D ``x`` (R, n) -> (R,): a convolution's bias gradient, over positions and batch."""
        return x.sum(axis=1)

    def sum_columns(self, x: Array) -> Array:
        """Each column's sum of a 2-D ``x`` (R, n) -> (n,): a linear layer's bias gradient, over the batch."""
        return x.sum(axis=0)

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        """``a @ b`` (``out`` if given): a batch of matrix products, as attention's."""
        return self.xp.matmul(a, b, out=out)

    def matmul_like(self, a: Array, b: Array, like: Array) -> Array:
        """``a @ b``, laid out in memory like ``like`` (whose batch and row dimensions it shares).

        The heads of a transformer are transposed views, q = (B, T, nh, hs) viewed as (B, nh, T, hs): an output or
        gradient laid out the same way turns back into (B, T, nh * hs) without a copy."""
        batch = self.xp.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        if batch != like.shape[:-2] or a.shape[-2] != like.shape[-2]:
            return self.matmul(a, b)
        return self.matmul(a, b, empty_like_layout(self.xp, (*batch, a.shape[-2], b.shape[-1]), a.dtype, like))

    def add_rows(self, out: Array, v: Array) -> None:
        """``out`` (R, n) += ``v`` (n,) on every row, in place: a linear layer's bias."""
        out += v

    def relu(self, x: Array) -> Array:
        """``max(x, 0)`` in ``x``'s dtype and memory order; NaN stays NaN."""
        return self.xp.maximum(x, 0)

    def relu_backward(self, g: Array, out: Array) -> Array:
        """The gradient of ReLU's input: ``g`` where its output ``out`` is positive, else 0."""
        return g * (out > 0)

    def col2im(self, gcols: Array, padded_shape: tuple[int, int, int, int], kernel: tuple[int, int],
               stride: tuple[int, int], dilation: tuple[int, int]) -> Array:
        """A convolution's column gradient gcols (C, KH, KW, OH, OW, N) added back onto the padded input it was
        read from: (C, Hp, Wp, N), batch innermost as gcols. One strided slice-add per kernel offset."""
        c, kh, kw, oh, ow, n = gcols.shape
        gpadded = self.xp.zeros((c, *padded_shape, n), dtype=gcols.dtype)
        for i, j, rows, cols in window_slices(kernel, stride, dilation, (oh, ow)):
            gpadded[:, rows, cols] += gcols[:, i, j]
        return gpadded

    def max_pool2d(self, padded: Array, kernel: tuple[int, int], stride: tuple[int, int],
                   dilation: tuple[int, int], out_size: tuple[int, int]) -> tuple[Array, Any]:
        """The maximum of each window of ``padded`` (N, C, Hp, Wp): (N, C, OH, OW) in ``padded``'s memory order, and
        what ``max_pool2d_backward`` needs. One strided view per kernel offset holds that element of every
        window, so the max is an elementwise maximum of KH * KW views (no window copy)."""
        xp = self.xp
        slices = [(rows, cols) for _, _, rows, cols in window_slices(kernel, stride, dilation, out_size)]
        out = xp.copy(padded[:, :, slices[0][0], slices[0][1]], order="K")
        for rows, cols in slices[1:]:
            xp.maximum(out, padded[:, :, rows, cols], out=out)
        return out, (padded, out, slices, overlapping_windows(kernel, stride, dilation))

    def max_pool2d_backward(self, g: Array, saved: Any) -> Array:
        """The gradient of ``max_pool2d``'s input (N, C, Hp, Wp): each window's gradient goes to its first maximum,
        as PyTorch's."""
        xp = self.xp
        padded, out, slices, overlapping = saved
        if g.strides != out.strides:  # one copy into the output's memory order: mixed orders are slow
            ordered = xp.empty_like(out)
            ordered[...] = g
            g = ordered
        gpadded = xp.zeros_like(padded)
        unclaimed = xp.ones_like(out, dtype=bool)  # windows whose maximum has not been met yet
        for rows, cols in slices:  # in window order, so ties go to the first maximum
            hit = padded[:, :, rows, cols] == out
            hit &= unclaimed
            unclaimed ^= hit
            if overlapping:
                gpadded[:, :, rows, cols] += hit * g
            else:  # every input element is in one window at most: write in place, no temporary
                xp.multiply(hit, g, out=gpadded[:, :, rows, cols])
        return gpadded

    def broadcast_to(self, x: Array, shape: tuple[int, ...]) -> Array:
        """A read-only view of ``x`` broadcast to ``shape`` (no copy): ``expand``, and large gradients below."""
        return self.xp.broadcast_to(x, shape)

    def broadcast_gradient(self, g: Array, shape: tuple[int, ...]) -> Array:
        """How a reduction sends its gradient ``g`` back over its input's ``shape``: an array the engine only reads,
        a broadcast view here (no copy)."""
        return self.broadcast_to(g, shape)
