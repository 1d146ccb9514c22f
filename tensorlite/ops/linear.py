"""The affine map of a fully connected layer, ``y = x @ W.T + b``, as one fused op.

Fused so that a batch of any leading shape costs two matrix products in backward: the weight
gradient flattens the leading dimensions into one (instead of a batched product summed later).
"""

from __future__ import annotations

from tensorlite.amp.autocast_mode import cast_inputs
from tensorlite.amp.autocast_mode import state as autocast
from tensorlite.autograd import Function
from tensorlite.tensor import Tensor


class Linear(Function):
    def forward(self, x, weight, bias):
        self.x, self.weight = x, weight
        out = x.reshape(-1, x.shape[-1]) @ weight.T  # one 2-D BLAS product (NumPy loops over a stack of them)
        if bias is not None:
            self.backend.add_rows(out, bias)
        return out.reshape(*x.shape[:-1], weight.shape[0])

    def backward(self, g):
        x, weight = self.x, self.weight
        g2 = g.reshape(-1, g.shape[-1])  # (batch, out) with every leading dimension in the batch
        gx = (g2 @ weight).reshape(x.shape) if self.needs_grad(0) else None
        gw = g2.T @ x.reshape(-1, x.shape[-1]) if self.needs_grad(1) else None
        gb = self.backend.sum_columns(g2) if self.needs_grad(2) else None
        return gx, gw, gb


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias``: input (*, in), weight (out, in), bias (out,) -> (*, out)."""
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, weight, bias = cast_inputs("linear", input, weight, bias)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {input.shape} does not match weight of shape {weight.shape}: "
                         f"expected the last input dimension to be in_features={weight.shape[1]}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias has shape {bias.shape}, expected ({weight.shape[0]},) for weight of shape "
                         f"{weight.shape}")
    for name, other in (("weight", weight), ("bias", bias)):
        if other is not None and other.dtype != input.dtype:
            raise TypeError(f"linear: input is {input.dtype} but {name} is {other.dtype}; cast one of them")
    return Linear.apply(input, weight, bias)
