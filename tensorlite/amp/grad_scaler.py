"""``tl.amp.GradScaler``: loss scaling for float16 training, with ``torch.amp.GradScaler``'s names and rules.

    scaler = tl.amp.GradScaler("cuda")
    with tl.autocast("cuda"):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()      # gradients of loss * scale: small ones no longer flush to zero
    scaler.unscale_(optimizer)         # optional: to clip the true gradients
    tl.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)             # unscales (if not yet), skips the step if a gradient is inf/NaN
    scaler.update()                    # inf/NaN seen: scale *= backoff_factor; growth_interval clean steps: *= growth

The scale, the count of clean steps and the inf/NaN flag live on the device, as in PyTorch, and ``update``
computes the next scale there. Skipping a step: on the CPU the flag is read (free there), and a step with
an inf/NaN gradient does not call ``optimizer.step()`` at all, as PyTorch does. On a device, reading the flag
would make the host wait for the device at every step; instead the optimizer runs a masked step
(``Optimizer.step_unless``) that leaves every parameter, every state buffer and the step count as they were
where the flag is set, without reading it. (PyTorch's default optimizers read the flag, ``found_inf.item()``;
only its fused optimizers skip on the device.) ``get_scale()`` and ``state_dict()`` read the scale: call them at
log or checkpoint time, not every step.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from tensorlite import dtypes
from tensorlite.tensor import Tensor


class _Stage(enum.Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


class GradScaler:
    """Scale losses, unscale and check gradients, skip steps with inf/NaN gradients, adapt the scale.

    ``init_scale`` is the first scale; after ``growth_interval`` steps in a row without inf/NaN gradients it is
    multiplied by ``growth_factor``; a step with them multiplies it by ``backoff_factor`` (and is skipped).
    ``enabled=False`` makes every method a pass-through (``step`` just calls ``optimizer.step()``).
    """

    def __init__(self, device: str = "cuda", init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True) -> None:
        if growth_factor <= 1.0:
            raise ValueError(f"GradScaler: growth_factor should be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: backoff_factor should be < 1 and > 0, got {backoff_factor}")
        if not isinstance(growth_interval, int) or growth_interval <= 0:
            raise ValueError(f"GradScaler: growth_interval should be a positive integer, got {growth_interval!r}")
        self._device, self._enabled = device, enabled
        self._init_scale, self._growth_factor = float(init_scale), float(growth_factor)
        self._backoff_factor, self._growth_interval = float(backoff_factor), growth_interval
        self._init_growth_tracker = 0
        self._scale: Any = None  # 0-d float32 device array, made by the first scale()
        self._growth_tracker: Any = None  # 0-d int32 device array: clean steps in a row
        self._scale_device: Any = None
        self._per_optimizer: dict[int, dict[str, Any]] = {}

    # -- scaling ---------------------------------------------------------------------------------------------
    def _lazy_init(self, device: Any) -> None:
        xp = device.backend.xp
        with device.backend.scope:
            self._scale = xp.full((), self._init_scale, dtype=dtypes.float32)
            self._growth_tracker = xp.full((), self._init_growth_tracker, dtype=dtypes.int32)
        self._scale_device = device

    def _scale_on(self, device: Any) -> Any:
        """The scale as a 0-d array on ``device`` (a device-to-device copy if the scale lives elsewhere)."""
        if device is self._scale_device:
            return self._scale
        return device.backend.copy_from(self._scale, self._scale_device.backend)

    def scale(self, outputs: Tensor | Iterable[Tensor]) -> Any:
        """``outputs`` (a tensor, or lists/tuples of them) multiplied by the scale, differentiably."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            if self._scale is None:
                self._lazy_init(outputs.device)
            scale = Tensor._make(self._scale_on(outputs.device), outputs.device, False, None)
            return outputs * scale
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        raise TypeError(f"GradScaler.scale: expected a tensor or a list/tuple of tensors, got {type(outputs).__name__}")

    # -- unscaling and the inf/NaN check ------------------------------------------------------------------
    def _state(self, optimizer: Any) -> dict[str, Any]:
        return self._per_optimizer.setdefault(id(optimizer), {"stage": _Stage.READY, "found_inf": {}})

    def unscale_(self, optimizer: Any) -> None:
        """Divide ``optimizer``'s gradients by the scale in place, noting on each device whether any is inf/NaN.
        At most once per optimizer between ``update()`` calls; ``step`` calls it if you did not."""
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state["stage"] is _Stage.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] is _Stage.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        if self._scale is None:
            raise RuntimeError("GradScaler.unscale_: no loss was scaled yet: call scaler.scale(loss).backward() first")
        found: dict[Any, Any] = {}
        inverse: dict[Any, Any] = {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.dtype == dtypes.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                device, xp = p.grad.device, p.grad.device.backend.xp
                with device.backend.scope:
                    if device not in inverse:  # 1 / scale in float64, then float32, as PyTorch
                        inverse[device] = (1.0 / self._scale_on(device).astype(dtypes.float64)).astype(dtypes.float32)
                        found[device] = xp.zeros((), dtype=dtypes.float32)
                    g = p.grad._data
                    found[device] = xp.maximum(found[device], (~xp.isfinite(g)).any().astype(dtypes.float32))
                    g *= inverse[device]
        state["found_inf"] = found
        state["stage"] = _Stage.UNSCALED

    # -- the step -------------------------------------------------------------------------------------------
    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """``optimizer.step(*args, **kwargs)`` on the unscaled gradients, skipped if any of them is inf/NaN (read
        on the CPU; on a device, a masked step that reads nothing). Returns the step's result, or None."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        state = self._state(optimizer)
        if state["stage"] is _Stage.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is _Stage.READY:
            self.unscale_(optimizer)
        if not state["found_inf"]:
            raise RuntimeError("No inf checks were recorded for this optimizer.")
        state["stage"] = _Stage.STEPPED
        if all(device.type == "cpu" for device in state["found_inf"]):
            if not any(bool(flag) for flag in state["found_inf"].values()):  # free on the CPU
                return optimizer.step(*args, **kwargs)
            return None
        return optimizer.step_unless(self._combined(state["found_inf"]))

    @staticmethod
    def _combined(found: dict[Any, Any]) -> dict[Any, Any]:
        """Per device, whether any device saw an inf/NaN (a 0-d bool), so that all parameters skip together."""
        devices = list(found)
        result = {}
        for device in devices:
            with device.backend.scope:
                total = found[device]
                for other in devices:
                    if other is not device:
                        total = total + device.backend.copy_from(found[other], other.backend)
                result[device] = total > 0
        return result

    # -- the scale's update ------------------------------------------------------------------------------------
    def update(self, new_scale: float | Tensor | None = None) -> None:
        """Adapt the scale after a step (see the class docstring), or set it to ``new_scale``; on the device."""
        if not self._enabled:
            return
        if self._scale is None:
            return
        device, xp = self._scale_device, self._scale_device.backend.xp
        with device.backend.scope:
            if new_scale is not None:
                if isinstance(new_scale, Tensor):
                    value = device.backend.copy_from(new_scale._data, new_scale.device.backend)
                    self._scale = value.reshape(()).astype(dtypes.float32)
                else:
                    self._scale = xp.full((), float(new_scale), dtype=dtypes.float32)
            else:
                flags = [self._scale_device.backend.copy_from(flag, d.backend) if d is not device else flag
                         for state in self._per_optimizer.values() for d, flag in state["found_inf"].items()]
                if not flags:
                    raise RuntimeError("No inf checks were recorded prior to update.")
                found = flags[0]
                for flag in flags[1:]:
                    found = found + flag
                self._update_scale(xp, found > 0)
        self._per_optimizer = {}

    def _update_scale(self, xp: Any, found: Any) -> None:
        """PyTorch's ``_amp_update_scale_``: back off and restart the count on inf/NaN; else count, and grow the
        scale (if the grown scale is finite) every ``growth_interval`` clean steps."""
        counted = self._growth_tracker + 1
        grow = counted >= self._growth_interval
        grown = self._scale * xp.float32(self._growth_factor)
        grown = xp.where(xp.isfinite(grown), grown, self._scale)
        clean_scale = xp.where(grow, grown, self._scale)
        self._scale = xp.where(found, self._scale * xp.float32(self._backoff_factor), clean_scale).astype(
            dtypes.float32)
        self._growth_tracker = xp.where(found | grow, 0, counted).astype(dtypes.int32)

    # -- reading and saving ------------------------------------------------------------------------------------
    def get_scale(self) -> float:
        """The current scale as a Python float (a read from the device: not every step)."""
        if not self._enabled:
            return 1.0
        if self._scale is None:
            return self._init_scale
        return Tensor._make(self._scale, self._scale_device, False, None).item()

    def _get_growth_tracker(self) -> int:
        if self._growth_tracker is None:
            return self._init_growth_tracker
        return int(Tensor._make(self._growth_tracker, self._scale_device, False, None).item())

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = new_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = new_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = new_interval

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict[str, Any]:
        """``scale``, ``growth_factor``, ``backoff_factor``, ``growth_interval``, ``_growth_tracker``, as PyTorch
        (empty when disabled)."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` (this class's or ``torch.amp.GradScaler``'s) saved."""
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._init_scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._init_growth_tracker = int(state_dict["_growth_tracker"])
        if self._scale is not None:
            self._lazy_init(self._scale_device)
