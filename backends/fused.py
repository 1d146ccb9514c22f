"""Fused CUDA kernels for the backend kernels: GELU and its gradient, the Adam(W) update and layer norm, each one
kernel (plus a layer norm's row reductions) instead of a chain of elementwise ones.

Off by default, until measured on a GPU: ``tl.backends.cuda.fused_kernels = True`` (or ``tl.set_fused_kernels``,
or ``TENSORLITE_FUSED_KERNELS=1``) switches them on for CUDA devices. Off, the CUDA backend runs the reference
math of ``backends/base.py`` op by op, as it always has.

The math is not written here: each kernel is ``cupy.fuse`` applied to the elementwise cores of ``base.py``
(``gelu_cdf``, ``adam_``, ``standardized``...), the very functions the reference kernels call with NumPy, so the
two paths cannot drift apart (https://docs.cupy.dev/en/stable/reference/generated/cupy.fuse.html). This
class holds how they are put together (what is saved, what is recomputed, where the reductions go); its
``kernel`` compiles a core on CUDA, and the tests run the same methods with the plain cores on NumPy arrays.

Two CuPy subtleties:

- ``cupy.fuse`` compiles and caches one kernel per combination of argument types, on the fused function object:
  each core is fused once (``_FUSED``, on first use) and the object reused, as CuPy's documentation asks
  ("it is recommended to reuse the same decorated functions instead of e.g. decorating local functions").
- Scalars (a learning rate, eps, 1 - beta1) go to a kernel as NumPy scalars of the arrays' dtype, not as Python
  floats: under NumPy 2's promotion rules (NEP 50, https://numpy.org/neps/nep-0050-scalar-promotion.html) a
  Python float is "weak" and a typed scalar is not, and CuPy's fusion has had its own history with weak
  scalars (cupy/cupy#8323). A scalar of the arrays' dtype gives that dtype under every rule, and one compiled
  kernel per dtype rather than per value (a scheduled learning rate changes every step).
"""

from __future__ import annotations

from typing import Any

import numpy

from . import base

Array = Any
_FUSED: dict[str, Any] = {}  # core name -> its cupy.fuse kernel, made once


class RowStats:
    """What a fused layer norm saves: xhat (N, D) and 1 / std (N, 1)."""

    __slots__ = ("xhat", "inv_std")

    def __init__(self, xhat: Array, inv_std: Array) -> None:
        self.xhat, self.inv_std = xhat, inv_std


def _typed(value: Any, dtype: Any) -> Any:
    """A Python number as a NumPy scalar of ``dtype``; arrays (a step count kept on the device) unchanged."""
    return numpy.dtype(dtype).type(value) if isinstance(value, (int, float)) else value


def _fused_gelu(core: Any) -> Any:
    """GELU from its CDF core in one kernel: x Phi(x) (or 0.5 x (1 + t))."""
    if core is base.gelu_cdf:
        return lambda m, x: x * base.gelu_cdf(m, x)
    return lambda m, x: 0.5 * x * (1 + base.gelu_tanh_t(m, x))


def _fused_gelu_grad(approximate: str) -> Any:
    """GELU's gradient, recomputing Phi(x) (or t) from x in the same kernel rather than reading it back."""
    if approximate == "tanh":
        return lambda m, g, x: base.gelu_tanh_grad(m, g, x, base.gelu_tanh_t(m, x))
    return lambda m, g, x: base.gelu_grad(m, g, x, base.gelu_cdf(m, x))


def _fused_layer_norm(m: Any, x: Array, mean: Array, inv_std: Array, weight: Any, bias: Any) -> tuple[Array, Array]:
    xhat = base.standardized(m, x, mean, inv_std)
    return xhat, base.affine(m, xhat, weight, bias)


