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
        self.manual_seed(None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.device_type}:{self.index}>"

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
        xp = self.xp
        if approximate == "tanh":
            t = xp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
            return 0.5 * x * (1 + t), t
        cdf = 0.5 * (1 + self.erf(x * (1 / math.sqrt(2))))
        return x * cdf, cdf

    def gelu_backward(self, g: Array, x: Array, saved: Any, approximate: str) -> Array:
        """The gradient of ``gelu`` at ``x`` given the output gradient ``g`` and what ``gelu`` saved."""
        if approximate == "tanh":
            t = saved
            dt = (1 - t * t) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x)
            return g * (0.5 * (1 + t) + 0.5 * x * dt)
        pdf = self.xp.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
        return g * (saved + x * pdf)

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

    def softmax_backward(self, g: Array, p: Array, scale: float = 1.0, out: Array | None = None) -> Array:
        """``scale * p * (g - rowsum(g * p))``: the gradient of softmax's input (rows along the last axis) from
        that of its output ``g`` and the softmax ``p``. ``out`` may be ``g``."""
        out = self.xp.subtract(g, (g * p).sum(axis=-1, keepdims=True), out=out)
        out *= p
        if scale != 1.0:
            out *= scale
        return out

    def layer_norm(self, x: Array, weight: Array | None, bias: Array | None, eps: float) -> tuple[Array, Any]:
        """Each row of ``x`` (N, D) standardised, ``xhat = (x - mean) / sqrt(var + eps)``, then ``xhat * weight +
        bias`` (D,) (either may be None); and what ``layer_norm_backward`` needs. Row means are matrix-vector
        products (BLAS), several times faster than NumPy's reductions along short rows."""
        xp = self.xp
        row_mean = xp.full(x.shape[1], 1.0 / x.shape[1], dtype=x.dtype)  # rows @ row_mean = each row's mean
        xhat = x - (x @ row_mean)[:, None]
        inv_std = (1.0 / xp.sqrt((xhat * xhat) @ row_mean + eps))[:, None]  # (N, 1)
        xhat *= inv_std
        out = xhat * weight if weight is not None else xhat.copy()
        if bias is not None:
            out += bias
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
        gx = g * weight if weight is not None else g.copy()
        gx -= (g @ w_mean)[:, None]
        gx -= xhat * (g_xhat @ w_mean)[:, None]
        gx *= inv_std
        return gx, gw, gb

    def adam_update(self, p: Array, g: Array, m: Array, v: Array, *, lr: float, beta1: float, beta2: float,
                    eps: float, step: int, decay: float = 1.0, max_v: Array | None = None) -> None:
        """One Adam step on a parameter ``p`` with gradient ``g`` and moment estimates ``m``, ``v`` (all one shape),
        in place: ``p *= decay`` (AdamW's decoupled weight decay), then, as PyTorch::

            m = beta1 * m + (1 - beta1) * g        v = beta2 * v + (1 - beta2) * g * g
            p -= lr / (1 - beta1**step) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps)

        ``max_v`` (AMSGrad): the running maximum of ``v``, updated in place and used instead of ``v``.
        """
        xp = self.xp
        if decay != 1.0:
            p *= decay
        scratch = xp.subtract(g, m, out=xp.empty_like(p))  # out=: an array even for a 0-d parameter
        scratch *= 1 - beta1
        m += scratch
        xp.multiply(g, g, out=scratch)
        scratch *= 1 - beta2
        v *= beta2
        v += scratch
        if max_v is not None:
            v = xp.maximum(max_v, v, out=max_v)
        denom = xp.sqrt(v, out=scratch)
        denom /= (1 - beta2**step) ** 0.5
        denom += eps
        update = xp.divide(m, denom, out=scratch)
        update *= lr / (1 - beta1**step)
        p -= update

    def relu_backward(self, g: Array, out: Array) -> Array:
        """The gradient of ReLU's input: ``g`` where its output ``out`` is positive, else 0."""
        return g * (out > 0)

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
        """A read-only view of ``x`` broadcast to ``shape`` (no copy): how reductions send a gradient back."""
        return self.xp.broadcast_to(x, shape)
