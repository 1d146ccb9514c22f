"""Pooling as fused ops: ``max_pool2d``, ``avg_pool2d``, ``adaptive_avg_pool2d``.

Max and average pooling reduce over the kernel offsets: for offset (i, j), the strided slice
``padded[:, :, i*d : ... : s, j*d : ... : s]`` (a view) holds that element of every window, so the
pooled map is an elementwise max (or sum) of KH * KW views, with no window copy. For the common
non-overlapping case (stride = kernel) these views are exactly ``x.reshape(N, C, OH, k, OW, k)[:, :, :, i, :, j]``;
reducing them one by one is ~40x faster in NumPy than ``.max(axis=(3, 5))`` over the reshaped view.
Backward adds the gradient into the same slices, one offset at a time (no scatter). Max pooling
sends each window's gradient to its first maximum, as PyTorch does.

Adaptive average pooling is linear and separable: ``out = A_h @ x @ A_w.T``, where row ``i`` of
``A_h`` (OH, H) averages the input rows ``floor(i*H/OH) .. ceil((i+1)*H/OH) - 1``.
"""

from __future__ import annotations

from tensorlite.autograd import Function
from tensorlite.backends.base import overlapping_windows, window_slices
from tensorlite.ops.conv import ntuple, pad2d
from tensorlite.tensor import Tensor


class MaxPool(Function):
    """Max pooling through the backend's kernel (one compiled pass on the CPU, which saves each window's argmax)."""

    def forward(self, x, kernel, stride, padding, dilation, out_size):
        self.crop = (padding[0][0], padding[1][0], *x.shape[2:])
        out, self.saved = self.backend.max_pool2d(pad2d(self.xp, x, padding, float("-inf")), kernel, stride, dilation,
                                                  out_size)
        return out

    def backward(self, g):
        return (_crop(self.backend.max_pool2d_backward(g, self.saved), self.crop),)


class AvgPool(Function):
    def forward(self, x, kernel, stride, padding, out_size, count_include_pad, divisor_override):
        xp = self.xp
        padded = pad2d(xp, x, padding)
        self.slices = list(window_slices(kernel, stride, (1, 1), out_size))
        self.padded_shape, self.crop = padded.shape, (padding[0][0], padding[1][0], *x.shape[2:])
        self.overlapping = overlapping_windows(kernel, stride, (1, 1))
        if divisor_override:
            self.scale = 1.0 / divisor_override
        else:  # count each window's elements inside the input, and inside the padding if asked to
            top, left, h, w = self.crop
            counted = xp.zeros(padded.shape[2:], dtype=x.dtype)
            if count_include_pad:  # the padding, but not the extra rows/columns of ceil_mode
                counted[:h + 2 * top, :w + 2 * left] = 1
            else:
                counted[top:top + h, left:left + w] = 1
            self.scale = 1.0 / sum(counted[rows, cols] for _, _, rows, cols in self.slices)
        _, _, rows, cols = self.slices[0]
        out = xp.copy(padded[:, :, rows, cols], order="K")  # in the input's memory order
        for _, _, rows, cols in self.slices[1:]:
            out += padded[:, :, rows, cols]
        out *= self.scale
        return out

    def backward(self, g):
        gpadded = self.xp.zeros_like(g, shape=self.padded_shape)  # in g's memory order
        g = g * self.scale
        for _, _, rows, cols in self.slices:
            if self.overlapping:
                gpadded[:, :, rows, cols] += g
            else:
                gpadded[:, :, rows, cols] = g
        return (_crop(gpadded, self.crop),)


def _crop(gpadded, crop: tuple[int, int, int, int]):
    """The input's part (N, C, H, W) of a gradient of the padded input; ``crop`` is (top, left, H, W)."""
    top, left, h, w = crop
    return gpadded[:, :, top:top + h, left:left + w]


class AdaptiveAvgPool(Function):
    def forward(self, x, out_size):
        self.rows = _averaging_matrix(self.xp, x.shape[2], out_size[0], x.dtype)  # (OH, H)
        self.cols = _averaging_matrix(self.xp, x.shape[3], out_size[1], x.dtype)  # (OW, W)
        return self.rows @ x @ self.cols.T

    def backward(self, g):
        return (self.rows.T @ g @ self.cols,)


def _averaging_matrix(xp, size: int, out: int, dtype):
    """(out, size): row i averages the inputs floor(i * size / out) .. ceil((i + 1) * size / out) - 1."""
    i = xp.arange(out)[:, None]
    start, end = (i * size) // out, ((i + 1) * size + out - 1) // out
    position = xp.arange(size)[None, :]
    inside = (position >= start) & (position < end)
    return (inside / (end - start)).astype(dtype)


