"""Scaled dot-product attention as one fused op: ``softmax(q @ k.T * scale + mask) @ v``.

The math is the backend's ``attention`` and ``attention_backward`` kernels (``backends/base.py`` holds the
reference): forward is two batched matrix products around a numerically stable softmax (every head at once,
no Python loop over heads or the batch). Backward is the closed form, with P the (dropped-out)
attention weights and G the output's gradient::

    dv = P.T @ G        dP = G @ v.T        dS = P * (dP - rowsum(dP * P))
    dq = dS @ k * scale                     dk = dS.T @ q * scale

Masked positions are -inf before the softmax's max-shift; a row with no visible key gets zero
weights (and so a zero output and zero gradients), as PyTorch's ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from tensorlite.amp.autocast_mode import cast_inputs
from tensorlite.amp.autocast_mode import state as autocast
from tensorlite.autograd import Function
from tensorlite.errors import device_mismatch
from tensorlite.ops.elementwise import unbroadcast
from tensorlite.tensor import Tensor


@functools.lru_cache(maxsize=64)  # a training run uses one (L, S); generation without a cache a few hundred
def causal_mask(device: Any, L: int, S: int, dtype: Any, offset: int = 0) -> Any:
    """The additive causal mask (L, S) on ``device``: 0 where key j <= query i + offset, else -inf (built once).

    ``offset=0`` is PyTorch's ``is_causal`` (top-left aligned); queries that follow ``offset`` cached
    positions see those too.
    """
    xp = device.backend.xp
    with device.backend.scope:
        visible = xp.tri(L, S, k=offset, dtype=bool)
        return xp.where(visible, 0.0, -math.inf).astype(dtype)


class ScaledDotProductAttention(Function):
    """q (..., L, E), k (..., S, E), v (..., S, Ev), additive mask broadcastable to (..., L, S) or None; the math is
    the backend's ``attention`` kernel (on the CPU, each (batch, head) matrix's products and softmax in one pass
    over OpenBLAS's threads)."""

    def forward(self, q, k, v, mask, dropout_p, scale):
        self.q, self.k, self.v, self.scale = q, k, v, scale
        self.mask_shape = None if mask is None else mask.shape
        self.keep = None
        if dropout_p > 0:
            scores_shape = (*self.xp.broadcast_shapes(q.shape[:-2], k.shape[:-2]), q.shape[-2], k.shape[-2])
            self.keep = (self.backend.uniform(scores_shape, q.dtype) >= dropout_p).astype(q.dtype)
            self.keep *= 0.0 if dropout_p == 1 else 1.0 / (1.0 - dropout_p)
        out, self.weights = self.backend.attention(q, k, v, mask, scale, self.keep)  # mask: checked by the caller
        return out  # (..., L, Ev)

    def backward(self, g):
        needs = (self.needs_grad(0), self.needs_grad(1), self.needs_grad(2))
        gq, gk, gv, gmask = self.backend.attention_backward(g, self.q, self.k, self.v, self.weights, self.keep,
                                                            self.scale, needs, mask_grad=self.needs_grad(3))
        return (None if gq is None else unbroadcast(gq, self.q.shape),
                None if gk is None else unbroadcast(gk, self.k.shape),
                None if gv is None else unbroadcast(gv, self.v.shape),
                None if gmask is None else unbroadcast(gmask, self.mask_shape), None, None)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None) -> Tensor:
    """Attention of query (..., L, E) over key (..., S, E) and value (..., S, Ev) -> (..., L, Ev).

    ``attn_mask`` broadcasts to (..., L, S): bool (True = may attend) or float (added to the
    scores). ``is_causal``: query i sees keys 0..i (top-left aligned). ``dropout_p`` drops
    attention weights with the device's generator (pass 0 when evaluating). ``scale`` defaults to
    1 / sqrt(E).
    """
    op = "scaled_dot_product_attention"
    if autocast.dtypes:  # tl.autocast is on: this op's inputs may change dtype
        query, key, value, attn_mask = cast_inputs(op, query, key, value, attn_mask)
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a tensor, got {type(t).__name__}")
        if t.ndim < 2 or t.dtype.kind != "f":
            raise ValueError(f"{op}: {name} must be a floating tensor with at least 2 dimensions (..., length, "
                             f"features), got shape {t.shape}, dtype {t.dtype}")
    xp = query.device.backend.xp
    (L, E), S = query.shape[-2:], key.shape[-2]
    try:
        batch = xp.broadcast_shapes(query.shape[:-2], key.shape[:-2])  # the scores' batch dimensions
        xp.broadcast_shapes(batch, value.shape[:-2])
    except ValueError:
        batch = None
    if batch is None or key.shape[-1] != E or value.shape[-2] != S:
        raise ValueError(f"{op}: expected query (..., L, E), key (..., S, E), value (..., S, Ev) with broadcastable "
                         f"batch dimensions, got query {query.shape}, key {key.shape}, value {value.shape}")
    if key.dtype != query.dtype or value.dtype != query.dtype:
        raise TypeError(f"{op}: query, key and value must share a dtype, got {query.dtype}, {key.dtype}, "
                        f"{value.dtype}")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be between 0 and 1, got {dropout_p}")
    scale = 1.0 / math.sqrt(E) if scale is None else float(scale)
    mask: Tensor | Any = None
    if is_causal:
        if attn_mask is not None:
            raise ValueError(f"{op}: give attn_mask or is_causal=True, not both")
        mask = causal_mask(query.device, L, S, query.dtype)
    elif attn_mask is not None:
        mask = _additive_mask(op, attn_mask, query, (*batch, L, S))
    return ScaledDotProductAttention.apply(query, key, value, mask, dropout_p, scale)


