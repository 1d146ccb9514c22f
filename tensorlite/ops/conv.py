"""Convolution (``conv2d``, ``conv1d``) as one fused op: im2col, then one matrix product per group.

Forward lays every receptive field out as a column: a strided window view of the padded input
(no copy) is copied once into ``cols`` of shape (C * KH * KW, OH * OW * N), so that splitting the
channels into groups is a reshape and the convolution is one batched matrix product
``(G, O/G, K) @ (G, K, OH * OW * N)`` (a plain GEMM when G = 1).

Memory order: the batch is the innermost axis. The output keeps the product's order (O, OH, OW, N)
and is returned as a transposed view (N, O, OH, OW); elementwise ops and pooling preserve that order,
so the next convolution's im2col copies runs of OW * N contiguous elements, col2im adds them back
the same way, and pooling's strided slices read runs of N. NCHW inputs work too, a little slower.

Backward reuses ``cols``: the weight gradient is ``grad @ cols.T``, the columns' gradient is
``weight.T @ grad``, and the backend's ``col2im`` adds it back into the padded input (the reference
math: one strided slice-add per kernel offset, no scatter; NumPy: one compiled pass for float32).
"""

from __future__ import annotations

from tensorlite.amp.autocast_mode import cast_inputs
from tensorlite.amp.autocast_mode import state as autocast
from tensorlite.autograd import Function
from tensorlite.tensor import Tensor

Padding = int | tuple[int, ...] | str  # PyTorch's padding argument: sizes, "same" or "valid"


def ntuple(op: str, name: str, value: int | tuple[int, ...], n: int, minimum: int) -> tuple[int, ...]:
    """``value`` (an int, or a tuple of ``n`` ints, each >= ``minimum``) as a tuple of ``n`` ints, or a clear error."""
    values = (value,) * n if isinstance(value, int) else tuple(value)
    if len(values) != n or not all(isinstance(v, int) and v >= minimum for v in values):
        raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints >= {minimum}, got {value!r}")
    return values


def pad2d(xp, x, padding: tuple[tuple[int, int], tuple[int, int]], value: float = 0.0):
    """``x`` (N, C, H, W) padded by ((top, bottom), (left, right)) with ``value``, in ``x``'s memory order.

    ``x`` itself when there is no padding.
    """
    if padding == ((0, 0), (0, 0)):
        return x
    (top, bottom), (left, right) = padding
    n, c, h, w = x.shape
    padded = xp.full_like(x, value, shape=(n, c, h + top + bottom, w + left + right))
    padded[:, :, top:top + h, left:left + w] = x
    return padded


