"""Normalisation layers as fused ops: ``layer_norm`` and ``batch_norm``.

Both standardise ``x`` over some axes, ``xhat = (x - mean) / sqrt(var + eps)``, then scale and
shift it: ``y = xhat * weight + bias``. Forward saves ``xhat`` and ``1 / sqrt(var + eps)``; backward
is the closed form

    dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))    (means over the same axes)

instead of a graph of a dozen small ops.
"""

from __future__ import annotations

import math
from typing import Any

from tensorlite.amp.autocast_mode import cast_inputs
from tensorlite.amp.autocast_mode import state as autocast
from tensorlite.autograd import Function
from tensorlite.tensor import Tensor


def _standardize(xp: Any, x: Any, axes: tuple[int, ...], eps: float) -> tuple[Any, Any, Any, Any]:
    """(xhat, inv_std, mean, biased variance) of ``x`` over ``axes`` (statistics keep their dims)."""
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / xp.sqrt(var + eps)
    centered *= inv_std
    return centered, inv_std, mean, var


def _standardize_backward(gxhat: Any, xhat: Any, inv_std: Any, axes: tuple[int, ...]) -> Any:
    """The gradient through ``_standardize`` when its statistics came from ``x`` itself."""
    mean_g = gxhat.mean(axis=axes, keepdims=True)
    mean_gx = (gxhat * xhat).mean(axis=axes, keepdims=True)
    return inv_std * (gxhat - mean_g - xhat * mean_gx)


def _affine(xhat: Any, weight: Any, bias: Any) -> Any:
    """``xhat * weight + bias`` (either may be None) in a new array."""
    out = xhat * weight if weight is not None else xhat.copy()
    if bias is not None:
        out += bias
    return out


class LayerNorm(Function):
    """Normalise over the last ``ndim`` axes; weight and bias have that shape.

    Works on rows (N, D): every leading axis goes into N, the normalised axes into D; the math is the
    backend's ``layer_norm`` kernel (one compiled pass on the CPU).
    """

    def forward(self, x, weight, bias, ndim, eps):
        self.shape, self.param_shape = x.shape, x.shape[x.ndim - ndim:]
        D = math.prod(self.param_shape)
        self.x2, self.weight = x.reshape(-1, D), None if weight is None else weight.reshape(D)
        out, self.saved = self.backend.layer_norm(self.x2, self.weight, None if bias is None else bias.reshape(D), eps)
        return out.reshape(x.shape)

    def backward(self, g):
        gx, gw, gb = self.backend.layer_norm_backward(g.reshape(self.x2.shape), self.x2, self.weight, self.saved)
        return (gx.reshape(self.shape) if self.needs_grad(0) else None,
                gw.reshape(self.param_shape) if self.needs_grad(1) else None,
                gb.reshape(self.param_shape) if self.needs_grad(2) else None, None, None)


class BatchNorm(Function):
    """Normalise each channel (axis 1) over the batch and spatial axes, with batch or running statistics.

    In training, the running statistics are updated in place (outside the graph):
    ``running = (1 - momentum) * running + momentum * batch_stat``, with the unbiased batch variance.
    """

    def forward(self, x, running_mean, running_var, weight, bias, training, momentum, eps):
        xp = self.xp
        channel = (1, -1) + (1,) * (x.ndim - 2)  # (C,) -> broadcastable against (N, C, *)
        self.axes, self.training = (0, *range(2, x.ndim)), training
        if training:
            self.xhat, self.inv_std, mean, var = _standardize(xp, x, self.axes, eps)
            if running_mean is not None:
                n = x.size // x.shape[1]
                running_mean[...] = (1 - momentum) * running_mean + momentum * mean.reshape(-1)
                running_var[...] = (1 - momentum) * running_var + (momentum * n / (n - 1)) * var.reshape(-1)
        else:
            self.inv_std = 1.0 / xp.sqrt(running_var.reshape(channel) + eps)
            self.xhat = (x - running_mean.reshape(channel)) * self.inv_std
        self.weight = None if weight is None else weight.reshape(channel)
        return _affine(self.xhat, self.weight, None if bias is None else bias.reshape(channel))

    def backward(self, g):
        gw = (g * self.xhat).sum(axis=self.axes) if self.needs_grad(3) else None
        gb = g.sum(axis=self.axes) if self.needs_grad(4) else None
        gx = None
        if self.needs_grad(0):
            gxhat = g if self.weight is None else g * self.weight
            if self.training:
                gx = _standardize_backward(gxhat, self.xhat, self.inv_std, self.axes)
            else:  # running statistics are constants
                gx = gxhat * self.inv_std
        return gx, None, None, gw, gb, None, None, None


def _check_param(op: str, name: str, value: Tensor | None, shape: tuple[int, ...]) -> None:
    if value is not None and tuple(value.shape) != shape:
        raise ValueError(f"{op}: {name} has shape {tuple(value.shape)}, expected {shape}")


def layer_norm(input: Tensor, normalized_shape: int | tuple[int, ...], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Standardise over the trailing ``normalized_shape`` dimensions of ``input`` ``(*, *normalized_shape)``."""
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, weight, bias = cast_inputs("layer_norm", input, weight, bias)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or input.shape[input.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm: normalized_shape={shape} needs an input whose last {len(shape)} dimension(s) "
                         f"are {shape}, got shape {input.shape}")
    _check_param("layer_norm", "weight", weight, shape)
    _check_param("layer_norm", "bias", bias, shape)
    return LayerNorm.apply(input, weight, bias, len(shape), eps)


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Standardise each channel of ``input`` ``(N, C, *)`` over N and ``*``, then scale and shift per channel.

    ``training``: use the batch's statistics and update ``running_mean``/``running_var`` (C,) in
    place if given; otherwise normalise with the running statistics.
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C, *), got {input.shape}")
    channels = (input.shape[1],)
    for name, value in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                        ("bias", bias)):
        _check_param("batch_norm", name, value, channels)
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    if training and input.numel() // input.shape[1] <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input of shape "
                         f"{input.shape}")
    if not training and running_mean is None:
        raise ValueError("batch_norm: evaluation (training=False) needs running_mean and running_var")
    return BatchNorm.apply(input, running_mean, running_var, weight, bias, training, momentum, eps)
