"""``RMSprop``: divide the gradient by a running root mean square, as ``torch.optim.RMSprop``."""

from __future__ import annotations

from typing import Any

from tensorlite.creation import zeros_like
from tensorlite.optim.optimizer import Optimizer, ParamsT, gradient, lerp_
from tensorlite.tensor import Tensor


class RMSprop(Optimizer):
    """Per parameter ``p`` with gradient ``g``, PyTorch's update::

        g = ±g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        avg = sqrt(v) + eps                    (centered: mean = alpha * mean + (1 - alpha) * g,
                                                          avg = sqrt(v - mean**2) + eps)
        buf = momentum * buf + g / avg;  p -= lr * buf     (when momentum > 0)
        p -= lr * g / avg                                  (otherwise)

    Dividing by the running RMS of the gradient evens out the step sizes of different parameters.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        self._check_nonnegative(group, "lr", "eps", "momentum", "weight_decay", "alpha")

    def _update(self, p: Tensor, group: dict[str, Any]) -> None:
        xp = p._device.backend.xp
        alpha, momentum = group["alpha"], group["momentum"]
        state = self.state[p]
        if not state:
            state.update(step=0, square_avg=zeros_like(p))
            if momentum > 0:
                state["momentum_buffer"] = zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = zeros_like(p)
        state["step"] += 1

        g = gradient(p, group["maximize"], group["weight_decay"])
        v = state["square_avg"]._data
        scratch = xp.multiply(g, g, out=xp.empty_like(p._data))
        scratch *= 1 - alpha
        v *= alpha
        v += scratch
        if group["centered"]:
            mean = state["grad_avg"]._data
            lerp_(xp, mean, g, 1 - alpha, scratch)
            xp.multiply(mean, mean, out=scratch)
            avg = xp.sqrt(xp.subtract(v, scratch, out=scratch), out=scratch)
        else:
            avg = xp.sqrt(v, out=scratch)
        avg += group["eps"]

        update = xp.divide(g, avg, out=scratch)
        if momentum > 0:
            buf = state["momentum_buffer"]._data
            buf *= momentum
            buf += update
            update = xp.multiply(buf, group["lr"], out=scratch)
        else:
            update *= group["lr"]
        p._data -= update
