"""Elementwise ops with NumPy broadcasting: arithmetic, activations, ``where``, ``clamp``.

Each ``Function`` keeps forward and backward side by side. Gradients of broadcast inputs are
summed back to the input's shape by ``unbroadcast``.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from tensorlite.amp.autocast_mode import cast_inputs
from tensorlite.amp.autocast_mode import state as autocast
from tensorlite.autograd import Function, is_grad_enabled
from tensorlite.device import Device
from tensorlite.errors import broadcast_error
from tensorlite.tensor import Tensor


def unbroadcast(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` over the dimensions that broadcasting added or stretched, giving ``shape``."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad.reshape(shape)


def _shape(x: Any) -> tuple[int, ...]:
    return getattr(x, "shape", ())


class _Binary(Function):
    """A broadcasting binary op: remembers input shapes (and the inputs, if ``keeps_inputs``), explains shape errors.

    ``compute(a, b)`` is the math. The four arithmetic ops make it Python's operator itself (``operator.mul``), so
    that no Python call stands between the op and the array library (0.2 of a 4x4 product's 1.3 us).
    """

    keeps_inputs = False  # whether backward needs a and b (as self.a, self.b)

    def forward(self, a: Any, b: Any) -> Any:
        self.a_shape, self.b_shape = getattr(a, "shape", ()), getattr(b, "shape", ())  # _shape, inline (hot path)
        if self.keeps_inputs:
            self.a, self.b = a, b
        try:
            return self.compute(a, b)
        except ValueError as exc:
            raise broadcast_error(type(self).__name__.lower(), self.a_shape, self.b_shape) from exc

    def compute(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def to_input_shapes(self, ga: Any, gb: Any) -> tuple[Any, Any]:
        """``ga`` and ``gb``, gradients shaped like the output (or None), each summed down to its input's shape.
        Inputs of one shape were not broadcast: both gradients are returned as they are (one call for the pair)."""
        if self.a_shape == self.b_shape:
            return ga, gb
        return (None if ga is None else unbroadcast(ga, self.a_shape),
                None if gb is None else unbroadcast(gb, self.b_shape))


class Add(_Binary):
    compute = staticmethod(operator.add)

    def backward(self, g):
        return self.to_input_shapes(g, g)


class Sub(_Binary):
    compute = staticmethod(operator.sub)

    def backward(self, g):
        return self.to_input_shapes(g, -g if self.needs_grad(1) else None)


class Mul(_Binary):
    keeps_inputs = True
    compute = staticmethod(operator.mul)

    def backward(self, g):
        ga = g * self.b if self.needs_grad(0) else None
        gb = g * self.a if self.needs_grad(1) else None
        return self.to_input_shapes(ga, gb)


class Div(_Binary):
    keeps_inputs = True
    compute = staticmethod(operator.truediv)

    def backward(self, g):
        g_over_b = g / self.b
        ga = g_over_b if self.needs_grad(0) else None
        gb = -g_over_b * self.a / self.b if self.needs_grad(1) else None
        return self.to_input_shapes(ga, gb)


class Pow(_Binary):
    keeps_inputs = True

    def compute(self, a, b):
        self.out = a**b
        return self.out

    def backward(self, g):
        a, b, xp = self.a, self.b, self.xp
        ga = g * b * a ** (b - 1) if self.needs_grad(0) else None
        gb = None
        if self.needs_grad(1):  # d(a^b)/db = a^b log a, taken as 0 where a <= 0 (as PyTorch does)
            log_a = xp.log(xp.where(a > 0, a, 1)) if hasattr(a, "shape") else math.log(a) if a > 0 else 0.0
            gb = g * self.out * log_a
        return self.to_input_shapes(ga, gb)


class Maximum(_Binary):
    keeps_inputs = True

    def compute(self, a, b):
        return self.xp.maximum(a, b)

    def backward(self, g):  # ties split the gradient evenly, as in PyTorch
        share = self.xp.where(self.a == self.b, 0.5, (self.a > self.b) * 1.0).astype(g.dtype)
        ga = g * share if self.needs_grad(0) else None
        gb = g * (1 - share) if self.needs_grad(1) else None
        return self.to_input_shapes(ga, gb)


class Minimum(_Binary):
    keeps_inputs = True

    def compute(self, a, b):
        return self.xp.minimum(a, b)

    def backward(self, g):
        share = self.xp.where(self.a == self.b, 0.5, (self.a < self.b) * 1.0).astype(g.dtype)
        ga = g * share if self.needs_grad(0) else None
        gb = g * (1 - share) if self.needs_grad(1) else None
        return self.to_input_shapes(ga, gb)


class Where(Function):
    def forward(self, condition, a, b):
        self.condition, self.a_shape, self.b_shape = condition, _shape(a), _shape(b)
        try:
            return self.xp.where(condition, a, b)
        except ValueError as exc:
            raise broadcast_error("where", _shape(condition), self.a_shape, self.b_shape) from exc

    def backward(self, g):
        zero = self.xp.zeros((), dtype=g.dtype)
        ga = unbroadcast(self.xp.where(self.condition, g, zero), self.a_shape) if self.needs_grad(1) else None
        gb = unbroadcast(self.xp.where(self.condition, zero, g), self.b_shape) if self.needs_grad(2) else None
        return None, ga, gb


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, g):
        return (-g,)


class Exp(Function):
    def forward(self, x):
        self.out = self.xp.exp(x)
        return self.out

    def backward(self, g):
        return (g * self.out,)


class Log(Function):
    def forward(self, x):
        self.x = x
        return self.xp.log(x)

    def backward(self, g):
        return (g / self.x,)


class Sqrt(Function):
    def forward(self, x):
        self.out = self.xp.sqrt(x)
        return self.out

    def backward(self, g):
        return (g / (2 * self.out),)


class Abs(Function):
    def forward(self, x):
        self.x = x
        return self.xp.abs(x)

    def backward(self, g):
        return (g * self.xp.sign(self.x),)


class Sin(Function):
    def forward(self, x):
        self.x = x
        return self.xp.sin(x)

    def backward(self, g):
        return (g * self.xp.cos(self.x),)


class Cos(Function):
    def forward(self, x):
        self.x = x
        return self.xp.cos(x)

    def backward(self, g):
        return (-g * self.xp.sin(self.x),)


class Tanh(Function):
    def forward(self, x):
        self.out = self.xp.tanh(x)
        return self.out

    def backward(self, g):
        return (g * (1 - self.out * self.out),)


class Sigmoid(Function):
    def forward(self, x):  # exp of -|x| never overflows
        xp = self.xp
        e = xp.exp(-xp.abs(x))
        self.out = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.out

    def backward(self, g):
        return (g * self.out * (1 - self.out),)


class Relu(Function):
    def forward(self, x):
        self.out = self.backend.relu(x)  # keeps x's dtype and memory order; NaN stays NaN
        return self.out

    def backward(self, g):
        return (self.backend.relu_backward(g, self.out),)


class LeakyRelu(Function):
    def forward(self, x, negative_slope):
        self.slope = self.xp.where(x > 0, 1, negative_slope).astype(x.dtype)
        return x * self.slope

    def backward(self, g):
        return (g * self.slope, None)


class Gelu(Function):
    """GELU: x * Phi(x) with the exact normal CDF (``approximate="none"``) or its tanh form (the backend's
    fused kernel: one pass on the CPU with Numba)."""

    def forward(self, x, approximate="none"):
        self.x, self.approximate = x, approximate
        out, self.saved = self.backend.gelu(x, approximate)
        return out

    def backward(self, g):
        return (self.backend.gelu_backward(g, self.x, self.saved, self.approximate), None)


class Softplus(Function):
    """log(1 + exp(beta x)) / beta, linear above ``threshold`` (as PyTorch)."""

    def forward(self, x, beta=1.0, threshold=20.0):
        xp = self.xp
        bx = x * beta
        self.linear, self.bx = bx > threshold, bx
        soft = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / beta
        return xp.where(self.linear, x, soft)

    def backward(self, g):
        xp = self.xp
        e = xp.exp(-xp.abs(self.bx))
        sig = xp.where(self.bx >= 0, 1 / (1 + e), e / (1 + e))
        return (g * xp.where(self.linear, 1, sig).astype(g.dtype, copy=False), None, None)


class Clamp(Function):
    def forward(self, x, low, high):
        xp = self.xp
        self.mask = xp.ones(x.shape, dtype=bool)
        if low is not None:
            self.mask &= x >= low
            x = xp.maximum(x, low)
        if high is not None:
            self.mask &= x <= high
            x = xp.minimum(x, high)
        return x

    def backward(self, g):
        return (g * self.mask, None, None)


class AsType(Function):
    def forward(self, x, dtype):
        self.in_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return (g.astype(self.in_dtype), None)


class ToDevice(Function):
    """A copy to another device; built by ``to_device`` since its output changes device. Its backward runs under
    the source device (``backend``), where the gradient goes."""

    def backward(self, g):
        return (self.backend.copy_from(g, self.target), None)


class Clone(Function):
    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return (g,)


# -- the public functions --------------------------------------------------------------------------
def add(input: Tensor | Any, other: Tensor | Any) -> Tensor:
    """``input + other``, broadcast: the output has the broadcast shape of the two."""
    return Add.apply(input, other)


def sub(input: Tensor | Any, other: Tensor | Any) -> Tensor:
    """``input - other``, broadcast."""
    return Sub.apply(input, other)


def mul(input: Tensor | Any, other: Tensor | Any) -> Tensor:
    """``input * other``, broadcast."""
    return Mul.apply(input, other)


def div(input: Tensor | Any, other: Tensor | Any) -> Tensor:
    """``input / other``, broadcast (true division: integer inputs give a float result)."""
    return Div.apply(input, other)


def pow(input: Tensor | Any, exponent: Tensor | Any) -> Tensor:
    """``input ** exponent``, broadcast; either may be a tensor."""
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, exponent = cast_inputs("pow", input, exponent)
    return Pow.apply(input, exponent)


def maximum(input: Tensor, other: Tensor | Any) -> Tensor:
    """The larger of ``input`` and ``other``, elementwise (ties send the gradient half to each)."""
    return Maximum.apply(input, other)


def minimum(input: Tensor, other: Tensor | Any) -> Tensor:
    """The smaller of ``input`` and ``other``, elementwise (ties send the gradient half to each)."""
    return Minimum.apply(input, other)


def where(condition: Tensor, input: Tensor | Any, other: Tensor | Any) -> Tensor:
    """``input`` where ``condition`` holds, else ``other`` (broadcasting all three)."""
    if not isinstance(condition, Tensor) or condition.dtype.kind != "b":
        got = condition.dtype if isinstance(condition, Tensor) else type(condition).__name__
        raise TypeError(f"where: condition must be a bool tensor, got {got}")
    return Where.apply(condition, input, other)


def neg(input: Tensor) -> Tensor:
    """``-input``."""
    return Neg.apply(input)


def exp(input: Tensor) -> Tensor:
    """e to the power of each element."""
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, = cast_inputs("exp", input)
    return Exp.apply(input)


def log(input: Tensor) -> Tensor:
    """Natural logarithm of each element (``-inf`` at 0, NaN below)."""
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, = cast_inputs("log", input)
    return Log.apply(input)


def sqrt(input: Tensor) -> Tensor:
    """Square root of each element."""
    return Sqrt.apply(input)


def abs(input: Tensor) -> Tensor:
    """Absolute value of each element (gradient 0 at 0)."""
    return Abs.apply(input)


def sin(input: Tensor) -> Tensor:
    """Sine of each element (radians)."""
    return Sin.apply(input)


def cos(input: Tensor) -> Tensor:
    """Cosine of each element (radians)."""
    return Cos.apply(input)


def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent: squashes to (-1, 1), zero-centred; its gradient vanishes for large ``|x|``."""
    return Tanh.apply(input)


def sigmoid(input: Tensor) -> Tensor:
    """``1 / (1 + exp(-x))``: squashes to (0, 1), a probability; computed without overflow."""
    return Sigmoid.apply(input)


def relu(input: Tensor) -> Tensor:
    """``max(x, 0)``: the default hidden activation (gradient 1 where x > 0, else 0)."""
    return Relu.apply(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """``x`` where x > 0, else ``negative_slope * x``: a ReLU whose units cannot die."""
    return LeakyRelu.apply(input, negative_slope)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """GELU; ``approximate="tanh"`` uses the tanh form (GPT-2), ``"none"`` the exact erf form."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(input, approximate)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta * x)) / beta``, a smooth ReLU (linear above ``threshold`` for stability)."""
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, = cast_inputs("softplus", input)
    return Softplus.apply(input, beta, threshold)


def clamp(input: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    """Limit values to ``[min, max]``; the gradient flows where the input was inside the range."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clamp.apply(input, min, max)


clip = clamp


def astype(input: Tensor, dtype: Any) -> Tensor:
    """A copy converted to ``dtype``; the gradient is converted back to the input's dtype."""
    return AsType.apply(input, dtype)


def to_device(input: Tensor, device: Device) -> Tensor:
    """Copy ``input`` to ``device`` (device to device between GPUs, else through the host); the gradient travels
    back the same way."""
    source, target = input._device.backend, device.backend
    data = target.copy_from(input._data, source)
    if not (input._requires_grad and is_grad_enabled()):
        return Tensor._make(data, device, False, None)
    fn = ToDevice()
    fn.inputs, fn.backend, fn.target = (input, device), source, target
    return Tensor._make(data, device, True, fn)


def clone(input: Tensor) -> Tensor:
    """A copy with its own memory; gradients flow through it unchanged."""
    return Clone.apply(input)