def _additive_mask(op: str, attn_mask: Tensor, query: Tensor, scores_shape: tuple[int, ...]) -> Tensor | Any:
    """A float mask as given (it may carry a gradient); a bool mask as an array of 0 (attend) and -inf."""
    if not isinstance(attn_mask, Tensor):
        raise TypeError(f"{op}: attn_mask must be a bool or float tensor, got {type(attn_mask).__name__}")
    xp = query.device.backend.xp
    try:
        fits = xp.broadcast_shapes(attn_mask.shape, scores_shape) == scores_shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{op}: attn_mask of shape {attn_mask.shape} does not broadcast to the scores' shape "
                         f"{scores_shape} (batch..., L, S)")
    if attn_mask.device is not query.device:
        raise device_mismatch(f"{op} (attn_mask, query)", attn_mask.device, query.device)
    if attn_mask.dtype.kind == "b":
        with query.device.backend.scope:
            return xp.where(attn_mask._data, 0.0, -math.inf).astype(query.dtype)
    if attn_mask.dtype != query.dtype:
        raise TypeError(f"{op}: attn_mask must be bool or {query.dtype} like the query, got {attn_mask.dtype}")
    return attn_mask


class KVCacheAttention(Function):
    """Causal attention of T new positions over a key/value cache that it extends in place (inference)."""

    differentiable = False

    def forward(self, qkv, cache, pos, n_head, mask):
        B, T, C3 = qkv.shape
        C = C3 // 3
        qkv = qkv.reshape(B, T, 3, n_head, C // n_head).transpose(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
        cache[:, :, :, pos:pos + T] = qkv[1:]
        q, k, v = qkv[0], cache[0, :, :, :pos + T], cache[1, :, :, :pos + T]  # (B, nh, T or pos + T, hs)
        y, _ = self.backend.attention(q, k, v, mask, 1.0 / math.sqrt(C // n_head))  # (B, nh, T, hs), laid out like q
        return y.transpose(0, 2, 1, 3).reshape(B, T, C)  # the heads side by side


def kv_cache_attention(qkv: Tensor, cache: Tensor, pos: int, n_head: int) -> Tensor:
    """Causal self-attention for generation: each new token costs one position, not the whole context.

    qkv (B, T, 3 * C) holds the queries, keys and values of positions pos..pos+T-1 (heads side by
    side, as one projection makes them); their keys and values are written into ``cache``
    (2, B, n_head, max_len, C / n_head) at those positions, and each new position attends over the
    cached positions before it and the new ones up to itself. Returns (B, T, C). Not differentiable
    (a tensorlite extension, not in PyTorch).
    """
    op = "kv_cache_attention"
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_head):
        raise ValueError(f"{op}: expected qkv (B, T, 3 * C) with C divisible by n_head={n_head}, got {qkv.shape}")
    B, T, C3 = qkv.shape
    expected = (2, B, n_head, C3 // (3 * n_head))
    if cache.ndim != 5 or (*cache.shape[:3], cache.shape[4]) != expected or cache.dtype != qkv.dtype:
        raise ValueError(f"{op}: expected a {qkv.dtype} cache (2, {B}, {n_head}, max_len, {expected[3]}), got "
                         f"{cache.dtype} {cache.shape}")
    if not 0 <= pos <= cache.shape[3] - T:
        raise ValueError(f"{op}: positions {pos}..{pos + T - 1} do not fit in a cache of {cache.shape[3]} positions")
    # New position i sees the cache and the new positions up to i; a single one sees everything.
    mask = causal_mask(qkv.device, T, pos + T, qkv.dtype, pos) if T > 1 else None
    return KVCacheAttention.apply(qkv, cache, pos, n_head, mask)
