"""Checks of values that live on a device, made without waiting for the device.

Some ops must check their input's values: an embedding's indices must be in range, a loss's class targets
must be classes, binary cross entropy's inputs must be probabilities. On the CPU the check is free, and a bad
value raises at once, naming it. On a GPU, reading a value back to the host waits for every kernel queued
before it: one such read per op per step would make the host wait for the device at every step. PyTorch
checks these on the device (an assert inside the CUDA kernel) and the error surfaces at the next
synchronisation, asynchronously. tensorlite does the same in spirit, with a clear message:

- ``"deferred"`` (the default): on a device, each check is a few kernels that record, on the device, the first
  failed check and its offending value. Nothing is read then. The record is read, and the error raised, the
  next time a value of that device is read to the host through the library (``item()``, ``float()``,
  ``numpy()``, printing, a training loop's log, ``tl.cuda.synchronize()``): a training loop that reads its
  loss only at log intervals finds a bad index there, one read later. The message says which op failed and the
  value, and that the op ran earlier than where it was raised.
- ``"sync"``: check on the device at once, as on the CPU (one read per check: for debugging, as
  ``CUDA_LAUNCH_BLOCKING=1`` is for PyTorch).
- ``"off"``: no checks on devices (the indexing itself does not fail: CuPy wraps out-of-bounds indices around).

Set with ``tl.set_device_checks(mode)`` or the ``TENSORLITE_DEVICE_CHECKS`` variable. The CPU always checks at
once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from typing import Any

MODES = ("deferred", "sync", "off")
_mode: str | None = None  # read from the environment on first use


class _Pending:
    """The checks made on one device since its last read: which failed first (-1: none) and with which value."""

    def __init__(self, xp: Any) -> None:
        self.first = xp.full((), -1, dtype="int64")  # index into ``errors`` of the first failed check
        self.value = xp.zeros((), dtype="float64")  # its offending value
        self.errors: dict[Hashable, tuple[int, Callable[[Any], Exception]]] = {}

    def code(self, key: Hashable, error: Callable[[Any], Exception]) -> int:
        found = self.errors.get(key)
        if found is None:
            found = self.errors[key] = (len(self.errors), error)
        return found[0]


_pending: dict[Any, _Pending] = {}  # by device


def get_mode() -> str:
    """How checks of device values are made: "deferred", "sync" or "off" (see the module's docstring)."""
    global _mode
    if _mode is None:
        set_mode(os.environ.get("TENSORLITE_DEVICE_CHECKS", "deferred"))
    return _mode


def set_mode(mode: str) -> None:
    """Choose how ops check values on a device: "deferred" (default), "sync" or "off"."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"set_device_checks: mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    _mode = mode


def check(device: Any, bad: Any, values: Any, key: Hashable, error: Callable[[Any], Exception]) -> None:
    """Raise ``error(value)`` for the first of ``values`` where the bool array ``bad`` (same shape) is True.

    On the CPU, at once. On a device, as the mode says; ``key`` names the check (the op and its bounds), so that
    one check made every step is recorded once.
    """
    if device.type == "cpu" or get_mode() == "sync":
        with device.backend.scope:
            if bool(bad.any()):
                raise error(values[bad].reshape(-1)[0].item())
        return
    if get_mode() == "off":
        return
    xp = device.backend.xp
    with device.backend.scope:
        pending = _pending.get(device)
        if pending is None:
            pending = _pending[device] = _Pending(xp)
        code = pending.code(key, error)
        flat = bad.reshape(-1)
        fresh = flat.any() & (pending.first < 0)  # this check failed, and none before it
        pending.first = xp.where(fresh, code, pending.first)
        pending.value = xp.where(fresh, values.reshape(-1)[flat.argmax()].astype("float64"), pending.value)


def raise_pending(device: Any) -> None:
    """Read the checks recorded on ``device`` since the last read (one small read) and raise the first that
    failed. The library calls this before it reads any value of that device."""
    pending = _pending.pop(device, None)
    if pending is None:
        return
    code = int(pending.first)
    if code < 0:
        return
    error = next(make for index, make in pending.errors.values() if index == code)
    value = float(pending.value)
    exc = error(int(value) if value.is_integer() else value)
    exc.args = (f"{exc.args[0]} (checked on {device} without waiting for it, and found at this later read: the op "
                "ran earlier; tl.set_device_checks('sync') raises where it happens)",)
    raise exc


def forget(device: Any) -> None:
    """Drop the checks recorded on ``device`` without reading them (after an error, or to start afresh)."""
    _pending.pop(device, None)
