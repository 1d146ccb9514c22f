"""``Adam`` and ``AdamW`` (Adam with decoupled weight decay), as ``torch.optim.Adam`` / ``AdamW``."""

from __future__ import annotations

from typing import Any

from tensorlite.creation import zeros_like
from tensorlite.optim.optimizer import Optimizer, ParamsT, gradient
from tensorlite.tensor import Tensor


class Adam(Optimizer):
    """Per parameter ``p`` with gradient ``g``, at step ``t`` (from 1), PyTorch's update::

        g = ±g + weight_decay * p            (decoupled_weight_decay: p *= 1 - lr * weight_decay instead)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g  (amsgrad: v_max = max(v_max, v), used in place of v below)
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Each parameter's step is divided by its own gradient scale, so one ``lr`` suits them all.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        self._check_nonnegative(group, "lr", "eps", "weight_decay")
        for i, beta in enumerate(group["betas"]):
            self._check(0 <= beta < 1, f"beta parameter at index {i}", beta, "0 <= beta < 1")

    def _update(self, p: Tensor, group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        state = self.state[p]
        if not state:
            state.update(step=0, exp_avg=zeros_like(p), exp_avg_sq=zeros_like(p))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = zeros_like(p)
        state["step"] += 1

        decay = 1.0
        if group["decoupled_weight_decay"]:
            decay = 1 - lr * weight_decay
            g = gradient(p, group["maximize"], 0)
        else:
            g = gradient(p, group["maximize"], weight_decay)
        max_v = state["max_exp_avg_sq"]._data if group["amsgrad"] else None
        p._device.backend.adam_update(p._data, g, state["exp_avg"]._data, state["exp_avg_sq"]._data, lr=lr,
                                      beta1=beta1, beta2=beta2, eps=eps, step=state["step"], decay=decay, max_v=max_v)


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr * weight_decay`` each step), default 1e-2."""

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True)
