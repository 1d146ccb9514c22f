"""What every process group shares: the reduction ops, ``Work`` (a collective in flight), and the interface
the MPI and NCCL groups implement on raw backend arrays.

A collective always starts without blocking and returns a ``Work``; the blocking forms of
``tensorlite.distributed`` wait on it at once. Arrays that a group cannot hand to its engine as they are
(not contiguous, on another device than the engine reads, a dtype it cannot reduce) are *staged*: copied
to a buffer it can use, and the result copied back when the work completes.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable
from typing import Any

from tensorlite.backends import Array, Backend


class ReduceOp(enum.Enum):
    """How ``all_reduce`` and ``reduce_scatter`` combine the ranks' values (``tl.distributed.ReduceOp.SUM``).
    ``AVG`` is the sum divided by the world size, for floating-point tensors."""

    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"


class Work:
    """A collective in flight, as ``torch.distributed.Work``: ``wait()`` returns once its result is in the
    tensors (on NCCL: once the current CUDA stream is ordered after it, without blocking the host);
    ``is_completed()`` asks without blocking (on MPI it also lets the library make progress)."""

    def __init__(self, test: Callable[[], bool], wait: Callable[[], None],
                 finish: Callable[[], None] | None = None, buffers: tuple = ()) -> None:
        self._test, self._wait, self._finish = test, wait, finish
        self._buffers = buffers  # what the engine reads or writes until the work completes: kept alive till then
        self._done = False

    def is_completed(self) -> bool:
        if not self._done and self._test():
            self._complete()
        return self._done

    def wait(self) -> bool:
        if not self._done:
            self._wait()
            self._complete()
        return True

    def _and_then(self, step: Callable[[], None]) -> Work:
        """Run ``step`` too once the work completes (after what already finishes it); returns self."""
        self._finish = then(self._finish, step)
        return self

    def _complete(self) -> None:
        self._done, self._buffers = True, ()
        if self._finish is not None:
            self._finish()


def done_work() -> Work:
    """A ``Work`` that has nothing left to do (what ``barrier(async_op=True)`` returns after a blocking barrier)."""
    return Work(lambda: True, lambda: None)


def then(*steps: Callable[[], None] | None) -> Callable[[], None] | None:
    """One callable running ``steps`` (skipping None) in order, or None if there are none."""
    steps = tuple(step for step in steps if step is not None)
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def run() -> None:
        for step in steps:
            step()

    return run


class ProcessGroup:
    """The ranks that run collectives together. Every method takes backend arrays and the backend that owns
    them, and (but ``barrier``) returns a ``Work``; in-place results land in ``array``/``out``."""

    backend_name = "abstract"
    rank: int
    size: int

    def all_reduce(self, array: Array, op: ReduceOp, backend: Backend) -> Work:
        """Combine ``array`` (the same shape on every rank) across ranks with ``op``, in place."""
        raise NotImplementedError

    def broadcast(self, array: Array, src: int, backend: Backend) -> Work:
        """Overwrite ``array`` on every rank with rank ``src``'s."""
        raise NotImplementedError

    def all_gather(self, out: Array, array: Array, backend: Backend) -> Work:
        """``out`` (size * array.size elements) receives every rank's ``array``, in rank order."""
        raise NotImplementedError

    def reduce_scatter(self, out: Array, array: Array, op: ReduceOp, backend: Backend) -> Work:
        """``array`` (size * out.size elements) is combined across ranks; rank r gets block r in ``out``."""
        raise NotImplementedError

    def barrier(self) -> None:
        """Return once every rank has called it."""
        raise NotImplementedError

    def destroy(self) -> None:
        """Release what the group holds (the engine itself stays up until the process ends)."""


def average_by(size: int, array: Any) -> Callable[[], None]:
    """What finishes an ``AVG``: divide the summed ``array`` by ``size`` in place."""

    def divide() -> None:
        operator.itruediv(array, size)  # in place on NumPy, CuPy and sim arrays

    return divide


def check_reducible(op_name: str, op: ReduceOp, dtype: Any) -> None:
    """``AVG`` needs a floating-point dtype (an integer mean would be truncated)."""
    if not isinstance(op, ReduceOp):
        raise TypeError(f"{op_name}: op must be a tl.distributed.ReduceOp (SUM, AVG, MIN or MAX), got {op!r}")
    if op is ReduceOp.AVG and getattr(dtype, "kind", "f") != "f":
        raise TypeError(f"{op_name}: ReduceOp.AVG needs a floating-point tensor, got {dtype}; use SUM and divide")
