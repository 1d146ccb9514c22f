"""Learning-rate schedulers, as ``torch.optim.lr_scheduler``.

A scheduler sets ``group["lr"]`` of each of an optimizer's parameter groups from the number of
``step()`` calls so far (``last_epoch``); call ``scheduler.step()`` after ``optimizer.step()``.
Creating one sets the rate of step 0. Every scheduler here computes its rate in closed form from
``last_epoch`` and the groups' ``initial_lr``, giving PyTorch's values (PyTorch updates some of them
recursively from the current rate, which lets several schedulers act on one optimizer at once;
that chaining is not supported here).

``WarmupCosineLR`` is not in PyTorch: it is nanoGPT's ``get_lr`` (linear warmup, cosine decay).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from tensorlite.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses define ``get_lr()``, the rate of each group at step ``last_epoch``.

    ``last_epoch=-1`` starts a schedule; another value resumes one (the groups then need their
    ``initial_lr``, which ``optimizer.load_state_dict`` restores).
    """

    _not_saved: tuple[str, ...] = ("optimizer",)  # attributes that state_dict() leaves out

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        name = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{name}: param_groups[{i}] has no 'initial_lr' to resume from at last_epoch="
                               f"{last_epoch}; load the optimizer's state dict first, or start with last_epoch=-1")
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self) -> list[float]:
        """The learning rate of each parameter group at step ``self.last_epoch``."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and set each group's ``lr``."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates that the last ``step()`` set, one per group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer (and, for LambdaLR, the functions), as PyTorch's."""
        return {key: value for key, value in self.__dict__.items() if key not in self._not_saved}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)


def _per_group(scheduler: str, name: str, value: float | Sequence[float], optimizer: Optimizer) -> list[float]:
    """``value`` for each parameter group: one number for all, or a list with one per group."""
    if not isinstance(value, (list, tuple)):
        return [value] * len(optimizer.param_groups)
    if len(value) != len(optimizer.param_groups):
        raise ValueError(f"{scheduler}: {name} has {len(value)} values, the optimizer has "
                         f"{len(optimizer.param_groups)} parameter groups")
    return list(value)


class LambdaLR(LRScheduler):
    """``lr = initial_lr * lr_lambda(step)``; one function, or a list with one per group.

    ``state_dict()`` leaves the functions out (they are code, not state).
    """

    _not_saved = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
                 last_epoch: int = -1) -> None:
        self.lr_lambdas = _per_group("LambdaLR", "lr_lambda", lr_lambda, optimizer)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * fn(self.last_epoch) for fn, base in zip(self.lr_lambdas, self.base_lrs)]


class StepLR(LRScheduler):
    """``lr = initial_lr * gamma ** (step // step_size)``: decay by ``gamma`` every ``step_size`` steps."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """``lr = initial_lr * gamma ** step``."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * self.gamma**self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (initial_lr - eta_min) * (1 + cos(pi * step / T_max)) / 2`` (rises again after T_max)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin): the rate rises from ``max_lr / div_factor`` to ``max_lr``
    over the first ``pct_start`` of ``total_steps``, then anneals to ``initial_lr / final_div_factor``.

    With ``three_phase`` it first comes back down to the initial rate symmetrically, then anneals.
    With ``cycle_momentum`` the momentum (or Adam's beta1) moves the opposite way, between
    ``max_momentum`` and ``base_momentum``. Give ``total_steps``, or ``epochs`` and ``steps_per_epoch``.
    """

    def __init__(self, optimizer: Optimizer, max_lr: float | Sequence[float], total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float | Sequence[float] = 0.85, max_momentum: float | Sequence[float] = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
            total_steps = epochs * steps_per_epoch
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f"OneCycleLR: expected a positive integer number of steps, got {total_steps!r}")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: expected 0 <= pct_start <= 1, got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        if cycle_momentum and "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
            raise ValueError(f"OneCycleLR: cycle_momentum needs an optimizer with momentum or betas, "
                             f"{type(optimizer).__name__} has neither")
        self.total_steps = total_steps
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = cycle_momentum
        # Each phase: (last step, rate at its start, rate at its end, momentum at its start, at its end).
        warmup_end = float(pct_start * total_steps) - 1
        if three_phase:
            self._phases = [(warmup_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                            (2 * warmup_end, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                            (total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            self._phases = [(warmup_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                            (total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
        if last_epoch == -1:
            groups = optimizer.param_groups
            for group, top in zip(groups, _per_group("OneCycleLR", "max_lr", max_lr, optimizer)):
                group.update(initial_lr=top / div_factor, max_lr=top, min_lr=top / div_factor / final_div_factor)
            if cycle_momentum:
                tops = _per_group("OneCycleLR", "max_momentum", max_momentum, optimizer)
                bottoms = _per_group("OneCycleLR", "base_momentum", base_momentum, optimizer)
                for group, top, bottom in zip(groups, tops, bottoms):
                    group.update(max_momentum=top, base_momentum=bottom)
                    self._set_momentum(group, top)
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict[str, Any], momentum: float) -> None:
        if "betas" in group:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {step} times, but total_steps is {self.total_steps}")
        start = 0.0
        for i, phase in enumerate(self._phases):
            if step <= phase[0] or i == len(self._phases) - 1:
                break
            start = phase[0]
        end, lr_start, lr_end, momentum_start, momentum_end = phase
        pct = (step - start) / (end - start)
        lrs = []
        for group in self.optimizer.param_groups:
            lrs.append(self._anneal(group[lr_start], group[lr_end], pct))
            if self.cycle_momentum:
                self._set_momentum(group, self._anneal(group[momentum_start], group[momentum_end], pct))
        return lrs


class WarmupCosineLR(LRScheduler):
    """Linear warmup from 0, then cosine decay to ``min_lr`` (nanoGPT's ``get_lr``; not in PyTorch)::

        lr = initial_lr * step / warmup_steps                           for step < warmup_steps
        lr = min_lr + (initial_lr - min_lr) * (1 + cos(pi * r)) / 2     r = (step - warmup_steps)
                                                                          / (total_steps - warmup_steps)
        lr = min_lr                                                     for step > total_steps

    ``min_lr`` is one rate for all groups or a list with one per group. In PyTorch, the same
    schedule is a ``LambdaLR`` with this formula divided by ``initial_lr``.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int,
                 min_lr: float | Sequence[float] = 0.0, last_epoch: int = -1) -> None:
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"WarmupCosineLR: expected 0 <= warmup_steps < total_steps, got warmup_steps="
                             f"{warmup_steps}, total_steps={total_steps}")
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_lrs = _per_group("WarmupCosineLR", "min_lr", min_lr, optimizer)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step < self.warmup_steps:
            return [base * step / self.warmup_steps for base in self.base_lrs]
        if step > self.total_steps:
            return list(self.min_lrs)
        ratio = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        cosine = (1 + math.cos(math.pi * ratio)) / 2
        return [low + (base - low) * cosine for base, low in zip(self.base_lrs, self.min_lrs)]
