"""``Parameter``: a tensor that a ``Module`` registers as a learnable weight."""

from __future__ import annotations

from typing import Any

from tensorlite.tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad by default and is found by ``Module.parameters()``.

    ``Parameter(t)`` shares ``t``'s array. Ops on a parameter return plain tensors.
    """

    __slots__ = ()

    def __init__(self, data: Tensor | Any = None, requires_grad: bool = True) -> None:
        from tensorlite.creation import empty, tensor

        if data is None:
            data = empty(0)
        elif not isinstance(data, Tensor):
            data = tensor(data)
        self._data, self._device = data._data, data._device
        self._fn, self.grad, self._requires_grad = None, None, False
        self.requires_grad_(requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