class Convolution(Function):
    """2-D cross-correlation of x (N, C, H, W) with weight (O, C/G, KH, KW), plus bias (O,)."""

    def forward(self, x, weight, bias, stride, padding, dilation, groups):
        xp, n = self.xp, x.shape[0]
        o, cg, kh, kw = weight.shape
        (sh, sw), (dh, dw) = stride, dilation
        padded = pad2d(xp, x, padding)
        windows = self.backend.sliding_window_view(padded, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), (2, 3))
        windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C, OH, OW, KH, KW), still a view
        oh, ow = windows.shape[2:4]
        # The one copy: (C, KH, KW, OH, OW, N), whose rows split into groups by a reshape.
        self.cols = xp.ascontiguousarray(windows.transpose(1, 4, 5, 2, 3, 0)).reshape(groups, cg * kh * kw, -1)
        self.weight, self.weight_shape = weight.reshape(groups, o // groups, cg * kh * kw), weight.shape
        self.geometry = (x.shape, padded.shape, padding, (kh, kw), stride, dilation, (oh, ow))
        out = xp.matmul(self.weight, self.cols).reshape(o, oh, ow, n)  # (G, O/G, OH*OW*N) -> (O, OH, OW, N)
        if bias is not None:
            out += bias.reshape(o, 1, 1, 1)
        return out.transpose(3, 0, 1, 2)

    def backward(self, g):
        xp = self.xp
        groups, o = self.weight.shape[0], g.shape[1]
        g2 = g.transpose(1, 2, 3, 0).reshape(groups, o // groups, -1)  # free when g is laid out as the output
        gw = gb = gx = None
        if self.needs_grad(1):
            gw = xp.matmul(g2, self.cols.transpose(0, 2, 1)).reshape(self.weight_shape)
        if self.needs_grad(2):
            gb = self.backend.sum_rows(g2.reshape(o, -1))
        if self.needs_grad(0):
            gx = self._col2im(xp.matmul(self.weight.transpose(0, 2, 1), g2))
        return gx, gw, gb

    def _col2im(self, gcols):
        """Add the columns' gradient (G, K/G, OH*OW*N) back into an input-shaped gradient (N, C, H, W)."""
        (n, c, h, w), (_, _, hp, wp), ((top, _), (left, _)), kernel, stride, dilation, out_size = self.geometry
        gcols = gcols.reshape(c, *kernel, *out_size, n)
        gpadded = self.backend.col2im(gcols, (hp, wp), kernel, stride, dilation)  # (C, Hp, Wp, N), batch innermost
        return gpadded[:, top:top + h, left:left + w].transpose(3, 0, 1, 2)


def _padding(op: str, padding: Padding, kernel: tuple[int, ...], stride: tuple[int, ...],
             dilation: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """PyTorch's ``padding`` argument as one (before, after) pair per spatial dimension."""
    if padding == "valid":
        return tuple((0, 0) for _ in kernel)
    if padding == "same":  # output size = input size; an odd total puts the extra row/column at the end
        if any(s != 1 for s in stride):
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride={stride})")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((total // 2, total - total // 2) for total in totals)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int, a tuple of ints, 'same' or 'valid', got {padding!r}")
    return tuple((p, p) for p in ntuple(op, "padding", padding, len(kernel), 0))


def _check(op: str, input: Tensor, weight: Tensor, bias: Tensor | None, groups: int, ndim: int) -> None:
    names = "(N, C, L)" if ndim == 1 else "(N, C, H, W)"
    if input.ndim not in (ndim + 1, ndim + 2):
        raise ValueError(f"{op}: expected a {ndim + 1}-D (unbatched) or {ndim + 2}-D {names} input, "
                         f"got shape {input.shape}")
    if weight.ndim != ndim + 2:
        raise ValueError(f"{op}: weight must be {ndim + 2}-D (out_channels, in_channels / groups, *kernel_size), "
                         f"got shape {weight.shape}")
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    channels, out_channels = input.shape[-ndim - 1], weight.shape[0]
    if out_channels % groups:
        raise ValueError(f"{op}: groups={groups} must divide out_channels={out_channels} "
                         f"(weight shape {weight.shape})")
    if channels != weight.shape[1] * groups:
        expects = f"{weight.shape[1]}" if groups == 1 else f"groups * {weight.shape[1]} = {weight.shape[1] * groups}"
        raise ValueError(f"{op}: input has {channels} channels but weight expects {expects} "
                         f"(weight shape {weight.shape}, input shape {input.shape})")
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(f"{op}: bias has shape {bias.shape}, expected ({out_channels},)")
    for name, other in (("weight", weight), ("bias", bias)):
        if other is not None and other.dtype != input.dtype:
            raise TypeError(f"{op}: input is {input.dtype} but {name} is {other.dtype}; cast one of them")


def _convolution(op: str, input: Tensor, weight: Tensor, bias: Tensor | None, stride: int | tuple[int, ...],
                 padding: Padding, dilation: int | tuple[int, ...], groups: int, ndim: int) -> Tensor:
    """conv1d (``ndim=1``) or conv2d (``ndim=2``): check the arguments, then run ``Convolution`` on 4-D arrays."""
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        input, weight, bias = cast_inputs(op, input, weight, bias)
    _check(op, input, weight, bias, groups, ndim)
    stride, dilation = ntuple(op, "stride", stride, ndim, 1), ntuple(op, "dilation", dilation, ndim, 1)
    kernel, size = tuple(weight.shape[2:]), tuple(input.shape[-ndim:])
    pads = _padding(op, padding, kernel, stride, dilation)
    padded = tuple(n + before + after for n, (before, after) in zip(size, pads))
    effective = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(e > p for e, p in zip(effective, padded)):
        raise ValueError(f"{op}: kernel size {kernel} (with dilation {dilation}: {effective}) is larger than the "
                         f"padded input {padded} (input shape {input.shape}, padding {pads})")
    batched = input if input.ndim == ndim + 2 else input.unsqueeze(0)
    if ndim == 1:  # a unit height
        batched, weight = batched.unsqueeze(2), weight.unsqueeze(2)
        stride, pads, dilation = (1, *stride), ((0, 0), *pads), (1, *dilation)
    out = Convolution.apply(batched, weight, bias, stride=stride, padding=pads, dilation=dilation, groups=groups)
    if ndim == 1:
        out = out.squeeze(2)
    return out if input.ndim == ndim + 2 else out.squeeze(0)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | tuple[int, int] = 1,
           padding: Padding = 0, dilation: int | tuple[int, int] = 1, groups: int = 1) -> Tensor:
    """2-D convolution: input (N, C, H, W) or (C, H, W), weight (O, C/groups, KH, KW), bias (O,) -> (N, O, OH, OW).

    ``padding``: an int, a pair, ``"valid"`` (none) or ``"same"`` (output as large as the input; stride 1).
    """
    return _convolution("conv2d", input, weight, bias, stride, padding, dilation, groups, 2)


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | tuple[int] = 1,
           padding: Padding = 0, dilation: int | tuple[int] = 1, groups: int = 1) -> Tensor:
    """1-D convolution: input (N, C, L) or (C, L), weight (O, C/groups, K), bias (O,) -> (N, O, OL).

    Runs as ``conv2d`` on a unit height; ``padding`` as in ``conv2d``.
    """
    return _convolution("conv1d", input, weight, bias, stride, padding, dilation, groups, 1)
