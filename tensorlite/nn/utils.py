"""Training utilities, as ``torch.nn.utils``: gradient clipping."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

from tensorlite.creation import tensor
from tensorlite.errors import device_mismatch
from tensorlite.tensor import Tensor


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients in place so that their joint norm is at most ``max_norm``; returns the norm
    before clipping (a 0-d tensor).

    The norm is that of all gradients concatenated into one vector (``norm_type``: 2, 1, inf, any p).
    Gradients are multiplied by ``min(1, max_norm / (norm + 1e-6))`` on the device, as in PyTorch, so
    nothing waits for the host unless ``error_if_nonfinite`` asks to check the norm.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return tensor(0.0)
    device = grads[0].device
    if any(g.device is not device for g in grads):
        other = next(g.device for g in grads if g.device is not device)
        raise device_mismatch("clip_grad_norm_ (the gradients)", device, other)
    xp = device.backend.xp
    with device.backend.scope:
        norms = xp.stack([xp.linalg.norm(g._data.ravel(), ord=norm_type) for g in grads])
        total = Tensor._make(xp.asarray(xp.linalg.norm(norms, ord=norm_type)), device, False, None)
        if error_if_nonfinite and not math.isfinite(total.item()):
            raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                               f"{total.item()}, so they cannot be clipped; set error_if_nonfinite=False to "
                               "scale them anyway")
        scale = xp.minimum(max_norm / (total._data + 1e-6), 1.0)
        for g in grads:
            g._data *= scale
    return total


def clip_grad_norm(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False) -> Tensor:
    """PyTorch's deprecated spelling of ``clip_grad_norm_`` (same behaviour, with a FutureWarning)."""
    warnings.warn("clip_grad_norm is deprecated (as in PyTorch): use clip_grad_norm_", FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite)