def _pool_geometry(op: str, input: Tensor, kernel_size, stride, padding, dilation, ceil_mode: bool):
    """(kernel, stride, ((top, bottom), (left, right)) padding, dilation, (OH, OW)) of a 2-D pooling."""
    if input.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {input.shape}")
    kernel = ntuple(op, "kernel_size", kernel_size, 2, 1)
    stride = kernel if stride is None or stride == () else ntuple(op, "stride", stride, 2, 1)
    padding, dilation = ntuple(op, "padding", padding, 2, 0), ntuple(op, "dilation", dilation, 2, 1)
    pads, out_size = [], []
    for size, k, s, p, d in zip(input.shape[-2:], kernel, stride, padding, dilation):
        if p > k // 2:
            raise ValueError(f"{op}: padding should be at most half of the kernel size, got padding={padding} for "
                             f"kernel_size={kernel}")
        span = d * (k - 1) + 1  # the window's extent, dilation included
        room = size + 2 * p - span
        out = (-(-room // s) if ceil_mode else room // s) + 1
        if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside the input or left padding
            out -= 1
        if out < 1:
            raise ValueError(f"{op}: the (padded) input is smaller than the kernel: input shape {input.shape}, "
                             f"kernel_size={kernel}, padding={padding}, dilation={dilation}")
        pads.append((p, p + max(0, (out - 1) * s + span - size - 2 * p)))  # ceil_mode may need more at the end
        out_size.append(out)
    return kernel, stride, tuple(pads), dilation, tuple(out_size)


def _batched(pool: type[Function], input: Tensor, **params) -> Tensor:
    """``pool`` on a 4-D input; a 3-D (C, H, W) input runs as a batch of one."""
    if input.ndim == 3:
        return pool.apply(input.unsqueeze(0), **params).squeeze(0)
    return pool.apply(input, **params)


def max_pool2d(input: Tensor, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
               padding: int | tuple[int, int] = 0, dilation: int | tuple[int, int] = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor:
    """The maximum of each window: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW); ``stride`` defaults to the kernel.

    Padding counts as -inf. Each window's gradient goes to its first maximum (a window whose maximum is NaN
    passes no gradient).
    """
    if return_indices:
        raise NotImplementedError("max_pool2d: return_indices=True is not supported")
    kernel, stride, pads, dilation, out_size = _pool_geometry("max_pool2d", input, kernel_size, stride, padding,
                                                              dilation, ceil_mode)
    return _batched(MaxPool, input, kernel=kernel, stride=stride, padding=pads, dilation=dilation, out_size=out_size)


def avg_pool2d(input: Tensor, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
               padding: int | tuple[int, int] = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """The mean of each window: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW); ``stride`` defaults to the kernel.

    ``count_include_pad``: divide by the whole window (padding zeros included) or only its input elements;
    ``divisor_override``: divide by this instead.
    """
    if divisor_override is not None and (not isinstance(divisor_override, int) or divisor_override < 1):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int, got {divisor_override!r}")
    kernel, stride, pads, _, out_size = _pool_geometry("avg_pool2d", input, kernel_size, stride, padding, 1,
                                                       ceil_mode)
    return _batched(AvgPool, input, kernel=kernel, stride=stride, padding=pads, out_size=out_size,
                    count_include_pad=count_include_pad, divisor_override=divisor_override)


def adaptive_avg_pool2d(input: Tensor, output_size: int | tuple[int | None, int | None]) -> Tensor:
    """Average pooling to a fixed output size (OH, OW), whatever the input's (N, C, H, W) or (C, H, W).

    Window i spans rows floor(i*H/OH) .. ceil((i+1)*H/OH) - 1 (likewise columns); ``None`` keeps that size.
    """
    if input.ndim not in (3, 4):
        raise ValueError(f"adaptive_avg_pool2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                         f"{input.shape}")
    sizes = (output_size, output_size) if isinstance(output_size, int) or output_size is None else tuple(output_size)
    if len(sizes) == 2:  # None keeps the input's size
        sizes = tuple(n if s is None else s for s, n in zip(sizes, input.shape[-2:]))
    out_size = ntuple("adaptive_avg_pool2d", "output_size", sizes, 2, 1)
    if min(input.shape[-2:]) < 1:
        raise ValueError(f"adaptive_avg_pool2d: input of shape {input.shape} has an empty spatial dimension")
    return _batched(AdaptiveAvgPool, input, out_size=out_size)
