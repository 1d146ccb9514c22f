"""Reverse-mode automatic differentiation: ``Function`` nodes, gradient mode, ``backward``.

Every differentiable op is a ``Function`` subclass with ``forward`` (arrays in, one array out)
and ``backward`` (the output's gradient in, one gradient per input out), written once against
``self.xp``, the array namespace of the inputs' device. ``Function.apply`` runs the forward and,
when gradients are wanted, records the node on its output tensor; ``backward`` walks those nodes
in reverse topological order without recursion.

Anomaly detection (``detect_anomaly``, ``set_detect_anomaly``), as PyTorch's: while it is on, each
node remembers where its forward op was called, and backward raises a ``RuntimeError`` naming the
first backward function that returns a NaN, with that place. A node of class ``Log`` is reported
as ``LogBackward`` (PyTorch says ``LogBackward0``; tensorlite has no overloads to number).

Post-accumulate-grad hooks (``Tensor.register_post_accumulate_grad_hook``, as PyTorch's): a hook on a
leaf runs once per backward, as soon as every gradient that backward sends to the leaf is in its
``.grad``, while the rest of the graph is still being walked. ``DistributedDataParallel`` starts
averaging a bucket of gradients across processes from there, overlapping the rest of backward.
"""

from __future__ import annotations

import copy
import functools
import sys
import traceback
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from numpy import generic as numpy_scalar

from tensorlite import scope

new_object = object.__new__  # how tensors are made without __init__ (as a global, Python 3.11 finds it faster)

if TYPE_CHECKING:
    from tensorlite.tensor import Tensor

_grad_enabled = True
_inference_mode = False  # inside inference_mode: as no_grad (tensorlite has no inference-only tensors)
_anomaly_enabled = False  # record where each node's forward ran
_anomaly_check_nan = True  # and, in backward, raise on a NaN gradient
TRACE_FRAMES = 4  # how many of the caller's frames a node remembers in anomaly mode
_hooked_leaves = 0  # hooks registered on leaves: while there are none, backward does not look for them


def is_grad_enabled() -> bool:
    """Whether ops record the graph now (False inside ``no_grad``)."""
    return _grad_enabled


def is_inference_mode_enabled() -> bool:
    """Whether an ``inference_mode`` block is active."""
    return _inference_mode


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on (see ``detect_anomaly``)."""
    return _anomaly_enabled


def is_anomaly_check_nan_enabled() -> bool:
    """Whether anomaly detection also checks backward's gradients for NaN."""
    return _anomaly_check_nan


