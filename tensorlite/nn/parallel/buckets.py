"""Gradient buckets: parameters grouped into flat buffers, so that many small gradients travel as a few large
messages (one collective each) instead of one message per parameter.

``assign_buckets`` walks the parameters in the reverse of their registration order, roughly the order in which
backward produces their gradients, and groups them by device and dtype into buckets that close once they
hold ``cap_bytes`` (the first one of each kind once it holds ``first_cap_bytes``, so that communication
starts early in backward), as PyTorch's reducer does. ``Bucket`` is one such buffer; ``flatten`` and
``unflatten_into`` copy arrays into one flat array and back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tensorlite.backends import Array
from tensorlite.tensor import Tensor

FIRST_BUCKET_BYTES = 2**20  # PyTorch's first bucket: 1 MiB


def assign_buckets(tensors: Sequence[Tensor], cap_bytes: float,
                   first_cap_bytes: float | None = None) -> list[list[int]]:
    """Indices into ``tensors``, bucket by bucket: each bucket one device and dtype, its indices descending, the
    buckets in the order their last index is reached walking ``tensors`` backwards."""
    first_cap_bytes = cap_bytes if first_cap_bytes is None else min(first_cap_bytes, cap_bytes)
    closed: list[list[int]] = []
    filling: dict[tuple[str, Any], tuple[list[int], int, float]] = {}  # kind -> (indices, bytes, cap)
    for i in reversed(range(len(tensors))):
        t = tensors[i]
        kind = (str(t.device), t.dtype)
        indices, size, cap = filling.get(kind, ([], 0, first_cap_bytes))
        indices.append(i)
        size += t.numel() * t.dtype.itemsize
        if size >= cap:
            closed.append(indices)
            indices, size, cap = [], 0, cap_bytes
        filling[kind] = (indices, size, cap)
    buckets = closed + [indices for indices, _, _ in filling.values() if indices]
    return sorted(buckets, key=lambda indices: -indices[0])


def flatten(arrays: Sequence[Array], xp: Any) -> Array:
    """One new 1-d array holding ``arrays`` (one device and dtype) one after the other."""
    return xp.concatenate([xp.reshape(a, -1) for a in arrays])


def unflatten_into(flat: Array, arrays: Sequence[Array]) -> None:
    """Copy consecutive slices of ``flat`` into ``arrays``, in place (the inverse of ``flatten``)."""
    offset = 0
    for a in arrays:
        a[...] = flat[offset:offset + a.size].reshape(a.shape)
        offset += a.size


class Bucket:
    """The gradients of ``params`` (one device and dtype) as slices of one flat buffer, ``flat`` (a tensor over
    it), and which of them the current backward has delivered."""

    def __init__(self, params: Sequence[Tensor]) -> None:
        self.params = list(params)
        self.offsets = [0]
        for p in self.params:
            self.offsets.append(self.offsets[-1] + p.numel())
        device = self.params[0].device
        buffer = device.backend.xp.empty(self.offsets[-1], dtype=self.params[0].dtype)
        self.flat = Tensor._make(buffer, device, False, None)
        self.arrived = [False] * len(self.params)  # whose gradient the current backward has delivered
        self.waiting = len(self.params)
        self.work: Any = None  # the collective in flight on ``flat``

    @property
    def nbytes(self) -> int:
        return self.offsets[-1] * self.flat.dtype.itemsize

    def reset(self) -> None:
        """Wait for every gradient again (a new backward)."""
        self.arrived = [False] * len(self.params)
        self.waiting, self.work = len(self.params), None

    def put(self, slot: int, grad: Array) -> None:
        """Copy parameter ``slot``'s gradient into its slice."""
        self.flat._data[self.offsets[slot]:self.offsets[slot + 1]] = grad.reshape(-1)
        self.arrived[slot] = True
        self.waiting -= 1

    @property
    def ready(self) -> bool:
        return self.waiting == 0

    def unflatten_into_grads(self) -> None:
        """Copy each slice back into its parameter's ``.grad``, in place."""
        unflatten_into(self.flat._data, [p.grad._data for p in self.params])
