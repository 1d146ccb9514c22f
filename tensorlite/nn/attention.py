"""``MultiheadAttention``: PyTorch's layer, its parameter layout and its mask conventions.

Queries, keys and values are projected by one packed weight ``in_proj_weight`` (3E, E) (rows:
q, k, v), split into ``num_heads`` heads, attended with ``F.scaled_dot_product_attention``, and
merged back by ``out_proj``. Unlike ``scaled_dot_product_attention``, a bool mask here marks the
positions to IGNORE (True = masked), as in PyTorch.
"""

from __future__ import annotations

import math
from typing import Any

from tensorlite.creation import empty, zeros
from tensorlite.nn import functional as F
from tensorlite.nn import init
from tensorlite.nn.linear import Linear
from tensorlite.nn.module import Module
from tensorlite.nn.parameter import Parameter
from tensorlite.tensor import Tensor


class MultiheadAttention(Module):
    """Attention of queries (L, N, E) over keys (S, N, E) and values (S, N, E) with ``num_heads`` heads.

    With ``batch_first`` the layout is (N, L, E); unbatched inputs (L, E) work too. ``dropout``
    drops attention weights while training. ``forward`` returns (output like the query, weights or
    None); the weights are (N, L, S) averaged over heads, or (N, num_heads, L, S).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be a positive multiple of num_heads "
                             f"({num_heads})")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be between 0 and 1, got {dropout}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, device=device, dtype=dtype))
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, device=device, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's init: Xavier-uniform ``in_proj_weight``, zero biases (``out_proj.weight`` keeps Linear's)."""
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        """``key_padding_mask`` (N, S): keys to ignore per sample. ``attn_mask`` (L, S) or (N * num_heads, L, S).

        Bool masks: True = ignore; float masks are added to the scores. ``is_causal`` is only a hint
        (as in PyTorch): the causal ``attn_mask`` must be given.
        """
        if is_causal and attn_mask is None:
            raise ValueError("MultiheadAttention: is_causal=True is a hint that attn_mask is causal; pass the mask")
        self_attention = query is key and key is value
        batched = query.ndim == 3
        self._check_inputs(query, key, value, batched)
        if not batched:  # (L, E) -> (1, L, E)
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        elif not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        N, L, E = query.shape
        S, nh, hd = key.shape[1], self.num_heads, self.head_dim
        q, k, v = self._project(query, key, value, self_attention)
        q = q.reshape(N, L, nh, hd).transpose(1, 2)  # (N, nh, L, hd)
        k = k.reshape(N, S, nh, hd).transpose(1, 2)  # (N, nh, S, hd)
        v = v.reshape(N, S, nh, hd).transpose(1, 2)  # (N, nh, S, hd)
        mask = self._merge_masks(key_padding_mask, attn_mask, q, N, L, S)  # additive, broadcasts to (N, nh, L, S)
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:  # the explicit form, so that the weights are a differentiable output
            scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(hd))  # (N, nh, L, S)
            weights = F.dropout(F.softmax(scores if mask is None else scores + mask, -1), p)
            out = weights @ v
            if average_attn_weights:
                weights = weights.mean(1)  # (N, L, S)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (N, nh, L, hd)
        out = self.out_proj(out.transpose(1, 2).reshape(N, L, E))  # (N, L, E)
        if not batched:
            return out.squeeze(0), None if weights is None else weights.squeeze(0)
        return (out if self.batch_first else out.transpose(0, 1)), weights

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor, batched: bool) -> None:
        ndim = 3 if batched else 2
        layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
        shapes = f"query {query.shape}, key {key.shape}, value {value.shape}"
        if query.ndim not in (2, 3) or key.ndim != ndim or value.ndim != ndim:
            raise ValueError(f"MultiheadAttention: expected 3-D batched inputs {layout} or 2-D unbatched (L, E), "
                             f"all alike, got {shapes}")
        E = self.embed_dim
        if query.shape[-1] != E or key.shape[-1] != E or value.shape[-1] != E or key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"MultiheadAttention: expected embed_dim={E} as the last dimension of query, key and "
                             f"value, and key and value of one shape, got {shapes}")
        batch_dim = 0 if self.batch_first else 1
        if batched and query.shape[batch_dim] != key.shape[batch_dim]:
            raise ValueError(f"MultiheadAttention: query and key have different batch sizes (dimension {batch_dim} "
                             f"with batch_first={self.batch_first}): {shapes}")

    def _project(self, query: Tensor, key: Tensor, value: Tensor, self_attention: bool) -> tuple[Tensor, ...]:
        """q, k, v = the three row blocks of ``in_proj_weight`` applied to query, key and value."""
        E = self.embed_dim
        if self_attention:  # one matrix product for all three
            return F.linear(query, self.in_proj_weight, self.in_proj_bias).split(E, dim=-1)
        weights = self.in_proj_weight.split(E)
        biases = (None,) * 3 if self.in_proj_bias is None else self.in_proj_bias.split(E)
        return tuple(F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))

    def _merge_masks(self, key_padding_mask: Tensor | None, attn_mask: Tensor | None, q: Tensor, N: int, L: int,
                     S: int) -> Tensor | None:
        """Both masks as one additive float mask that broadcasts to (N, num_heads, L, S), or None."""
        mask = None
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (N, S):
                raise ValueError(f"MultiheadAttention: key_padding_mask must have shape (N, S) = {(N, S)} (or (S,) "
                                 f"unbatched), got {key_padding_mask.shape}")
            mask = _additive(key_padding_mask, q).reshape(N, 1, 1, S)
        if attn_mask is not None:
            nh = self.num_heads
            if attn_mask.shape == (L, S):
                extra = _additive(attn_mask, q)
            elif attn_mask.shape == (N * nh, L, S):
                extra = _additive(attn_mask, q).reshape(N, nh, L, S)
            else:
                raise ValueError(f"MultiheadAttention: attn_mask must have shape (L, S) = {(L, S)} or "
                                 f"(N * num_heads, L, S) = {(N * nh, L, S)}, got {attn_mask.shape}")
            mask = extra if mask is None else mask + extra
        return mask


def _additive(mask: Tensor, like: Tensor) -> Tensor:
    """A bool mask (True = ignore) as 0 / -inf in ``like``'s dtype; a float mask unchanged."""
    if mask.dtype.kind == "b":
        return zeros(mask.shape, dtype=like.dtype, device=like.device).masked_fill(mask, -math.inf)
    if mask.dtype != like.dtype:
        raise TypeError(f"MultiheadAttention: masks must be bool or {like.dtype}, got {mask.dtype}")
    return mask
