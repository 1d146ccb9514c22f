"""``tl.autocast``: mixed precision as PyTorch's ``torch.autocast``.

Inside ``with tl.autocast(device_type, dtype=tl.float16):`` the ops on PyTorch's autocast lists for that device
type change the dtype of their floating inputs: the ones that are fast and safe in half precision (matrix
products, linear layers, convolutions, attention) cast float32 inputs down to ``dtype``; the ones that need
float32's range or precision (losses, and on CUDA also layer norm, softmax, exp, log, pow, sums) cast half
inputs up to float32. Every other op runs in the dtype of its inputs (their common type when they differ, as
``float16 + float32 -> float32``). The casts are differentiable (gradients come back in each parameter's own
dtype), and a parameter cast once is reused for the rest of the region, as in PyTorch.

The lists are PyTorch 2.13's for the ops tensorlite has (``LOWER`` and ``FLOAT32`` below; PyTorch's CPU lists
come from ``aten/src/ATen/autocast_mode.cpp``, its CUDA lists from ``autocast_mode.h``, checked against
PyTorch's CPU autocast by the tests). ``"sim"`` follows the CUDA lists, so that the CUDA behaviour is tested on
a CPU machine.

dtypes: float16 only. bfloat16 is not offered: NumPy has no bfloat16 (only the ``ml_dtypes`` extension adds
one, with no BLAS behind it: matrix products would be far slower than float32, defeating the purpose) and
CuPy 14 has no bfloat16 dtype either. The default ``dtype`` is therefore float16 on every device type
(PyTorch's default on the CPU is bfloat16).

As in PyTorch, float64 tensors are never cast, ops called inside the region but outside any list keep their
dtype, and the state is per thread. Use ``tl.amp.GradScaler`` with float16 to keep small gradients from
flushing to zero.
"""

from __future__ import annotations

import threading
from typing import Any

from tensorlite import dtypes
from tensorlite.autograd import _ContextDecorator
from tensorlite.tensor import Tensor

DEVICE_TYPES = ("cpu", "cuda", "sim")

# Ops that run in the lower precision, by device type.
LOWER = {
    "cpu": frozenset({"matmul", "linear", "conv1d", "conv2d", "scaled_dot_product_attention"}),
    "cuda": frozenset({"matmul", "linear", "conv1d", "conv2d", "scaled_dot_product_attention"}),
}
# Ops that run in float32 (half inputs are cast up).
FLOAT32 = {
    "cpu": frozenset({"mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
                      "binary_cross_entropy_with_logits"}),
    "cuda": frozenset({"mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy_with_logits",
                       "layer_norm", "softmax", "log_softmax", "logsumexp", "sum", "exp", "log", "pow", "softplus"}),
}
# Ops that refuse to run under autocast (PyTorch's CUDA list: their float16 forms are unsafe).
BANNED = {
    "cpu": frozenset(),
    "cuda": frozenset({"binary_cross_entropy"}),
}
_LISTS_OF = {"cpu": "cpu", "cuda": "cuda", "sim": "cuda"}


class _State(threading.local):
    """Per thread: the autocast dtype of each device type where autocast is on, the nesting depth, the casts made."""

    def __init__(self) -> None:
        self.dtypes: dict[str, Any] = {}  # device type -> lower dtype, while enabled
        self.depth = 0  # enabled regions entered
        self.cache: dict[int, tuple[Tensor, Tensor]] = {}  # id(leaf) -> (leaf, its cast), while depth > 0
        self.cache_enabled = True


state = _State()


def _lower_dtype(dtype: Any) -> Any:
    if dtype is None:
        return dtypes.float16
    if isinstance(dtype, str) and dtype.lower() in ("bfloat16", "bf16"):
        raise TypeError("autocast: bfloat16 is not supported: NumPy has no bfloat16 dtype and CuPy 14 neither; use "
                        "dtype=tl.float16 (with tl.amp.GradScaler)")
    dtype = dtypes.as_dtype(dtype)
    if dtype != dtypes.float16:
        raise TypeError(f"autocast: dtype must be tl.float16 (the lower precision tensorlite supports), got {dtype}")
    return dtype


class autocast(_ContextDecorator):
    """Run the listed ops of ``device_type`` ("cpu", "cuda" or "sim") in ``dtype`` (float16) or float32 inside a
    ``with`` block or a decorated function. ``enabled=False`` turns autocast off inside the block (nested regions
    restore the outer setting). ``cache_enabled=False`` casts a parameter again at each use."""

    def __init__(self, device_type: str, dtype: Any = None, enabled: bool = True, cache_enabled: bool = True) -> None:
        if device_type not in DEVICE_TYPES:
            raise ValueError(f"autocast: device_type must be one of {', '.join(DEVICE_TYPES)}, got {device_type!r}")
        self.device_type, self.fast_dtype, self.enabled = device_type, _lower_dtype(dtype), bool(enabled)
        self.cache_enabled = cache_enabled

    def __enter__(self) -> autocast:
        self._previous = state.dtypes.get(self.device_type)
        self._previous_cache = state.cache_enabled
        if self.enabled:
            state.dtypes[self.device_type] = self.fast_dtype
        else:
            state.dtypes.pop(self.device_type, None)
        state.cache_enabled = self.cache_enabled
        state.depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is None:
            state.dtypes.pop(self.device_type, None)
        else:
            state.dtypes[self.device_type] = self._previous
        state.cache_enabled = self._previous_cache
        state.depth -= 1
        if state.depth == 0:
            state.cache.clear()  # the casts of a region do not outlive it (the weights change at each step)


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    """Whether autocast is on for ``device_type`` in this thread."""
    return device_type in state.dtypes


def get_autocast_dtype(device_type: str) -> Any:
    """The lower dtype autocast uses for ``device_type`` (float16)."""
    return state.dtypes.get(device_type, dtypes.float16)


def _cast(value: Any, dtype: Any) -> Any:
    """``value`` cast to ``dtype`` if it is a float16/float32 tensor of another dtype; leaves requiring grad are
    cast once per region (cached by identity)."""
    if not isinstance(value, Tensor) or value.dtype == dtype or value.dtype not in (dtypes.float16, dtypes.float32):
        return value
    cacheable = value.is_leaf and value.requires_grad and state.cache_enabled
    if cacheable:
        found = state.cache.get(id(value))
        if found is not None and found[0] is value:
            return found[1]
    cast = value.astype(dtype)
    if cacheable:
        state.cache[id(value)] = (value, cast)
    return cast


def cast_inputs(op: str, *args: Any) -> tuple:
    """``args`` as op ``op`` takes them under the autocast state of their device type (call it only while
    ``state.dtypes`` is not empty: ``if state.dtypes: ...``)."""
    first = next((a for a in args if isinstance(a, Tensor)), None)
    if first is None:
        return args
    device_type = first.device.type
    fast = state.dtypes.get(device_type)
    if fast is None:
        return args
    lists = _LISTS_OF[device_type]
    if op in BANNED[lists]:
        raise RuntimeError(f"{op}: unsafe to autocast on {device_type} (as in PyTorch: its float16 form can overflow "
                           "or lose precision); use binary_cross_entropy_with_logits (BCEWithLogitsLoss) on logits, "
                           "which combines the sigmoid and the loss and is safe, or leave the autocast region first")
    if op in LOWER[lists]:
        return tuple(_cast(a, fast) for a in args)
    if op in FLOAT32[lists]:
        return tuple(_cast(a, dtypes.float32) for a in args)
    return args