class _ContextDecorator:
    """A context manager that also decorates functions; each call enters a fresh copy, so calls nest."""

    def __call__(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with copy.copy(self):
                return func(*args, **kwargs)

        return wrapper


class _GradMode(_ContextDecorator):
    """Base of ``no_grad``/``enable_grad``/``inference_mode``: a decorator with or without parentheses
    (``@tl.no_grad`` and ``@tl.no_grad()``), as in PyTorch."""

    enabled: bool  # grad mode inside the block
    inference: bool | None = None  # what ``is_inference_mode_enabled`` says inside the block (None: unchanged)

    def __new__(cls, *args: Any) -> Any:
        if len(args) == 1 and callable(args[0]):  # @no_grad without parentheses: decorate at once
            return cls()(args[0])
        return super().__new__(cls)

    def __enter__(self) -> None:
        global _grad_enabled, _inference_mode
        self._previous = _grad_enabled, _inference_mode
        _grad_enabled = self.enabled
        if self.inference is not None:
            _inference_mode = self.inference

    def __exit__(self, *exc: object) -> None:
        global _grad_enabled, _inference_mode
        _grad_enabled, _inference_mode = self._previous


class no_grad(_GradMode):
    """Run without recording the graph: outputs never require grad (inference, weight updates)."""

    enabled = False


class enable_grad(_GradMode):
    """Record the graph again inside a ``no_grad`` block."""

    enabled = True


class set_grad_enabled(_GradMode):
    """Turn gradient recording on or off (``mode``): at once when called, back to the previous setting at
    the end of a ``with`` block, and only inside the function when used as a decorator, as in PyTorch."""

    def __init__(self, mode: bool) -> None:
        global _grad_enabled
        self.enabled = bool(mode)
        self._at_call = _grad_enabled, _inference_mode  # restored by __exit__, or at once by a decorator
        _grad_enabled = self.enabled

    def __enter__(self) -> None:
        global _grad_enabled
        self._previous = self.__dict__.pop("_at_call", None) or (_grad_enabled, _inference_mode)
        _grad_enabled = self.enabled

    def __call__(self, func: Callable) -> Callable:
        global _grad_enabled, _inference_mode
        _grad_enabled, _inference_mode = self.__dict__.pop("_at_call")
        return super().__call__(func)


class inference_mode(_GradMode):
    """``no_grad`` for inference, under PyTorch's name: a context manager or a decorator (with or
    without parentheses). ``inference_mode(False)`` turns it off again inside, and records the graph.

    PyTorch also marks the tensors made inside as inference-only (they can never join a graph);
    tensorlite has no such tensors, so they are ordinary tensors that do not require grad.
    """

    def __init__(self, mode: bool = True) -> None:
        if not isinstance(mode, bool):
            raise TypeError(f"inference_mode: mode must be a bool, got {type(mode).__name__}")
        self.enabled, self.inference = not mode, mode


Variable = scope.out_of_scope(
    "torch.autograd.Variable", "PyTorch folded it into tensors in version 0.4 (2018): use the tensor itself, "
    "with x.requires_grad_() where a gradient is wanted")


def _set_anomaly(mode: bool, check_nan: bool) -> tuple[bool, bool]:
    """Switch anomaly detection; returns the previous ``(mode, check_nan)``."""
    global _anomaly_enabled, _anomaly_check_nan
    previous = _anomaly_enabled, _anomaly_check_nan
    _anomaly_enabled, _anomaly_check_nan = bool(mode), bool(check_nan)
    return previous


class detect_anomaly(_ContextDecorator):
    """Debug NaN gradients: inside this block (or decorated function) backward raises a ``RuntimeError``
    naming the first backward function that returns a NaN, its output's index and shape, and where
    the op's forward was called.

        with tl.autograd.detect_anomaly():
            loss = model(x).log().sum()
            loss.backward()  # RuntimeError: Function 'LogBackward' returned nan values in its 0th output...

    Only nodes created inside the block remember where they came from. It costs a stack walk per op
    and a device-to-host read per gradient: use it to find a bug, not to train. ``check_nan=False``
    records the places but does not check.
    """

    def __init__(self, check_nan: bool = True) -> None:
        self.check_nan = check_nan

    def __enter__(self) -> None:
        self._previous = _set_anomaly(True, self.check_nan)

    def __exit__(self, *exc: object) -> None:
        _set_anomaly(*self._previous)


class set_detect_anomaly:
    """Turn anomaly detection on or off (``mode``): at once when called, and back to the previous
    setting at the end of a ``with`` block, as PyTorch's ``set_detect_anomaly``."""

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        self._previous = _set_anomaly(mode, check_nan)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        _set_anomaly(*self._previous)


_CORE = ("tensorlite", "tensorlite.autograd", "tensorlite.tensor", "tensorlite.ops", "tensorlite.nn")


def _user_frames(frame: FrameType | None) -> Iterator[tuple[FrameType, int]]:
    """``frame`` and its callers, outward, skipping the core's (ops, tensors, layers): the code that called an
    op, a model's forward among them (``tensorlite.models`` is such code too)."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not any(module == core or module.startswith(core + ".") for core in _CORE):
            yield frame, frame.f_lineno
        frame = frame.f_back


def _forward_trace() -> traceback.StackSummary:
    """Where an op's forward is being called: up to ``TRACE_FRAMES`` of the user's frames, outermost first."""
    summary = traceback.StackSummary.extract(_user_frames(sys._getframe(1)), limit=TRACE_FRAMES, lookup_lines=False)
    summary.reverse()
    return summary


class Function:
    """One differentiable op. Subclasses define ``forward`` and ``backward`` on raw arrays.

    ``forward(*arrays, **params)`` receives the inputs' arrays (non-tensor arguments such as
    Python scalars pass through unchanged) and saves on ``self`` what backward needs.
    ``backward(grad)`` returns a tuple with one gradient array (or ``None``) per input.
    """

    inputs: tuple | None = None  # set while the node is part of a live graph
    differentiable = True
    forward_trace: traceback.StackSummary | None = None  # where forward was called (anomaly mode only)

    def forward(self, *args: Any, **params: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad: Any) -> tuple:
        raise NotImplementedError

    @property
    def xp(self) -> Any:
        """The array namespace of the inputs' device: ``numpy``, or ``cupy`` on a GPU (``self.backend.xp``)."""
        return self.backend.xp

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
                    raise device_mismatch(cls.__name__.lower(), device, arg._device)
                if arg._requires_grad:
                    requires_grad = True
                arrays.append(arg._data)
            elif isinstance(arg, numpy_scalar):  # a NumPy scalar acts as a Python number, as in PyTorch:
                arrays.append(arg.item())  # x * np.float64(2) stays float32
            else:
                arrays.append(arg)
        fn = cls()
        fn.backend = backend = device.backend
        if backend.scoped:  # a device's ops run under it (CuPy computes on the current device)
            with backend.scope:
                out = fn.forward(*arrays, **params)
        else:
            out = fn.forward(*arrays, **params) if params else fn.forward(*arrays)  # (**{} builds a dict)
            if not isinstance(out, backend.array_type):  # NumPy returns scalars from 0-d math
                out = backend.xp.asarray(out)
        t = new_object(Tensor)  # Tensor._make, written out: this is every op's path
        t._data, t._device, t.grad = out, device, None
        # Only floating outputs carry gradients (an int cast or a comparison ends the graph).
        if requires_grad and _grad_enabled and cls.differentiable and out.dtype.kind == "f":
            fn.inputs = args
            if _anomaly_enabled:
                fn.forward_trace = _forward_trace()
            t._requires_grad, t._fn = True, fn
        else:
            t._requires_grad, t._fn = False, None
        return t


