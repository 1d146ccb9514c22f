"""``Adadelta``: step sizes from running averages of squared gradients and of squared updates, as
``torch.optim.Adadelta``."""

from __future__ import annotations

from typing import Any

from tensorlite.creation import zeros_like
from tensorlite.optim.optimizer import Optimizer, ParamsT, gradient
from tensorlite.tensor import Tensor


class Adadelta(Optimizer):
    """Per parameter ``p`` with gradient ``g``, PyTorch's update::

        g = ±g + weight_decay * p
        v = rho * v + (1 - rho) * g * g
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p -= lr * delta

    The ratio of the two running averages gives each parameter a step in its own units, so ``lr=1.0``
    works without tuning.
    """

    def __init__(self, params: ParamsT, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        self._check_nonnegative(group, "lr", "eps", "weight_decay")
        self._check(0 <= group["rho"] <= 1, "rho", group["rho"], "a value in [0, 1]")

    def _update(self, p: Tensor, group: dict[str, Any]) -> None:
        xp = p._device.backend.xp
        rho, eps = group["rho"], group["eps"]
        state = self.state[p]
        if not state:
            state.update(step=0, square_avg=zeros_like(p), acc_delta=zeros_like(p))
        state["step"] += 1

        g = gradient(p, group["maximize"], group["weight_decay"])
        v, u = state["square_avg"]._data, state["acc_delta"]._data
        v *= rho
        v += (1 - rho) * g * g
        delta = xp.sqrt(u + eps)
        delta /= xp.sqrt(v + eps)
        delta *= g
        u *= rho
        u += (1 - rho) * delta * delta
        delta *= group["lr"]
        p._data -= delta
