"""``Optimizer``: PyTorch's contract for the classes that update parameters from their gradients.

An optimizer holds ``param_groups`` (dicts: ``"params"``, a list of tensors, plus the
hyperparameters for them) and ``state`` (a dict per parameter: momentum buffers, step counts).
``step()`` updates every parameter that has a gradient, in place on its backend array, so the
tensors a model holds stay the same objects. ``state_dict()`` has PyTorch's layout: parameters
are replaced by their position (0, 1, 2 ... in group order).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy

from tensorlite.autograd import enable_grad
from tensorlite.creation import tensor
from tensorlite.tensor import Tensor

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class of the optimizers. Subclasses validate a group in ``_validate`` and update one
    parameter in ``_update``.

    Args:
        params: tensors to optimize, or dicts (parameter groups) with ``"params"`` and any
            hyperparameters that should differ from ``defaults`` for those tensors.
        defaults: the hyperparameters of groups that do not set them.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params should be an iterable of tensors or dicts, got a single Tensor; "
                            "pass [tensor] or model.parameters()")
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines) + "\n)"

    # -- parameter groups ------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of tensors (``{"params": [...], "lr": ...}``); unset options take the defaults."""
        name = type(self).__name__
        group = dict(param_group)
        params = group.get("params")
        group["params"] = [params] if isinstance(params, Tensor) else list(params or [])
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: can only optimize tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf tensor (it was computed by an op); "
                                 "optimize the leaves it came from, or detach() it")
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        self._validate(group)
        self.param_groups.append(group)

    def _validate(self, group: dict[str, Any]) -> None:
        """Raise ValueError naming the optimizer and the value if a hyperparameter of ``group`` is invalid."""

    def _check(self, ok: bool, what: str, value: Any, expected: str) -> None:
        if not ok:
            raise ValueError(f"{type(self).__name__}: invalid {what} {value!r}, expected {expected}")

    def _check_nonnegative(self, group: dict[str, Any], *keys: str) -> None:
        for key in keys:
            self._check(group[key] >= 0, key, group[key], "a value >= 0")

    # -- the update ------------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set ``.grad`` to None (default) or fill it with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient. ``closure`` re-evaluates the model and
        returns the loss (some algorithms need it); its result is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    with p._device.backend.scope:  # the update's math runs on the parameter's device
                        self._update_counted(p, group)
        return loss

    def _update_counted(self, p: Tensor, group: dict[str, Any]) -> None:
        """``_update``, with a step count kept on the device (after ``step_unless``) handed to it as its array."""
        state = self.state.get(p)
        counted_on_device = state is not None and isinstance(state.get("step"), Tensor)
        if counted_on_device:
            state["step"] = state["step"]._data
        self._update(p, group)
        if counted_on_device:
            state["step"] = Tensor._make(state["step"], p._device, False, None)

    def _update(self, p: Tensor, group: dict[str, Any]) -> None:
        """Update ``p._data`` in place from ``p.grad`` with the options of ``group``."""
        raise NotImplementedError

    def step_unless(self, skip: dict[Any, Any]) -> None:
        """A step that changes nothing where ``skip[device]`` (a 0-d bool array on that device) is True, decided on
        the device without reading the flag (``GradScaler`` skips steps with inf/NaN gradients so).

        Each parameter's update runs, then the parameter, its state buffers and its step count (kept as a 0-d
        float64 array from then on, so that the bias corrections follow it on the device) are set back where
        the flag is set. That costs a copy of the parameter and its state per step. State that a skipped first
        step creates is kept at its initial value: exactly PyTorch's skip for every optimizer here, except SGD
        with ``dampening`` != 0, whose buffer starts as the first gradient undamped (after a skipped first step
        it starts from zero instead).
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                with p._device.backend.scope:
                    self._masked_update(p, group, skip[p._device])

    def _masked_update(self, p: Tensor, group: dict[str, Any], skip: Any) -> None:
        xp = p._device.backend.xp
        state = self.state[p]
        kept = {key: value._data.copy() for key, value in state.items() if isinstance(value, Tensor)}
        kept_step = _count(state.get("step", 0))
        kept_step = kept_step if isinstance(kept_step, int) else kept_step.copy()  # the update adds to it in place
        old = p._data.copy()
        with numpy.errstate(all="ignore"):  # a step to be skipped computes with inf/NaN: NumPy would warn
            self._update_counted(p, group)
        xp.copyto(p._data, xp.where(skip, old, p._data))
        for key, value in state.items():
            if isinstance(value, Tensor) and key != "step":
                xp.copyto(value._data, xp.where(skip, kept[key], value._data) if key in kept
                          else xp.where(skip, xp.zeros_like(value._data), value._data))
        if "step" in state:
            step = xp.where(skip, kept_step, _count(state["step"])).astype("float64")
            state["step"] = Tensor._make(step, p._device, False, None)

    # -- saving and restoring --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}`` as PyTorch's.

        The state tensors are the optimizer's own (not copies), as in PyTorch.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state saved by ``state_dict`` (of an optimizer over the same
        parameters, in the same order). State tensors are copied to each parameter's device and dtype;
        so a ``torch.optim`` state dict of the same algorithm loads too."""
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has {len(saved_groups)} parameter groups, "
                             f"the optimizer has {len(self.param_groups)}")
        params = {}
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {i} has {len(saved['params'])} "
                                 f"parameters in the state dict, {len(group['params'])} in the optimizer")
            params.update(zip(saved["params"], group["params"]))
        state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for index, saved in state_dict["state"].items():
            p = params[index]
            state[p] = {key: self._restore(name, index, key, value, p) for key, value in saved.items()}
        self.state = state
        self.param_groups = [
            {**copy.deepcopy({k: v for k, v in saved.items() if k != "params"}), "params": group["params"]}
            for group, saved in zip(self.param_groups, saved_groups)
        ]

    @staticmethod
    def _restore(name: str, index: int, key: str, value: Any, p: Tensor) -> Any:
        """One saved state value, made ready for parameter ``p``: arrays become tensors like ``p``."""
        if key == "step":
            return int(value)
        if not hasattr(value, "shape"):
            return copy.deepcopy(value)
        if tuple(value.shape) != p.shape:
            raise ValueError(f"{name}.load_state_dict: state {key!r} of parameter {index} has shape "
                             f"{tuple(value.shape)}, the parameter has shape {p.shape}")
        return tensor(value, dtype=p.dtype, device=p.device)


def _count(step: int | Tensor) -> Any:
    """A step count as a number or a device array (where it is kept on the device)."""
    return step._data if isinstance(step, Tensor) else step


def gradient(p: Tensor, maximize: bool, weight_decay: float) -> Any:
    """The array an optimizer descends along: ``±p.grad + weight_decay * p`` (L2 penalty, PyTorch's
    coupled weight decay). It may be ``p.grad``'s own array: never write into it."""
    g = p.grad._data
    if weight_decay == 0:
        return -g if maximize else g
    out = p._data * weight_decay
    if maximize:
        out -= g
    else:
        out += g
    return out


def lerp_(xp: Any, start: Any, end: Any, weight: float, scratch: Any) -> None:
    """``start += weight * (end - start)`` in place (PyTorch's ``lerp_``); ``scratch`` holds the difference."""
    xp.subtract(end, start, out=scratch)
    scratch *= weight
    start += scratch