class RemovableHandle:
    """What ``register_post_accumulate_grad_hook`` returns: ``remove()`` takes the hook off again."""

    def __init__(self, hooks: dict[int, Callable], key: int) -> None:
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        global _hooked_leaves
        if self._hooks.pop(self._key, None) is not None:
            _hooked_leaves -= 1


def register_post_accumulate_grad_hook(leaf: Tensor, hook: Callable[[Tensor], None]) -> RemovableHandle:
    """Call ``hook(leaf)`` in every backward once ``leaf.grad`` holds all that backward sends to it."""
    global _hooked_leaves
    if leaf._fn is not None:
        raise RuntimeError("register_post_accumulate_grad_hook: hooks can only be registered on leaf tensors; "
                           f"this one was computed by {type(leaf._fn).__name__}")
    if not leaf._requires_grad:
        raise RuntimeError("register_post_accumulate_grad_hook: the tensor does not require grad, so backward "
                           "never accumulates into it")
    hooks = getattr(leaf, "_grad_hooks", None)
    if hooks is None:
        hooks = leaf._grad_hooks = {}
    key = max(hooks, default=-1) + 1
    hooks[key] = hook
    _hooked_leaves += 1
    return RemovableHandle(hooks, key)


def _leaf_done(leaf: Tensor, edges_left: dict[int, int]) -> None:
    """One more gradient of ``leaf`` is in; run its hooks if it was the last of this backward."""
    left = edges_left[id(leaf)] - 1
    edges_left[id(leaf)] = left
    if left == 0:
        for hook in list(leaf._grad_hooks.values()):
            hook(leaf)


class SliceGrad:
    """The gradient that basic indexing ``x[key]`` sends back to ``x``: zero but for a few regions, kept as
    (key, array) pieces until the engine needs one array.

    Without it, each piece of a split (``q, k, v = qkv.split(C, dim=2)``) is a full-size array of zeros with one
    region filled, and the engine adds the three: three allocations and two whole-array additions. Kept as
    pieces, they meet in one array when the node that made ``x`` runs its backward: a split's pieces, which cover
    it once side by side, by one concatenation; other regions added into zeros."""

    __slots__ = ("xp", "shape", "dtype", "pieces")

    def __init__(self, xp: Any, shape: tuple[int, ...], dtype: Any, pieces: list[tuple[Any, Any]]) -> None:
        self.xp, self.shape, self.dtype, self.pieces = xp, shape, dtype, pieces

    def add_into(self, out: Any) -> Any:
        """``out`` (shaped like the gradient, owned by the caller) plus the pieces, in place; returns it."""
        for key, piece in self.pieces:
            out[key] += piece
        return out

    def array(self) -> Any:
        axis = self._tiling_axis()
        if axis is not None:  # a split's pieces side by side: one copy, no zeros to add them to
            pieces = sorted(self.pieces, key=lambda item: item[0][-1].start)
            return self.xp.concatenate([piece for _, piece in pieces], axis=axis)
        return self.add_into(self.xp.zeros(self.shape, dtype=self.dtype))

    def _tiling_axis(self) -> int | None:
        """The axis along which the pieces cover the gradient exactly once, side by side, each key being
        ``(:, ..., :, lo:hi)`` as ``split`` and ``chunk`` cut it; None if they do not."""
        first = self.pieces[0][0]
        axis = len(first) - 1 if type(first) is tuple else -1
        if not 0 <= axis < len(self.shape):
            return None
        whole, others = (slice(None),) * axis, self.shape[:axis] + self.shape[axis + 1:]
        edges = []
        for key, piece in self.pieces:
            if type(key) is not tuple or len(key) != axis + 1 or key[:-1] != whole or piece.dtype != self.dtype:
                return None
            cut = key[-1]
            if type(cut) is not slice or cut.step is not None or not type(cut.start) is type(cut.stop) is int:
                return None
            if piece.shape[:axis] + piece.shape[axis + 1:] != others or piece.shape[axis] != cut.stop - cut.start:
                return None
            edges.append((cut.start, cut.stop))
        end = 0
        for lo, hi in sorted(edges):
            if lo != end:
                return None
            end = hi
        return axis if end == self.shape[axis] else None


