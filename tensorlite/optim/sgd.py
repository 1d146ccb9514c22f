"""``SGD``: stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``."""

from __future__ import annotations

from typing import Any

from tensorlite.creation import tensor
from tensorlite.optim.optimizer import Optimizer, ParamsT, gradient
from tensorlite.tensor import Tensor


class SGD(Optimizer):
    """Per parameter ``p`` with gradient ``g``, PyTorch's update::

        d = ±g + weight_decay * p                            (- when maximize)
        buf = momentum * buf + (1 - dampening) * d           (buf = d at the first step)
        d = d + momentum * buf if nesterov else buf          (when momentum != 0)
        p -= lr * d

    Momentum averages the gradients of past steps, so the updates keep moving through flat regions and
    their noise partly cancels.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        self._check_nonnegative(group, "lr", "momentum", "weight_decay")
        if group["nesterov"]:
            self._check(group["momentum"] > 0 and group["dampening"] == 0, "(momentum, dampening) for nesterov",
                        (group["momentum"], group["dampening"]), "momentum > 0 and dampening == 0")

    def _update(self, p: Tensor, group: dict[str, Any]) -> None:
        momentum, dampening = group["momentum"], group["dampening"]
        d = gradient(p, group["maximize"], group["weight_decay"])
        if momentum != 0:
            buf = self.state[p].get("momentum_buffer")
            if buf is None:
                buf = self.state[p]["momentum_buffer"] = tensor(d, dtype=p.dtype, device=p.device)
            else:
                buf._data *= momentum
                buf._data += d if dampening == 0 else (1 - dampening) * d
            d = d + momentum * buf._data if group["nesterov"] else buf._data
        p._data -= group["lr"] * d
