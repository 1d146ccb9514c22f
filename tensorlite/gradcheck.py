"""``gradcheck``: compare autograd's gradients with float64 central finite differences."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tensorlite.autograd import no_grad
from tensorlite.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised by ``gradcheck`` when an analytical gradient disagrees with the numerical one."""


def _as_tuple(out: Any) -> tuple[Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def gradcheck(fn: Callable[..., Tensor | Sequence[Tensor]], inputs: Sequence[Tensor] | Tensor, eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Check d(sum(out * w))/d(input) for random weights ``w`` against central differences.

    Every input that requires grad must be float64 (differences in float32 are too coarse).
    On failure, raises ``GradcheckError`` naming the input, the worst element and both values.
    """
    inputs = _as_tuple(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; pass tensors made with requires_grad=True")
    for i in checked:
        if inputs[i].dtype.name != "float64":
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; use float64 inputs for finite differences")
    outputs = _as_tuple(fn(*inputs))
    xp = outputs[0].device.backend.xp
    weights = [xp.asarray(out.device.backend.normal(out.shape, out.dtype)) for out in outputs]

    def objective() -> float:
        with no_grad():
            outs = _as_tuple(fn(*inputs))
        return float(sum((o._data * w).sum() for o, w in zip(outs, weights) if o.dtype.kind == "f"))

    for x in inputs:
        if isinstance(x, Tensor):
            x.grad = None
    total = None
    for out, w in zip(outputs, weights):
        if out.requires_grad:
            term = (out * Tensor._make(w, out.device, False, None)).sum()
            total = term if total is None else total + term
    if total is None:
        raise ValueError("gradcheck: no output requires grad, so there is nothing to check")
    total.backward()

    for i in checked:
        x = inputs[i]
        analytical = x.grad._data if x.grad is not None else xp.zeros(x.shape, dtype=x.dtype)
        x._data = xp.ascontiguousarray(x._data)
        flat = x._data.reshape(-1)  # a view of the contiguous array: perturb in place
        numerical = xp.zeros(x.numel(), dtype=x.dtype)
        for k in range(x.numel()):
            original = float(flat[k])
            flat[k] = original + eps
            plus = objective()
            flat[k] = original - eps
            minus = objective()
            flat[k] = original
            numerical[k] = (plus - minus) / (2 * eps)
        numerical = numerical.reshape(x.shape)
        error = xp.abs(analytical - numerical) - (atol + rtol * xp.abs(numerical))
        if x.numel() and float(error.max()) > 0:
            worst = int(error.argmax())
            index = tuple(int(v) for v in xp.unravel_index(worst, x.shape)) if x.shape else ()
            message = (f"gradcheck: gradient of input {i} (shape {x.shape}) is wrong at index {index}: "
                       f"analytical {float(analytical.reshape(-1)[worst]):.8g}, "
                       f"numerical {float(numerical.reshape(-1)[worst]):.8g} (atol={atol}, rtol={rtol})")
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True
