"""``Adagrad``: per-coordinate step sizes from the sum of squared gradients, as ``torch.optim.Adagrad``."""

from __future__ import annotations

from typing import Any

from tensorlite.creation import full_like
from tensorlite.optim.optimizer import Optimizer, ParamsT, gradient
from tensorlite.tensor import Tensor


class Adagrad(Optimizer):
    """Per parameter ``p`` with gradient ``g``, at step ``t`` (from 1), PyTorch's update::

        g = ±g + weight_decay * p
        sum = sum + g * g                                  (sum starts at initial_accumulator_value)
        p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)

    Parameters that have seen large gradients take smaller steps, which suits sparse features.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        self._check_nonnegative(group, "lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """As ``Optimizer.add_param_group``; the accumulators start at once, as in PyTorch."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            self.state[p] = {"step": 0, "sum": full_like(p, group["initial_accumulator_value"])}

    def _update(self, p: Tensor, group: dict[str, Any]) -> None:
        xp = p._device.backend.xp
        state = self.state[p]
        state["step"] += 1
        g = gradient(p, group["maximize"], group["weight_decay"])
        total = state["sum"]._data
        scratch = xp.multiply(g, g, out=xp.empty_like(p._data))
        total += scratch
        std = xp.sqrt(total, out=scratch)
        std += group["eps"]
        update = xp.divide(g, std, out=scratch)
        update *= group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        p._data -= update
