"""``Tensor``: one backend array plus what autograd needs (``requires_grad``, ``grad``, its node).

The methods here are thin: the math lives in ``tensorlite.ops`` (one ``Function`` per op), so
that ``x.exp()`` and ``tl.exp(x)`` are the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy

from tensorlite import autograd, device_checks, dtypes
from tensorlite.autograd import Function, is_grad_enabled, new_object, run_backward
from tensorlite.device import Device
from tensorlite.device import device as as_device
from tensorlite.errors import device_mismatch


class Tensor:
    """An n-dimensional array on a device, with reverse-mode gradients.

    Build tensors with ``tl.tensor``, ``tl.zeros``, ``tl.randn`` ...; ``Tensor(data)`` is
    ``tl.tensor(data)``.
    """

    # _grad_hooks: set only on leaves that have post-accumulate-grad hooks (autograd reads it with getattr)
    __slots__ = ("_data", "_device", "_requires_grad", "_fn", "grad", "_grad_hooks", "__weakref__")
    __array_priority__ = 1000  # ``ndarray + tensor`` defers to ``Tensor.__radd__``

    def __init__(self, data: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> None:
        from tensorlite.creation import tensor

        made = tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
        self._data, self._device, self._requires_grad = made._data, made._device, made._requires_grad
        self._fn = None
        self.grad = None

    @staticmethod
    def _make(data: Any, device: Device, requires_grad: bool, fn: Function | None) -> Tensor:
        """Wrap a backend array without copying or checking (the library's internal constructor)."""
        t = new_object(Tensor)
        t._data = data
        t._device = device
        t._requires_grad = requires_grad
        t._fn = fn
        t.grad = None
        return t

    # -- attributes ----------------------------------------------------------------------------
    @property
    def data(self) -> Tensor:
        """The same values, detached from the graph (as ``torch.Tensor.data``)."""
        return self.detach()

    @property
    def shape(self) -> tuple[int, ...]:
        """The size of each dimension, a tuple: ``(2, 3)`` is two rows of three; ``()`` for a scalar."""
        return self._data.shape

    @property
    def ndim(self) -> int:
        """The number of dimensions, ``len(shape)``."""
        return self._data.ndim

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        """The shape, or one dimension of it (``torch.Tensor.size``)."""
        return self._data.shape if dim is None else self._data.shape[dim]

    def numel(self) -> int:
        """The number of elements."""
        return self._data.size

    def dim(self) -> int:
        """The number of dimensions (``torch.Tensor.dim``), as ``ndim``."""
        return self._data.ndim

    @property
    def dtype(self) -> numpy.dtype:
        """The element type, a NumPy dtype (``tl.float32`` by default for floating values)."""
        return self._data.dtype

    @property
    def device(self) -> Device:
        """Where the values live, and so which array library (NumPy, CuPy) computes with them."""
        return self._device

    @property
    def is_leaf(self) -> bool:
        """True for a tensor no recorded op made (inputs, parameters): ``backward`` fills ``.grad`` of leaves."""
        return self._fn is None

    @property
    def requires_grad(self) -> bool:
        """Whether ops on this tensor are recorded so that ``backward`` reaches it."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Start (or stop) recording operations on this leaf tensor; returns ``self``."""
        if requires_grad and not dtypes.is_floating(self.dtype):
            raise RuntimeError(f"requires_grad: only floating-point tensors can require grad, got {self.dtype}")
        if not requires_grad and self._fn is not None:
            raise RuntimeError("requires_grad: cannot switch off requires_grad of a non-leaf tensor; use detach()")
        self._requires_grad = bool(requires_grad)
        return self

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __hash__(self) -> int:
        return id(self)

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError(f"bool: the truth value of a tensor with {self._data.size} elements is ambiguous")
        return bool(self.item())

    def __repr__(self) -> str:
        body = numpy.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extras = []
        if self._device.type != "cpu":
            extras.append(f"device='{self._device}'")
        if self.dtype not in (dtypes.get_default_dtype(), dtypes.int64, dtypes.bool_):
            extras.append(f"dtype={self.dtype.name}")
        if self._fn is not None:
            extras.append(f"grad_fn=<{type(self._fn).__name__}Backward>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    # -- leaving the graph, leaving the device ---------------------------------------------------
    def detach(self) -> Tensor:
        """The same array, cut from the graph (no copy)."""
        return Tensor._make(self._data, self._device, False, None)

    def numpy(self) -> numpy.ndarray:
        """A host NumPy array: the tensor's own memory on the CPU, a copy from a device."""
        backend = self._device.backend
        if backend.scoped:  # a read from a device: report the checks made on it since the last read first
            device_checks.raise_pending(self._device)
        return backend.to_host(self._data)

    def tolist(self) -> Any:
        """The values as (nested) Python lists of numbers, copied to the host."""
        return self.numpy().tolist()

    def item(self) -> int | float | bool:
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted, this one has shape {self.shape}")
        if self._device.backend.scoped:
            device_checks.raise_pending(self._device)
        return self._data.item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if dtypes.is_floating(self.dtype) or self._data.size != 1:
            raise TypeError(f"index: only one-element integer tensors can be used as an index, got {self.dtype}")
        return int(self.item())

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> numpy.ndarray:
        host = self.numpy()
        return host if dtype is None else host.astype(dtype, copy=False)

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._data.__dlpack_device__()

    def to(self, device: Any = None, dtype: Any = None, non_blocking: bool = False, copy: bool = False) -> Tensor:
        """Move to ``device`` and/or cast to ``dtype`` (differentiable; the tensor itself if nothing changes,
        unless ``copy``). As in PyTorch, ``x.to(tl.float64)`` casts and ``x.to(other)`` takes ``other``'s
        device and dtype. ``non_blocking`` is accepted; copies are synchronous."""
        from tensorlite import ops

        if isinstance(device, Tensor):
            device, dtype = device.device, device.dtype if dtype is None else dtype
        elif device is not None and not isinstance(device, (str, Device)):
            device, dtype = None, device  # x.to(dtype)
        out = self
        if device is not None and as_device(device) is not self._device:
            out = ops.to_device(out, as_device(device))
        if dtype is not None:
            out = out.astype(dtype)
        return out.clone() if copy and out is self else out

    def cpu(self) -> Tensor:
        """This tensor on the CPU (itself if already there); differentiable."""
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Tensor:
        """This tensor on the CUDA device ``index`` (needs CuPy and a GPU); differentiable."""
        return self.to(f"cuda:{index}")

    def astype(self, dtype: Any) -> Tensor:
        """Cast to ``dtype`` (differentiable between floating dtypes)."""
        from tensorlite import ops

        dtype = dtypes.as_dtype(dtype)
        return self if dtype == self.dtype else ops.astype(self, dtype)

    type = astype

    def float(self) -> Tensor:
        """A float32 copy (itself if already float32)."""
        return self.astype(dtypes.float32)

    def double(self) -> Tensor:
        """A float64 copy (itself if already float64)."""
        return self.astype(dtypes.float64)

    def half(self) -> Tensor:
        """A float16 copy: half the memory of float32, about three decimal digits."""
        return self.astype(dtypes.float16)

    def long(self) -> Tensor:
        """An int64 copy (class labels, token ids)."""
        return self.astype(dtypes.int64)

    def int(self) -> Tensor:
        """An int32 copy."""
        return self.astype(dtypes.int32)

    def bool(self) -> Tensor:
        """A bool copy (nonzero is True)."""
        return self.astype(dtypes.bool_)

    def clone(self) -> Tensor:
        """A copy with its own memory; gradients flow through it."""
        from tensorlite import ops

        return ops.clone(self)

    def contiguous(self) -> Tensor:
        """Itself: backends lay out their own memory, so there is nothing to do (kept for PyTorch code)."""
        return self

    def pin_memory(self) -> Tensor:
        """The tensor itself: tensorlite has no pinned host memory (copies to a GPU are synchronous)."""
        return self

    def view_as(self, other: Tensor) -> Tensor:
        """``self.view(other.shape)``."""
        return self.view(other.shape)

    def narrow(self, dim: int, start: int, length: int) -> Tensor:
        """``length`` entries of dimension ``dim`` from ``start``: a slice (differentiable)."""
        from tensorlite.errors import check_dim

        axis = check_dim("narrow", dim, self.ndim)
        size = self.shape[axis]
        first = start + size if start < 0 else start
        if not (0 <= first <= size and 0 <= length <= size - first):
            raise IndexError(f"narrow: start {start} and length {length} do not fit dimension {dim} of size {size}")
        return self[(slice(None),) * axis + (slice(first, first + length),)]

    def new_zeros(self, *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
        """Zeros of ``size``, with this tensor's dtype and device unless given."""
        return self._new("zeros", size, dtype, device, requires_grad)

    def new_ones(self, *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
        """Ones of ``size``, with this tensor's dtype and device unless given."""
        return self._new("ones", size, dtype, device, requires_grad)

    def new_empty(self, *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
        """An uninitialised tensor of ``size``, with this tensor's dtype and device unless given."""
        return self._new("empty", size, dtype, device, requires_grad)

    def new_full(self, size: Sequence[int], fill_value: float, *, dtype: Any = None, device: Any = None,
                 requires_grad: bool = False) -> Tensor:
        """``fill_value`` everywhere in ``size``, with this tensor's dtype and device unless given."""
        from tensorlite.creation import full

        return full(size, fill_value, dtype=dtype or self.dtype, device=device or self._device,
                    requires_grad=requires_grad)

    def new_tensor(self, data: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
        """A new tensor holding ``data``, with this tensor's dtype and device unless given."""
        from tensorlite.creation import tensor

        return tensor(data, dtype=dtype or self.dtype, device=device or self._device, requires_grad=requires_grad)

    def _new(self, maker: str, size: tuple, dtype: Any, device: Any, requires_grad: bool) -> Tensor:
        """``tl.<maker>(*size)`` with this tensor's dtype and device unless given (the ``new_*`` methods)."""
        from tensorlite import creation

        return getattr(creation, maker)(*size, dtype=dtype or self.dtype, device=device or self._device,
                                        requires_grad=requires_grad)

    # -- autograd --------------------------------------------------------------------------------
    def backward(self, gradient: Tensor | Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``gradient`` is required unless ``self`` has one element; it is d(loss)/d(self).
        """
        if not self._requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad: no input had requires_grad=True, "
                "or it was computed under tl.no_grad()"
            )
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be created implicitly only for a one-element output, this one has "
                    f"shape {self.shape}; reduce it first (e.g. .sum()) or pass gradient= of that shape"
                )
            backend = self._device.backend
            if backend.scoped:  # a fill on the device (asarray would copy a host scalar to it)
                with backend.scope:
                    grad = backend.xp.ones(self.shape, dtype=self.dtype)
            else:
                grad = backend.xp.asarray(1, dtype=self._data.dtype)  # (xp.ones: 4x slower)
                if self._data.ndim:  # (1, 1) and the like: the 0-d one, reshaped
                    grad = grad.reshape(self._data.shape)
        else:
            if isinstance(gradient, Tensor):
                if gradient._device is not self._device:
                    raise device_mismatch("backward (the tensor, its gradient)", self._device, gradient._device)
                grad = gradient._data
            else:
                with self._device.backend.scope:
                    grad = self._device.backend.xp.asarray(gradient)
            if grad.shape != self.shape:
                raise RuntimeError(f"backward: gradient has shape {grad.shape}, expected {self.shape} (the tensor's)")
        run_backward(self, grad, retain_graph)

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> autograd.RemovableHandle:
        """Call ``hook(self)`` in every backward as soon as this leaf's ``.grad`` holds all that the backward
        sends to it (once, however many ops used the leaf), while backward goes on with the rest of the
        graph. Returns a handle whose ``remove()`` takes the hook off. As PyTorch's; leaves only."""
        return autograd.register_post_accumulate_grad_hook(self, hook)

    # -- in-place updates (outside the graph: weight updates, initialisation) --------------------
    def _inplace(self, op: str, ufunc: str | None, other: Any) -> Tensor:
        """Apply ``xp.<ufunc>(self, other)`` into self's memory (``None``: just assign ``other``)."""
        if self._requires_grad and is_grad_enabled():
            raise RuntimeError(
                f"{op}: in-place update of a tensor that requires grad is not recorded by autograd; "
                "do it under tl.no_grad() (as optimizers do) or use the out-of-place op"
            )
        if isinstance(other, Tensor):
            if other._device is not self._device:
                raise device_mismatch(op, self._device, other._device)
            other = other._data
        with self._device.backend.scope:
            if ufunc is None:
                self._data[...] = other
            else:
                getattr(self._device.backend.xp, ufunc)(self._data, other, out=self._data)
        return self

    def add_(self, other: Any, *, alpha: float = 1) -> Tensor:
        """``self += alpha * other`` in place (under ``tl.no_grad()`` if it requires grad)."""
        return self._inplace("add_", "add", other if alpha == 1 else other * alpha)

    def sub_(self, other: Any, *, alpha: float = 1) -> Tensor:
        """``self -= alpha * other`` in place (under ``tl.no_grad()`` if it requires grad)."""
        return self._inplace("sub_", "subtract", other if alpha == 1 else other * alpha)

    def mul_(self, other: Any) -> Tensor:
        """``self *= other`` in place (under ``tl.no_grad()`` if it requires grad)."""
        return self._inplace("mul_", "multiply", other)

    def div_(self, other: Any) -> Tensor:
        """``self /= other`` in place (under ``tl.no_grad()`` if it requires grad)."""
        return self._inplace("div_", "divide", other)

    def copy_(self, src: Tensor | Any) -> Tensor:
        """Overwrite the values with ``src`` (broadcast to this shape, cast to this dtype)."""
        if isinstance(src, Tensor) and src._device is not self._device:
            src = src.detach().to(self._device)
        return self._inplace("copy_", None, src)

    def fill_(self, value: float) -> Tensor:
        """Set every element to ``value`` in place."""
        return self._inplace("fill_", None, value)

    def zero_(self) -> Tensor:
        """Set every element to 0 in place."""
        return self.fill_(0)

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> Tensor:
        """Overwrite with samples from N(mean, std^2), from the device's seeded stream."""
        return self._inplace("normal_", None, mean + std * self._samples("normal_", "normal"))

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> Tensor:
        """Overwrite with samples from U[a, b) (PyTorch names the bounds ``from`` and ``to``)."""
        return self._inplace("uniform_", None, a + (b - a) * self._samples("uniform_", "uniform"))

    def _samples(self, op: str, sampler: str) -> Any:
        """Standard ``sampler`` ("normal" or "uniform") samples shaped and typed like this floating tensor."""
        if not dtypes.is_floating(self.dtype):
            raise TypeError(f"{op}: expected a floating-point tensor, got {self.dtype}")
        return getattr(self._device.backend, sampler)(self.shape, self.dtype)

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_

    # -- operators (the math is in tensorlite.ops; the one-op operators are bound to their ops below) ----
    def __radd__(self, other: Any) -> Tensor:
        return ops.add(other, self)

    def __rsub__(self, other: Any) -> Tensor:
        return ops.sub(other, self)

    def __rmul__(self, other: Any) -> Tensor:
        return ops.mul(other, self)

    def __rtruediv__(self, other: Any) -> Tensor:
        return ops.div(other, self)

    def __rpow__(self, other: Any) -> Tensor:
        return ops.pow(other, self)

    def __rmatmul__(self, other: Any) -> Tensor:
        return ops.matmul(other, self)

    def __pos__(self) -> Tensor:
        return self

    def __setitem__(self, key: Any, value: Any) -> None:
        ops.setitem_(self, key, value)

    @property
    def T(self) -> Tensor:
        """The dimensions reversed: the transpose of a matrix, ``(n, m) -> (m, n)``."""
        return ops.permute(self, tuple(range(self.ndim - 1, -1, -1)))

    @property
    def mT(self) -> Tensor:
        """The last two dimensions swapped: a batch of matrices ``(..., n, m) -> (..., m, n)``, each transposed."""
        return ops.transpose(self, -2, -1)


# Operators with the tensor first are its op itself: ``a * b`` calls ``ops.mul(a, b)``, not a method that calls it
# (a small graph's time is mostly such Python calls). The reflected ones (``2 * a``) swap the operands, above.
OPERATORS = {"__add__": "add", "__sub__": "sub", "__mul__": "mul", "__truediv__": "div", "__pow__": "pow",
             "__matmul__": "matmul", "__neg__": "neg", "__abs__": "abs", "__getitem__": "getitem",
             "__eq__": "eq", "__ne__": "ne", "__lt__": "lt", "__le__": "le", "__gt__": "gt", "__ge__": "ge",
             "__invert__": "logical_not", "__and__": "logical_and", "__or__": "logical_or"}


def _bind_methods(names: Sequence[str], operators: dict[str, str]) -> None:
    """Make ``x.name(...)`` call ``ops.name(x, ...)`` for each op that PyTorch has as a method too, and each
    operator its op."""
    for name in names:
        setattr(Tensor, name, getattr(ops, name))
    for operator, name in operators.items():
        setattr(Tensor, operator, getattr(ops, name))


from tensorlite import ops  # noqa: E402  (ops build on Tensor)

_bind_methods(ops.TENSOR_METHODS, OPERATORS)