COMPOSITES = {  # kernel name -> (math namespace, arrays and scalars) -> result(s): cores of base.py, composed
    "gelu": _fused_gelu(base.gelu_cdf),
    "gelu_tanh": _fused_gelu(base.gelu_tanh_t),
    "gelu_grad": _fused_gelu_grad("none"),
    "gelu_tanh_grad": _fused_gelu_grad("tanh"),
    "adam": base.adam_,
    "adam_moments": base.adam_moments_,
    "adam_param": base.adam_param_,
    "layer_norm": _fused_layer_norm,
    "layer_norm_input_grad": base.layer_norm_input_grad,
}


class FusedKernels:
    """The backend kernels as fused kernels, for a backend whose ``kernel(name)`` compiles ``COMPOSITES[name]``;
    each method falls back to the reference math while ``fused_enabled()`` is False."""

    def fused_enabled(self) -> bool:
        raise NotImplementedError

    def kernel(self, name: str) -> Any:
        """``COMPOSITES[name]`` taking arrays and scalars (the math namespace bound)."""
        raise NotImplementedError

    def gelu(self, x: Array, approximate: str) -> tuple[Array, Any]:
        """One kernel; saves nothing (backward recomputes Phi(x) from x in its own kernel)."""
        if not self.fused_enabled():
            return super().gelu(x, approximate)
        out = self.kernel("gelu_tanh" if approximate == "tanh" else "gelu")(x)
        return out.astype(x.dtype, copy=False), None

    def gelu_backward(self, g: Array, x: Array, saved: Any, approximate: str) -> Array:
        if saved is not None:  # gelu ran the reference math
            return super().gelu_backward(g, x, saved, approximate)
        grad = self.kernel("gelu_tanh_grad" if approximate == "tanh" else "gelu_grad")(g, x)
        return grad.astype(g.dtype, copy=False)

    def layer_norm(self, x: Array, weight: Array | None, bias: Array | None, eps: float) -> tuple[Array, Any]:
        """Two row reductions (mean, variance), then one kernel for xhat and the affine output."""
        if not self.fused_enabled():
            return super().layer_norm(x, weight, bias, eps)
        xp, dtype = self.xp, x.dtype
        mean = x.mean(axis=1, keepdims=True)
        centered = x - mean
        inv_std = (1 / xp.sqrt((centered * centered).mean(axis=1, keepdims=True) + _typed(eps, dtype))).astype(
            dtype, copy=False)
        xhat, out = self.kernel("layer_norm")(x, mean, inv_std, _typed(1.0, dtype) if weight is None else weight,
                                              _typed(0.0, dtype) if bias is None else bias)
        return out.astype(dtype, copy=False), RowStats(xhat.astype(dtype, copy=False), inv_std)

    def layer_norm_backward(self, g: Array, x: Array, weight: Array | None, saved: Any
                            ) -> tuple[Array, Array, Array]:
        """Column sums for the weight and bias, two row means, one kernel for the input's gradient."""
        if not isinstance(saved, RowStats):  # layer_norm ran the reference math
            return super().layer_norm_backward(g, x, weight, saved)
        xhat, inv_std, dtype = saved.xhat, saved.inv_std, saved.xhat.dtype
        g_xhat = g * xhat
        gw, gb = g_xhat.sum(axis=0), g.sum(axis=0)
        g_w = g if weight is None else g * weight
        mean_gw, mean_gwx = g_w.mean(axis=1, keepdims=True), (g_w * xhat).mean(axis=1, keepdims=True)
        gx = self.kernel("layer_norm_input_grad")(g, _typed(1.0, dtype) if weight is None else weight, xhat, inv_std,
                                                  mean_gw, mean_gwx)
        return gx.astype(dtype, copy=False), gw, gb

    def adam_update(self, p: Array, g: Array, m: Array, v: Array, *, lr: float, beta1: float, beta2: float,
                    eps: float, step: int, decay: float = 1.0, max_v: Array | None = None) -> None:
        """One kernel updating p, m and v in place (AMSGrad: the moments' kernel, a maximum, the step's kernel)."""
        if not self.fused_enabled():
            return super().adam_update(p, g, m, v, lr=lr, beta1=beta1, beta2=beta2, eps=eps, step=step, decay=decay,
                                       max_v=max_v)
        dtype = p.dtype
        bias2_sqrt, step_size = (1 - beta2**step) ** 0.5, lr / (1 - beta1**step)
        moments = [_typed(s, dtype) for s in (1 - beta1, beta2, 1 - beta2)]
        stepping = [_typed(s, dtype) for s in (decay, bias2_sqrt, eps, step_size)]
        if max_v is None:
            self.kernel("adam")(p, m, v, g, *moments, *stepping)
            return None
        self.kernel("adam_moments")(m, v, g, *moments)
        self.xp.maximum(max_v, v, out=max_v)
        self.kernel("adam_param")(p, m, max_v, *stepping)
        return None


