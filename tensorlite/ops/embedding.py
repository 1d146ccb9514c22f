"""Embedding lookup: rows of a weight matrix picked by integer indices.

The gradient adds each output row's gradient into the row it was read from; an index that
appears several times accumulates (a scatter-add). The ``padding_idx`` row gets no gradient.
"""

from __future__ import annotations

from tensorlite import device_checks
from tensorlite.autograd import Function
from tensorlite.tensor import Tensor


class Embedding(Function):
    def forward(self, indices, weight, padding_idx):
        self.indices, self.shape, self.padding_idx = indices, weight.shape, padding_idx
        return weight[indices]

    def backward(self, g):
        grad = self.xp.zeros(self.shape, dtype=g.dtype)
        self.backend.scatter_add(grad, self.indices, g)
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0
        return None, grad, None


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """``weight[input]``: integer indices ``(*)`` into weight ``(num_embeddings, dim)`` -> ``(*, dim)``."""
    if not isinstance(input, Tensor) or input.dtype.kind not in "iu":
        got = input.dtype if isinstance(input, Tensor) else type(input).__name__
        raise TypeError(f"embedding: indices must be an integer tensor (int64 or int32), got {got}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape {weight.shape}")
    num = weight.shape[0]
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError(f"embedding: padding_idx={padding_idx} is out of range for {num} embeddings")
        padding_idx %= num
    data = input._data
    if data.size:  # at once on the CPU; on a device, without waiting for it (see device_checks)
        with input.device.backend.scope:
            bad = (data < 0) | (data >= num)
        device_checks.check(input.device, bad, data, ("embedding", num), lambda value: IndexError(
            f"embedding: index {value} is out of range: indices must be in [0, {num}) for {num} embeddings"))
    return Embedding.apply(input, weight, padding_idx)
