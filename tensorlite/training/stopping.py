"""How a run stops cleanly: Ctrl-C deferred to a point where the state is consistent, and non-finite
losses found on the device.

Both loops check a loss for NaN or infinity after every step without waiting for the device: ``LossWatch``
keeps the first bad step in a 0-d device array and is read only where the loop reads from the device
anyway (at the end of an epoch, at an evaluation). There the weights are checked too (``all_finite``): a
step with a finite loss can still leave infinite weights, and a state is saved only if they are finite.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from typing import Any

from tensorlite import dtypes
from tensorlite.tensor import Tensor
from tensorlite.training import parallel


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; ``step`` names where (an iteration, or a batch of an epoch)."""


class LossWatch:
    """The first step whose loss was not finite, kept on the loss's device: ``update`` never reads from it."""

    def __init__(self) -> None:
        self.first_bad: Any = None  # 0-d int64 device array: the first bad step, -1 while all are finite

    def update(self, loss: Tensor, step: int) -> None:
        """Note ``loss`` (0-d) as step ``step``'s, on the device."""
        self.device, xp = loss.device, loss.device.backend.xp
        with loss.device.backend.scope:
            if self.first_bad is None:
                self.first_bad = xp.full((), -1, dtype=dtypes.int64)
            bad = ~xp.isfinite(loss._data)
            self.first_bad = xp.where(bad & (self.first_bad < 0), step, self.first_bad)

    def first_bad_step(self) -> int | None:
        """The first step with a non-finite loss since the last reset (on any rank), or None: one read from the
        device, which also raises the device's pending checks."""
        step = -1 if self.first_bad is None else Tensor._make(self.first_bad, self.device, False, None).item()
        return parallel.first_over_ranks(step if step >= 0 else None)

    def reset(self) -> None:
        self.first_bad = None


def all_finite(tensors: Iterable[Tensor]) -> bool:
    """Whether every value of ``tensors`` (on one device) is finite: a reduction each, then one read."""
    tensors = list(tensors)
    device = tensors[0].device
    xp = device.backend.xp
    with device.backend.scope:
        finite = xp.stack([xp.isfinite(t._data).all() for t in tensors]).all()
    return bool(Tensor._make(finite, device, False, None))


class DeferredInterrupt:
    """While active, Ctrl-C sets ``requested`` instead of raising, so that the loop stops where its state is
    consistent; a second Ctrl-C raises as usual."""

    requested = False

    def __enter__(self) -> DeferredInterrupt:
        self.requested = False
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread, which alone receives signals
            self.previous = None
        return self

    def agreed(self) -> bool:
        """Whether to stop here: ``requested``, on any rank when several train together, so that all of them
        stop at the same step (call it where every rank calls it)."""
        return parallel.any_rank(self.requested)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