def cupy_kernel(name: str) -> Any:
    """``COMPOSITES[name]`` fused by ``cupy.fuse`` with CuPy's math (made once, then reused)."""
    fused = _FUSED.get(name)
    if fused is None:
        import cupy
        import cupyx.scipy.special

        namespace = base._MathNamespace(cupy, cupyx.scipy.special.erf)
        composite = COMPOSITES[name]

        def bound(*args: Any) -> Any:
            return composite(namespace, *args)

        fused = _FUSED[name] = cupy.fuse(kernel_name=f"tensorlite_{name}")(bound)
    return fused


def plain_kernel(backend: Any, name: str) -> Any:
    """``COMPOSITES[name]`` unfused, on ``backend``'s arrays: how the fused path runs off CUDA (tests, preflight)."""
    composite = COMPOSITES[name]
    return lambda *args: composite(backend.math, *args)


def self_check() -> dict[str, float]:
    """The fused path (its methods, with the plain cores on NumPy arrays) against the reference kernels: the largest
    difference of each, relative to the largest value. ``device_check.sh``'s preflight; AssertionError past 1e-5."""
    from .numpy_backend import NumpyBackend

    class PlainFused(FusedKernels, NumpyBackend):
        def fused_enabled(self) -> bool:
            return True

        def kernel(self, name: str) -> Any:
            return plain_kernel(self, name)

    fused, reference = PlainFused(), NumpyBackend()
    rng = numpy.random.default_rng(0)
    x, g = rng.standard_normal((2, 6, 8)).astype(numpy.float32)
    w, b = rng.standard_normal((2, 8)).astype(numpy.float32)
    results: dict[str, tuple[list[Array], list[Array]]] = {}
    for approximate in ("none", "tanh"):
        pairs = []
        for backend in (fused, reference):
            out, saved = base.Backend.gelu(backend, x, approximate) if backend is reference else backend.gelu(
                x, approximate)
            grad = (base.Backend.gelu_backward(backend, g, x, saved, approximate) if backend is reference
                    else backend.gelu_backward(g, x, saved, approximate))
            pairs.append([out, grad])
        results[f"gelu_{approximate}"] = (pairs[0], pairs[1])
    out, saved = fused.layer_norm(x, w, b, 1e-5)
    ref_out, ref_saved = base.Backend.layer_norm(reference, x, w, b, 1e-5)
    results["layer_norm"] = ([out, *fused.layer_norm_backward(g, x, w, saved)],
                             [ref_out, *base.Backend.layer_norm_backward(reference, g, x, w, ref_saved)])
    states = [[a.copy() for a in (x, numpy.zeros_like(x), numpy.zeros_like(x))] for _ in range(2)]
    for step in (1, 2, 3):
        for backend, (p, m, v) in zip((fused, reference), states):
            update = backend.adam_update if backend is fused else lambda *a, **k: base.Backend.adam_update(
                reference, *a, **k)
            update(p, g, m, v, lr=0.01, beta1=0.9, beta2=0.99, eps=1e-8, step=step, decay=0.999)
    results["adam"] = (states[0], states[1])
    errors = {}
    for name, (got, want) in results.items():
        scale = max(float(numpy.max(numpy.abs(a))) for a in want)
        errors[name] = max(float(numpy.max(numpy.abs(a - c))) for a, c in zip(got, want)) / scale
        assert errors[name] < 1e-5, (name, errors[name])
    return errors