def _sum(previous: Any, g: Any) -> Any:
    """Two gradients of one tensor added, either of them possibly a ``SliceGrad`` (neither is modified)."""
    if isinstance(previous, SliceGrad) and isinstance(g, SliceGrad):
        return SliceGrad(previous.xp, previous.shape, previous.dtype, previous.pieces + g.pieces)
    if isinstance(previous, SliceGrad):
        previous, g = g, previous
    if isinstance(g, SliceGrad):  # (asarray: NumPy's 0-d math hands back scalars)
        return g.add_into(g.xp.asarray(previous).astype(g.xp.result_type(previous.dtype, g.dtype), copy=True))
    return previous + g


def _array(g: Any) -> Any:
    return g.array() if isinstance(g, SliceGrad) else g


def run_backward(root: Tensor, grad: Any, retain_graph: bool) -> None:
    """Propagate ``grad`` (an array shaped like ``root``) to every leaf that requires grad."""
    root_fn = root._fn
    claimed = {id(grad)}  # the caller's gradient array: a leaf must own a copy, not alias it
    if root_fn is None:  # backward on a leaf: its gradient is ``grad`` itself
        _accumulate(root, grad, claimed)
        if _hooked_leaves and getattr(root, "_grad_hooks", None):
            _leaf_done(root, {id(root): 1})
        return
    # 1. Count, for every node, how many edges lead into it from the nodes above it (and into each leaf
    #    with hooks, which run once the last of them has delivered its gradient).
    hooked: dict[int, int] | None = {} if _hooked_leaves else None
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
            elif hooked is not None and getattr(inp, "_grad_hooks", None):
                hooked[id(inp)] = hooked.get(id(inp), 0) + 1
    # 2. Visit nodes once all their consumers have contributed (Kahn's algorithm): run each node's backward and
    #    hand each input's gradient on, to a leaf's ``.grad`` or to the node that made the input. A device's
    #    scope is entered when the walk reaches its first node and left when the walk moves to another device.
    #    (This loop is a small graph's whole backward: it is written out, not split into calls.)
    grads = {root_fn: grad}
    ready = [root_fn]
    check_nan = _anomaly_enabled and _anomaly_check_nan
    scope = None  # the scope entered now
    try:
        while ready:
            fn = ready.pop()
            backend = fn.backend
            if backend.scoped and backend.scope is not scope:
                if scope is not None:
                    scope.__exit__(None, None, None)
                    scope = None
                backend.scope.__enter__()
                scope = backend.scope
            output_grad = grads.pop(fn)
            if type(output_grad) is SliceGrad:
                output_grad = output_grad.array()
            input_grads = fn.backward(output_grad)
            if check_nan:
                _check_nan(fn, output_grad, input_grads)
            for inp, g in zip(fn.inputs, input_grads):
                if g is None or not getattr(inp, "_requires_grad", False):
                    continue
                parent = inp._fn
                if parent is None:
                    _accumulate(inp, g.array() if type(g) is SliceGrad else g, claimed)
                    if hooked and id(inp) in hooked:
                        _leaf_done(inp, hooked)
                    continue
                grads[parent] = _sum(grads[parent], g) if parent in grads else g
                left = pending[parent] - 1
                pending[parent] = left
                if left == 0:
                    ready.append(parent)
            if not retain_graph:
                fn.__dict__.clear()  # drop its inputs and saved arrays, so that their memory can be freed
    finally:
        if scope is not None:
            scope.__exit__(None, None, None)


def _check_nan(fn: Function, output_grad: Any, input_grads: tuple) -> None:
    """Raise if a gradient that ``fn.backward`` returned holds a NaN (one device-to-host read per gradient)."""
    for i, g in enumerate(input_grads):
        if g is not None and bool(fn.xp.isnan(_array(g)).any()):
            shapes = ", ".join(str(tuple(getattr(o, "shape", ()))) if o is not None else "None" for o in input_grads)
            where = ("".join(fn.forward_trace.format()) if fn.forward_trace is not None
                     else "  unknown: the op ran before anomaly detection was turned on\n")
            raise RuntimeError(
                f"Function '{type(fn).__name__}Backward' returned nan values in its {i}th output.\n"
                f"Its outputs' shapes: {shapes}; the incoming gradient's: {tuple(getattr(output_grad, 'shape', ()))}.\n"
                f"Its forward op was called at (most recent call last):\n{where}")


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
        g = leaf.grad._data + g
        leaf.grad._data = g
    backend = leaf._device.backend
    if not isinstance(g, backend.array_type):  # NumPy returns scalars from 0-d math
        leaf.grad._data = backend.xp.asarray(g)


from tensorlite.errors import device_mismatch  # noqa: E402
from tensorlite.tensor import Tensor  # noqa: E402  (Tensor needs Function; Function needs Tensor)
