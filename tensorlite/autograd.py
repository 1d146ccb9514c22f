"""Reverse-mode automatic differentiation: ``Function`` nodes, gradient mode, ``backward``.

Every differentiable op is a ``Function`` subclass with ``forward`` (arrays in, one array out)
and ``backward`` (the output's gradient in, one gradient per input out), written once against
``self.xp``, the array namespace of the inputs' device. ``Function.apply`` runs the forward and,
when gradients are wanted, records the node on its output tensor; ``backward`` walks those nodes
in reverse topological order without recursion.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy

if TYPE_CHECKING:
    from tensorlite.tensor import Tensor

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


class _GradMode:
    """Base of ``no_grad``/``enable_grad``: a context manager that also decorates functions."""

    enabled: bool

    def __enter__(self) -> None:
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        global _grad_enabled
        _grad_enabled = self._previous

    def __call__(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with type(self)():
                return func(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Run without recording the graph: outputs never require grad (inference, weight updates)."""

    enabled = False


class enable_grad(_GradMode):
    """Record the graph again inside a ``no_grad`` block."""

    enabled = True


class Function:
    """One differentiable op. Subclasses define ``forward`` and ``backward`` on raw arrays.

    ``forward(*arrays, **params)`` receives the inputs' arrays (non-tensor arguments such as
    Python scalars pass through unchanged) and saves on ``self`` what backward needs.
    ``backward(grad)`` returns a tuple with one gradient array (or ``None``) per input.
    """

    inputs: tuple | None = None  # set while the node is part of a live graph
    differentiable = True

    def forward(self, *args: Any, **params: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad: Any) -> tuple:
        raise NotImplementedError

    def needs_grad(self, i: int) -> bool:
        """Whether input ``i`` wants a gradient (lets backward skip work, e.g. a matmul)."""
        return getattr(self.inputs[i], "_requires_grad", False)

    @classmethod
    def apply(cls, *args: Any, **params: Any) -> Tensor:
        device = None
        requires_grad = False
        arrays = []
        for arg in args:
            if isinstance(arg, Tensor):
                if device is None:
                    device = arg._device
                elif arg._device is not device:
                    raise RuntimeError(
                        f"{cls.__name__.lower()}: expected all tensors on one device, got {device} and {arg._device}"
                    )
                requires_grad = requires_grad or arg._requires_grad
                arrays.append(arg._data)
            elif isinstance(arg, numpy.generic):  # a NumPy scalar acts as a Python number, as in PyTorch:
                arrays.append(arg.item())  # x * np.float64(2) stays float32
            else:
                arrays.append(arg)
        fn = cls()
        backend = device.backend
        fn.xp = backend.xp
        fn.backend = backend
        out = fn.forward(*arrays, **params)
        if not isinstance(out, backend.array_type):  # NumPy returns scalars from 0-d math
            out = backend.xp.asarray(out)
        # Only floating outputs carry gradients (an int cast or a comparison ends the graph).
        if requires_grad and _grad_enabled and cls.differentiable and out.dtype.kind == "f":
            fn.inputs = args
            return Tensor._make(out, device, True, fn)
        return Tensor._make(out, device, False, None)

    def release(self) -> None:
        """Drop the inputs and saved arrays so their memory can be freed."""
        self.__dict__.clear()


def run_backward(root: Tensor, grad: Any, retain_graph: bool) -> None:
    """Propagate ``grad`` (an array shaped like ``root``) to every leaf that requires grad."""
    root_fn = root._fn
    claimed = {id(grad)}  # the caller's gradient array: a leaf must own a copy, not alias it
    if root_fn is None:  # backward on a leaf: its gradient is ``grad`` itself
        _accumulate(root, grad, claimed)
        return
    # 1. Count, for every node, how many edges lead into it from the nodes above it.
    pending = {root_fn: 0}
    stack = [root_fn]
    while stack:
        fn = stack.pop()
        if fn.inputs is None:
            raise RuntimeError(
                "backward: trying to backward through the graph a second time (its saved arrays were "
                "freed after the first backward); pass retain_graph=True to the first backward call"
            )
        for inp in fn.inputs:
            parent = getattr(inp, "_fn", None)
            if parent is not None:
                if parent in pending:
                    pending[parent] += 1
                else:
                    pending[parent] = 1
                    stack.append(parent)
    # 2. Visit nodes once all their consumers have contributed (Kahn's algorithm).
    grads = {root_fn: grad}
    ready = [root_fn]
    while ready:
        fn = ready.pop()
        input_grads = fn.backward(grads.pop(fn))
        for inp, g in zip(fn.inputs, input_grads):
            if g is None or not getattr(inp, "_requires_grad", False):
                continue
            parent = inp._fn
            if parent is None:
                _accumulate(inp, g, claimed)
                continue
            previous = grads.get(parent)
            grads[parent] = g if previous is None else previous + g
            pending[parent] -= 1
            if pending[parent] == 0:
                ready.append(parent)
        if not retain_graph:
            fn.release()


def _accumulate(leaf: Tensor, g: Any, claimed: set[int]) -> None:
    """Add ``g`` into ``leaf.grad``; the first gradient is stored without a copy when it is safe."""
    if g.dtype != leaf._data.dtype:
        g = g.astype(leaf._data.dtype)
    if leaf.grad is None:
        if g.base is not None or id(g) in claimed:  # a view or shared with another leaf: own a copy
            g = g.copy()
        claimed.add(id(g))
        leaf.grad = Tensor._make(g, leaf._device, False, None)
    else:
        leaf.grad._data = leaf.grad._data + g
    backend = leaf._device.backend
    if not isinstance(leaf.grad._data, backend.array_type):  # NumPy returns scalars from 0-d math
        leaf.grad._data = backend.xp.asarray(leaf.grad._data)


from tensorlite.tensor import Tensor  # noqa: E402  (Tensor needs Function; Function needs Tensor)
